"""The sink: records in, requests out, and nothing reported done before 202.

Exactly-once at the edges. A tap-mparticle `events` record carries the line it
came from (`_sdc_source_file`, `_sdc_source_lineno`); that line's events form one
mParticle batch whose `source_request_id` depends on which events it holds. Sent
in two parts, or part now and whole on a re-run, mParticle would store some events
twice. So the events of the line still being read (the *open* line) are held back
from every drain, whatever triggered it (a full sink, the SDK's five-minute
max-age drain, a STATE, the end of input), until the line is known to be whole:
a record of another line follows it, or a STATE does (tap-mparticle writes STATE
only between files). A line that no STATE followed when the input ends is not
sent at all: the last STATE does not cover it, so the next run sends it whole.
Only a line of more than `HARD_MAX_SIZE` events, more than a drain can hold, is
sent in parts (with a warning).
"""

from __future__ import annotations

import functools
import logging
import typing as t

from singer_sdk.exceptions import InvalidJSONSchema, InvalidRecord
from singer_sdk.helpers._typing import get_datelike_property_type
from singer_sdk.sinks import BatchSink

from mparticle_facts.plugin_guards import one_line
from target_mparticle import sdk_hooks
from target_mparticle._compat import override
from target_mparticle.assemble import trailing_group
from target_mparticle.convert import TAP_MPARTICLE_STREAMS, Converter, Item
from target_mparticle.inbound import InvalidRecordError
from target_mparticle.mapping import StreamMapping
from target_mparticle.preflight import quoted
from target_mparticle.schema_rules import MAX_BATCHES_PER_REQUEST
from target_mparticle.validation import compiled_or_default

if t.TYPE_CHECKING:
    from singer_sdk import Target
    from singer_sdk.helpers.conform import DatetimeErrorTreatmentEnum
    from singer_sdk.sinks.core import BaseJSONSchemaValidator

    from target_mparticle.delivery import Delivery
    from target_mparticle.settings import TargetSettings


class SinkHost(t.Protocol):
    """What a sink needs from its target (the target module sits above this one)."""

    settings: TargetSettings
    delivery: Delivery

    def latest_state(self) -> object:
        """The last STATE received; a new object each time a new one arrives."""
        ...

    def takes_records(self, sink: EventsSink) -> bool:
        """Whether `sink` still takes its stream's records (a new SCHEMA retires it)."""
        ...


LOGGER = logging.getLogger("target-mparticle")
DEFAULT_MAX_SIZE = 2_000
# A drain holds its records, their batches and encoded bodies in memory at once;
# this many records stays small (a few tens of MB at worst) on any machine.
HARD_MAX_SIZE = 10_000


def drain_size(configured: int) -> int:
    """Records a drain holds for a `batch_size_rows` (the target warns when it differs).

    At least one full request, so a drain is worth its round trip; at most
    `HARD_MAX_SIZE`.
    """
    return max(MAX_BATCHES_PER_REQUEST, min(configured, HARD_MAX_SIZE))


class EventsSink(BatchSink):
    """One stream's records, converted on arrival and sent in drains."""

    MAX_SIZE_DEFAULT = DEFAULT_MAX_SIZE

    @override
    def __init__(
        self,
        target: Target,
        stream_name: str,
        schema: dict[str, t.Any],
        key_properties: t.Sequence[str] | None,
    ) -> None:
        """Bind the stream's converter; carried-over events start empty."""
        super().__init__(target, stream_name, schema, key_properties)
        # The SDK names the sink's logger after the stream as it is; a line break in
        # the name (it comes from the input) would start a forged line in each line
        # logged with it, since the log format prints the logger's name.
        self.logger = target.logger.getChild(one_line(stream_name))
        self.host = t.cast("SinkHost", target)
        self.delivery = self.host.delivery
        mapping = self.host.settings.mapping_for(stream_name)
        self.converter = Converter(
            stream_name,
            key_properties or [],
            mapping,
            self.host.settings.batch_defaults,
            self.delivery.tally,
        )
        self._carry: list[Item] = []
        self.sent_records = 0
        # The open line: its key, how many of its events are pending, and the STATE
        # (the target's latest, by identity) seen when its last record arrived.
        self._open_line: tuple[t.Any, t.Any] | None = None
        self._open_line_size = 0
        self._state_at_last_record: object = None
        #: Why the stream's SCHEMA refused the record being processed, if it did.
        self._refusal: str | None = None
        # The "*" mapping does not apply to tap-mparticle's own streams, which are
        # replayed whatever it says: its fields are not looked for there.
        watched = (
            mapping
            if mapping.explicit or stream_name not in TAP_MPARTICLE_STREAMS
            else StreamMapping()
        )
        self.delivery.ignored.schema_arrived(stream_name, schema, watched)
        #: Whether the mapping names fields whose absence `record_seen` counts.
        self._watches_fields = bool(watched.fields())
        self.delivery.describers[stream_name] = self.converter.describe

    @override
    def start_drain(self) -> dict[str, t.Any]:
        """The SDK's, counted as delivering from here until `mark_drained`.

        This takes the records out of the sink before `Delivery.deliver` counts them:
        a SIGTERM landing between the two found nothing pending, wrote the STATE that
        covers them and exited 0, and they were never sent.
        """
        self.delivery.delivering += 1
        return super().start_drain()

    @override
    def mark_drained(self) -> None:
        """The SDK's; the drain is no longer counted as delivering."""
        super().mark_drained()
        self.delivery.delivering -= 1

    @override
    def get_validator(self) -> BaseJSONSchemaValidator | None:
        """The compiled validator (see validation.py); None with validate_records off."""
        if not self.validate_schema:
            return None
        return compiled_or_default(self.schema, validate_formats=self.validate_field_string_format)

    @functools.cached_property
    def _datelike_schema(self) -> dict[str, t.Any] | None:
        """The schema's date, time and date-time properties alone (None if there are none)."""
        properties = self.schema.get("properties") or {}
        datelike = {
            k: v
            for k, v in properties.items()
            if isinstance(v, dict) and get_datelike_property_type(v)  # `true` is a schema too
        }
        if not datelike:
            return None
        return {"type": "object", "properties": datelike, "additionalProperties": True}

    @functools.cached_property
    def _known_fields(self) -> frozenset[str] | None:
        """Fields the schema names; None when it allows any (no warnings to give)."""
        if self.schema.get("additionalProperties", False):
            return None
        return frozenset(self.schema.get("properties") or ())

    @override
    def _validate_and_parse(self, record: dict[str, t.Any]) -> dict[str, t.Any]:
        """The SDK's checks, but a record its stream's SCHEMA refuses is an invalid record.

        The SDK logs a traceback and stops the run, whatever `on_invalid_record` says
        (or, for a date-time it cannot read, raises a bare ValueError).
        Here the refusal is kept for `process_record`, which hands the record to
        `on_invalid_record` like one mParticle would refuse: one line and exit 1
        (`fail`), counted (`skip`) or written with its reason (`dead_letter`).
        """
        self._refusal = None
        if self._validator is not None:
            try:
                self._validator.validate(record)
            except InvalidRecord as exc:
                self._refusal = f"does not match its stream's SCHEMA: {exc.error_message}"
                return record
            except ArithmeticError:
                # A number only a Decimal holds (`1e400`, see preflight) divided by a
                # float `multipleOf`: the value cannot be checked, the schema is fine.
                self._refusal = (
                    "does not match its stream's SCHEMA: a number too large for its "
                    "checks (multipleOf)"
                )
                return record
            except Exception as exc:  # noqa: BLE001 - any other failure is the schema's
                # e.g. a `$ref` that leads nowhere, found by jsonschema only when used.
                msg = f"the stream's schema cannot check records: {exc}"
                raise InvalidJSONSchema(msg) from None
        if self._datelike_schema is None:
            # Nothing to parse and no field to warn about: the usual record, no calls.
            known = self._known_fields
            if known is None or known.issuperset(record):
                return record
        try:
            self._parse_timestamps_in_record(
                record=record, schema=self.schema, treatment=self.datetime_error_treatment
            )
        except ValueError as exc:  # a date-time the SDK cannot read, with treatment ERROR
            self._refusal = f"does not match its stream's SCHEMA: {exc}"
        return record

    @override
    def _parse_timestamps_in_record(
        self,
        record: dict[str, t.Any],
        schema: dict[str, t.Any],
        treatment: DatetimeErrorTreatmentEnum,
    ) -> None:
        """The SDK's parsing, on the date-like fields only (found once per schema).

        The SDK looks up every field's schema for date-time-ness on every record;
        the outcome (datetime values, the same repairs and warnings) is the same, but a
        field without a schema is named by its first 80 characters: a name is input too.
        """
        known = self._known_fields
        if known is not None and not known.issuperset(record):
            for key in record.keys() - known:
                if record[key] is not None and key not in self._warned_missing_fields:
                    self.logger.warning("No schema for record field %s", quoted(key))
                    self._warned_missing_fields.add(key)
        datelike = self._datelike_schema if schema is self.schema else schema
        if datelike is None:
            return
        present = {k: record[k] for k in datelike["properties"] if k in record}
        if present:
            try:
                super()._parse_timestamps_in_record(present, datelike, treatment)
            except TypeError:
                # A value that is not text: the SDK's parser raises TypeError past its
                # error treatment. Name the field, as it names one it cannot read.
                bad = [k for k, v in present.items() if v is not None and type(v) is not str]
                if not bad:
                    raise
                name = bad[0]
                msg = f"Could not parse value {quoted(present[name])} for field {name!r}: not text"
                raise ValueError(msg) from None
            record.update(present)

    @functools.cached_property
    @override
    def max_size(self) -> int:
        """Records per drain: the configured size, never beyond what a drain can hold.

        Never below one full request either, so a drain is worth its round trip.
        Worked out once: `batch_size_rows` is a setting, read when the sink starts,
        and `is_full` asks for this on every record.
        """
        return drain_size(super().max_size)

    @property
    @override
    def current_size(self) -> int:
        """Held-back events count too, so the final drain still sends them."""
        return super().current_size + len(self._carry)

    @property
    @override
    def is_full(self) -> bool:
        """Full, unless everything pending is the open line (which must stay whole)."""
        size = self._batch_records_read + len(self._carry)  # current_size, without 2 calls
        if size < self.max_size:
            return False  # the usual answer: HARD_MAX_SIZE is never below max_size
        if size == self._open_line_size and self._line_open():
            return size >= HARD_MAX_SIZE
        return size >= self.max_size

    @override
    def process_record(self, record: dict[str, t.Any], context: dict[str, t.Any]) -> None:
        """Convert on arrival, so invalid records are handled before any STATE moves."""
        line = line_of(record)
        if line is None or line != self._open_line:
            self._open_line, self._open_line_size = line, 0
        if line is not None:
            # Only an open line asks whether a STATE came since its last record.
            self._state_at_last_record = self.host.latest_state()
        if self._watches_fields:
            self.delivery.ignored.record_seen(self.stream_name, record)
        refusal, self._refusal = self._refusal, None
        if refusal is not None:
            reason = f"{self.converter.describe(record)}: {refusal}"
            self.delivery.invalid.handle(self.stream_name, record, reason)
            return
        try:
            item = self.converter.convert(record)
        except InvalidRecordError as exc:
            self.delivery.invalid.handle(self.stream_name, record, str(exc))
            return
        for alone, reason in item.refused:
            # One event of a whole batch: handled alone, the rest of its batch is sent.
            self.delivery.invalid.handle(
                self.stream_name, alone, f"{self.converter.describe(record)}: {reason}"
            )
        if line is not None:
            self._open_line_size += 1
        pending = context.get("records")
        if pending is None:
            pending = context["records"] = []
        pending.append(item)

    def _line_open(self) -> bool:
        """True while the last line read may still go on: no STATE has come since."""
        return (
            self._open_line is not None and self.host.latest_state() is self._state_at_last_record
        )

    def _sendable(self, items: list[Item], *, full: bool) -> int:
        """How many of `items` this drain sends; the rest are carried to the next."""
        cut = trailing_group(items)
        if cut >= len(items):
            return len(items)
        if not self.host.takes_records(self):
            # Retired by a changed SCHEMA: the SDK drains it once more and forgets it,
            # so a line held back here was never sent (the new sink has its rest).
            return len(items)
        if self._line_open() and line_of(items[-1].record) == self._open_line:
            if len(items) - cut < HARD_MAX_SIZE:
                return cut  # possibly 0: everything pending is the open line
            LOGGER.warning(
                "Stream %r: line %s has more than %d events, more than a drain holds; "
                "it is sent in parts",
                self.stream_name,
                self._open_line,
                HARD_MAX_SIZE,
            )
            return len(items)
        if full and cut > 0:
            # Drained because full, not because of STATE or the end of input:
            # keep the last user's events together for the next drain.
            return cut
        return len(items)

    @override
    def clean_up(self) -> None:
        """At the end of input, say which open line was not sent, and why."""
        if self._carry:
            LOGGER.warning(
                "Stream %r: %d events of line %s were not sent: no STATE followed them "
                "before the input ended, so the last STATE does not cover them and the "
                "next run sends the line whole",
                self.stream_name,
                len(self._carry),
                self._open_line,
            )
            self._carry = []
        super().clean_up()

    @override
    def process_batch(self, context: dict[str, t.Any]) -> None:
        """Deliver the drain; returns only once every item is accepted or dead-lettered."""
        sdk_hooks.log_record_count(self)
        full = self.current_size >= self.max_size  # counts the carry, as is_full does
        items: list[Item] = self._carry + context.get("records", [])
        cut = self._sendable(items, full=full)
        items, self._carry = items[:cut], items[cut:]
        if not items:
            return
        self.delivery.deliver(self.stream_name, items)
        self.sent_records += len(items)


def line_of(record: t.Mapping[str, t.Any]) -> tuple[t.Any, t.Any] | None:
    """The tap-mparticle events line a record came from, or None for other records.

    Args:
        record: A record as the tap wrote it.

    Returns:
        `(_sdc_source_file, _sdc_source_lineno)` for an event record.
    """
    if "_sdc_event_index" not in record:
        return None
    file, lineno = record.get("_sdc_source_file"), record.get("_sdc_source_lineno")
    if file is None or lineno is None:
        return None
    return file, lineno
