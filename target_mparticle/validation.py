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
