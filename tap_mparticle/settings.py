"""Typed, validated view of the tap's config.

The SDK hands streams a `Mapping[str, Any]`; every read of it would be an untyped
lookup with its own default. Reading the config once here gives one place for
defaults, normalisation (prefixes always end in "/") and the cross-field rules a
JSON Schema cannot say, reported together as one `ConfigValidationError`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import re
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from singer_sdk.exceptions import ConfigValidationError

from mparticle_facts.identities import read_identity_types
from mparticle_facts.plugin_guards import mask_userinfo
from tap_mparticle.aws_session import AwsSettings
from tap_mparticle.backends import AZURE_ACCOUNT, BucketUrlError, cloud_url, url_scheme
from tap_mparticle.cursor import parse_timestamp
from tap_mparticle.preflight import (
    MAX_DOWNLOAD_CONCURRENCY,
    MAX_LOOKBACK_MINUTES,
    aws_setting_errors,
    http_url,
    trim_aws_credentials,
)
from tap_mparticle.sharding import Shard
from tap_mparticle.storage import local_root
from tap_mparticle.storage_azure import AzureSettings
from tap_mparticle.storage_gcs import GcsSettings

if TYPE_CHECKING:
    from collections.abc import Mapping

ON_BAD_RECORD_VALUES = ("fail", "skip")
DEFAULT_LOOKBACK_MINUTES = 120
DEFAULT_DOWNLOAD_CONCURRENCY = 4
#: mParticle's "Store Data In Folders By Date" options, as `date_folders_by` names them.
DATE_FOLDERS_BY_VALUES = ("event_time", "upload_time", "none")


def normalize_prefix(value: str) -> str:
    """Make a prefix relative to the bucket root and folder-shaped.

    Args:
        value: A user-typed prefix such as `/events`, `events/` or "".

    Returns:
        "" or a prefix ending in exactly one "/".
    """
    stripped = value.strip().strip("/")
    return f"{stripped}/" if stripped else ""


@dataclasses.dataclass(frozen=True)
class TapSettings:
    """Everything the streams read from config, already checked."""

    bucket_url: str
    prefixes: dict[str, str]
    start_date: dt.datetime | None
    lookback: dt.timedelta
    on_bad_record: str
    download_concurrency: int
    aws: AwsSettings = dataclasses.field(repr=False)
    gcs: GcsSettings = dataclasses.field(default_factory=GcsSettings)
    azure: AzureSettings = dataclasses.field(default_factory=AzureSettings, repr=False)
    #: Identity types the audience streams emit (Events API names); None for all.
    identity_types: frozenset[str] | None = None
    #: Which files of the drop this run reads (see `sharding`).
    shard: Shard = dataclasses.field(default_factory=Shard)
    #: How date folders were laid out (see `folders`).
    date_folders_by: str = "event_time"

    def prefixes_inside(self, setting: str) -> list[str]:
        """Other streams' prefixes nested in this one's, which it must not read.

        With the defaults (events at the root, audiences under `audiences/`) the
        events stream would otherwise try to read audience files as event batches.

        Args:
            setting: The prefix setting of the stream asking.

        Returns:
            The prefixes to leave out of its listing.
        """
        own = self.prefixes[setting]
        return [
            other
            for name, other in self.prefixes.items()
            if name != setting and other != own and other.startswith(own)
        ]

    @property
    def skip_bad_records(self) -> bool:
        """True when bad lines and files are logged, counted and passed over."""
        return self.on_bad_record == "skip"

    @classmethod
    def from_config(
        cls, config: Mapping[str, Any], prefix_settings: Mapping[str, str]
    ) -> TapSettings:
        """Read and check the config.

        Args:
            config: The tap's validated config.
            prefix_settings: Setting name -> default, for every stream's prefix setting.

        Returns:
            The settings.

        Raises:
            ConfigValidationError: One or more settings are wrong; every problem is listed.
        """
        config = trim_aws_credentials(config)
        errors: list[str] = []
        bucket_url = str(config.get("bucket_url") or "").strip()
        errors.extend(_bucket_url_errors(bucket_url))
        errors.extend(_aws_errors(config))
        errors.extend(aws_setting_errors(config))
        errors.extend(_cloud_errors(config, bucket_url))
        if config.get("batch_config"):
            errors.append(
                "batch_config is not supported: tap-mparticle writes STATE after each file, "
                "which BATCH messages would run behind"
            )

        start_date = None
        if config.get("start_date"):
            try:
                start_date = parse_timestamp(str(config["start_date"]))
            except ValueError:
                errors.append(f"start_date {config['start_date']!r} is not an ISO 8601 date-time")

        lookback_minutes = config.get("lookback_window_minutes", DEFAULT_LOOKBACK_MINUTES)
        if (
            not isinstance(lookback_minutes, int)
            or not 0 <= lookback_minutes <= MAX_LOOKBACK_MINUTES
        ):
            errors.append(
                "lookback_window_minutes must be a whole number of minutes from 0 to "
                f"{MAX_LOOKBACK_MINUTES} (a year), not {lookback_minutes!r}"
            )
            lookback_minutes = DEFAULT_LOOKBACK_MINUTES

        on_bad_record = str(config.get("on_bad_record") or "fail")
        if on_bad_record not in ON_BAD_RECORD_VALUES:
            errors.append(f"on_bad_record must be 'fail' or 'skip', not {on_bad_record!r}")

        concurrency = config.get("download_concurrency", DEFAULT_DOWNLOAD_CONCURRENCY)
        if not isinstance(concurrency, int) or not 1 <= concurrency <= MAX_DOWNLOAD_CONCURRENCY:
            errors.append(
                f"download_concurrency must be from 1 to {MAX_DOWNLOAD_CONCURRENCY}, "
                f"not {concurrency!r}"
            )
            concurrency = DEFAULT_DOWNLOAD_CONCURRENCY

        identity_types, identity_errors = read_identity_types(config.get("identity_types"))
        errors.extend(identity_errors)
        shard, shard_errors = _read_shard(config)
        errors.extend(shard_errors)
        date_folders_by = str(config.get("date_folders_by") or "event_time")
        if date_folders_by not in DATE_FOLDERS_BY_VALUES:
            allowed = ", ".join(DATE_FOLDERS_BY_VALUES)
            errors.append(f"date_folders_by must be one of {allowed}, not {date_folders_by!r}")

        prefixes = {
            name: normalize_prefix(str(config.get(name, default)))
            for name, default in prefix_settings.items()
        }
        errors.extend(_prefix_errors(prefixes, bucket_url))
        # Each stream reads its own files; one folder for two kinds of file would feed
        # audience files to the events parser and the other way round.
        by_prefix: dict[str, list[str]] = {}
        for name, prefix in prefixes.items():
            by_prefix.setdefault(prefix, []).append(name)
        errors.extend(
            f"{' and '.join(names)} are both {prefix!r}: each kind of file needs its own folder"
            for prefix, names in by_prefix.items()
            if len(names) > 1
        )

        if errors:
            msg = "Invalid tap-mparticle config: " + "; ".join(errors)
            raise ConfigValidationError(msg, errors=errors)
        return cls(
            bucket_url=bucket_url,
            prefixes=prefixes,
            start_date=start_date,
            lookback=dt.timedelta(minutes=lookback_minutes),
            on_bad_record=on_bad_record,
            download_concurrency=concurrency,
            aws=AwsSettings(
                access_key_id=config.get("aws_access_key_id") or None,
                secret_access_key=config.get("aws_secret_access_key") or None,
                session_token=config.get("aws_session_token") or None,
                profile=config.get("aws_profile") or None,
                region=config.get("aws_region") or None,
                endpoint_url=config.get("aws_endpoint_url") or None,
                role_arn=config.get("aws_role_arn") or None,
                external_id=config.get("aws_external_id") or None,
                max_connections=concurrency + 4,
            ),
            identity_types=identity_types,
            shard=shard,
            date_folders_by=date_folders_by,
            gcs=GcsSettings(
                credentials_file=config.get("gcs_credentials_file") or None,
                project=config.get("gcs_project") or None,
                endpoint_url=config.get("gcs_endpoint_url") or None,
            ),
            azure=azure_settings(config),
        )


def azure_settings(config: Mapping[str, Any]) -> AzureSettings:
    """The Azure settings from the config (also needed before validation, to mask secrets).

    Args:
        config: The tap's config.

    Returns:
        The settings; unset ones are None.
    """

    def text(name: str) -> str | None:
        value = config.get(name)
        return str(value) if value else None

    return AzureSettings(
        account_name=text("azure_account_name"),
        account_key=text("azure_account_key"),
        sas_token=text("azure_sas_token"),
        connection_string=text("azure_connection_string"),
        endpoint_url=text("azure_endpoint_url"),
    )


def _bucket_url_errors(bucket_url: str) -> list[str]:
    if not bucket_url:
        return [
            (
                "bucket_url is required: s3://bucket[/prefix], gs://bucket[/prefix], "
                "az://container[/prefix] or a local directory"
            )
        ]
    shown = _shown_url(bucket_url)
    try:
        if cloud_url(bucket_url) is not None:
            return []
    except BucketUrlError as exc:
        hint = _url_hint(bucket_url) if str(exc).startswith("names no ") else ""
        return [f"bucket_url {shown!r} {exc}{hint}"]
    scheme = url_scheme(bucket_url)
    if scheme not in {"", "file"}:
        reason = (
            f"has unsupported scheme {scheme!r} (use s3://, gs://, az://, abfss://, "
            "https://<account>.blob.core.windows.net, file:// or a path)"
        )
        return [f"bucket_url {shown!r} {reason}"]
    if scheme == "file":
        return _file_url_errors(bucket_url, shown)
    return _local_root_errors(bucket_url, shown)


def _file_url_errors(bucket_url: str, shown: str) -> list[str]:
    try:
        parsed = urlparse(bucket_url)
    except ValueError:  # "Invalid IPv6 URL": a [ or ] in a file:// URL's host
        return [f"bucket_url {shown!r} is not a file:// URL (expected file:///path/to/drop)"]
    if parsed.scheme == "file" and not parsed.path.strip("/"):
        # file:// alone would read the working directory (and file:/// the whole disk).
        return [f"bucket_url {shown!r} names no directory (expected file:///path/to/drop)"]
    if parsed.scheme == "file" and parsed.netloc.lower() not in {"", "localhost"}:
        # urlparse takes `work` of file://work/x for a host and drops it: the tap
        # would read /x, not work/x.
        host = parsed.netloc.rpartition("@")[2]  # never a user:password
        reason = f"names host {host!r}: a file:// URL takes no host (or localhost)"
        return [f"bucket_url {shown!r} {reason}; for a path use file:///{host}{parsed.path}"]
    return _local_root_errors(bucket_url, shown)


def _shown_url(bucket_url: str) -> str:
    """The URL as an error shows it: no user:password, no https:// query.

    A blob URL may come with a SAS token pasted after its `?`.
    """
    shown = mask_userinfo(bucket_url)
    if url_scheme(bucket_url) == "https" and "?" in shown:
        shown = shown.split("?", 1)[0] + "?***"
    return shown


#: A cloud URL with its "://" mistyped (s3//bucket, s3:/bucket, s3:bucket).
_MISTYPED_CLOUD_URL = re.compile(r"^(s3|gs|az)(?::/*|/+)(?!/)(\S+)$")


def _url_hint(bucket_url: str) -> str:
    """The hint "; did you mean s3://bucket?" for a mistyped "://", else ""."""
    match = _MISTYPED_CLOUD_URL.match(bucket_url)
    if not match:
        return ""
    return f"; did you mean {match[1]}://{match[2]}?"


def _local_root_errors(bucket_url: str, shown: str) -> list[str]:
    """A local bucket_url must name a directory that exists, checked before any output.

    Otherwise the run wrote every SCHEMA and then failed listing the first stream
    with "not a directory", naming no setting.
    """
    root = local_root(bucket_url)
    if root.is_dir():
        return []
    hint = _url_hint(bucket_url)
    if os.path.lexists(root):  # False, not an exception, for a path we may not stat
        return [f"bucket_url {shown!r} is not a directory (a local drop is a directory){hint}"]
    where = str(root.absolute())
    return [f"bucket_url {shown!r} does not exist (a local directory: {where}){hint}"]


def _prefix_errors(prefixes: Mapping[str, str], bucket_url: str) -> list[str]:
    """Refuse a prefix that leads outside bucket_url (the README: nothing outside is read).

    A `..` segment climbs out of a local drop (and `.` names another folder in a
    bucket than on disk), so both are refused on every backend. A local prefix
    that exists is also resolved: a symbolic link on its way must stay inside.
    """
    errors = []
    root = None
    if not _bucket_url_errors(bucket_url) and cloud_url(bucket_url) is None:
        root = local_root(bucket_url)
    for name, prefix in prefixes.items():
        dots = sorted({part for part in prefix.split("/") if part in {".", ".."}}, reverse=True)
        if "://" in prefix or prefix.startswith("s3:/"):
            errors.append(
                f"{name} {prefix!r} is a URL: a prefix is a folder inside bucket_url "
                f"(bucket_url: s3://bucket, {name}: events)"
            )
        elif dots:
            errors.append(
                f"{name} {prefix!r} has a {dots[0]!r} segment: a prefix names a folder "
                "inside bucket_url, and nothing outside bucket_url is read"
            )
        elif root is not None and prefix and os.path.exists(root / prefix):  # noqa: PTH110
            # (os.path.exists: False, not an exception, for a folder we may not stat)
            resolved = (root / prefix).resolve()
            if not resolved.is_relative_to(root.resolve()):
                errors.append(
                    f"{name} {prefix!r} leads outside bucket_url through a symbolic link "
                    f"(to {resolved}): nothing outside bucket_url is read"
                )
    return errors


def _read_shard(config: Mapping[str, Any]) -> tuple[Shard, list[str]]:
    count = config.get("shard_count", 1)
    index = config.get("shard_index", 0)
    # bool is an int to Python, but `shard_count: true` is a typo, not a count.
    if not isinstance(count, int) or isinstance(count, bool) or count < 1:
        return Shard(), [f"shard_count must be a whole number, 1 or more, not {count!r}"]
    if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < count:
        reason = f"shard_index must be 0 to {count - 1} (0-based) with shard_count {count}"
        return Shard(), [f"{reason}, not {index!r}"]
    return Shard(count, index), []


def _cloud_errors(config: Mapping[str, Any], bucket_url: str) -> list[str]:
    errors = []
    key, sas = config.get("azure_account_key"), config.get("azure_sas_token")
    connection_string = config.get("azure_connection_string")
    if key and sas:
        errors.append("set either azure_account_key or azure_sas_token, not both")
    if connection_string and (key or sas or config.get("azure_account_name")):
        errors.append(
            "azure_connection_string already names the account and its secret: "
            "leave azure_account_name, azure_account_key and azure_sas_token unset"
        )
    for name, example in (
        ("azure_endpoint_url", "http://127.0.0.1:10000/devstoreaccount1"),
        ("gcs_endpoint_url", "http://127.0.0.1:4443"),
    ):
        endpoint = str(config.get(name) or "")
        parsed = http_url(endpoint)
        shown = mask_userinfo(endpoint)
        if endpoint and parsed is None:
            errors.append(f"{name} {shown!r} is not an http(s) URL (e.g. {example})")
        elif parsed and parsed.query:
            # Not quoted: Azure's portal gives a SAS as a URL, its query the signature.
            sas = "; a SAS goes in azure_sas_token" if name.startswith("azure") else ""
            errors.append(
                f"{name} has a query string: give the URL without it (e.g. {example}){sas}"
            )
        elif parsed and name == "gcs_endpoint_url" and parsed.path.strip("/"):
            # The client puts /storage/v1/b/<bucket> after it: a path there made every
            # listing a NotFound, "the bucket does not exist".
            errors.append(
                f"gcs_endpoint_url {shown!r} has a path: give the scheme, host and port "
                f"only (e.g. {example}); the bucket goes in bucket_url"
            )
    errors.extend(_pasted_credential_errors(config))
    errors.extend(_azure_account_errors(config, bucket_url))
    return errors


def _pasted_credential_errors(config: Mapping[str, Any]) -> list[str]:
    """A credential pasted into a setting that would quote it: refused, never shown."""
    errors = []
    account = config.get("azure_account_name")
    if account and not AZURE_ACCOUNT.match(str(account)):
        # Not quoted: a connection string or key pasted here would be shown.
        errors.append(
            "azure_account_name is not a storage account name (3 to 24 letters "
            "and digits); a connection string goes in azure_connection_string"
        )
    if str(config.get("gcs_credentials_file") or "").lstrip().startswith("{"):
        # Was quoted whole (a private key) in the error that no such file exists.
        errors.append(
            "gcs_credentials_file holds a key's JSON, not the path of its file: save the "
            "key to a file and give its path (the value is not shown: it holds a private key)"
        )
    return errors


def _azure_account_errors(config: Mapping[str, Any], bucket_url: str) -> list[str]:
    """Azure needs an account from exactly one place: the settings or the URL's host."""
    errors = []
    try:
        url = cloud_url(bucket_url)
    except BucketUrlError:
        url = None  # reported with bucket_url
    named = url.account_name if url else None
    given = [
        name
        for name in ("azure_account_name", "azure_endpoint_url", "azure_connection_string")
        if config.get(name)
    ]
    if named and str(config.get("azure_account_name") or "").lower() == named.lower():
        given.remove("azure_account_name")  # the same account twice
    if named and given:
        # The host in the URL is the account's endpoint; a second one could disagree.
        errors.append(
            f"bucket_url names the Azure account {named!r} in its host: leave "
            f"{' and '.join(given)} unset (or use az://<container>[/prefix])"
        )
    if config.get("azure_account_key") and not (config.get("azure_account_name") or named):
        errors.append("azure_account_key needs azure_account_name")
    if url and url.cloud == "az" and not (named or given):
        errors.append(
            f"an {url_scheme(bucket_url)}:// bucket_url needs azure_account_name "
            "(or azure_endpoint_url) "
            "or azure_connection_string, or the account in its host "
            "(abfss://<container>@<account>.dfs.core.windows.net)"
        )
    return errors


def _aws_errors(config: Mapping[str, Any]) -> list[str]:
    errors = []
    key_id = config.get("aws_access_key_id")
    if bool(key_id) != bool(config.get("aws_secret_access_key")):
        errors.append(
            "aws_access_key_id and aws_secret_access_key must be set together "
            "(or neither, to use boto3's default credential chain)"
        )
    if config.get("aws_session_token") and not key_id:
        errors.append("aws_session_token needs aws_access_key_id and aws_secret_access_key")
    if config.get("aws_external_id") and not config.get("aws_role_arn"):
        errors.append("aws_external_id is only used with aws_role_arn")
    if key_id and config.get("aws_profile"):
        errors.append("set either aws_profile or aws_access_key_id, not both")
    return errors
