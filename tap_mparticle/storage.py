"""Where the files are: S3 (or anything that speaks its API) and local directories.

Google Cloud Storage and Azure Blob Storage live in `storage_gcs` and `storage_azure`,
behind the same `Storage` protocol; `backends.open_storage` picks one by `bucket_url`.

The streams never see boto3. They ask a `Storage` for the files under a prefix and
for a byte stream of one file; both backends give the same answers, so every
behaviour can be tested on a directory and on a real S3 endpoint alike.

Listing walks one folder level at a time (S3 `Delimiter="/"`), which is what lets
date folders (`YYYY-MM-DD/`) wholly before `start_date` be skipped without listing
a single key inside them, and pages through listings of any size.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import os
from pathlib import Path
from typing import IO, TYPE_CHECKING, Protocol
from urllib.parse import unquote, urlparse

import botocore.config
import botocore.exceptions
import smart_open

from mparticle_facts.plugin_guards import mask_userinfo, one_line
from tap_mparticle.aws_session import boto_session

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator

    from tap_mparticle.aws_session import AwsSettings

UTC = dt.timezone.utc
LOGGER = logging.getLogger("tap-mparticle")
LIST_PAGE_SIZE = 1000  # S3's own maximum; a module constant so tests page over a few keys
# smart_open reads S3 objects in ranged requests of this size and reconnects on a
# dropped body, which boto3's plain `Body.read()` does not.
S3_BUFFER_SIZE = 4 << 20


class StorageError(Exception):
    """The bucket or directory cannot be reached, listed or read.

    Messages name the bucket and endpoint, never a credential.
    """

    def __init__(self, message: str) -> None:
        """Keep the message one line (a key may hold a newline), URL credentials masked.

        An endpoint URL may carry `user:password@`, and botocore quotes it in errors.
        """
        super().__init__(one_line(mask_userinfo(message)))


@dataclasses.dataclass(frozen=True, slots=True)
class RemoteFile:
    """One file of a drop.

    Attributes:
        key: Path relative to the `bucket_url` root, with `/` separators. Stable
            across runs, so it is what state remembers.
        uri: Where the file is (`s3://bucket/key` or an absolute path), for
            provenance columns and messages.
        last_modified: S3 LastModified (1-second precision) or the file's mtime, UTC.
        size: Bytes.
        version: What changes when the object is rewritten under the same key, even
            within one second of LastModified: the S3 ETag, the Azure etag, the GCS
            generation, a local file's mtime in nanoseconds and size; "" when unknown.
    """

    key: str
    uri: str
    last_modified: dt.datetime
    size: int
    #: The name is not UTF-8 text (see `is_text_key`), so the file (or the folder,
    #: its key ending in "/") cannot be read under a key: the stream applies
    #: `on_bad_record` to it instead. `uri` shows the name's bytes escaped.
    name_not_text: bool = False
    #: Reads from GCS and Azure are pinned to it, so an object overwritten after
    #: the listing is never read as a mix of two versions or cut at the old size.
    version: str = ""


#: Why a read pinned to the listed version (`RemoteFile.version`) found none.
OVERWRITTEN_SINCE_LISTED = (
    "it was overwritten since it was listed (not read as a mix of two versions: "
    "the next run reads the new one)"
)
DELETED_SINCE_LISTED = "it was deleted since it was listed"

#: The LastModified of a folder marked `name_not_text` (folders carry none).
NO_TIME = dt.datetime(1970, 1, 1, tzinfo=UTC)

#: One entry of a folder's listing, names counted from the bucket's top: a
#: sub-folder's name, or an object's (name, size in bytes, last modified, version).
Listed = str | tuple[str, int, dt.datetime, str]


def walk_folders(
    root: str,
    prefix: str,
    uri_prefix: str,
    skip_folder: Callable[[str], bool],
    list_folder: Callable[[str], Iterable[Listed]],
) -> Iterator[RemoteFile]:
    """The walk every bucket storage shares: one folder level per listing request.

    `list_folder` lists one folder in that storage's own API (and raises
    StorageError naming it); the rules live here once: a sub-folder that
    `skip_folder` refuses (given its name relative to `root`) is never listed, folder
    markers and empty objects (mParticle's validation file, Data Lake directory
    markers) carry no data and are passed over, keys are relative to `root`.

    Args:
        root: The bucket_url's prefix ("" or ending in "/").
        prefix: Relative to the root; "" or ending in "/".
        uri_prefix: What a full object name is appended to for its URI (`s3://bucket/`).
        skip_folder: True for a relative folder name (ending in "/") not to list.
        list_folder: Lists one folder (a full name) level.

    Yields:
        Every object with content, in no particular order.
    """
    pending = [root + prefix]
    while pending:
        for entry in list_folder(pending.pop()):
            if isinstance(entry, str):
                if not entry or skip_folder(entry[len(root) :]):
                    continue
                if is_text_key(entry):
                    pending.append(entry)
                else:
                    yield name_not_text(entry[len(root) :], uri_prefix + entry, NO_TIME)
                continue
            name, size, modified, version = entry
            if name.endswith("/") or not size:
                continue
            if not is_text_key(name):
                yield name_not_text(name[len(root) :], uri_prefix + name, modified.astimezone(UTC))
                continue
            yield RemoteFile(
                key=name[len(root) :],
                uri=uri_prefix + name,
                last_modified=modified.astimezone(UTC),
                size=size,
                # S3 and Azure quote their ETags; the quotes carry nothing.
                version=version.strip('"'),
            )


def is_text_key(name: str) -> bool:
    r"""Whether a listed name can be a key.

    A key is written as UTF-8 to records, state and hashes. A local name that is
    not UTF-8 reaches Python with its bad bytes as lone surrogates (PEP 383), and a
    JSON listing (GCS) can hold a `\ud800` escape: either would fail far from
    here with a traceback, so the listing marks it instead (`name_not_text`).
    """
    try:
        name.encode()
    except UnicodeEncodeError:
        return False
    return True


def name_not_text(key: str, where: str, modified: dt.datetime) -> RemoteFile:
    r"""A listed file or folder (`key` ending in "/") whose name is not UTF-8 text.

    Its bytes are shown as `\xff`, as `ls -b` shows them; a surrogate that stands
    for no byte (a JSON escape) as `\ud800`.
    """
    try:
        shown = where.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:
        shown = where.encode("utf-8", "backslashreplace").decode()
    return RemoteFile(key=key, uri=shown, last_modified=modified, size=0, name_not_text=True)


class Storage(Protocol):
    """What the streams need from a place that holds files."""

    description: str

    def list_files(
        self,
        prefix: str,
        *,
        skip_folder: Callable[[str], bool],
    ) -> Iterator[RemoteFile]:
        """Yield every file under `prefix`, skipping folders the predicate rejects."""
        ...

    def open(self, file: RemoteFile) -> IO[bytes]:
        """Open a file for streaming reads of its raw bytes."""
        ...


class S3Storage:
    """Files in an S3 bucket under an optional root prefix."""

    def __init__(self, bucket: str, root: str, aws: AwsSettings) -> None:
        """Build the client; nothing is sent until the first listing but AssumeRole.

        Args:
            bucket: Bucket name.
            root: Key prefix all other prefixes are relative to ("" or ending in "/").
            aws: Credentials, region and endpoint.

        Raises:
            StorageError: aws_role_arn cannot be assumed (refused, or STS unreachable).
        """
        self.bucket = bucket
        self.root = root
        endpoint = aws.endpoint_url or "the default AWS endpoint"
        self.description = f"s3://{bucket}/{root} at {endpoint}"
        try:
            session = boto_session(aws)  # assumes aws_role_arn, if set
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
            # Was a traceback, whose last line quoted the request (a session token).
            msg = f"cannot assume aws_role_arn {aws.role_arn} at {endpoint}: {_reason(exc)}"
            raise StorageError(msg) from None
        config = botocore.config.Config(
            # total_max_attempts counts the first try, as AWS_MAX_ATTEMPTS does (botocore's
            # max_attempts counts retries only: 8 there was 9 requests).
            retries={"total_max_attempts": max_attempts(), "mode": "adaptive"},
            max_pool_connections=aws.max_connections,
            connect_timeout=15,
            read_timeout=120,
            # MinIO, Ceph and moto serve buckets by path, not by virtual host.
            s3={"addressing_style": "path"} if aws.endpoint_url else None,
        )
        self.client = session.client(
            "s3",
            endpoint_url=aws.endpoint_url,
            region_name=aws.region,
            config=config,
        )

    def list_files(
        self,
        prefix: str,
        *,
        skip_folder: Callable[[str], bool],
    ) -> Iterator[RemoteFile]:
        """Yield the files under `prefix`, one folder level per listing.

        Args:
            prefix: Relative to the root; "" or ending in "/".
            skip_folder: Called with each sub-folder's relative key (ending in "/");
                True means the folder is not listed.

        Yields:
            Every object with content, in no particular order.

        Raises:
            StorageError: The bucket cannot be listed; names bucket and endpoint.
        """
        return walk_folders(
            self.root, prefix, f"s3://{self.bucket}/", skip_folder, self._list_folder
        )

    def _list_folder(self, folder: str) -> Iterator[Listed]:
        paginator = self.client.get_paginator("list_objects_v2")
        try:
            pages = paginator.paginate(
                Bucket=self.bucket,
                Prefix=folder,
                Delimiter="/",
                PaginationConfig={"PageSize": LIST_PAGE_SIZE},
            )
            for page in pages:
                for common in page.get("CommonPrefixes", []):
                    yield common.get("Prefix", "")
                for obj in page.get("Contents", []):
                    yield (
                        obj.get("Key", ""),
                        obj.get("Size", 0),
                        obj["LastModified"],
                        obj.get("ETag", ""),
                    )
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
            msg = f"cannot list s3://{self.bucket}/{folder} at {self._endpoint()}: {_reason(exc)}"
            raise StorageError(msg) from None

    def open(self, file: RemoteFile) -> IO[bytes]:
        """Open an object for streaming, buffered reads of its raw (still compressed) bytes.

        Args:
            file: A file from `list_files`.

        Returns:
            A binary stream.

        Raises:
            StorageError: The object cannot be read.
        """
        try:
            stream: IO[bytes] = smart_open.open(
                file.uri,
                "rb",
                compression="disable",  # gzip is detected from the bytes, not the name
                transport_params={"client": self.client, "buffer_size": S3_BUFFER_SIZE},
            )
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError, OSError) as exc:
            msg = f"cannot read {file.uri} at {self._endpoint()}: {_reason(exc)}"
            raise StorageError(msg) from None
        return stream

    def _endpoint(self) -> str:
        return str(self.client.meta.endpoint_url)


class LocalStorage:
    """Files in a local directory laid out like the bucket (e.g. after `aws s3 sync`)."""

    def __init__(self, root: Path) -> None:
        """Remember the root directory.

        Args:
            root: The directory standing for `bucket_url`.
        """
        # The root itself may be a link (e.g. to a mounted volume); links inside it
        # are never followed (see `list_files`).
        self.root = root.resolve() if root.exists() else root
        self.description = f"local directory {root}"
        self.links_skipped = 0

    def _skipped_link(self, path: str) -> None:
        self.links_skipped += 1
        if self.links_skipped == 1:
            LOGGER.warning(
                "Skipping symbolic link %s (and any others under %s): links are not "
                "followed, so nothing outside the drop is read and no file is read twice",
                path,
                self.root,
            )

    def list_files(
        self,
        prefix: str,
        *,
        skip_folder: Callable[[str], bool],
    ) -> Iterator[RemoteFile]:
        """Yield the files under `prefix`, skipping hidden files and rejected folders.

        Args:
            prefix: Relative to the root; "" or ending in "/".
            skip_folder: As for `S3Storage.list_files`.

        Yields:
            Every non-empty regular file.

        Raises:
            StorageError: The root directory does not exist or cannot be read.
        """
        if not self.root.is_dir():
            msg = f"cannot list {self.description}: not a directory"
            raise StorageError(msg)
        start = self.root / prefix if prefix else self.root
        if not start.is_dir():
            return
        pending = [start]
        while pending:
            folder = pending.pop()
            try:
                entries = list(os.scandir(folder))
            except OSError as exc:
                msg = f"cannot list {folder}: {exc.strerror}"
                raise StorageError(msg) from None
            for entry in entries:
                file = self._entry_file(entry, skip_folder, pending)
                if file is not None:
                    yield file

    def _entry_file(
        self,
        entry: os.DirEntry[str],
        skip_folder: Callable[[str], bool],
        pending: list[Path],
    ) -> RemoteFile | None:
        """The file a directory entry is, or None (a folder is queued in `pending`)."""
        if entry.name.startswith("."):
            return None  # .DS_Store, editor swap files, partial downloads
        if entry.is_symlink():
            self._skipped_link(entry.path)
            return None
        relative = Path(entry.path).relative_to(self.root).as_posix()
        if entry.is_dir(follow_symlinks=False):
            return _folder_entry(entry, relative + "/", skip_folder, pending)
        stat = entry.stat(follow_symlinks=False)
        if stat.st_size == 0 or not entry.is_file(follow_symlinks=False):
            return None
        modified = dt.datetime.fromtimestamp(stat.st_mtime, tz=UTC)
        if not is_text_key(entry.name):
            return name_not_text(relative, entry.path, modified)
        uri = str(Path(entry.path).resolve())
        # A copy that keeps the mtime (`cp -p`, rsync) but not the size is a new version.
        version = f"{stat.st_mtime_ns}:{stat.st_size}"
        return RemoteFile(
            key=relative, uri=uri, last_modified=modified, size=stat.st_size, version=version
        )

    def open(self, file: RemoteFile) -> IO[bytes]:
        """Open a file for binary reads.

        Args:
            file: A file from `list_files`.

        Returns:
            A binary stream.

        Raises:
            StorageError: The file cannot be opened.
        """
        try:
            return Path(file.uri).open("rb")
        except OSError as exc:
            msg = f"cannot read {file.uri}: {exc.strerror}"
            raise StorageError(msg) from None


def _folder_entry(
    entry: os.DirEntry[str],
    folder: str,
    skip_folder: Callable[[str], bool],
    pending: list[Path],
) -> RemoteFile | None:
    """Queue a local folder to list, unless skipped; one whose name is not text is marked."""
    if skip_folder(folder):
        return None
    if not is_text_key(entry.name):
        return name_not_text(folder, entry.path + "/", NO_TIME)
    pending.append(Path(entry.path))
    return None


#: Attempts per S3 request (botocore's adaptive retries) unless `AWS_MAX_ATTEMPTS` says
#: otherwise: a few minutes of an endpoint's trouble ride out before the run stops.
DEFAULT_MAX_ATTEMPTS = 8


def max_attempts() -> int:
    """`AWS_MAX_ATTEMPTS`, the variable every AWS tool reads, when set to a whole number.

    botocore reads it only when a client's config names no count, and ours names one.
    """
    text = os.environ.get("AWS_MAX_ATTEMPTS", "").strip()
    return int(text) if text.isdecimal() and int(text) > 0 else DEFAULT_MAX_ATTEMPTS


def local_root(bucket_url: str) -> Path:
    """The directory a local `bucket_url` (a path or a `file://` URL) names."""
    parsed = urlparse(bucket_url)
    if parsed.scheme == "file":
        return Path(unquote(parsed.path))
    return Path(bucket_url).expanduser()


def read_error(file: RemoteFile, exc: BaseException) -> StorageError:
    """One line for a read that failed part-way through a file (a dropped endpoint).

    Args:
        file: The file being read.
        exc: What the transport raised.

    Returns:
        The error to raise, naming the file; no request details, so no secret.
    """
    reason = _reason(exc) if isinstance(exc, Exception) else type(exc).__name__
    return StorageError(f"cannot read {file.uri}: the read failed part-way ({reason})")


def _reason(exc: Exception) -> str:
    """Summarise an AWS error without echoing request details that may hold secrets."""
    if isinstance(exc, botocore.exceptions.ClientError):
        error = exc.response.get("Error", {})
        code = error.get("Code", "error")
        message = error.get("Message", "")
        return f"{code} ({message})" if message else str(code)
    if isinstance(exc, botocore.exceptions.NoCredentialsError):
        return (
            "no AWS credentials found (set aws_access_key_id and aws_secret_access_key, "
            "aws_profile, or the environment)"
        )
    return type(exc).__name__ + (f" ({exc})" if str(exc) else "")
