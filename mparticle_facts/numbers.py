"""Numbers and times as mParticle writes them, read the same way by both plugins.

mParticle's outbound JSON writes integers as numbers or as strings
(`"timestamp_unixtime_ms": "1595542763908"`, `"mpid": "-8203932131457467343"`), and a
Singer message reader may hand the target a `Decimal`. MPIDs are 64-bit: a float
holds only 53 bits, so any path through `float` silently changes the last digits of
a real id. Every reader here goes from text or `Decimal` straight to `int`.
"""

from __future__ import annotations

import datetime as dt
import decimal
import math
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

#: ISO 8601 text to a datetime, read the same on every Python this project supports.
#: Python 3.10's own reads only what `isoformat()` writes, not `.5`, `+00` or `+0000`
#: (a warehouse's timestamptz as text), nor `20240501T120000Z`; the backport reads what
#: 3.11 does. singer-sdk also patches it into `datetime` on 3.10, but only once imported:
#: this module and the parsers above it do not import the SDK, so they do not rely on that.
fromisoformat: Callable[[str], dt.datetime]
if sys.version_info >= (3, 11):
    fromisoformat = dt.datetime.fromisoformat
else:
    from backports.datetime_fromisoformat import datetime_fromisoformat

    fromisoformat = datetime_fromisoformat

UTC = dt.timezone.utc
EPOCH = dt.datetime(1970, 1, 1, tzinfo=UTC)
#: The largest magnitude a float represents exactly; beyond it a float id is already wrong.
_FLOAT_EXACT = 2**53
#: Epoch values below this are seconds, at or above it milliseconds. 1e11 seconds
#: is the year 5138; 1e11 milliseconds is March 1973, before any mParticle data.
SECONDS_LIMIT = 100_000_000_000
#: Milliseconds of the first and last instants a date-time column can hold (years 1 and
#: 9999), both inclusive: the last is 9999-12-31T23:59:59.999, not .000, so no real
#: instant of the year's last second is refused, and every millisecond of a second
#: is in range or none is (`format_unix_ms` caches by the second).
_MILLISECOND = dt.timedelta(milliseconds=1)
MIN_UNIX_MS = (dt.datetime(1, 1, 1, tzinfo=UTC) - EPOCH) // _MILLISECOND
MAX_UNIX_MS = (dt.datetime(9999, 12, 31, 23, 59, 59, 999_000, tzinfo=UTC) - EPOCH) // _MILLISECOND
#: Digits a number read from text may have. Beyond this Python's own int/str
#: conversion refuses (4,300 digits), and `1e999999999` would be a billion-digit int.
MAX_DIGITS = 4_000
#: The range of mParticle's 64-bit integers.
INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
_TRUE = frozenset({"true", "1", "yes"})
_FALSE = frozenset({"false", "0", "no"})


def to_int(value: object) -> int | None:
    """Read a whole number written as a JSON number, a string or a Decimal.

    Args:
        value: A JSON scalar (or a Decimal from a Singer reader).

    Returns:
        The integer, exactly; None for null, booleans, "" and values that are not
        whole numbers (or are floats too large to be exact).
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        exact = value.is_integer() and abs(value) <= _FLOAT_EXACT
        return int(value) if exact else None
    if isinstance(value, str):
        text = value.strip()
        digits = text[1:] if text[:1] in {"+", "-"} else text
        if digits.isascii() and digits.isdigit():  # not "²", which isdigit() takes
            return int(text) if len(digits) <= MAX_DIGITS else None
    number = _decimal(value)
    if number is None or number != number.to_integral_value():
        return None
    return int(number)


def to_int64(value: object) -> int | None:
    """`to_int`, and None too for a whole number outside 64 bits (MPIDs, times, ids).

    The Events API schema says only "integer"; mParticle stores these as 64-bit
    signed numbers, so a larger one cannot be what the producer meant.
    """
    number = to_int(value)
    return number if number is not None and INT64_MIN <= number <= INT64_MAX else None


def _decimal(value: object) -> decimal.Decimal | None:
    """A finite Decimal from a Decimal or a numeric string, else None.

    None too when its magnitude has more than `MAX_DIGITS` digits either side of the
    point: hostile text such as `1e999999999` must not become a billion-digit int.
    """
    if isinstance(value, str):
        try:
            value = decimal.Decimal(value.strip())
        except decimal.InvalidOperation:
            return None
    if (
        isinstance(value, decimal.Decimal)
        and value.is_finite()
        and abs(value.adjusted()) <= MAX_DIGITS
        and len(value.as_tuple().digits) <= MAX_DIGITS
    ):
        return value
    return None


def to_number(value: object) -> int | float | None:
    """Read a JSON number that may have arrived as a string or a Decimal.

    Whole numbers come back as exact ints, others as floats.

    Args:
        value: A JSON scalar.

    Returns:
        The number, or None when it is not a finite number.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    number = _decimal(value)
    if number is None:
        return None
    if number == number.to_integral_value():
        return int(number)
    real = float(number)  # 400 digits and a fraction is beyond a float: inf
    return real if math.isfinite(real) else None


def to_bool(value: object) -> bool | None:
    """Read a flag written as a boolean, a string (`"true"`, `"0"`, ...) or 0/1.

    Args:
        value: A JSON scalar.

    Returns:
        The flag, or None when the value is not one.
    """
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        return None
    if isinstance(value, int):
        return bool(value) if value in {0, 1} else None
    return None


def in_date_range(milliseconds: int) -> bool:
    """Say whether epoch milliseconds fall in the years 1 to 9999.

    Args:
        milliseconds: Milliseconds since the Unix epoch.

    Returns:
        True when a date-time column (and Python) can represent the instant.
    """
    return MIN_UNIX_MS <= milliseconds <= MAX_UNIX_MS


def format_unix_ms(milliseconds: int) -> str:
    """Render epoch milliseconds as an RFC 3339 UTC timestamp with millisecond precision.

    Integer arithmetic avoids the float rounding of `fromtimestamp(ms / 1000)`, and
    the date-and-second part is cached: a batch's events share their seconds, and
    formatting a datetime is the dearest step per event.

    Args:
        milliseconds: Milliseconds since the Unix epoch, within `in_date_range`.

    Returns:
        A string such as `2020-07-23T22:19:23.908+00:00`.

    Raises:
        ValueError: The instant is outside the years 1 to 9999.
    """
    seconds, millis = divmod(milliseconds, 1000)
    prefix = _SECONDS_CACHE.get(seconds)
    if prefix is None:
        if not in_date_range(milliseconds):
            msg = f"timestamp {milliseconds} ms is outside the years 1 to 9999"
            raise ValueError(msg)
        if len(_SECONDS_CACHE) >= _SECONDS_CACHE_SIZE:
            _SECONDS_CACHE.clear()
        moment = EPOCH + dt.timedelta(seconds=seconds)
        prefix = f"{moment.year:04d}-{moment:%m-%dT%H:%M:%S}"
        _SECONDS_CACHE[seconds] = prefix
    return f"{prefix}.{millis:03d}+00:00"


_SECONDS_CACHE: dict[int, str] = {}
_SECONDS_CACHE_SIZE = 4096


def epoch_ms(value: object) -> int | None:
    """Read a moment given as epoch seconds or milliseconds (number or string) or ISO 8601.

    Seconds and milliseconds are told apart by magnitude (see `SECONDS_LIMIT`).

    Args:
        value: A JSON scalar, a datetime or a date.

    Returns:
        Epoch milliseconds, or None when the value names no moment.
    """
    if isinstance(value, str):
        day = _basic_date(value)
        if day is not None:
            value = day
        elif to_number(value) is None:
            value = _iso_datetime(value)
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        value = dt.datetime.combine(value, dt.time(), tzinfo=UTC)
    if isinstance(value, dt.datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
        delta = moment - EPOCH
        return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000
    number = to_number(value)
    if number is None:
        return None
    if abs(number) < SECONDS_LIMIT:
        return int(decimal.Decimal(str(number)) * 1000)
    return int(number)


def _basic_date(text: str) -> dt.date | None:
    """A date written `YYYYMMDD` (ISO 8601's basic form, a warehouse's date key).

    Read as a number it would be epoch seconds in 1970 (20261101 is 24 August 1970);
    eight digits that make a date between 1900 and 2199 are that date instead.
    """
    digits = text.strip()
    if len(digits) != BASIC_DATE_DIGITS or not (digits.isdigit() and digits.isascii()):
        return None
    year, month, day = int(digits[:4]), int(digits[4:6]), int(digits[6:])
    if not MIN_BASIC_YEAR <= year <= MAX_BASIC_YEAR:
        return None
    try:
        return dt.date(year, month, day)
    except ValueError:
        return None


BASIC_DATE_DIGITS = 8
MIN_BASIC_YEAR, MAX_BASIC_YEAR = 1900, 2199


def _iso_datetime(text: str) -> dt.datetime | None:
    stripped = text.strip()
    if stripped.endswith(("Z", "z")):
        stripped = stripped[:-1] + "+00:00"
    try:
        return fromisoformat(stripped)
    except ValueError:
        return None
