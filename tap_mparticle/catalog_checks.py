"""Checks on the `--catalog` a run is given: its shape, and what it selects.

The SDK hands the catalog file's JSON straight to its parser: a file holding `{`
failed with a decoder error naming no file, `[]` with "Could not open file.
Filepath not provided.", and `{"streams": "x"}` with "string indices must be
integers", each under a traceback. Here each is one line naming the file and
what is wrong, and exit 1.

A catalog that selects nothing reads nothing and exits 0. Under Meltano an empty
selection can be intended (every stream deselected for a while), so it is a
WARNING rather than a failure; but by hand it is nearly always a mistake (a typo
in a stream name, a catalog from another tap), so the warning says which names
are not this tap's streams.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from singer_sdk.singerlib.catalog import Catalog

from tap_mparticle.preflight import ConfigFileError, parse_json_object

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from singer_sdk.streams.core import Stream


def parse_catalog(text: str, where: str) -> dict[str, Any]:
    """Parse a catalog file's text; every shape the SDK would trip on is one line.

    Args:
        text: The file's text.
        where: "catalog file <path>", for the message.

    Returns:
        The catalog as a dict.

    Raises:
        ConfigFileError: Not JSON, or not shaped like a Singer catalog.
    """
    if not text.strip():
        msg = f'{where}: is empty (a Singer catalog is {{"streams": [...]}})'
        raise ConfigFileError(msg)
    value = parse_json_object(text, where)
    streams = value.get("streams")
    if not isinstance(streams, list):
        found = "none" if streams is None else f"a JSON {type(streams).__name__}"
        msg = f'{where}: "streams" must be a list of stream entries, not {found}'
        raise ConfigFileError(msg)
    for index, entry in enumerate(streams):
        problem = _entry_problem(entry)
        if problem:
            msg = f"{where}: streams[{index}] {problem}"
            raise ConfigFileError(msg)
    try:
        Catalog.from_dict(value)
    except (TypeError, ValueError, KeyError, AttributeError) as exc:
        msg = f"{where}: not a Singer catalog ({type(exc).__name__}: {exc})"
        raise ConfigFileError(msg) from None
    return value


def _entry_problem(entry: object) -> str | None:
    """What is wrong with one entry of "streams", or None."""
    if not isinstance(entry, dict):
        return f"must be an object, not a JSON {type(entry).__name__}"
    if not isinstance(entry.get("tap_stream_id"), str):
        return 'has no "tap_stream_id" string'
    if not isinstance(entry.get("schema", {}), dict):
        return '"schema" must be an object'
    metadata = entry.get("metadata", [])
    if not isinstance(metadata, list):
        return '"metadata" must be a list'
    for item in metadata:
        if (
            not isinstance(item, dict)
            or not isinstance(item.get("breadcrumb", []), list)
            or not isinstance(item.get("metadata", {}), dict)
        ):
            return (
                '"metadata" entries must be objects with a "breadcrumb" list and a '
                '"metadata" object'
            )
    return None


def selection_warnings(
    catalog_ids: Iterable[str] | None, streams: Mapping[str, Stream]
) -> list[str]:
    """Warnings for a run that would read nothing, or names streams this tap lacks.

    Args:
        catalog_ids: The input catalog's stream ids; None when no catalog was given.
        streams: The tap's streams, with their selection applied.

    Returns:
        One message per problem.
    """
    known = ", ".join(sorted(streams))
    warnings = [
        f"catalog stream {name!r} is not a stream of this tap (streams: {known})"
        for name in catalog_ids or ()
        if name not in streams
    ]
    if not any(s.selected or s.has_selected_descendents for s in streams.values()):
        where = "the catalog selects" if catalog_ids is not None else "stream_maps leave"
        warnings.append(
            f"{where} no stream: nothing is read and no bookmark moves (streams: {known})"
        )
    return warnings
