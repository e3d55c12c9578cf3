"""One outbound mParticle batch in, one flat record per event out.

mParticle's S3 output writes the *outbound* JSON format: `user_identities` is an
array of `{identity_type, identity}` objects and numbers may be written as strings
(`"timestamp_unixtime_ms": "1595542763908"`). The record shape here is what a
warehouse wants: the batch context copied onto every event, identities as an
object keyed by type, the event's `data` kept whole so nothing mParticle sent is
lost, and the few columns people filter and join on lifted out and typed.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterator

UTC = dt.timezone.utc
EPOCH = dt.datetime(1970, 1, 1, tzinfo=UTC)

# Event types whose `data.event_name` is the event's name; a screen view names its screen.
_NAMED_EVENT_TYPES = frozenset({"custom_event", "commerce_event"})


class NotABatchError(ValueError):
    """A JSON document that is not an mParticle batch, or an event that is not an event."""


def to_int(value: Any) -> int | None:  # noqa: ANN401  (any JSON scalar)
    """Read an integer that mParticle may have written as a number or a string.

    Args:
        value: A JSON scalar.

    Returns:
        The integer, or None for null, "" and values that are not whole numbers.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    number: float | None = None
    if isinstance(value, float):
        number = value
    elif isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            number = _float_or_none(value)
    return int(number) if number is not None and number.is_integer() else None


def _float_or_none(value: str) -> float | None:
    try:
        return float(value)
    except ValueError:
        return None


def format_unix_ms(milliseconds: int) -> str:
    """Render epoch milliseconds as an RFC 3339 UTC timestamp with millisecond precision.

    Integer arithmetic avoids the float rounding of `fromtimestamp(ms / 1000)`, and
    the date-and-second part is cached: a batch's events share their seconds, and
    formatting a datetime is the dearest step per event.

    Args:
        milliseconds: Milliseconds since the Unix epoch.

    Returns:
        A string such as `2020-07-23T22:19:23.908+00:00`.
    """
    seconds, millis = divmod(milliseconds, 1000)
    prefix = _SECONDS_CACHE.get(seconds)
    if prefix is None:
        if len(_SECONDS_CACHE) >= _SECONDS_CACHE_SIZE:
            _SECONDS_CACHE.clear()
        prefix = f"{EPOCH + dt.timedelta(seconds=seconds):%Y-%m-%dT%H:%M:%S}"
        _SECONDS_CACHE[seconds] = prefix
    return f"{prefix}.{millis:03d}+00:00"


_SECONDS_CACHE: dict[int, str] = {}
_SECONDS_CACHE_SIZE = 4096


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
    if not isinstance(batch, dict):
        msg = f"not an mParticle batch (a JSON {type(batch).__name__}, not an object)"
        raise NotABatchError(msg)
    events = batch.get("events")
    if events is None:
        return
    if not isinstance(events, list):
        msg = f"not an mParticle batch ('events' is a {type(events).__name__}, not an array)"
        raise NotABatchError(msg)
    if not events:
        return

    environment = batch.get("environment")
    context = {
        "mpid": to_int(batch.get("mpid")),
        "batch_id": to_int(batch.get("batch_id")),
        "environment": environment if isinstance(environment, str) else None,
        "user_identities": identities_as_object(batch.get("user_identities")),
        "user_attributes": _object(batch.get("user_attributes")),
        "device_info": _object(batch.get("device_info")),
        "application_info": _object(batch.get("application_info")),
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
    if event_type in _NAMED_EVENT_TYPES:
        name = data.get("event_name")
    elif event_type == "screen_view":
        name = data.get("screen_name")
    else:
        name = None
    ts_ms = to_int(data.get("timestamp_unixtime_ms"))
    try:
        timestamp = None if ts_ms is None else format_unix_ms(ts_ms)
    except (OverflowError, ValueError):  # beyond the years 1 to 9999
        return NotABatchError(f"event {index} timestamp_unixtime_ms {ts_ms} is out of range")
    return {
        "event_type": event_type,
        "event_name": name if isinstance(name, str) else None,
        "timestamp": timestamp,
        "timestamp_unixtime_ms": ts_ms,
        "source_message_id": _string_or_none(data.get("source_message_id")),
        "session_uuid": _string_or_none(data.get("session_uuid")),
        **context,
        "custom_attributes": _object(data.get("custom_attributes")),
        "data": data,
        "_sdc_event_index": index,
    }


def _string_or_none(value: Any) -> str | None:  # noqa: ANN401
    if value is None or isinstance(value, str):
        return value
    return str(value)
