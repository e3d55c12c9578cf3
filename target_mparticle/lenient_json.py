"""Singer lines msgspec refuses but Python's `json` reads: numbers past a float, NaN, Infinity.

The target reads its input with msgspec, which refuses a line holding `1e400`, an
integer of thousands of digits, or the `NaN`/`Infinity` tokens that Python's
`json.dumps` writes for such floats (singer-io taps use it, and the SDK's own reader
takes them). Such a line is valid to the tap that wrote it, so it is decoded again
with `json`, here, reading every other number as msgspec would have (a float stays a
float), so the line's other values are sent as on any other line:

- a number past a float, or past what Python converts from text, becomes a Decimal,
  for the field's coercion to drop and count as beyond 64 bits;
- a `NaN`, `Infinity` or `-Infinity` inside a RECORD's record is left out (JSON has
  no such number, and mParticle takes none), as a field the tap did not send: it
  deletes nothing under `null_user_attributes: delete`; the caller counts it. One
  anywhere else (a SCHEMA's bound, a STATE's bookmark, a RECORD's stream) would change
  what the message means, so that line stays refused.

Anything else msgspec refused (a lone surrogate, bad syntax) stays refused.
"""

from __future__ import annotations

import decimal
import json
import typing as t

from target_mparticle.values import encode_json

#: What the closing warnings count NaN and Infinity values under.
NOT_NUMBERS = "NaN and Infinity values left out (JSON and mParticle have no such number)"
#: Digits of an integer Python converts from text (its limit is 4,300).
MAX_INT_DIGITS = 4000


class _Dropped:
    """Where a NaN or an Infinity stood, until it is left out."""


_DROPPED = _Dropped()


class Decoded(t.NamedTuple):
    """A line msgspec refused, read here."""

    message: t.Any
    #: How many NaN/Infinity values were left out of the record.
    left_out: int
    #: The record's own fields among them (a key property there makes the SDK's
    #: "missing key properties" error, which cannot say why on its own).
    top_level: tuple[str, ...]


def decode(line: str | bytes, *, range_error: bool) -> Decoded | None:
    """The message msgspec refused, and the NaN/Infinity values left out of it.

    Args:
        line: The Singer line.
        range_error: msgspec refused it for a number out of range.

    Returns:
        None when the line is no JSON to Python either, holds something else msgspec
        refuses (such as a lone surrogate), or a NaN/Infinity outside a RECORD's record.
    """
    constants = 0
    top_level: tuple[str, ...] = ()

    def constant(_name: str) -> _Dropped:
        nonlocal constants
        constants += 1
        return _DROPPED

    try:
        value = json.loads(line, parse_float=_float, parse_int=_integer, parse_constant=constant)
        if constants:
            record = value.get("record") if type(value) is dict else None
            if value.get("type") != "RECORD" or type(record) is not dict:
                return None
            top_level = tuple(key for key, item in record.items() if item is _DROPPED)
            if _leave_out(record) != constants:
                return None  # one stood outside the record
        elif not range_error:
            return None  # msgspec's refusal was for something else
        encode_json(value)  # what msgspec cannot write back (a lone surrogate)
    except (ValueError, RecursionError, UnicodeEncodeError, TypeError, AttributeError):
        return None
    return Decoded(value, constants, top_level)


def _float(text: str) -> float | decimal.Decimal:
    """A float, as msgspec reads one; a Decimal only past a float's range (`1e400`)."""
    number = float(text)
    return number if number - number == 0 else decimal.Decimal(text)


def _integer(digits: str) -> int | decimal.Decimal:
    """An int, or a Decimal past what Python converts from text."""
    return int(digits) if len(digits) <= MAX_INT_DIGITS else decimal.Decimal(digits)


def _leave_out(record: dict[str, t.Any]) -> int:
    """Leave every NaN and Infinity out of the record's objects and arrays; how many.

    A loop, not recursion: a record nested 900 levels deep is valid (msgspec takes
    it), and two Python frames a level would run out of stack first.
    """
    left_out = 0
    pending: list[dict[str, t.Any] | list[t.Any]] = [record]
    while pending:
        node = pending.pop()
        if isinstance(node, dict):
            keys = [key for key, item in node.items() if item is _DROPPED]
            for key in keys:
                del node[key]
            left_out += len(keys)
            children: t.Iterable[t.Any] = node.values()
        else:
            kept = [item for item in node if item is not _DROPPED]
            left_out += len(node) - len(kept)
            node[:] = kept
            children = node
        pending.extend(item for item in children if isinstance(item, (dict, list)))
    return left_out
