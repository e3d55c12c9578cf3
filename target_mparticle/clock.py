"""The wall clock, in one place, so tests can travel in time (time-machine patches it)."""

from __future__ import annotations

import datetime as dt


def now_ms() -> int:
    """Wall-clock milliseconds since the Unix epoch."""
    return int(dt.datetime.now(tz=dt.timezone.utc).timestamp() * 1000)
