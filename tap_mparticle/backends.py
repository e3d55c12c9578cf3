"""Read a `bucket_url` and pick its storage backend: S3, Google Cloud Storage, Azure or a directory.

Kept apart from `storage` so that the GCS and Azure modules can build on its types
without an import circle. They import their client libraries only when built, so an
S3 user needs neither extra installed.

A cloud URL is split here, not by `urllib.parse`: object names may hold `?` and `#`,
which `urlparse` took for a query and a fragment and dropped, so `gs://b/x#1` read the
folder `x/` (and a `[` in a name raised "Invalid IPv6 URL" as a traceback). After the
bucket, everything is the prefix, as typed. Azure's other spellings of a container
are read too: `az://container@account.blob.core.windows.net/...`,
`abfs[s]://container@account.dfs.core.windows.net/...` (the host names the account)
and the blob URL the portal shows, `https://account.blob.core.windows.net/container/...`.
"""

from __future__ import annotations

import dataclasses
import re
from typing import TYPE_CHECKING
from urllib.parse import unquote

from tap_mparticle.storage import LocalStorage, S3Storage, local_root

if TYPE_CHECKING:
    from tap_mparticle.aws_session import AwsSettings
    from tap_mparticle.storage import Storage
    from tap_mparticle.storage_azure import AzureSettings
    from tap_mparticle.storage_gcs import GcsSettings

#: URL scheme -> what its host part names.
CLOUD_SCHEMES = {
    "s3": "bucket",
    "gs": "bucket",
    "az": "container",
    "abfs": "container",
    "abfss": "container",
    "https": "container",
}
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]+):")
#: No bucket or container name holds anything else (Azure's special ones start with `$`).
_NAME = re.compile(r"^[$A-Za-z0-9._-]+$")
#: An Azure storage host: the account, then `blob` or `dfs` (Data Lake), then the
#: cloud's suffix (core.windows.net, or a sovereign cloud's).
_ACCOUNT_NAME = r"[a-z0-9]{3,24}"
_AZURE_HOST = re.compile(rf"^({_ACCOUNT_NAME})\.(?:blob|dfs)\.([a-z0-9.-]+)$", re.IGNORECASE)
#: An Azure storage account name: 3 to 24 lowercase letters and digits (as a host
#: name, `ACME` reaches `acme`, so case is not held against a setting).
AZURE_ACCOUNT = re.compile(rf"^{_ACCOUNT_NAME}$", re.IGNORECASE)
_GCS_HOSTS = frozenset({"storage.googleapis.com", "storage.cloud.google.com"})


class BucketUrlError(ValueError):
    """A cloud `bucket_url` that names no usable bucket or container; the reason, one line."""


@dataclasses.dataclass(frozen=True)
class CloudUrl:
    """Where a cloud `bucket_url` points."""

    #: The storage: "s3", "gs" or "az".
    cloud: str
    #: The bucket or container.
    name: str
    #: Object-name prefix under it: "" or ending in "/".
    root: str
    #: What an object's full name is appended to for its URI (`gs://bucket/`).
    uri_base: str
    #: Azure: the blob host of the account the URL names (None: from the settings).
    account_host: str | None = None

    @property
    def account_name(self) -> str | None:
        """Azure: the account the URL names."""
        return self.account_host.split(".", 1)[0] if self.account_host else None


def url_scheme(bucket_url: str) -> str:
    """The lower-cased scheme, or "" (one letter is a Windows drive, so a path)."""
    match = _SCHEME.match(bucket_url)
    return match[1].lower() if match else ""


def cloud_url(bucket_url: str) -> CloudUrl | None:
    """Split a cloud `bucket_url`; None for a local one (a path or `file://`).

    Args:
        bucket_url: As configured.

    Returns:
        The parts, or None when the URL is not a cloud one.

    Raises:
        BucketUrlError: A cloud scheme that names no bucket, a malformed one, or one
            holding credentials; the message does not repeat the URL.
    """
    scheme = url_scheme(bucket_url)
    if scheme not in CLOUD_SCHEMES:
        return None
    rest = bucket_url[len(scheme) + 1 :]
    what = CLOUD_SCHEMES[scheme]
    if not rest.startswith("//") or rest[2:3] in {"", "/"}:
        msg = f"names no {what} (expected {scheme}://{what})"
        raise BucketUrlError(msg)
    authority, _, path = rest[2:].partition("/")
    if scheme == "https":
        return _https_url(authority, path)
    userinfo, at, host = authority.rpartition("@")
    if at and (scheme in {"s3", "gs"} or ":" in userinfo or not _AZURE_HOST.match(host)):
        # No bucket or container name holds an @; the credentials would end up in
        # every record's _sdc_source_uri.
        msg = "holds credentials (user:password@): set them in the credential settings"
        raise BucketUrlError(msg + ", not in the URL")
    name = userinfo if at else authority
    _check_name(name, what)
    cloud = "az" if what == "container" else scheme
    account = host.lower().replace(".dfs.", ".blob.", 1) if at else None
    return CloudUrl(cloud, name, _root(path), f"{scheme}://{authority}/", account)


def _https_url(authority: str, path: str) -> CloudUrl:
    """An Azure blob URL or a Cloud Storage one, as copied from a portal or console.

    `https://account.blob.core.windows.net/container/...` or
    `https://storage.googleapis.com/bucket/...`: percent-encoded, so decoded.
    """
    if "@" in authority:
        msg = "holds credentials (user:password@): set them in the credential settings"
        raise BucketUrlError(msg + ", not in the URL")
    host = authority.lower()
    if "?" in path or "?" in host:
        # A blob URL with a SAS token appended: the token goes in its own setting.
        msg = "holds a query (a SAS token?): put the token in azure_sas_token, not in the URL"
        raise BucketUrlError(msg)
    if host in _GCS_HOSTS:
        what, cloud, account = "bucket", "gs", None
    elif _AZURE_HOST.match(host):
        what, cloud, account = "container", "az", host.replace(".dfs.", ".blob.", 1)
    else:
        msg = (
            "is not a storage URL: an https:// bucket_url is an Azure blob URL "
            "(https://<account>.blob.core.windows.net/<container>[/prefix]) or a Cloud "
            "Storage one (https://storage.googleapis.com/<bucket>[/prefix])"
        )
        raise BucketUrlError(msg)
    name, _, rest = unquote(path).partition("/")
    if not name:
        msg = f"names no {what} (expected https://{host}/<{what}>[/prefix])"
        raise BucketUrlError(msg)
    _check_name(name, what)
    return CloudUrl(cloud, name, _root(rest), f"https://{host}/{name}/", account)


def _check_name(name: str, what: str) -> None:
    if not _NAME.match(name):
        msg = (
            f"names {what} {name!r}: a {what} name holds only letters, digits, "
            "'.', '-' and '_' (the prefix goes after a '/')"
        )
        raise BucketUrlError(msg)


def _root(path: str) -> str:
    root = path.strip("/")
    return f"{root}/" if root else ""


def open_storage(
    bucket_url: str,
    aws: AwsSettings,
    gcs: GcsSettings,
    azure: AzureSettings,
) -> Storage:
    """Build the backend for a checked `bucket_url`; nothing is sent until the first listing.

    Args:
        bucket_url: A cloud URL (`cloud_url`), a `file://` URL or a path.
        aws: Used for S3 only.
        gcs: Used for `gs://` only.
        azure: Used for Azure only; an account the URL names comes in its place.

    Returns:
        A storage backend rooted at the URL.
    """
    url = cloud_url(bucket_url)
    if url is None:
        return LocalStorage(local_root(bucket_url))
    if url.cloud == "gs":
        from tap_mparticle.storage_gcs import GcsStorage  # noqa: PLC0415  (an extra's client)

        return GcsStorage(url.name, url.root, gcs, url.uri_base)
    if url.cloud == "az":
        from tap_mparticle.storage_azure import AzureStorage  # noqa: PLC0415  (an extra's client)

        if url.account_host:
            endpoint = f"https://{url.account_host}"
            azure = dataclasses.replace(azure, account_name=url.account_name, endpoint_url=endpoint)
        return AzureStorage(url.name, url.root, azure, url.uri_base)
    return S3Storage(url.name, url.root, aws)
