"""The event streams: `events` (one record per event) and `batches` (one per batch).

Both read the files of mParticle's event outputs under `events_prefix`: newline-
delimited batches (the Amazon S3, Google Cloud Storage and Azure outputs), or
batches back to back with no separator (`}{`), which is how a Kinesis Firehose
delivery stream lands mParticle's Firehose event output in S3, under
`YYYY/MM/DD/HH/` prefixes. `_sdc_batch_index` numbers the batches within a line
(always 0 in newline-delimited files).
"""

from __future__ import annotations

from typing import IO, TYPE_CHECKING, ClassVar

from singer_sdk import typing as th
from typing_extensions import override

from tap_mparticle.client import MParticleFileStream, ParsedItem
from tap_mparticle.events import (
    INTEGER_FIELDS,
    OBJECT_FIELDS,
    STRING_FIELDS,
    NotABatchError,
    batch_record,
    explode_batch,
)
from tap_mparticle.jsondocs import iter_json_documents
from tap_mparticle.parsers import BadInputError, open_decompressed
from tap_mparticle.schema_objects import PROVENANCE, free_object

if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Any

    from tap_mparticle.storage import RemoteFile

VERIFICATION_FILE_PREFIX = "mParticle_Bucket_Verification_"

_BATCH_INDEX = th.Property(
    "_sdc_batch_index",
    th.IntegerType(nullable=False),
    required=True,
    description=(
        "0-based position of the batch within its line: 0 in newline-delimited files, "
        "0, 1, 2, ... where batches are written back to back (Kinesis Firehose)."
    ),
)


def iter_batches(raw: IO[bytes], location: str) -> Iterator[tuple[int, int, Any] | BadInputError]:
    """Yield `(line, index within the line, document)` for every JSON document of a file.

    Args:
        raw: The file's raw (possibly gzipped) bytes.
        location: The file's URI, for messages.

    Yields:
        Numbered documents, or a `BadInputError` per unreadable line or document.
    """
    lineno, index = 0, 0
    for item in iter_json_documents(open_decompressed(raw), location):
        if isinstance(item, BadInputError):
            yield item
            continue
        line, document = item
        index = index + 1 if line == lineno else 0
        lineno = line
        yield line, index, document


class _EventFileStream(MParticleFileStream):
    """What both event streams share: the prefix and the files they skip."""

    prefix_setting = "events_prefix"
    prefix_default = ""

    @override
    def accepts(self, file: RemoteFile) -> bool:
        # mParticle writes `{}` into this file when the connection is saved.
        return not file.key.rsplit("/", 1)[-1].startswith(VERIFICATION_FILE_PREFIX)


class EventsStream(_EventFileStream):
    """One record per event in the batches of mParticle's event outputs."""

    name = "events"
    # A line is one batch (or, back to back, several) and an event's position in the
    # line identifies it; both are stable across re-reads of the same file.
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
            description=(
                "0-based position of the event in its line (part of the primary key); "
                "counts on across back-to-back batches."
            ),
        ),
        _BATCH_INDEX,
        *PROVENANCE,
    ).to_dict()

    @override
    def parse_file(self, file: RemoteFile, stream: IO[bytes]) -> Iterator[ParsedItem]:
        location = file.uri
        first_event = 0
        for item in iter_batches(stream, location):
            if isinstance(item, BadInputError):
                yield item
                continue
            lineno, batch_index, batch = item
            if batch_index == 0:
                first_event = 0
            try:
                records = list(explode_batch(batch))
            except NotABatchError as exc:
                yield BadInputError(location, str(exc), lineno)
                continue
            for record in records:
                if isinstance(record, NotABatchError):
                    yield BadInputError(location, str(record), lineno)
                    continue
                record["_sdc_event_index"] += first_event
                record["_sdc_batch_index"] = batch_index
                record["_sdc_source_lineno"] = lineno
                yield record
            first_event += len(records)


def _typed(name: str, kind: str) -> th.Property[Any]:
    descriptions = {
        "mpid": "mParticle user id (may be negative).",
        "batch_id": "mParticle's id of the batch.",
        "timestamp_unixtime_ms": "When mParticle received the batch, in epoch milliseconds.",
        "environment": "production or development.",
        "source_request_id": "The id the sender gave the batch (mParticle de-duplicates on it).",
        "user_attributes": "The user's attributes as of the batch.",
        "device_info": "Device information and device identities.",
        "application_info": "Application information.",
        "consent_state": "GDPR and CCPA consent state (when the output includes it).",
        "context": "Batch context, such as the data plan.",
    }
    description = descriptions.get(name, f"The batch's {name}, as mParticle wrote it.")
    if kind == "integer":
        return th.Property(name, th.IntegerType(), description=description)
    if kind == "string":
        return th.Property(name, th.StringType(), description=description)
    # Free-form, with no "properties" key, for the reason `schema_objects.free_object`
    # gives: flattening then keeps the object whole as one JSON column.
    return th.Property(
        name,
        th.CustomType({"type": ["object", "null"], "additionalProperties": True}),
        description=description,
    )


class BatchesStream(_EventFileStream):
    """One record per batch, every field it carries, batches without events included.

    Not selected by default: it is for replays and for the batch-level data the
    `events` stream leaves out (consent state, data plan, deleted attributes,
    identity timestamps, user updates sent as batches without events).
    """

    name = "batches"
    selected_by_default = False
    primary_keys: ClassVar[list[str]] = [
        "_sdc_source_file",
        "_sdc_source_lineno",
        "_sdc_batch_index",
    ]

    schema = th.PropertiesList(
        *(_typed(name, "integer") for name in INTEGER_FIELDS),
        *(_typed(name, "string") for name in STRING_FIELDS),
        *(_typed(name, "object") for name in OBJECT_FIELDS),
        th.Property(
            "user_identities",
            th.ArrayType(th.ObjectType(additional_properties=True)),
            description=(
                "mParticle's identity array, [{identity_type, identity, "
                "timestamp_unixtime_ms, ...}], each identity's own timestamp kept."
            ),
        ),
        th.Property(
            "deleted_user_attributes",
            th.ArrayType(th.StringType()),
            description="Names of user attributes the batch deletes.",
        ),
        th.Property(
            "api_keys",
            th.ArrayType(th.StringType()),
            description="The batch's api_keys, as mParticle wrote them.",
        ),
        th.Property(
            "events",
            th.ArrayType(th.ObjectType(additional_properties=True)),
            description=(
                "The batch's events exactly as written (deselect it to keep batch-level data only)."
            ),
        ),
        free_object(
            "other_fields", "Top-level fields this schema does not name, exactly as written."
        ),
        _BATCH_INDEX,
        *PROVENANCE,
    ).to_dict()

    @override
    def parse_file(self, file: RemoteFile, stream: IO[bytes]) -> Iterator[ParsedItem]:
        location = file.uri
        for item in iter_batches(stream, location):
            if isinstance(item, BadInputError):
                yield item
                continue
            lineno, batch_index, batch = item
            try:
                record = batch_record(batch)
            except NotABatchError as exc:
                yield BadInputError(location, str(exc), lineno)
                continue
            record["_sdc_batch_index"] = batch_index
            record["_sdc_source_lineno"] = lineno
            yield record
