"""Say so when a file lands too late for the look-back window, instead of skipping it quietly.

The cursor (see `cursor`) reads a file stamped before `bookmark - lookback` only if it
was never seen, which it cannot tell once the key has left `files_read`; so such a
file is taken as read. Whether one arrived late is still knowable with a few bytes
of state: at the end of each run the stream stores, for every listed file stamped
before the window's start (`until`), their count and the XOR of a hash of each
`key@LastModified`. The next run computes the same over the files it lists that are
stamped before that same `until`. Equal: nothing arrived late. More files: that many
arrived after the last run although stamped before its window, and were not read.
When exactly one did, the XOR difference is its hash, which names it; the warning
says how late it was and which setting to raise (`lookback_window_minutes`).
Fewer files (deletions) or a changed `start_date` are not late arrivals and say nothing.
"""

from __future__ import annotations

import array
import dataclasses
import datetime as dt
import hashlib
from typing import TYPE_CHECKING, Any

from tap_mparticle.cursor import format_timestamp, parse_timestamp

if TYPE_CHECKING:
    from tap_mparticle.storage import RemoteFile

STATE_KEY = "late_check"
#: How far before the last window a single late file is still named (older ones are
#: counted only, so the names held in memory stay few).
NAMING_SPAN = dt.timedelta(days=7)
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
_MICROSECOND = dt.timedelta(microseconds=1)


def _micros(moment: dt.datetime) -> int:
    """Microseconds since the epoch, exactly (a float timestamp could round)."""
    return (moment - _EPOCH) // _MICROSECOND


def file_hash(file: RemoteFile) -> int:
    """A 64-bit hash of the file's key and LastModified (stable across runs and machines)."""
    text = f"{file.key}@{format_timestamp(file.last_modified)}".encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "big")


@dataclasses.dataclass
class Digest:
    """Count and XOR of the hashes of a set of files."""

    count: int = 0
    xor: int = 0

    def add(self, hashed: int) -> None:
        """Add one file, by its `file_hash`."""
        self.count += 1
        self.xor ^= hashed


@dataclasses.dataclass
class LateFiles:
    """One run's late-file check for one stream."""

    state: dict[str, Any]
    start_date: dt.datetime | None
    previous_until: dt.datetime | None = None
    previous: Digest = dataclasses.field(default_factory=Digest)
    seen_before: Digest = dataclasses.field(default_factory=Digest)
    listed_start: dt.datetime | None = None
    below_start: Digest = dataclasses.field(default_factory=Digest)
    #: Stamp (`_micros`) and hash of each file listed inside the window, whose side of
    #: the final window start is known only after the run. On a first run that is
    #: every file, so they are kept as two machine arrays (16 bytes a file), not
    #: as tuples of objects (about 100).
    in_window_at: array.array[int] = dataclasses.field(default_factory=lambda: array.array("q"))
    in_window_hash: array.array[int] = dataclasses.field(default_factory=lambda: array.array("Q"))
    #: Files that could be the one late arrival, by hash (only recent ones: memory).
    candidates: dict[int, RemoteFile] = dataclasses.field(default_factory=dict)

    @classmethod
    def begin(
        cls, state: dict[str, Any], start_date: dt.datetime | None, window_start: dt.datetime | None
    ) -> LateFiles:
        """Read the last run's digest from the stream's state.

        Args:
            state: The stream's state dict.
            start_date: The configured start_date (a change resets the check).
            window_start: The cursor's window start at listing time.

        Returns:
            The check, ready for `listed` calls.
        """
        check = cls(state=state, start_date=start_date, listed_start=window_start)
        stored = state.get(STATE_KEY)
        same_start = isinstance(stored, dict) and stored.get("start_date") == _stamp(start_date)
        if isinstance(stored, dict) and same_start and stored.get("until"):
            check.previous_until = parse_timestamp(str(stored["until"]))
            check.previous = Digest(
                int(stored.get("count", 0)), int(str(stored.get("xor", "0")), 16)
            )
        return check

    def listed(self, file: RemoteFile) -> None:
        """Take in one listed file of this stream (read or not)."""
        hashed = file_hash(file)
        if self.previous_until is not None and file.last_modified < self.previous_until:
            self.seen_before.add(hashed)
            if file.last_modified >= self.previous_until - NAMING_SPAN:
                self.candidates[hashed] = file
        if self.listed_start is not None and file.last_modified < self.listed_start:
            self.below_start.add(hashed)
        else:
            self.in_window_at.append(_micros(file.last_modified))
            self.in_window_hash.append(hashed)

    def late_arrivals(self) -> tuple[int, RemoteFile | None]:
        """How many files arrived late since the last run, and which when exactly one.

        Returns:
            (count, the file or None).
        """
        if self.previous_until is None:
            return 0, None
        extra = self.seen_before.count - self.previous.count
        if extra <= 0:
            return 0, None
        named = (
            self.candidates.get(self.seen_before.xor ^ self.previous.xor) if extra == 1 else None
        )
        return extra, named

    def finish(self, window_start: dt.datetime | None) -> bool:
        """Store this run's digest for files before the window's final start.

        Args:
            window_start: The cursor's window start after the run's files were read.

        Returns:
            True when the state changed (a STATE message should follow).
        """
        if window_start is None:
            return False
        digest = Digest(self.below_start.count, self.below_start.xor)
        before = _micros(window_start)
        for at, hashed in zip(self.in_window_at, self.in_window_hash, strict=True):
            if at < before:
                digest.add(hashed)
        entry = {
            "until": format_timestamp(window_start),
            "start_date": _stamp(self.start_date),
            "count": digest.count,
            "xor": f"{digest.xor:016x}",
        }
        if self.state.get(STATE_KEY) == entry:
            return False
        self.state[STATE_KEY] = entry
        return True


def _stamp(moment: dt.datetime | None) -> str | None:
    return None if moment is None else format_timestamp(moment)
