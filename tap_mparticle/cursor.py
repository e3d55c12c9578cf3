"""Which files to read, and what state remembers so each is read exactly once.

Why not just "LastModified greater than the bookmark": S3 stamps LastModified to the
second, mParticle can write several files in one second, a multipart upload is
stamped with the time it *started*, and a delayed forward can land a file whose
stamp is older than files already read. A strict `>` loses all of those; a `>=`
reads the bookmark's second twice.

The design (after airbyte's file-based cursor):

- `replication_key_value` is the greatest `_sdc_modified_at` read so far: the bookmark.
- The *window* is `[bookmark - lookback, +inf)`. Files stamped before the window
  are taken as read; this is what bounds state.
- `files_read` maps the key of every file read inside the window to the
  LastModified it had when read. A file is read when it is inside the window (and
  not before `start_date`) and `files_read` does not hold its key with the same
  LastModified. So a same-second file, a late file and an object overwritten under
  the same key are each read once, on the next run that sees them.
- `files_read_versions` maps the key of each file read at the bookmark's second to
  its version (`RemoteFile.version`: ETag, generation, mtime in nanoseconds). An
  object rewritten within the second it was read keeps its LastModified; its new
  version says it changed, and it is read again. Only the bookmark's second is kept,
  a few entries: a rewrite keeps its stamp when it starts in the second the first
  write did, and (but for a long multipart upload) lands while that second is still
  the newest. A key with no version (a state written before versions were kept) is
  taken as read at that LastModified, as then.
- After each file the entry is added and the bookmark moves up. Before each STATE
  is written (`compact`), entries that fell out of the window are dropped. If a
  burst still leaves more than `MAX_FILES_READ` entries, the oldest are dropped and
  `files_read_floor` records the newest dropped stamp: files at or before it are
  taken as read (a late file there would be missed, which is logged once per run;
  the alternative is state without bound).

Files are read in `(last_modified, key)` order. The stream writes STATE between
files (not after every one: see `client`), so a killed run resumes at the first
file not covered by the last STATE. Each step here costs O(1) per file; `compact`
costs O(history) and runs once per STATE, which the stream spaces out in
proportion to the history, so a run's work and its STATE volume grow with the
files read, not with their square.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import TYPE_CHECKING, Any

from mparticle_facts.numbers import fromisoformat

if TYPE_CHECKING:
    from tap_mparticle.storage import RemoteFile

MAX_FILES_READ = 10_000
#: How far past the run's start a stamp may be before it is called a clock error (a
#: file uploaded while the run lists is stamped after its start, and that is normal).
FUTURE_SLACK = dt.timedelta(hours=1)
REPLICATION_KEY = "_sdc_modified_at"
VERSIONS_KEY = "files_read_versions"

LOGGER = logging.getLogger(__name__)


def parse_timestamp(value: str) -> dt.datetime:
    """Parse an ISO 8601 timestamp, taking a naive one as UTC.

    Args:
        value: e.g. `2024-05-01T00:00:00Z` or `2024-05-01T00:00:00+00:00`.

    Returns:
        An aware datetime.
    """
    parsed = fromisoformat(value.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.timezone.utc)
    return parsed


def format_timestamp(value: dt.datetime) -> str:
    """Render a LastModified the same way everywhere (records, state, comparisons).

    Args:
        value: An aware datetime.

    Returns:
        ISO 8601 in UTC, e.g. `2024-05-01T00:00:00+00:00`.
    """
    return value.astimezone(dt.timezone.utc).isoformat()


class FileCursor:
    """The read-once bookkeeping of one stream, kept inside its state dict."""

    def __init__(
        self,
        state: dict[str, Any],
        *,
        start_date: dt.datetime | None,
        lookback: dt.timedelta,
        now: dt.datetime | None = None,
    ) -> None:
        """Load the bookmark and history from a stream's state dict (which it then updates).

        Args:
            state: The stream's bookmark dict; mutated in place as files are read.
            start_date: Files stamped before it are never read.
            lookback: How far before the bookmark late files are still looked for.
            now: When the run started (default: the clock); the bookmark never passes it.
        """
        self._now = now or dt.datetime.now(dt.timezone.utc)
        self._warned_future = False
        self._state = state
        self._start_date = start_date
        self._lookback = lookback
        value = state.get("replication_key_value")
        self.bookmark: dt.datetime | None = parse_timestamp(value) if value else None
        if self.bookmark is not None and self.bookmark > self._now:
            # Written by a version that let a future-stamped file move it: files after
            # it were taken as read. From the run's start, they are read.
            LOGGER.warning(
                "The state's bookmark %s is in the future: reading from the run's start",
                value,
            )
            self.bookmark = self._now
        floor = state.get("files_read_floor")
        self._floor: dt.datetime | None = parse_timestamp(floor) if floor else None
        if self._floor is not None and self._floor > self._now:
            self._floor = None  # the same fault's: no file is read after it
            del state["files_read_floor"]
        raw_history = state.get("files_read") or {}
        self._history: dict[str, str] = {str(key): str(stamp) for key, stamp in raw_history.items()}
        raw_versions = state.get(VERSIONS_KEY) or {}
        self._versions: dict[str, str] = {str(key): str(tag) for key, tag in raw_versions.items()}
        self._warned_floor = False

    @property
    def window_start(self) -> dt.datetime | None:
        """The earliest LastModified a file may have to still be read."""
        candidates = [
            moment
            for moment in (
                self._start_date,
                None if self.bookmark is None else self.bookmark - self._lookback,
            )
            if moment is not None
        ]
        return max(candidates) if candidates else None

    def should_read(self, file: RemoteFile) -> bool:
        """Decide whether a listed file is new to this stream.

        Args:
            file: A listed file.

        Returns:
            True when the file has not been read with this LastModified, or was
            read with it as another version (rewritten within the same second).
        """
        start = self.window_start
        if start is not None and file.last_modified < start:
            return False
        if self._floor is not None and file.last_modified <= self._floor:
            return False
        if self._history.get(file.key) != format_timestamp(file.last_modified):
            return True
        # Read at this very LastModified. An unknown version on either side (an older
        # state, a listing without one) is taken as the same file: no re-read.
        known = self._versions.get(file.key)
        return bool(known and file.version and known != file.version)

    @property
    def history_size(self) -> int:
        """How many files the history remembers now."""
        return len(self._history)

    def mark_read(self, file: RemoteFile) -> None:
        """Record a finished file and move the bookmark; the state dict is updated.

        Args:
            file: The file whose every record has been emitted (or skipped by policy).
        """
        self._history[file.key] = format_timestamp(file.last_modified)
        if file.version:
            self._versions[file.key] = file.version
        else:
            self._versions.pop(file.key, None)
        stamp = file.last_modified
        if stamp > self._now:
            # A local file's mtime can be anything (`touch`, a copy that kept a wrong
            # clock's time): stamped 2030, it moved the bookmark to 2030 and every file
            # stamped before 2030 minus the look-back was taken as read. The history
            # still holds its key and stamp, so it is not read again.
            stamp = self._now
            if file.last_modified - self._now > FUTURE_SLACK and not self._warned_future:
                self._warned_future = True
                LOGGER.warning(
                    "%s is stamped %s, in the future: read, but the bookmark stays at the "
                    "run's start (logged once per run)",
                    file.uri,
                    format_timestamp(file.last_modified),
                )
        if self.bookmark is None or stamp > self.bookmark:
            self.bookmark = stamp
        self._state["replication_key"] = REPLICATION_KEY
        self._state["replication_key_value"] = format_timestamp(self.bookmark)
        # The state holds the history itself, not a copy: no per-file copying.
        self._state["files_read"] = self._history
        self._state[VERSIONS_KEY] = self._versions

    def compact(self) -> None:
        """Drop history entries outside the window and cap it; call before writing STATE."""
        if "files_read" not in self._state:
            return  # nothing read yet: the state is as it was loaded
        start = self.window_start
        if start is not None:
            cutoff = format_timestamp(start)
            # ISO strings in one format and one zone sort like the instants they name.
            for key in [k for k, v in self._history.items() if v < cutoff]:
                del self._history[key]
        if len(self._history) > MAX_FILES_READ:
            ordered = sorted(self._history.items(), key=lambda item: (item[1], item[0]))
            dropped = ordered[: len(ordered) - MAX_FILES_READ]
            # Future stamps never make the floor (10,000 of them would put it past the
            # run's start, and every file stamped before taken as read).
            now = format_timestamp(self._now)
            past = [stamp for _, stamp in dropped if stamp <= now]
            if past and (self._floor is None or parse_timestamp(past[-1]) > self._floor):
                self._floor = parse_timestamp(past[-1])
            for key, _ in dropped:
                del self._history[key]
            if self._floor is not None and not self._warned_floor:
                self._warned_floor = True
                LOGGER.warning(
                    "More than %d files inside the look-back window; files stamped at or "
                    "before %s are now taken as read (logged once per run). Shorten the "
                    "look-back window if the drop is this busy.",
                    MAX_FILES_READ,
                    format_timestamp(self._floor),
                )
        if self._floor is not None:
            self._state["files_read_floor"] = format_timestamp(self._floor)
        self._compact_versions()

    def _compact_versions(self) -> None:
        """Keep versions only for files still remembered and stamped in the bookmark's second."""
        if self.bookmark is None:
            return
        second = format_timestamp(self.bookmark.replace(microsecond=0))
        # As in `compact`: "…:00+00:00" sorts before "…:00.5+00:00", so a local file's
        # sub-second stamp inside the bookmark's second is kept.
        for key in [k for k in self._versions if self._history.get(k, "") < second]:
            del self._versions[key]
        if self._versions:
            self._state[VERSIONS_KEY] = self._versions
        else:
            self._state.pop(VERSIONS_KEY, None)
