"""STATE volume grows with the files read, not their square, and never runs ahead."""

from __future__ import annotations

import json
import logging
import os
from typing import TYPE_CHECKING

from tap_mparticle import client as client_module
from tap_mparticle import cursor as cursor_module
from tests.support.cases import batch_line, event
from tests.support.tap import run_tap

if TYPE_CHECKING:
    from pathlib import Path

BASE = 1714521600  # 2024-05-01T00:00:00Z


def one_event_files(root: Path, count: int) -> None:
    """`count` one-event files one second apart, all inside the default look-back window."""
    for index in range(count):
        path = root / f"2024-05-01/f{index:05d}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(batch_line(event(f"e{index}")))
        os.utime(path, (BASE + index, BASE + index))


def sizes(messages: list[dict]) -> tuple[int, int]:
    state = sum(len(json.dumps(m)) for m in messages if m["type"] == "STATE")
    record = sum(len(json.dumps(m)) for m in messages if m["type"] == "RECORD")
    return state, record


def test_state_is_spaced_out_and_proportional_to_files(tmp_path: Path):
    one_event_files(tmp_path, 1_000)
    out = run_tap({"bucket_url": str(tmp_path)})
    assert len(out.records("events")) == 1_000
    # every 100 files (the history is under 1,000 entries), plus the end: ~10, not 1,000
    assert 8 <= len(out.states) <= 15
    state_bytes, record_bytes = sizes(out.messages)
    # One STATE per file used to carry the whole history: ~100 bytes per entry x
    # 1,000 entries x 1,000 files, about 150 times the record bytes here.
    assert state_bytes < 10 * record_bytes
    assert len(out.final_state["bookmarks"]["events"]["files_read"]) == 1_000


def test_state_never_runs_ahead_and_a_cut_run_resumes_exactly(tmp_path: Path):
    one_event_files(tmp_path, 350)
    full = run_tap({"bucket_url": str(tmp_path)})
    emitted: set[str] = set()
    cuts = []
    for index, message in enumerate(full.messages):
        if message["type"] == "RECORD":
            emitted.add(message["record"]["_sdc_source_file"].rsplit("/", 1)[-1])
        elif message["type"] == "STATE":
            read = message["value"]["bookmarks"].get("events", {}).get("files_read", {})
            assert {key.rsplit("/", 1)[-1] for key in read} <= emitted  # never ahead
            if 0 < len(read) < 350:
                cuts.append(index)
    assert cuts, "a STATE in the middle of the run"
    cut = cuts[0]
    before = [m["record"] for m in full.messages[:cut] if m["type"] == "RECORD"]
    resumed = run_tap({"bucket_url": str(tmp_path)}, state=full.messages[cut]["value"])
    names = sorted(r["event_name"] for r in before + resumed.records("events"))
    assert names == sorted(f"e{i}" for i in range(350))


def test_state_follows_elapsed_time_too(tmp_path: Path, monkeypatch):
    one_event_files(tmp_path, 20)
    monkeypatch.setattr(client_module, "STATE_EVERY_SECONDS", 0.0)  # "always due"
    out = run_tap({"bucket_url": str(tmp_path)})
    events_states = [s for s in out.states if "events" in s["bookmarks"]]
    assert len(events_states) >= 20


def test_history_floor_is_warned_once_per_run(tmp_path: Path, monkeypatch, caplog):
    one_event_files(tmp_path, 300)
    monkeypatch.setattr(cursor_module, "MAX_FILES_READ", 50)
    monkeypatch.setattr(client_module, "STATE_EVERY_FILES", 10)
    caplog.set_level(logging.WARNING)
    out = run_tap({"bucket_url": str(tmp_path)})
    assert len(out.records("events")) == 300
    warnings = [r for r in caplog.records if "inside the look-back window" in r.getMessage()]
    assert len(warnings) == 1
    final = out.final_state["bookmarks"]["events"]
    assert len(final["files_read"]) == 50
    assert final["files_read_floor"]
