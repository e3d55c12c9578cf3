"""The sink: records in, requests out, and nothing reported done before 202."""

from __future__ import annotations

import functools
import typing as t

from singer_sdk.helpers._typing import get_datelike_property_type
from singer_sdk.sinks import BatchSink

from target_mparticle._compat import override
from target_mparticle.assemble import trailing_group
from target_mparticle.convert import Converter, Item
from target_mparticle.inbound import InvalidRecordError
from target_mparticle.schema_rules import MAX_BATCHES_PER_REQUEST
from target_mparticle.validation import compiled_or_default

if t.TYPE_CHECKING:
    from singer_sdk.helpers.conform import DatetimeErrorTreatmentEnum
    from singer_sdk.sinks.core import BaseJSONSchemaValidator

    from target_mparticle.target import TargetMParticle

DEFAULT_MAX_SIZE = 2_000
# A drain holds its records, their batches and encoded bodies in memory at once;
# this many records stays small (a few tens of MB at worst) on any machine.
HARD_MAX_SIZE = 10_000


class EventsSink(BatchSink):
    """One stream's records, converted on arrival and sent in drains."""

    MAX_SIZE_DEFAULT = DEFAULT_MAX_SIZE

    @override
    def __init__(
        self,
        target: TargetMParticle,
        stream_name: str,
        schema: dict[str, t.Any],
        key_properties: t.Sequence[str] | None,
    ) -> None:
        """Bind the stream's converter; carried-over events start empty."""
        super().__init__(target, stream_name, schema, key_properties)
        self.owner = target
        self.converter = Converter(
            stream_name,
            key_properties or [],
            target.mapping_for(stream_name),
            target.environment,
            target.tally,
        )
        self._carry: list[Item] = []
        self.sent_records = 0

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
        datelike = {k: v for k, v in properties.items() if get_datelike_property_type(v)}
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
    def _parse_timestamps_in_record(
        self,
        record: dict[str, t.Any],
        schema: dict[str, t.Any],
        treatment: DatetimeErrorTreatmentEnum,
    ) -> None:
        """The SDK's parsing, on the date-like fields only (found once per schema).

        The SDK looks up every field's schema for date-time-ness on every record;
        the outcome (datetime values, the same repairs and warnings) is the same.
        """
        known = self._known_fields
        if known is not None and not known.issuperset(record):
            for key in record.keys() - known:
                if record[key] is not None and key not in self._warned_missing_fields:
                    self.logger.warning("No schema for record field '%s'", key)
                    self._warned_missing_fields.add(key)
        datelike = self._datelike_schema if schema is self.schema else schema
        if datelike is None:
            return
        present = {k: record[k] for k in datelike["properties"] if k in record}
        if present:
            super()._parse_timestamps_in_record(present, datelike, treatment)
            record.update(present)

    @property
    @override
    def max_size(self) -> int:
        """Records per drain: the configured size, never beyond what a drain can hold.

        Never below one full request either, so a drain is worth its round trip.
        """
        configured = super().max_size
        return max(MAX_BATCHES_PER_REQUEST, min(configured, HARD_MAX_SIZE))

    @property
    @override
    def current_size(self) -> int:
        """Held-back events count too, so the final drain still sends them."""
        return super().current_size + len(self._carry)

    @override
    def process_record(self, record: dict[str, t.Any], context: dict[str, t.Any]) -> None:
        """Convert on arrival, so invalid records are handled before any STATE moves."""
        try:
            item = self.converter.convert(record)
        except InvalidRecordError as exc:
            self.owner.invalid.handle(self.stream_name, record, str(exc))
            return
        for alone, reason in item.refused:
            # One event of a whole batch: handled alone, the rest of its batch is sent.
            self.owner.invalid.handle(
                self.stream_name, alone, f"{self.converter.describe(record)}: {reason}"
            )
        context.setdefault("records", []).append(item)

    @override
    def process_batch(self, context: dict[str, t.Any]) -> None:
        """Deliver the drain; returns only once every item is accepted or dead-lettered."""
        full = self.current_size >= self.max_size  # counts the carry, as is_full does
        items: list[Item] = self._carry + context.get("records", [])
        self._carry = []
        if full:
            # Drained because full, not because of STATE or the end of input:
            # keep the last user's events together for the next drain.
            cut = trailing_group(items)
            if 0 < cut < len(items):
                items, self._carry = items[:cut], items[cut:]
        if not items:
            return
        self.owner.deliver(self.stream_name, items)
        self.sent_records += len(items)
