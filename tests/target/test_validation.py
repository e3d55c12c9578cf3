import copy
import json
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
from tests.support.target import run_target

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


#: A `numeric(12,2)` column as pipelinewise-tap-postgres 2.1.0 (and singer-io
#: tap-postgres) describes it: draft-04 boolean bounds, with no `$schema` naming draft-04.
NUMERIC_12_2 = {
    "type": ["null", "number"],
    "exclusiveMaximum": True,
    "maximum": 10_000_000_000,
    "multipleOf": 0.01,
    "exclusiveMinimum": True,
    "minimum": -10_000_000_000,
}


def test_draft4_boolean_bounds_are_bounds_not_the_number_one():
    """`true` read as a later draft's bound 1 refused every value of every numeric column."""
    schema = {
        "type": "object",
        "properties": {
            "total": NUMERIC_12_2,
            "capped": {"type": "integer", "maximum": 10, "exclusiveMaximum": False},
            # A field with this name is a field, not a keyword.
            "exclusiveMaximum": {"type": "string"},
            "kind": {"enum": [{"exclusiveMaximum": True}, "plain"]},
        },
    }
    check = compiled_or_default(schema, validate_formats=False)
    for good in ({"total": 12.5}, {"total": 9_999_999_999.99}, {"total": None}, {"capped": 10}):
        check.validate(good)
    check.validate({"exclusiveMaximum": "text", "kind": {"exclusiveMaximum": True}})
    for bad, words in (
        ({"total": 10_000_000_000}, "smaller than 10000000000"),
        ({"total": -10_000_000_000}, "bigger than -10000000000"),
        ({"capped": 11}, "smaller than or equal to 10"),
        ({"exclusiveMaximum": 3}, "must be string"),
        ({"kind": {"exclusiveMaximum": 5}}, "must be one of"),
    ):
        with pytest.raises(InvalidRecord, match=words):
            check.validate(bad)
    assert schema["properties"]["total"] == NUMERIC_12_2  # the stream's schema is not changed


def test_a_schema_that_names_draft4_keeps_its_own_reading():
    schema = {
        "$schema": "http://json-schema.org/draft-04/schema#",
        "type": "object",
        "properties": {"total": NUMERIC_12_2},
    }
    check = compiled_or_default(schema, validate_formats=False)
    check.validate({"total": 12.5})
    with pytest.raises(InvalidRecord):
        check.validate({"total": 10_000_000_000})


def test_a_postgres_numeric_column_reaches_mparticle(tmp_path):
    schema = {
        "type": "object",
        "properties": {"email": {"type": ["string"]}, "total": NUMERIC_12_2},
    }
    lines = [
        json.dumps(
            {"type": "SCHEMA", "stream": "public-orders", "schema": schema, "key_properties": []}
        ),
        json.dumps(
            {
                "type": "RECORD",
                "stream": "public-orders",
                "record": {"email": "a@b.c", "total": 12.5},
            }
        ),
    ]
    config = {
        "api_key": "k",
        "api_secret": "s",
        "dry_run": True,
        "dry_run_path": str(tmp_path / "dry.jsonl"),
        "mappings": {"public-orders": {"kind": "user", "identities": {"email": "email"}}},
    }
    run = run_target(config, lines)
    assert run.error is None
    body = json.loads((tmp_path / "dry.jsonl").read_text())["body"]
    assert body[0]["user_attributes"] == {"total": "12.5"}
