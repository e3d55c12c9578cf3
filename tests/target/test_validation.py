import copy
import typing as t
from collections import Counter

import fastjsonschema
import pytest
from singer_sdk.exceptions import InvalidJSONSchema, InvalidRecord
from singer_sdk.sinks.core import JSONSchemaValidator

from target_mparticle.inbound import fit_shell
from target_mparticle.validation import CompiledValidator, compiled_or_default
from tests.support.files import SAMPLE_DROP
from tests.support.tap import TapOutput, run_tap

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


def test_a_schema_fastjsonschema_cannot_generate_code_for_keeps_the_sdk_validator():
    # fastjsonschema's generator raises KeyError for an object `const`.
    schema = {"type": "object", "properties": {"a": {"const": {"x": [1]}}}}
    check = compiled_or_default(schema, validate_formats=False)
    assert isinstance(check, JSONSchemaValidator)
    check.validate({"a": {"x": [1]}})
    with pytest.raises(InvalidRecord):
        check.validate({"a": 7})


def test_a_pattern_that_is_no_regular_expression_is_a_schema_error():
    schema = {"type": "object", "properties": {"a": {"type": "string", "pattern": "("}}}
    with pytest.raises(InvalidJSONSchema, match=r"not a regular expression \(missing \)"):
        compiled_or_default(schema, validate_formats=False)


def test_shell_check_skips_only_plain_attribute_values():
    # Strings and lists of strings skip the compiled per-attribute check (it is valid by
    # construction); anything else still meets it, and the rest of the batch always does.
    tally: Counter[str] = Counter()
    plain = {
        "environment": "development",
        "user_identities": {"email": "a@example.com"},
        "user_attributes": {"a": "x", "b": ["y"]},
    }
    assert fit_shell(dict(plain), tally) == plain
    wrong_mpid = {**plain, "mpid": "not a number"}
    assert fit_shell(wrong_mpid, tally) == plain
    nested = {"environment": "development", "user_attributes": {"a": {"b": 1}}}
    assert "user_attributes" not in fit_shell(nested, tally)
    assert tally["batch fields that could not be valid dropped (user_attributes)"] == 1


@pytest.fixture(scope="module")
def tap_messages() -> TapOutput:
    """tap-mparticle's own SCHEMA and RECORD messages over the sample drop, every stream."""
    streams = {"events", "batches", "audience_memberships", "audience_user_attributes"}
    return run_tap({"bucket_url": str(SAMPLE_DROP)}, streams=streams)


def _valid(check: t.Callable[[t.Any], t.Any], record: t.Any) -> bool:
    try:
        check(copy.deepcopy(record))
    except fastjsonschema.JsonSchemaValueException:
        return False
    return True


@pytest.mark.parametrize(
    "stream", ["events", "batches", "audience_memberships", "audience_user_attributes"]
)
def test_the_quick_record_check_never_passes_what_the_full_check_refuses(tap_messages, stream):
    """Records of tap-mparticle's own schemas, broken at every top-level field."""
    (schema,) = [
        m["schema"]
        for m in tap_messages.messages
        if m["type"] == "SCHEMA" and m["stream"] == stream
    ]
    records = tap_messages.records(stream)[:15]
    assert records
    validator = CompiledValidator(schema, validate_formats=False)
    full = fastjsonschema.compile(schema, use_default=False, use_formats=False)
    assert all(validator._quick(r) for r in records)  # the usual record takes the quick path
    hostile = (None, "x", 1, 1.5, True, [], ["a"], {}, {"k": "v"})
    mutants = [{**r, field: value} for r in records for field in r for value in hostile]
    mutants += [{k: v for k, v in r.items() if k != field} for r in records for field in r]
    for mutant in mutants:
        if validator._quick(mutant):
            assert _valid(full, mutant), mutant


def test_a_checked_format_is_never_taken_on_trust():
    validator = CompiledValidator(SCHEMA, validate_formats=True)
    assert not validator._quick({"id": 1, "when": "soon"})
    assert CompiledValidator(SCHEMA, validate_formats=False)._quick({"id": 1, "when": "soon"})
