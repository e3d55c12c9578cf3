from __future__ import annotations

import contextlib
import io
import json
import pathlib
import sys
import typing as t

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).parent))

from eventsapi_server import EventsApiServer

from target_mparticle.target import TargetMParticle

FIXTURES = pathlib.Path(__file__).parent / "fixtures"
SECRET = "s3cr3t-never-logged"


@pytest.fixture
def server() -> t.Iterator[EventsApiServer]:
    with EventsApiServer(api_key="test-key", api_secret=SECRET) as running:
        yield running


@pytest.fixture
def config(server: EventsApiServer, tmp_path: pathlib.Path) -> dict[str, t.Any]:
    return {
        "api_key": "test-key",
        "api_secret": SECRET,
        "api_url": server.url,
        "max_batches_per_second": 0,
        "backoff_base_seconds": 0.01,
        "backoff_max_seconds": 0.05,
        "max_retries": 3,
        "dead_letter_path": str(tmp_path / "dead.jsonl"),
        "dry_run_path": str(tmp_path / "dry.jsonl"),
    }


class Run(t.NamedTuple):
    states: list[dict[str, t.Any]]
    error: BaseException | None
    target: TargetMParticle


def run_target(
    config: dict[str, t.Any],
    lines: t.Iterable[str] | str | pathlib.Path,
) -> Run:
    """Run the target in-process; STATE lines are what it printed to stdout."""
    if isinstance(lines, pathlib.Path):
        text = lines.read_text(encoding="utf-8")
    elif isinstance(lines, str):
        text = (FIXTURES / lines).read_text(encoding="utf-8")
    else:
        text = "\n".join(lines) + "\n"
    out = io.StringIO()
    error: BaseException | None = None
    target = TargetMParticle(config=config)
    with contextlib.redirect_stdout(out):
        try:
            target.listen(io.StringIO(text))
        except Exception as exc:  # noqa: BLE001 - returned for the test to inspect
            error = exc
    states = [json.loads(line) for line in out.getvalue().splitlines() if line.strip()]
    return Run(states, error, target)


def singer_lines(stream: str, records: list[dict[str, t.Any]], key: list[str] | None = None):
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
