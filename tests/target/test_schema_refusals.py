"""A record its own stream's SCHEMA refuses is an invalid record, under `on_invalid_record`.

The SDK would log a traceback and stop the run whatever the setting says; a tap that
emits a value of the wrong type for one row must not make a dead-letter run fail.
"""

from __future__ import annotations

import json
import pathlib
import typing as t

import pytest

from tests.support.target import run_target, run_target_cli

SCHEMA = {
    "type": "SCHEMA",
    "stream": "users",
    "schema": {
        "type": "object",
        "properties": {"id": {"type": "integer"}, "email": {"type": "string"}},
    },
    "key_properties": ["id"],
}
USERS = [
    {"id": 1, "email": "a@example.com"},
    {"id": "two", "email": "b@example.com"},  # not the integer the SCHEMA promises
    {"id": 3, "email": "c@example.com"},
]


def lines() -> list[str]:
    return [
        json.dumps(SCHEMA),
        *(json.dumps({"type": "RECORD", "stream": "users", "record": u}) for u in USERS),
        json.dumps({"type": "STATE", "value": {"users": 3}}),
    ]


def users_config(config: dict[str, t.Any], **extra: t.Any) -> dict[str, t.Any]:
    return {**config, "mappings": {"users": {"kind": "user"}}, **extra}


def sent_emails(server: t.Any) -> list[str]:
    return sorted(b["user_identities"]["email"] for b in server.batches())


def test_dead_letter_keeps_the_refused_record_with_the_schema_error_and_sends_the_rest(
    server, config, tmp_path
):
    run = run_target(users_config(config, on_invalid_record="dead_letter"), lines())
    assert run.error is None
    assert sent_emails(server) == ["a@example.com", "c@example.com"]
    (letter,) = [json.loads(x) for x in (tmp_path / "dead.jsonl").read_text().splitlines()]
    assert letter["stream"] == "users"
    assert letter["record"] == USERS[1]
    assert "does not match its stream's SCHEMA" in letter["reason"]
    assert "id" in letter["reason"]
    assert run.states == [{"users": 3}]  # the refused record is accounted for


def test_skip_counts_the_refused_record_and_sends_the_rest(server, config):
    run = run_target(users_config(config, on_invalid_record="skip"), lines())
    assert run.error is None
    assert sent_emails(server) == ["a@example.com", "c@example.com"]
    assert run.target.delivery.invalid.count == 1


def test_fail_is_one_line_naming_the_record_and_no_state(config, tmp_path):
    done = run_target_cli(tmp_path, users_config(config), "\n".join(lines()) + "\n")
    assert done.returncode == 1
    errors = [line for line in done.stderr.splitlines() if "ERROR" in line]
    assert len(errors) == 1, done.stderr
    assert "does not match its stream's SCHEMA" in errors[0]
    assert "stream 'users' record" in errors[0]
    assert "Traceback" not in done.stderr
    assert done.stdout == ""


@pytest.mark.parametrize("validate", [True, False])
def test_with_validate_records_off_the_record_is_judged_by_mparticle_alone(
    server, config, validate
):
    run = run_target(
        users_config(config, on_invalid_record="skip", validate_records=validate), lines()
    )
    assert run.error is None
    expected = ["a@example.com", "c@example.com"]
    assert sent_emails(server) == (expected if validate else sorted([*expected, "b@example.com"]))


@pytest.mark.parametrize(
    "case",
    [
        ("not a time", True, "Could not parse value 'not a time' for field 'seen'"),
        # Unchecked, a list reaches the SDK's parser, which raised TypeError past its
        # error treatment.
        (["2024-05-01"], False, "Could not parse value ['2024-05-01'] for field 'seen': not text"),
    ],
    ids=["unreadable", "not-text"],
)
def test_a_date_time_the_sdk_cannot_read_is_refused_like_any_schema_mismatch(server, config, case):
    seen, validate, reason = case
    schema = json.loads(json.dumps(SCHEMA))
    schema["schema"]["properties"]["seen"] = {"type": "string", "format": "date-time"}
    records = [
        {"id": 1, "email": "a@example.com", "seen": "2024-05-01T00:00:00+00:00"},
        {"id": 2, "email": "b@example.com", "seen": seen},
    ]
    lines_ = [
        json.dumps(schema),
        *(json.dumps({"type": "RECORD", "stream": "users", "record": r}) for r in records),
    ]
    settings = users_config(config, on_invalid_record="dead_letter", validate_records=validate)
    run = run_target(settings, lines_)
    assert run.error is None
    assert sent_emails(server) == ["a@example.com"]
    dead = pathlib.Path(config["dead_letter_path"]).read_text()
    (letter,) = [json.loads(x) for x in dead.splitlines()]
    assert letter["record"] == records[1]
    assert reason in letter["reason"]


def test_boolean_property_schemas_are_schemas_too(server, config):
    """`true` takes any value and `false` none (JSON Schema's boolean schemas)."""
    schema = {
        "type": "SCHEMA",
        "stream": "users",
        "schema": {"type": "object", "properties": {"id": True, "email": True, "gone": False}},
        "key_properties": ["id"],
    }
    records = [{"id": 1, "email": "a@example.com"}, {"id": 2, "email": "b@example.com", "gone": 1}]
    lines_ = [
        json.dumps(schema),
        *(json.dumps({"type": "RECORD", "stream": "users", "record": r}) for r in records),
    ]
    run = run_target(users_config(config, on_invalid_record="skip"), lines_)
    assert run.error is None
    assert sent_emails(server) == ["a@example.com"]
    assert run.target.delivery.invalid.count == 1


def test_a_schema_that_names_no_properties_is_refused_saying_how_to_declare_them(tmp_path):
    """singer-io tap-mongodb's `{"type": "object"}`: refused, as the SDK's standard
    target tests require, but in words that say what to do."""
    schema = {
        "type": "SCHEMA",
        "stream": "things",
        "schema": {"type": "object"},
        "key_properties": [],
    }
    done = run_target_cli(tmp_path, {"dry_run": True}, json.dumps(schema) + "\n")
    assert done.returncode == 1
    assert (
        "line 1: the SCHEMA of stream 'things' names no fields ('properties'), as schemaless taps "
        "send it: declare them (Meltano's `schema` extra on the tap)"
    ) in done.stderr


TYPE_WORDS = "a type is one of array, boolean, integer, null, number, object, string"


@pytest.mark.parametrize(
    ("schema", "said"),
    [
        (
            {"properties": {"id": {"type": "integer"}, "age": {"type": "integr"}}},
            f"field 'age' has type 'integr'; {TYPE_WORDS}, or a list of distinct ones",
        ),
        (
            {"properties": {"tags": {"type": "array", "items": {"type": ["string", "nul"]}}}},
            f"field 'tags[]' has type ['string', 'nul']; {TYPE_WORDS}",
        ),
        (
            {"properties": {"a": {"properties": {"b": {"minimum": "x"}}}}},
            "field 'a.b' (minimum): 'x' is not of type 'number'",
        ),
        ({"type": "objekt", "properties": {}}, "its top level has type 'objekt'"),
    ],
)
def test_a_schema_that_is_not_json_schema_is_refused_naming_the_field(tmp_path, schema, said):
    """The SDK's own words led with a path through the metaschema, which names no field."""
    message = {"type": "SCHEMA", "stream": "users", "schema": schema, "key_properties": []}
    done = run_target_cli(tmp_path, {"dry_run": True}, json.dumps(message) + "\n")
    assert done.returncode == 1
    (line,) = [x for x in done.stderr.splitlines() if "| ERROR" in x]
    lead = "Malformed Singer input at line 1: the SCHEMA of stream 'users' is not JSON Schema: "
    assert lead + said in line
    assert "metaschema" not in line
    assert "Traceback" not in done.stderr
