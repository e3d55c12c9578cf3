"""The audience download: a ZIP of CSVs and `manifest.json`, or the same files unzipped.

A ZIP's directory is at its end, so reading one needs random access; the archive is
spooled to a temporary file on disk (never into memory) and read member by member,
each CSV streamed line by line.

Each CSV is named `<audience id>_<audience name>_<stamp>.csv` and starts with the
header `mpid, scanned_timestamp_ms, identity_value, identity_type` (with spaces);
columns are found by header name, not position. Every row is an `add` as of the
scan. `manifest.json` lists each file's `total_rows`; a CSV whose row count
differs, a CSV the manifest does not list, and a listed file the ZIP lacks are bad
input, reported after the file's rows (which have been emitted by then: the file is
streamed, not held).

A/B variants: mParticle names a variant audience `[Audience Name] - [Variant Name]`,
so a CSV whose audience name holds ` - ` is read as that variant (a `variant` or
`variant_name` in the manifest's file entry wins).
"""

from __future__ import annotations

import csv
import dataclasses
import gzip
import re
import shutil
import tempfile
import zipfile
import zlib
from typing import IO, TYPE_CHECKING, Any

import msgspec

from mparticle_facts.identities import is_mpid_key
from tap_mparticle.audience_records import (
    MEMBERSHIPS,
    NOT_IN_ARCHIVE,
    AudienceFile,
    AudienceItem,
    NotAudienceError,
    RecordNumberer,
    membership,
    required_timestamp,
    to_mpid,
)
from tap_mparticle.parsers import (
    BadInputError,
    OverlongLine,
    iter_lines,
    overlong,
    trailer_error_of,
)

if TYPE_CHECKING:
    from collections.abc import Generator, Iterator

ZIP_MAGIC = b"PK\x03\x04"
MANIFEST_NAME = "manifest.json"
CSV_COLUMNS = ("mpid", "scanned_timestamp_ms", "identity_value", "identity_type")
VARIANT_SEPARATOR = " - "
SPOOL_CHUNK = 1 << 20
#: Largest manifest.json read (it is read whole, so this bounds memory).
MAX_MANIFEST_BYTES = 16 << 20
#: Largest CSV inside a ZIP, as its directory declares it (the reader never goes past
#: the declared size, so this bounds what one member can emit).
MAX_MEMBER_BYTES = 8 << 30
#: What reading an archive member can raise on bad data: unsupported compression
#: methods (NotImplementedError), the encrypted flag (RuntimeError), bad CRCs, and
#: OSError for an offset in the archive that points before its start (a seek to a
#: negative position: EINVAL). The archive is wholly spooled to a local file before
#: zipfile reads it (`parse_download_zip`), so no OSError here is a storage failure.
_MEMBER_ERRORS = (
    zipfile.BadZipFile,
    zlib.error,
    EOFError,
    NotImplementedError,
    RuntimeError,
    OSError,
)
_CSV_NAME = re.compile(r"^(?P<id>-?\d+)_(?P<rest>.+?)\.csv$", re.IGNORECASE)
_BOM = b"\xef\xbb\xbf"


@dataclasses.dataclass(frozen=True)
class ManifestEntry:
    """What `manifest.json` says about one CSV."""

    total_rows: int | None
    variant: str | None = None


@dataclasses.dataclass(frozen=True)
class Manifest:
    """A parsed `manifest.json`."""

    files: dict[str, ManifestEntry]
    audience_ids: tuple[int, ...] = ()


def read_manifest(data: bytes, location: str) -> Manifest:
    """Parse `manifest.json`.

    Args:
        data: Its bytes.
        location: Where it is, for messages.

    Returns:
        The manifest.

    Raises:
        BadInputError: It is not a JSON object with a `files` array, or a file's
            variant is an object or an array.
    """
    if len(data) > MAX_MANIFEST_BYTES:
        msg = f"manifest.json is over the {MAX_MANIFEST_BYTES} byte limit"
        raise BadInputError(location, msg)
    try:
        document = msgspec.json.decode(data.removeprefix(_BOM))
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError) as exc:
        msg = f"manifest.json is not valid JSON ({exc})"
        raise BadInputError(location, msg) from None
    files = document.get("files") if isinstance(document, dict) else None
    if not isinstance(files, list):
        msg = "manifest.json has no files array"
        raise BadInputError(location, msg)
    entries: dict[str, ManifestEntry] = {}
    for entry in files:
        if isinstance(entry, dict) and isinstance(entry.get("file_name"), str):
            rows = entry.get("total_rows")
            variant = entry.get("variant_name") or entry.get("variant")
            if isinstance(variant, (dict, list)):  # its repr would become the variant
                msg = f"manifest.json names the variant of {entry['file_name']!r:.80} not as text"
                raise BadInputError(location, msg)
            entries[entry["file_name"]] = ManifestEntry(
                total_rows=rows if isinstance(rows, int) and not isinstance(rows, bool) else None,
                variant=str(variant) if variant else None,
            )
    ids = document.get("audience_ids") or []
    audience_ids = tuple(i for i in ids if isinstance(i, int)) if isinstance(ids, list) else ()
    return Manifest(entries, audience_ids)


def header_columns(line: bytes) -> dict[str, int] | None:
    """Recognise the download CSV header and find each column.

    Args:
        line: The file's first line.

    Returns:
        Column name -> position, or None when this is not the header.
    """
    names = [
        part.strip().strip('"').lower()
        for part in line.removeprefix(_BOM).decode("utf-8", "replace").split(",")
    ]
    if sorted(names) != sorted(CSV_COLUMNS):
        return None
    return {name: names.index(name) for name in CSV_COLUMNS}


def is_download_csv(head: bytes) -> bool:
    """Say whether a file's first bytes are a download CSV's header.

    Args:
        head: The first bytes of the decompressed file.

    Returns:
        True when the first line is the header.
    """
    return header_columns(head.split(b"\n", 1)[0].strip()) is not None


def audience_of_csv(name: str, manifest: Manifest | None) -> tuple[int, str | None, str | None]:
    """Read a CSV's audience id, name and variant from its file name.

    Args:
        name: e.g. `8754_PotentialParisians_172136Nov292018.csv`.
        manifest: The manifest, for a variant it names or a sole audience id.

    Returns:
        `(audience id, audience name, variant)`.

    Raises:
        NotAudienceError: No audience id in the name or the manifest.
    """
    entry = manifest.files.get(name) if manifest is not None else None
    match = _CSV_NAME.match(name)
    if match is None:
        if manifest is not None and len(manifest.audience_ids) == 1:
            variant = entry.variant if entry is not None else None
            return manifest.audience_ids[0], None, variant
        msg = "the CSV's name does not start with its audience id (<id>_<name>_<stamp>.csv)"
        raise NotAudienceError(msg)
    rest = match["rest"]
    audience_name = rest.rsplit("_", 1)[0] if "_" in rest else rest
    variant = entry.variant if entry is not None else None
    if variant is None and VARIANT_SEPARATOR in audience_name:
        audience_name, variant = audience_name.rsplit(VARIANT_SEPARATOR, 1)
    return int(match["id"]), audience_name, variant


def parse_download_csv(  # noqa: C901, PLR0913  (one loop with its error cases side by side)
    stream: IO[bytes],
    file: AudienceFile,
    *,
    csv_name: str,
    location: str,
    manifest: Manifest | None,
    member: str = NOT_IN_ARCHIVE,
) -> Iterator[AudienceItem]:
    """Parse one audience CSV, then check its row count against the manifest.

    Args:
        stream: Its decompressed bytes.
        file: The file (the ZIP, or the CSV itself).
        csv_name: The CSV's own name (the manifest's `file_name`).
        location: Where the CSV is, for messages (`zip!/member` inside a ZIP).
        manifest: The manifest next to it, or None when there is none.
        member: The archive member, `NOT_IN_ARCHIVE` ("-") outside a ZIP.

    Yields:
        Membership records, or a `BadInputError` per bad row and for a count mismatch.

    Raises:
        BadInputError: The CSV has no header or names no audience.
    """
    try:
        audience_id, audience_name, variant = audience_of_csv(csv_name, manifest)
    except NotAudienceError as exc:
        raise BadInputError(location, str(exc)) from None
    numberer = RecordNumberer(file, member)
    columns: dict[str, int] | None = None
    rows = 0
    for lineno, line in iter_lines(stream, location):
        if columns is None:
            columns = header_columns(line)
            if columns is None:
                msg = "no header: " + ", ".join(CSV_COLUMNS)
                raise BadInputError(location, msg, lineno)
            continue
        rows += 1
        if isinstance(line, OverlongLine):
            yield overlong(location, lineno)
            continue
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as exc:
            yield BadInputError(location, f"bytes that are not UTF-8 at offset {exc.start}", lineno)
            continue
        try:
            fields = next(csv.reader((text,), skipinitialspace=True), [])
        except csv.Error as exc:  # e.g. a field over csv.field_size_limit() (131,072)
            yield BadInputError(location, f"not a CSV row ({exc})", lineno)
            continue
        if len(fields) != len(CSV_COLUMNS):
            yield BadInputError(
                location, f"{len(fields)} columns, expected {len(CSV_COLUMNS)}", lineno
            )
            continue
        try:
            record = _row_record(
                fields,
                columns,
                audience_id=audience_id,
                audience_name=audience_name,
                variant=variant,
                file=file,
            )
        except NotAudienceError as exc:
            yield BadInputError(location, str(exc), lineno)
            continue
        yield from numberer.number(lineno, [(MEMBERSHIPS, record)])
    if manifest is not None:
        entry = manifest.files.get(csv_name)
        if entry is None:
            yield BadInputError(location, "the CSV is not listed in manifest.json")
        elif entry.total_rows is not None and entry.total_rows != rows:
            reason = f"manifest.json says {entry.total_rows} rows, the CSV has {rows}"
            yield BadInputError(location, reason)


def _row_record(  # noqa: PLR0913  (a row and its audience)
    fields: list[str],
    columns: dict[str, int],
    *,
    audience_id: int,
    audience_name: str | None,
    variant: str | None,
    file: AudienceFile,
) -> dict[str, Any]:
    def field(name: str) -> str:
        return fields[columns[name]].strip()

    raw_type = field("identity_type")
    value = field("identity_value")
    mpid = to_mpid(field("mpid"))
    identity_type: str | None = None
    identity_value: str | None = None
    if bool(raw_type) != bool(value):  # half an identity: dropping it would lose it
        missing = "identity_type" if value else "identity_value"
        msg = f"an identity with no {missing}"
        raise NotAudienceError(msg)
    if raw_type and is_mpid_key(raw_type):  # the MPID written as an identity
        mpid = to_mpid(value) if mpid is None else mpid
    elif raw_type:
        identity_type = file.normalize(raw_type)
        identity_value = value
    return membership(
        audience_id=audience_id,
        audience_name=audience_name,
        variant=variant,
        mpid=mpid,
        identity_type=identity_type,
        identity_value=identity_value,
        action="add",
        timestamp=required_timestamp(field("scanned_timestamp_ms"), "scanned_timestamp_ms"),
        source_format="download",
    )


def parse_download_zip(stream: IO[bytes], file: AudienceFile) -> Iterator[AudienceItem]:
    """Parse a downloaded audience ZIP, spooled to disk for random access.

    Args:
        stream: The ZIP's bytes (decompressed, if it was also gzipped).
        file: The file.

    Yields:
        Membership records of every CSV, or `BadInputError`s for bad rows,
        mismatched counts and missing files.

    Raises:
        BadInputError: The archive or its manifest cannot be read.
    """
    with tempfile.TemporaryFile(prefix="tap-mparticle-", suffix=".zip") as spool:
        try:
            shutil.copyfileobj(stream, spool, SPOOL_CHUNK)
        except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
            reason = f"truncated or corrupt gzip data ({exc})"
            raise BadInputError(file.location, reason) from exc
        trailer = trailer_error_of(stream, file.location)
        if trailer is not None:
            yield trailer  # the archive itself may still be whole
        spool.seek(0)
        try:
            archive = zipfile.ZipFile(spool)
        except _MEMBER_ERRORS as exc:
            msg = f"not a readable ZIP archive ({_why(exc)})"
            raise BadInputError(file.location, msg) from None
        with archive:
            yield from _zip_members(archive, file)


def _zip_members(archive: zipfile.ZipFile, file: AudienceFile) -> Iterator[AudienceItem]:
    members = [info for info in archive.infolist() if not info.is_dir()]
    manifest = None
    for info in members:
        if info.filename.rsplit("/", 1)[-1] == MANIFEST_NAME:
            manifest = yield from _zip_manifest(archive, info, file)
    seen: set[str] = set()
    for info in members:
        csv_name = info.filename.rsplit("/", 1)[-1]
        if not csv_name.lower().endswith(".csv"):
            continue
        seen.add(csv_name)
        yield from _zip_csv(archive, info, file, manifest)
    if not seen and manifest is None:
        yield BadInputError(file.location, "the ZIP holds no CSV and no manifest.json")
    if manifest is not None:
        for missing in sorted(set(manifest.files) - seen):
            yield BadInputError(file.location, f"manifest.json lists {missing}, not in the ZIP")


def _zip_csv(
    archive: zipfile.ZipFile, info: zipfile.ZipInfo, file: AudienceFile, manifest: Manifest | None
) -> Iterator[AudienceItem]:
    """One CSV member's rows; a member that cannot be read costs only itself."""
    location = f"{file.location}!/{info.filename}"
    if info.file_size > MAX_MEMBER_BYTES:
        reason = f"{info.file_size} bytes unzipped, over the {MAX_MEMBER_BYTES} limit"
        yield BadInputError(location, reason)
        return
    try:
        with archive.open(info) as member:
            yield from parse_download_csv(
                member,
                file,
                csv_name=info.filename.rsplit("/", 1)[-1],
                location=location,
                manifest=manifest,
                member=info.filename,
            )
    except BadInputError as exc:
        yield exc  # this member is unreadable; the others may be fine
    except _MEMBER_ERRORS as exc:
        yield BadInputError(location, f"unreadable archive member ({_why(exc)})")


def _zip_manifest(
    archive: zipfile.ZipFile, info: zipfile.ZipInfo, file: AudienceFile
) -> Generator[AudienceItem, None, Manifest | None]:
    """Read the archive's manifest; a bad one is one bad item, and the CSVs are still read."""
    location = f"{file.location}!/{info.filename}"
    try:
        return read_manifest(_read_member(archive, info, location), location)
    except BadInputError as exc:
        yield exc
        return None


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, location: str) -> bytes:
    if info.file_size > MAX_MANIFEST_BYTES:
        msg = f"manifest.json is {info.file_size} bytes, over the {MAX_MANIFEST_BYTES} limit"
        raise BadInputError(location, msg)
    try:
        with archive.open(info) as member:
            return member.read(MAX_MANIFEST_BYTES + 1)[:MAX_MANIFEST_BYTES]
    except _MEMBER_ERRORS as exc:
        msg = f"unreadable archive member ({_why(exc)})"
        raise BadInputError(location, msg) from None


def _why(exc: BaseException) -> str:
    if isinstance(exc, OSError):  # see _MEMBER_ERRORS
        return f"an offset in the archive points outside it: {exc.strerror or exc}"
    return str(exc)
