"""mParticle's published inbound schema, compiled, and the fitting of events and batches to it.

The target promises that every body it sends is one mParticle accepts. Hand-written
rules cover the common cases (see `schema_rules`), but only the schema itself covers
every case, so each event and each batch shell is checked against mParticle's
published JSON Schema (vendored in `schema/`, compiled once with `fastjsonschema`)
before it is sent, and fitted when it fails:

- An optional part of an event that cannot be valid (an empty `location`, an empty
  `product_action`, `product_impressions: [{}]`, breadcrumbs that are not objects)
  is dropped, never the event, and counted.
- An event still invalid after that (a required field missing or wrong) is refused
  alone, with the schema's reason; its batch's other events are still sent.
- A batch-level field that cannot be valid is dropped and counted.

Each event type has its own compiled validator, so a failure names the field at
fault (`data.location`), not "matches none of 17 event types".
"""

from __future__ import annotations

import copy
import functools
import json
import typing as t
from importlib import resources

import fastjsonschema

from target_mparticle.fastcheck import Check, Compiler, Node

SCHEMA_FILE = "mparticle.inbound.eventsapi.schema.json"
#: Fitting stops after this many dropped parts; a pathological event is refused instead.
MAX_FIXES = 32


class InvalidRecordError(ValueError):
    """A record (or one of its events) that cannot become data mParticle would accept."""


@functools.cache
def schema() -> dict[str, t.Any]:
    """The published batch schema, parsed once."""
    text = (resources.files("target_mparticle") / "schema" / SCHEMA_FILE).read_text("utf-8")
    loaded: dict[str, t.Any] = json.loads(text)
    return loaded


@functools.cache
def event_definitions() -> dict[str, str]:
    """Event type -> the name of its definition (`custom_event` -> `CustomEvent`)."""
    found: dict[str, str] = {}
    for name, definition in schema()["definitions"].items():
        enum = definition.get("properties", {}).get("event_type", {}).get("enum")
        if isinstance(enum, list) and len(enum) == 1:
            found[str(enum[0])] = name
    return found


def _data_parts(event_type: str) -> list[dict[str, t.Any]]:
    definition = schema()["definitions"][event_definitions()[event_type]]
    data = definition.get("properties", {}).get("data", {})
    return [part for part in data.get("allOf", [data]) if isinstance(part, dict)]


@functools.cache
def required_data_fields(event_type: str) -> frozenset[str]:
    """The `data` fields the schema requires for an event type."""
    return frozenset(f for part in _data_parts(event_type) for f in part.get("required", ()))


@functools.cache
def data_enum(event_type: str, field: str) -> frozenset[str] | None:
    """The values the schema allows for a string field of an event type's data, if it lists them."""
    for part in _data_parts(event_type):
        enum = part.get("properties", {}).get(field, {}).get("enum")
        if isinstance(enum, list):
            return frozenset(str(v) for v in enum)
    return None


@functools.cache
def _event_check(event_type: str) -> t.Callable[[t.Any], t.Any]:
    # Each compile gets its own copy: fastjsonschema rewrites the references of the
    # schema it compiles, and code compiled from a shared, already rewritten copy ran
    # twice as slow (9 µs an event instead of 4.7).
    definitions = copy.deepcopy(schema()["definitions"])
    ref = {
        "$schema": schema()["$schema"],
        "definitions": definitions,
        "$ref": f"#/definitions/{event_definitions()[event_type]}",
    }
    return fastjsonschema.compile(ref, use_default=False)


@functools.cache
def _shell_check() -> t.Callable[[t.Any], t.Any]:
    # No `$id`: the validator must resolve every reference inside this document,
    # never try to fetch the published URL.
    shell = {k: copy.deepcopy(v) for k, v in schema().items() if k != "$id"}
    shell["properties"] = {k: v for k, v in shell["properties"].items() if k != "events"}
    return fastjsonschema.compile(shell, use_default=False)


@functools.cache
def _event_quick(event_type: str) -> Check:
    """The quick check (see `fastcheck`) of one event type's definition."""
    return Compiler(schema()).check({"$ref": f"#/definitions/{event_definitions()[event_type]}"})


@functools.cache
def _shell_quick(built_attributes: bool = False) -> Check:  # noqa: FBT001, FBT002 - cached by position
    """The quick check of a batch without its events.

    With `built_attributes` the check takes `user_attributes` as it is: the schema
    takes any string, number, boolean or null, or a list of them, for an attribute,
    and `values.user_attributes`, which made it, gives only strings and lists of
    strings. Checking them one by one was a tenth of a mapped user record.
    """
    shell = dict(schema())
    properties = {k: v for k, v in shell["properties"].items() if k != "events"}
    if built_attributes:
        properties["user_attributes"] = {}
    shell["properties"] = properties
    return Compiler(schema()).check(shell)


#: What an event definition may say besides its two fields, for `data_field_node`.
_PLAIN_EVENT_KEYWORDS = frozenset({"type", "properties", "required", "additionalProperties"})
_OBJECT_PART_KEYWORDS = frozenset({"properties", "required", "additionalProperties"})


@functools.cache
def _plain_data_parts(event_type: str) -> list[dict[str, t.Any]] | None:
    """The object parts of an event type's `data`, when the definition is that plain.

    Plain: the event is an object of exactly `event_type` (its one name) and `data`,
    and `data` is the `allOf` of parts that only name properties, required fields and
    additional properties. Then `{"event_type": T, "data": d}` is valid exactly when
    every field of `d` passes its `data_field_node` and the required ones are there.
    None for anything worded otherwise.
    """
    definition = schema()["definitions"][event_definitions()[event_type]]
    properties = definition.get("properties", {})
    if (
        not _PLAIN_EVENT_KEYWORDS.issuperset(definition)
        or definition.get("type", "object") != "object"
        or set(properties) != {"event_type", "data"}
        or properties["event_type"] != {"type": "string", "enum": [event_type]}
        or not {"event_type", "data"}.issuperset(definition.get("required", ()))
        or not set(properties["data"]) <= {"allOf"}
    ):
        return None
    parts = []
    for part in _data_parts(event_type):
        ref = part.get("$ref")
        resolved = schema()["definitions"].get(ref.removeprefix("#/definitions/")) if ref else part
        if not isinstance(resolved, dict) or not _OBJECT_PART_KEYWORDS.issuperset(resolved):
            return None
        parts.append(resolved)
    return parts


@functools.lru_cache(maxsize=4096)  # field names come from the input: bounded
def data_field_node(event_type: str, name: str) -> Node | None:
    """The quick check of one `data` field of an event type (None: not plain, see above)."""
    parts = _plain_data_parts(event_type)
    if parts is None:
        return None
    return _compiler().field(parts, name)


@functools.cache
def _compiler() -> Compiler:
    return Compiler(schema())


def _failure(check: t.Callable[[t.Any], t.Any], value: t.Any) -> tuple[list[str], str] | None:  # noqa: ANN401
    """Where and why `value` fails (path without the root), or None when it is valid."""
    try:
        check(value)
    except fastjsonschema.JsonSchemaValueException as exc:
        return [str(part) for part in exc.path[1:]], exc.message.replace("data.", "", 1)
    return None


def fit_event(event: dict[str, t.Any], tally: t.Counter[str]) -> dict[str, t.Any]:
    """Return the event once it validates, dropping optional parts that cannot.

    Args:
        event: `{"event_type", "data"}`, already coerced field by field (mutated).
        tally: Counts what was dropped, for the run summary.

    Returns:
        The event, valid against its type's definition.

    Raises:
        InvalidRecordError: The event type is unknown, or a required part is missing
            or cannot be valid.
    """
    event_type = event.get("event_type")
    if not isinstance(event_type, str) or event_type not in event_definitions():
        msg = f"event_type {event_type!r} is not one the Events API accepts"
        raise InvalidRecordError(msg)
    if _event_quick(event_type)(event):
        return event  # certainly valid: the full check would find nothing to drop
    check = _event_check(event_type)
    required = required_data_fields(event_type)
    data = event["data"]
    scalar_maps = scalar_map_fields(event_type)
    for _ in range(MAX_FIXES):
        failure = _failure(check, _to_check(event, data, scalar_maps))
        if failure is None:
            return event
        path, reason = failure
        if len(path) < 2 or path[0] != "data" or path[1] in required:  # noqa: PLR2004
            msg = f"{event_type} event is not valid for the Events API: {reason}"
            raise InvalidRecordError(msg)
        del data[path[1]]
        tally[f"optional event fields that could not be valid dropped ({path[1]})"] += 1
    msg = f"{event_type} event has more than {MAX_FIXES} fields that cannot be valid"
    raise InvalidRecordError(msg)


#: The schema's `String`, which any JSON scalar is: a map of them is valid by construction.
_STRING_DEFINITION = {"type": ["string", "null", "boolean", "integer", "number"]}
_SCALAR_MAP = {"type": ["object", "null"], "additionalProperties": {"$ref": "#/definitions/String"}}
_SCALARS = (str, bool, int, float, type(None))
#: Keywords of a data part under which leaving an optional property out changes nothing.
_NEUTRAL_KEYWORDS = frozenset({"type", "properties", "required"})


@functools.cache
def scalar_map_fields(event_type: str) -> frozenset[str]:
    """Optional `data` fields that the schema only asks to be a map of scalars.

    The compiled check spends most of an event's time formatting a path for each
    attribute of such a map; a map whose values are all scalars is valid by
    construction, so `fit_event` leaves it out of the check. Found from the schema,
    and none at all if the schema words anything differently.
    """
    definitions = schema()["definitions"]
    if definitions.get("String") != _STRING_DEFINITION:
        return frozenset()
    parts = []
    for part in _data_parts(event_type):
        ref = part.get("$ref", "")
        resolved = definitions.get(ref.removeprefix("#/definitions/")) if ref else part
        if not isinstance(resolved, dict) or not _NEUTRAL_KEYWORDS.issuperset(resolved):
            return frozenset()
        parts.append(resolved)
    found = set()
    for field in ("custom_attributes", "custom_flags"):
        specs = [p["properties"][field] for p in parts if field in p.get("properties", {})]
        if specs and all(spec == _SCALAR_MAP for spec in specs):
            found.add(field)
    return frozenset(found - required_data_fields(event_type))


def _to_check(
    event: dict[str, t.Any], data: dict[str, t.Any], scalar_maps: frozenset[str]
) -> dict[str, t.Any]:
    """The event as the compiled check sees it: maps of scalars left out (see above)."""
    kept = data
    for field in scalar_maps:
        value = data.get(field)
        if type(value) is not dict:
            continue
        for item in value.values():
            if not isinstance(item, _SCALARS):
                break
        else:
            if kept is data:
                kept = dict(data)
            del kept[field]
    return event if kept is data else {**event, "data": kept}


def _plain_attributes(attributes: dict[str, t.Any]) -> bool:
    """Whether every value is a string or a list of strings (the schema's StringOrArray)."""
    for value in attributes.values():
        if type(value) is str:
            continue
        if type(value) is list and all(type(item) is str for item in value):
            continue
        return False
    return True


#: The batch fields that say whose batch it is.
_IDENTITY_FIELDS = frozenset({"user_identities", "mpid", "device_info"})
#: Shapes a `CertainShapes` keeps before it starts again (a stream of ever new shapes).
MAX_SHAPES = 1024
#: Batch fields holding objects whose entries `certain_by_types` looks at one by one.
_MAPS = ("user_identities", "device_info", "application_info")
#: What a plain object schema may say for `_field_node` to read its entries alone.
_PLAIN_OBJECT = frozenset({"type", "properties", "additionalProperties", "description"})


@functools.lru_cache(maxsize=MAX_SHAPES)
def _field_node(field: str, entry: str | None) -> Node | None:
    """The quick check of a batch field, or (`entry`) of one entry of a `_MAPS` field.

    None when the field's schema is more than a plain object, so its entries' nodes
    alone do not decide.
    """
    shell = schema()
    if entry is None:
        return _compiler().field([shell], field)
    part = _compiler().resolve(shell["properties"].get(field))
    if not isinstance(part, dict) or not set(part) <= _PLAIN_OBJECT:
        return None
    return _compiler().field([part], entry)


def certain_by_types(
    batch: t.Mapping[str, t.Any], validated: t.Mapping[str, t.Collection[str]] | None = None
) -> bool:
    """Whether every batch with these field names and value types is valid, as this one is.

    True when each value (each entry, in `user_identities`, `device_info` and
    `application_info`) is one its field takes for its type alone, with no further
    check (`fastcheck`'s free types). `environment` is left to the caller, which
    must key on its value, and `user_attributes` must be as `values.user_attributes`
    built them (see `_shell_quick`). `validated` names, per field, the entries whose
    builder only ever keeps a text value the schema takes (an enum member, a UUID it
    matched): for those a string is enough.
    """
    for field, value in batch.items():
        if field in {"environment", "user_attributes"}:
            continue
        if field in _MAPS and type(value) is dict:
            trusted = validated.get(field, ()) if validated else ()
            for entry, item in value.items():
                if entry in trusted and type(item) is str:
                    continue
                node = _field_node(field, entry)
                if node is None or type(item) not in node[1]:
                    return False
            continue
        node = _field_node(field, None)
        if node is None or type(value) not in node[1]:
            return False
    return True


class CertainShapes:
    """Shapes of built batch shells known valid for any values of the types they hold.

    A converter that builds shells from a record always the same way (identities as
    strings, an mpid as an int, attributes by `values.user_attributes`) keys each on
    what varies besides the values: the environment, the field names and the names in
    `user_identities`, `device_info` and `application_info`. The first shell of a
    shape is checked; once it is certain by its types (`certain_by_types`), the
    others of that shape are not checked again. Any other shell is fitted as
    `fit_shell` fits it.
    """

    def __init__(self, validated: t.Mapping[str, t.Collection[str]] | None = None) -> None:
        """Start with no shape known.

        Args:
            validated: Entries the shells' builder validates itself (see
                `certain_by_types`).
        """
        self._known: set[t.Hashable] = set()
        self._validated = validated

    def fit(self, batch: dict[str, t.Any], shape: t.Hashable, tally: t.Counter[str]) -> None:
        """Leave `batch` as it is when its shape is known valid, else `fit_shell` it."""
        if shape in self._known:
            return
        quick = _shell_quick(True)  # noqa: FBT003 - cached by position
        if quick(batch) and certain_by_types(batch, self._validated):
            if len(self._known) >= MAX_SHAPES:
                self._known.clear()
            self._known.add(shape)
            return
        fit_shell(batch, tally, built_attributes=True)


def fit_shell(
    batch: dict[str, t.Any], tally: t.Counter[str], *, built_attributes: bool = False
) -> dict[str, t.Any]:
    """Return a batch (without its events) once it validates, dropping fields that cannot.

    Args:
        batch: The batch's top-level fields (mutated).
        tally: Counts what was dropped.
        built_attributes: Its `user_attributes`, if any, are what `values.user_attributes`
            returned, unchanged since: the quick check need not look at them.

    Returns:
        The batch.

    Raises:
        InvalidRecordError: Nothing can be dropped to make it valid.
    """
    if _shell_quick(built_attributes)(batch):
        return batch
    check = _shell_check()
    for _ in range(MAX_FIXES):
        attributes = batch.get("user_attributes")
        if isinstance(attributes, dict) and _plain_attributes(attributes):
            # Strings and lists of strings are always valid user attribute values; the
            # compiled check would spend more on formatting each one's path than on the
            # rest of the batch. Any other value goes through the full check below.
            failure = _failure(check, {k: v for k, v in batch.items() if k != "user_attributes"})
        else:
            failure = _failure(check, batch)
        if failure is None:
            return batch
        path, reason = failure
        if not path or path[0] not in batch or path[0] in {"environment", "source_request_id"}:
            msg = f"batch is not valid for the Events API: {reason}"
            raise InvalidRecordError(msg)
        del batch[path[0]]
        if path[0] in _IDENTITY_FIELDS and not _IDENTITY_FIELDS.intersection(batch):
            # mParticle would take the batch and attach it to no one.
            msg = f"batch has no identity left once {path[0]} is dropped: {reason}"
            raise InvalidRecordError(msg)
        tally[f"batch fields that could not be valid dropped ({path[0]})"] += 1
    msg = f"batch has more than {MAX_FIXES} fields that cannot be valid"
    raise InvalidRecordError(msg)
