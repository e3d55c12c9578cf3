"""The streams tap-mparticle emits."""

from __future__ import annotations

from typing import IO, TYPE_CHECKING, ClassVar

from singer_sdk import typing as th
from typing_extensions import override

from tap_mparticle.client import MParticleFileStream, ParsedItem
from tap_mparticle.events import NotABatchError, explode_batch
from tap_mparticle.parsers import BadInputError, decode_json, iter_lines, open_decompressed
from tap_mparticle.schema_objects import PROVENANCE, free_object

if TYPE_CHECKING:
    from collections.abc import Iterator

    from tap_mparticle.storage import RemoteFile

VERIFICATION_FILE_PREFIX = "mParticle_Bucket_Verification_"


class EventsStream(MParticleFileStream):
    """One record per event in the batches of mParticle's "Amazon S3" event output."""

    name = "events"
    prefix_setting = "events_prefix"
    prefix_default = ""
    # A line is one batch and its position in the batch identifies an event; both
    # are stable across re-reads of the same file, unlike anything inside the data.
    primary_keys: ClassVar[list[str]] = [
        "_sdc_source_file",
        "_sdc_source_lineno",
        "_sdc_event_index",
    ]

    schema = th.PropertiesList(
        th.Property(
            "event_type",
            th.StringType(nullable=False),
            required=True,
            description="mParticle event type, e.g. custom_event, screen_view, commerce_event.",
        ),
        th.Property(
            "event_name",
            th.StringType(),
            description="Custom and commerce events' name, a screen view's screen name, else null.",
        ),
        th.Property(
            "timestamp",
            th.DateTimeType(),
            description="When the event happened (RFC 3339, UTC), from timestamp_unixtime_ms.",
        ),
        th.Property(
            "timestamp_unixtime_ms",
            th.IntegerType(),
            description="When the event happened, in milliseconds since the Unix epoch.",
        ),
        th.Property("source_message_id", th.StringType(), description="The event's unique id."),
        th.Property("session_uuid", th.StringType(), description="The session the event is in."),
        th.Property("mpid", th.IntegerType(), description="mParticle user id (may be negative)."),
        th.Property("batch_id", th.IntegerType(), description="mParticle's id of the batch."),
        th.Property("environment", th.StringType(), description="production or development."),
        free_object("user_identities", "The batch's user identities: identity type -> value."),
        free_object("user_attributes", "The batch's user attributes."),
        free_object("device_info", "The batch's device information and device identities."),
        free_object("application_info", "The batch's application information."),
        free_object("custom_attributes", "The event's custom attributes."),
        free_object("data", "The event's whole data object, exactly as mParticle wrote it."),
        th.Property(
            "_sdc_event_index",
            th.IntegerType(nullable=False),
            required=True,
            description="0-based position of the event in its batch (part of the primary key).",
        ),
        *PROVENANCE,
    ).to_dict()

    @override
    def accepts(self, file: RemoteFile) -> bool:
        # mParticle writes `{}` into this file when the connection is saved.
        return not file.key.rsplit("/", 1)[-1].startswith(VERIFICATION_FILE_PREFIX)

    @override
    def parse_file(self, file: RemoteFile, stream: IO[bytes]) -> Iterator[ParsedItem]:
        location = file.uri
        for lineno, line in iter_lines(open_decompressed(stream), location):
            try:
                batch = decode_json(line, location, lineno)
            except BadInputError as exc:
                yield exc
                continue
            try:
                for record in explode_batch(batch):
                    if isinstance(record, NotABatchError):
                        yield BadInputError(location, str(record), lineno)
                        continue
                    record["_sdc_source_lineno"] = lineno
                    yield record
            except NotABatchError as exc:
                yield BadInputError(location, str(exc), lineno)
