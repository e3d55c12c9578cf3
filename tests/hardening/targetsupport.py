"""Singer input of tap-mparticle `events` lines, generated, and an in-process target run."""

from __future__ import annotations

import contextlib
import io
import json
import typing as t

from target_mparticle.target import TargetMParticle

if t.TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator

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


def run(config: dict[str, t.Any], lines: Input) -> list[dict[str, t.Any]]:
    """Run the target in-process; the STATEs it wrote (a target writes the bare value)."""
    out = io.StringIO()
    target = TargetMParticle(config=config)
    with contextlib.redirect_stdout(out):
        target.listen(lines)  # type: ignore[arg-type]
    return [json.loads(line) for line in out.getvalue().splitlines() if line.strip()]


def lines_sent(batches: list[dict[str, t.Any]]) -> dict[int, list[list[str]]]:
    """Per source line, the event ids of each batch that carried it."""
    sent: dict[int, list[list[str]]] = {}
    for batch in batches:
        ids = [e["data"]["source_message_id"] for e in batch["events"]]
        lineno = int(ids[0][1:].split("-")[0])
        assert all(i.startswith(f"m{lineno}-") for i in ids), "one line per batch"
        sent.setdefault(lineno, []).append(ids)
    return sent
