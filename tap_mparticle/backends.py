"""Pick the storage backend for a `bucket_url`: S3, Google Cloud Storage, Azure or a directory.

Kept apart from `storage` so that the GCS and Azure modules can build on its types
without an import circle. They import their client libraries only when built, so an
S3 user needs neither extra installed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlparse

from tap_mparticle.storage import storage_for

if TYPE_CHECKING:
    from tap_mparticle.aws_session import AwsSettings
    from tap_mparticle.storage import Storage
    from tap_mparticle.storage_azure import AzureSettings
    from tap_mparticle.storage_gcs import GcsSettings


def open_storage(
    bucket_url: str,
    aws: AwsSettings,
    gcs: GcsSettings,
    azure: AzureSettings,
) -> Storage:
    """Build the backend for a `bucket_url`; nothing is sent until the first listing.

    Args:
        bucket_url: `gs://bucket[/prefix]`, `az://container[/prefix]`, or anything
            `storage.storage_for` takes (`s3://`, `file://`, a path).
        aws: Used for S3 only.
        gcs: Used for `gs://` only.
        azure: Used for `az://` only.

    Returns:
        A storage backend rooted at the URL.
    """
    parsed = urlparse(bucket_url)
    root = parsed.path.strip("/")
    root = f"{root}/" if root else ""
    if parsed.scheme == "gs":
        from tap_mparticle.storage_gcs import GcsStorage  # noqa: PLC0415  (an extra's client)

        return GcsStorage(parsed.netloc, root, gcs)
    if parsed.scheme == "az":
        from tap_mparticle.storage_azure import AzureStorage  # noqa: PLC0415  (an extra's client)

        return AzureStorage(parsed.netloc, root, azure)
    return storage_for(bucket_url, aws)
