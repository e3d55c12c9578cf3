"""What the target was told but could not use, said out loud instead of ignored.

A mapping keyed `order` for stream `orders` silently turns the stream into default
custom events; a mapped field the records never carry silently sends nothing. So:

- a mapped field the stream's SCHEMA does not declare is a warning when the SCHEMA
  arrives (only for schemas that declare properties: a free-form schema may still
  carry it);
- mapped fields missing from records are counted per stream and field and reported
  at the end of the run;
- a mapping (or a `stream_maps` entry) for a stream that never arrived is reported
  at the end of the run.
"""

from __future__ import annotations

import collections
import difflib
import fnmatch
import logging
import re
import typing as t

if t.TYPE_CHECKING:
    from target_mparticle.mapping import StreamMapping

LOGGER = logging.getLogger("target-mparticle")


class IgnoredSettings:
    """Counts what the mappings name that the input does not have."""

    def __init__(self, mappings: t.Mapping[str, StreamMapping]) -> None:
        """Start with every explicitly mapped stream unseen.

        Args:
            mappings: The parsed `mappings` setting, "*" included.
        """
        self._mapped_streams = [name for name in mappings if name != "*"]
        self._stream_maps: list[str] = []
        self._inputs: set[str] = set()  # streams as the tap named them, before any map
        self._seen: set[str] = set()
        self._fields: dict[str, list[str]] = {}
        self._records: collections.Counter[str] = collections.Counter()
        self._missing: collections.Counter[tuple[str, str]] = collections.Counter()

    def expect_stream_maps(self, stream_maps: object) -> None:
        """Note the input streams `stream_maps` names, to report those that never arrive.

        The SDK applies a map to the streams its key names (exactly, or as a pattern:
        `ord*`) and ignores a key that names none in silence, as it does a typo. A key
        whose map names its `__source__` is a new stream, and `__else__` covers any
        stream: neither names an input.
        """
        if not isinstance(stream_maps, dict):
            return
        self._stream_maps = [
            name
            for name, entry in stream_maps.items()
            if name != "__else__" and not (isinstance(entry, dict) and "__source__" in entry)
        ]

    def input_stream(self, stream: object) -> None:
        """Note a SCHEMA's stream as the tap named it (a stream map may rename it)."""
        if isinstance(stream, str):
            self._inputs.add(stream)

    def schema_arrived(
        self, stream: str, schema: t.Mapping[str, t.Any], mapping: StreamMapping
    ) -> None:
        """Note the stream, and warn about mapped fields its schema does not declare.

        Args:
            stream: The stream name.
            schema: Its JSON Schema.
            mapping: The mapping that applies to it (its own, "*", or the defaults).
        """
        if stream not in self._seen and stream not in self._mapped_streams:
            self._warn_if_meant(stream)
        self._seen.add(stream)
        fields = mapping.fields()
        self._fields[stream] = fields
        declared = schema.get("properties") or {}
        if not declared:
            return
        self._warn_flattened_deletes(stream, declared, mapping)
        absent = [name for name in fields if name not in declared]
        if absent:
            LOGGER.warning(
                "Stream %r: mapped field%s %s %s not in the stream's schema; "
                "records are unlikely to carry %s",
                stream,
                "s" if len(absent) > 1 else "",
                ", ".join(repr(name) for name in absent),
                "are" if len(absent) > 1 else "is",
                "them" if len(absent) > 1 else "it",
            )

    @staticmethod
    def _warn_flattened_deletes(
        stream: str, declared: t.Mapping[str, t.Any], mapping: StreamMapping
    ) -> None:
        """Warn that a JSON column's attributes outlive it under `null_user_attributes: delete`.

        An object is sent flattened (`prefs.lang`, `prefs.theme`); when the column turns
        null, only the attribute named after it can be deleted: which keys it held
        before is not in the row.
        """
        if mapping.kind != "user" or mapping.null_user_attributes != "delete":
            return
        columns = (
            list(mapping.user_attributes.values())
            if mapping.user_attributes is not None
            else list(declared)
        )
        objects = [c for c in columns if _may_be_object(declared.get(c))]
        if objects:
            LOGGER.warning(
                "Stream %r: %s may hold objects, sent as flattened attributes (%s.<key>); "
                "null_user_attributes: delete removes only the attribute named after the "
                "column when it turns null, not its flattened keys",
                stream,
                ", ".join(repr(c[:80]) for c in objects),
                objects[0][:80],
            )

    def _warn_if_meant(self, stream: str) -> None:
        """Warn now when a mapping that names no stream looks meant for this unmapped one.

        Taps name streams their own way (tap-postgres: `public-users`): a mapping keyed
        `users` would otherwise only be reported at the end, after the stream's records
        went out as default events.
        """
        unused = [name for name in self._mapped_streams if name not in self._seen]
        tail = re.split(r"[-_.]", stream)[-1]
        meant = [name for name in unused if name == tail] or difflib.get_close_matches(
            stream, unused, n=1, cutoff=0.8
        )
        if meant:
            LOGGER.warning(
                "Stream %r has no mapping of its own; mappings[%r] names no stream so far "
                "and may be meant for it (streams are keyed by their exact name)",
                stream,
                meant[0],
            )

    def record_seen(self, stream: str, record: t.Mapping[str, t.Any]) -> None:
        """Count the mapped fields one record lacks.

        Args:
            stream: The stream name.
            record: The record as received.
        """
        fields = self._fields.get(stream)
        if not fields:
            return
        self._records[stream] += 1
        for name in fields:
            if name not in record:
                self._missing[stream, name] += 1

    def report(self) -> None:
        """Log, at the end of the run, what was mapped but never used."""
        for (stream, name), count in sorted(self._missing.items()):
            total = self._records[stream]
            LOGGER.warning(
                "Stream %r: mapped field %r was absent from %d of %d record%s",
                stream,
                name,
                count,
                total,
                "" if total == 1 else "s",
            )
        for setting, streams, seen in (
            ("mappings", self._mapped_streams, self._seen),
            ("stream_maps", self._stream_maps, self._inputs),
        ):
            for stream in streams:
                if stream not in seen and not (
                    setting == "stream_maps" and fnmatch.filter(seen, stream)
                ):
                    LOGGER.warning(
                        "%s[%r] was not used: no stream named %r arrived (streams seen: %s)",
                        setting,
                        stream,
                        stream,
                        ", ".join(repr(name) for name in sorted(seen)) or "none",
                    )


def _may_be_object(schema: object) -> bool:
    """Whether a property's JSON Schema lets it hold an object (`type` or `anyOf`)."""
    if not isinstance(schema, dict):
        return False
    kinds = schema.get("type")
    if kinds == "object" or (isinstance(kinds, list) and "object" in kinds):
        return True
    return any(_may_be_object(option) for option in schema.get("anyOf") or ())
