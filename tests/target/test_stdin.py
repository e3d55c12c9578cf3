"""How the target reads standard input: in large chunks, yet line by line from a pipe.

The pipe tests keep the tap's side open, as a tap that pauses between files does, and
wait (with a deadline, not a sleep) for what must come out meanwhile.
"""

from __future__ import annotations

import io
import json
import select
import subprocess
import sys
import time
import typing as t

from target_mparticle.preflight import STDIN_READ_BYTES, stdin_bytes
from tests.support.eventsapi import EventsApiServer
from tests.support.target import SECRET, local_config, singer_lines

if t.TYPE_CHECKING:
    from pathlib import Path

# In a child process: read one line of stdin through `stdin_bytes`, report how much
# the reader holds after that one read, then close it and check fd 0 is still open.
PROBE = """
import os, sys
from target_mparticle.preflight import stdin_bytes
reader = stdin_bytes()
first = reader.readline()
held = len(reader.peek())
reader.close()
os.fstat(0)
print(len(first), held, sys.stdin.buffer.closed)
"""


def test_stdin_is_read_in_large_chunks_and_left_open(tmp_path):
    line = b'{"type": "STATE", "value": {"n": 1}}\n'
    source = tmp_path / "input.singer"
    source.write_bytes(line * (3 * STDIN_READ_BYTES // len(line)))
    with source.open("rb") as stdin:
        done = subprocess.run(
            [sys.executable, "-c", PROBE],
            stdin=stdin,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
    first, held, closed = done.stdout.split()
    assert int(first) == len(line)
    # One read filled the buffer: what is left of a 1 MiB chunk, not of a 4 KiB one.
    assert int(held) == STDIN_READ_BYTES - len(line)
    assert closed == "False"


def test_stdin_without_a_descriptor_is_read_as_it_is(monkeypatch):
    fake = io.TextIOWrapper(io.BytesIO(b'{"type": "STATE", "value": {}}\n'))
    monkeypatch.setattr(sys, "stdin", fake)
    assert stdin_bytes() is fake.buffer


class PipedTarget:
    """target-mparticle as a process whose stdin stays open until `finish`."""

    def __init__(self, server: EventsApiServer, tmp_path: Path, **settings: t.Any) -> None:
        config = tmp_path / "config.json"
        mappings = {"users": {"kind": "user"}}
        config.write_text(
            json.dumps({**local_config(server.url, tmp_path), "mappings": mappings, **settings})
        )
        self.process = subprocess.Popen(
            [sys.executable, "-m", "target_mparticle", "--config", str(config)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            bufsize=0,  # unbuffered: `select` then sees every line not yet read
        )

    def send(self, lines: t.Iterable[str]) -> None:
        assert self.process.stdin is not None
        data = "".join(f"{line}\n" for line in lines).encode()
        while data:
            data = data[self.process.stdin.write(data) or 0 :]

    def next_state(self) -> t.Any:
        """The next STATE the target writes while its input is still open."""
        assert self.process.stdout is not None
        ready, _, _ = select.select([self.process.stdout], [], [], 60)
        assert ready, "no STATE came out while the input stayed open"
        return json.loads(self.process.stdout.readline())

    def finish(self, lines: t.Iterable[str] = ()) -> list[t.Any]:
        """Send the last lines, close the input; the STATEs written after that."""
        stdout, _ = self.process.communicate(
            "".join(f"{line}\n" for line in lines).encode(), timeout=60
        )
        assert self.process.returncode == 0
        return [json.loads(line) for line in stdout.decode().splitlines()]

    def __enter__(self) -> PipedTarget:  # noqa: PYI034 - never subclassed
        return self

    def __exit__(self, *_: object) -> None:
        self.process.kill()
        self.process.wait()
        for pipe in (self.process.stdin, self.process.stdout):
            if pipe is not None:
                pipe.close()


def state(value: t.Any) -> str:
    return json.dumps({"type": "STATE", "value": value})


def users(first: int, last: int) -> list[dict[str, t.Any]]:
    return [{"id": i, "email": f"u{i}@example.com"} for i in range(first, last + 1)]


def test_a_pipe_is_read_as_lines_arrive_not_once_a_chunk_is_full(tmp_path):
    """Far less than one chunk is written before the STATE must come back."""
    schema, *rows = singer_lines("users", users(1, 150), ["id"])
    with EventsApiServer(api_key="test-key", api_secret=SECRET) as server:
        with PipedTarget(server, tmp_path) as target:
            target.send([schema, state({"at": 0})])
            assert target.next_state() == {"at": 0}
            assert target.finish([*rows, state({"at": 150})]) == [{"at": 150}]
        assert len(server.batches()) == 150


def test_a_delivered_drains_state_is_passed_on_while_the_tap_pauses(tmp_path):
    """The STATE after records mParticle accepted does not wait for the tap's next line."""
    schema, *first = singer_lines("users", users(1, 150), ["id"])
    _, *second = singer_lines("users", users(151, 300), ["id"])
    with EventsApiServer(api_key="test-key", api_secret=SECRET) as server:
        with PipedTarget(server, tmp_path) as target:
            target.send([schema, *first, state({"at": 150})])
            assert target.next_state() == {"at": 150}
            assert len(server.batches()) == 150  # passed on only after acceptance
            target.send([*second, state({"at": 300})])
            assert target.next_state() == {"at": 300}
            assert target.finish() == []
        assert len(server.batches()) == 300


def test_a_drain_with_refusals_has_its_dead_letters_written_before_its_state(tmp_path):
    """A refused batch is dead-lettered (and synced) before the STATE after it goes out."""
    schema, *rows = singer_lines("users", users(1, 150), ["id"])
    dead = tmp_path / "dead.jsonl"  # local_config's dead_letter_path

    def refuse(batch: dict[str, t.Any]) -> str | None:
        return "refused by test" if batch["user_identities"]["email"] == "u37@example.com" else None

    with (
        EventsApiServer(api_key="test-key", api_secret=SECRET, reject_if=refuse) as server,
        PipedTarget(server, tmp_path, on_invalid_record="dead_letter") as target,
    ):
        target.send([schema, *rows, state({"at": 150})])
        assert target.next_state() == {"at": 150}
        # Read the moment the STATE came out, with the tap's side still open.
        assert [json.loads(line)["record"]["id"] for line in dead.read_text().splitlines()] == [37]
        assert len(server.batches()) == 149
        assert target.finish() == []


def test_dead_letters_that_cannot_be_written_stop_before_any_later_state(tmp_path):
    """The sender cannot write a drain's dead letter: no STATE goes out after it.

    The tap's side stays open, so it is the sender thread that settles both drains.
    Once the first failed, the second (answered later) must not have its STATE
    written past it; the run then ends with one line about the dead-letter file.
    """
    _, *first = singer_lines("users", users(1, 150), ["id"])
    schema, *second = singer_lines("users", users(151, 300), ["id"])
    letters = tmp_path / "letters"

    def refuse(batch: dict[str, t.Any]) -> str | None:
        return "refused by test" if batch["user_identities"]["email"] == "u37@example.com" else None

    with (
        EventsApiServer(api_key="test-key", api_secret=SECRET, reject_if=refuse) as server,
        PipedTarget(
            server,
            tmp_path,
            on_invalid_record="dead_letter",
            dead_letter_path=str(letters / "dead.jsonl"),
        ) as target,
    ):
        target.send([schema, state({"at": 0})])
        assert target.next_state() == {"at": 0}  # started: the path was checked, and fine
        letters.write_text("a file where the dead letters' directory should go")
        target.send([*first, state({"at": 150}), *second, state({"at": 300})])
        # Both drains answered (or the run already stopped, if the first failed to
        # settle before the second was queued).
        wait_for(lambda: len(server.batches()) == 299 or target.process.poll() is not None)
        stdout, _ = target.process.communicate(timeout=60)
    assert target.process.returncode == 1
    assert stdout == b""  # neither STATE: the second must not pass the first


def wait_for(condition: t.Callable[[], bool]) -> None:
    """Poll `condition` until it holds (a deadline, not a timing assertion)."""
    deadline = time.monotonic() + 60
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)
