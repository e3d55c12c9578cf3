"""target-mparticle throughput into the local Events API stand-in, like with like.

Three clients post the same data to the same server (its own process, schema
checks off, so the client side is what is measured). Each is a process of its own
reading its input from a file, start-up included, so none is timed on prebuilt
records in memory while another parses:

* target-mparticle end to end: the Singer file on stdin, as `meltano run` runs it
  (pacing off);
* the official SDK (`mparticle` 0.16.1 on PyPI): reads the same Singer file, builds
  Batch/AppEvent models from its records, posts 100 batches per call;
* a bare `requests` loop: reads the target's own request bodies (from a dry run)
  and posts them, the floor any client pays for HTTP;
* a hand-written loop, what a data engineer might write instead of a target: reads
  the same Singer file with msgspec, builds the same batches with no checks at all
  (no validation, cleaning, retries, STATE or dead letters), encodes them with
  msgspec and posts them with `http.client`. The least any client that reads this
  file can do, so it shows how much of the gap to the bare loop is reading and
  building at all, and how much is what the target does besides.

Each round runs all three in turn; ratios are taken within a round (paired), and
CPU seconds (user + system of the process) are shown beside wall seconds, so a
busy machine shows up as wall time without CPU time rather than as a slower target.

Usage: python benchmarks/bench_target.py [--users N] [--events N] [--rounds R]
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import multiprocessing
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import uuid

import msgspec
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


def reset(url: str) -> None:
    requests.delete(url, timeout=10)


def server_stats(url: str) -> dict:
    return requests.get(url, timeout=10).json()


def timed(command: list[str], stdin_path: pathlib.Path | None = None) -> tuple[float, float]:
    """Run a process to completion: (wall seconds, CPU seconds of that process)."""
    start = time.perf_counter()
    stdin = stdin_path.open("rb") if stdin_path else subprocess.DEVNULL
    try:
        process = subprocess.Popen(
            command,
            stdin=stdin,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env={**os.environ, "TARGET_MPARTICLE_LOGLEVEL": "WARNING"},
        )
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - start
        stderr = process.stderr.read() if process.stderr else b""
        process.returncode = os.waitstatus_to_exitcode(status)
    finally:
        if stdin_path:
            stdin.close()
    if process.returncode != 0:
        msg = f"{command[:4]} failed: {stderr.decode()[-2000:]}"
        raise RuntimeError(msg)
    return wall, usage.ru_utime + usage.ru_stime


def target_command(url: str, workdir: pathlib.Path, extra: dict) -> list[str]:
    config = {
        "api_key": "test-key",
        "api_secret": "test-secret",
        "api_url": url,
        "max_batches_per_second": 0,
        "mappings": {"users": {"kind": "user"}},
        **extra,
    }
    config_path = workdir / f"config-{len(extra)}.json"
    config_path.write_text(json.dumps(config))
    return [sys.executable, "-m", "target_mparticle", "--config", str(config_path)]


# -- the SDK and bare loops, each run as `bench_target.py --worker ...` -------------


def sdk_worker(url: str, kind: str, input_path: pathlib.Path) -> None:
    """Read the Singer file, build the official SDK's models, post 100 per call."""
    import warnings  # noqa: PLC0415

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import mparticle  # noqa: PLC0415

    configuration = mparticle.Configuration()
    configuration.host = url
    configuration.api_key = "test-key"
    configuration.api_secret = "test-secret"  # noqa: S105 - the local stand-in's
    api = mparticle.EventsApi(configuration)
    pending: list = []

    def flush() -> None:
        if pending:
            api.bulk_upload_events(list(pending))
            pending.clear()

    line_events: list[dict] = []
    with input_path.open("rb") as lines:
        for raw in lines:
            message = json.loads(raw)
            if message.get("type") != "RECORD":
                continue
            r = message["record"]
            if kind == "users":
                batch = mparticle.Batch()
                batch.environment = "development"
                batch.user_identities = mparticle.UserIdentities(email=r["email"])
                batch.user_attributes = {
                    k: str(v) for k, v in r.items() if k != "email" and v is not None
                }
                batch.source_request_id = str(uuid.uuid5(NS, f"u{r['id']}"))
                pending.append(batch)
            else:
                if line_events and line_events[0]["_sdc_source_lineno"] != r["_sdc_source_lineno"]:
                    pending.append(sdk_event_batch(mparticle, line_events))
                    line_events = []
                line_events.append(r)
            if len(pending) >= 100:
                flush()
    if line_events:
        pending.append(sdk_event_batch(mparticle, line_events))
    flush()


def sdk_event_batch(mparticle: object, group: list[dict]) -> object:
    batch = mparticle.Batch()
    batch.environment = "development"
    batch.user_identities = mparticle.UserIdentities(email=group[0]["user_identities"]["email"])
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
    return batch


def bare_worker(url_base: str, dry_run_file: pathlib.Path) -> None:
    """Post the target's own request bodies, read line by line from its dry-run file.

    Each line is `{"url": ..., "body": [...]}` with the body last, so the body's
    bytes are cut out of the line, not decoded and encoded again.
    """
    session = requests.Session()
    session.auth = ("test-key", "test-secret")
    marker = b',"body":'
    with dry_run_file.open("rb") as lines:
        for line in lines:
            cut = line.index(marker)
            url = json.loads(line[:cut] + b"}")["url"]
            url = url.replace("https://s2s.us1.mparticle.com/v2", url_base)
            body = line[cut + len(marker) : line.rindex(b"}")]
            response = session.post(
                url, data=body, headers={"Content-Type": "application/json"}, timeout=60
            )
            response.raise_for_status()


def handwritten_worker(url: str, kind: str, input_path: pathlib.Path) -> None:
    """Decode each line, build its batch as the target would, post 100 per call."""
    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=60)
    token = base64.b64encode(b"test-key:test-secret").decode()
    headers = {"Content-Type": "application/json", "Authorization": f"Basic {token}"}
    encode = msgspec.json.Encoder().encode
    decode = msgspec.json.decode
    pending: list[dict] = []

    def post() -> None:
        connection.request("POST", f"{parts.path}/bulkevents", encode(pending), headers)
        response = connection.getresponse()
        response.read()
        if response.status >= 300:
            msg = f"the server answered {response.status}"
            raise RuntimeError(msg)
        pending.clear()

    line_no = None
    batch: dict = {}
    with input_path.open("rb") as lines:
        for raw in lines:
            message = decode(raw)
            if message["type"] != "RECORD":
                continue
            r = message["record"]
            if kind == "users":
                pending.append(
                    {
                        "environment": "development",
                        "user_identities": {"email": r["email"]},
                        "user_attributes": {
                            k: str(v) for k, v in r.items() if k != "email" and v is not None
                        },
                        "source_request_id": str(uuid.uuid5(NS, f"u{r['id']}")),
                    }
                )
            else:
                if r["_sdc_source_lineno"] != line_no:
                    line_no = r["_sdc_source_lineno"]
                    if len(pending) >= 100:
                        post()
                    batch = {
                        "environment": "development",
                        "user_identities": r["user_identities"],
                        "mpid": r["mpid"],
                        "device_info": r["device_info"],
                        "application_info": r["application_info"],
                        "user_attributes": r["user_attributes"],
                        "source_request_id": str(uuid.uuid5(NS, f"e{line_no}")),
                        "events": [],
                    }
                    pending.append(batch)
                data = dict(r["data"])
                data["timestamp_unixtime_ms"] = int(data["timestamp_unixtime_ms"])
                data["event_id"] = int(data["event_id"])
                batch["events"].append({"event_type": "custom_event", "data": data})
            if kind == "users" and len(pending) >= 100:
                post()
    if pending:
        post()
    connection.close()


def run_worker(kind: str, *rest: str) -> None:
    """One client's run, in the process `worker_command` started."""
    if kind == "bare":
        bare_worker(rest[0], pathlib.Path(rest[1]))
    elif kind == "handwritten":
        handwritten_worker(rest[0], rest[1], pathlib.Path(rest[2]))
    else:
        sdk_worker(rest[0], rest[1], pathlib.Path(rest[2]))


def worker_command(*args: str) -> list[str]:
    return [sys.executable, str(pathlib.Path(__file__).resolve()), "--worker", *args]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        run_worker(*args.worker)
        return

    receiver, sender = multiprocessing.Pipe(duplex=False)
    server = multiprocessing.Process(
        target=serve_forever, args=(sender,), kwargs={"validate": False}, daemon=True
    )
    server.start()
    url = receiver.recv()
    stats_url = url.removesuffix("/v2") + "/_stats"
    clients = (
        "target-mparticle",
        "mparticle SDK 0.16.1",
        "bare requests loop",
        "hand-written msgspec",
    )
    results: dict[str, dict[str, list[tuple[float, float]]]] = {}
    counts = {"users": args.users, "events": args.events}
    batches: dict[str, int] = {}
    with tempfile.TemporaryDirectory(prefix="bench-target-") as tmp:
        work = pathlib.Path(tmp)
        inputs = {}
        for name, records, key in (
            ("users", user_records(args.users), ["id"]),
            ("events", event_records(args.events), []),
        ):
            path = work / f"{name}.singer"
            singer_file(path, name, records, key)
            dry = work / f"{name}.dry.jsonl"
            timed(target_command(url, work, {"dry_run": True, "dry_run_path": str(dry)}), path)
            inputs[name] = (path, dry)
            results[name] = {c: [] for c in clients}
        for _ in range(args.rounds):
            for name, (path, dry) in inputs.items():
                commands = {
                    clients[0]: (target_command(url, work, {}), path),
                    clients[1]: (worker_command("sdk", url, name, str(path)), None),
                    clients[2]: (worker_command("bare", url, str(dry)), None),
                    clients[3]: (worker_command("handwritten", url, name, str(path)), None),
                }
                for client, (command, stdin) in commands.items():
                    reset(stats_url)
                    results[name][client].append(timed(command, stdin))
                    stats = server_stats(stats_url)
                    if stats["rejected"]:
                        msg = f"the server refused batches from {client}: {stats}"
                        raise RuntimeError(msg)
                    if client == clients[0]:
                        batches[name] = stats["accepted"]
    server.terminate()

    print(
        f"{'data':7} {'client':22} {'records/s':>10} {'batches/s':>10} {'wall s':>7} "
        f"{'CPU s':>6} {'rec/CPU-s':>10} {'vs bare':>8} {'per round':>18}"
    )
    for name, by_client in results.items():
        count = counts[name]
        bare = by_client[clients[2]]
        for client, runs in by_client.items():
            walls = [w for w, _ in runs]
            cpus = [c for _, c in runs]
            ratios = [b[0] / w for b, w in zip(bare, walls, strict=True)]
            wall = statistics.median(walls)
            cpu = statistics.median(cpus)
            print(
                f"{name:7} {client:22} {count / wall:10,.0f} {batches[name] / wall:10,.0f} "
                f"{wall:7.2f} {cpu:6.2f} {count / cpu:10,.0f} {statistics.median(ratios):8.2f} "
                f"{' '.join(f'{r:.2f}' for r in ratios):>18}"
            )
    print(
        "Medians over rounds; 'vs bare' is bare wall time over the client's, paired by "
        "round (1.00 = as fast as the bare loop); CPU s is the client process's own."
    )


if __name__ == "__main__":
    main()
