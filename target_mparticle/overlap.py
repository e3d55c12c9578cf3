"""Drains in flight while the next is converted, with STATE held back until they land.

Without this the main thread would stop reading and converting records for as
long as a drain's requests are in flight, so a run's wall time would be the sum of
its CPU time and its HTTP time rather than the larger of the two. The main thread
assembles and encodes a drain and queues it for one sender thread, which delivers
drains one after another in the order they were queued (so one user's changes
never overtake each other); the main thread goes back to reading. It waits only
when `MAX_IN_FLIGHT` drains are already queued: with two, a drain that happens to
take longer than converting the next one (a slow answer, a retry) is absorbed
instead of stopping the main thread, and at most three drains are ever in memory.

A STATE message that arrives while drains are in flight is held with the newest
of them and written once that drain has settled, which is after every drain before
it: STATE still only ever follows acceptance. A drain is settled as soon as it
finished (`pop_finished`, called by the sender as it finishes one), unless it
failed: that waits for `settle_oldest` on the main thread, which raises it. After a
failed drain the ones queued behind it are not sent.
"""

from __future__ import annotations

import collections
import dataclasses
import typing as t
from concurrent.futures import Future, ThreadPoolExecutor

if t.TYPE_CHECKING:
    from target_mparticle.assemble import PreparedBatch
    from target_mparticle.client import Request

Refused = list[tuple["PreparedBatch", str]]
#: Drains queued for the sender before the main thread waits for the oldest.
MAX_IN_FLIGHT = 2


class NotSentError(Exception):
    """A drain queued behind a failed one, left unsent."""


@dataclasses.dataclass
class InFlight:
    """A drain handed to the sender: what it held, its outcome to come, its STATE."""

    stream: str
    n_records: int
    n_batches: int
    requests: list[Request]
    #: The records (`id` of each whole item) refused before sending, at assembly.
    refused_early: frozenset[int]
    outcome: Future[Refused]
    #: The STATE to pass on once this drain (and so every one before it) settled.
    held_state: dict[str, t.Any] | None = None


class Overlap:
    """Runs drains' deliveries, in order, beside the main thread."""

    def __init__(self) -> None:
        """Nothing in flight; the sender thread starts with the first drain."""
        self.flights: collections.deque[InFlight] = collections.deque()
        self._sender: ThreadPoolExecutor | None = None
        self._failed = False

    @property
    def in_flight(self) -> bool:
        """Whether any drain is queued or being sent."""
        return bool(self.flights)

    @property
    def full(self) -> bool:
        """Whether the next drain must wait for the oldest to settle."""
        return len(self.flights) >= MAX_IN_FLIGHT

    def start(
        self,
        flight: tuple[str, int, int, list[Request], frozenset[int]],
        deliver: t.Callable[[], Refused],
    ) -> InFlight:
        """Queue a drain for the sender, behind the drains already queued."""
        if self._sender is None:
            self._sender = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mparticle-drain")
        queued = InFlight(*flight, self._sender.submit(self._run, deliver))
        self.flights.append(queued)
        return queued

    def oldest(self) -> InFlight | None:
        """The drain queued longest ago and not settled yet, if any."""
        return self.flights[0] if self.flights else None

    def pop_finished(self) -> list[tuple[InFlight, Refused]]:
        """Take, from the head of the queue, each drain that finished without failing.

        Returns each with the batches mParticle refused. Stops at the first drain
        still being sent, or failed: that one waits for `settle_oldest`, which raises
        its failure.
        """
        finished = []
        while self.flights:
            outcome = self.flights[0].outcome
            if not outcome.done() or outcome.exception() is not None:
                break
            finished.append((self.flights.popleft(), outcome.result()))
        return finished

    def _run(self, deliver: t.Callable[[], Refused]) -> Refused:
        if self._failed:
            msg = "not sent: a drain before it failed"
            raise NotSentError(msg)
        try:
            return deliver()
        except BaseException:
            self._failed = True
            raise

    def settle_oldest(self) -> tuple[InFlight | None, Refused]:
        """Wait for the oldest drain in flight; re-raises its failure.

        Returns:
            The drain (None if there was none) and the batches mParticle refused.
        """
        if not self.flights:
            return None, []
        flight = self.flights.popleft()
        return flight, flight.outcome.result()

    def hold_or_pass(self, state: dict[str, t.Any]) -> dict[str, t.Any] | None:
        """Hold ``state`` with the newest drain in flight; else return it to be written now."""
        if self.flights:
            self.flights[-1].held_state = state
            return None
        return state

    def close(self) -> None:
        """Stop the sender thread (after the drains in flight, if any)."""
        if self._sender is not None:
            self._sender.shutdown(wait=True)
