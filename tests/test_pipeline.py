"""tap-mparticle -> target-mparticle in one process, against snapshots of what was sent.

The regression net for the pair: the bundled sample drop (copied, mtimes pinned) is
read with `events` selected and fed straight into the target, which posts to the local
Events API stand-in, all at a frozen clock. Every request body the stand-in received
and the final STATE are compared byte for byte with files in tests/snapshots/.
Any change to what reaches mParticle shows up as a diff there.

Regenerate after an intended change: `UPDATE_SNAPSHOTS=1 make pytest` (or the one test),
then review the diff of tests/snapshots/ like code.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
from typing import TYPE_CHECKING, Any

import time_machine

from scripts.capture_state import pin_mtimes
from tests.support.files import REPO_ROOT, SAMPLE_DROP
from tests.support.tap import run_tap
from tests.support.target import run_target

if TYPE_CHECKING:
    from tests.support.eventsapi import EventsApiServer

SNAPSHOTS = REPO_ROOT / "tests" / "snapshots"
FROZEN_AT = dt.datetime(2024, 5, 3, 12, 0, tzinfo=dt.timezone.utc)


def first_request_id(body: Any) -> str:
    """The `source_request_id` of a body's first batch (a bulk body is a list)."""
    batch = body[0] if isinstance(body, list) else body
    return str(batch["source_request_id"])


def snapshot_text(server: EventsApiServer) -> str:
    """Accepted request bodies as received, one per line, ordered by source_request_id.

    Arrival order depends on thread timing; the ids are content-derived, so this order is not.
    """
    bodies = [r.body.decode("utf-8") for r in server.requests if r.status == 202]
    assert all("\n" not in raw for raw in bodies)
    bodies.sort(key=lambda raw: first_request_id(json.loads(raw)))
    return "".join(raw + "\n" for raw in bodies)


def check_snapshot(name: str, text: str) -> None:
    """Compare `text` with tests/snapshots/NAME, or rewrite it when UPDATE_SNAPSHOTS=1."""
    path = SNAPSHOTS / name
    if os.environ.get("UPDATE_SNAPSHOTS") == "1":
        path.write_text(text, encoding="utf-8")
    assert path.is_file(), f"{path} is missing: run with UPDATE_SNAPSHOTS=1 to write it"
    assert text == path.read_text(encoding="utf-8"), (
        f"{name} differs from the snapshot; if the change is intended, "
        "rerun with UPDATE_SNAPSHOTS=1 and review the diff"
    )


def test_the_sample_drop_reaches_the_events_api_as_snapshotted(server, config, tmp_path):
    root = tmp_path / "drop"
    shutil.copytree(SAMPLE_DROP, root)
    pin_mtimes(root)
    with time_machine.travel(FROZEN_AT, tick=False):
        tap = run_tap({"bucket_url": str(root)}, streams={"events"})
        lines = [json.dumps(message) for message in tap.messages]
        run = run_target({**config, "environment": "production"}, lines)
    assert run.error is None
    assert server.rejected == []
    assert server.duplicates == []
    assert len(server.events()) == len(tap.records("events"))
    # Nothing machine-specific (the temp copy's path) may reach mParticle or the STATE.
    check_snapshot("pipeline-requests.jsonl", snapshot_text(server))
    final_state = json.dumps(run.states[-1], indent=2, sort_keys=True) + "\n"
    check_snapshot("pipeline-state.json", final_state)
