"""The two audience streams, which read the same files under `audiences_prefix`.

`audience_memberships` and `audience_user_attributes` both come out of every audience
file (only partner feed messages carry attribute changes, but which files do is
known only after reading them). Reading and parsing each file once per stream
would double the work; sharing one cursor would make the state wrong the moment
the two are selected differently from one run to the next (a file read for one
stream would count as read for the other). So:

- **Each stream keeps its own cursor and state** (the read-once cursor of
  `cursor`): a re-run emits nothing new for either, and selecting only one of
  them, or changing the selection between runs, is always correct.
- **One parse per file per run.** Whichever of the two syncs first parses each
  file once, emits its own records, and hands the other stream's records (if that
  stream is selected and has not synced yet) to the other stream's `Inbox`: a
  temporary file on disk, indexed by file key, LastModified and version, so memory
  stays bounded. When the other stream syncs, a file its own cursor wants is replayed
  from the inbox when it is there, and downloaded and parsed only when it is not
  (its cursor was behind the first stream's). Bad lines are reported once, by the
  stream that parsed them.

Files are read in `(last_modified, key)` order with a STATE message after each,
as in `MParticleFileStream`; this module only swaps where a file's records come
from. Shape detection and parsing live in `audiences` (pure, no S3, no SDK).
"""

from __future__ import annotations

import tempfile
import time
from typing import IO, TYPE_CHECKING, Any, ClassVar

import msgspec
from singer_sdk import typing as th
from typing_extensions import override

from mparticle_facts.identities import IdentityNormalizer
from mparticle_facts.plugin_guards import one_line
from tap_mparticle.audience_download import (
    MANIFEST_NAME,
    MAX_MANIFEST_BYTES,
    Manifest,
    read_manifest,
)
from tap_mparticle.audience_records import MEMBERSHIPS, USER_ATTRIBUTES, AudienceFile
from tap_mparticle.audiences import is_validation_file, parse_audience_file
from tap_mparticle.client import MParticleFileStream, ParsedItem
from tap_mparticle.cursor import format_timestamp
from tap_mparticle.parsers import BadInputError
from tap_mparticle.prefetch import prefetch
from tap_mparticle.schema_objects import PROVENANCE
from tap_mparticle.storage import RemoteFile, StorageError

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

    from singer_sdk import Tap
    from singer_sdk.helpers.types import Context


SOURCE_FORMATS = ["download", "firehose", "cloud_storage", "partner_feed"]

#: Key columns after the file: see `audience_records` for why these are stable.
AUDIENCE_KEY = [
    "_sdc_source_file",
    "_sdc_source_member",
    "_sdc_source_lineno",
    "_sdc_record_index",
]

_AUDIENCE_KEY_COLUMNS = (
    th.Property(
        "_sdc_source_member",
        th.StringType(nullable=False),
        required=True,
        description='The CSV inside a downloaded ZIP the row came from; "-" for other files.',
    ),
    th.Property(
        "_sdc_record_index",
        th.IntegerType(nullable=False),
        required=True,
        description=(
            "0-based position of the record among this stream's records from the same "
            "line or row (part of the primary key)."
        ),
    ),
)


class Inbox:
    """Records one audience stream parsed for the other during this run, spooled to disk."""

    def __init__(self) -> None:
        """Start empty; the spool file is created on the first record."""
        self._spool: IO[bytes] | None = None
        self._start = 0
        self._files: dict[tuple[str, str, str], tuple[int, int]] = {}
        self._encode = msgspec.json.Encoder().encode
        self._decode = msgspec.json.Decoder().decode

    def begin(self, file: RemoteFile) -> None:  # noqa: ARG002  (symmetry with finish)
        """Start collecting a file's records.

        Args:
            file: The file being parsed.
        """
        self._start = self._tell()

    def add(self, record: dict[str, Any]) -> None:
        """Keep one record of the file being parsed.

        Args:
            record: A record without the file-level provenance columns.
        """
        if self._spool is None:
            self._spool = tempfile.TemporaryFile(prefix="tap-mparticle-inbox-")  # noqa: SIM115  (lives as long as the inbox)
        self._spool.seek(0, 2)
        self._spool.write(self._encode(record) + b"\n")

    def finish(self, file: RemoteFile) -> None:
        """Mark the file as completely parsed, so the other stream need not parse it.

        Args:
            file: The file just parsed.
        """
        self._files[_file_id(file)] = (self._start, self._tell())

    def has(self, file: RemoteFile) -> bool:
        """Say whether this exact file (key and LastModified) was parsed this run.

        Args:
            file: A file the stream's cursor wants.

        Returns:
            True when its records are here.
        """
        return _file_id(file) in self._files

    def replay(self, file: RemoteFile) -> Iterator[dict[str, Any]]:
        """Give back a file's records in the order they were parsed.

        Args:
            file: A file for which `has` is true.

        Yields:
            Its records.
        """
        start, end = self._files[_file_id(file)]
        if self._spool is None or start == end:
            return
        self._spool.seek(start)
        while self._spool.tell() < end:
            line = self._spool.readline()
            position = self._spool.tell()
            yield self._decode(line)
            self._spool.seek(position)  # the consumer may have added records meanwhile

    def close(self) -> None:
        """Delete the spool file."""
        if self._spool is not None:
            self._spool.close()
            self._spool = None
        self._files.clear()

    def _tell(self) -> int:
        if self._spool is None:
            return 0
        self._spool.seek(0, 2)
        return self._spool.tell()


def _file_id(file: RemoteFile) -> tuple[str, str, str]:
    # The version too: the other stream may list the key rewritten within the second.
    return file.key, format_timestamp(file.last_modified), file.version


class AudienceFileStream(MParticleFileStream):
    """What both audience streams share: the prefix, the files, the parse, the hand-over."""

    prefix_setting = "audiences_prefix"
    prefix_default = "audiences/"
    primary_keys: ClassVar[list[str]] = AUDIENCE_KEY
    #: The other audience stream's name.
    sibling_name: ClassVar[str]

    def __init__(self, tap: Tap) -> None:
        """Set up the identity normaliser, the manifest cache and an empty inbox.

        Args:
            tap: The tap.
        """
        super().__init__(tap)
        self.inbox = Inbox()
        self.sync_started = False
        self._normalize = IdentityNormalizer(self._warn_unknown_identity)
        self._manifests: dict[str, Manifest | None] = {}
        self._hand_over_to: AudienceFileStream | None = None
        #: The other audience stream of this tap (set by the tap, which builds both).
        self.sibling: AudienceFileStream | None = None

    @override
    def accepts(self, file: RemoteFile) -> bool:
        name = file.key.rsplit("/", 1)[-1]
        # The validation file is empty (and listing skips empty files anyway); a
        # download's manifest is read with its CSVs, not as data.
        return not is_validation_file(name) and name != MANIFEST_NAME

    @override
    def parse_file(self, file: RemoteFile, stream: IO[bytes]) -> Iterator[ParsedItem]:
        audience_file = AudienceFile(
            location=file.uri,
            name=file.key.rsplit("/", 1)[-1],
            normalize=self._normalize,
            identity_types=self.settings.identity_types,
        )
        other = self._hand_over_to
        if other is not None:
            other.inbox.begin(file)
        try:
            for item in parse_audience_file(stream, audience_file, lambda: self._manifest(file)):
                if isinstance(item, BadInputError):
                    yield item
                    continue
                kind, record = item
                if kind == self.name:
                    yield record
                elif other is not None:
                    other.inbox.add(record)
        except BadInputError:
            # The rest of the file is unreadable: what was read counts, for both streams.
            if other is not None:
                other.inbox.finish(file)
            raise
        if other is not None:
            other.inbox.finish(file)

    @override
    def get_records(self, context: Context | None) -> Iterable[dict[str, Any]]:
        self.sync_started = True
        sibling = self.sibling
        self._hand_over_to = (
            sibling
            if sibling is not None and sibling.selected and not sibling.sync_started
            else None
        )
        try:
            yield from self._read_files()
        except BaseException:
            # The sync stops here (a bad record with `fail`, or the generator closed):
            # the sibling may never run to replay its inbox, so its spool file is
            # closed now rather than left open; a sibling that does run re-parses.
            if self._hand_over_to is not None:
                self._hand_over_to.inbox.close()
            raise
        finally:
            self.inbox.close()
            self._hand_over_to = None

    def _read_files(self) -> Iterator[dict[str, Any]]:
        cursor = self.new_cursor()
        files = self.list_new_files(cursor)
        to_parse = [file for file in files if not self.inbox.has(file)]
        if len(to_parse) < len(files):
            self.logger.info(
                "%s: %d files already parsed by %s in this run, %d to read",
                self.name,
                len(files) - len(to_parse),
                self.sibling_name,
                len(to_parse),
            )
        downloads = prefetch(self.storage, to_parse, self.settings.download_concurrency)
        started = time.monotonic()
        try:
            for file in files:
                items: Iterable[ParsedItem]
                if self.inbox.has(file):
                    items = self.inbox.replay(file)
                else:
                    _, raw = next(downloads)
                    items = self.parse_file(file, raw)
                yield from self.emit_file(file, items, cursor)
        finally:
            downloads.close()  # type: ignore[attr-defined]  # a generator
        self.finish_files(cursor)
        self.log_summary(time.monotonic() - started)
        self._log_unwarned_identities()

    def _manifest(self, file: RemoteFile) -> Manifest | None:
        """Read (once per folder) the `manifest.json` next to an unzipped download CSV."""
        folder_key = file.key.rsplit("/", 1)[0] if "/" in file.key else ""
        if folder_key in self._manifests:
            return self._manifests[folder_key]
        key = f"{folder_key}/{MANIFEST_NAME}" if folder_key else MANIFEST_NAME
        uri = f"{file.uri.rsplit('/', 1)[0]}/{MANIFEST_NAME}"
        manifest_file = RemoteFile(key=key, uri=uri, last_modified=file.last_modified, size=0)
        manifest: Manifest | None = None
        try:
            with self.storage.open(manifest_file) as stream:
                data = stream.read(MAX_MANIFEST_BYTES + 1)  # one more: to tell it is over
        except (StorageError, OSError, ValueError):
            self.logger.warning(
                "%s: no readable %s next to %s: row counts of the CSVs in %s are not checked",
                self.name,
                MANIFEST_NAME,
                one_line(file.uri),
                one_line(folder_key) or "the prefix",
            )
        else:
            manifest = read_manifest(data, uri)
        self._manifests[folder_key] = manifest
        return manifest

    def _warn_unknown_identity(self, name: str, kept_as: str) -> None:
        self.logger.warning(
            "%s: identity type %r is in no table of known spellings; kept as %r",
            self.name,
            name,
            kept_as,
        )
        if self._normalize.warned == self._normalize.MAX_WARNED:
            self.logger.warning(
                "%s: further identity types in no table are kept in snake_case and "
                "counted, not named one by one (the count is logged at the end)",
                self.name,
            )

    def _log_unwarned_identities(self) -> None:
        normalize = self._normalize
        if not normalize.unwarned:
            return
        repeats = (
            f" (sightings past the first {normalize.MAX_MEMO} names: a name may count twice)"
            if normalize.memo_full
            else ""
        )
        self.logger.warning(
            "%s: %d further identity type names in no table of known spellings were "
            "kept in snake_case%s",
            self.name,
            normalize.unwarned,
            repeats,
        )


class AudienceMembershipsStream(AudienceFileStream):
    """One row per audience, user and identity in each membership message or download row."""

    name = MEMBERSHIPS
    sibling_name = USER_ATTRIBUTES

    schema = th.PropertiesList(
        th.Property(
            "audience_id",
            th.IntegerType(nullable=False),
            required=True,
            description="mParticle's audience id (immutable, even when the audience is renamed).",
        ),
        th.Property(
            "audience_name",
            th.StringType(),
            description="The audience's name as the source gave it (external name first).",
        ),
        th.Property(
            "variant",
            th.StringType(),
            description="The A/B test variant, where the source names one; else null.",
        ),
        th.Property(
            "mpid",
            th.IntegerType(),
            description="mParticle ID of the user (may be negative); null when not sent.",
        ),
        th.Property(
            "identity_type",
            th.StringType(),
            description=(
                "Identity type, normalised to the Events API's names (customer_id, email, "
                "other_id_3, android_advertising_id, ...); null when the message had none."
            ),
        ),
        th.Property("identity_value", th.StringType(), description="The identity's value."),
        th.Property(
            "identity_encoding",
            th.StringType(nullable=False),
            required=True,
            allowed_values=["raw", "md5", "sha1", "sha256"],
            description="raw, or the hash the partner feed says the value is (md5, sha1, sha256).",
        ),
        th.Property(
            "action",
            th.StringType(nullable=False),
            required=True,
            allowed_values=["add", "remove"],
            description="add or remove (a download row is an add).",
        ),
        th.Property(
            "timestamp",
            th.DateTimeType(nullable=False),
            required=True,
            description="When membership changed, or when the download scanned it (UTC).",
        ),
        th.Property(
            "source_format",
            th.StringType(nullable=False),
            required=True,
            allowed_values=SOURCE_FORMATS,
            description="download, firehose, cloud_storage or partner_feed.",
        ),
        *_AUDIENCE_KEY_COLUMNS,
        *PROVENANCE,
    ).to_dict()


class AudienceUserAttributesStream(AudienceFileStream):
    """One row per user attribute change that arrives with audience data (partner feed)."""

    name = USER_ATTRIBUTES
    sibling_name = MEMBERSHIPS

    schema = th.PropertiesList(
        th.Property(
            "audience_id",
            th.IntegerType(nullable=False),
            required=True,
            description="mParticle's audience id the change arrived with.",
        ),
        th.Property("audience_name", th.StringType(), description="The audience's name."),
        th.Property(
            "mpid",
            th.IntegerType(),
            description="mParticle ID of the user (may be negative); null when not sent.",
        ),
        th.Property(
            "key",
            th.StringType(nullable=False),
            required=True,
            description="The user attribute's name.",
        ),
        th.Property(
            "value",
            th.StringType(),
            description="The new value (as mParticle sends it, a string); null on delete.",
        ),
        th.Property(
            "list_value",
            th.ArrayType(th.StringType()),
            description="The new value of a list attribute; null otherwise and on delete.",
        ),
        th.Property(
            "action",
            th.StringType(nullable=False),
            required=True,
            allowed_values=["upsert", "delete"],
            description="upsert or delete.",
        ),
        th.Property(
            "timestamp",
            th.DateTimeType(nullable=False),
            required=True,
            description="When mParticle sent the change (UTC).",
        ),
        th.Property(
            "source_format",
            th.StringType(nullable=False),
            required=True,
            allowed_values=["partner_feed"],
            description="Where the change came from (only partner feed messages carry them).",
        ),
        *_AUDIENCE_KEY_COLUMNS,
        *PROVENANCE,
    ).to_dict()
