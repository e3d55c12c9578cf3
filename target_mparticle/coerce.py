"""Each field coerced by its name to the type mParticle's inbound schema gives it.

Outbound copies and other producers write numbers as strings, booleans as text,
names over their limit. Which coercion a field gets depends on its name alone, so it
is looked up once per name (tables bounded by `MAX_NAMES`), and an event's data,
whose fields come in the same few orders, gets its plan once per set of names.
"""

from __future__ import annotations

import typing as t

from mparticle_facts.numbers import INT64_MAX, INT64_MIN, to_bool, to_int, to_number
from target_mparticle import schema_rules as rules
from target_mparticle.values import (
    Tally,
    event_attributes,
    to_attribute_string,
    truncate,
)

#: What a coercion returns for a value it cannot make fit: the field is left out.
DROP = object()

_INTEGER, _NUMBER, _BOOLEAN, _UUID, _STRING, _NAME, SCALAR_MAP, _ANY = range(8)
_AS_IS_STRING = frozenset({_STRING, _ANY})
#: Field name -> how `clean_value` treats it, filled as names are met (a few dozen).
_KIND_BY_NAME: dict[str, int] = {}


#: Entries a per-field-name table keeps: field names come from the input, and one
#: producer's thousands of distinct names must not grow memory without end.
MAX_NAMES = 4096


def bounded(table: dict[t.Any, t.Any]) -> None:
    """Empty a per-name table that reached `MAX_NAMES` (it refills from the names in use)."""
    if len(table) >= MAX_NAMES:
        table.clear()


def kind_of(key: str) -> int:
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
            kind = SCALAR_MAP
        else:
            kind = _ANY
        bounded(_KIND_BY_NAME)
        _KIND_BY_NAME[key] = kind
    return kind


Coerce = t.Callable[[t.Any, Tally], t.Any]


def _as_any(value: object, tally: Tally) -> object:
    if isinstance(value, dict):
        return clean_object(value, tally)
    if isinstance(value, list):
        items = []
        for item in value:
            if item is None:
                continue
            cleaned = clean_object(item, tally) if isinstance(item, dict) else _scalar(item, tally)
            if cleaned is not DROP:
                items.append(cleaned)
        return items
    return _scalar(value, tally)


#: The count of values a field's coercion could not read (`"99,50"` for a price, an
#: object for a name): dropped, as the schema would refuse them, and said at the end.
UNREADABLE = "values their field's type could not take dropped (e.g. text for a number)"

#: Digits of text that is an integer within 64 bits whatever they are.
INT64_DIGITS = 18


def _as_integer(value: object, tally: Tally) -> object:
    if type(value) is str and value.isdigit() and value.isascii() and len(value) <= INT64_DIGITS:
        return int(value)  # what to_int gives such text, without its general steps
    number = to_int(value)
    if number is None:
        tally[UNREADABLE] += 1
        return DROP
    if INT64_MIN <= number <= INT64_MAX:
        return number
    tally["integers outside 64 bits dropped"] += 1
    return DROP


def _as_number(value: object, tally: Tally) -> object:
    real = to_number(value)
    if real is None:
        tally[UNREADABLE] += 1
        return DROP
    return _within_64_bits(real, tally)


NUMBERS_DROPPED = "numbers outside 64 bits dropped"


def _within_64_bits(real: float | None, tally: Tally) -> object:
    """`real`, or DROP for no number and (counted) for one beyond 64-bit integers.

    mParticle stores numbers (prices, quantities, coordinates, free-form values) as
    64-bit integers or doubles and the schema's `number` has no bound to say so: a
    31-digit price reached the request as it was. Within +-2**63 a number fits a
    64-bit integer, a double and a decimal alike; beyond it no producer meant it.
    """
    if real is None:
        return DROP
    if INT64_MIN <= real <= INT64_MAX:
        return real
    tally[NUMBERS_DROPPED] += 1
    return DROP


def _as_boolean(value: object, tally: Tally) -> object:
    flag = to_bool(value)
    if flag is None:
        tally[UNREADABLE] += 1
        return DROP
    return flag


def _as_uuid(value: object, tally: Tally) -> object:
    if isinstance(value, str) and rules.UUID_PATTERN.match(value):
        return value
    tally[UNREADABLE] += 1
    return DROP


def _as_string(value: object, tally: Tally) -> object:
    if isinstance(value, (dict, list)):
        tally[UNREADABLE] += 1
        return DROP
    return to_attribute_string(value)


def _as_name(value: object, tally: Tally) -> object:
    if isinstance(value, (dict, list)):
        tally[UNREADABLE] += 1
        return DROP
    return truncate(
        to_attribute_string(value), rules.API_LIMIT_NAME, "event names truncated to 256", tally
    )


def _as_scalar_map(value: object, tally: Tally) -> object:
    if not isinstance(value, dict):
        tally[UNREADABLE] += 1
        return DROP
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
    SCALAR_MAP: _as_scalar_map,
}
#: The Python types each coercion can return (`_ANY` and `_UUID` are left out:
#: any type, and strings the schema constrains further).
KIND_TYPES: dict[int, frozenset[type]] = {
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
        bounded(_COERCE_BY_NAME)
        coerce = _COERCE_BY_NAME[name] = _COERCE_BY_KIND[kind_of(name)]
    return coerce


def clean_value(key: str, value: object, tally: Tally) -> object:
    """Coerce one field to the type the inbound schema gives fields of that name."""
    if value is None:
        return DROP
    return _coercion(key)(value, tally)


def _scalar(value: object, tally: Tally) -> object:
    """A value of a field the schema leaves free, such as `sdk_version` or `context`'s.

    Text and flags stay as they are, numbers within 64 bits too (`_within_64_bits`:
    DROP beyond, where mParticle could not store them), anything else becomes text.
    """
    if isinstance(value, (str, bool)):
        return value
    real = to_number(value)
    if real is not None or isinstance(value, (int, float)):
        return _within_64_bits(real, tally)
    return to_attribute_string(value)


#: (fields left out, an object's field names in order) -> per field kept: the key, its
#: name as text, the type its value is kept as-is in (None: none), whether it is a
#: name (kept as-is within its limit), and its coercion.
_PLANS: dict[
    tuple[frozenset[str], tuple[t.Any, ...]],
    tuple[tuple[t.Any, str, type | None, bool, Coerce], ...],
] = {}


def _plan(
    skip: frozenset[str], keys: tuple[t.Any, ...]
) -> tuple[tuple[t.Any, str, type | None, bool, Coerce], ...]:
    plan = []
    for key in keys:
        if key in skip:
            continue
        name = key if type(key) is str else str(key)
        kind = kind_of(name)
        as_is = str if kind in _AS_IS_STRING else int if kind == _INTEGER else None
        plan.append((key, name, as_is, kind == _NAME, _coercion(name)))
    return tuple(plan)


def clean_object(
    data: t.Mapping[str, t.Any], tally: Tally, skip: frozenset[str] = frozenset()
) -> dict[str, t.Any]:
    """Coerce every field of an object by name; nulls and the `skip` fields are left out.

    The objects of one kind (an event's data, its location) come with the same few
    sets of fields, so what each field gets is planned once per set of names: a
    value already of the type its coercion returns (a string where any string or a
    name within its limit goes, an int within 64 bits where an integer goes) is kept as it is,
    any other goes through its coercion.
    """
    shape = (skip, tuple(data))
    plan = _PLANS.get(shape)
    if plan is None:
        bounded(_PLANS)
        plan = _PLANS[shape] = _plan(*shape)
    out: dict[str, t.Any] = {}
    for key, name, as_is, is_name, coerce in plan:
        value = data[key]
        if value is None:
            continue
        kind = type(value)
        if (kind is as_is and (kind is str or INT64_MIN <= value <= INT64_MAX)) or (
            is_name and kind is str and len(value) <= rules.API_LIMIT_NAME
        ):
            out[name] = value
            continue
        cleaned = coerce(value, tally)
        if cleaned is not DROP:
            out[name] = cleaned
    return out


def clean_data(data: t.Mapping[str, t.Any], tally: Tally) -> dict[str, t.Any]:
    """An event's data coerced, without the fields only mParticle may set."""
    return clean_object(data, tally, rules.OUTBOUND_ONLY_DATA_FIELDS)
