"""Schema fragments shared by the streams."""

from __future__ import annotations

from singer_sdk import typing as th

#: Provenance columns every stream carries, so a row can be traced to its file and line.
#: `_sdc_source_file` is part of every primary key, so it names the file relative to
#: the stream's folder (`bucket_url` + `events_prefix` or `audiences_prefix`): the same
#: drop read from the bucket or from a local mirror of it gives the same keys, and a
#: target upserts instead of doubling every row. Where the file was read from is kept
#: in `_sdc_source_uri`, which is no key.
PROVENANCE = (
    th.Property(
        "_sdc_source_file",
        th.StringType(nullable=False),
        required=True,
        description=(
            "Key of the file the record came from, relative to bucket_url and the "
            "stream's prefix, e.g. 2024-05-01/App_20240501060000000000_29467.txt "
            "(part of the primary key; the same for the bucket and a local mirror)."
        ),
    ),
    th.Property(
        "_sdc_source_uri",
        th.StringType(nullable=False),
        required=True,
        description=(
            "Where the file was read from: s3://bucket/key or an absolute local path "
            "(provenance only, not a key)."
        ),
    ),
    th.Property(
        "_sdc_source_lineno",
        th.IntegerType(nullable=False),
        required=True,
        description="1-based line of the file the record came from.",
    ),
    th.Property(
        "_sdc_modified_at",
        th.DateTimeType(nullable=False),
        required=True,
        description="LastModified of the file (the replication key).",
    ),
)


def free_object(name: str, description: str) -> th.Property[dict[str, object]]:
    """An object column whose keys mParticle or the customer decide.

    Args:
        name: Column name.
        description: What it holds.

    Returns:
        A property typed as an object with any keys, never null (`{}` when absent).
    """
    # No "properties" key at all (th.ObjectType would write `"properties": {}`): the
    # SDK's schema flattener turns an object *with* properties into its (here: no)
    # sub-columns, while its record flattener spreads the keys each record happens to
    # have, so with `flattening_enabled` the announced schema and the records would
    # disagree. Without "properties", both sides keep the object whole as one JSON
    # string column, which every target can load.
    return th.Property(
        name,
        th.CustomType({"type": ["object"], "additionalProperties": True}),
        required=True,
        description=description,
    )
