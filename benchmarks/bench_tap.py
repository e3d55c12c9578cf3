"""Throughput of tap-mparticle against a bare boto3 loop, on the same drop, in the same run.

The drop (about 300,000 events by default, a third of the files gzipped) is
generated, uploaded to moto's S3 server on 127.0.0.1, and read by:

1. a bare loop: list, get each object, gunzip, parse each line, explode into one dict
   per event with the batch context, serialise each to JSON, write to /dev/null;
2. the tap, as its console script, stdout to /dev/null.

Each is run `--rounds` times and the best time kept (these machines are noisy); the
figure that matters is the ratio, tap events/s over bare events/s.

Usage: python benchmarks/bench_tap.py [--events N] [--rounds R] [--concurrency C]
"""

from __future__ import annotations

import argparse
import gzip
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import boto3
from moto.server import ThreadedMotoServer

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scripts.generate_drop import generate_drop  # noqa: E402

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


def bare_loop(endpoint: str) -> int:
    """What someone would write with boto3 and the json module; returns events written."""
    s3 = s3_client(endpoint)
    count = 0
    with Path(os.devnull).open("w") as sink:
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET):
            for obj in page.get("Contents", []):
                body = s3.get_object(Bucket=BUCKET, Key=obj["Key"])["Body"].read()
                if body[:2] == b"\x1f\x8b":
                    body = gzip.decompress(body)
                for line in body.splitlines():
                    batch = json.loads(line)
                    if not isinstance(batch, dict):
                        continue
                    identities = {
                        i["identity_type"]: i.get("identity")
                        for i in batch.get("user_identities") or []
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
                            "_sdc_source_file": obj["Key"],
                            "_sdc_event_index": index,
                        }
                        sink.write(json.dumps({"type": "RECORD", "record": record}) + "\n")
                        count += 1
    return count


def run_tap(endpoint: str, workdir: Path, concurrency: int) -> None:
    """Run the tap's console script over the bucket, output discarded."""
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
    with Path(os.devnull).open("wb") as sink:
        subprocess.run(
            [sys.executable, "-m", "tap_mparticle", "--config", str(config)],
            stdout=sink,
            stderr=subprocess.DEVNULL,
            check=True,
        )


def best_of(rounds: int, action: object) -> float:
    """Best wall time of `rounds` calls."""
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        action()  # type: ignore[operator]
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    """Generate, serve, measure, print."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--events", type=int, default=300_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto logs every request

    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        summary = generate_drop(workdir / "drop", events=args.events, seed=1, per_file=2500)
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        try:
            host, port = server.get_host_and_port()
            endpoint = f"http://{host}:{port}"
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
            bare = best_of(args.rounds, lambda: bare_loop(endpoint))
            tap = best_of(args.rounds, lambda: run_tap(endpoint, workdir, args.concurrency))
        finally:
            server.stop()

    bare_rate = summary.events / bare
    tap_rate = summary.events / tap
    print(
        f"drop: {summary.events} events, {summary.batches} batches, "
        f"{summary.files} files, {size / 1e6:.1f} MB"
    )
    print(f"bare boto3 loop : {bare_rate:>10,.0f} events/s  ({bare:.1f} s)")
    print(f"tap-mparticle   : {tap_rate:>10,.0f} events/s  ({tap:.1f} s, process start included)")
    print(f"ratio tap/bare  : {tap_rate / bare_rate:.2f}")


if __name__ == "__main__":
    main()
