"""Schema fragments shared by the streams."""

from __future__ import annotations

from singer_sdk import typing as th

#: Provenance columns every stream carries, so a row can be traced to its file and line.
PROVENANCE = (
    th.Property(
        "_sdc_source_file",
        th.StringType(nullable=False),
        required=True,
        description="URI of the file the record came from (s3://bucket/key or a local path).",
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
        A property typed as an object with any properties, never null (`{}` when absent).
    """
    return th.Property(
        name,
        th.ObjectType(additional_properties=True, nullable=False),
        required=True,
        description=description,
    )
