"""Event data a mapped row gives in its own fields: event type, session, flags, location.

Four optional mapping keys name the fields (`custom_event_type_field`,
`session_uuid_field`, `custom_flags_field`, `location_field`). Each value is checked
here against what the Events API takes, and one it would refuse makes the record
invalid, naming the field and the value: left to the schema check, an unusable
session or location would be dropped from the event (counted, but the row sent
without it), and an unknown event type sent as `other`, which is not what a row that
names its own type asked for. A null or blank value says nothing and is left out.

Only mappings that use one of the keys build an `EventFields`; the rest pay nothing
per record for them (`MappedRecords._mapped_event` tests one attribute).
"""

from __future__ import annotations

import dataclasses
import decimal
import math
import typing as t

import msgspec

from target_mparticle import schema_rules as rules
from target_mparticle.inbound import InvalidRecordError
from target_mparticle.preflight import quoted
from target_mparticle.values import to_attribute_string

if t.TYPE_CHECKING:
    from target_mparticle.values import Tally

#: The keys, in the order their problems are reported.
EVENT_FIELD_KEYS = (
    "custom_event_type_field",
    "session_uuid_field",
    "custom_flags_field",
    "location_field",
)
#: The event kinds each key applies to (a screen view has no custom_event_type).
_KINDS_OF_KEY = {
    "custom_event_type_field": ("custom_event", "commerce_event"),
    "session_uuid_field": ("custom_event", "screen_view", "commerce_event"),
    "custom_flags_field": ("custom_event", "screen_view", "commerce_event"),
    "location_field": ("custom_event", "screen_view", "commerce_event"),
}
#: Location numbers and the values they can take: degrees on Earth, a radius in metres.
_LOCATION_NUMBERS = {
    "latitude": (-90.0, 90.0),
    "longitude": (-180.0, 180.0),
    "accuracy": (0.0, math.inf),
}
_LOCATION_TEXT = ("country_code", "region_code", "city_name", "postal_code")
_LOCATION_SOURCES = ("unknown", "ip_lookup", "lat_long")
#: Every key of the schema's GeoLocation (which takes no other).
LOCATION_KEYS = (*_LOCATION_NUMBERS, *_LOCATION_TEXT, "dma_code", "location_source")
_INT32 = 2**31


def event_field_errors(where: str, raw: t.Mapping[str, t.Any]) -> list[str]:
    """Problems with the event field keys of one mapping, for start-up.

    Args:
        where: The mapping, as messages name it (`mappings['orders']`).
        raw: The mapping entry as configured.

    Returns:
        One line per problem.
    """
    errors: list[str] = []
    kind = raw.get("kind", "custom_event")
    for key in EVENT_FIELD_KEYS:
        value = raw.get(key)
        if value is None:
            continue
        kinds = _KINDS_OF_KEY[key]
        if not isinstance(value, str) or not value:
            errors.append(f"{where}.{key} must be a non-empty string")
        elif kind == "user":
            errors.append(
                f"{where}.{key} is for event mappings ({', '.join(kinds)}); "
                "a kind user mapping sends no event"
            )
        elif kind in _KINDS_OF_KEY["location_field"] and kind not in kinds:
            errors.append(
                f"{where}.{key} is for {' and '.join(kinds)} mappings; "
                f"a {kind} has no custom_event_type"
            )
    if raw.get("custom_event_type") is not None and raw.get("custom_event_type_field") is not None:
        errors.append(f"{where}: set custom_event_type or custom_event_type_field, not both")
    return errors


@dataclasses.dataclass(frozen=True)
class EventFields:
    """The event field keys of one mapping, applied to its rows."""

    kind: str
    event_type_field: str | None
    session_field: str | None
    flags_field: str | None
    location_field: str | None

    @classmethod
    def of(
        cls,
        kind: str,
        event_type_field: str | None,
        session_field: str | None,
        flags_field: str | None,
        location_field: str | None,
    ) -> EventFields | None:
        """The keys' applier, or None for a mapping that uses none of them."""
        if not (event_type_field or session_field or flags_field or location_field):
            return None
        return cls(kind, event_type_field, session_field, flags_field, location_field)

    def fill(
        self, record: t.Mapping[str, t.Any], data: dict[str, t.Any], tally: Tally
    ) -> str | None:
        """Put the row's session, flags and location in `data`; return its event type.

        Returns:
            The row's custom_event_type, or None where it gives none (or no field is
            mapped): the mapping's default then applies, `other` for a custom event.

        Raises:
            InvalidRecordError: A value the Events API would refuse.
        """
        if self.session_field:
            session = _session_uuid(self.session_field, record.get(self.session_field))
            if session is not None:
                data["session_uuid"] = session
        if self.location_field:
            location = _location(self.location_field, record.get(self.location_field))
            if location is not None:
                data["location"] = location
        if self.flags_field:
            flags = _custom_flags(self.flags_field, record.get(self.flags_field))
            if flags is not None:
                data["custom_flags"] = flags
        if self.event_type_field:
            return self._event_type(self.event_type_field, record.get(self.event_type_field), tally)
        return None

    def _event_type(self, field: str, value: object, tally: Tally) -> str | None:
        if _blank(value):
            sent = "as other" if self.kind == "custom_event" else "with no custom_event_type"
            tally[f"{self.kind}s sent {sent}: field {field[:80]!r} null or blank"] += 1
            return None
        commerce = self.kind == "commerce_event"
        allowed = rules.COMMERCE_EVENT_TYPES if commerce else rules.CUSTOM_EVENT_TYPES
        if not isinstance(value, str) or value not in allowed:
            msg = (
                f"custom event type field {field!r} holds {quoted(value)}, not a {self.kind} "
                f"type the Events API accepts ({', '.join(sorted(allowed))})"
            )
            raise InvalidRecordError(msg)
        return value


def _blank(value: object) -> bool:
    """Null, or text with nothing in it: what CSV and spreadsheet taps write for null."""
    return value is None or (isinstance(value, str) and not value.strip())


def _session_uuid(field: str, value: object) -> str | None:
    """The row's session UUID as given (its case kept: mParticle hashes it to a session id)."""
    if _blank(value):
        return None
    if not isinstance(value, str) or not rules.UUID_PATTERN.match(value):
        msg = f"session uuid field {field!r} holds {quoted(value)}, not a UUID"
        raise InvalidRecordError(msg)
    return value


def _object(what: str, field: str, value: object) -> dict[str, t.Any] | None:
    """An object field's value: an object, or JSON text of one (as CSV taps send JSON)."""
    if _blank(value):
        return None
    if isinstance(value, str):
        try:
            value = msgspec.json.decode(value)
        except (msgspec.DecodeError, RecursionError):
            msg = f"{what} field {field!r} holds {quoted(value)}, which is not JSON"
            raise InvalidRecordError(msg) from None
    if not isinstance(value, dict):
        msg = f"{what} field {field!r} holds {quoted(value)}, not an object"
        raise InvalidRecordError(msg)
    return value


def _custom_flags(field: str, value: object) -> dict[str, str] | None:
    """Flag name -> text; a null flag is left out, and no flags at all are none.

    The published schema takes a scalar per flag (no list, no object): numbers and
    booleans are sent as text, as attribute values are.
    """
    given = _object("custom flags", field, value)
    if given is None:
        return None
    flags: dict[str, str] = {}
    for name, flag in given.items():
        if flag is None:
            continue
        if isinstance(flag, (dict, list, tuple)):
            msg = (
                f"custom flags field {field!r}: flag {quoted(name)} holds {quoted(flag)}; "
                "the Events API takes text, a number or a boolean per flag"
            )
            raise InvalidRecordError(msg)
        flags[str(name)] = to_attribute_string(flag)
    return flags or None


def _location(field: str, value: object) -> dict[str, t.Any] | None:
    """The event's location: the schema's GeoLocation keys, typed and in range.

    An empty object, or one of nulls only, says nothing (the schema needs latitude
    and longitude, so none could be sent). Latitude and longitude are degrees,
    accuracy a radius in metres.
    """
    given = _object("location", field, value)
    if given is None or all(v is None for v in given.values()):
        return None
    unknown = [key for key in given if key not in LOCATION_KEYS]
    if unknown:
        msg = (
            f"location field {field!r} has {quoted(unknown[0])}, not a location key "
            f"({', '.join(LOCATION_KEYS)})"
        )
        raise InvalidRecordError(msg)
    location = _location_numbers(field, given)
    for key in _LOCATION_TEXT:
        text = given.get(key)
        if text is not None:
            if isinstance(text, (dict, list, tuple)):
                msg = f"location field {field!r}: {key} {quoted(text)} is not text"
                raise InvalidRecordError(msg)
            location[key] = to_attribute_string(text)
    _location_extras(field, given, location)
    return location


def _location_numbers(field: str, given: dict[str, t.Any]) -> dict[str, t.Any]:
    """Latitude and longitude (both needed) and accuracy, as finite numbers in range."""
    location: dict[str, t.Any] = {}
    for key, (low, high) in _LOCATION_NUMBERS.items():
        raw = given.get(key)
        if raw is None:
            if key == "accuracy":
                continue
            msg = f"location field {field!r} has no {key} (the Events API needs both)"
            raise InvalidRecordError(msg)
        number = _number(raw)
        if number is None:
            msg = f"location field {field!r}: {key} {quoted(raw)} is not a number"
            raise InvalidRecordError(msg)
        if not low <= number <= high:
            span = f"from {low:g} to {high:g}" if high < math.inf else f"at least {low:g}"
            msg = f"location field {field!r}: {key} {number!r} is not {span}"
            raise InvalidRecordError(msg)
        location[key] = number
    return location


def _location_extras(field: str, given: dict[str, t.Any], location: dict[str, t.Any]) -> None:
    """The DMA code (a 32-bit integer) and the location's source (one of three names)."""
    dma = given.get("dma_code")
    if dma is not None:
        number = _number(dma)
        if number is None or not number.is_integer() or not -_INT32 <= number < _INT32:
            msg = f"location field {field!r}: dma_code {quoted(dma)} is not a 32-bit integer"
            raise InvalidRecordError(msg)
        location["dma_code"] = int(number)
    source = given.get("location_source")
    if source is not None:
        if source not in _LOCATION_SOURCES:
            msg = (
                f"location field {field!r}: location_source {quoted(source)} is not one of "
                f"{', '.join(_LOCATION_SOURCES)}"
            )
            raise InvalidRecordError(msg)
        location["location_source"] = source


def _number(value: object) -> float | None:
    """A finite number from a number or numeric text; None for anything else."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str, decimal.Decimal)):
        return None
    try:
        number = float(value)
    except (ValueError, OverflowError):
        return None
    return number if math.isfinite(number) else None
