"""Records to inbound Events API items: one converter per stream, no I/O.

Three record shapes are understood:

* records following a ``mappings`` entry (a users table, an orders stream);
* tap-mparticle ``events`` records, one event with its batch's context;
* whole mParticle batches: tap-mparticle ``batches`` records, or batches another
  producer wrote (an ``events`` array and/or ``user_identities`` plus batch fields;
  one with no ``events`` is a user update).

The events of one original batch line, whichever of the two tap streams they come
from, get the same group id (from the file, line and position in the line), so
`assemble` derives the same ``source_request_id``s for both, and a replay that
selects both streams sends every event once.
"""

from __future__ import annotations

import dataclasses
import hashlib
import typing as t

import msgspec

from mparticle_facts.identities import DEVICE_IDENTITIES
from mparticle_facts.numbers import to_int
from target_mparticle import schema_rules as rules
from target_mparticle.clean import (
    clean_application_info,
    clean_device_info,
    clean_event,
    clean_identities,
    clean_object,
    clean_user_attributes,
    environment_of,
    replayed_fields,
)
from target_mparticle.inbound import InvalidRecordError, fit_event, fit_shell
from target_mparticle.mapping import shape_of
from target_mparticle.values import (
    Tally,
    event_attributes,
    to_attribute_string,
    to_epoch_ms,
    truncate,
    user_attributes,
)

if t.TYPE_CHECKING:
    from target_mparticle.mapping import Shape, StreamMapping

_HASH_ENCODER = msgspec.json.Encoder(order="sorted", decimal_format="number")
_COMMERCE_ACTION_FIELDS = (
    "transaction_id",
    "affiliation",
    "total_amount",
    "tax_amount",
    "shipping_amount",
    "coupon_code",
    "checkout_step",
    "products",
)


@dataclasses.dataclass
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


def digest_id(*parts: object) -> str:
    """A UUID (version 5 layout) from a SHA-1 over canonical JSON of ``parts``."""
    digest = bytearray(
        hashlib.sha1(_HASH_ENCODER.encode(parts), usedforsecurity=False).digest()[:16]
    )
    digest[6] = (digest[6] & 0x0F) | 0x50
    digest[8] = (digest[8] & 0x3F) | 0x80
    text = digest.hex()
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def _public(record: t.Mapping[str, t.Any]) -> dict[str, t.Any]:
    """The record without Singer metadata, which varies from run to run."""
    return {k: v for k, v in record.items() if not k.startswith("_sdc_")}


def is_tap_event(stream: str, record: t.Mapping[str, t.Any]) -> bool:
    """Whether ``record`` looks like one tap-mparticle ``events`` record."""
    if "event_type" not in record or not isinstance(record.get("data"), dict):
        return False
    return stream == "events" or "user_identities" in record or "mpid" in record


def is_whole_batch(record: t.Mapping[str, t.Any]) -> bool:
    """Whether ``record`` is an mParticle batch: events and/or identities plus batch fields."""
    if isinstance(record.get("events"), list):
        return True
    return isinstance(record.get("user_identities"), (dict, list)) and "event_type" not in record


def line_group(record: t.Mapping[str, t.Any]) -> str | None:
    """The group of a record read from one batch of a tap-mparticle file, else None.

    Both tap streams carry the file, the line and the batch's position in the line
    (0 where the tap predates `_sdc_batch_index`).
    """
    if "_sdc_source_file" not in record or "_sdc_source_lineno" not in record:
        return None
    return digest_id(
        "line",
        record["_sdc_source_file"],
        record["_sdc_source_lineno"],
        record.get("_sdc_batch_index") or 0,
    )


def _with_fields(batch: dict[str, t.Any], **fields: object) -> dict[str, t.Any]:
    """Add only the fields that hold something: empty objects are noise."""
    batch.update({k: v for k, v in fields.items() if v is not None and v not in ({}, [])})
    return batch


class Converter:
    """Turns the records of one stream into :class:`Item` objects."""

    def __init__(
        self,
        stream: str,
        key_properties: t.Sequence[str],
        mapping: StreamMapping,
        environment: str,
        tally: Tally,
    ) -> None:
        """Bind the stream's mapping and key so per-record work stays small."""
        self.stream = stream
        self.key_properties = list(key_properties)
        self.mapping = mapping
        self.environment = environment
        self.tally = tally
        self._last_line: tuple[t.Any, ...] | None = None
        self._last_shell: tuple[dict[str, t.Any], str] = ({}, "")
        self._shapes: dict[tuple[str, ...], Shape] = {}
        self._last_where: tuple[tuple[t.Any, ...] | None, str | None] = (None, None)

    def _line_group(self, record: t.Mapping[str, t.Any]) -> str | None:
        """`line_group`, hashed once per line: a line's events arrive one after another."""
        lineno = record.get("_sdc_source_lineno")
        # The type too: 1 and 1.0 are equal keys but hash to different groups.
        where = (
            record.get("_sdc_source_file"),
            lineno,
            type(lineno),
            record.get("_sdc_batch_index"),
        )
        if where != self._last_where[0]:
            self._last_where = (where, line_group(record))
        return self._last_where[1]

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
            key = {"record": digest_id(_public(record))}
        return f"stream {self.stream!r} record {to_attribute_string(key)}"

    def convert(self, record: dict[str, t.Any]) -> Item:
        """Pick the record's shape and build its item; raises InvalidRecordError."""
        try:
            if not self.mapping.explicit:
                if is_tap_event(self.stream, record):
                    return self._tap_event(record)
                if is_whole_batch(record):
                    return self._whole_batch(record)
            return self._mapped(record)
        except InvalidRecordError as exc:
            msg = f"{self.describe(record)}: {exc}"
            raise InvalidRecordError(msg) from exc

    def _shell(self, record: t.Mapping[str, t.Any], *, replay: bool) -> dict[str, t.Any]:
        """The batch fields of a replayed event's or batch's record, fitted to the schema."""
        tally = self.tally
        identities = clean_identities(record.get("user_identities"), tally)
        mpid = to_int(record.get("mpid"))
        if mpid is None:
            mpid = identities.mpid
        device = clean_device_info(record.get("device_info"), tally)
        for kind, value in identities.device.items():
            device.setdefault(kind, value)
        batch = _with_fields(
            {"environment": environment_of(record, self.environment)},
            user_identities=identities.user,
            mpid=mpid,
            device_info=device,
            application_info=clean_application_info(record.get("application_info"), tally),
            user_attributes=clean_user_attributes(record.get("user_attributes"), tally),
        )
        if replay:
            batch.update(replayed_fields(record, tally))
        fit_shell(batch, tally)
        if not identities.user and "mpid" not in batch and not batch.get("device_info"):
            msg = "has no user identity, mpid or device identity"
            raise InvalidRecordError(msg)
        return batch

    # -- tap-mparticle events -------------------------------------------------

    def _tap_event(self, record: dict[str, t.Any]) -> Item:
        data = dict(record["data"])
        for field in ("source_message_id", "session_uuid", "timestamp_unixtime_ms"):
            if data.get(field) is None and record.get(field) is not None:
                data[field] = record[field]
        if "custom_attributes" not in data and record.get("custom_attributes"):
            data["custom_attributes"] = record["custom_attributes"]
        event = clean_event(record["event_type"], data, self.tally)
        group = self._line_group(record)
        line_key = None if group is None else ("line", group)
        if line_key is None and record.get("batch_id") is not None:
            line_key = ("batch", record["batch_id"])
        if line_key is not None and line_key == self._last_line:
            # Events of one batch line share its context: build the shell once.
            batch, group = self._last_shell
            return Item(self.stream, record, batch, [event], group, group)
        batch = self._shell(record, replay=False)
        if group is None:
            group = (
                digest_id(*line_key)
                if line_key is not None
                else digest_id(
                    "user",
                    batch.get("mpid"),
                    batch.get("user_identities"),
                    batch.get("device_info"),
                )
            )
        if line_key is not None:
            self._last_line, self._last_shell = line_key, (batch, group)
        return Item(self.stream, record, batch, [event], group, group)

    # -- whole batches --------------------------------------------------------

    def _whole_batch(self, record: dict[str, t.Any]) -> Item:
        batch = self._shell(record, replay=True)
        events: list[dict[str, t.Any]] = []
        refused: list[tuple[dict[str, t.Any], str]] = []
        for index, raw in enumerate(record.get("events") or ()):
            if not isinstance(raw, dict):
                refused.append((self._alone(record, raw), f"event {index} is not an object"))
                continue
            try:
                events.append(clean_event(raw.get("event_type"), raw.get("data"), self.tally))
            except InvalidRecordError as exc:
                refused.append((self._alone(record, raw), f"event {index}: {exc}"))
        group = line_group(record)
        if group is not None:
            return Item(self.stream, record, batch, events, group, group, refused)
        given = record.get("source_request_id")
        request_id = str(given) if given else digest_id("whole", _public(record))
        return Item(self.stream, record, batch, events, None, request_id, refused)

    @staticmethod
    def _alone(record: t.Mapping[str, t.Any], event: object) -> dict[str, t.Any]:
        """A refused event with its batch context, as the dead letter keeps it."""
        return {**record, "events": [event]}

    # -- mapped records -------------------------------------------------------

    def _mapped(self, record: dict[str, t.Any]) -> Item:  # noqa: C901
        tally = self.tally
        shape = shape_of(self.mapping, record, self._shapes)
        identity_fields = shape.identity_fields
        user_ids: dict[str, str] = {}
        device: dict[str, t.Any] = {}
        mpid: int | None = None
        for identity_type, field in identity_fields.items():
            value = record.get(field)
            if value is None or value == "":
                continue
            if identity_type == "mpid":
                mpid = to_int(value)
                if mpid is None:
                    msg = f"mpid field {field!r} is not an integer"
                    raise InvalidRecordError(msg)
            elif identity_type in rules.UUID_DEVICE_FIELDS:
                text = to_attribute_string(value)
                if rules.UUID_PATTERN.match(text):
                    device[identity_type] = text
                else:
                    tally[f"{identity_type} values that are not UUIDs dropped"] += 1
            elif identity_type in DEVICE_IDENTITIES:
                device[identity_type] = to_attribute_string(value)
            else:
                user_ids[identity_type] = truncate(
                    to_attribute_string(value),
                    rules.API_LIMIT_VALUE,
                    "identity values truncated to 4096",
                    tally,
                )
        if not user_ids and not device and mpid is None:
            looked = ", ".join(sorted(identity_fields.values())) or "no identity-named field"
            msg = (
                f"has no identity (looked in: {looked}); name the stream's identity "
                "fields in mappings.<stream>.identities, or leave the stream out of the run"
            )
            raise InvalidRecordError(msg)

        attrs: dict[str, str | list[str]] = {}
        if shape.attr_map:
            attrs = user_attributes(((n, record.get(f)) for n, f in shape.attr_map.items()), tally)

        batch = _with_fields(
            {"environment": self.environment},
            user_identities=user_ids,
            mpid=mpid,
            device_info=device,
            user_attributes=attrs,
        )
        if self.mapping.kind == "user":
            public = _public(record) if shape.has_sdc else record
            request_id = digest_id("user", self.stream, public)
            return Item(self.stream, record, batch, [], None, request_id)

        event = self._mapped_event(record, set(shape.used))
        request_id = digest_id("event", self.stream, event["data"]["source_message_id"])
        return Item(self.stream, record, batch, [event], None, request_id)

    def _mapped_event(  # noqa: C901, PLR0912 - one branch per documented option
        self, record: dict[str, t.Any], used: set[str]
    ) -> dict[str, t.Any]:
        mapping = self.mapping
        tally = self.tally
        if mapping.event_name_field:
            raw_name = record.get(mapping.event_name_field)
            if raw_name is None or raw_name == "":
                msg = f"event name field {mapping.event_name_field!r} is empty"
                raise InvalidRecordError(msg)
            name = to_attribute_string(raw_name)
        else:
            name = mapping.event_name or self.stream
        name = truncate(name, rules.API_LIMIT_NAME, "event names truncated to 256", tally)

        data: dict[str, t.Any] = {}
        if mapping.source_message_id_field:
            given = record.get(mapping.source_message_id_field)
            if given is None or given == "":
                msg = f"source message id field {mapping.source_message_id_field!r} is empty"
                raise InvalidRecordError(msg)
            data["source_message_id"] = to_attribute_string(given)
        else:
            key = [record.get(k) for k in self.key_properties]
            data["source_message_id"] = digest_id(self.stream, key, _public(record))
        if mapping.timestamp_field:
            stamp = to_epoch_ms(record.get(mapping.timestamp_field))
            if stamp is None:
                msg = f"timestamp field {mapping.timestamp_field!r} holds no usable time"
                raise InvalidRecordError(msg)
            data["timestamp_unixtime_ms"] = stamp

        kind = mapping.kind
        if kind == "commerce_event":
            self._commerce(record, data, used)
        attr_map = mapping.event_attributes
        if attr_map is None:
            pairs: t.Iterable[tuple[str, object]] = (
                (k, v) for k, v in record.items() if k not in used and not k.startswith("_sdc_")
            )
        else:
            pairs = ((n, record.get(f)) for n, f in attr_map.items())
        attributes = event_attributes(pairs, tally)
        if attributes:
            data["custom_attributes"] = attributes

        if kind == "screen_view":
            data["screen_name"] = name
            return fit_event({"event_type": "screen_view", "data": data}, tally)
        data["event_name"] = name
        if kind == "commerce_event":
            if mapping.custom_event_type:
                data["custom_event_type"] = mapping.custom_event_type
            return fit_event({"event_type": "commerce_event", "data": data}, tally)
        data["custom_event_type"] = mapping.custom_event_type or "other"
        return fit_event({"event_type": "custom_event", "data": data}, tally)

    def _commerce(self, record: dict[str, t.Any], data: dict[str, t.Any], used: set[str]) -> None:
        """Commerce fields come from record fields named as in the Events API."""
        tally = self.tally
        given_action = record.get("product_action")
        if isinstance(given_action, dict):
            used.add("product_action")
            action = clean_object(given_action, tally)
        else:
            action = {}
            for field in _COMMERCE_ACTION_FIELDS:
                if record.get(field) is not None:
                    used.add(field)
                    action[field] = record[field]
            action = clean_object(action, tally)
            event_type = self.mapping.custom_event_type
            verb = given_action if isinstance(given_action, str) else None
            if verb is not None:
                used.add("product_action")
            action["action"] = verb or (
                event_type if event_type in rules.PRODUCT_ACTIONS else "purchase"
            )
        if action.get("action") not in rules.PRODUCT_ACTIONS:
            msg = f"product action {action.get('action')!r} is not one the Events API accepts"
            raise InvalidRecordError(msg)
        products = action.get("products")
        if isinstance(products, list):
            action["products"] = [_clean_product(p, tally) for p in products if isinstance(p, dict)]
        elif "products" in action:
            del action["products"]
        data["product_action"] = action
        currency = record.get("currency_code")
        if currency is not None:
            used.add("currency_code")
            data["currency_code"] = to_attribute_string(currency)


def _clean_product(product: dict[str, t.Any], tally: Tally) -> dict[str, t.Any]:
    clean = clean_object(product, tally)
    for field in ("id", "name"):
        if field in clean and not isinstance(clean[field], str):
            clean[field] = to_attribute_string(clean[field])
    return clean


# ---------------------------------------------------------------------------
