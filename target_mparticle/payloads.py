"""Records to inbound Events API batches: pure functions, no I/O.

Three record shapes are understood:

* records following a ``mappings`` entry (a users table, an orders stream);
* tap-mparticle ``events`` records, one event with its batch's context;
* whole mParticle batches (an ``events`` array plus batch fields).

Every batch gets a ``source_request_id`` derived only from its content, so the
same input yields the same ids on a retry or on a re-run after a crash, and
mParticle drops the copies instead of counting them twice.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import typing as t
import uuid

import msgspec

from target_mparticle import schema_rules as rules
from target_mparticle.values import (
    Tally,
    event_attributes,
    to_attribute_string,
    to_bool,
    to_epoch_ms,
    to_int,
    to_number,
    truncate,
    user_attributes,
)

if t.TYPE_CHECKING:
    from target_mparticle.mapping import StreamMapping

_HASH_ENCODER = msgspec.json.Encoder(order="sorted", decimal_format="number")
_BODY_ENCODER = msgspec.json.Encoder(decimal_format="number")
_DROP = object()
THIRTY_DAYS_MS = 30 * 24 * 3600 * 1000
SEVENTY_TWO_HOURS_MS = 72 * 3600 * 1000
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


class InvalidRecordError(ValueError):
    """A record that cannot become a batch mParticle would accept."""


@dataclasses.dataclass
class Item:
    """One record, converted: a batch shell plus the events it contributes.

    ``group`` is set for records that are single events of a larger user batch
    (tap-mparticle events); items sharing it are merged into one batch.
    """

    stream: str
    record: dict[str, t.Any]
    batch: dict[str, t.Any]
    events: list[dict[str, t.Any]]
    group: str | None
    request_id: str


@dataclasses.dataclass
class PreparedBatch:
    """A batch ready to send: its encoded body and where it came from."""

    source_request_id: str
    body: bytes
    historical: bool
    items: list[Item]
    n_events: int


def digest_id(*parts: object) -> str:
    """A UUID (version 5 layout) from a SHA-1 over canonical JSON of ``parts``."""
    digest = hashlib.sha1(_HASH_ENCODER.encode(parts), usedforsecurity=False).digest()
    return str(uuid.UUID(bytes=digest[:16], version=5))


def _public(record: t.Mapping[str, t.Any]) -> dict[str, t.Any]:
    """The record without Singer metadata, which varies from run to run."""
    return {k: v for k, v in record.items() if not k.startswith("_sdc_")}


def is_tap_event(stream: str, record: t.Mapping[str, t.Any]) -> bool:
    """Whether ``record`` looks like one tap-mparticle ``events`` record."""
    if "event_type" not in record or not isinstance(record.get("data"), dict):
        return False
    return stream == "events" or "user_identities" in record or "mpid" in record


def is_whole_batch(record: t.Mapping[str, t.Any]) -> bool:
    """Whether ``record`` is an mParticle batch (events array plus batch fields)."""
    if not isinstance(record.get("events"), list):
        return False
    return any(
        key in record
        for key in ("user_identities", "mpid", "environment", "device_info", "batch_id")
    )


# ---------------------------------------------------------------------------
# Cleaning mParticle data that came from an outbound copy
# ---------------------------------------------------------------------------


def _clean_value(key: str, value: object, tally: Tally) -> object:  # noqa: PLR0911, C901
    """Coerce one field to the type the inbound schema gives fields of that name."""
    if value is None:
        return _DROP
    if key in rules.INTEGER_FIELDS:
        number = to_int(value)
        return _DROP if number is None else number
    if key in rules.NUMBER_FIELDS:
        real = to_number(value)
        return _DROP if real is None else real
    if key in rules.BOOLEAN_FIELDS:
        flag = to_bool(value)
        return _DROP if flag is None else flag
    if key in rules.UUID_DATA_FIELDS:
        return value if isinstance(value, str) and rules.UUID_PATTERN.match(value) else _DROP
    if key in rules.STRICT_STRING_FIELDS:
        if isinstance(value, (dict, list)):
            return _DROP
        text = to_attribute_string(value)
        if key in {"event_name", "screen_name"}:
            text = truncate(text, rules.API_LIMIT_NAME, "event names truncated to 256", tally)
        return text
    if key in rules.SCALAR_MAP_FIELDS:
        if not isinstance(value, dict):
            return _DROP
        return event_attributes(value.items(), tally)
    if isinstance(value, dict):
        return _clean_object(value, tally)
    if isinstance(value, list):
        return [
            _clean_object(v, tally) if isinstance(v, dict) else _scalar(v)
            for v in value
            if v is not None
        ]
    return _scalar(value)


def _scalar(value: object) -> object:
    if isinstance(value, (str, bool, int, float)):
        return value
    real = to_number(value)
    return real if real is not None else to_attribute_string(value)


def _clean_object(data: t.Mapping[str, t.Any], tally: Tally) -> dict[str, t.Any]:
    out: dict[str, t.Any] = {}
    for key, value in data.items():
        cleaned = _clean_value(str(key), value, tally)
        if cleaned is not _DROP:
            out[str(key)] = cleaned
    return out


def clean_event(
    event_type: object,
    data: t.Mapping[str, t.Any],
    tally: Tally,
) -> dict[str, t.Any]:
    """An outbound event made acceptable to the inbound schema."""
    if event_type not in rules.EVENT_TYPES:
        msg = f"event_type {event_type!r} is not one the Events API accepts"
        raise InvalidRecordError(msg)
    clean = _clean_object(
        {k: v for k, v in data.items() if k not in rules.OUTBOUND_ONLY_DATA_FIELDS}, tally
    )
    if event_type == "custom_event":
        if clean.get("custom_event_type") not in rules.CUSTOM_EVENT_TYPES:
            tally["custom_event_type values outside the schema sent as 'other'"] += 1
            clean["custom_event_type"] = "other"
    elif event_type == "commerce_event":
        if "custom_event_type" in clean and (
            clean["custom_event_type"] not in rules.COMMERCE_EVENT_TYPES
        ):
            tally["commerce custom_event_type values outside the schema dropped"] += 1
            del clean["custom_event_type"]
    elif event_type == "screen_view" and "screen_name" not in clean and "event_name" in clean:
        clean["screen_name"] = clean["event_name"]
    elif event_type == "user_identity_change":
        _fix_identity_change(clean)
    missing = [f for f in rules.REQUIRED_DATA_FIELDS.get(str(event_type), ()) if f not in clean]
    if missing:
        msg = f"{event_type} event lacks required data field(s) {', '.join(missing)}"
        raise InvalidRecordError(msg)
    return {"event_type": event_type, "data": clean}


_IDENTITY_CHANGE_KEYS = ("identity_type", "identity", "timestamp_unixtime_ms", "created_this_batch")


def _fix_identity_change(clean: dict[str, t.Any]) -> None:
    for side in ("new", "old"):
        if side in clean:
            fixed = _identity_change_side(clean[side], clean)
            if fixed is None:
                del clean[side]
            else:
                clean[side] = fixed


def _identity_change_side(side: object, data: dict[str, t.Any]) -> dict[str, t.Any] | None:
    """One side of an identity change, as the schema's UserIdentity wants it.

    Outbound copies leave out the side's timestamp, which inbound requires; the
    event's own time is the moment the identity changed.
    """
    if not isinstance(side, dict) or side.get("identity_type") not in rules.USER_IDENTITY_TYPES:
        return None
    out = {k: side[k] for k in _IDENTITY_CHANGE_KEYS if side.get(k) is not None}
    if "timestamp_unixtime_ms" not in out and "timestamp_unixtime_ms" in data:
        out["timestamp_unixtime_ms"] = data["timestamp_unixtime_ms"]
    if "identity" not in out or "timestamp_unixtime_ms" not in out:
        return None
    return out


def clean_identities(raw: object, tally: Tally) -> dict[str, str]:
    """User identities as the inbound object, from an object or the outbound array."""
    pairs: list[tuple[object, object]] = []
    if isinstance(raw, dict):
        pairs = list(raw.items())
    elif isinstance(raw, list):
        pairs = [
            (entry.get("identity_type"), entry.get("identity"))
            for entry in raw
            if isinstance(entry, dict)
        ]
    out: dict[str, str] = {}
    for identity_type, value in pairs:
        if value is None or value == "":
            continue
        if identity_type not in rules.USER_IDENTITY_TYPES:
            tally[f"identities of unknown type {identity_type!r} dropped"] += 1
            continue
        out[str(identity_type)] = to_attribute_string(value)
    return out


def clean_device_info(raw: object, tally: Tally) -> dict[str, t.Any]:
    """device_info restricted to what the schema allows (it forbids extra keys)."""
    if not isinstance(raw, dict):
        return {}
    out: dict[str, t.Any] = {}
    for key, value in raw.items():
        if key not in rules.DEVICE_INFO_FIELDS or value is None or value == "":
            continue
        if key in rules.UUID_DEVICE_FIELDS:
            if isinstance(value, str) and rules.UUID_PATTERN.match(value):
                out[key] = value
            else:
                tally[f"{key} values that are not UUIDs dropped"] += 1
            continue
        allowed = rules.DEVICE_INFO_ENUMS.get(key)
        if allowed is not None:
            if value in allowed:
                out[key] = value
            continue
        cleaned = _clean_value(key, value, tally)
        if cleaned is not _DROP and not isinstance(cleaned, (dict, list)):
            out[key] = cleaned
    return out


def clean_application_info(raw: object, tally: Tally) -> dict[str, t.Any]:
    """application_info restricted to the schema's keys and its ``os`` values."""
    if not isinstance(raw, dict):
        return {}
    out: dict[str, t.Any] = {}
    for key, value in raw.items():
        if key not in rules.APPLICATION_INFO_FIELDS or value is None:
            continue
        if key == "os":
            if value in rules.APPLICATION_OS_VALUES:
                out[key] = value
        elif key == "apple_search_ads_attributes":
            if isinstance(value, dict):
                out[key] = {
                    str(k): event_attributes(v.items(), tally)
                    for k, v in value.items()
                    if isinstance(v, dict)
                }
        elif not isinstance(value, (dict, list)):
            out[key] = to_attribute_string(value)
    return out


def _clean_user_attributes(raw: object, tally: Tally) -> dict[str, str | list[str]]:
    return user_attributes(raw.items(), tally) if isinstance(raw, dict) else {}


def _with_fields(batch: dict[str, t.Any], **fields: object) -> dict[str, t.Any]:
    """Add only the fields that hold something: empty objects are noise."""
    batch.update({k: v for k, v in fields.items() if v is not None and v not in ({}, [])})
    return batch


# ---------------------------------------------------------------------------
# Converters
# ---------------------------------------------------------------------------


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

    def describe(self, record: t.Mapping[str, t.Any]) -> str:
        """Name a record by stream and key for error messages and dead letters."""
        if self.key_properties:
            key = {k: record.get(k) for k in self.key_properties}
        elif "_sdc_source_file" in record:
            key = {
                k: record.get(k)
                for k in ("_sdc_source_file", "_sdc_source_lineno", "_sdc_event_index")
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

    # -- tap-mparticle events -------------------------------------------------

    def _tap_event(self, record: dict[str, t.Any]) -> Item:
        tally = self.tally
        data = dict(record["data"])
        for field in ("source_message_id", "session_uuid", "timestamp_unixtime_ms"):
            if data.get(field) is None and record.get(field) is not None:
                data[field] = record[field]
        if "custom_attributes" not in data and record.get("custom_attributes"):
            data["custom_attributes"] = record["custom_attributes"]
        event = clean_event(record["event_type"], data, tally)
        line_key: tuple[t.Any, ...] | None = None
        if "_sdc_source_file" in record and "_sdc_source_lineno" in record:
            line_key = ("line", record["_sdc_source_file"], record["_sdc_source_lineno"])
        elif record.get("batch_id") is not None:
            line_key = ("batch", record["batch_id"])
        if line_key is not None and line_key == self._last_line:
            # Events of one batch line share its context: build the shell once.
            batch, group = self._last_shell
            return Item(self.stream, record, batch, [event], group, group)
        identities = clean_identities(record.get("user_identities"), tally)
        mpid = to_int(record.get("mpid"))
        batch = _with_fields(
            {"environment": self.environment},
            user_identities=identities,
            mpid=mpid,
            device_info=clean_device_info(record.get("device_info"), tally),
            application_info=clean_application_info(record.get("application_info"), tally),
            user_attributes=_clean_user_attributes(record.get("user_attributes"), tally),
        )
        if not identities and mpid is None and "device_info" not in batch:
            msg = "has no user identity, mpid or device identity"
            raise InvalidRecordError(msg)
        if line_key is not None:
            group = digest_id(*line_key)
            self._last_line, self._last_shell = line_key, (batch, group)
        else:
            group = digest_id("user", mpid, identities, batch.get("device_info"))
        return Item(self.stream, record, batch, [event], group, group)

    # -- whole batches --------------------------------------------------------

    def _whole_batch(self, record: dict[str, t.Any]) -> Item:
        tally = self.tally
        events = [
            clean_event(e.get("event_type"), e.get("data") or {}, tally)
            for e in record["events"]
            if isinstance(e, dict)
        ]
        identities = clean_identities(record.get("user_identities"), tally)
        batch = _with_fields(
            {"environment": self.environment},
            user_identities=identities,
            mpid=to_int(record.get("mpid")),
            device_info=clean_device_info(record.get("device_info"), tally),
            application_info=clean_application_info(record.get("application_info"), tally),
            user_attributes=_clean_user_attributes(record.get("user_attributes"), tally),
        )
        for key in ("deleted_user_attributes", "context", "consent_state"):
            if record.get(key):
                batch[key] = record[key]
        for key in ("partner_identities", "integration_attributes"):
            if isinstance(record.get(key), dict) and record[key]:
                batch[key] = record[key]
        mp_deviceid = record.get("mp_deviceid")
        if isinstance(mp_deviceid, str) and rules.UUID_PATTERN.match(mp_deviceid):
            batch["mp_deviceid"] = mp_deviceid
        if isinstance(record.get("ip"), str) and record["ip"]:
            batch["ip"] = record["ip"]
        if not identities and "mpid" not in batch and "device_info" not in batch:
            msg = "batch has no user identity, mpid or device identity"
            raise InvalidRecordError(msg)
        given = record.get("source_request_id")
        request_id = str(given) if given else digest_id("whole", _public(record))
        return Item(self.stream, record, batch, events, None, request_id)

    # -- mapped records -------------------------------------------------------

    def _mapped(self, record: dict[str, t.Any]) -> Item:  # noqa: C901, PLR0912
        mapping = self.mapping
        tally = self.tally
        used: set[str] = set()

        identity_fields = mapping.identities
        if identity_fields is None:
            identity_fields = {
                name: name
                for name in record
                if name in rules.USER_IDENTITY_TYPES
                or name in rules.DEVICE_IDENTITY_TYPES
                or name == "mpid"
            }
        user_ids: dict[str, str] = {}
        device: dict[str, t.Any] = {}
        mpid: int | None = None
        for identity_type, field in identity_fields.items():
            used.add(field)
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
            elif identity_type in rules.DEVICE_IDENTITY_TYPES:
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

        used.update(
            f
            for f in (
                mapping.timestamp_field,
                mapping.event_name_field,
                mapping.source_message_id_field,
            )
            if f
        )

        attr_map = mapping.user_attributes
        if attr_map is None and mapping.kind == "user":
            attr_map = {
                name: name for name in record if name not in used and not name.startswith("_sdc_")
            }
        attrs: dict[str, str | list[str]] = {}
        if attr_map:
            used.update(attr_map.values())
            attrs = user_attributes(((n, record.get(f)) for n, f in attr_map.items()), tally)

        batch = _with_fields(
            {"environment": self.environment},
            user_identities=user_ids,
            mpid=mpid,
            device_info=device,
            user_attributes=attrs,
        )
        if mapping.kind == "user":
            request_id = digest_id("user", self.stream, _public(record))
            return Item(self.stream, record, batch, [], None, request_id)

        event = self._mapped_event(record, used)
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
            return {"event_type": "screen_view", "data": data}
        data["event_name"] = name
        if kind == "commerce_event":
            if mapping.custom_event_type:
                data["custom_event_type"] = mapping.custom_event_type
            return {"event_type": "commerce_event", "data": data}
        data["custom_event_type"] = mapping.custom_event_type or "other"
        return {"event_type": "custom_event", "data": data}

    def _commerce(self, record: dict[str, t.Any], data: dict[str, t.Any], used: set[str]) -> None:
        """Commerce fields come from record fields named as in the Events API."""
        tally = self.tally
        given_action = record.get("product_action")
        if isinstance(given_action, dict):
            used.add("product_action")
            action = _clean_object(given_action, tally)
        else:
            action = {}
            for field in _COMMERCE_ACTION_FIELDS:
                if record.get(field) is not None:
                    used.add(field)
                    action[field] = record[field]
            action = _clean_object(action, tally)
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
    clean = _clean_object(product, tally)
    for field in ("id", "name"):
        if field in clean and not isinstance(clean[field], str):
            clean[field] = to_attribute_string(clean[field])
    return clean


# ---------------------------------------------------------------------------
# Items to batches
# ---------------------------------------------------------------------------


def trailing_group(items: t.Sequence[Item]) -> int:
    """Index where the last run of same-group items starts (len if none).

    A drain triggered by a full sink can cut a user's events in two; holding the
    tail back keeps batch contents, and so their ids, the same on every run.
    """
    if not items or items[-1].group is None:
        return len(items)
    group = items[-1].group
    index = len(items)
    while index > 0 and items[index - 1].group == group:
        index -= 1
    return index


def _is_historical(events: t.Sequence[dict[str, t.Any]], mode: str, now_ms: int) -> bool:
    if mode == "never" or not events:
        return False
    stamps = [e["data"].get("timestamp_unixtime_ms") for e in events]
    if mode == "always":
        if any(s is None or s > now_ms - SEVENTY_TWO_HOURS_MS for s in stamps):
            msg = (
                "historical is 'always' but an event has no timestamp or is less than "
                "72 hours old, which the historical endpoint does not process"
            )
            raise InvalidRecordError(msg)
        return True
    return all(s is not None and s < now_ms - THIRTY_DAYS_MS for s in stamps)


def now_ms() -> int:
    """Wall-clock milliseconds; a function so tests can travel in time."""
    return int(dt.datetime.now(tz=dt.timezone.utc).timestamp() * 1000)


def encode_batch(batch: dict[str, t.Any]) -> bytes:
    """JSON bytes of one batch, as they go on the wire."""
    return _BODY_ENCODER.encode(batch)


def _pieces(
    shell: dict[str, t.Any], events: list[dict[str, t.Any]]
) -> t.Iterator[list[dict[str, t.Any]]]:
    """Split events so each batch holds at most 100 and stays under the byte cap."""
    if not events:
        yield []
        return
    start = 0
    while start < len(events):
        chunk = events[start : start + rules.MAX_EVENTS_PER_BATCH]
        while len(chunk) > 1 and len(encode_batch({**shell, "events": chunk})) > (
            rules.MAX_BATCH_BYTES
        ):
            chunk = chunk[: len(chunk) // 2]
        yield chunk
        start += len(chunk)


def assemble(  # noqa: C901 - grouping, splitting and id rules read best together
    items: t.Sequence[Item],
    historical_mode: str,
    now: int,
) -> tuple[list[PreparedBatch], list[tuple[Item, str]]]:
    """Merge grouped items, split oversized batches, encode; return the rejects too."""
    groups: dict[str, list[Item]] = {}
    order: list[list[Item]] = []
    for item in items:
        if item.group is None:
            order.append([item])
            continue
        bucket = groups.get(item.group)
        if bucket is None:
            bucket = groups[item.group] = []
            order.append(bucket)
        bucket.append(item)

    prepared: list[PreparedBatch] = []
    rejected: list[tuple[Item, str]] = []
    for members in order:
        first = members[0]
        events = [e for m in members for e in m.events]
        try:
            historical = _is_historical(events, historical_mode, now)
        except InvalidRecordError as exc:
            rejected.extend((m, str(exc)) for m in members)
            continue
        pieces = list(_pieces(first.batch, events))
        for index, chunk in enumerate(pieces):
            if first.group is not None:
                ids = [e["data"].get("source_message_id") for e in chunk]
                request_id = digest_id("group", first.group, ids)
            elif len(pieces) == 1:
                request_id = first.request_id
            else:
                request_id = digest_id("part", first.request_id, index, len(pieces))
            batch = {**first.batch, "source_request_id": request_id}
            if chunk:
                batch["events"] = chunk
            body = encode_batch(batch)
            owners = members if first.group is None else _owners(members, chunk)
            if len(body) > rules.MAX_BATCH_BYTES:
                reason = f"batch is {len(body)} bytes, over the {rules.MAX_BATCH_BYTES} cap"
                rejected.extend((m, reason) for m in owners)
                continue
            prepared.append(PreparedBatch(request_id, body, historical, owners, len(chunk)))
    return prepared, rejected


def _owners(members: list[Item], chunk: list[dict[str, t.Any]]) -> list[Item]:
    ids = {id(e) for e in chunk}
    return [m for m in members if any(id(e) in ids for e in m.events)]
