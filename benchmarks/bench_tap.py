"""Throughput of tap-mparticle against a bare boto3 loop, on the same drop, in the same run.

The drop (about 300,000 events by default, a third of the files gzipped) is
generated, uploaded to moto's S3 server on 127.0.0.1, and read by:

1. a bare loop: list, get each object, gunzip, parse each line, explode into one dict
   per event with the batch context, serialise each to JSON, write to /dev/null;
2. the tap, as its console script, stdout to /dev/null.

Like with like: moto's server runs in a process of its own (so neither client
shares its interpreter lock), and the bare loop, like the tap, is a process of its
own, start-up included. Each round runs both; the ratio is taken within the round
(paired), with each process's CPU seconds beside its wall seconds, and the median
over rounds is reported.

Usage: python benchmarks/bench_tap.py [--events N] [--rounds R] [--concurrency C]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import IO

import boto3

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scripts.generate_drop import generate_drop  # noqa: E402
from tests.support.s3 import moto_process  # noqa: E402

KEY, SECRET = "AKIABENCH", "bench-secret"
BUCKET = "mp-forwarding-bench"


def s3_client(endpoint: str):  # noqa: ANN201  (boto3 client types are stubs-only)
    """A client for the benchmark bucket on the local endpoint."""
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=KEY,
        aws_secret_access_key=SECRET,
        region_name="us-east-1",
    )


def explode(body: bytes, key: str, sink: IO[str]) -> int:
    """Gunzip, parse, explode and write one object's events; returns how many."""
    if body[:2] == b"\x1f\x8b":
        body = gzip.decompress(body)
    count = 0
    for line in body.splitlines():
        batch = json.loads(line)
        if not isinstance(batch, dict):
            continue
        identities = {
            i["identity_type"]: i.get("identity") for i in batch.get("user_identities") or []
        }
        for index, event in enumerate(batch.get("events") or []):
            record = {
                "event_type": event["event_type"],
                "mpid": batch.get("mpid"),
                "user_identities": identities,
                "user_attributes": batch.get("user_attributes") or {},
                "device_info": batch.get("device_info") or {},
                "application_info": batch.get("application_info") or {},
                "data": event.get("data") or {},
                "_sdc_source_file": key,
                "_sdc_event_index": index,
            }
            sink.write(json.dumps({"type": "RECORD", "record": record}) + "\n")
            count += 1
    return count


def bare_loop(endpoint: str) -> int:
    """What someone would write with boto3 and the json module; returns events written."""
    s3 = s3_client(endpoint)
    count = 0
    with Path(os.devnull).open("w") as sink:
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET):
            for obj in page.get("Contents", []):
                body = s3.get_object(Bucket=BUCKET, Key=obj["Key"])["Body"].read()
                count += explode(body, obj["Key"], sink)
    return count


def tap_command(endpoint: str, workdir: Path, concurrency: int) -> list[str]:
    """The tap's console script over the bucket."""
    config = workdir / "config.json"
    config.write_text(
        json.dumps(
            {
                "bucket_url": f"s3://{BUCKET}",
                "aws_endpoint_url": endpoint,
                "aws_access_key_id": KEY,
                "aws_secret_access_key": SECRET,
                "aws_region": "us-east-1",
                "download_concurrency": concurrency,
            }
        )
    )
    return [sys.executable, "-m", "tap_mparticle", "--config", str(config)]


def timed(command: list[str]) -> tuple[float, float]:
    """Run a process, output discarded: (wall seconds, its CPU seconds)."""
    start = time.perf_counter()
    with Path(os.devnull).open("wb") as sink:
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.DEVNULL)
        _, status, usage = os.wait4(process.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"{command[:4]} failed")
    return time.perf_counter() - start, usage.ru_utime + usage.ru_stime


def main() -> None:
    """Generate, serve, measure, print."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--events", type=int, default=300_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--bare-worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bare_worker:
        bare_loop(args.bare_worker)
        return

    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        summary = generate_drop(workdir / "drop", events=args.events, seed=1, per_file=2500)
        with moto_process() as endpoint:
            s3 = s3_client(endpoint)
            s3.create_bucket(Bucket=BUCKET)
            size = 0
            for path in sorted(p for p in (workdir / "drop").rglob("*") if p.is_file()):
                body = path.read_bytes()
                size += len(body)
                s3.put_object(
                    Bucket=BUCKET, Key=path.relative_to(workdir / "drop").as_posix(), Body=body
                )
            if bare_loop(endpoint) != summary.events:
                sys.exit("the bare loop did not see every event")
            bare_command = [
                sys.executable,
                str(Path(__file__).resolve()),
                "--bare-worker",
                endpoint,
            ]
            tap = tap_command(endpoint, workdir, args.concurrency)
            rounds = [(timed(bare_command), timed(tap)) for _ in range(args.rounds)]

    print(
        f"drop: {summary.events} events, {summary.batches} batches, "
        f"{summary.files} files, {size / 1e6:.1f} MB; moto in its own process"
    )
    print(f"{'round':>5} {'bare s':>7} {'CPU s':>6} {'tap s':>7} {'CPU s':>6} {'tap/bare':>9}")
    for index, ((bare_s, bare_cpu), (tap_s, tap_cpu)) in enumerate(rounds, 1):
        print(
            f"{index:5d} {bare_s:7.2f} {bare_cpu:6.2f} {tap_s:7.2f} {tap_cpu:6.2f} "
            f"{bare_s / tap_s:9.2f}"
        )
    bare_s = statistics.median(b for (b, _), _ in rounds)
    tap_s = statistics.median(t for _, (t, _) in rounds)
    ratio = statistics.median(b / t for (b, _), (t, _) in rounds)
    print(f"bare boto3 loop : {summary.events / bare_s:>10,.0f} events/s (median wall)")
    print(f"tap-mparticle   : {summary.events / tap_s:>10,.0f} events/s (process start included)")
    print(f"tap/bare        : {ratio:.2f} (median of per-round ratios)")


if __name__ == "__main__":
    main()
