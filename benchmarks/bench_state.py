"""STATE volume per record byte when the tap reads many one-event files.

A bulk copy (`aws s3 sync`) or a backfill lands thousands of files inside one
look-back window. This writes N one-event files (one second apart, all inside the
default window) into a local directory, runs the tap as a subprocess and counts the
bytes of RECORD and STATE lines it writes, streaming, without keeping the output.

    .venv/bin/python benchmarks/bench_state.py 5000 50000 [--workdir DIR] [--timeout S]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BASE = dt.datetime(2024, 5, 1, tzinfo=dt.timezone.utc).timestamp()


def write_drop(root: Path, files: int) -> None:
    """N files of one batch with one event each, stamped one second apart."""
    for index in range(files):
        folder = root / f"2024-05-01/{index // 1000:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"mPTravel_20240501{index:012d}_{index}.txt"
        batch = {
            "mpid": 1000 + index,
            "batch_id": index,
            "events": [
                {
                    "event_type": "custom_event",
                    "data": {"event_name": "e", "timestamp_unixtime_ms": 1714521600000 + index},
                }
            ],
        }
        path.write_text(json.dumps(batch) + "\n")
        os.utime(path, (BASE + index, BASE + index))


def measure(files: int, workdir: Path, timeout: float) -> dict[str, float]:
    """Run the tap over a fresh drop of `files` files; bytes by message type and seconds."""
    root = workdir / f"drop-{files}"
    if not root.exists():
        write_drop(root, files)
    config = workdir / "config.json"
    config.write_text(json.dumps({"bucket_url": str(root), "start_date": "2024-04-30T00:00:00Z"}))
    started = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, "-m", "tap_mparticle", "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert process.stdout is not None  # noqa: S101
    sizes = {"RECORD": 0, "STATE": 0, "other": 0, "states": 0}
    finished = True
    for line in process.stdout:
        kind = "RECORD" if line.startswith(b'{"type":"RECORD"') else None
        if kind is None:
            kind = (
                "STATE"
                if b'"type":"STATE"' in line[:40] or b'"type": "STATE"' in line[:40]
                else "other"
            )
        sizes[kind] += len(line)
        if kind == "STATE":
            sizes["states"] += 1
        if time.monotonic() - started > timeout:
            process.kill()
            finished = False
            break
    process.wait()
    seconds = time.monotonic() - started
    return {
        "files": files,
        "record_bytes": sizes["RECORD"],
        "state_bytes": sizes["STATE"],
        "state_messages": sizes["states"],
        "state_per_record_byte": sizes["STATE"] / max(sizes["RECORD"], 1),
        "seconds": round(seconds, 1),
        "finished": finished,
    }


def main() -> None:
    """Print one JSON line of figures per size asked for."""
    parser = argparse.ArgumentParser()
    parser.add_argument("sizes", nargs="+", type=int)
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("--timeout", type=float, default=1200)
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench-state-"))
    workdir.mkdir(parents=True, exist_ok=True)
    for size in args.sizes:
        print(json.dumps(measure(size, workdir, args.timeout)), flush=True)


if __name__ == "__main__":
    main()
