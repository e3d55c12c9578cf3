"""Each configuration mistake is one line naming the setting, exit 1, before data moves."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import typing as t

import pytest
from singer_sdk.exceptions import ConfigValidationError
from singer_sdk.singerlib.exceptions import InvalidInputLine

from scripts.generate_drop import generate_drop
from tap_mparticle.tap import TapMParticle
from target_mparticle.preflight import MAX_STATE_DEPTH, check_state, nests_deeper_than
from target_mparticle.target import TargetMParticle
from tests.support.files import error_lines
from tests.support.tap import run_cli
from tests.support.target import run_target_cli, singer_lines

if t.TYPE_CHECKING:
    from pathlib import Path


TAP_MISTAKES = [
    ({"aws_endpoint_url": "not a url"}, "aws_endpoint_url 'not a url' is not an http(s) URL"),
    ({"aws_profile": "no-such-profile"}, "aws_profile 'no-such-profile' is not in the AWS"),
    ({"aws_region": "moon-base"}, "aws_region 'moon-base' is not a region name"),
    ({"aws_role_arn": "my-role"}, "aws_role_arn 'my-role' is not an IAM role ARN"),
    ({"lookback_window_minutes": 10**12}, "lookback_window_minutes must be a whole number"),
    ({"bucket_url": "file://"}, "bucket_url 'file://' names no directory"),
    ({"download_concurrency": 10**6}, "download_concurrency must be from 1 to 64"),
    ({"events_prefix": "../../elsewhere/"}, "events_prefix '../../elsewhere/' has a '..' segment"),
    ({"audiences_prefix": "a/./b"}, "audiences_prefix 'a/./b/' has a '.' segment"),
]


@pytest.mark.parametrize(("mistake", "message"), TAP_MISTAKES)
def test_tap_config_mistakes_are_named(mistake: dict, message: str):
    config = {"bucket_url": "s3://bucket", **mistake}
    with pytest.raises(ConfigValidationError) as raised:
        TapMParticle(config=config)
    assert [e for e in raised.value.errors if message in e], raised.value.errors


def test_tap_cli_lists_every_mistake_once_and_reads_nothing(tmp_path: Path):
    drop = tmp_path / "drop"
    drop.mkdir()
    # aws_region is left out: with aws_endpoint_url set, stores may name their own regions
    chosen = [case for case in TAP_MISTAKES if "aws_region" not in case[0]]
    chosen = [case for case in chosen if "bucket_url" not in case[0]]
    config = {"bucket_url": str(drop)}
    for mistake, _ in chosen:
        config.update(mistake)
    run = run_cli(config, tmp_path)
    assert run.returncode == 1
    assert run.messages == []  # nothing moved, not even a SCHEMA
    errors = error_lines(run.stderr)
    assert len(errors) == len(chosen), run.stderr
    for _, message in chosen:
        assert sum(message in line for line in errors) == 1
    assert "Traceback" not in run.stderr


@pytest.mark.parametrize("how", ["dots", "link"])
def test_tap_prefix_leading_outside_bucket_url_reads_nothing(tmp_path: Path, how: str):
    """The README says nothing outside bucket_url is read: a prefix cannot climb out."""
    drop = tmp_path / "drop"
    drop.mkdir()
    generate_drop(tmp_path / "outside", events=5, seed=3)
    if how == "link":
        (drop / "events").symlink_to(tmp_path / "outside")
    prefix = "../outside/" if how == "dots" else "events/"
    run = run_cli({"bucket_url": str(drop), "events_prefix": prefix}, tmp_path)
    assert run.returncode == 1
    assert run.messages == []
    (line,) = error_lines(run.stderr)
    outside = (tmp_path / "outside").resolve()
    expected = (
        "has a '..' segment"
        if how == "dots"
        else f"leads outside bucket_url through a symbolic link (to {outside})"
    )
    assert f"events_prefix {prefix!r} {expected}" in line


def test_tap_config_file_that_is_not_an_object(tmp_path: Path):
    config_file = tmp_path / "config.json"
    config_file.write_text("[1, 2]")
    done = subprocess.run(
        [sys.executable, "-m", "tap_mparticle", "--config", str(config_file)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1
    (line,) = error_lines(done.stderr)
    assert "must hold a JSON object, not a JSON list" in line
    assert "Traceback" not in done.stderr


def test_tap_corrupt_state_file(tmp_path: Path):
    drop = tmp_path / "drop"
    drop.mkdir()
    config_file = tmp_path / "config.json"
    config_file.write_text(json.dumps({"bucket_url": str(drop)}))
    state_file = tmp_path / "state.json"
    state_file.write_text('{"bookmarks": {')
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "tap_mparticle",
            "--config",
            str(config_file),
            "--state",
            str(state_file),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1
    assert done.stdout == ""
    (line,) = error_lines(done.stderr)
    assert "state file" in line
    assert "not valid JSON" in line


def test_tap_state_in_meltanos_wrapper_is_read_and_a_state_without_bookmarks_refused(
    tmp_path: Path,
):
    """`meltano state get` and `reshard` write `{"singer_state": ...}`: not a re-read."""
    drop = tmp_path / "drop"
    generate_drop(drop, events=30, seed=2)
    first = run_cli({"bucket_url": str(drop)}, tmp_path)
    assert len(first.records("events")) == 30
    wrapped = run_cli({"bucket_url": str(drop)}, tmp_path, {"singer_state": first.final_state})
    assert wrapped.returncode == 0, wrapped.stderr
    assert wrapped.records("events") == []
    assert "holds Meltano's wrapped state" in wrapped.stderr
    stray = run_cli({"bucket_url": str(drop)}, tmp_path, {"bookmark": first.final_state})
    assert stray.returncode == 1
    assert stray.records("events") == []
    (line,) = error_lines(stray.stderr)
    assert "tap-state.json: not a Singer state (it has no 'bookmarks', only 'bookmark')" in line


def test_tap_unknown_settings_are_warned_by_name(tmp_path: Path, caplog):
    caplog.set_level(logging.WARNING)
    TapMParticle(config={"bucket_url": str(tmp_path), "on_bad_recrod": "skip", "api_secrett": "x"})
    warnings = [r.getMessage() for r in caplog.records if "unknown setting" in r.getMessage()]
    assert "unknown setting 'on_bad_recrod' is ignored (did you mean 'on_bad_record'?)" in warnings
    assert any("'api_secrett'" in w for w in warnings)
    # built-in SDK settings are settings too
    caplog.clear()
    TapMParticle(config={"bucket_url": str(tmp_path), "flattening_enabled": False})
    assert not [r for r in caplog.records if "unknown setting" in r.getMessage()]


def target_config(**extra: t.Any) -> dict[str, t.Any]:
    return {"api_key": "k", "api_secret": "s", **extra}


def test_target_output_path_mistakes_are_named(tmp_path: Path):
    a_file = tmp_path / "plain-file"
    a_file.write_text("x")
    a_dir = tmp_path / "a-dir"
    a_dir.mkdir()
    cases = [
        (
            {"on_invalid_record": "dead_letter", "dead_letter_path": str(a_file / "dead.jsonl")},
            "dead_letter_path",
            "is not a directory",
        ),
        ({"on_invalid_record": "dead_letter", "dead_letter_path": ""}, "dead_letter_path", "empty"),
        ({"dry_run": True, "dry_run_path": str(a_dir)}, "dry_run_path", "not a regular file"),
        (
            {"dry_run": True, "dry_run_path": str(a_file / "x" / "y.jsonl")},
            "dry_run_path",
            "not a directory",
        ),
    ]
    for extra, setting, why in cases:
        with pytest.raises(ConfigValidationError) as raised:
            TargetMParticle(config=target_config(**extra))
        (error,) = raised.value.errors
        assert error.startswith(setting)
        assert why in error


def test_target_unknown_settings_are_warned_by_name(caplog):
    caplog.set_level(logging.WARNING)
    TargetMParticle(config=target_config(mapings={}, api_secrett="x"))
    warnings = [r.getMessage() for r in caplog.records if "unknown setting" in r.getMessage()]
    assert warnings == [
        "unknown setting 'api_secrett' is ignored (did you mean 'api_secret'?)",
        "unknown setting 'mapings' is ignored (did you mean 'mappings'?)",
    ]


SCHEMA = json.dumps(
    {"type": "SCHEMA", "stream": "s", "schema": {"properties": {}}, "key_properties": []}
)


@pytest.mark.parametrize(
    ("stdin", "message"),
    [
        (f"{SCHEMA}\nnot json at all\n", "line 2: not a JSON message: 'not json at all'"),
        ('{"type": "RECORD", "stream": "s", "record": {}}\n', "line 1: A record for stream 's'"),
        (f"{SCHEMA}\n" + '{"type": "GOSSIP"}\n', "line 2: Unknown message type 'GOSSIP'"),
        ('{"type": "SCHEMA", "stream": "s"}\n', "line 1: Line is missing required schema key"),
        (f"{SCHEMA}\n" + '{"stream": "s"}\n', "line 2: Line is missing required type key"),
        (f"{SCHEMA}\n[1, 2]\n", "line 2: not a Singer message (a JSON object): [1, 2]"),
        ('"RECORD"\n', "line 1: not a Singer message (a JSON object): 'RECORD'"),
        (f"{SCHEMA}\nnull\n", "line 2: not a Singer message (a JSON object): None"),
        (f"{SCHEMA}\n1\n", "line 2: not a Singer message (a JSON object): 1"),
        (f"{SCHEMA}\ntrue\n", "line 2: not a Singer message (a JSON object): True"),
        (f"{SCHEMA}\n1.5\n", "line 2: not a Singer message (a JSON object): 1.5"),
        ('{"type": ["RECORD"]}\n', "line 1: Unknown message type"),
        (f"{SCHEMA}\n" + '{"type": {"RECORD": 1}}\n', "line 2: Unknown message type"),
        (
            f"{SCHEMA}\n" + '{"type": "RECORD", "stream": ["s"], "record": {}}\n',
            "line 2: a RECORD message's 'stream' is not text: ['s']",
        ),
        (
            f"{SCHEMA}\n" + '{"type": "RECORD", "stream": "s", "record": [1]}\n',
            "line 2: a RECORD message's 'record' is not an object: [1]",
        ),
        (
            f"{SCHEMA}\n" + '{"type": "RECORD", "stream": "s", "record": null}\n',
            "line 2: a RECORD message's 'record' is not an object: None",
        ),
        (
            f"{SCHEMA}\n" + '{"type": "BATCH", "stream": "s", "manifest": []}\n',
            "line 2: BATCH messages are not supported",
        ),
        (
            f"{SCHEMA}\n"
            '{"type": "RECORD", "stream": "s", "record": {"email": "a@example.com"}}\n'
            '{"type": "STATE", "value": ' + "[" * 500 + "]" * 500 + "}\n",
            "line 3: a STATE message's 'value' is nested more than 100 levels deep",
        ),
        (
            f"{SCHEMA}\n" + '{"type": "ACTIVATE_VERSION", "stream": "s"}\n',
            "line 2: Line is missing required version key",
        ),
        (
            f"{SCHEMA}\n" + '{"type": "ACTIVATE_VERSION", "stream": ["s"], "version": 1}\n',
            "line 2: an ACTIVATE_VERSION message's 'stream' is not text: ['s']",
        ),
        (
            f"{SCHEMA}\n" + '{"type": "ACTIVATE_VERSION", "stream": "nope", "version": 1}\n',
            "line 2: an ACTIVATE_VERSION message for stream 'nope', which no SCHEMA message",
        ),
        (
            json.dumps({**json.loads(SCHEMA), "schema": {"properties": {"a": {"type": "bogus"}}}})
            + "\n",
            "line 1: the SCHEMA of stream 's' is not JSON Schema: field 'a' has type 'bogus'",
        ),
        (
            json.dumps({**json.loads(SCHEMA), "schema": {"properties": {"a": {"pattern": "("}}}})
            + "\n",
            "line 1: a pattern in the stream's schema is not a regular expression",
        ),
        (
            json.dumps({**json.loads(SCHEMA), "schema": {"properties": "x"}}) + "\n",
            "line 1: a SCHEMA message's 'properties' is not an object: 'x'",
        ),
        (
            json.dumps({**json.loads(SCHEMA), "schema": True}) + "\n",
            "line 1: a SCHEMA message's 'schema' is not an object: True",
        ),
        (
            json.dumps({**json.loads(SCHEMA), "schema": None}) + "\n",
            "line 1: a SCHEMA message's 'schema' is not an object: None",
        ),
        (
            json.dumps({**json.loads(SCHEMA), "schema": 5}) + "\n",
            "line 1: a SCHEMA message's 'schema' is not an object: 5",
        ),
        (
            json.dumps({**json.loads(SCHEMA), "stream": None}) + "\n",
            "line 1: a SCHEMA message's 'stream' is not text: None",
        ),
        (
            json.dumps({**json.loads(SCHEMA), "stream": 5}) + "\n",
            "line 1: a SCHEMA message's 'stream' is not text: 5",
        ),
        (
            json.dumps({**json.loads(SCHEMA), "key_properties": 5}) + "\n",
            "line 1: a SCHEMA message's 'key_properties' is not a list of field names: 5",
        ),
        (
            json.dumps({**json.loads(SCHEMA), "key_properties": [["id"]]}) + "\n",
            "line 1: a SCHEMA message's 'key_properties' is not a list of field names: [['id']]",
        ),
        (
            json.dumps({**json.loads(SCHEMA), "key_properties": ["id"]})
            + '\n{"type": "RECORD", "stream": "s", "record": {}}\n',
            "line 2: Record is missing one or more key_properties. Key Properties: ['id']",
        ),
        (
            json.dumps({**json.loads(SCHEMA), "schema": {"properties": {"a": {"$ref": "#/no"}}}})
            + '\n{"type": "RECORD", "stream": "s", "record": {"a": 1}}\n',
            "line 2: the stream's schema cannot check records: PointerToNowhere",
        ),
        (
            f"{SCHEMA}\n".encode()
            + b'{"type": "RECORD", "stream": "s", "record": {"a": "\xff"}}\n',
            'line 2: not a JSON message: \'{"type": "RECORD"',
        ),
    ],
    ids=[
        "not-json",
        "no-schema",
        "unknown-type",
        "no-schema-key",
        "no-type",
        "array",
        "string",
        "null",
        "number",
        "true",
        "float",
        "type-list",
        "type-object",
        "stream-list",
        "record-list",
        "record-null",
        "batch",
        "state-too-deep",
        "activate-version-no-version",
        "activate-version-stream-list",
        "activate-version-unknown-stream",
        "schema-not-json-schema",
        "schema-bad-pattern",
        "schema-properties-not-object",
        "schema-true",
        "schema-null",
        "schema-number",
        "schema-stream-null",
        "schema-stream-number",
        "key-properties-number",
        "key-properties-nested",
        "key-missing-two-line-message",
        "schema-ref-to-nowhere",
        "not-utf-8",
    ],
)
def test_target_malformed_singer_input_is_one_line(
    tmp_path: Path, stdin: str | bytes, message: str
):
    dry_run = {"dry_run": True, "dry_run_path": str(tmp_path / "dry.jsonl")}
    done = run_target_cli(tmp_path, dry_run, stdin)
    assert done.returncode == 1
    (line,) = error_lines(done.stderr)
    assert f"Malformed Singer input at {message}" in line
    assert "Traceback" not in done.stderr


#: A hostile value far longer than any error line may quote (the SDK quoted it whole).
LONG = "x" * 1_000_000


@pytest.mark.parametrize(
    ("stdin", "message"),
    [
        (
            json.dumps({"type": "RECORD", "record": {"a": LONG}}) + "\n",
            "line 1: Line is missing required stream key(s): {'type': 'RECORD', 'record'",
        ),
        (f"{SCHEMA}\n" + json.dumps({"stream": LONG}) + "\n", "line 2: Line is missing required"),
        (
            json.dumps({"type": "SCHEMA", "stream": "s", "schema": {"x": LONG}}) + "\n",
            "line 1: the SCHEMA of stream 's' names no fields ('properties')",
        ),
        (f"{SCHEMA}\n" + json.dumps({"type": LONG}) + "\n", "line 2: Unknown message type"),
        (
            json.dumps({"type": "RECORD", "stream": LONG, "record": {}}) + "\n",
            "line 1: A record for stream 'xxx",
        ),
        (
            json.dumps({**json.loads(SCHEMA), "key_properties": ["id"]})
            + "\n"
            + json.dumps(
                {
                    "type": "RECORD",
                    "stream": "s",
                    "record": {f"{i}{LONG[:1000]}": i for i in range(9)},
                }
            )
            + "\n",
            "line 2: Record is missing one or more key_properties.",
        ),
        (
            json.dumps({**json.loads(SCHEMA), "key_properties": [LONG]})
            + '\n{"type": "RECORD", "stream": "s", "record": {}}\n',
            "line 2: Record is missing one or more key_properties.",
        ),
        (
            f"{SCHEMA}\n" + json.dumps({"type": "ACTIVATE_VERSION", "stream": LONG, "version": 1}),
            "line 2: an ACTIVATE_VERSION message for stream 'xxx",
        ),
        (
            f"{SCHEMA}\n" + json.dumps({"type": "ACTIVATE_VERSION", "stream": LONG}),
            "line 2: Line is missing required version key(s)",
        ),
        (
            json.dumps({**json.loads(SCHEMA), "schema": {"properties": {"a": {"$ref": LONG}}}})
            + '\n{"type": "RECORD", "stream": "s", "record": {"a": 1}}\n',
            "line 2: the stream's schema cannot check records",
        ),
    ],
    ids=[
        "record-without-stream",
        "no-type",
        "schema-without-properties",
        "unknown-type",
        "record-before-schema",
        "record-without-key-many-fields",
        "long-key-property",
        "activate-version-unknown-stream",
        "activate-version-without-version",
        "schema-ref-to-nowhere",
    ],
)
def test_target_malformed_input_message_quotes_only_the_start(
    tmp_path: Path, stdin: str, message: str
):
    """A megabyte-long name, type or message is quoted to a few hundred characters.

    The SDK words these errors itself and quoted what it read whole: a 30 MB RECORD
    line without a stream made a 30 MB log line.
    """
    dry_run = {"dry_run": True, "dry_run_path": str(tmp_path / "dry.jsonl")}
    done = run_target_cli(tmp_path, dry_run, stdin)
    assert done.returncode == 1
    (line,) = error_lines(done.stderr)
    assert f"Malformed Singer input at {message}" in line
    assert len(line) < 700, line[:1000]
    assert len(done.stderr) < 5_000


def nested(depth: int) -> object:
    value: object = {"bookmarks": "x"}
    for _ in range(depth - 1):
        value = [value]
    return value


def test_target_state_nesting_limit_is_far_above_real_states_and_far_below_the_stack():
    check_state({"type": "STATE", "value": nested(MAX_STATE_DEPTH)})
    check_state({"type": "STATE", "value": 5})
    assert nests_deeper_than(nested(MAX_STATE_DEPTH), MAX_STATE_DEPTH - 1)
    with pytest.raises(InvalidInputLine, match="more than 100 levels deep"):
        check_state({"type": "STATE", "value": nested(MAX_STATE_DEPTH + 1)})


def test_target_activate_version_of_a_described_stream_is_ignored(tmp_path: Path):
    """The one kind the target accepts (and ignores, with the SDK's warning)."""
    dry_run = {"dry_run": True, "dry_run_path": str(tmp_path / "dry.jsonl")}
    activate = json.dumps({"type": "ACTIVATE_VERSION", "stream": "s", "version": 1})
    done = run_target_cli(tmp_path, dry_run, f"{SCHEMA}\n{activate}\n")
    assert done.returncode == 0, done.stderr
    assert "ACTIVATE_VERSION message received but not implemented" in done.stderr
    assert error_lines(done.stderr) == []


def test_target_config_file_that_is_not_an_object(tmp_path: Path):
    done = run_target_cli(tmp_path, '"just a string"', "")
    assert done.returncode == 1
    (line,) = error_lines(done.stderr)
    assert "must hold a JSON object, not a JSON str" in line


TARGET_NUMBER_MISTAKES = [
    ({"audience_attribute_name": ""}, "audience_attribute_name must be a non-empty string"),
    ({"audience_attribute_name": "  "}, "audience_attribute_name must be a non-empty string"),
    (
        {"backoff_base_seconds": 90, "backoff_max_seconds": 60},
        "backoff_base_seconds (90) must not exceed backoff_max_seconds (60)",
    ),
    ({"batch_size_rows": 0}, "batch_size_rows must be at least 1, not 0"),
    ({"batch_size_rows": -5}, "batch_size_rows must be at least 1, not -5"),
]


@pytest.mark.parametrize(("mistake", "message"), TARGET_NUMBER_MISTAKES)
def test_target_setting_mistakes_are_named_at_start_up(mistake: dict, message: str):
    with pytest.raises(ConfigValidationError) as raised:
        TargetMParticle(config=target_config(**mistake))
    (error,) = raised.value.errors
    assert error.startswith(message)


@pytest.mark.parametrize(
    "fine",
    [
        {"backoff_base_seconds": 60, "backoff_max_seconds": 60},
        {"batch_size_rows": 1},
        {"audience_attribute_name": "in_{audience_name}"},
    ],
)
def test_target_settings_at_their_bounds_are_taken(fine: dict):
    assert TargetMParticle(config=target_config(**fine)).settings is not None


def test_target_cli_names_each_setting_mistake_once_and_sends_nothing(server, tmp_path: Path):
    """Before, an empty audience_attribute_name passed and every audience row was refused."""
    config = {**target_config(api_url=server.url), "on_invalid_record": "skip"}
    for mistake, _ in (TARGET_NUMBER_MISTAKES[0], *TARGET_NUMBER_MISTAKES[2:4]):
        config.update(mistake)
    row = {
        "audience_id": 11,
        "audience_name": "Big spenders",
        "identity_type": "customer_id",
        "identity_value": "c-1",
        "action": "add",
        "timestamp": "2024-05-01T00:00:00.000+00:00",
    }
    stdin = "\n".join(singer_lines("audience_memberships", [row])) + "\n"
    done = run_target_cli(tmp_path, config, stdin)
    assert done.returncode == 1
    errors = error_lines(done.stderr)
    assert len(errors) == 3, done.stderr
    for _, message in (TARGET_NUMBER_MISTAKES[0], *TARGET_NUMBER_MISTAKES[2:4]):
        assert sum(message in line for line in errors) == 1
    assert "Traceback" not in done.stderr
    assert done.stdout == ""
    assert server.requests == []


def test_decimal_numbers_from_a_config_file_are_checked_as_numbers(tmp_path: Path):
    """The SDK reads a file's `2.5` as a Decimal, which the checks once passed over:
    a negative backoff then stopped the run at its first retry, with a traceback."""
    config = {
        "dry_run": True,
        "dry_run_path": str(tmp_path / "dry.jsonl"),
        "backoff_base_seconds": 2.5,
        "backoff_max_seconds": 1,
        "request_timeout": 0.0001,
    }
    done = run_target_cli(tmp_path, config, "")
    assert done.returncode == 1
    errors = error_lines(done.stderr)
    assert len(errors) == 2, done.stderr
    said = " ".join(errors)
    assert "request_timeout must be at least 0.001, not 0.0001" in said
    assert "backoff_base_seconds (2.5) must not exceed backoff_max_seconds (1)" in said


@pytest.mark.parametrize(("given", "taken"), [(10, 100), (50_000, 10_000), (2_000, None)])
def test_a_batch_size_outside_what_a_drain_holds_is_said(
    given: int, taken: int | None, caplog: pytest.LogCaptureFixture
):
    """A drain holds 100 to 10,000 records: 10 was raised to 100 without a word."""
    with caplog.at_level(logging.WARNING):
        TargetMParticle(config=target_config(batch_size_rows=given))
    said = [r.getMessage() for r in caplog.records if "batch_size_rows" in r.getMessage()]
    if taken is None:
        assert said == []
    else:
        assert said == [
            (
                f"batch_size_rows {given} is taken as {taken}: a drain holds 100 to 10000 records "
                "(a full request at least, and what a drain can hold at most)"
            )
        ]
