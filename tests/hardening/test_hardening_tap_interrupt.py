"""SIGINT or SIGTERM stops the tap with one ERROR line, no new STATE and exit 128 + signal.

A real signal reaches the console script while a reader that has stopped reading
keeps it blocked on a full pipe (the "slow reader" of a pipeline), in the middle of
writing a block: the signal goes out once a STATE line has arrived and the tap sleeps
in a pipe write (its /proc wchan), and the drop is large enough that the tap cannot
finish before it. No timing is asserted.
"""

from __future__ import annotations

import json
import pathlib
import signal
import subprocess
import sys
import time
import typing as t

import pytest

from scripts.generate_drop import generate_drop
from tests.support.files import error_lines
from tests.support.tap import run_tap

if t.TYPE_CHECKING:
    from pathlib import Path


def _whole_messages(raw: bytes) -> list[dict[str, t.Any]]:
    """Messages of a cut-short output, line by line."""
    lines = raw.split(b"\n")
    return [json.loads(line) for line in lines[:-1] if line.strip()]


def _wait_until_blocked_writing(pid: int) -> None:
    """Wait (polling, no timing asserted) until the process sleeps in a pipe write."""
    wchan = pathlib.Path(f"/proc/{pid}/wchan")
    deadline = time.monotonic() + 60
    while "pipe_write" not in wchan.read_text():
        assert time.monotonic() < deadline, "the tap never blocked on the full pipe"
        time.sleep(0.01)


def _key(record: dict[str, t.Any]) -> str:
    return json.dumps(record, sort_keys=True)


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_stops_with_an_error_and_no_state_past_the_records(
    tmp_path: Path, signum: signal.Signals, code: int
):
    root = tmp_path / "drop"
    # 300 files of 10 events: about 4 MB of records, a STATE every 100 files.
    generate_drop(root, events=3000, seed=5, per_file=10)
    config = {"bucket_url": str(root)}
    config_file = tmp_path / "config.json"
    config_file.write_text(json.dumps(config))
    stderr_file = tmp_path / "stderr.log"
    with (
        stderr_file.open("wb") as stderr,
        subprocess.Popen(
            [sys.executable, "-m", "tap_mparticle", "--config", str(config_file)],
            stdout=subprocess.PIPE,
            stderr=stderr,
        ) as tap,
    ):
        assert tap.stdout is not None
        head = b""
        while b'"type":"STATE"' not in head:
            line = tap.stdout.readline()
            assert line, "the tap ended before its first STATE"
            head += line
        # About 2.8 MB are still to come; the pipe holds 64 KiB, so the tap waits on it,
        # in the middle of writing a block: the signal lands there.
        _wait_until_blocked_writing(tap.pid)
        tap.send_signal(signum)
        rest = tap.stdout.read()
        returncode = tap.wait(timeout=60)
    log = stderr_file.read_text(encoding="utf-8")

    assert returncode == code, log
    (error,) = error_lines(log)
    assert signum.name in error
    assert "the next run resumes from that STATE" in error
    assert "Gracefully shutting down" not in log
    assert "Traceback" not in log

    # A signal in the middle of writing a block waits for its end: no line cut in two,
    # which a loader (target-jsonl, target-mparticle) takes for malformed input.
    assert (head + rest).endswith(b"\n")
    messages = _whole_messages(head + rest)
    assert len(messages) == (head + rest).count(b"\n")
    last_state_at = max(i for i, m in enumerate(messages) if m["type"] == "STATE")
    covered = [m["record"] for m in messages[:last_state_at] if m["type"] == "RECORD"]
    assert len(covered) < 3000  # the run was cut short
    # The last STATE written vouches only for records before it: resuming from it
    # yields every record the drop holds.
    resumed = run_tap(config, state=messages[last_state_at]["value"])
    everything = run_tap(config)
    got = {_key(r) for r in covered} | {_key(r) for r in resumed.records("events")}
    assert {_key(r) for r in everything.records("events")} <= got
