"""One run's delivery: items to requests, requests to mParticle, refusals to the policy.

The sinks hand each drain here; it is assembled at once and queued for sending while
the next ones are read and converted (see `overlap`: drains are sent one after
another, at most two queued), and each is settled (every item accepted with HTTP
202, or deliberately skipped or dead-lettered) in order. A STATE that arrives
meanwhile is held and passed on (`on_state`) only once the drains before it settled.

A drain is settled by the sender thread the moment it finishes (its refused batches
handed to `on_invalid_record`, then its STATE written), even while the main thread
waits for the tap's next line: a tap that pauses between files would otherwise hold
back the STATE of records already delivered. A drain that failed is left to the
main thread, which raises its failure. One lock orders the two threads' settling and
every STATE written.
The run's counters, the repairs counted while converting, and what the target ignored
are kept here too, for the summary.
"""

from __future__ import annotations

import concurrent.futures
import functools
import logging
import threading
import time
import typing as t

from target_mparticle.assemble import assemble
from target_mparticle.client import ClientSettings, DryRunClient, EventsApiClient, pack
from target_mparticle.clock import now_ms
from target_mparticle.ignored import IgnoredSettings
from target_mparticle.invalid import InvalidRecords
from target_mparticle.overlap import Overlap
from target_mparticle.report import progress_line, summary_line
from target_mparticle.values import Tally

if t.TYPE_CHECKING:
    from target_mparticle.convert import Item
    from target_mparticle.overlap import InFlight, Refused
    from target_mparticle.settings import TargetSettings

LOGGER = logging.getLogger("target-mparticle")
#: Tally key of batches whose id another batch of the same drain already has.
REPEATED_IDS = (
    "batches sent with the source_request_id of another in the same drain (mParticle keeps "
    "only the first: identical rows, or a source_message_id_field that is no row key)"
)


class Delivery:
    """Everything a drain needs to reach mParticle, shared by every sink of a run."""

    def __init__(self, settings: TargetSettings) -> None:
        """Start the run's counters; the HTTP client is created on the first drain.

        Args:
            settings: The target's settings.
        """
        self.settings = settings
        self.tally = Tally()
        self.ignored = IgnoredSettings(settings.mappings)
        self.invalid = InvalidRecords(
            settings.on_invalid_record, settings.dead_letter_path, replace=settings.dry_run
        )
        self.delivering = 0
        self._started = time.monotonic()
        self.overlap = Overlap()
        #: Writes a STATE held back until the drain in flight settled (set by the target).
        self.on_state: t.Callable[[dict[str, t.Any]], None] | None = None
        # Reentrant: a signal handler on the main thread may settle while it holds it.
        self._settling = threading.RLock()
        self._sender_error: BaseException | None = None
        #: Stream -> how its records are named in messages (each sink's converter).
        self.describers: dict[str, t.Callable[[t.Mapping[str, t.Any]], str]] = {}
        #: Records whose every batch mParticle accepted (or the dry run wrote).
        self.delivered = 0
        if settings.dry_run:
            # Opened now, so a run that writes no body still replaces the last run's
            # file (and its summary names the file): the file is always this run's.
            _ = self.client

    @functools.cached_property
    def client(self) -> EventsApiClient | DryRunClient:
        """The real client, or the dry-run writer."""
        settings = self.settings
        if settings.dry_run:
            return DryRunClient(settings.dry_run_path, settings.base_url)
        return EventsApiClient(
            ClientSettings(
                base_url=settings.base_url,
                api_key=settings.api_key,
                api_secret=settings.api_secret,
                max_retries=settings.max_retries,
                max_batches_per_second=settings.max_batches_per_second,
                timeout_s=settings.request_timeout,
                parallel_requests=settings.max_parallel_requests,
                backoff_base_s=settings.backoff_base_seconds,
                backoff_max_s=settings.backoff_max_seconds,
            )
        )

    def deliver(self, stream: str, items: t.Sequence[Item]) -> None:
        """Assemble one drain and hand it to the sender, once the drain before settled.

        Args:
            stream: The stream the items came from.
            items: The drain's converted records.
        """
        self._raise_sender_error()
        self.delivering += 1
        try:
            prepared, rejected = assemble(items, self.settings.historical, now_ms())
            # A stream's user rows have ids of their own by construction (UpdateIds).
            user_rows = bool(prepared and prepared[0].items) and prepared[0].items[0].user_row
            repeated = (
                0 if user_rows else len(prepared) - len({b.source_request_id for b in prepared})
            )
            if repeated:
                # mParticle keeps the first batch of an id: a `source_message_id_field`
                # that is no row key (order_id on order items) loses the other rows.
                self.tally[REPEATED_IDS] += repeated
            for item, reason in rejected:
                self.invalid.handle(stream, item.record, f"{self._named(stream, item)}: {reason}")
            requests_ = pack(prepared)
            while self.overlap.full:
                self._settle_oldest()
            isolate = self.settings.on_invalid_record != "fail"
            client = self.client
            refused_early = frozenset(_whole_id(item) for item, _ in rejected)
            flight = self.overlap.start(
                (stream, len(items), len(prepared), requests_, refused_early),
                lambda: client.deliver(requests_, isolate_bad=isolate),
            )
            flight.outcome.add_done_callback(self._settle_finished)
        finally:
            self.delivering -= 1

    def pass_or_hold(self, state: dict[str, t.Any]) -> None:
        """Write `state` now if no drain is in flight, else hold it with the newest one."""
        with self._settling:
            self._raise_sender_error()
            passed = self.overlap.hold_or_pass(state)
            if passed is not None and self.on_state is not None:
                # Records refused while converting (no drain in flight to settle) are
                # dead letters already: durable before the STATE that moves past them.
                self.invalid.sync()
                self.on_state(passed)

    def settle(self) -> None:
        """Wait for every drain in flight, handle what mParticle refused, pass STATE on."""
        while self.overlap.in_flight:
            self._settle_oldest()
        with self._settling:  # a drain the sender took off the queue may still be settling
            self._raise_sender_error()

    def _settle_finished(self, _done: object = None) -> None:
        """On the sender thread, as a drain finishes: settle it, unless it failed.

        Settles, in order, each finished drain at the head of the queue; a failed one
        (and so everything behind it) stays for the main thread. Once settling has
        failed here (stdout closed, dead letters that cannot be written), nothing more
        is settled: a later drain's STATE would move past the one that failed.
        """
        with self._settling:
            if self._sender_error is not None:
                return
            try:
                for flight, refused in self.overlap.pop_finished():
                    self._settled(flight, refused)
            except BaseException as exc:  # noqa: BLE001 - raised on the main thread
                self._sender_error = exc

    def _raise_sender_error(self) -> None:
        if self._sender_error is not None:
            raise self._sender_error

    def _settle_oldest(self) -> None:
        """Wait for the oldest drain in flight; then its refusals, progress line and STATE."""
        self.delivering += 1
        try:
            oldest = self.overlap.oldest()
            if oldest is None:
                return
            # Wait without the lock: the sender takes it to settle a drain it finished.
            concurrent.futures.wait([oldest.outcome])
            with self._settling:
                self._raise_sender_error()
                if self.overlap.oldest() is not oldest:
                    return  # the sender settled it as it finished
                flight, refused = self.overlap.settle_oldest()
                if flight is not None:
                    self._settled(flight, refused)
        finally:
            self.delivering -= 1

    def _settled(self, flight: InFlight, refused: Refused) -> None:
        """A drain is done: what mParticle refused, its progress line, then its STATE."""
        refused_ids = set(flight.refused_early)
        for batch, reason in refused:
            together = ""
            if len(batch.items) > 1 and batch.items[0].user_row:
                # One user's rows of a drain go folded (assemble): a refusal is theirs
                # together, and each dead letter says so, not only the row at fault.
                together = f" (sent folded with this user's {len(batch.items) - 1} other rows)"
            for item in batch.items:
                if not item.events and _whole_id(item) in refused_ids:
                    continue  # in two refused pieces of a folded update: one dead letter
                named = self._named(flight.stream, item)
                self.invalid.handle(flight.stream, item.record, f"{named}: {reason}{together}")
                refused_ids.add(_whole_id(item))
        self.invalid.sync()
        self.delivered += flight.n_records - len(refused_ids)
        LOGGER.info(
            "%s",
            progress_line(
                flight.stream,
                records=flight.n_records,
                batches=flight.n_batches,
                requests=len(flight.requests),
                refused=len(refused_ids),
                stats=self.client.stats,
                held_back_s=self.held_back_s(),
            ),
        )
        if flight.held_state is not None and self.on_state is not None:
            self.on_state(flight.held_state)

    def _named(self, stream: str, item: Item) -> str:
        """The record as its stream's converter names it (stream and key)."""
        describe = self.describers.get(stream)
        return describe(item.record) if describe is not None else repr(stream)

    def held_back_s(self) -> float:
        """Wall-clock seconds requests waited for pacing or rate limits (0 in a dry run)."""
        client = self.__dict__.get("client")
        return client.pacer.held_back_s if isinstance(client, EventsApiClient) else 0.0

    def report(self) -> None:
        """Log the run's summary, what it ignored, and what it repaired."""
        client = self.__dict__.get("client")
        stats = client.stats if client is not None else None
        LOGGER.info(
            "%s",
            summary_line(
                records=self.delivered,
                destination=client.describe() if client is not None else self.settings.base_url,
                seconds=time.monotonic() - self._started,
                stats=stats,
                held_back_s=self.held_back_s(),
                invalid=self.invalid.count,
                policy=self.settings.on_invalid_record,
            ),
        )
        self.ignored.report()
        for what, count in sorted(self.tally.items()):
            LOGGER.warning("Changed or left out to fit mParticle: %d %s", count, what)

    def close(self) -> None:
        """Close connections and the dead-letter file."""
        self.overlap.close()
        client = self.__dict__.get("client")
        if client is not None:
            client.close()
        self.invalid.close()


def _whole_id(item: Item) -> int:
    """One number per record, for each part of it too (see `Item.part`)."""
    return id(item.origin or item)
