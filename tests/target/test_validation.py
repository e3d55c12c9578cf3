from collections import Counter

import pytest
from singer_sdk.exceptions import InvalidRecord
from singer_sdk.sinks.core import JSONSchemaValidator

from target_mparticle.inbound import fit_shell
from target_mparticle.validation import CompiledValidator, compiled_or_default

SCHEMA = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "when": {"type": ["string", "null"], "format": "date-time"},
        "plan": {"type": "string", "default": "free"},
    },
    "required": ["id"],
}


def test_compiled_validator_rejects_what_the_schema_rejects():
    check = compiled_or_default(SCHEMA, validate_formats=False)
    assert isinstance(check, CompiledValidator)
    check.validate({"id": 1, "when": None})
    with pytest.raises(InvalidRecord, match="integer"):
        check.validate({"id": "one"})
    with pytest.raises(InvalidRecord):
        check.validate({"when": None})


def test_defaults_are_never_written_into_the_record():
    record = {"id": 1}
    compiled_or_default(SCHEMA, validate_formats=False).validate(record)
    assert record == {"id": 1}


def test_formats_are_checked_only_when_asked():
    compiled_or_default(SCHEMA, validate_formats=False).validate({"id": 1, "when": "soon"})
    with pytest.raises(InvalidRecord):
        compiled_or_default(SCHEMA, validate_formats=True).validate({"id": 1, "when": "soon"})


def test_a_schema_it_cannot_compile_keeps_the_sdk_validator():
    schema = {"type": "object", "properties": {"a": {"$ref": "#/definitions/missing"}}}
    check = compiled_or_default(schema, validate_formats=False)
    assert isinstance(check, JSONSchemaValidator)


def test_shell_check_skips_only_plain_attribute_values():
    # Strings and lists of strings skip the compiled per-attribute check (it is valid by
    # construction); anything else still meets it, and the rest of the batch always does.
    tally: Counter[str] = Counter()
    plain = {"environment": "development", "user_attributes": {"a": "x", "b": ["y"]}}
    assert fit_shell(dict(plain), tally) == plain
    wrong_mpid = {**plain, "mpid": "not a number"}
    assert fit_shell(wrong_mpid, tally) == plain
    nested = {"environment": "development", "user_attributes": {"a": {"b": 1}}}
    assert "user_attributes" not in fit_shell(nested, tally)
    assert tally["batch fields that could not be valid dropped (user_attributes)"] == 1
