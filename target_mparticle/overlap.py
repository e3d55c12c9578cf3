"""One drain in flight while the next is converted, with STATE held back until it lands.

Without this the main thread would stop reading and converting records for as
long as a drain's requests are in flight, so a run's wall time would be the sum of
its CPU time and its HTTP time rather than the larger of the two. The main thread
assembles and encodes a drain, hands the sending to a background thread and goes
back to reading; before it hands over the next drain it waits for the previous one
(so at most two drains are ever in memory and failures surface one drain late at
most). A STATE message that arrives while a drain is in flight is held back and
written once that drain has settled: STATE still only ever follows acceptance.
"""

from __future__ import annotations

import dataclasses
import typing as t
from concurrent.futures import Future, ThreadPoolExecutor

if t.TYPE_CHECKING:
    from target_mparticle.assemble import PreparedBatch
    from target_mparticle.client import Request

Refused = list[tuple["PreparedBatch", str]]


@dataclasses.dataclass
class InFlight:
    """A drain handed to the sender: what it held and its outcome to come."""

    stream: str
    n_records: int
    n_batches: int
    requests: list[Request]
    outcome: Future[Refused]


class Overlap:
    """Runs at most one drain's delivery beside the main thread."""

    def __init__(self) -> None:
        """Nothing in flight; the sender thread starts with the first drain."""
        self.in_flight: InFlight | None = None
        self.held_state: dict[str, t.Any] | None = None
        self._sender: ThreadPoolExecutor | None = None

    def start(
        self,
        flight: tuple[str, int, int, list[Request]],
        deliver: t.Callable[[], Refused],
    ) -> None:
        """Hand a drain to the sender; the previous one must have been settled."""
        if self._sender is None:
            self._sender = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mparticle-drain")
        self.in_flight = InFlight(*flight, self._sender.submit(deliver))

    def settle(self) -> tuple[InFlight | None, Refused]:
        """Wait for the drain in flight; re-raises its failure.

        Returns:
            The drain (None if there was none) and the batches mParticle refused.
        """
        flight, self.in_flight = self.in_flight, None
        if flight is None:
            return None, []
        return flight, flight.outcome.result()

    def hold_or_pass(self, state: dict[str, t.Any]) -> dict[str, t.Any] | None:
        """Hold ``state`` while a drain is in flight; else return it to be written now."""
        if self.in_flight is not None:
            self.held_state = state
            return None
        return state

    def release(self) -> dict[str, t.Any] | None:
        """The STATE held back for the drain just settled, if any."""
        state, self.held_state = self.held_state, None
        return state

    def close(self) -> None:
        """Stop the sender thread (after the drain in flight, if any)."""
        if self._sender is not None:
            self._sender.shutdown(wait=True)
