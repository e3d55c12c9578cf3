"""One outbound mParticle batch in: one record per event, or one record for the batch.

mParticle's S3 output writes the *outbound* JSON format: `user_identities` is an
array of `{identity_type, identity, timestamp_unixtime_ms}` objects and numbers may
be written as strings (`"timestamp_unixtime_ms": "1595542763908"`). Two shapes come
out of it:

- `explode_batch`: one flat record per event, the shape a warehouse wants for event
  analytics: the batch context copied onto every event, identities as an object keyed
  by type, the event's `data` kept whole, and the columns people filter and join on
  lifted out and typed.
- `batch_record`: the batch itself, every top-level field as written (typed where the
  schema can say so, `events` and `user_identities` as mParticle's arrays), so nothing
  a batch carries is lost, batches without events included.

A JSON object none of whose keys is a batch field (`{}` too) is not a batch, and
says so, rather than passing as an empty one.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from mparticle_facts.numbers import format_unix_ms, to_int

if TYPE_CHECKING:
    from collections.abc import Iterator

# Event types whose `data.event_name` is the event's name; a screen view names its screen.
_NAMED_EVENT_TYPES = frozenset({"custom_event", "commerce_event"})

#: Batch fields declared as integers (mParticle may write them as strings).
INTEGER_FIELDS = ("mpid", "batch_id", "timestamp_unixtime_ms", "origin_mpid", "schema_version")
#: Batch fields declared as strings.
STRING_FIELDS = (
    "environment",
    "source_request_id",
    "mp_deviceid",
    "ip",
    "sdk_version",
    "api_key",
    "partner_identity",
    "job_id",
    "message_type",
    "message_id",
    "unique_id",
)
#: Batch fields declared as objects.
OBJECT_FIELDS = (
    "user_attributes",
    "device_info",
    "application_info",
    "context",
    "consent_state",
    "partner_identities",
    "integration_attributes",
    "source_info",
    "attribution_info",
)
#: Batch fields declared as arrays.
ARRAY_FIELDS = ("events", "user_identities", "deleted_user_attributes", "api_keys")
#: Every top-level field the batches stream has a column for.
BATCH_FIELDS = frozenset(INTEGER_FIELDS + STRING_FIELDS + OBJECT_FIELDS + ARRAY_FIELDS)


class NotABatchError(ValueError):
    """A JSON document that is not an mParticle batch, or an event that is not an event."""


def identities_as_object(raw: Any) -> dict[str, Any]:  # noqa: ANN401  (array or object)
    """Turn outbound `[{identity_type, identity}]` into `{identity_type: identity}`.

    The inbound (object) shape is accepted as is, since the Raw Data Feed option
    writes that shape.

    Args:
        raw: The batch's `user_identities` value.

    Returns:
        A new dict; empty when the batch carries no identities.
    """
    if isinstance(raw, dict):
        return dict(raw)
    result: dict[str, Any] = {}
    if isinstance(raw, list):
        for item in raw:
            if isinstance(item, dict) and isinstance(item.get("identity_type"), str):
                result[item["identity_type"]] = item.get("identity")
    return result


def identities_as_array(raw: Any) -> list[Any]:  # noqa: ANN401  (array or object)
    """Keep outbound identities as mParticle's array; turn the inbound object into one.

    The array keeps each identity's own timestamp; an object (the Raw Data Feed's
    inbound shape) has none to keep, so it becomes `[{identity_type, identity}]`.

    Args:
        raw: The batch's `user_identities` value.

    Returns:
        The array (the same list object when it already was one).
    """
    if isinstance(raw, list):
        return raw
    if isinstance(raw, dict):
        return [{"identity_type": key, "identity": value} for key, value in raw.items()]
    return []


def check_batch(batch: Any) -> dict[str, Any]:  # noqa: ANN401  (any JSON value)
    """Make sure a decoded document is a batch before anything reads it.

    Args:
        batch: A decoded JSON document from a drop file.

    Returns:
        The batch, as a dict.

    Raises:
        NotABatchError: It is not an object, holds no batch field (`{}` included),
            or `events` is not an array.
    """
    if not isinstance(batch, dict):
        msg = f"not an mParticle batch (a JSON {type(batch).__name__}, not an object)"
        raise NotABatchError(msg)
    if not batch:
        # Only mParticle's bucket verification file holds `{}`, and it is skipped by
        # name; a `{}` line in a drop file is damage, not an empty batch.
        msg = "not an mParticle batch (an empty JSON object)"
        raise NotABatchError(msg)
    if BATCH_FIELDS.isdisjoint(batch):
        keys = ", ".join(sorted(map(str, batch))[:6])
        msg = f"not an mParticle batch (none of its keys is a batch field: {keys})"
        raise NotABatchError(msg)
    events = batch.get("events")
    if events is not None and not isinstance(events, list):
        msg = f"not an mParticle batch ('events' is a {type(events).__name__}, not an array)"
        raise NotABatchError(msg)
    return batch


def _object(value: Any) -> dict[str, Any]:  # noqa: ANN401
    return value if isinstance(value, dict) else {}


def explode_batch(batch: Any) -> Iterator[dict[str, Any] | NotABatchError]:  # noqa: ANN401
    """Yield one record per event of a batch, or an error in place of a broken event.

    An event that is not an object with a string `event_type` does not stop its
    siblings: the caller decides whether to fail or skip it, and the intact events
    around it are still yielded.

    Args:
        batch: A decoded JSON document from one line of a drop file.

    Yields:
        Event records (without the `_sdc_*` provenance columns), or a
        `NotABatchError` naming the broken event's index.

    Raises:
        NotABatchError: The document is not a batch at all.
    """
    events = check_batch(batch).get("events")
    if not events:
        return
    # The same line-level checks as the batches stream: a typed field holding
    # something else (an mpid that is no integer) is bad input for both streams.
    typed = typed_fields(batch)
    context = {
        "mpid": typed["mpid"],
        "batch_id": typed["batch_id"],
        "environment": typed["environment"],
        "user_identities": identities_as_object(batch.get("user_identities")),
        "user_attributes": _object(typed["user_attributes"]),
        "device_info": _object(typed["device_info"]),
        "application_info": _object(typed["application_info"]),
    }
    for index, event in enumerate(events):
        yield _event_record(index, event, context)


def _event_record(
    index: int,
    event: Any,  # noqa: ANN401  (any JSON value)
    context: dict[str, Any],
) -> dict[str, Any] | NotABatchError:
    if not isinstance(event, dict) or not isinstance(event.get("event_type"), str):
        return NotABatchError(f"event {index} has no string 'event_type'")
    event_type: str = event["event_type"]
    data = event.get("data")
    if data is None:
        data = {}
    elif not isinstance(data, dict):
        return NotABatchError(f"event {index} 'data' is not an object")
    raw_ts = data.get("timestamp_unixtime_ms")
    ts_ms = _event_millis(raw_ts)
    if ts_ms is None and raw_ts not in (None, ""):
        return NotABatchError(f"event {index} timestamp_unixtime_ms {raw_ts!r} is not an integer")
    try:
        timestamp = None if ts_ms is None else format_unix_ms(ts_ms)
    except (OverflowError, ValueError):  # beyond the years 1 to 9999
        return NotABatchError(
            f"event {index} timestamp_unixtime_ms {raw_ts!r} is outside the years 1 to 9999"
        )
    columns = _data_columns(index, event_type, data)
    if isinstance(columns, NotABatchError):
        return columns
    return {
        "event_type": event_type,
        "event_name": columns["event_name"],
        "timestamp": timestamp,
        "timestamp_unixtime_ms": ts_ms,
        "source_message_id": columns["source_message_id"],
        "session_uuid": columns["session_uuid"],
        **context,
        "custom_attributes": columns["custom_attributes"],
        "data": data,
        "_sdc_event_index": index,
    }


def _data_columns(
    index: int, event_type: str, data: dict[str, Any]
) -> dict[str, Any] | NotABatchError:
    """The columns lifted out of an event's `data`, or why one cannot be.

    A name or id written as a number is its text; an object or array is none, and
    Python's rendering of it (`{'a': 1}`) or a null in its place would change the
    data unsaid, so the event is bad input. Likewise `custom_attributes` that are
    no object. (`data` itself is kept whole either way.)
    """
    if event_type in _NAMED_EVENT_TYPES:
        name_field: str | None = "event_name"
    elif event_type == "screen_view":
        name_field = "screen_name"
    else:
        name_field = None
    fields = {"event_name": name_field, "source_message_id": "source_message_id"}
    fields["session_uuid"] = "session_uuid"
    columns: dict[str, Any] = {}
    for column, field in fields.items():
        value = None if field is None else data.get(field)
        if isinstance(value, (dict, list)):
            return NotABatchError(f"event {index} {field} is a JSON {_json_type(value)}, not text")
        columns[column] = _string_or_none(value)
    attributes = data.get("custom_attributes")
    if attributes is not None and not isinstance(attributes, dict):
        kind = _json_type(attributes)
        return NotABatchError(f"event {index} custom_attributes is a JSON {kind}, not an object")
    columns["custom_attributes"] = attributes or {}
    return columns


def _event_millis(value: Any) -> int | None:  # noqa: ANN401  (any JSON value)
    """An event's epoch milliseconds; a whole float too large to be exact still counts.

    `to_int` refuses a float beyond 2**53 (it cannot be an exact id), but no
    instant from year 1 to 9999 is that large: `1e20` is a timestamp out of range,
    and says so, rather than a missing one.
    """
    number = to_int(value)
    if number is None and isinstance(value, float) and math.isfinite(value):
        return int(value) if value.is_integer() else None
    return number


def typed_fields(batch: dict[str, Any]) -> dict[str, Any]:
    """The batch's integer, string and object fields, each checked against its type.

    Both streams call this on every batch, so a line is bad input for both or for
    neither.

    Args:
        batch: A batch (see `check_batch`).

    Returns:
        The fields by name: integers exact, strings as strings, objects as written
        (None where a field is absent).

    Raises:
        NotABatchError: A field holds a value of another type (an `mpid` that is
            no integer, `user_attributes` that are no object, ...), or
            `user_identities` are malformed (see `check_identities`).
    """
    record: dict[str, Any] = {}
    for name in INTEGER_FIELDS:
        value = batch.get(name)
        number = to_int(value)
        if number is None and value not in (None, ""):
            msg = f"batch field {name} is {value!r}, not an integer"
            raise NotABatchError(msg)
        record[name] = number
    for name in STRING_FIELDS:
        value = batch.get(name)
        if isinstance(value, (dict, list)):
            msg = f"batch field {name} is a JSON {type(value).__name__}, not a string"
            raise NotABatchError(msg)
        record[name] = _string_or_none(value)
    for name in OBJECT_FIELDS:
        value = batch.get(name)
        if value is not None and not isinstance(value, dict):
            msg = f"batch field {name} is a JSON {type(value).__name__}, not an object"
            raise NotABatchError(msg)
        record[name] = value
    check_identities(batch.get("user_identities"))
    return record


def check_identities(raw: Any) -> None:  # noqa: ANN401  (any JSON value)
    """Refuse `user_identities` that neither identity shape can hold without loss.

    The outbound array is `[{identity_type, identity, ...}]` and the Raw Data Feed's
    inbound object maps a type to a value (a JSON scalar, per mParticle's schema).
    Anything else (a string, an entry without a string `identity_type` or without
    an `identity`, an object as a value, one type given two different values) would
    be dropped or changed on its way to the `events` stream's identity object.

    Args:
        raw: The batch's `user_identities` value (None when absent).

    Raises:
        NotABatchError: The value is of neither shape, or an entry is incomplete.
    """
    if raw is None:
        return
    if isinstance(raw, dict):
        entries = [(key, value, f"user_identities.{key}") for key, value in raw.items()]
    elif isinstance(raw, list):
        entries = [_identity_entry(index, item) for index, item in enumerate(raw)]
    else:
        msg = f"batch field user_identities is a JSON {_json_type(raw)}, not an array"
        raise NotABatchError(msg)
    seen: dict[str, Any] = {}
    for kind, value, where in entries:
        if isinstance(value, (dict, list)):
            msg = f"batch field {where} is a JSON {_json_type(value)}, not text"
            raise NotABatchError(msg)
        if kind in seen and seen[kind] != value:
            msg = f"batch field user_identities gives {kind:.40} two different values"
            raise NotABatchError(msg)
        seen[kind] = value


def batch_record(batch: Any) -> dict[str, Any]:  # noqa: ANN401  (any JSON value)
    """Build the `batches` record of one batch: every top-level field, typed.

    Args:
        batch: A decoded JSON document from one line of a drop file.

    Returns:
        The record, without provenance columns. Fields the schema does not name
        are kept, as written, in `other_fields`.

    Raises:
        NotABatchError: The document is not a batch, or a typed field holds a value
            of another type (an `mpid` that is no integer, `user_attributes` that
            are no object, ...).
    """
    record = typed_fields(check_batch(batch))
    record["events"] = _array_of("events", batch.get("events"), dict)
    record["user_identities"] = (
        _array_of("user_identities", identities_as_array(batch["user_identities"]), dict)
        if "user_identities" in batch
        else None
    )
    for name in ("deleted_user_attributes", "api_keys"):
        record[name] = _array_of(name, batch.get(name), str)
    record["other_fields"] = {k: v for k, v in batch.items() if k not in BATCH_FIELDS}
    return record


def _array_of(name: str, value: Any, item_type: type) -> list[Any] | None:  # noqa: ANN401
    """Check an array field holds what its column declares, so the record validates."""
    if value is None:
        return None
    if not isinstance(value, list):
        msg = f"batch field {name} is a JSON {type(value).__name__}, not an array"
        raise NotABatchError(msg)
    for index, item in enumerate(value):
        if not isinstance(item, item_type):
            kind = "an object" if item_type is dict else "a string"
            msg = f"batch field {name}[{index}] is not {kind}"
            raise NotABatchError(msg)
    return value


def _identity_entry(index: int, item: Any) -> tuple[str, Any, str]:  # noqa: ANN401
    """One outbound identity as `(type, value, where)`; see `check_identities`."""
    where = f"user_identities[{index}]"
    if not isinstance(item, dict):
        msg = f"batch field {where} is a JSON {_json_type(item)}, not an object"
        raise NotABatchError(msg)
    kind = item.get("identity_type")
    if not isinstance(kind, str) or not kind:
        msg = f"batch field {where} has no identity_type string ({kind!r:.40})"
        raise NotABatchError(msg)
    if "identity" not in item:
        msg = f"batch field {where} ({kind:.40}) has no identity"
        raise NotABatchError(msg)
    return kind, item["identity"], f"{where}.identity"


def _json_type(value: Any) -> str:  # noqa: ANN401  (any JSON value)
    """The JSON name of a decoded value's type, for messages (`object`, not `dict`)."""
    names = {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}
    return names.get(type(value), "number")


def _string_or_none(value: Any) -> str | None:  # noqa: ANN401
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
