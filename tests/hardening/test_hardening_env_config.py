"""`--config ENV`: settings from environment variables and a `.env`, each checked.

Run as the console entry points in a subprocess, from a working directory of the
test's own, with a clean environment holding only what each test sets.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import typing as t

from mparticle_facts.env_config import environment_config
from tests.support.files import error_lines

if t.TYPE_CHECKING:
    from pathlib import Path

USER_SCHEMA = {
    "type": "SCHEMA",
    "stream": "users",
    "schema": {"properties": {"e": {"type": "string"}}},
    "key_properties": [],
}
USER_LINES = (
    json.dumps(USER_SCHEMA)
    + "\n"
    + json.dumps({"type": "RECORD", "stream": "users", "record": {"e": "a@b.c"}})
    + "\n"
)


def messages(stderr: str) -> list[str]:
    """The ERROR lines' messages, without time, level and logger."""
    return [line.rsplit(" | ", 1)[-1] for line in error_lines(stderr)]


def run_env(
    module: str, cwd: Path, variables: dict[str, str], stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if "MPARTICLE" not in key}
    env.update(variables)
    return subprocess.run(
        [sys.executable, "-m", module, "--config", "ENV"],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=120,
        check=False,
    )


def target_env(tmp_path: Path, **more: str) -> dict[str, str]:
    return {
        "TARGET_MPARTICLE_API_KEY": "env-key-1234",
        "TARGET_MPARTICLE_API_SECRET": "env-secret-1234",
        "TARGET_MPARTICLE_DRY_RUN": "true",
        "TARGET_MPARTICLE_DRY_RUN_PATH": str(tmp_path / "dry.jsonl"),
        "TARGET_MPARTICLE_MAPPINGS": json.dumps(
            {"users": {"kind": "user", "identities": {"email": "e"}}}
        ),
        **more,
    }


def test_numbers_and_booleans_from_the_environment_are_read_as_such(tmp_path):
    # A number setting stayed text, which the SDK's own check refused.
    variables = target_env(
        tmp_path,
        TARGET_MPARTICLE_MAX_BATCHES_PER_SECOND="67.5",
        TARGET_MPARTICLE_REQUEST_TIMEOUT="30",
        TARGET_MPARTICLE_MAX_PARALLEL_REQUESTS="3",
        TARGET_MPARTICLE_DRY_RUN="Yes",
    )
    done = run_env("target_mparticle", tmp_path, variables, USER_LINES)
    assert done.returncode == 0, done.stderr[-2000:]
    (body,) = [
        json.loads(line)["body"] for line in (tmp_path / "dry.jsonl").read_text().splitlines()
    ]
    assert body[0]["user_identities"] == {"email": "a@b.c"}


def test_each_unreadable_variable_is_one_line_naming_it(tmp_path):
    variables = target_env(
        tmp_path,
        TARGET_MPARTICLE_DRY_RUN="ture",  # read as false, it made a real run
        TARGET_MPARTICLE_MAX_PARALLEL_REQUESTS="1.5",  # a bare int() traceback
        TARGET_MPARTICLE_MAX_BATCHES_PER_SECOND="fast",
        TARGET_MPARTICLE_MAPPINGS='{"users": {"kind": "user", "secret-ish": ',
    )
    done = run_env("target_mparticle", tmp_path, variables, USER_LINES)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert sorted(messages(done.stderr)) == [
        (
            "TARGET_MPARTICLE_DRY_RUN (setting dry_run): 'ture' is not one of true, 1, yes, on, "
            "false, 0, no, off"
        ),
        "TARGET_MPARTICLE_MAPPINGS (setting mappings): is not a JSON object",
        (
            "TARGET_MPARTICLE_MAX_BATCHES_PER_SECOND (setting max_batches_per_second): 'fast' is "
            "not a number"
        ),
        (
            "TARGET_MPARTICLE_MAX_PARALLEL_REQUESTS (setting max_parallel_requests): '1.5' is not "
            "a whole number"
        ),
    ]
    assert "secret-ish" not in done.stderr
    assert not (tmp_path / "dry.jsonl").exists()
    tap = run_env(
        "tap_mparticle",
        tmp_path,
        {"TAP_MPARTICLE_BUCKET_URL": str(tmp_path), "TAP_MPARTICLE_LOOKBACK_WINDOW_MINUTES": "1.5"},
    )
    assert tap.returncode == 1
    assert "Traceback" not in tap.stderr
    assert messages(tap.stderr) == [
        (
            "TAP_MPARTICLE_LOOKBACK_WINDOW_MINUTES (setting lookback_window_minutes): '1.5' is not "
            "a whole number"
        )
    ]


def test_a_dotenv_is_read_from_the_working_directory_and_never_overrides(tmp_path):
    """The SDK looked upwards from its own install for a `.env`, and let it win over
    the variables actually set: another workspace's credentials, and exit 0."""
    (tmp_path / ".env").write_text(
        "TARGET_MPARTICLE_API_KEY=dotenv-key-1234\n"
        "TARGET_MPARTICLE_MAX_BATCHES_PER_SECOND=not a number\n"
        f"TARGET_MPARTICLE_DRY_RUN_PATH={tmp_path / 'from-dotenv.jsonl'}\n"
    )
    variables = target_env(tmp_path, TARGET_MPARTICLE_MAX_BATCHES_PER_SECOND="50")
    del variables["TARGET_MPARTICLE_DRY_RUN_PATH"]
    done = run_env("target_mparticle", tmp_path, variables, USER_LINES)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "from-dotenv.jsonl").exists()  # read where nothing else set it
    assert f"Settings also read from {tmp_path / '.env'}: TARGET_MPARTICLE_DRY_RUN_PATH" in (
        done.stderr
    )
    # From a sub-folder, the parent's `.env` is not read.
    sub = tmp_path / "sub"
    sub.mkdir()
    done = run_env("target_mparticle", sub, target_env(sub), USER_LINES)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (sub / "dry.jsonl").exists()
    assert "Settings also read" not in done.stderr


def test_a_misspelt_variable_is_said_and_only_settings_are_listed_as_read(tmp_path):
    """`TARGET_MPARTICLE_DRYRUN=true` was ignored in silence: a real run."""
    (tmp_path / ".env").write_text(
        "TARGET_MPARTICLE_DRY_RUN=true\nTARGET_MPARTICLE_MAX_RETRIS=3\nTARGET_MPARTICLE_LOGLEVEL=info\n"
    )
    variables = target_env(tmp_path, TARGET_MPARTICLE_DRYRUN="true")
    del variables["TARGET_MPARTICLE_DRY_RUN"]
    done = run_env("target_mparticle", tmp_path, variables, USER_LINES)
    assert done.returncode == 0, done.stderr[-2000:]
    warned = [line.rsplit(" | ", 1)[-1] for line in done.stderr.splitlines() if "| WARNING" in line]
    assert (
        "unknown variable 'TARGET_MPARTICLE_DRYRUN' is ignored (did you mean "
        "'TARGET_MPARTICLE_DRY_RUN'?)"
    ) in warned
    assert (
        "unknown variable 'TARGET_MPARTICLE_MAX_RETRIS' is ignored (did you mean "
        "'TARGET_MPARTICLE_MAX_RETRIES'?)"
    ) in warned
    assert not [line for line in warned if "LOGLEVEL" in line]
    assert f"Settings also read from {tmp_path / '.env'}: TARGET_MPARTICLE_DRY_RUN\n" in (
        done.stderr.replace("\r", "") + "\n"
    )


def test_a_dotenv_that_is_not_utf8_is_one_line(tmp_path):
    (tmp_path / ".env").write_bytes(b"TARGET_MPARTICLE_API_KEY=\xff\n")
    done = run_env("target_mparticle", tmp_path, target_env(tmp_path), USER_LINES)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    (line,) = messages(done.stderr)
    assert line.startswith(f"{tmp_path / '.env'} cannot be read as a .env file (")


def test_types_given_as_any_of_and_null_for_a_nullable_setting(tmp_path, monkeypatch):
    schema = {
        "properties": {
            "limit": {"anyOf": [{"type": "integer"}, {"type": "null"}]},
            "ratio": {"oneOf": [{"type": "number"}]},
            "flag": {"type": ["boolean", "null"]},
            "name": {"type": ["string", "null"]},
            "tags": {"type": "array", "items": {"type": "string"}},
        }
    }
    for name, value in {
        "limit": "5",
        "ratio": "0.5",
        "flag": "null",
        "name": "null",
        "tags": "a, b,,c",
    }.items():
        monkeypatch.setenv(f"PLUGIN_{name.upper()}", value)
    found = environment_config(schema, "PLUGIN_", logging.getLogger("t"), tmp_path / ".env")
    assert found == {
        "limit": 5,
        "ratio": 0.5,
        "flag": None,
        "name": "null",
        "tags": ["a", "b", "c"],
    }


def test_a_dotenv_line_that_cannot_be_parsed_is_one_line_naming_it(tmp_path):
    """python-dotenv skipped it with a warning naming no file or variable: the setting
    on it (here start_date) went unread and the run went on."""
    (tmp_path / ".env").write_text(
        f'TAP_MPARTICLE_BUCKET_URL={tmp_path}\nTAP_MPARTICLE_START_DATE="2026-11-01T00:00:00Z\n'
    )
    done = run_env("tap_mparticle", tmp_path, {})
    assert done.returncode == 1
    assert messages(done.stderr) == [
        f"{tmp_path / '.env'} line 2: cannot be read (a quote left open?)"
    ]
    assert "python-dotenv could not parse" not in done.stderr
