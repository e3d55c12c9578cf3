"""Check a `--state` field by field before the tap reads anything.

The cursor (`cursor`), the late-file check (`late_files`) and the shard check
(`sharding`) each read their own fields of a stream's bookmark and trust their
types: a hand-edited or truncated-then-patched state with a number where a
timestamp belongs used to end in a traceback, after other streams had already
emitted records and STATE. Checked here, once, for every stream in the state
(selected or not), a bad field is one line naming the stream and the field and
quoting the start of the value, and nothing moves.

What each field may hold is what any version of the tap has written: a missing
field, or null or "" for a timestamp, means "nothing yet". Fields no version
writes (the SDK's own markers, say) are left alone.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any, NoReturn

from tap_mparticle.cursor import (
    REPLICATION_KEY,
    VERSIONS_KEY,
    format_timestamp,
    parse_timestamp,
)
from tap_mparticle.folders import UPLOAD_FOLDER_SLACK
from tap_mparticle.preflight import MAX_LOOKBACK_MINUTES

#: How much of a bad value the message quotes.
QUOTE_CHARS = 40
TIMESTAMP = "an ISO 8601 timestamp (in UTC, from year 2 to 9999)"
#: The most the cursor and the folder filter subtract from a stored timestamp (a
#: stamp nearer year 1 than this would overflow there).
WIDEST_WINDOW = dt.timedelta(minutes=MAX_LOOKBACK_MINUTES) + 2 * UPLOAD_FOLDER_SLACK


class StateShapeError(Exception):
    """A `--state` field holds something no version of the tap writes there."""


def singer_state(value: dict[str, Any], where: str) -> dict[str, Any] | None:
    """The state inside Meltano's wrapper, or None when `value` is a Singer state itself.

    `meltano state get` prints, and `tap_mparticle.reshard` keeps, `{"singer_state":
    {...}}`; the SDK reads such a file as a state with no bookmarks, and the run read
    the whole drop again. An object with neither is refused for the same reason.

    Raises:
        StateShapeError: A non-empty object that is no state.
    """
    if not value or "bookmarks" in value:
        return None
    inner = value.get("singer_state")
    if isinstance(inner, dict) and ("bookmarks" in inner or not inner):
        return inner
    keys = ", ".join(sorted(repr(key)[:40] for key in value)[:5])
    msg = (
        f"{where}: not a Singer state (it has no 'bookmarks', only {keys}); "
        "pass the last STATE message's value, or what `meltano state get` prints"
    )
    raise StateShapeError(msg)


def check_state(state: dict[str, Any]) -> None:
    """Refuse a state whose bookmarks the streams could not read.

    Args:
        state: The tap state (`{"bookmarks": {stream: bookmark}}`).

    Raises:
        StateShapeError: One message naming the stream, the field and the value.
    """
    if "bookmarks" not in state:
        return
    bookmarks = state["bookmarks"]
    if not isinstance(bookmarks, dict):
        _refuse("", "bookmarks must be an object of stream bookmarks", bookmarks)
    for stream, bookmark in bookmarks.items():
        where = f"stream {quote(stream)}"
        if not isinstance(bookmark, dict):
            _refuse(where, "the bookmark must be an object", bookmark)
        check_bookmark(where, bookmark)


def check_bookmark(where: str, bookmark: dict[str, Any]) -> None:
    """Check the fields of one stream's bookmark (see `cursor`, `late_files`, `sharding`).

    Args:
        where: e.g. `stream 'events'`, for the message.
        bookmark: The stream's bookmark dict.
    """
    key = bookmark.get("replication_key")
    if key is not None and key != REPLICATION_KEY:
        _refuse(where, f"replication_key must be {REPLICATION_KEY!r}", key)
    for field in ("replication_key_value", "files_read_floor"):
        _check_timestamp(where, field, bookmark.get(field))
    _check_history(where, bookmark.get("files_read"))
    _check_versions(where, bookmark.get(VERSIONS_KEY))
    _check_late_check(where, bookmark.get("late_check"))
    _check_shard(where, bookmark)
    markers = bookmark.get("progress_markers")
    if markers is not None and not isinstance(markers, dict):
        _refuse(where, "progress_markers must be an object", markers)
    partitions = bookmark.get("partitions")
    if partitions is not None and not (
        isinstance(partitions, list) and all(isinstance(p, dict) for p in partitions)
    ):
        _refuse(where, "partitions must be a list of objects", partitions)


def _check_timestamp(where: str, field: str, value: object) -> None:
    if value is None or value == "":
        return
    if not isinstance(value, str) or not _is_timestamp(value):
        _refuse(where, f"{field} must be {TIMESTAMP}", value)


def _check_history(where: str, history: object) -> None:
    if history is None:
        return
    if not isinstance(history, dict):
        _refuse(where, "files_read must be an object of file key to timestamp", history)
    for key, stamp in history.items():
        if not isinstance(stamp, str) or not _is_timestamp(stamp):
            _refuse(where, f"files_read[{quote(key)}] must be {TIMESTAMP}", stamp)


def _check_versions(where: str, versions: object) -> None:
    if versions is None:
        return
    if not isinstance(versions, dict):
        _refuse(where, f"{VERSIONS_KEY} must be an object of file key to version", versions)
    for key, version in versions.items():
        if not isinstance(version, str):
            _refuse(where, f"{VERSIONS_KEY}[{quote(key)}] must be a string", version)


def _check_late_check(where: str, entry: object) -> None:
    if entry is None:
        return
    if not isinstance(entry, dict):
        _refuse(where, "late_check must be an object", entry)
    for field in ("until", "start_date"):
        _check_timestamp(where, f"late_check.{field}", entry.get(field))
    count = entry.get("count", 0)
    if not _is_int(count) or count < 0:
        _refuse(where, "late_check.count must be a whole number from 0", count)
    xor = entry.get("xor", "0")
    if not isinstance(xor, str) or not _is_hex(xor):
        _refuse(where, "late_check.xor must be a hexadecimal string", xor)


def _check_shard(where: str, bookmark: dict[str, Any]) -> None:
    count = bookmark.get("shard_count", 1)
    if not _is_int(count) or count < 1:
        _refuse(where, "shard_count must be a whole number from 1", count)
    index = bookmark.get("shard_index", 0)
    if not _is_int(index) or not 0 <= index < count:
        _refuse(where, f"shard_index must be a whole number from 0 to {count - 1}", index)


def _is_timestamp(value: str) -> bool:
    """True for a timestamp the cursor can parse, render in UTC and step back from."""
    try:
        moment = parse_timestamp(value)
        format_timestamp(moment)
        _ = moment - WIDEST_WINDOW
    except (ValueError, OverflowError):
        return False
    return True


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_hex(value: str) -> bool:
    try:
        int(value, 16)
    except ValueError:
        return False
    return True


def quote(value: object) -> str:
    """The start of a value as JSON, on one line, e.g. `"garbage"` or `[1, 2, ...`."""
    try:
        text = json.dumps(value, ensure_ascii=True)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= QUOTE_CHARS else text[:QUOTE_CHARS] + "..."


def _refuse(where: str, rule: str, value: object) -> NoReturn:
    msg = f"{where + ': ' if where else ''}{rule}, not {quote(value)}"
    raise StateShapeError(msg)
