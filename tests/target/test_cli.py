"""The target as a process: exit codes, what reaches stdout/stderr, crash and resume."""

from __future__ import annotations

import base64
import collections
import json
import os
import pathlib
import signal
import subprocess
import sys

import pytest

from tests.support.eventsapi import EventsApiServer, Fault
from tests.support.files import REPO_ROOT
from tests.support.target import FIXTURES, SECRET, local_config, run_target_cli, singer_lines


def run_cli(config: dict, input_path: pathlib.Path, tmp_path: pathlib.Path):
    # DEBUG: the secret must stay out even at DEBUG
    return run_target_cli(tmp_path, config, input_path, loglevel="DEBUG")


@pytest.mark.parametrize("wrong", ["key", "secret"])
def test_refused_credentials_one_line_no_secret_non_zero(server, config, tmp_path, wrong):
    if wrong == "key":
        config["api_key"] = "someone-else"
    else:
        server.api_secret = "rotated"
    result = run_cli(config, FIXTURES / "users.singer", tmp_path)
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if "ERROR" in line]
    assert len(errors) == 1
    assert "HTTP 403" in errors[0]
    assert server.url in errors[0]
    # api_key is a secret setting too: named, never printed (issue 8)
    assert "api_key" in errors[0]
    assert config["api_key"] not in result.stderr
    assert "Traceback" not in result.stderr
    assert SECRET not in result.stderr
    assert SECRET not in result.stdout
    assert result.stdout == ""


def test_missing_auth_header_is_401(server):
    import requests  # noqa: PLC0415

    response = requests.post(server.url + "/bulkevents", data=b"[]", timeout=5)
    assert response.status_code == 401


def test_secret_never_written_on_success_or_dry_run(config, tmp_path):
    config["mappings"] = {"*": {"kind": "user"}}
    result = run_cli(config, FIXTURES / "users.singer", tmp_path)
    assert result.returncode == 0, result.stderr
    assert SECRET not in result.stderr + result.stdout
    config["dry_run"] = True
    result = run_cli(config, FIXTURES / "users.singer", tmp_path)
    assert result.returncode == 0, result.stderr
    dry = pathlib.Path(config["dry_run_path"]).read_text()
    assert SECRET not in dry + result.stderr + result.stdout
    assert len(dry.splitlines()) == 3


def test_a_server_that_echoes_the_credentials_gets_them_masked(tmp_path):
    """A 400 quoting the request's Authorization (a proxy's error page might) is logged
    and dead-lettered with the key, the secret and their Basic token masked."""
    token = base64.b64encode(f"test-key:{SECRET}".encode()).decode()

    def echo(batch):
        email = batch.get("user_identities", {}).get("email")
        return f"bad {email}; Authorization: Basic {token}; secret {SECRET}" if email else None

    with EventsApiServer(api_key="test-key", api_secret=SECRET, reject_if=echo) as server:
        config = local_config(server.url, tmp_path)
        config["mappings"] = {"*": {"kind": "user"}}
        config["on_invalid_record"] = "dead_letter"
        lines = singer_lines("people", [{"id": 1, "email": "a@x"}], ["id"])
        result = run_target_cli(tmp_path, config, "\n".join(lines) + "\n", loglevel="DEBUG")
    assert result.returncode == 0, result.stderr
    letters = pathlib.Path(config["dead_letter_path"]).read_text()
    assert "bad a@x; Authorization: Basic ***; secret ***" in letters
    for shown in (result.stderr, letters):
        assert token not in shown
        assert SECRET not in shown


def test_retries_exhausted_exit_non_zero_and_state_only_for_accepted(server, config, tmp_path):
    config["mappings"] = {"*": {"kind": "user"}}
    config["max_parallel_requests"] = 1
    server.script(Fault("pass"), times=2)
    server.fail_with(500, times=1000)
    result = run_cli(config, FIXTURES / "users.singer", tmp_path)
    assert result.returncode == 1
    states = [json.loads(line) for line in result.stdout.splitlines()]
    assert [s["bookmarks"]["users"]["id"] for s in states] == [100, 200]
    accepted = sorted(int(b["user_attributes"]["id"]) for b in server.batches())
    assert accepted == list(range(1, 201))
    assert "gave up on POST" in result.stderr
    assert "re-run to resume" in result.stderr


def _resume_input(fixture: pathlib.Path, state: dict | None, out: pathlib.Path) -> pathlib.Path:
    """What a tap would emit when started from ``state``: the schema, then what follows it."""
    lines = fixture.read_text(encoding="utf-8").splitlines()
    schema = [line for line in lines if '"SCHEMA"' in line]
    if state is None:
        out.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return out
    wanted = json.dumps({"type": "STATE", "value": state}, ensure_ascii=False, sort_keys=True)
    index = lines.index(wanted)
    out.write_text("\n".join(schema + lines[index + 1 :]) + "\n", encoding="utf-8")
    return out


def _keys(fixture: pathlib.Path, key) -> list[str]:
    records = [json.loads(line) for line in fixture.read_text().splitlines() if '"RECORD"' in line]
    return sorted(key(r["record"]) for r in records)


@pytest.mark.parametrize(
    ("fixture", "passes", "mappings", "key", "batch_keys"),
    [
        (
            "users_crash.singer",
            3,
            {"users": {"kind": "user"}},
            lambda r: str(r["id"]),
            lambda b: [b["user_attributes"]["id"]],
        ),
        (
            "tap_events.singer",
            1,
            {},
            lambda r: r["source_message_id"],
            lambda b: [e["data"]["source_message_id"] for e in b["events"]],
        ),
    ],
    ids=["users", "tap_events"],
)
def test_killed_mid_run_then_resumed_delivers_everything_exactly_once(  # noqa: PLR0913, PLR0917
    tmp_path, fixture, passes, mappings, key, batch_keys
):
    source = FIXTURES / fixture
    with EventsApiServer(api_key="test-key", api_secret=SECRET) as server:
        config = {
            "api_key": "test-key",
            "api_secret": SECRET,
            "api_url": server.url,
            "max_batches_per_second": 0,
            "max_parallel_requests": 1,
            "mappings": mappings,
        }
        config_file = tmp_path / "config.json"
        config_file.write_text(json.dumps(config))
        command = [sys.executable, "-m", "target_mparticle", "--config", str(config_file)]
        server.script(Fault("pass"), times=passes)
        server.script(Fault("accept_then_hang", delay_s=30))
        with source.open("rb") as stdin:
            process = subprocess.Popen(
                command, stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
            )
            try:
                hung = server.hanging.wait(timeout=60)
            finally:
                process.kill()  # SIGKILL: no handler runs, like a crash or OOM kill
                stdout, _ = process.communicate(timeout=30)
            assert hung
        states = [json.loads(line) for line in stdout.decode().splitlines()]
        assert states, "the target should have passed on at least one STATE"
        accepted_before = dict(server.accepted)
        covered = set()
        for batch in accepted_before.values():
            covered.update(batch_keys(batch))

        resume = _resume_input(source, states[-1], tmp_path / "in")
        server.clear_faults()
        with resume.open("rb") as stdin:
            rerun = subprocess.run(
                command, stdin=stdin, capture_output=True, timeout=120, check=False
            )
        assert rerun.returncode == 0, rerun.stderr.decode()[-2000:]

        delivered = [k for batch in server.batches() for k in batch_keys(batch)]
        assert server.rejected == []
        if fixture.startswith("users"):
            # User updates get fresh ids each run (items.UpdateIds): the batch accepted
            # during the crash is applied again, which changes nothing; every row
            # arrives, and only rows accepted before the crash arrive twice.
            assert sorted(set(delivered)) == _keys(source, key)
            again = {k for k, n in collections.Counter(delivered).items() if n > 1}
            assert again, "the batch accepted during the crash must be re-sent"
            assert again <= covered
            return
        assert sorted(delivered) == _keys(source, key)  # every record, exactly once
        assert server.duplicates, "the batch accepted during the crash must be re-sent"
        # Each duplicate is a batch accepted before the crash, re-sent with the same id.
        assert set(server.duplicates) <= set(accepted_before)


def test_sigterm_during_delivery_exits_at_once_without_a_newer_state(tmp_path):
    with EventsApiServer(api_key="test-key", api_secret=SECRET) as server:
        config = {
            "api_key": "test-key",
            "api_secret": SECRET,
            "api_url": server.url,
            "max_batches_per_second": 0,
            "max_parallel_requests": 1,
            "mappings": {"users": {"kind": "user"}},
        }
        config_file = tmp_path / "config.json"
        config_file.write_text(json.dumps(config))
        server.script(Fault("pass"), times=2)
        server.script(Fault("accept_then_hang", delay_s=30))
        with (FIXTURES / "users_crash.singer").open("rb") as stdin:
            process = subprocess.Popen(
                [sys.executable, "-m", "target_mparticle", "--config", str(config_file)],
                stdin=stdin,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            try:
                assert server.hanging.wait(timeout=60)
                process.send_signal(signal.SIGTERM)
                stdout, stderr = process.communicate(timeout=20)
            finally:
                process.kill()
                process.wait()
        assert process.returncode == 128 + signal.SIGTERM
        states = [json.loads(line) for line in stdout.decode().splitlines()]
        assert [s["bookmarks"]["users"]["id"] for s in states] == [100, 200]
        assert b"stopping without a new STATE" in stderr


#: Runs the target's CLI with a real SIGTERM sent to itself as the first drain starts
#: converting (from `log_record_count`, the first thing `process_batch` calls): after
#: the SDK took the records out of the sink, before `Delivery.deliver` counts them.
_SIGTERM_AT_DRAIN_START = """
import os, signal, sys
from target_mparticle import sdk_hooks
from target_mparticle.target import TargetMParticle

original = sdk_hooks.log_record_count

def log_record_count(sink):
    os.kill(os.getpid(), signal.SIGTERM)
    return original(sink)

sdk_hooks.log_record_count = log_record_count
sys.argv = ["target-mparticle", "--config", sys.argv[1]]
TargetMParticle.cli()
"""


def test_sigterm_as_a_drain_starts_writes_no_state_for_its_records(tmp_path):
    """The drain's records had left the sink but were not yet counted as delivering:
    the handler found nothing pending, wrote the STATE covering them, and exited 0."""
    records = [{"id": i, "email": f"u{i}@example.com"} for i in range(1, 51)]
    lines = [*singer_lines("users", records, ["id"]), json.dumps({"type": "STATE", "value": 50})]
    with EventsApiServer(api_key="test-key", api_secret=SECRET) as server:
        config = {**local_config(server.url, tmp_path), "mappings": {"users": {"kind": "user"}}}
        config_file = tmp_path / "config.json"
        config_file.write_text(json.dumps(config))
        done = subprocess.run(
            [sys.executable, "-c", _SIGTERM_AT_DRAIN_START, str(config_file)],
            input="\n".join(lines) + "\n",
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            cwd=REPO_ROOT,
        )
        accepted = len(server.batches())
    assert done.returncode == 128 + signal.SIGTERM, done.stderr[-2000:]
    assert done.stdout == ""  # no STATE: the next run sends the 50 records
    assert accepted == 0
    assert "stopping without a new STATE" in done.stderr


def test_dead_letters_are_on_disk_when_the_state_passing_them_is_written(tmp_path):
    """Rows refused while converting, with no drain in flight: the STATE after them
    was written while some of their dead letters still sat in the file's buffer, so
    a crash then lost them for good."""
    dead = tmp_path / "dead.jsonl"
    rows = [{"id": None, "note": "x" * 200} for _ in range(100)]  # no identity: refused
    lines = [*singer_lines("users", rows, []), json.dumps({"type": "STATE", "value": 100})]
    with EventsApiServer(api_key="test-key", api_secret=SECRET) as server:
        config = {
            **local_config(server.url, tmp_path),
            "on_invalid_record": "dead_letter",
            "batch_size_rows": 10,  # drains with nothing left to send; none in flight
            "mappings": {"users": {"kind": "user", "identities": {"customer_id": "id"}}},
        }
        config_file = tmp_path / "config.json"
        config_file.write_text(json.dumps(config))
        with subprocess.Popen(
            [sys.executable, "-m", "target_mparticle", "--config", str(config_file)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        ) as process:
            assert process.stdin is not None
            assert process.stdout is not None
            try:
                process.stdin.write("\n".join(lines) + "\n")
                process.stdin.flush()  # and kept open: the target is still running
                assert json.loads(process.stdout.readline()) == 100
                on_disk = dead.read_text().splitlines()
                process.stdin.close()
                assert process.wait(timeout=60) == 0
            finally:
                process.kill()
    assert len(on_disk) == 100


def test_stdout_closed_by_the_reader_is_one_line_and_exit_1(tmp_path):
    """Whatever reads the target's STATE stopped: say so, instead of click's silent exit 1."""
    records = [{"id": i, "email": f"u{i}@example.com"} for i in range(1, 151)]
    lines = [*singer_lines("users", records, ["id"]), json.dumps({"type": "STATE", "value": 150})]
    with EventsApiServer(api_key="test-key", api_secret=SECRET) as server:
        config = tmp_path / "config.json"
        mappings = {"users": {"kind": "user"}}
        config.write_text(json.dumps({**local_config(server.url, tmp_path), "mappings": mappings}))
        process = subprocess.Popen(
            [sys.executable, "-m", "target_mparticle", "--config", str(config)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**os.environ, "TARGET_MPARTICLE_LOGLEVEL": "WARNING"},
        )
        assert process.stdout is not None
        process.stdout.close()  # the reader is gone before the first STATE
        _, stderr = process.communicate(("\n".join(lines) + "\n").encode(), timeout=60)
        assert len(server.batches()) == 150  # delivered before the STATE failed
    assert process.returncode == 1
    lines = stderr.decode().strip().splitlines()
    # Python's warnings aside (singer-sdk's end-of-life notice on Python 3.10), one line.
    errors = [line for line in lines if "| py.warnings" not in line]
    assert len(errors) == 1
    assert "stdout was closed" in errors[0]
    assert "Traceback" not in stderr.decode()
