"""Google Cloud Storage: where mParticle's GCS event and audience outputs write.

Same contract as `S3Storage`: one folder level per listing (`delimiter="/"`), so date
folders before `start_date` are never listed, pages of any count, and streamed reads
in ranged requests so a 512 MB audience file never sits in memory.

`google-cloud-storage` is an extra (`tap-mparticle[gcs]`): it is imported when a
`gs://` URL is used, never by an S3 user, and its absence is one line naming the extra.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from tap_mparticle.storage import (
    DELETED_SINCE_LISTED,
    OVERWRITTEN_SINCE_LISTED,
    Listed,
    RemoteFile,
    StorageError,
    walk_folders,
)
from tap_mparticle.storage_stream import chunked_stream, import_extra

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from types import ModuleType

UTC = dt.timezone.utc
#: Objects per listing request; the API's own maximum is 1000. Tests set it low to
#: prove that every page is read.
LIST_PAGE_SIZE = 1000
#: Bytes per ranged read request of one object.
GCS_CHUNK_SIZE = 4 << 20
#: Reading needs nothing more; a key with more rights works too.
READ_ONLY_SCOPE = "https://www.googleapis.com/auth/devstorage.read_only"
#: Bytes read of gcs_credentials_file at most (a key file is about 2 KB).
MAX_CREDENTIALS_FILE = 1 << 20
#: What an HTTP status means for a read-only tap; the API's message may quote the URL.
_STATUS_HINTS = {
    401: ": the credentials were refused",
    403: ": the credentials lack storage.objects.list or storage.objects.get on the bucket",
}
INSTALL_HINT = "gs:// URLs need the Google Cloud Storage client: pip install 'tap-mparticle[gcs]'"


@dataclasses.dataclass(frozen=True)
class GcsSettings:
    """How to reach Google Cloud Storage; unset fields fall back to Google's defaults."""

    credentials_file: str | None = None
    project: str | None = None
    endpoint_url: str | None = None


def _import(name: str) -> ModuleType:
    return import_extra(name, INSTALL_HINT)


class GcsStorage:
    """Objects in a GCS bucket under an optional root prefix."""

    def __init__(self, bucket: str, root: str, gcs: GcsSettings, uri_base: str = "") -> None:
        """Build the client; nothing is listed until the first `list_files`.

        Args:
            bucket: Bucket name.
            root: Object-name prefix all other prefixes are relative to ("" or ending in "/").
            gcs: Credentials, project and endpoint.
            uri_base: What object names are appended to for their URIs (`gs://bucket/`).

        Raises:
            StorageError: The extra is not installed or the credentials cannot be loaded.
        """
        storage = _import("google.cloud.storage")
        self._exceptions = _import("google.api_core.exceptions")
        self._auth_exceptions = _import("google.auth.exceptions")
        self.bucket = bucket
        self.root = root
        self.uri_base = uri_base or f"gs://{bucket}/"
        self.endpoint = gcs.endpoint_url or "the default Google Cloud Storage endpoint"
        self.description = f"{self.uri_base}{root} at {self.endpoint}"
        options: dict[str, Any] = {}
        if gcs.endpoint_url:
            # A trailing "/" would double the one the client puts before storage/v1/.
            options["client_options"] = {"api_endpoint": gcs.endpoint_url.rstrip("/")}
        try:
            self.client = storage.Client(
                project=gcs.project or "none",  # a project is only needed to create buckets
                credentials=self._credentials(gcs),
                **options,
            )
        except (self._auth_exceptions.GoogleAuthError, OSError, ValueError) as exc:
            msg = f"cannot reach {self.description}: {self._reason(exc)}"
            raise StorageError(msg) from None
        # With gcs_project set, requests are billed to it (requester-pays buckets).
        self._bucket = self.client.bucket(bucket, user_project=gcs.project)

    def _credentials(self, gcs: GcsSettings) -> Any:  # noqa: ANN401  (google-auth is untyped here)
        if gcs.credentials_file:
            return self._file_credentials(gcs.credentials_file)
        if gcs.endpoint_url:
            # An emulator (fake-gcs-server, the GCS testbench) takes no credentials; and
            # looking for Application Default Credentials would probe the GCE metadata server.
            credentials = _import("google.auth.credentials")
            return credentials.AnonymousCredentials()
        auth = _import("google.auth")
        try:
            credentials, _project = auth.default(scopes=[READ_ONLY_SCOPE])
        except self._auth_exceptions.DefaultCredentialsError:
            msg = (
                f"cannot reach {self.description}: no Google credentials found "
                "(set gcs_credentials_file, GOOGLE_APPLICATION_CREDENTIALS, "
                "or run `gcloud auth application-default login`)"
            )
            raise StorageError(msg) from None
        return credentials

    def _file_credentials(self, path: str) -> Any:  # noqa: ANN401  (google-auth is untyped here)
        """A service account key, or the `gcloud auth application-default login` file.

        Each is loaded by its own type's loader: the generic one also runs the commands
        an external_account file may name, which a settings file should not get to do.
        """
        try:
            with Path(path).open("rb") as file:
                info = json.loads(file.read(MAX_CREDENTIALS_FILE))
            kind = info.get("type") if isinstance(info, dict) else None
            if kind == "service_account":
                service_account = _import("google.oauth2.service_account")
                return service_account.Credentials.from_service_account_info(
                    info, scopes=[READ_ONLY_SCOPE]
                )
            if kind == "authorized_user":
                user = _import("google.oauth2.credentials")
                return user.Credentials.from_authorized_user_info(info, scopes=[READ_ONLY_SCOPE])
        except (OSError, ValueError, KeyError, self._auth_exceptions.GoogleAuthError) as exc:
            # The file's contents (a private key) never go into the message.
            reason = type(exc).__name__
            if isinstance(exc, ValueError) and not isinstance(
                exc, self._auth_exceptions.GoogleAuthError
            ):
                reason += " (not a JSON credentials file)"
            msg = f"cannot load gcs_credentials_file {path}: {reason}"
            raise StorageError(msg) from None
        msg = (
            f"cannot load gcs_credentials_file {path}: its type is {kind!r}, not a service "
            "account key ('service_account') or a gcloud login ('authorized_user'); for "
            "another kind, leave it unset and point GOOGLE_APPLICATION_CREDENTIALS at it"
        )
        raise StorageError(msg)

    def list_files(
        self,
        prefix: str,
        *,
        skip_folder: Callable[[str], bool],
    ) -> Iterator[RemoteFile]:
        """Yield the objects under `prefix`, one folder level per listing.

        Args:
            prefix: Relative to the root; "" or ending in "/".
            skip_folder: Called with each sub-folder's relative name (ending in "/");
                True means the folder is not listed.

        Yields:
            Every object with content, in no particular order.

        Raises:
            StorageError: The bucket cannot be listed; names bucket and endpoint.
        """
        return walk_folders(self.root, prefix, self.uri_base, skip_folder, self._list_folder)

    def _list_folder(self, folder: str) -> Iterator[Listed]:
        try:
            listing = self.client.list_blobs(
                self._bucket, prefix=folder, delimiter="/", page_size=LIST_PAGE_SIZE
            )
            for page in listing.pages:
                for blob in page:
                    yield blob.name, int(blob.size or 0), blob.updated, str(blob.generation or "")
                yield from sorted(page.prefixes)  # a set: sorted, so runs list alike
        except self._errors() as exc:
            msg = f"cannot list {self.uri_base}{folder} at {self.endpoint}: "
            raise StorageError(msg + self._reason(exc)) from None

    def open(self, file: RemoteFile) -> IO[bytes]:
        """Open an object for streaming, ranged reads of its stored bytes.

        Reads go in `GCS_CHUNK_SIZE` ranges up to the listed size, so a file no
        larger than one chunk costs one request. `raw_download` keeps gzip-encoded
        objects as stored: GCS would otherwise decompress them in transit, and the
        parsers detect gzip themselves. Every range asks for the generation the
        listing saw: an object overwritten since is a NotFound, not a read of the new
        version cut at the old size or of old ranges followed by new ones.

        Args:
            file: A file from `list_files`.

        Returns:
            A binary stream; errors surface on read, as `StorageError`.
        """
        generation = int(file.version) if file.version.isdecimal() else None
        blob = self._bucket.blob(self.root + file.key, generation=generation)
        reader = _RangedReader(blob, file.size, self._exceptions)
        return chunked_stream(
            reader,
            errors=self._errors(),
            describe=lambda exc: self._read_error(file, exc),
            buffer_size=GCS_CHUNK_SIZE,
        )

    def _read_error(self, file: RemoteFile, exc: BaseException) -> str:
        if isinstance(exc, self._exceptions.NotFound) and file.version:
            # The listed generation is gone: the object is newer, or is no more.
            try:
                live = self._bucket.get_blob(self.root + file.key)
            except self._errors():
                live = None
            reason = DELETED_SINCE_LISTED if live is None else OVERWRITTEN_SINCE_LISTED
            return f"cannot read {file.uri} at {self.endpoint}: {reason}"
        return f"cannot read {file.uri} at {self.endpoint}: {self._reason(exc)}"

    def _errors(self) -> tuple[type[BaseException], ...]:
        requests_exceptions = _import("requests.exceptions")
        return (
            self._exceptions.GoogleAPIError,
            self._auth_exceptions.GoogleAuthError,
            requests_exceptions.RequestException,
        )

    def _reason(self, exc: BaseException) -> str:
        """Summarise an error without the request URL or any token."""
        if isinstance(exc, self._exceptions.NotFound):
            return "NotFound (the bucket does not exist, or the object was deleted)"
        if isinstance(exc, self._exceptions.GoogleAPICallError):
            hint = _STATUS_HINTS.get(exc.code, "")
            if exc.code == 400 and "requester pays" in str(exc.message).lower():  # noqa: PLR2004
                hint = ": the bucket is requester-pays, set gcs_project to the project to bill"
            return f"{type(exc).__name__} (HTTP {exc.code}{hint})"
        if isinstance(exc, self._auth_exceptions.RefreshError):
            return "RefreshError (the credentials were refused)"
        if isinstance(exc, self._exceptions.RetryError):
            # The client retries connection errors for two minutes, then says only this.
            cause = type(exc.cause).__name__ if exc.cause is not None else "no answer"
            return f"RetryError (the client retried for its deadline; the last error: {cause})"
        return type(exc).__name__


class _RangedReader:
    """Reads one object in ranges, stopping at its end without asking past it.

    The end is the size the listing gave, or (for a file built by hand, size 0) the
    first range that comes back short.
    """

    def __init__(self, blob: Any, size: int, exceptions: ModuleType) -> None:  # noqa: ANN401
        self._blob = blob
        self._size: int | None = size or None
        self._position = 0
        self._done = False
        self._exceptions = exceptions

    def read(self, size: int = -1, /) -> bytes:
        if self._done:
            return b""
        start = self._position
        end = start + (GCS_CHUNK_SIZE if size < 0 else max(size, 1))
        if self._size is not None:
            end = min(end, self._size)
        try:
            data: bytes = self._blob.download_as_bytes(
                start=start, end=end - 1, checksum=None, raw_download=True
            )
        except self._exceptions.RequestRangeNotSatisfiable:
            # At (or, for an object overwritten with a shorter one since the listing,
            # past) the end. A newer object has a newer `updated`: the next run reads it.
            data = b""
        self._position = start + len(data)
        short = len(data) < end - start
        self._done = short or (self._size is not None and self._position >= self._size)
        return data
