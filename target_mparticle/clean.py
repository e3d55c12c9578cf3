"""mParticle data read back from an output (or written by an SDK) made fit for the Events API.

Outbound copies and other producers write what the inbound schema refuses: numbers
as strings, `user_identities` as an array, identity names in another spelling
(`customerid`), empty objects, fields only mParticle may set. Each field is coerced
by name here, then `inbound.fit_event` / `inbound.fit_shell` check the result against
the published schema and drop only what still cannot be valid.
"""

from __future__ import annotations

import typing as t

from mparticle_facts.identities import (
    DEVICE_IDENTITIES,
    USER_IDENTITIES,
    canonical_identity_type,
    is_mpid_key,
)
from mparticle_facts.numbers import MAX_DIGITS, to_bool, to_int, to_number
from target_mparticle import schema_rules as rules
from target_mparticle.fastcheck import Node, passes
from target_mparticle.inbound import (
    InvalidRecordError,
    data_enum,
    data_field_node,
    event_definitions,
    fit_event,
    required_data_fields,
    scalar_map_fields,
)
from target_mparticle.values import (
    Tally,
    event_attributes,
    to_attribute_string,
    truncate,
    user_attributes,
)

_DROP = object()
#: Where the original of an enum value the schema lacks is kept, in custom_attributes.
ORIGINAL_TYPE_ATTRIBUTE = "original_custom_event_type"
#: Batch fields a replay carries over as they are (after `fit_shell`). Left out on
#: purpose: what mParticle stamps on receipt and what names the original input
#: (`batch_id`, the batch `timestamp_unixtime_ms`, `api_key(s)`, `source_info`,
#: `job_id`), which the receiving workspace sets for itself.
REPLAYED_BATCH_FIELDS = (
    "deleted_user_attributes",
    "context",
    "consent_state",
    "partner_identities",
    "partner_identity",
    "integration_attributes",
    "attribution_info",
    "sdk_version",
    "ip",
)
ENVIRONMENTS = frozenset({"production", "development"})


_INTEGER, _NUMBER, _BOOLEAN, _UUID, _STRING, _NAME, _SCALAR_MAP, _ANY = range(8)
_AS_IS_STRING = frozenset({_STRING, _ANY})
#: Field name -> how `_clean_value` treats it, filled as names are met (a few dozen).
_KIND_BY_NAME: dict[str, int] = {}


#: Entries a per-field-name table keeps: field names come from the input, and one
#: producer's thousands of distinct names must not grow memory without end.
MAX_NAMES = 4096


def _bounded(table: dict[t.Any, t.Any]) -> None:
    """Empty a per-name table that reached `MAX_NAMES` (it refills from the names in use)."""
    if len(table) >= MAX_NAMES:
        table.clear()


def _kind(key: str) -> int:
    """How a field is coerced, from its name alone (looked up once per name)."""
    kind = _KIND_BY_NAME.get(key)
    if kind is None:
        if key in rules.INTEGER_FIELDS:
            kind = _INTEGER
        elif key in rules.NUMBER_FIELDS:
            kind = _NUMBER
        elif key in rules.BOOLEAN_FIELDS:
            kind = _BOOLEAN
        elif key in rules.UUID_DATA_FIELDS:
            kind = _UUID
        elif key in rules.STRICT_STRING_FIELDS:
            kind = _NAME if key in {"event_name", "screen_name"} else _STRING
        elif key in rules.SCALAR_MAP_FIELDS:
            kind = _SCALAR_MAP
        else:
            kind = _ANY
        _bounded(_KIND_BY_NAME)
        _KIND_BY_NAME[key] = kind
    return kind


Coerce = t.Callable[[t.Any, Tally], t.Any]


def _as_any(value: object, tally: Tally) -> object:
    if isinstance(value, dict):
        return clean_object(value, tally)
    if isinstance(value, list):
        return [
            clean_object(v, tally) if isinstance(v, dict) else _scalar(v)
            for v in value
            if v is not None
        ]
    return _scalar(value)


def _as_integer(value: object, _tally: Tally) -> object:
    if type(value) is str and value.isdigit() and value.isascii() and len(value) <= MAX_DIGITS:
        return int(value)  # what to_int gives such text, without its general steps
    number = to_int(value)
    return _DROP if number is None else number


def _as_number(value: object, _tally: Tally) -> object:
    real = to_number(value)
    return _DROP if real is None else real


def _as_boolean(value: object, _tally: Tally) -> object:
    flag = to_bool(value)
    return _DROP if flag is None else flag


def _as_uuid(value: object, _tally: Tally) -> object:
    return value if isinstance(value, str) and rules.UUID_PATTERN.match(value) else _DROP


def _as_string(value: object, _tally: Tally) -> object:
    if isinstance(value, (dict, list)):
        return _DROP
    return to_attribute_string(value)


def _as_name(value: object, tally: Tally) -> object:
    if isinstance(value, (dict, list)):
        return _DROP
    return truncate(
        to_attribute_string(value), rules.API_LIMIT_NAME, "event names truncated to 256", tally
    )


def _as_scalar_map(value: object, tally: Tally) -> object:
    if not isinstance(value, dict):
        return _DROP
    if len(value) <= rules.API_LIMIT_ATTRIBUTES_PER_EVENT:
        for name, item in value.items():
            if (
                type(item) is not str
                or type(name) is not str
                or len(item) > rules.API_LIMIT_VALUE
                or len(name) > rules.API_LIMIT_NAME
            ):
                break
        else:
            return dict(value)  # what event_attributes gives strings within the limits
    return event_attributes(value.items(), tally)


_COERCE_BY_KIND: dict[int, Coerce] = {
    _ANY: _as_any,
    _INTEGER: _as_integer,
    _NUMBER: _as_number,
    _BOOLEAN: _as_boolean,
    _UUID: _as_uuid,
    _STRING: _as_string,
    _NAME: _as_name,
    _SCALAR_MAP: _as_scalar_map,
}
#: The Python types each coercion can return (`_ANY` and `_UUID` are left out:
#: any type, and strings the schema constrains further).
_KIND_TYPES: dict[int, frozenset[type]] = {
    _INTEGER: frozenset({int}),
    _NUMBER: frozenset({int, float}),
    _BOOLEAN: frozenset({bool}),
    _STRING: frozenset({str}),
    _NAME: frozenset({str}),
}
#: Field name -> its coercion, filled as names are met.
_COERCE_BY_NAME: dict[str, Coerce] = {}


def _coercion(name: str) -> Coerce:
    coerce = _COERCE_BY_NAME.get(name)
    if coerce is None:
        _bounded(_COERCE_BY_NAME)
        coerce = _COERCE_BY_NAME[name] = _COERCE_BY_KIND[_kind(name)]
    return coerce


def _clean_value(key: str, value: object, tally: Tally) -> object:
    """Coerce one field to the type the inbound schema gives fields of that name."""
    if value is None:
        return _DROP
    return _coercion(key)(value, tally)


def _scalar(value: object) -> object:
    if isinstance(value, (str, bool, int, float)):
        return value
    real = to_number(value)
    return real if real is not None else to_attribute_string(value)


def clean_object(
    data: t.Mapping[str, t.Any], tally: Tally, skip: frozenset[str] = frozenset()
) -> dict[str, t.Any]:
    """Coerce every field of an object by name; nulls and the `skip` fields are left out."""
    out: dict[str, t.Any] = {}
    kinds = _KIND_BY_NAME
    coercions = _COERCE_BY_NAME
    for key, value in data.items():
        if value is None or key in skip:
            continue
        name = key if type(key) is str else str(key)
        # The commonest cases, already what the coercion would return: a string
        # where any string goes, an int where an integer goes.
        kind = kinds.get(name)
        if (type(value) is str and kind in _AS_IS_STRING) or (
            type(value) is int and kind == _INTEGER
        ):
            out[name] = value
            continue
        cleaned = (coercions.get(name) or _coercion(name))(value, tally)
        if cleaned is not _DROP:
            out[name] = cleaned
    return out


def clean_event(event_type: object, data: object, tally: Tally) -> dict[str, t.Any]:
    """An event from any producer made acceptable to the inbound schema.

    Raises:
        InvalidRecordError: The event cannot be made valid (see `inbound.fit_event`).
    """
    if not isinstance(event_type, str):
        msg = f"event_type {event_type!r} is not one the Events API accepts"
        raise InvalidRecordError(msg)
    raw = data if isinstance(data, dict) else {}
    clean = clean_object(raw, tally, rules.OUTBOUND_ONLY_DATA_FIELDS)
    if event_type in {"custom_event", "commerce_event"}:
        _fit_custom_event_type(event_type, clean, tally)
    if event_type == "screen_view" and "screen_name" not in clean and "event_name" in clean:
        clean["screen_name"] = clean["event_name"]
    elif event_type == "user_identity_change":
        _fix_identity_change(clean)
    event = {"event_type": event_type, "data": clean}
    if _certainly_valid(event_type, clean):
        return event
    return fit_event(event, tally)


#: (event type, field) -> True when every coerced value of the field is valid there,
#: else the field's quick check; None when the event type is not plain enough.
_FIELD_RULES: dict[tuple[str, str], Node | bool | None] = {}


def _field_rule(event_type: str, name: str) -> Node | bool | None:
    node = data_field_node(event_type, name)
    if node is None:
        return None
    kind = _kind(name)
    if kind == _SCALAR_MAP and name in scalar_map_fields(event_type):
        return True  # event_attributes makes a map of strings, which such a field takes
    types = _KIND_TYPES.get(kind)
    if types is not None and types <= node[1]:
        return True  # the coercion's every result is a type the field takes unchecked
    return node


def _certainly_valid(event_type: str, clean: dict[str, t.Any]) -> bool:
    """Whether `{event_type, data: clean}` is valid, from the coercions and quick checks.

    One pass over the fields `clean_object` made: a field whose coercion can only
    give a valid value costs a look-up; the others get their field's quick check.
    False sends the event to `fit_event`, which decides (see `fastcheck`).
    """
    if event_type not in event_definitions():
        return False
    if not required_data_fields(event_type) <= clean.keys():
        return False
    rules_ = _FIELD_RULES
    for name, value in clean.items():
        key = (event_type, name)
        rule = rules_.get(key)
        if rule is None:
            _bounded(rules_)
            rule = rules_[key] = _field_rule(event_type, name) or False
        if rule is True:
            continue
        if rule is False or not passes(rule, value):
            return False
    return True


def _fit_custom_event_type(event_type: str, clean: dict[str, t.Any], tally: Tally) -> None:
    """Send a type the schema's enum lacks (e.g. mParticle's own `attribution`) as it allows.

    The original value is kept in a custom attribute, so nothing is lost.
    """
    allowed = data_enum(event_type, "custom_event_type") or frozenset()
    given = clean.get("custom_event_type")
    if given is None and event_type == "commerce_event":
        return
    if isinstance(given, str) and given in allowed:
        return
    if given is not None:
        attributes = clean.setdefault("custom_attributes", {})
        attributes.setdefault(ORIGINAL_TYPE_ATTRIBUTE, to_attribute_string(given))
        tally[f"custom_event_type values outside the schema kept in {ORIGINAL_TYPE_ATTRIBUTE}"] += 1
    if event_type == "custom_event":
        clean["custom_event_type"] = "other"
    else:
        del clean["custom_event_type"]


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
    if not isinstance(side, dict):
        return None
    kind = canonical_identity_type(str(side.get("identity_type", "")))
    if kind not in USER_IDENTITIES:
        return None
    out = {k: side[k] for k in _IDENTITY_CHANGE_KEYS if side.get(k) is not None}
    out["identity_type"] = kind
    if "timestamp_unixtime_ms" not in out and "timestamp_unixtime_ms" in data:
        out["timestamp_unixtime_ms"] = data["timestamp_unixtime_ms"]
    if "identity" not in out or "timestamp_unixtime_ms" not in out:
        return None
    return out


class Identities(t.NamedTuple):
    """A batch's identities, sorted by where the inbound schema wants them."""

    user: dict[str, str]
    device: dict[str, str]
    mpid: int | None


def clean_identities(raw: object, tally: Tally) -> Identities:
    """Identities from the inbound object or the outbound array, in any spelling.

    `customerid`, `CustomerId` and `customer_id` are one identity; device identities
    found among them (`ios_idfa`) go to `device_info`, an MPID key to `mpid`.
    """
    pairs: list[tuple[object, object]] = []
    if isinstance(raw, dict):
        pairs = list(raw.items())
    elif isinstance(raw, list):
        pairs = [
            (entry.get("identity_type"), entry.get("identity"))
            for entry in raw
            if isinstance(entry, dict)
        ]
    user: dict[str, str] = {}
    device: dict[str, str] = {}
    mpid: int | None = None
    for name, value in pairs:
        if value is None or value == "":
            continue
        spelled = str(name)
        if is_mpid_key(spelled):
            mpid = to_int(value)
            continue
        kind = canonical_identity_type(spelled)
        if kind in USER_IDENTITIES:
            user[kind] = truncate(
                to_attribute_string(value),
                rules.API_LIMIT_VALUE,
                "identity values truncated to 4096",
                tally,
            )
        elif kind in DEVICE_IDENTITIES:
            device[kind] = to_attribute_string(value)
        else:
            tally[f"identities of unknown type {spelled!r} dropped"] += 1
    return Identities(user, device, mpid)


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


def clean_user_attributes(raw: object, tally: Tally) -> dict[str, str | list[str]]:
    """User attributes within mParticle's limits; lists stay lists."""
    return user_attributes(raw.items(), tally) if isinstance(raw, dict) else {}


def replayed_fields(record: t.Mapping[str, t.Any], tally: Tally) -> dict[str, t.Any]:
    """The batch-level fields of a replayed batch that inbound batches may carry.

    Args:
        record: A whole batch (tap-mparticle `batches` record, or an SDK's body).
        tally: Counts repairs.

    Returns:
        The fields that hold something, coerced by name (`fit_shell` checks them).
    """
    out: dict[str, t.Any] = {}
    for key in REPLAYED_BATCH_FIELDS:
        value = record.get(key)
        if value is None or value in ({}, [], ""):
            continue
        if isinstance(value, dict):
            value = clean_object(value, tally)
        out[key] = value
    origin = to_int(record.get("origin_mpid"))
    if origin is not None:
        out["origin_mpid"] = origin
    device_id = record.get("mp_deviceid")
    if isinstance(device_id, str) and rules.UUID_PATTERN.match(device_id):
        out["mp_deviceid"] = device_id
    return out


def environment_of(record: t.Mapping[str, t.Any], default: str) -> str:
    """The record's own environment when it names a valid one, else the configured one."""
    given = record.get("environment")
    return given if isinstance(given, str) and given in ENVIRONMENTS else default
