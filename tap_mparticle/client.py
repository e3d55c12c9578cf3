"""The file-reading stream every tap-mparticle stream is built on.

A subclass says which prefix it reads, which keys it ignores, and how one file's
bytes become records (`parse_file`). This class does the rest the same way for all
of them: listing with date-folder pruning, the read-once cursor (see `cursor`),
download-ahead, the `_sdc_*` provenance columns, the `on_bad_record` policy, and
STATE messages between files.

STATE is written after a file only when enough files (`STATE_EVERY_FILES`, or a
tenth of the remembered history, whichever is more) or seconds
(`STATE_EVERY_SECONDS`) have passed, at the end, and before a failure propagates:
each STATE carries the look-back history, so one per file would make state volume
grow with the square of the files in the window. It never runs ahead of the
records: it is written only between files, and counts only files wholly emitted.

Every exception a parser can raise on data (value ranges, nesting depth, archive
methods and encryption, CSV limits, decoding) ends as a `BadInputError` naming the
file, handled by `on_bad_record`; a read that fails mid-file is a `StorageError`.
"""

from __future__ import annotations

import abc
import csv
import functools
import logging
import math
import sys
import time
import zipfile
import zlib
from typing import IO, TYPE_CHECKING, Any, ClassVar, Protocol, cast

import botocore.exceptions
import msgspec
import urllib3.exceptions
from singer_sdk import Stream
from singer_sdk.helpers._util import utc_now
from singer_sdk.helpers.conform import TypeConformanceLevel
from singer_sdk.singerlib.messages import RecordMessage
from typing_extensions import override

from mparticle_facts.plugin_guards import one_line
from tap_mparticle.bad_input import SkippedInput
from tap_mparticle.cursor import REPLICATION_KEY, FileCursor, format_timestamp
from tap_mparticle.folders import FolderFilter
from tap_mparticle.late_files import LateFiles
from tap_mparticle.listing_log import Listing, log_listing
from tap_mparticle.parsers import BadInputError
from tap_mparticle.prefetch import prefetch
from tap_mparticle.storage import StorageError, read_error

if TYPE_CHECKING:
    from collections.abc import Generator, Iterable, Iterator

    from singer_sdk import Tap
    from singer_sdk.helpers.types import Context

    from tap_mparticle.settings import TapSettings
    from tap_mparticle.storage import RemoteFile, Storage

ParsedItem = dict[str, Any] | BadInputError

#: STATE after at least this many files (or a tenth of the history, if more) ...
STATE_EVERY_FILES = 100
#: ... or once this many seconds have passed since the last one.
STATE_EVERY_SECONDS = 10.0
_HISTORY_PER_STATE = 10

#: What parsing can raise on bad data when a parser did not name it itself.
DATA_ERRORS: tuple[type[BaseException], ...] = (
    ValueError,  # also UnicodeError, JSONDecodeError, int() over 4,300 digits
    OverflowError,
    RecursionError,
    NotImplementedError,  # zipfile: an unsupported compression method
    RuntimeError,  # zipfile: an encrypted member
    EOFError,
    csv.Error,
    zlib.error,
    zipfile.BadZipFile,
    msgspec.MsgspecError,
)
#: What reading the bytes can raise when the storage fails mid-file.
READ_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    botocore.exceptions.BotoCoreError,
    botocore.exceptions.ClientError,
    urllib3.exceptions.HTTPError,
)


class StreamHost(Protocol):
    """What a stream needs from its tap (the tap module sits above this one)."""

    settings: TapSettings
    storage: Storage
    #: Streams the run's input state has an entry for (a stream that has run before).
    streams_in_state: frozenset[str]


class MParticleFileStream(Stream, metaclass=abc.ABCMeta):
    """Records from the files under one prefix of the drop, read once each."""

    replication_key = REPLICATION_KEY
    # Files come in (last_modified, key) order, but a late file is older than the
    # bookmark by design, so the SDK's sort check would reject exactly what we want.
    is_sorted = False
    check_sorted = False

    #: The setting that holds this stream's prefix, and its default.
    prefix_setting: ClassVar[str]
    prefix_default: ClassVar[str]

    # Records are built with the declared types (see events.py) and tests validate
    # every one against the schema, so the SDK's per-field conformance pass, the
    # largest cost per record, has nothing to do.
    TYPE_CONFORMANCE_LEVEL = TypeConformanceLevel.NONE

    def __init__(self, tap: Tap) -> None:
        """Attach to the tap; counters start at zero.

        Args:
            tap: The tap, which owns the settings and the storage client.
        """
        super().__init__(tap)
        self.files_read = 0
        self.records_emitted = 0
        self.skipped = SkippedInput(self.name, self.logger)
        self._cursor: FileCursor | None = None
        self._files_since_state = 0
        self._last_state_at = time.monotonic()
        self._late: LateFiles | None = None

    @property
    def host(self) -> StreamHost:
        """What the stream needs from its tap: the settings and the storage client."""
        return cast("StreamHost", self._tap)

    @property
    def settings(self) -> TapSettings:
        """The tap's checked settings."""
        return self.host.settings

    @property
    def storage(self) -> Storage:
        """The one storage client every stream of the run shares."""
        return self.host.storage

    @property
    def prefix(self) -> str:
        """This stream's prefix, relative to `bucket_url`."""
        return self.settings.prefixes[self.prefix_setting]

    def relative_key(self, file: RemoteFile) -> str:
        """The file's key relative to `bucket_url` + this stream's prefix (`_sdc_source_file`).

        Args:
            file: A listed file (always under the prefix).

        Returns:
            e.g. `2024-05-01/App_20240501060000000000_29467.txt`.
        """
        return file.key.removeprefix(self.prefix)

    def accepts(self, file: RemoteFile) -> bool:  # noqa: ARG002  (a hook)
        """Say whether a listed file is one of this stream's (a hook; default: all).

        Args:
            file: A listed file.

        Returns:
            True to read it.
        """
        return True

    @abc.abstractmethod
    def parse_file(self, file: RemoteFile, stream: IO[bytes]) -> Iterator[ParsedItem]:
        """Turn one file's raw bytes into records.

        Yield a `BadInputError` (rather than raise it) for a problem confined to one
        line, so the `skip` policy can go on with the rest of the file; raise it when
        the rest of the file cannot be read. Records carry `_sdc_source_lineno`; this
        class adds the other provenance columns.

        Args:
            file: The file being read.
            stream: Its raw (possibly gzipped) bytes.
        """

    def list_new_files(self, cursor: FileCursor) -> list[RemoteFile]:
        """List this shard's unread files of the stream in the order they must be read.

        Folders are pruned as `date_folders_by` allows (see `folders`); files other
        shards own are passed over (see `sharding`).

        Args:
            cursor: The stream's read-once cursor.

        Returns:
            Files sorted by `(last_modified, key)`.
        """
        storage = self.storage
        shard = self.settings.shard
        shard.stamp_state(self.stream_state)
        skip_folder = FolderFilter(
            date_folders_by=self.settings.date_folders_by,
            excluded=self.settings.prefixes_inside(self.prefix_setting),
            start_date=self.settings.start_date,
            window_start=cursor.window_start,
        )
        listed = others = 0
        new: list[RemoteFile] = []
        late = LateFiles.begin(self.stream_state, self.settings.start_date, cursor.window_start)
        not_text: list[RemoteFile] = []
        for file in storage.list_files(self.prefix, skip_folder=skip_folder):
            listed += 1
            if not shard.owns(file.key):
                others += 1  # another shard's: not read, not remembered, not checked
            elif file.name_not_text:
                # A folder has no LastModified: it is reported on every run.
                if file.key.endswith("/") or cursor.should_read(file):
                    not_text.append(file)
            elif self.accepts(file):
                late.listed(file)
                if cursor.should_read(file):
                    new.append(file)
        new.sort(key=lambda f: (f.last_modified, f.key))
        place = (self.name, self.prefix, self.prefix_setting, storage.description)
        listing = Listing(*place, listed=listed, new=len(new), others=others)
        # A stream that listed nothing has no bookmark, but its run left an entry.
        first_run = cursor.bookmark is None and self.name not in self.host.streams_in_state
        log_listing(self.logger, listing, skip_folder, shard, first_run=first_run)
        self._late = late
        self.warn_late_files(late)
        for file in not_text:
            what = "folder" if file.key.endswith("/") else "file"
            self.handle_bad_input(
                BadInputError(
                    file.uri,
                    f"the {what}'s name is not UTF-8 text, so it cannot be a key and "
                    f"{'none of its files is' if what == 'folder' else 'it is not'} read; "
                    "rename it",
                )
            )
        return new

    def warn_late_files(self, late: LateFiles) -> None:
        """Warn about files that arrived after the last run, stamped before its window.

        Args:
            late: This run's check (see `late_files`).
        """
        count, named = late.late_arrivals()
        if not count or late.previous_until is None:
            return
        minutes = self.settings.lookback.total_seconds() / 60
        if named is None:
            self.logger.warning(
                "%s: %d files arrived since the last run stamped before its look-back "
                "window (%s) and were NOT read; raise lookback_window_minutes (now %d) "
                "to cover how late files land, and re-run from an earlier state to read them",
                self.name,
                count,
                format_timestamp(late.previous_until),
                minutes,
            )
            return
        late_by = (late.previous_until - named.last_modified).total_seconds() / 60
        self.logger.warning(
            "%s: %s arrived late and was NOT read: stamped %s, %.1f minutes before the "
            "look-back window began (%s). Set lookback_window_minutes (now %d) to at "
            "least %d to read files this late, and re-run from an earlier state to read it",
            self.name,
            one_line(named.uri),
            format_timestamp(named.last_modified),
            late_by,
            format_timestamp(late.previous_until),
            minutes,
            math.ceil(minutes + late_by),
        )

    def finish_files(self, cursor: FileCursor) -> None:
        """Remember what was listed before the window, for the next run's late-file check.

        Args:
            cursor: The stream's cursor after its files were read.
        """
        if self._late is not None and self._late.finish(cursor.window_start):
            self.state_manager.is_flushed = False
            self._write_state_message()

    def new_cursor(self) -> FileCursor:
        """The read-once cursor over this stream's state (see `cursor`)."""
        self._cursor = FileCursor(
            self.stream_state,
            start_date=self.settings.start_date,
            lookback=self.settings.lookback,
        )
        return self._cursor

    @override
    def get_records(self, context: Context | None) -> Iterable[dict[str, Any]]:
        cursor = self.new_cursor()
        files = self.list_new_files(cursor)
        started = time.monotonic()
        for file, raw in prefetch(self.storage, files, self.settings.download_concurrency):
            yield from self.emit_file(file, self.parse_file(file, raw), cursor)
        self.finish_files(cursor)
        self.log_summary(time.monotonic() - started)

    def emit_file(
        self,
        file: RemoteFile,
        items: Iterable[ParsedItem],
        cursor: FileCursor,
    ) -> Iterator[dict[str, Any]]:
        """Yield one file's records with provenance, then count the file as read.

        Bad items go through `on_bad_record`; with `skip`, a file whose rest cannot
        be read still counts as read (its intact records were emitted). STATE
        follows when due (see the module docstring), and before any failure
        propagates, so a stopped run resumes at the first file not wholly emitted.

        Args:
            file: The file.
            items: What `parse_file` (or a replay of it) yields for the file.
            cursor: The stream's cursor, moved past the file at the end.

        Yields:
            The file's records.

        Raises:
            StorageError: The file's bytes stopped coming (a dropped endpoint).
        """
        modified_at = format_timestamp(file.last_modified)
        source_file = self.relative_key(file)
        try:
            try:
                for item in items:
                    if isinstance(item, BadInputError):
                        self.handle_bad_input(item)
                        continue
                    item["_sdc_source_file"] = source_file
                    item["_sdc_source_uri"] = file.uri
                    item["_sdc_modified_at"] = modified_at
                    self.records_emitted += 1
                    yield item
            except BadInputError as exc:
                self.handle_bad_input(exc)
            except READ_ERRORS as exc:
                raise read_error(file, exc) from None
            except DATA_ERRORS as exc:
                reason = f"unreadable ({type(exc).__name__}: {exc})"
                self.handle_bad_input(BadInputError(file.uri, reason))
            self.skipped.file_done()
        except (BadInputError, StorageError):
            self._write_state_message()  # what was read before this file still counts
            raise
        cursor.mark_read(file)
        self.files_read += 1
        self.state_manager.is_flushed = False
        self._files_since_state += 1
        due = max(STATE_EVERY_FILES, cursor.history_size // _HISTORY_PER_STATE)
        if (
            self._files_since_state >= due
            or time.monotonic() - self._last_state_at >= STATE_EVERY_SECONDS
        ):
            self._write_state_message()

    @override
    def _write_state_message(self) -> None:
        if self.state_manager.is_flushed:
            return
        if self._cursor is not None:
            self._cursor.compact()
        super()._write_state_message()
        self._files_since_state = 0
        self._last_state_at = time.monotonic()

    @override
    def log(self, message: str, *args: Any, level: int = logging.INFO, **kwargs: Any) -> None:
        # The SDK logs a generic "unhandled error" line before re-raising; for our
        # own errors the tap logs one line that says it all (TapMParticle.invoke).
        if level >= logging.ERROR and isinstance(sys.exc_info()[1], (BadInputError, StorageError)):
            return
        super().log(message, *args, level=level, **kwargs)

    def handle_bad_input(self, error: BadInputError) -> None:
        """Apply `on_bad_record`: raise with `fail`, log and count with `skip`.

        With `skip`, a file's first bad items are logged one by one and the rest only
        counted (see `bad_input`).

        Args:
            error: What is wrong and where.

        Raises:
            BadInputError: The policy is `fail`.
        """
        if not self.settings.skip_bad_records:
            raise error
        self.skipped.skipped(error)

    def log_summary(self, seconds: float) -> None:
        """Log what the run did, and loudly what it skipped.

        Args:
            seconds: Wall time spent reading.
        """
        self.logger.info(
            "%s: read %d %s, emitted %d %s in %.1fs",
            self.name,
            self.files_read,
            "file" if self.files_read == 1 else "files",
            self.records_emitted,
            "record" if self.records_emitted == 1 else "records",
            seconds,
        )
        self.skipped.summary()

    @functools.cached_property
    def _deselected_properties(self) -> tuple[str, ...]:
        """Top-level columns the catalog deselects (the free-form objects have no sub-columns)."""
        return tuple(
            name for name in self.schema["properties"] if not self.mask[("properties", name)]
        )

    @override
    def _generate_record_messages(
        self, record: dict[str, Any]
    ) -> Generator[RecordMessage, None, None]:
        # The SDK walks every nested dict of every record looking for deselected
        # sub-properties; ours has none to find, so only top-level columns are popped.
        for name in self._deselected_properties:
            record.pop(name, None)
        extracted = utc_now()
        for stream_map in self.stream_maps:
            mapped = stream_map.transform(record)
            if mapped is not None:
                yield RecordMessage(
                    stream=stream_map.stream_alias,
                    record=mapped,
                    version=self._stream_version,
                    time_extracted=extracted,
                )

    @override
    def _increment_stream_state(
        self,
        latest_record: dict[str, Any],
        *,
        context: Context | None = None,
    ) -> None:
        # The cursor moves the bookmark per file, not per record: a file may hold
        # no records at all (batches without events) and must still count as read.
        return

    @override
    def get_replication_key_signpost(self, context: Context | None = None) -> None:
        # The SDK's signpost caps a per-record bookmark; ours is per file.
        return
