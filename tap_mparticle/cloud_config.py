"""Config properties for Google Cloud Storage and Azure Blob Storage drops.

Kept apart from the tap's S3 and stream settings so each cloud's options read as one
group in `--about` and the README, and `tap.py` stays about the tap.
"""

from __future__ import annotations

from singer_sdk import typing as th

GCS_PROPERTIES = (
    th.Property(
        "gcs_credentials_file",
        th.StringType(),
        title="GCS credentials file",
        description=(
            "Path to a service account key file (JSON) for a gs:// bucket_url, or the file "
            "`gcloud auth application-default login` writes. Unset: Application Default "
            "Credentials (GOOGLE_APPLICATION_CREDENTIALS, gcloud, or the attached service "
            "account). Read-only access (Storage Object Viewer) is enough."
        ),
    ),
    th.Property(
        "gcs_project",
        th.StringType(),
        title="GCS project",
        description="Google Cloud project to bill requests to; unset: the credentials' own.",
    ),
    th.Property(
        "gcs_endpoint_url",
        th.StringType(),
        title="GCS endpoint URL",
        description=(
            "A Cloud Storage JSON API endpoint other than Google's, e.g. an emulator such "
            "as fake-gcs-server. Without gcs_credentials_file, requests to it are anonymous."
        ),
    ),
)

AZURE_PROPERTIES = (
    th.Property(
        "azure_account_name",
        th.StringType(),
        title="Azure storage account",
        description=(
            "Storage account holding the az:// container; with azure_account_key, "
            "azure_sas_token, or neither (the default Azure credential chain: environment, "
            "managed identity, Azure CLI)."
        ),
    ),
    th.Property(
        "azure_account_key",
        th.StringType(),
        secret=True,
        title="Azure account key",
        description="Shared key of azure_account_name.",
    ),
    th.Property(
        "azure_sas_token",
        th.StringType(),
        secret=True,
        title="Azure SAS token",
        description=(
            "Shared access signature for the account or container; Read and List "
            "permissions are enough."
        ),
    ),
    th.Property(
        "azure_connection_string",
        th.StringType(),
        secret=True,
        title="Azure connection string",
        description=(
            "A storage connection string (account, secret and endpoints in one), instead of "
            "azure_account_name with a key or SAS token."
        ),
    ),
    th.Property(
        "azure_endpoint_url",
        th.StringType(),
        title="Azure blob endpoint URL",
        description=(
            "The account's blob endpoint when it is not https://<account>.blob.core.windows.net: "
            "a sovereign cloud, or Azurite (http://127.0.0.1:10000/devstoreaccount1)."
        ),
    ),
)
