"""mParticle data read back from an output (or written by an SDK) made fit for the Events API.

Outbound copies and other producers write what the inbound schema refuses: numbers
as strings, `user_identities` as an array, identity names in another spelling
(`customerid`), empty objects, fields only mParticle may set. Each field is coerced
by name (`coerce`) and each part of a batch fixed here, then `inbound.fit_event` /
`inbound.fit_shell` check the result against the published schema and drop only
what still cannot be valid.
"""

from __future__ import annotations

import typing as t

from mparticle_facts.identities import (
    DEVICE_IDENTITIES,
    USER_IDENTITIES,
    canonical_identity_type,
    is_mpid_key,
)
from mparticle_facts.numbers import to_int64
from target_mparticle import schema_rules as rules
from target_mparticle.coerce import (
    DROP,
    KIND_TYPES,
    SCALAR_MAP,
    bounded,
    clean_data,
    clean_value,
    kind_of,
)
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
from target_mparticle.preflight import quoted
from target_mparticle.values import (
    Tally,
    event_attributes,
    to_attribute_string,
    truncate,
    user_attributes,
)

_UNSEEN: t.Any = object()
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
#: The entries `clean_device_info`, `clean_application_info` and the mapped identities
#: keep only when the schema takes them (enum members, matched UUIDs): for
#: `inbound.certain_by_types`, a string there is enough.
VALIDATED_ENTRIES = {
    "device_info": frozenset(rules.DEVICE_INFO_ENUMS) | rules.UUID_DEVICE_FIELDS,
    "application_info": frozenset({"os"}),
}


def clean_event(event_type: object, data: object, tally: Tally) -> dict[str, t.Any]:
    """An event from any producer made acceptable to the inbound schema.

    Raises:
        InvalidRecordError: The event cannot be made valid (see `inbound.fit_event`).
    """
    if not isinstance(event_type, str):
        msg = f"event_type {event_type!r} is not one the Events API accepts"
        raise InvalidRecordError(msg)
    raw = data if isinstance(data, dict) else {}
    clean = clean_data(raw, tally)
    if event_type in {"custom_event", "commerce_event"}:
        _fit_custom_event_type(event_type, clean, tally)
    if event_type == "screen_view" and "screen_name" not in clean and "event_name" in clean:
        clean["screen_name"] = clean["event_name"]
    elif event_type == "user_identity_change":
        _fix_identity_change(clean)
    event = {"event_type": event_type, "data": clean}
    if _certainly_valid(event_type, clean):
        return event
    try:
        return fit_event(event, tally)
    except InvalidRecordError as exc:
        raise _unreadable_required(event_type, raw, clean) or exc from None


def _unreadable_required(
    event_type: str, raw: dict[str, t.Any], clean: dict[str, t.Any]
) -> InvalidRecordError | None:
    """Why a required field given with a value is missing: its value could not be read.

    Coercion drops a value it cannot make valid (text where a number goes, a number
    beyond 64 bits), so the schema then only says the field is missing, as if the
    record had never had it. Only called once an event is refused.
    """
    if event_type not in event_definitions():
        return None
    for name in sorted(required_data_fields(event_type)):
        if raw.get(name) is not None and name not in clean:
            msg = (
                f"{event_type} event is not valid for the Events API: required data field "
                f"{name} holds {quoted(raw[name])}, which it cannot take"
            )
            return InvalidRecordError(msg)
    return None


#: (event type, field) -> True when every coerced value of the field is valid there,
#: else the field's quick check; None when the event type is not plain enough.
_FIELD_RULES: dict[tuple[str, str], Node | bool | None] = {}


def _field_rule(event_type: str, name: str) -> Node | bool | None:
    node = data_field_node(event_type, name)
    if node is None:
        return None
    kind = kind_of(name)
    if kind == SCALAR_MAP and name in scalar_map_fields(event_type):
        return True  # event_attributes makes a map of strings, which such a field takes
    types = KIND_TYPES.get(kind)
    if types is not None and types <= node[1]:
        return True  # the coercion's every result is a type the field takes unchecked
    return node


#: (event type, the cleaned data's field names in order) -> the quick checks its
#: values still need, or None when such data is never certainly valid.
_SHAPE_CHECKS: dict[tuple[str, tuple[str, ...]], tuple[tuple[str, Node], ...] | None] = {}


def _shape_checks(event_type: str, names: tuple[str, ...]) -> tuple[tuple[str, Node], ...] | None:
    """What data with exactly these fields needs checked: each field's rule, found once."""
    if event_type not in event_definitions():
        return None
    if not required_data_fields(event_type) <= set(names):
        return None
    checks: list[tuple[str, Node]] = []
    for name in names:
        key = (event_type, name)
        rule = _FIELD_RULES.get(key)
        if rule is None:
            bounded(_FIELD_RULES)
            rule = _FIELD_RULES[key] = _field_rule(event_type, name) or False
        if rule is False:
            return None
        if rule is not True:
            checks.append((name, rule))
    return tuple(checks)


def _certainly_valid(event_type: str, clean: dict[str, t.Any]) -> bool:
    """Whether `{event_type, data: clean}` is valid, from the coercions and quick checks.

    Events of one type mostly come with the same few sets of fields, so what a set
    needs is worked out once: a field whose coercion can only give a valid value
    needs nothing more, the others their field's quick check. False sends the event
    to `fit_event`, which decides (see `fastcheck`).
    """
    shape = (event_type, tuple(clean))
    checks = _SHAPE_CHECKS.get(shape, _UNSEEN)
    if checks is _UNSEEN:
        bounded(_SHAPE_CHECKS)
        checks = _SHAPE_CHECKS[shape] = _shape_checks(*shape)
    if checks is None:
        return False
    for name, node in checks:  # noqa: SIM110 - a loop, not all() over a generator: per event
        if not passes(node, clean[name]):
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


#: What no identity is: an object or a list would go out as its JSON text, a flag as
#: `true`, each a real-looking identity that names no one.
NOT_IDENTITIES = (dict, list, tuple, bool)
IDENTITIES_DROPPED = "identity values that are objects, lists or true/false dropped"


def user_identity(value: object, tally: Tally) -> str | None:
    """A user identity's text (cut to mParticle's limit, counted), or None (counted)."""
    if isinstance(value, NOT_IDENTITIES):
        tally[IDENTITIES_DROPPED] += 1
        return None
    text = value if type(value) is str else to_attribute_string(value)
    if len(text) > rules.API_LIMIT_VALUE:
        return truncate(text, rules.API_LIMIT_VALUE, "identity values truncated to 4096", tally)
    return text


def device_identity(kind: str, value: object, tally: Tally) -> str | None:
    """A device identity's text, or None (counted) for a UUID field holding no UUID.

    Dropped alone: left in, it would make the schema refuse the whole `device_info`,
    and with it the batch's other device identities.
    """
    if isinstance(value, NOT_IDENTITIES):
        tally[IDENTITIES_DROPPED] += 1
        return None
    text = to_attribute_string(value)
    if kind in rules.UUID_DEVICE_FIELDS and not rules.UUID_PATTERN.match(text):
        tally[f"{kind} values that are not UUIDs dropped"] += 1
        return None
    return text


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
        if value is None or value == "" or (type(value) is str and value.isspace()):
            continue
        spelled = str(name)
        if is_mpid_key(spelled):
            mpid = to_int64(value)
            continue
        kind = canonical_identity_type(spelled)
        if kind in USER_IDENTITIES:
            text = user_identity(value, tally)
            if text is not None:
                user[kind] = text
        elif kind in DEVICE_IDENTITIES:
            text = device_identity(kind, value, tally)
            if text is not None:
                device[kind] = text
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
            if isinstance(value, str) and value in allowed:
                out[key] = value
            continue
        cleaned = clean_value(key, value, tally)
        if cleaned is not DROP and not isinstance(cleaned, (dict, list)):
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
            if isinstance(value, str) and value in rules.APPLICATION_OS_VALUES:
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
        value = clean_value(key, value, tally)  # objects, lists and numbers too (sdk_version)
        if value is not DROP:
            out[key] = value
    origin = to_int64(record.get("origin_mpid"))
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
