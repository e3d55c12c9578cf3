"""tap-mparticle: the files mParticle drops into S3, as Singer streams."""

from __future__ import annotations

import functools
import io
import json
import sys
from typing import IO, TYPE_CHECKING, Any, ClassVar, cast

from singer_sdk import Tap
from singer_sdk import typing as th
from singer_sdk.exceptions import ConfigValidationError, MapperNotInitialized
from singer_sdk.helpers._classproperty import classproperty
from singer_sdk.helpers.capabilities import PluginCapabilities, TapCapabilities
from singer_sdk.mapper import RemoveRecordTransform
from typing_extensions import override

from mparticle_facts.env_config import plugin_environment_config
from mparticle_facts.plugin_guards import (
    exit_stdout_closed,
    read_text,
    redact_config_errors,
    settings_schema,
)
from tap_mparticle import sdk_hooks
from tap_mparticle.audience_streams import (
    AudienceFileStream,
    AudienceMembershipsStream,
    AudienceUserAttributesStream,
)
from tap_mparticle.backends import open_storage
from tap_mparticle.catalog_checks import parse_catalog, selection_warnings
from tap_mparticle.cloud_config import AZURE_PROPERTIES, GCS_PROPERTIES
from tap_mparticle.interrupt import stop_on_signal
from tap_mparticle.parsers import BadInputError
from tap_mparticle.preflight import (
    ConfigFileError,
    guard_logs,
    parse_json_object,
    read_json_object,
    unknown_settings,
)
from tap_mparticle.settings import (
    DATE_FOLDERS_BY_VALUES,
    DEFAULT_DOWNLOAD_CONCURRENCY,
    DEFAULT_LOOKBACK_MINUTES,
    ON_BAD_RECORD_VALUES,
    TapSettings,
    azure_settings,
)
from tap_mparticle.sharding import ShardStateError
from tap_mparticle.state_shape import StateShapeError, check_state, singer_state
from tap_mparticle.storage import StorageError
from tap_mparticle.storage_azure import azure_secret_values
from tap_mparticle.streams import BatchesStream, EventsStream
from tap_mparticle.writer import BufferedMsgSpecWriter

if TYPE_CHECKING:
    from types import FrameType

    import click
    from singer_sdk.helpers.capabilities import CapabilitiesEnum

    from tap_mparticle.client import MParticleFileStream
    from tap_mparticle.storage import Storage

SECRET_SETTINGS = (
    "aws_access_key_id",
    "aws_secret_access_key",
    "aws_session_token",
    "aws_external_id",
    "azure_account_key",
    "azure_sas_token",
    "azure_connection_string",
)

STREAM_TYPES: tuple[type[MParticleFileStream], ...] = (
    EventsStream,
    BatchesStream,
    AudienceMembershipsStream,
    AudienceUserAttributesStream,
)


class TapMParticle(Tap):
    """Reads mParticle's S3 event output (and audience files) incrementally."""

    name = "tap-mparticle"
    # msgspec serialises RECORD messages about 1.5x faster than the default writer,
    # and writing records in blocks saves a system call per record (see writer.py).
    message_writer_class = BufferedMsgSpecWriter
    # No BATCH: its files are written after the records are read, so the STATE we
    # write after each file would run ahead of the data. No ACTIVATE_VERSION: every
    # stream is incremental, never a full-table replace.
    capabilities: ClassVar[list[CapabilitiesEnum]] = [
        TapCapabilities.CATALOG,
        TapCapabilities.STATE,
        TapCapabilities.DISCOVER,
        # `--test`: the SDK's connection test, one record of each stream that has
        # one and exit 0, so a scheduler can check credentials and the drop cheaply.
        TapCapabilities.TEST,
        PluginCapabilities.ABOUT,
        PluginCapabilities.STREAM_MAPS,
        PluginCapabilities.FLATTENING,
        PluginCapabilities.STRUCTURED_LOGGING,
    ]

    config_jsonschema: ClassVar[dict] = th.PropertiesList(  # type: ignore[type-arg]
        th.Property(
            "bucket_url",
            th.StringType(nullable=False),
            required=True,
            title="Bucket URL",
            description=(
                "Where mParticle drops files: s3://bucket[/prefix], gs://bucket[/prefix] "
                "(Google Cloud Storage), az://container[/prefix] (Azure Blob Storage; also "
                "abfss://container@account.dfs.core.windows.net[/prefix] or "
                "https://account.blob.core.windows.net/container[/prefix]), or a local "
                "directory (path or file:// URL) holding the same layout, e.g. after "
                "`aws s3 sync`. After the bucket or container, the rest is the prefix as "
                "typed (#, ? and %2F included)."
            ),
            examples=[
                "s3://mp-forwarding-acme",
                "gs://acme-mparticle/audiences",
                "az://mparticle-events",
                "file:///data/mparticle",
            ],
        ),
        th.Property(
            "events_prefix",
            th.StringType(),
            default="",
            title="Events prefix",
            description=(
                "The Folder Name set in mParticle's Amazon S3 connection, relative to "
                "bucket_url. Empty when files land at the root (or in date folders there)."
            ),
        ),
        th.Property(
            "audiences_prefix",
            th.StringType(),
            default="audiences/",
            title="Audiences prefix",
            description=(
                "Where audience files land (downloads, Kinesis Firehose deliveries, "
                "cloud-storage delta files, partner feed messages), relative to bucket_url. "
                "The events stream does not read it."
            ),
        ),
        th.Property(
            "identity_types",
            th.ArrayType(th.StringType()),
            title="Identity types",
            description=(
                "Emit audience memberships of only these identity types (Events API names "
                "such as customer_id, email, ios_advertising_id; other spellings are "
                "normalised), as an audience output that accepts only some identities "
                "would. Unset: all."
            ),
        ),
        th.Property(
            "start_date",
            th.DateTimeType(),
            title="Start date",
            description=(
                "Files last modified before it are not read, and YYYY-MM-DD date folders "
                "wholly before it are not listed at all."
            ),
        ),
        th.Property(
            "lookback_window_minutes",
            th.IntegerType(),
            default=DEFAULT_LOOKBACK_MINUTES,
            title="Look-back window (minutes)",
            description=(
                "How far before the bookmark to look for files that appeared late: same-"
                "second files, multipart uploads stamped with their start time, delayed "
                "forwards. Each is read exactly once; state remembers the keys read inside "
                "this window only."
            ),
        ),
        th.Property(
            "on_bad_record",
            th.StringType(),
            default="fail",
            allowed_values=list(ON_BAD_RECORD_VALUES),
            title="On bad record",
            description=(
                "fail: stop at the first bad file, line or event with an error naming it. "
                "skip: log them (a file's first 20 one by one), count them, and go on with "
                "everything intact."
            ),
        ),
        th.Property(
            "download_concurrency",
            th.IntegerType(),
            default=DEFAULT_DOWNLOAD_CONCURRENCY,
            title="Download concurrency",
            description=(
                "Files downloaded ahead while the current one is parsed (memory stays "
                "bounded: at most 8 MiB buffered per file in flight). 1 reads one at a time."
            ),
        ),
        th.Property(
            "date_folders_by",
            th.StringType(),
            default="event_time",
            allowed_values=list(DATE_FOLDERS_BY_VALUES),
            title="Date folders by",
            description=(
                "mParticle's 'Store Data In Folders By Date' option. event_time (by event "
                "time, or by first event time or upload time): a late batch can land in an "
                "old folder, so only folders before start_date are skipped. upload_time "
                "(by upload time; Kinesis Firehose folders): folders before the bookmark "
                "minus the look-back window (and one day) are not listed, so an incremental "
                "run lists a day or two of folders. none: no folder is a date folder."
            ),
        ),
        th.Property(
            "shard_count",
            th.IntegerType(),
            default=1,
            title="Shard count",
            description=(
                "Split the drop between this many taps run side by side with the same "
                "settings, each with its own shard_index and its own state. Each file "
                "belongs to one shard by a stable hash of its key. A state written with "
                "another shard_count is refused."
            ),
        ),
        th.Property(
            "shard_index",
            th.IntegerType(),
            default=0,
            title="Shard index",
            description="Which shard this tap reads: 0 to shard_count - 1.",
        ),
        th.Property(
            "aws_access_key_id",
            th.StringType(),
            secret=True,  # with the secret, enough to find the account; Meltano keeps it in .env
            title="AWS access key ID",
            description="IAM user key. Leave unset to use boto3's default credential chain.",
        ),
        th.Property(
            "aws_secret_access_key",
            th.StringType(),
            secret=True,
            title="AWS secret access key",
            description="Secret for aws_access_key_id.",
        ),
        th.Property(
            "aws_session_token",
            th.StringType(),
            secret=True,
            title="AWS session token",
            description="Session token for temporary credentials.",
        ),
        th.Property(
            "aws_profile",
            th.StringType(),
            title="AWS profile",
            description="A named profile from ~/.aws/config.",
        ),
        th.Property(
            "aws_region",
            th.StringType(),
            title="AWS region",
            description="The bucket's region, e.g. us-east-1.",
        ),
        th.Property(
            "aws_endpoint_url",
            th.StringType(),
            title="S3 endpoint URL",
            description=(
                "An S3-compatible endpoint (MinIO, LocalStack, Ceph, moto): scheme, host and "
                "port only; the bucket goes in bucket_url."
            ),
        ),
        th.Property(
            "aws_role_arn",
            th.StringType(),
            title="AWS role ARN",
            description=(
                "A role to assume (credentials are refreshed before they expire), for a "
                "bucket shared through a cross-account role."
            ),
        ),
        th.Property(
            "aws_external_id",
            th.StringType(),
            secret=True,
            title="AWS external ID",
            description="External ID the role's trust policy requires, if any.",
        ),
        *GCS_PROPERTIES,
        *AZURE_PROPERTIES,
    ).to_dict()

    #: Streams the input state has an entry for (`load_state`), even one with no bookmark.
    streams_in_state: frozenset[str] = frozenset()

    @override
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # One line per log line before the SDK says anything (first, on Python 3.10, its
        # end-of-life warning); the secrets are added once the config is read.
        guard_logs([])
        try:
            super().__init__(*args, **kwargs)
        except ConfigValidationError as exc:
            # The SDK checked the config before our log filter could mask its secrets.
            raw = sdk_hooks.raw_config(self)
            exc.errors = redact_config_errors(exc.errors or [str(exc)], raw, SECRET_SETTINGS)
            raise
        guard_logs(
            [
                *(self.config.get(name) for name in SECRET_SETTINGS),
                # and as the settings use them, trimmed (see trim_aws_credentials)
                *(str(self.config.get(name) or "").strip() for name in SECRET_SETTINGS),
                *azure_secret_values(azure_settings(self.config)),
            ]
        )
        for message in unknown_settings(self.config, self.known_settings()):
            self.logger.warning("%s", message)
        self.deselect_removed_streams()
        if kwargs.get("validate_config", True):
            _ = self.settings  # cross-field rules fail here, as a ConfigValidationError
            self.check_shard_state()
            self.warn_selection()

    @override
    def load_state(self, state: dict[str, Any]) -> None:
        """Check every stream's bookmark (see `state_shape`) before the SDK takes it in.

        Raises:
            StateShapeError: A field no version of the tap writes so; nothing has moved.
        """
        check_state(state)
        self.streams_in_state = frozenset(state.get("bookmarks") or ())
        super().load_state(state)

    def warn_selection(self) -> None:
        """Warn when the run would read nothing, or its catalog names unknown streams."""
        catalog = self.input_catalog
        ids = None if catalog is None else [entry.tap_stream_id for entry in catalog.streams]
        for message in selection_warnings(ids, self.streams):
            self.logger.warning("%s", message)

    def deselect_removed_streams(self) -> None:
        """Deselect each stream that stream maps remove, so it is not read at all.

        The SDK reads such a stream, drops each of its records and still moves its
        bookmark past every file it read: a later run without the map (or with the
        stream selected in a catalog) would never read those files. Deselected, the
        stream keeps its bookmark where it was. Discovery sets up no stream maps.
        """
        try:
            _ = self.mapper
        except MapperNotInitialized:
            return
        for name, stream in self.streams.items():
            if stream.selected and all(
                isinstance(stream_map, RemoveRecordTransform) for stream_map in stream.stream_maps
            ):
                self.logger.info(
                    "Stream %r is not read: stream_maps removes it, so its bookmark stays "
                    "where it was",
                    name,
                )
                stream.selected = False

    def check_shard_state(self) -> None:
        """Refuse, before any message, a state that another shard wrote (see `sharding`).

        Raises:
            ShardStateError: A selected stream's state belongs to another shard.
        """
        bookmarks = self.state.get("bookmarks") or {}
        for name, stream in self.streams.items():
            if stream.selected:
                self.settings.shard.check_state(name, bookmarks.get(name) or {})

    @override
    def _handle_termination(
        self,
        signum: int,
        frame: FrameType | None,
    ) -> None:
        """Stop on SIGINT/SIGTERM: one ERROR line, no STATE, exit 130/143 (see `interrupt`)."""
        writer = self.message_writer
        stop_on_signal(
            self.logger, signum, writer if isinstance(writer, BufferedMsgSpecWriter) else None
        )

    @classproperty
    def _env_var_config(cls) -> dict[str, Any]:  # noqa: N805  (the SDK's name)
        """Settings from environment variables, each value checked in one line."""
        return plugin_environment_config(cast("type[TapMParticle]", cls))

    @classmethod
    def known_settings(cls) -> list[str]:
        """Every setting name: ours and the SDK's built-in ones (stream maps, flattening...)."""
        return list(settings_schema(cls).get("properties", {}))

    @classmethod
    @override
    def cb_config(
        cls, ctx: click.Context, param: click.Option, value: tuple[str, ...]
    ) -> Any:  # the SDK's private _ConfigInput
        # The SDK's own reader raises a TypeError for a file holding `[1]`; ours says so.
        try:
            for path in value:
                if path != "ENV":
                    read_json_object(path, "config file")
        except ConfigFileError as exc:
            cls.logger.error("%s", exc)  # noqa: TRY400  (one line is the whole story)
            ctx.exit(1)
        return super().cb_config(ctx, param, value)

    @functools.cached_property
    def settings(self) -> TapSettings:
        """The config, checked and typed."""
        return TapSettings.from_config(
            self.config,
            {cls.prefix_setting: cls.prefix_default for cls in STREAM_TYPES},
        )

    @functools.cached_property
    def storage(self) -> Storage:
        """One storage client shared by every stream (one connection pool)."""
        return open_storage(
            self.settings.bucket_url, self.settings.aws, self.settings.gcs, self.settings.azure
        )

    @override
    def discover_streams(self) -> list[MParticleFileStream]:
        streams = [stream_class(self) for stream_class in STREAM_TYPES]
        audience = {s.name: s for s in streams if isinstance(s, AudienceFileStream)}
        for stream in audience.values():
            stream.sibling = audience.get(stream.sibling_name)
        return streams

    @classmethod
    def checked_catalog(cls, catalog: IO[str]) -> IO[str]:
        """The --catalog file, checked: a malformed one is one line naming it, and exit 1."""
        where = f"catalog file {getattr(catalog, 'name', '')}".rstrip()
        try:
            value = parse_catalog(read_text(catalog, where), where)
        except ConfigFileError as exc:
            cls.logger.error("%s", exc)  # noqa: TRY400  (one line is the whole story)
            sys.exit(1)
        return io.StringIO(json.dumps(value))

    @classmethod
    @override
    def invoke(cls, *args: Any, **kwargs: Any) -> None:
        state = kwargs.get("state")
        where = "state"
        if state is not None:
            # A corrupt --state is one line, not a JSON decoder traceback.
            where = f"state file {getattr(state, 'name', '')}".rstrip()
            try:
                text = read_text(state, where)
                value = singer_state(parse_json_object(text, where), where)
            except (ConfigFileError, StateShapeError) as exc:
                cls.logger.error("%s", exc)  # noqa: TRY400
                sys.exit(1)
            if value is not None:
                cls.logger.info("%s holds Meltano's wrapped state: read its singer_state", where)
                text = json.dumps(value)
            kwargs["state"] = io.StringIO(text or "{}")
        if kwargs.get("catalog") is not None:
            kwargs["catalog"] = cls.checked_catalog(kwargs["catalog"])
        try:
            super().invoke(*args, **kwargs)
        except ConfigValidationError as exc:
            # One line per mistake, each naming its setting; no summary line after them.
            for error in exc.errors or [str(exc)]:
                cls.logger.error("%s", error)  # noqa: TRY400
            raise SystemExit(1) from None
        except StateShapeError as exc:
            cls.logger.error("%s: %s", where, exc)  # noqa: TRY400  (one line says it all)
            raise SystemExit(1) from None
        except (BadInputError, StorageError, ShardStateError) as exc:
            # One line naming the file and line, or the bucket and endpoint; a
            # traceback would only repeat it. The exit code tells the orchestrator.
            cls.logger.error("%s", exc)  # noqa: TRY400
            raise SystemExit(1) from None
        except BrokenPipeError:
            exit_stdout_closed(
                cls.logger,
                "The next run resumes from the last STATE the target passed on.",
            )
