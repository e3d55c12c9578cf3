"""Singer lines msgspec refuses but Python's `json` reads: numbers past a float, NaN, Infinity.

The target reads its input with msgspec, which refuses a line holding `1e400`, an
integer of thousands of digits, or the `NaN`/`Infinity` tokens that Python's
`json.dumps` writes for such floats (singer-io taps use it, and the SDK's own reader
takes them). Such a line is valid to the tap that wrote it, so it is decoded again
with `json`, here:

- a number past a float, or past what Python converts from text, becomes a Decimal,
  for the field's coercion to drop and count as beyond 64 bits;
- a `NaN`, `Infinity` or `-Infinity` is left out of the message (JSON has no such
  number, and mParticle takes none), as a field the tap did not send: it deletes
  nothing under `null_user_attributes: delete`; the caller counts it.

Anything else msgspec refused (a lone surrogate, bad syntax) stays refused.
"""

from __future__ import annotations

import decimal
import json
import typing as t

import msgspec

#: What the closing warnings count NaN and Infinity values under.
NOT_NUMBERS = "NaN and Infinity values left out (JSON and mParticle have no such number)"
#: Digits of an integer Python converts from text (its limit is 4,300).
MAX_INT_DIGITS = 4000
_ENCODER = msgspec.json.Encoder(decimal_format="number")


class _Dropped:
    """Where a NaN or an Infinity stood, until it is left out."""


_DROPPED = _Dropped()


def decode(line: str | bytes, *, range_error: bool) -> tuple[t.Any, int] | None:
    """The message msgspec refused, and how many NaN/Infinity values were left out.

    Args:
        line: The Singer line.
        range_error: msgspec refused it for a number out of range.

    Returns:
        None when the line is no JSON to Python either, or holds something else
        msgspec refuses (such as a lone surrogate).
    """
    constants = 0

    def constant(_name: str) -> _Dropped:
        nonlocal constants
        constants += 1
        return _DROPPED

    try:
        value = json.loads(
            line, parse_float=decimal.Decimal, parse_int=_integer, parse_constant=constant
        )
        if constants:
            value = _without_dropped(value)
        elif not range_error:
            return None  # msgspec's refusal was for something else
        _ENCODER.encode(value)  # what msgspec cannot write back (a lone surrogate)
    except (ValueError, RecursionError, UnicodeEncodeError, TypeError):
        return None
    return value, constants


def _integer(digits: str) -> int | decimal.Decimal:
    """An int, or a Decimal past what Python converts from text."""
    return int(digits) if len(digits) <= MAX_INT_DIGITS else decimal.Decimal(digits)


def _without_dropped(value: object) -> object:
    """`value` with every NaN and Infinity left out of its objects and arrays."""
    if isinstance(value, dict):
        return {k: _without_dropped(v) for k, v in value.items() if v is not _DROPPED}
    if isinstance(value, list):
        return [_without_dropped(v) for v in value if v is not _DROPPED]
    return value
