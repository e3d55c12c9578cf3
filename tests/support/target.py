"""Run target-mparticle in-process, and build its Singer input.

`run_target` takes a fixture name, a file, lines, or an `Input` whose hook fires as the
target reads; the tap-shaped `events` helpers (`event_record`, `line_messages`, ...)
generate what tap-mparticle emits, line by line, for the exactly-once tests.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import pathlib
import subprocess
import sys
import typing as t

from target_mparticle.target import TargetMParticle

if t.TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator

FIXTURES = pathlib.Path(__file__).resolve().parents[1] / "target" / "fixtures"
SECRET = "s3cr3t-never-logged"


def local_config(api_url: str, tmp_path: pathlib.Path) -> dict[str, t.Any]:
    """A target config for a local stand-in: unpaced, short retries, files in `tmp_path`."""
    return {
        "api_key": "test-key",
        "api_secret": SECRET,
        "api_url": api_url,
        "max_batches_per_second": 0,
        "backoff_base_seconds": 0.01,
        "backoff_max_seconds": 0.05,
        "max_retries": 3,
        "dead_letter_path": str(tmp_path / "dead.jsonl"),
        "dry_run_path": str(tmp_path / "dry.jsonl"),
    }


def dry_run_dead_letters(tmp_path: pathlib.Path) -> dict[str, t.Any]:
    """A dry run whose invalid records go to dead letters, both files in `tmp_path`."""
    return {
        "dry_run": True,
        "dry_run_path": str(tmp_path / "dry.jsonl"),
        "on_invalid_record": "dead_letter",
        "dead_letter_path": str(tmp_path / "dead.jsonl"),
    }


FILE = "s3://drop/2024-05-01/app_20240501000000000000_1.txt"
NOW_MS = 1_714_521_600_000
KEY = ["_sdc_source_file", "_sdc_source_lineno", "_sdc_event_index"]


def event_record_fields() -> list[str]:
    """The fields of `event_record`."""
    return list(event_record(1, 0))


def event_record(lineno: int, index: int) -> dict[str, t.Any]:
    """Event `index` of batch line `lineno`, shaped as tap-mparticle emits it."""
    return {
        "event_type": "custom_event",
        "event_name": "E",
        "timestamp_unixtime_ms": NOW_MS,
        "source_message_id": f"m{lineno}-{index}",
        "mpid": 1000 + lineno,
        "user_identities": {"customer_id": f"c{lineno}"},
        "data": {"event_name": "E", "custom_event_type": "other"},
        "_sdc_source_file": FILE,
        "_sdc_source_lineno": lineno,
        "_sdc_event_index": index,
    }


SCHEMA = json.dumps(
    {
        "type": "SCHEMA",
        "stream": "events",
        "schema": {"type": "object", "properties": {f: {} for f in event_record_fields()}},
        "key_properties": KEY,
    }
)


def line_messages(lineno: int, events: int, first: int = 0) -> list[str]:
    """RECORD messages for events `first` .. `first + events - 1` of one line."""
    return [
        json.dumps({"type": "RECORD", "stream": "events", "record": event_record(lineno, i)})
        for i in range(first, first + events)
    ]


def state_message(lineno: int) -> str:
    """The STATE tap-mparticle would write once line `lineno` (and all before) were emitted."""
    return json.dumps({"type": "STATE", "value": {"bookmarks": {"events": {"line": lineno}}}})


class Input:
    """An input stream that calls `hook(n)` before handing out its n-th line (0-based)."""

    def __init__(self, lines: Iterable[str], hook: Callable[[int], None] | None = None) -> None:
        self._lines = list(lines)
        self._hook = hook

    def __iter__(self) -> Iterator[str]:
        for number, line in enumerate(self._lines):
            if self._hook is not None:
                self._hook(number)
            yield line + "\n"


class Run(t.NamedTuple):
    """What an in-process target run left: its STATE lines, the error it stopped on, itself."""

    states: list[dict[str, t.Any]]
    error: BaseException | None
    target: TargetMParticle


def run_target(
    config: dict[str, t.Any],
    lines: Input | t.Iterable[str] | str | pathlib.Path,
) -> Run:
    """Run the target in-process; STATE lines are what it printed to stdout.

    `lines` is a file, the name of a file in tests/target/fixtures, an `Input` (read
    lazily, so its hook fires mid-run), or Singer lines without their newlines.
    """
    source: t.Iterable[str]
    if isinstance(lines, pathlib.Path):
        source = io.StringIO(lines.read_text(encoding="utf-8"))
    elif isinstance(lines, str):
        source = io.StringIO((FIXTURES / lines).read_text(encoding="utf-8"))
    elif isinstance(lines, Input):
        source = lines
    else:
        source = io.StringIO("\n".join(lines) + "\n")
    out = io.StringIO()
    error: BaseException | None = None
    target = TargetMParticle(config=config)
    with contextlib.redirect_stdout(out):
        try:
            target.listen(source)  # type: ignore[arg-type]
        except Exception as exc:  # noqa: BLE001 - returned for the test to inspect
            error = exc
    states = [json.loads(line) for line in out.getvalue().splitlines() if line.strip()]
    return Run(states, error, target)


def target_states(config: dict[str, t.Any], lines: Input) -> list[dict[str, t.Any]]:
    """Run the target in-process and re-raise what stopped it; the STATEs it wrote."""
    run = run_target(config, lines)
    if run.error is not None:
        raise run.error
    return run.states


def run_target_cli(
    tmp_path: pathlib.Path,
    config: dict[str, t.Any] | str,
    stdin: str | bytes | pathlib.Path = "",
    *,
    loglevel: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run the console entry point in a subprocess: real exit codes and stderr.

    `config` is written as JSON (a string is written as is, for malformed files);
    `stdin` is Singer text, raw bytes (for input that is not UTF-8) or a file to pipe
    in; `loglevel` sets TARGET_MPARTICLE_LOGLEVEL.
    """
    config_file = tmp_path / "target-config.json"
    config_file.write_text(config if isinstance(config, str) else json.dumps(config))
    env = dict(os.environ)
    if loglevel is not None:
        env["TARGET_MPARTICLE_LOGLEVEL"] = loglevel
    raw = stdin.read_bytes() if isinstance(stdin, pathlib.Path) else stdin
    done = subprocess.run(
        [sys.executable, "-m", "target_mparticle", "--config", str(config_file)],
        input=raw.encode("utf-8") if isinstance(raw, str) else raw,
        capture_output=True,
        env=env,
        timeout=120,
        check=False,
    )
    return subprocess.CompletedProcess(
        done.args,
        done.returncode,
        done.stdout.decode("utf-8", "replace"),
        done.stderr.decode("utf-8", "replace"),
    )


def singer_lines(
    stream: str, records: list[dict[str, t.Any]], key: list[str] | None = None
) -> Iterator[str]:
    """A SCHEMA message taking every field of `records`, then one RECORD each."""
    properties = {k: {} for r in records for k in r}
    yield json.dumps(
        {
            "type": "SCHEMA",
            "stream": stream,
            "schema": {"type": "object", "properties": properties},
            "key_properties": key or [],
        }
    )
    for record in records:
        yield json.dumps({"type": "RECORD", "stream": stream, "record": record})


def lines_sent(batches: list[dict[str, t.Any]]) -> dict[int, list[list[str]]]:
    """Per source line, the event ids of each batch that carried it."""
    sent: dict[int, list[list[str]]] = {}
    for batch in batches:
        ids = [e["data"]["source_message_id"] for e in batch["events"]]
        lineno = int(ids[0][1:].split("-")[0])
        assert all(i.startswith(f"m{lineno}-") for i in ids), "one line per batch"
        sent.setdefault(lineno, []).append(ids)
    return sent
