"""Scale-out: 1, 2 and 4 shards of tap-mparticle over the same drop, in one run.

The drop (about 300,000 events by default, 2,500 per file, a third gzipped) is
generated once. For each shard count N, N tap processes (`shard_count` N,
`shard_index` 0..N-1) start at once, each writing its Singer output to /dev/null,
and the run ends when the last one exits. Each shard's event count comes from its
own summary log line, so the benchmark also checks that the shards together
emitted every event exactly once.

Reported per N (best wall time of `--rounds`): wall time, total events/s (all
events over the wall time), events/s per shard (its events over its own run time,
process start included), and events per CPU-second per shard (its events over its
own user+system CPU time: what one shard does with a core to itself, whatever else
the machine is running).
On a machine with C cores the total should grow until N reaches C and stay flat
after; the per-shard rate is what to divide a drop's daily volume by when choosing
N (README, "Scaling out").

Backends: `local` (a directory: the tap alone on the cores) or `s3` (moto's server
in its own process on 127.0.0.1, which competes for the same cores, so its figures
are a floor, not what S3 itself would give).

Usage: python benchmarks/bench_shards.py [--events N] [--shards 1,2,4] [--backend local|s3]
                                        [--rounds R]
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import boto3

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scripts.generate_drop import generate_drop  # noqa: E402
from tests.support.s3 import moto_process  # noqa: E402

KEY, SECRET = "AKIABENCH", "bench-secret"
BUCKET = "mp-forwarding-bench"
SUMMARY = re.compile(r"events: read (\d+) files?, emitted (\d+) records?")


def upload(endpoint: str, drop: Path) -> None:
    """Put every file of the drop into the benchmark bucket."""
    s3 = boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=KEY,
        aws_secret_access_key=SECRET,
        region_name="us-east-1",
    )
    s3.create_bucket(Bucket=BUCKET)
    for path in sorted(p for p in drop.rglob("*") if p.is_file()):
        s3.put_object(Bucket=BUCKET, Key=path.relative_to(drop).as_posix(), Body=path.read_bytes())


@dataclasses.dataclass
class ShardRun:
    """What one shard process did."""

    events: int
    seconds: float
    cpu_seconds: float


def run_shards(base: dict[str, Any], shards: int, workdir: Path) -> tuple[float, list[ShardRun]]:
    """Run `shards` taps at once; return the wall time and what each shard did."""

    def one(index: int) -> ShardRun:
        config = workdir / f"config-{shards}-{index}.json"
        config.write_text(json.dumps({**base, "shard_count": shards, "shard_index": index}))
        log = workdir / f"log-{shards}-{index}.txt"
        started = time.perf_counter()
        with Path(os.devnull).open("wb") as sink, log.open("wb") as err:
            proc = subprocess.Popen(
                [sys.executable, "-m", "tap_mparticle", "--config", str(config)],
                stdout=sink,
                stderr=err,
            )
            # wait4 gives the child's own CPU time, which other load does not inflate.
            _, status, usage = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.perf_counter() - started
        text = log.read_text(encoding="utf-8", errors="replace")
        match = SUMMARY.search(text)
        if proc.returncode != 0 or match is None:
            sys.exit(f"shard {index} of {shards} failed:\n{text[-2000:]}")
        return ShardRun(int(match[2]), seconds, usage.ru_utime + usage.ru_stime)

    started = time.perf_counter()
    # One thread per shard only waits for its process, so each end time is its own.
    with ThreadPoolExecutor(max_workers=shards) as pool:
        results = list(pool.map(one, range(shards)))
    return time.perf_counter() - started, results


def main() -> None:
    """Generate, run each shard count, print a table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--events", type=int, default=300_000)
    parser.add_argument("--shards", default="1,2,4")
    parser.add_argument("--backend", choices=("local", "s3"), default="local")
    parser.add_argument("--rounds", type=int, default=2, help="best wall time of R rounds")
    args = parser.parse_args()
    counts = [int(n) for n in args.shards.split(",")]

    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        workdir = Path(tmp)
        drop = workdir / "drop"
        summary = generate_drop(drop, events=args.events, seed=1, per_file=2500)
        base: dict[str, Any] = {"bucket_url": str(drop)}
        if args.backend == "s3":
            endpoint = stack.enter_context(moto_process())
            upload(endpoint, drop)
            base = {
                "bucket_url": f"s3://{BUCKET}",
                "aws_endpoint_url": endpoint,
                "aws_access_key_id": KEY,
                "aws_secret_access_key": SECRET,
                "aws_region": "us-east-1",
            }
        print(
            f"drop: {summary.events} events in {summary.files} files; backend {args.backend}; "
            f"{os.cpu_count()} cores"
        )
        print(
            "shards | wall s | total events/s | per shard events/s (min-max) "
            "| per shard events per CPU-second"
        )
        for shards in counts:
            best: tuple[float, list[ShardRun]] | None = None
            for _ in range(args.rounds):
                wall, results = run_shards(base, shards, workdir)
                total = sum(run.events for run in results)
                if total != summary.events:
                    sys.exit(f"{shards} shards emitted {total} events, not {summary.events}")
                if best is None or wall < best[0]:
                    best = (wall, results)
            assert best is not None  # noqa: S101  (rounds >= 1)
            wall, results = best
            rates = [run.events / run.seconds for run in results]
            cpu_rates = [run.events / run.cpu_seconds for run in results]
            print(
                f"{shards:>6} | {wall:>6.1f} | {summary.events / wall:>14,.0f} | "
                f"{min(rates):>9,.0f}-{max(rates):<9,.0f} | "
                f"{min(cpu_rates):,.0f}-{max(cpu_rates):,.0f}"
            )


if __name__ == "__main__":
    main()
