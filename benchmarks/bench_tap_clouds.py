"""Throughput of tap-mparticle against a bare client loop, per cloud, on the same drop, in one run.

(`bench_tap.py` is the S3 benchmark with moto in its own process and paired rounds;
this one puts the three clouds' emulators side by side, each with its own client.)

The drop (about 300,000 events by default, a third of the files gzipped) is
generated and uploaded to moto's S3 server, fake-gcs-server and Azurite, all on
127.0.0.1 (`make azurite` installs Azurite). For each storage it is read by:

1. a bare loop with that cloud's own client (boto3, google-cloud-storage,
   azure-storage-blob): list, download each object, gunzip, parse each line, explode
   into one dict per event with the batch context, serialise each to JSON, write to
   /dev/null;
2. the tap, as its console script, stdout to /dev/null.

Each is run `--rounds` times and the best time kept (these machines are noisy); the
figure that matters is the ratio, tap events/s over bare events/s, per storage.

Usage: python benchmarks/bench_tap_clouds.py [--events N] [--rounds R] [--concurrency C]
       [--storages s3,gcs,azure]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from moto.server import ThreadedMotoServer

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.bench_tap import BUCKET, KEY, SECRET, bare_loop, explode, s3_client  # noqa: E402
from scripts.generate_drop import generate_drop  # noqa: E402
from tests.support.cloud import (  # noqa: E402
    Azurite,
    FakeGcs,
    azure_config,
    azurite,
    fake_gcs,
    gcs_config,
)


def bare_gcs(server: FakeGcs) -> int:
    """The same with google-cloud-storage."""
    client = server.client()
    count = 0
    with Path(os.devnull).open("w") as sink:
        for blob in client.list_blobs(BUCKET):
            count += explode(blob.download_as_bytes(raw_download=True), blob.name, sink)
    return count


def bare_azure(server: Azurite) -> int:
    """The same with azure-storage-blob."""
    container = server.service().get_container_client(BUCKET)
    count = 0
    with Path(os.devnull).open("w") as sink:
        for blob in container.list_blobs():
            body = container.download_blob(blob.name).readall()
            count += explode(body, blob.name, sink)
    return count


def s3_tap_config(endpoint: str) -> dict[str, object]:
    """Tap settings reaching the benchmark bucket on moto."""
    return {
        "bucket_url": f"s3://{BUCKET}",
        "aws_endpoint_url": endpoint,
        "aws_access_key_id": KEY,
        "aws_secret_access_key": SECRET,
        "aws_region": "us-east-1",
    }


def run_tap(config: dict[str, object], workdir: Path, concurrency: int) -> None:
    """Run the tap's console script over the bucket, output discarded."""
    config_file = workdir / "config.json"
    config_file.write_text(json.dumps({**config, "download_concurrency": concurrency}))
    with Path(os.devnull).open("wb") as sink:
        subprocess.run(
            [sys.executable, "-m", "tap_mparticle", "--config", str(config_file)],
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


def drop_files(drop: Path) -> list[tuple[str, bytes]]:
    """Every file of the generated drop, as (key, body)."""
    return [
        (path.relative_to(drop).as_posix(), path.read_bytes())
        for path in sorted(p for p in drop.rglob("*") if p.is_file())
    ]


@contextlib.contextmanager
def serve(
    storage: str, files: list[tuple[str, bytes]], workdir: Path
) -> Iterator[tuple[dict[str, object], Callable[[], int]]]:
    """Start one storage's server, upload the drop; yield the tap config and bare loop."""
    if storage == "s3":
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        try:
            host, port = server.get_host_and_port()
            endpoint = f"http://{host}:{port}"
            s3 = s3_client(endpoint)
            s3.create_bucket(Bucket=BUCKET)
            for key, body in files:
                s3.put_object(Bucket=BUCKET, Key=key, Body=body)
            yield s3_tap_config(endpoint), lambda: bare_loop(endpoint)
        finally:
            server.stop()
    elif storage == "gcs":
        (workdir / "gcs").mkdir()
        with fake_gcs(workdir / "gcs") as gcs:
            bucket = gcs.client().create_bucket(BUCKET)
            for key, body in files:
                bucket.blob(key).upload_from_string(body)
            yield gcs_config(gcs, BUCKET), lambda: bare_gcs(gcs)
    else:
        (workdir / "azurite").mkdir()
        with azurite(workdir / "azurite") as server_az:
            container = server_az.service().create_container(BUCKET)
            for key, body in files:
                container.upload_blob(key, body)
            yield azure_config(server_az, BUCKET), lambda: bare_azure(server_az)


BARE_NAMES = {"s3": "bare boto3 loop", "gcs": "bare GCS loop", "azure": "bare Azure loop"}


def main() -> None:
    """Generate, serve, measure, print."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--events", type=int, default=300_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--storages", default="s3,gcs,azure")
    args = parser.parse_args()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto logs every request

    results = []
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        summary = generate_drop(workdir / "drop", events=args.events, seed=1, per_file=2500)
        files = drop_files(workdir / "drop")
        size = sum(len(body) for _, body in files)
        for storage in args.storages.split(","):
            with serve(storage, files, workdir) as (config, bare_loop):
                if bare_loop() != summary.events:
                    sys.exit(f"the bare {storage} loop did not see every event")
                bare = best_of(args.rounds, bare_loop)
                tap = best_of(args.rounds, lambda: run_tap(config, workdir, args.concurrency))
            results.append((storage, bare, tap))

    print(
        f"drop: {summary.events} events, {summary.batches} batches, "
        f"{summary.files} files, {size / 1e6:.1f} MB"
    )
    for storage, bare, tap in results:
        bare_rate = summary.events / bare
        tap_rate = summary.events / tap
        print(f"{storage}:")
        print(f"  {BARE_NAMES[storage]:<16}: {bare_rate:>10,.0f} events/s  ({bare:.1f} s)")
        print(
            f"  {'tap-mparticle':<16}: {tap_rate:>10,.0f} events/s  "
            f"({tap:.1f} s, process start included)"
        )
        print(f"  {'ratio tap/bare':<16}: {tap_rate / bare_rate:.2f}")


if __name__ == "__main__":
    main()
