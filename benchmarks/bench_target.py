"""target-mparticle throughput into the local Events API stand-in.

Three ways to post the same data, in one run, to the same server (its own
process, schema checks off, so the client side is what is measured):

* target-mparticle end to end: Singer messages on stdin, as `meltano run` does;
* the official SDK (`mparticle` 0.16.1 on PyPI): Batch/AppEvent models built
  from the same records, posted 100 batches per call;
* a bare `requests` loop posting the target's own request bodies, pre-built.

Usage: python benchmarks/bench_target.py [--users N] [--events N]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import pathlib
import subprocess
import sys
import tempfile
import time
import uuid
import warnings

import requests

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.eventsapi import serve_forever  # noqa: E402

NS = uuid.UUID("3f0b6c8e-8a2f-4f50-9d0a-1c2b3d4e5f60")
BASE_MS = 1_763_000_000_000


def user_records(n: int) -> list[dict]:
    return [
        {
            "id": i,
            "email": f"user{i}@example.com",
            "first_name": "Ada",
            "plan": ("free", "pro", "team")[i % 3],
            "score": i % 100,
            "city": "Oslo",
        }
        for i in range(n)
    ]


def event_records(n: int) -> list[dict]:
    """tap-mparticle events: 4 events per batch line, numbers as strings."""
    out = []
    for i in range(n):
        line, index = divmod(i, 4)
        stamp = BASE_MS + i
        out.append(
            {
                "event_type": "custom_event",
                "event_name": "Play",
                "timestamp_unixtime_ms": stamp,
                "source_message_id": str(uuid.uuid5(NS, str(i))),
                "mpid": 1000 + line,
                "user_identities": {"email": f"u{line}@example.com"},
                "user_attributes": {"tier": "gold"},
                "device_info": {"platform": "iOS"},
                "application_info": {"application_name": "Bench"},
                "custom_attributes": {"title": "Song", "n": str(index)},
                "data": {
                    "event_name": "Play",
                    "custom_event_type": "media",
                    "timestamp_unixtime_ms": str(stamp),
                    "source_message_id": str(uuid.uuid5(NS, str(i))),
                    "event_id": str(i),
                    "custom_attributes": {"title": "Song", "n": str(index)},
                },
                "_sdc_source_file": "bench.txt",
                "_sdc_source_lineno": line + 1,
                "_sdc_event_index": index,
            }
        )
    return out


def singer_file(path: pathlib.Path, stream: str, records: list[dict], key: list[str]) -> None:
    properties = {k: {} for k in records[0]}
    with path.open("w") as out:
        out.write(
            json.dumps(
                {
                    "type": "SCHEMA",
                    "stream": stream,
                    "schema": {"type": "object", "properties": properties},
                    "key_properties": key,
                }
            )
            + "\n"
        )
        for i, record in enumerate(records, 1):
            out.write(json.dumps({"type": "RECORD", "stream": stream, "record": record}) + "\n")
            if i % 1000 == 0:
                out.write(json.dumps({"type": "STATE", "value": {"n": i}}) + "\n")


def server_stats(url: str) -> dict:
    return requests.get(url, timeout=10).json()


def reset(url: str) -> None:
    requests.delete(url, timeout=10)


def run_target(url: str, input_path: pathlib.Path, workdir: pathlib.Path, extra: dict) -> float:
    config = {
        "api_key": "test-key",
        "api_secret": "test-secret",
        "api_url": url,
        "max_batches_per_second": 0,
        "mappings": {"users": {"kind": "user"}},
        **extra,
    }
    config_path = workdir / "config.json"
    config_path.write_text(json.dumps(config))
    start = time.perf_counter()
    with input_path.open("rb") as stdin:
        subprocess.run(
            [sys.executable, "-m", "target_mparticle", "--config", str(config_path)],
            stdin=stdin,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=True,
            env={**os.environ, "TARGET_MPARTICLE_LOGLEVEL": "WARNING"},
        )
    return time.perf_counter() - start


def run_official_sdk(url: str, kind: str, records: list[dict]) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import mparticle  # noqa: PLC0415

    configuration = mparticle.Configuration()
    configuration.host = url
    configuration.api_key = "test-key"
    configuration.api_secret = "test-secret"  # noqa: S105 - the local stand-in's
    api = mparticle.EventsApi(configuration)
    start = time.perf_counter()
    batches = []
    if kind == "users":
        for r in records:
            batch = mparticle.Batch()
            batch.environment = "development"
            batch.user_identities = mparticle.UserIdentities(email=r["email"])
            batch.user_attributes = {
                k: str(v) for k, v in r.items() if k != "email" and v is not None
            }
            batch.source_request_id = str(uuid.uuid5(NS, f"u{r['id']}"))
            batches.append(batch)
    else:
        by_line: dict[int, list[dict]] = {}
        for r in records:
            by_line.setdefault(r["_sdc_source_lineno"], []).append(r)
        for group in by_line.values():
            batch = mparticle.Batch()
            batch.environment = "development"
            batch.user_identities = mparticle.UserIdentities(
                email=group[0]["user_identities"]["email"]
            )
            batch.mpid = group[0]["mpid"]
            batch.user_attributes = group[0]["user_attributes"]
            batch.events = [
                mparticle.AppEvent(
                    event_name=r["data"]["event_name"],
                    custom_event_type=r["data"]["custom_event_type"],
                    timestamp_unixtime_ms=int(r["data"]["timestamp_unixtime_ms"]),
                    source_message_id=r["data"]["source_message_id"],
                    custom_attributes=r["data"]["custom_attributes"],
                )
                for r in group
            ]
            batch.source_request_id = str(uuid.uuid5(NS, f"e{group[0]['_sdc_source_lineno']}"))
            batches.append(batch)
    for i in range(0, len(batches), 100):
        api.bulk_upload_events(batches[i : i + 100])
    return time.perf_counter() - start


def run_bare_loop(url_base: str, dry_run_file: pathlib.Path) -> float:
    """Post the target's own request bodies, built before the clock starts."""
    prepared = []
    for line in dry_run_file.read_text().splitlines():
        parsed = json.loads(line)
        url = parsed["url"].replace("https://s2s.us1.mparticle.com/v2", url_base)
        prepared.append((url, json.dumps(parsed["body"]).encode()))
    session = requests.Session()
    session.auth = ("test-key", "test-secret")
    start = time.perf_counter()
    for url, body in prepared:
        response = session.post(
            url, data=body, headers={"Content-Type": "application/json"}, timeout=60
        )
        response.raise_for_status()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--events", type=int, default=40_000)
    args = parser.parse_args()

    receiver, sender = multiprocessing.Pipe(duplex=False)
    server = multiprocessing.Process(
        target=serve_forever, args=(sender,), kwargs={"validate": False}, daemon=True
    )
    server.start()
    url = receiver.recv()
    stats_url = url.removesuffix("/v2") + "/_stats"
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-target-") as tmp:
        work = pathlib.Path(tmp)
        datasets = {
            "users": (user_records(args.users), ["id"], args.users),
            "events": (event_records(args.events), [], args.events),
        }
        for name, (records, key, count) in datasets.items():
            path = work / f"{name}.singer"
            singer_file(path, name, records, key)
            dry = work / f"{name}.dry.jsonl"
            run_target(url, path, work, {"dry_run": True, "dry_run_path": str(dry)})

            reset(stats_url)
            target_s = run_target(url, path, work, {})
            target_stats = server_stats(stats_url)
            reset(stats_url)
            fast_s = run_target(url, path, work, {"validate_records": False})
            reset(stats_url)
            sdk_s = run_official_sdk(url, name, records)
            sdk_stats = server_stats(stats_url)
            reset(stats_url)
            bare_s = run_bare_loop(url, dry)
            bare_stats = server_stats(stats_url)
            if target_stats["rejected"]:
                msg = f"the server refused batches: {target_stats}"
                raise RuntimeError(msg)
            batches = target_stats["accepted"]
            rows.append((name, "target-mparticle", count, target_s, batches, bare_s))
            rows.append((name, "target (validate_records=false)", count, fast_s, batches, bare_s))
            rows.append((name, "mparticle SDK 0.16.1", count, sdk_s, sdk_stats["accepted"], bare_s))
            rows.append((name, "bare requests loop", count, bare_s, bare_stats["accepted"], bare_s))
    server.terminate()

    print(
        f"{'data':7} {'client':32} {'records':>8} {'seconds':>8} {'records/s':>10} "
        f"{'batches/s':>10} {'vs bare':>8}"
    )
    for name, client, count, seconds, batches, bare in rows:
        print(
            f"{name:7} {client:32} {count:8d} {seconds:8.2f} {count / seconds:10.0f} "
            f"{batches / seconds:10.0f} {bare / seconds:8.2f}"
        )
    print("batches/s is what an account's 270 batches/s limit is measured against.")


if __name__ == "__main__":
    main()
