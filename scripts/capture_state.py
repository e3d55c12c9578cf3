"""Capture a tap-mparticle STATE over the bundled sample drop with pinned mtimes.

`tests/tap/fixtures/state-0.1.0.json` was written by this script running the code of
commit 4f7bded (before `_sdc_source_file` became prefix-relative), so a test can check
that a bookmark written by that release is still read, not discarded:

    git archive 4f7bded | tar -x -C /tmp/old
    PYTHONPATH=/tmp/old .venv/bin/python scripts/capture_state.py \
        > tests/tap/fixtures/state-0.1.0.json

Every file's mtime is set to a fixed instant first (`pin_mtimes`), so the state's
bookmark and `files_read` stamps are the same on every machine.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
SAMPLE_DROP = REPO_ROOT / "samples" / "drop"
PINNED_FROM = dt.datetime(2024, 5, 3, tzinfo=dt.timezone.utc)


def pin_mtimes(root: Path) -> None:
    """Give each file under `root` the mtime PINNED_FROM + its rank (in seconds) by path."""
    files = sorted(p for p in root.rglob("*") if p.is_file())
    for rank, path in enumerate(files):
        stamp = (PINNED_FROM + dt.timedelta(seconds=rank)).timestamp()
        os.utime(path, (stamp, stamp))


def main() -> None:
    """Copy the sample drop, pin its mtimes, sync it whole and print the final STATE."""
    from tap_mparticle.tap import TapMParticle  # noqa: PLC0415  (whichever code PYTHONPATH gives)

    with tempfile.TemporaryDirectory() as tmp:
        drop = Path(tmp) / "drop"
        shutil.copytree(SAMPLE_DROP, drop)
        pin_mtimes(drop)
        raw = io.BytesIO()
        text = io.TextIOWrapper(raw, encoding="utf-8")
        with contextlib.redirect_stdout(text):
            TapMParticle(config={"bucket_url": str(drop)}).sync_all()
            text.flush()
    messages = [json.loads(line) for line in raw.getvalue().splitlines() if line.strip()]
    states = [m["value"] for m in messages if m["type"] == "STATE"]
    json.dump(states[-1], sys.stdout, indent=2, sort_keys=True, ensure_ascii=False)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
