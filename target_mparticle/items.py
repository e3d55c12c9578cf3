"""What a converter makes, and what every converter shares.

`Item` is one converted record (a batch shell plus its events), `digest_id` the
content-derived ids every batch and event gets, `BatchDefaults` what the settings give
every batch, and `ConverterBase` the state and helpers the converters of each record
shape (`convert`, `mapped`, `audience_rows`) share.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import typing as t
import uuid

import msgspec

from target_mparticle.mapping import DEFAULT_AUDIENCE_ATTRIBUTE
from target_mparticle.values import to_attribute_string

if t.TYPE_CHECKING:
    from target_mparticle.mapping import StreamMapping
    from target_mparticle.values import Tally

_HASH_ENCODER = msgspec.json.Encoder(order="sorted", decimal_format="number")
#: A hex digit with its top two bits set to 10 (the RFC 4122 variant).
_VARIANT = {digit: "89ab"[int(digit, 16) & 3] for digit in "0123456789abcdef"}


@dataclasses.dataclass(slots=True)
class Item:
    """One record, converted: a batch shell plus the events it contributes.

    ``group`` is set for records of one original batch line (tap-mparticle events
    and batches); items sharing it are merged into one batch. ``refused`` holds the
    events of a whole batch that could not be made valid, each with its reason, to
    be handled alone by ``on_invalid_record`` while the rest is sent.
    """

    stream: str
    record: dict[str, t.Any]
    batch: dict[str, t.Any]
    events: list[dict[str, t.Any]]
    group: str | None
    request_id: str
    refused: list[tuple[dict[str, t.Any], str]] = dataclasses.field(default_factory=list)
    #: For a part of a record split over several batches: the whole record's item.
    origin: Item | None = None
    #: A mapped `kind: user` row (`UserRow`): folded with the same user's other rows
    #: of a drain (`assemble`). Whole batches keep their own ids and are never folded.
    user_row: t.ClassVar[bool] = False

    def part(self, events: list[dict[str, t.Any]]) -> Item:
        """This record restricted to some of its events (what one batch of it holds).

        A record split over batches is refused batch by batch: each refusal names
        only its own events, and so no event is dead-lettered twice or after it
        was sent.
        """
        if len(events) == len(self.events):
            return self
        record = {**self.record, "events": events}
        return dataclasses.replace(self, record=record, events=events, origin=self)


class UserRow(Item):
    """The item of a mapped `kind: user` row (a class, not a field: built per record)."""

    __slots__ = ()
    user_row: t.ClassVar[bool] = True


def digest_id(*parts: object) -> str:
    """A UUID (version 5 layout) from a SHA-1 over canonical JSON of ``parts``.

    The version nibble becomes 5 and the variant bits 10, as `uuid.uuid5` sets them,
    written straight into the hex digest (a `uuid.UUID` per id was a tenth of a record).
    """
    h = hashlib.sha1(_HASH_ENCODER.encode(parts), usedforsecurity=False).hexdigest()
    return f"{h[:8]}-{h[8:12]}-5{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:32]}"


def environment_tag(environment: str) -> str:
    """The environment in an id: one letter (`d`, `p`), so the hashed text grows little.

    mParticle keeps `source_request_id`s per API key, not per environment: without it,
    rows sent to production after a development run would be dropped there as copies.
    """
    return environment[:1]


class UpdateIds:
    """`source_request_id`s for user updates: one per record and run, not from content.

    mParticle drops a batch whose id it saw in the last 30 to 60 days. A user update
    applied twice changes nothing, but one that takes a row back to an earlier state
    (plan free, pro, free again; consent given, withdrawn, given) would carry the id of
    that earlier update and be dropped, leaving the profile in the middle state. So an
    update's id is a random UUID prefix, drawn once, plus a serial number.
    """

    def __init__(self) -> None:
        """Draw this converter's prefix: the first 24 characters of a random UUID."""
        self._prefix = str(uuid.uuid4())[:24]
        self._serial = itertools.count()

    def next(self) -> str:
        """The next id: unique within the run, and across runs by its prefix."""
        return f"{self._prefix}{next(self._serial):012x}"


def public(record: t.Mapping[str, t.Any]) -> dict[str, t.Any]:
    """The record without Singer metadata, which varies from run to run."""
    return {k: v for k, v in record.items() if not k.startswith("_sdc_")}


def with_fields(batch: dict[str, t.Any], **fields: object) -> dict[str, t.Any]:
    """Add only the fields that hold something: empty objects are noise."""
    batch.update({k: v for k, v in fields.items() if v is not None and v not in ({}, [])})
    return batch


@dataclasses.dataclass(frozen=True)
class BatchDefaults:
    """What every batch gets from the settings unless the record or its mapping says more."""

    environment: str = "development"
    data_plan_id: str | None = None
    data_plan_version: int | None = None
    audience_attribute_name: str = DEFAULT_AUDIENCE_ATTRIBUTE


class ConverterBase:
    """The stream, mapping and defaults every record shape's conversion reads."""

    def __init__(
        self,
        stream: str,
        key_properties: t.Sequence[str],
        mapping: StreamMapping,
        defaults: BatchDefaults,
        tally: Tally,
    ) -> None:
        """Bind the stream's mapping and key so per-record work stays small."""
        self.stream = stream
        self.key_properties = list(key_properties)
        self.mapping = mapping
        self.environment = defaults.environment
        self.data_plan = (defaults.data_plan_id, defaults.data_plan_version)
        self.audience_attribute_name = (
            mapping.audience_attribute_name or defaults.audience_attribute_name
        )
        #: What the ids of mapped records and audience rows are scoped by, besides the
        #: environment: what turns a record into its batch. A mapping fixed and re-run
        #: gives new ids, so mParticle does not drop the corrected batches as copies.
        self.id_scope = (
            environment_tag(self.environment)
            + digest_id(mapping.scope_text(), self.data_plan, self.audience_attribute_name)[:8]
        )
        self.tally = tally
        #: `context.data_plan` for batches that name no plan of their own (replays).
        self.plan_context = self.data_plan_context()
        self.update_ids = UpdateIds()
        self._last_line: tuple[t.Any, ...] | None = None
        self._last_shell: tuple[dict[str, t.Any], str] = ({}, "")

    def describe(self, record: t.Mapping[str, t.Any]) -> str:
        """Name a record by stream and key for error messages and dead letters."""
        if self.key_properties:
            key = {k: record.get(k) for k in self.key_properties}
        elif "_sdc_source_file" in record:
            key = {
                k: record.get(k)
                for k in (
                    "_sdc_source_file",
                    "_sdc_source_lineno",
                    "_sdc_batch_index",
                    "_sdc_event_index",
                )
                if k in record
            }
        else:
            key = {"record": digest_id(public(record))}
        return f"stream {self.stream!r} record {to_attribute_string(key)}"

    def data_plan_context(self) -> dict[str, t.Any] | None:
        """`context.data_plan` from the mapping, else the settings; None without a plan."""
        plan_id = self.mapping.data_plan_id or self.data_plan[0]
        if plan_id is None:
            return None
        version = self.mapping.data_plan_version if self.mapping.data_plan_id else self.data_plan[1]
        plan: dict[str, t.Any] = {"plan_id": plan_id}
        if version is not None:
            plan["plan_version"] = version
        return {"data_plan": plan}
