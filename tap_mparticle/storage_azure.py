"""Azure Blob Storage: where mParticle's Azure event output writes.

Same contract as `S3Storage`: one folder level per listing (`delimiter="/"`) so date
folders before `start_date` are never listed, every page read, and streamed reads in
ranged chunks of the stored bytes. The client is told to fetch at most one chunk per
request: by default it would download the first 32 MB of every blob in one go.

`azure-storage-blob` (and `azure-identity` for the default credential chain) are an
extra (`tap-mparticle[azure]`), imported only for an `az://` URL.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import IO, TYPE_CHECKING, Any
from urllib.parse import parse_qsl, quote

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

#: Blobs per listing request; the service's maximum is 5000. Tests set it low to prove
#: that every page is read.
LIST_PAGE_SIZE = 5000
#: Bytes per ranged read request of one blob.
AZURE_CHUNK_SIZE = 4 << 20
AZURE_HTTP_LOGGER = "azure.core.pipeline.policies.http_logging_policy"
#: What azure-core's connection errors mean; it says no more than their names.
_CONNECTION_HINTS = {
    "ServiceRequestError": "no connection to the endpoint",
    "ServiceResponseError": "the endpoint stopped answering",
}
INSTALL_HINT = "az:// URLs need the Azure Blob Storage client: pip install 'tap-mparticle[azure]'"


@dataclasses.dataclass(frozen=True)
class AzureSettings:
    """How to reach Azure Blob Storage; with no secret, the default credential chain."""

    account_name: str | None = None
    account_key: str | None = dataclasses.field(default=None, repr=False)
    sas_token: str | None = dataclasses.field(default=None, repr=False)
    connection_string: str | None = dataclasses.field(default=None, repr=False)
    endpoint_url: str | None = None

    @property
    def account_url(self) -> str | None:
        """The account's blob endpoint, or None when the connection string gives it."""
        if self.endpoint_url:
            return self.endpoint_url.rstrip("/")
        if self.account_name:
            return f"https://{self.account_name}.blob.core.windows.net"
        return None


def azure_secret_values(settings: AzureSettings) -> list[str]:
    """Every secret the Azure settings hold, and the parts of them a request may show.

    A SAS token travels in request URLs, its parameters reordered or re-encoded, so
    its signature is a secret of its own; a connection string carries a key or SAS.

    Args:
        settings: The Azure settings.

    Returns:
        The values to mask in logs (possibly empty).
    """
    values = [v for v in (settings.account_key, settings.connection_string) if v]
    tokens = [settings.sas_token] if settings.sas_token else []
    for part in (settings.connection_string or "").split(";"):
        name, _, value = part.partition("=")
        if name.strip() == "AccountKey":
            values.append(value)
        elif name.strip() == "SharedAccessSignature":
            tokens.append(value)
    for token in tokens:
        values.append(token)
        for name, value in parse_qsl(token.lstrip("?")):
            if name == "sig":
                values.extend([value, quote(value, safe="")])
    return [value for value in values if value]


def _import(name: str, hint: str = INSTALL_HINT) -> ModuleType:
    return import_extra(name, hint)


class AzureStorage:
    """Blobs in an Azure container under an optional root prefix."""

    def __init__(self, container: str, root: str, azure: AzureSettings, uri_base: str = "") -> None:
        """Build the client; nothing is sent until the first listing.

        Args:
            container: Container name.
            root: Blob-name prefix all other prefixes are relative to ("" or ending in "/").
            azure: Account, credentials and endpoint.
            uri_base: What blob names are appended to for their URIs (`az://container/`).

        Raises:
            StorageError: The extra is missing or the settings cannot make a client.
        """
        blob = _import("azure.storage.blob")
        self._exceptions = _import("azure.core.exceptions")
        self._match = _import("azure.core").MatchConditions
        # azure-core logs every request and response, headers included, at INFO: two
        # dozen lines per file. Errors still reach the log through our own messages.
        logging.getLogger(AZURE_HTTP_LOGGER).setLevel(logging.WARNING)
        self.container_name = container
        self.root = root
        self.uri_base = uri_base or f"az://{container}/"
        self._key_source = (
            "the AccountKey in azure_connection_string"
            if azure.connection_string
            else "azure_account_key"
        )
        where = azure.account_url or "the connection string's endpoint"
        self.endpoint = where
        self.description = f"{self.uri_base}{root} at {where}"
        options: dict[str, Any] = {
            "max_single_get_size": AZURE_CHUNK_SIZE,
            "max_chunk_get_size": AZURE_CHUNK_SIZE,
        }
        try:
            if azure.connection_string:
                service = blob.BlobServiceClient.from_connection_string(
                    azure.connection_string, **options
                )
                self.endpoint = service.url.rstrip("/")
                self.description = f"{self.uri_base}{root} at {self.endpoint}"
            else:
                service = blob.BlobServiceClient(
                    azure.account_url, credential=self._credential(azure), **options
                )
        except (ValueError, self._exceptions.AzureError) as exc:
            # The SDK's messages may quote the connection string; only the type is kept.
            reason = f"invalid Azure settings ({type(exc).__name__})"
            if azure.connection_string:
                name = type(exc).__name__
                reason = f"azure_connection_string is not a storage connection string ({name})"
            elif "HTTPS" in str(exc):
                # The SDK sends a signed-in identity's token over https only.
                reason = (
                    "the default Azure credential chain (no azure_account_key, azure_sas_token "
                    "or azure_connection_string) needs an https:// azure_endpoint_url"
                )
            msg = f"cannot reach {self.description}: {reason}"
            raise StorageError(msg) from None
        self.client = service.get_container_client(container)

    def _credential(self, azure: AzureSettings) -> Any:  # noqa: ANN401  (one of four SDK types)
        if azure.account_key:
            return {"account_name": azure.account_name or "", "account_key": azure.account_key}
        if azure.sas_token:
            return azure.sas_token.lstrip("?")
        identity = _import(
            "azure.identity",
            "az:// without azure_account_key, azure_sas_token or azure_connection_string "
            "uses the default Azure credential chain: pip install 'tap-mparticle[azure]' "
            "(it brings azure-identity)",
        )
        return identity.DefaultAzureCredential()

    def list_files(
        self,
        prefix: str,
        *,
        skip_folder: Callable[[str], bool],
    ) -> Iterator[RemoteFile]:
        """Yield the blobs under `prefix`, one folder level per listing.

        Args:
            prefix: Relative to the root; "" or ending in "/".
            skip_folder: Called with each sub-folder's relative name (ending in "/");
                True means the folder is not listed.

        Yields:
            Every blob with content, in no particular order. Empty blobs (mParticle's
            validation file, Data Lake directory markers) are passed over.

        Raises:
            StorageError: The container cannot be listed; names container and endpoint.
        """
        return walk_folders(self.root, prefix, self.uri_base, skip_folder, self._list_folder)

    def _list_folder(self, folder: str) -> Iterator[Listed]:
        try:
            pages = self.client.walk_blobs(
                name_starts_with=folder or None,
                delimiter="/",
                results_per_page=LIST_PAGE_SIZE,
            ).by_page()
            for page in pages:
                for item in page:
                    size = getattr(item, "size", None)
                    if size is None:  # a BlobPrefix: one folder further down
                        yield item.name
                    else:
                        yield item.name, int(size), item.last_modified, str(item.etag or "")
        except self._exceptions.AzureError as exc:
            where = f"{self.uri_base}{folder} at {self.endpoint}"
            reason = self._reason(exc)
            code = str(getattr(exc, "error_code", "") or "")
            if isinstance(exc, self._exceptions.ResourceNotFoundError) and code not in {
                "ContainerNotFound",
                "",
            }:
                # Not "no such container": the endpoint's path is not an account's (an
                # Azurite endpoint without /devstoreaccount1, or one with the container).
                reason = (
                    f"{code} (the endpoint is no account's: check azure_endpoint_url, e.g. "
                    "https://<account>.blob.core.windows.net, or for Azurite "
                    "http://127.0.0.1:10000/devstoreaccount1)"
                )
            msg = f"cannot list {where}: {reason}"
            raise StorageError(msg) from None

    def open(self, file: RemoteFile) -> IO[bytes]:
        """Open a blob for streaming, ranged reads of its raw bytes (as stored, like GCS).

        Args:
            file: A file from `list_files`.

        Returns:
            A binary stream.

        Raises:
            StorageError: The blob cannot be read.
        """
        blob = self.client.get_blob_client(self.root + file.key)
        try:
            # decompress=False: the stored bytes, whatever Content-Encoding says. The client
            # would gunzip each range on its own, so past the first range of a gzip-encoded
            # blob lines went missing without an error; the parsers detect gzip themselves.
            # Pinned to the listed ETag: a blob overwritten since is refused (412),
            # not read whole under the old LastModified and read again by the next run.
            # (The listing keeps ETags without their quotes; If-Match takes them quoted.)
            pinned = {"etag": f'"{file.version}"', "match_condition": self._match.IfNotModified}
            downloader = blob.download_blob(
                max_concurrency=1, decompress=False, **(pinned if file.version else {})
            )
        except self._exceptions.AzureError as exc:
            raise StorageError(self._read_error(file, exc)) from None
        return chunked_stream(
            downloader,
            errors=(self._exceptions.AzureError,),
            describe=lambda exc: self._read_error(file, exc),
            buffer_size=AZURE_CHUNK_SIZE,
        )

    def _read_error(self, file: RemoteFile, exc: BaseException) -> str:
        changed = (self._exceptions.ResourceModifiedError, self._exceptions.ResourceNotFoundError)
        if file.version and isinstance(exc, changed):
            # The listed ETag is gone (Azurite says 412 for a deleted blob too): ask.
            try:
                exists = self.client.get_blob_client(self.root + file.key).exists()
            except self._exceptions.AzureError:
                exists = False
            reason = OVERWRITTEN_SINCE_LISTED if exists else DELETED_SINCE_LISTED
            return f"cannot read {file.uri} at {self.endpoint}: {reason}"
        return f"cannot read {file.uri} at {self.endpoint}: {self._reason(exc)}"

    def _reason(self, exc: BaseException) -> str:
        """Summarise an error by its service code; SDK messages can quote the request."""
        code = getattr(exc, "error_code", None)
        code = str(getattr(code, "value", code) or "")  # the SDK's enum or the raw header
        if isinstance(exc, self._exceptions.ResourceNotFoundError):
            return f"{code or 'ResourceNotFound'} (the container or blob does not exist)"
        signed_in = self._sign_in_reason(exc)
        if signed_in:
            return signed_in
        if isinstance(exc, self._exceptions.ClientAuthenticationError):
            return f"{code or 'AuthenticationFailed'} (the credentials were refused)"
        if isinstance(exc, self._exceptions.HttpResponseError) and exc.status_code is not None:
            code = code or type(exc).__name__
            if exc.status_code == 403:  # noqa: PLR2004  (HTTP Forbidden)
                return f"{code} (HTTP 403: the credentials were refused or lack read access)"
            return f"{code} (HTTP {exc.status_code})"
        name = type(exc).__name__
        hint = _CONNECTION_HINTS.get(name)
        return f"{name} ({hint}, after the client's retries)" if hint else name

    def _sign_in_reason(self, exc: BaseException) -> str | None:
        """Why no request could be signed, if that is what failed (before any request)."""
        if type(exc).__name__ == "AzureSigningError":
            # The key is not the base64 text the portal gives.
            return f"AzureSigningError ({self._key_source} is not a valid account key)"
        if isinstance(exc, self._exceptions.ClientAuthenticationError) and exc.response is None:
            # Raised by azure-identity: no credential in the chain has an identity.
            return (
                "no Azure credentials found (set azure_account_key, azure_sas_token or "
                "azure_connection_string, or give the default credential chain an identity: "
                "AZURE_CLIENT_ID/AZURE_TENANT_ID/AZURE_CLIENT_SECRET, a managed identity, "
                "or `az login`)"
            )
        return None
