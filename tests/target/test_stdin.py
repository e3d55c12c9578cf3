"""How the target reads standard input: in large chunks, yet line by line from a pipe."""

from __future__ import annotations

import io
import json
import select
import subprocess
import sys

from target_mparticle.preflight import STDIN_READ_BYTES, stdin_bytes
from tests.support.eventsapi import EventsApiServer
from tests.support.target import SECRET, singer_lines

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


def test_a_pipe_is_read_as_lines_arrive_not_once_a_chunk_is_full(tmp_path):
    """A STATE written while the tap's pipe stays open is read and passed on meanwhile.

    Far less than one chunk is written before the test waits for the STATE to come
    back on the target's stdout: a reader that waited to fill its buffer would hang.
    """
    records = [{"id": i, "email": f"u{i}@example.com"} for i in range(1, 151)]
    schema, *rows = singer_lines("users", records, ["id"])
    with EventsApiServer(api_key="test-key", api_secret=SECRET) as server:
        config = tmp_path / "config.json"
        config.write_text(
            json.dumps(
                {
                    "api_key": "test-key",
                    "api_secret": SECRET,
                    "api_url": server.url,
                    "max_batches_per_second": 0,
                    "mappings": {"users": {"kind": "user"}},
                }
            )
        )
        process = subprocess.Popen(
            [sys.executable, "-m", "target_mparticle", "--config", str(config)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        try:
            assert process.stdin is not None
            assert process.stdout is not None
            state = json.dumps({"type": "STATE", "value": {"at": 0}})
            process.stdin.write(f"{schema}\n{state}\n".encode())
            process.stdin.flush()
            ready, _, _ = select.select([process.stdout], [], [], 60)
            assert ready, "no STATE while the pipe was open: the reader waited for more"
            assert json.loads(process.stdout.readline()) == {"at": 0}
            rows.append(json.dumps({"type": "STATE", "value": {"at": 150}}))
            stdout, _ = process.communicate(("\n".join(rows) + "\n").encode(), timeout=60)
        finally:
            process.kill()
            process.wait()
    assert process.returncode == 0
    assert [json.loads(s) for s in stdout.decode().splitlines()] == [{"at": 150}]
    assert len(server.batches()) == 150
