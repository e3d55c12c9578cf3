"""Turning arbitrary record values into what the Events API accepts.

Kept apart from batch building so the rules (stringify, flatten, truncate,
coerce) can be tested on their own and shared by mapped and replayed records.
"""

from __future__ import annotations

import datetime as dt
import typing as t
from collections import Counter

import msgspec

from mparticle_facts.numbers import epoch_ms, in_date_range, to_bool, to_int, to_number
from target_mparticle.schema_rules import (
    API_LIMIT_ATTRIBUTES_PER_EVENT,
    API_LIMIT_NAME,
    API_LIMIT_USER_ATTRIBUTE_LIST,
    API_LIMIT_USER_ATTRIBUTE_LIST_ITEM,
    API_LIMIT_USER_ATTRIBUTES,
    API_LIMIT_VALUE,
)

_JSON = msgspec.json.Encoder(decimal_format="number")
#: JSON bytes as request bodies hold them (Decimals as numbers): the target's one
#: encoder for what it sends (`assemble`) and what it checks can be sent (`lenient_json`).
encode_json = _JSON.encode
# Readers of numbers and times live with the other mParticle facts; re-exported here
# for the converters that import their value helpers from one place.
__all__ = [
    "Tally",
    "event_attributes",
    "flatten",
    "to_attribute_string",
    "to_bool",
    "to_epoch_ms",
    "to_int",
    "to_number",
    "truncate",
    "user_attributes",
]


def to_epoch_ms(value: object) -> int | None:
    """`numbers.epoch_ms`, and None too for a moment outside the years 1 to 9999.

    `10**30` reads as milliseconds, but as an event time it is no moment mParticle
    (or anyone) could mean; the tap refuses such times too.
    """
    moment = epoch_ms(value)
    return moment if moment is not None and in_date_range(moment) else None


class Tally(Counter[str]):
    """Counts quiet repairs (truncations, dropped fields) for one summary warning.

    mParticle silently truncates over-long names server-side; doing it here and
    counting makes the loss visible instead of surprising.
    """


def to_attribute_string(value: object) -> str:
    """Render a scalar the way mParticle displays attribute values.

    Booleans become ``true``/``false`` (not Python's ``True``), integral floats
    keep their decimals as written, and datetimes use ISO 8601.
    """
    if isinstance(value, str):
        return value
    if type(value) is int:
        return str(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    if isinstance(value, (dict, list, tuple)):
        return _JSON.encode(value).decode()
    return str(value)


def truncate(text: str, limit: int, what: str, tally: Tally) -> str:
    """Cut ``text`` to ``limit`` characters, counting it under ``what``."""
    if len(text) > limit:
        tally[what] += 1
        return text[:limit]
    return text


def flatten(value: object, prefix: str, out: dict[str, object]) -> None:
    """Flatten nested objects into dotted keys; lists and scalars stay leaves.

    Nulls are dropped here because an attribute set to null carries no
    information for mParticle and null is refused in several schema places.
    """
    if value is None:
        return
    if isinstance(value, dict):
        for key, inner in value.items():
            flatten(inner, f"{prefix}.{key}" if prefix else str(key), out)
        return
    out[prefix] = value


def _flat(pairs: t.Iterable[tuple[str, object]], tally: Tally) -> dict[str, object]:
    """Name -> value with nested objects flattened and nulls left out.

    Most values are flat scalars; they skip the recursive walk. Two names that come
    out alike (`a.b` beside `a: {b: ...}`) keep the later value, and are counted.
    """
    flat: dict[str, object] = {}
    for name, value in pairs:
        if value is None:
            continue
        if isinstance(value, dict):
            nested: dict[str, object] = {}
            flatten(value, name, nested)
            clashes = len(flat.keys() & nested.keys())
            if clashes:
                tally[COLLISIONS] += clashes
            flat.update(nested)
        else:
            if name in flat:
                tally[COLLISIONS] += 1
            flat[name] = value
    return flat


COLLISIONS = "attributes whose flattened or cut names clashed, the earlier value dropped"


def attribute_name(name: str, tally: Tally, taken: t.Container[str] = ()) -> str:
    """`name` cut to mParticle's limit (counted); a cut that meets a name `taken` too.

    A delete (`deleted_user_attributes`) names an attribute through this as well, so
    it matches the name the attribute was set under.
    """
    if len(name) > API_LIMIT_NAME:
        name = truncate(name, API_LIMIT_NAME, "attribute names truncated to 256", tally)
        if name in taken:
            tally[COLLISIONS] += 1
    return name


def event_attributes(
    pairs: t.Iterable[tuple[str, object]],
    tally: Tally,
) -> dict[str, str]:
    """Build ``custom_attributes`` within mParticle's per-event limits."""
    result: dict[str, str] = {}
    for name, value in _flat(pairs, tally).items():
        if len(result) >= API_LIMIT_ATTRIBUTES_PER_EVENT:
            tally["event attributes over the 100 per event limit dropped"] += 1
            continue
        text = value if type(value) is str else to_attribute_string(value)
        if len(text) > API_LIMIT_VALUE:
            text = truncate(text, API_LIMIT_VALUE, "values truncated to 4096", tally)
        result[attribute_name(name, tally, result)] = text
    return result


def names_within_limits(names: t.Collection[str]) -> bool:
    """Whether `names` can all be user attributes of one batch, none cut or dropped."""
    return len(names) <= API_LIMIT_USER_ATTRIBUTES and all(
        len(name) <= API_LIMIT_NAME for name in names
    )


def scalar_user_attributes(
    record: t.Mapping[str, object], attributes: t.Iterable[tuple[str, str]]
) -> dict[str, str | list[str]] | None:
    """`user_attributes` of the usual table row, or None if a value needs that function.

    A row of text and integers of at most 4,096 characters, under names that
    `names_within_limits` passed, gives exactly what `user_attributes` gives, without
    its intermediate map and per-value checks (an eighth of a user record's
    instructions).
    Anything else (another type, a longer value) returns None at once, and the
    caller builds the whole map with `user_attributes`.

    Args:
        record: The record.
        attributes: (attribute name, field) pairs whose names passed `names_within_limits`.
    """
    result: dict[str, str | list[str]] = {}
    for name, field in attributes:
        value = record.get(field)
        if type(value) is str:
            text = value
        elif type(value) is int:
            text = str(value)
        elif value is None:
            continue
        else:
            return None
        if len(text) > API_LIMIT_VALUE:
            return None
        result[name] = text
    return result


def user_attributes(
    pairs: t.Iterable[tuple[str, object]],
    tally: Tally,
) -> dict[str, str | list[str]]:
    """Build ``user_attributes``: like event attributes, but lists stay lists."""
    result: dict[str, str | list[str]] = {}
    for name, flat_value in _flat(pairs, tally).items():
        # An int's text is what to_attribute_string would give it: the usual path below.
        value = str(flat_value) if type(flat_value) is int else flat_value
        if (
            type(value) is str
            and len(value) <= API_LIMIT_VALUE
            and len(name) <= API_LIMIT_NAME
            and len(result) < API_LIMIT_USER_ATTRIBUTES
        ):
            result[name] = value  # the usual value: nothing below would change it
            continue
        if len(result) >= API_LIMIT_USER_ATTRIBUTES:
            tally["user attributes over the 100 per batch limit dropped"] += 1
            continue
        key = attribute_name(name, tally, result)
        if isinstance(value, (list, tuple)):
            items = [v for v in value if v is not None]
            if len(items) > API_LIMIT_USER_ATTRIBUTE_LIST:
                tally["user attribute list entries over 1000 dropped"] += len(items) - 1000
                items = items[:API_LIMIT_USER_ATTRIBUTE_LIST]
            result[key] = [
                truncate(
                    to_attribute_string(v),
                    API_LIMIT_USER_ATTRIBUTE_LIST_ITEM,
                    "list values truncated to 512",
                    tally,
                )
                for v in items
            ]
        else:
            text = value if type(value) is str else to_attribute_string(value)
            if len(text) > API_LIMIT_VALUE:
                text = truncate(text, API_LIMIT_VALUE, "values truncated to 4096", tally)
            result[key] = text
    return result
