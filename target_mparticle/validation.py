"""Record validation compiled to Python, with the SDK's validator as the fallback.

The SDK checks every incoming record with `jsonschema`, which walks the schema
anew for each record; profiling put it at about half of the target's CPU. The
`fastjsonschema` library compiles a schema once into plain Python checks and
validates the same draft-07 subset several times faster. Schemas it cannot
compile (a tap may send any JSON Schema) keep the SDK's validator, so no stream
loses validation. Before either, `fastcheck` answers for the records it is certain
are valid, at one look-up per field the record has (fastjsonschema's code tests
every property the schema names).
"""

from __future__ import annotations

import re
import typing as t

import fastjsonschema
from singer_sdk.exceptions import InvalidJSONSchema, InvalidRecord
from singer_sdk.sinks.core import BaseJSONSchemaValidator, JSONSchemaValidator

from target_mparticle._compat import override
from target_mparticle.fastcheck import Compiler

if t.TYPE_CHECKING:
    import jsonschema


class CompiledValidator(BaseJSONSchemaValidator):
    """A `fastjsonschema` validator that never alters the record it checks."""

    def __init__(self, schema: dict[str, t.Any], *, validate_formats: bool) -> None:
        """Compile the schema.

        Args:
            schema: The stream's JSON Schema.
            validate_formats: Check string formats such as date-time (the SDK's
                `validate_field_string_format`).

        Raises:
            fastjsonschema.JsonSchemaDefinitionException: The schema does not compile.
        """
        super().__init__(schema)
        # use_default=False: fastjsonschema would otherwise fill in schema defaults,
        # changing the record a tap sent.
        self._check = fastjsonschema.compile(
            schema,
            use_default=False,
            use_formats=validate_formats,
            detailed_exceptions=False,
        )
        self._quick = Compiler(schema, formats=validate_formats).check(schema)

    @override
    def validate(self, record: dict[str, t.Any]) -> None:
        """Raise the SDK's InvalidRecord, as its own validator does.

        Args:
            record: The record.

        Raises:
            InvalidRecord: The record does not match the schema.
        """
        if self._quick(record):
            return
        try:
            self._check(record)
        except fastjsonschema.JsonSchemaValueException as exc:
            raise InvalidRecord(exc.message, record) from exc


def compiled_or_default(
    schema: dict[str, t.Any], *, validate_formats: bool
) -> BaseJSONSchemaValidator:
    """The compiled validator, or the SDK's when the schema uses what it cannot compile.

    Args:
        schema: The stream's JSON Schema.
        validate_formats: Check string formats.

    Returns:
        A validator.
    """
    schema = draft4_bounds(schema)
    try:
        return CompiledValidator(schema, validate_formats=validate_formats)
    except re.error as exc:
        # No validator can use it: jsonschema would fail on the first value it checks.
        msg = f"a pattern in the stream's schema is not a regular expression ({exc})"
        raise InvalidJSONSchema(msg) from None
    except Exception:  # noqa: BLE001 - see below
        # fastjsonschema's code generator fails in assorted ways on what it cannot
        # compile (JsonSchemaDefinitionException, or KeyError for an object `const`).
        return JSONSchemaValidator(schema, validate_formats=validate_formats)


#: Keywords whose values are data, not schemas: never rewritten.
_DATA_KEYWORDS = frozenset({"enum", "const", "default", "examples"})
#: Keywords holding a map of names to schemas (a name may be any text).
_SCHEMA_MAPS = frozenset({"properties", "patternProperties", "definitions", "$defs"})
_BOUNDS = (("exclusiveMaximum", "maximum"), ("exclusiveMinimum", "minimum"))


def draft4_bounds(schema: dict[str, t.Any]) -> dict[str, t.Any]:
    """The schema with draft-04's boolean `exclusiveMaximum`/`exclusiveMinimum` as numbers.

    Warehouse taps (pipelinewise and singer-io tap-postgres, on every `numeric`
    column) still write `"maximum": 1e10, "exclusiveMaximum": true` without naming
    draft-04. Read as a later draft, `true` is the bound 1: every value failed one
    side and every record was refused. A schema that names draft-04 (or 03) in
    `$schema` is left as it is: the validators read it by that draft.
    """
    declared = schema.get("$schema")
    if isinstance(declared, str) and ("draft-04" in declared or "draft-03" in declared):
        return schema
    return t.cast("dict[str, t.Any]", _rewrite_bounds(schema))


def _rewrite_bounds(node: object) -> object:
    if isinstance(node, list):
        return [_rewrite_bounds(item) for item in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, t.Any] = {}
    for key, value in node.items():
        if key in _DATA_KEYWORDS:
            out[key] = value
        elif key in _SCHEMA_MAPS and isinstance(value, dict):
            out[key] = {name: _rewrite_bounds(sub) for name, sub in value.items()}
        else:
            out[key] = _rewrite_bounds(value)
    for flag_key, limit_key in _BOUNDS:
        flag = out.get(flag_key)
        if isinstance(flag, bool):
            del out[flag_key]
            if flag and limit_key in out:
                out[flag_key] = out.pop(limit_key)
    return out


#: The types a JSON Schema `type` may name (alone, or as a list without repeats).
JSON_TYPES = ("array", "boolean", "integer", "null", "number", "object", "string")


def schema_mistake(error: jsonschema.SchemaError) -> str:
    """Where a stream's schema breaks JSON Schema, by field name, and what is wrong there.

    The SDK's own message leads with the path through the *metaschema*
    (`metaschema['allOf'][1]['properties']...`), which names no field; the path
    through the stream's schema does (`properties` -> `age` -> `type`).
    """
    names: list[str] = []
    rest: list[str] = []
    path = [str(part) for part in error.absolute_path]
    i = 0
    while i < len(path):
        if path[i] == "properties" and i + 1 < len(path):
            names.append(path[i + 1])
            rest = []
            i += 2
            continue
        if path[i] == "items" and names:
            names[-1] += "[]"
        else:
            rest.append(path[i])
        i += 1
    where = f"field {'.'.join(names)!r}"[:80] if names else "its top level"
    if rest == ["type"]:
        known = ", ".join(JSON_TYPES)
        shown = repr(error.instance)[:80]
        return f"{where} has type {shown}; a type is one of {known}, or a list of distinct ones"
    keyword = "/".join(rest)[:80]
    return f"{where}{f' ({keyword})' if keyword else ''}: {error.message[:160]}"
