"""target-mparticle's pacing against accounts with a token-bucket rate limit.

Each scenario starts our Events API stand-in in its own process with a token
bucket (see tests/target/rate_limit.py: 429 with Retry-After and
X-mp-rate-limit-exceeded when empty, the last second's usage on every 202), and
runs the target as a process on enough `kind: user` records (one batch each) to
keep it sending for `--seconds` at the configured rate:

* exact: the account allows the configured rate, with one second of burst;
* lower: the account allows two thirds of it (180/s while 270/s is configured);
* burst: the account allows the configured rate, but its bucket holds only one
  request's worth (100 batches), so any two requests sent too close are refused.

Each runs at 270 and at 1,000 batches/s configured. Reported: batches/s the server
accepted (between its first and last 202), as a share of what the account allows,
the same share after the first 5 s (once the pacer has found the limit), and the
429s provoked.

Usage: python benchmarks/bench_pacing.py [--seconds S] [--rates 270,1000]
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

import requests

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT))

from bench_target import singer_file, user_records  # noqa: E402

from tests.support.eventsapi import serve_forever  # noqa: E402

SETTLE_S = 5.0


def scenarios(rate: float) -> list[tuple[str, float, float]]:
    """(name, account limit, bucket size) at a configured rate."""
    lower = round(rate * 2 / 3)
    return [
        ("exact limit", rate, rate),
        (f"lower real limit ({lower}/s)", lower, lower),
        ("one-request burst (100)", rate, 100),
    ]


def run(configured: float, limit: float, burst: float, seconds: float, work: pathlib.Path) -> dict:
    receiver, sender = multiprocessing.Pipe(duplex=False)
    server = multiprocessing.Process(
        target=serve_forever,
        args=(sender,),
        kwargs={"validate": False, "rate_limit": (limit, burst)},
        daemon=True,
    )
    server.start()
    url = receiver.recv()
    try:
        count = int(limit * seconds)
        path = work / f"users-{count}.singer"
        if not path.exists():
            singer_file(path, "users", user_records(count), ["id"])
        config = {
            "api_key": "test-key",
            "api_secret": "test-secret",
            "api_url": url,
            "max_batches_per_second": configured,
            "mappings": {"users": {"kind": "user"}},
        }
        config_path = work / "config.json"
        config_path.write_text(json.dumps(config))
        log_path = work / "target.log"
        start = time.monotonic()
        with path.open("rb") as stdin, log_path.open("wb") as log:
            subprocess.run(
                [sys.executable, "-m", "target_mparticle", "--config", str(config_path)],
                stdin=stdin,
                stdout=subprocess.DEVNULL,
                stderr=log,
                check=True,
                env={**os.environ, "TARGET_MPARTICLE_LOGLEVEL": "INFO"},
            )
        wall = time.monotonic() - start
        stats = requests.get(url.removesuffix("/v2") + "/_stats", timeout=10).json()
    finally:
        server.terminate()
        server.join()
    answered = stats["answered"]
    first, last = answered[0][0], answered[-1][0]
    # Batches answered after the first 202, over the time since it.
    overall = sum(n for _, n in answered[1:]) / (last - first)
    settled = [(at, n) for at, n in answered if at >= first + SETTLE_S]
    steady = sum(n for _, n in settled[1:]) / (settled[-1][0] - settled[0][0])
    named = sum("rate limit was exceeded" in line for line in log_path.read_text().splitlines())
    return {
        "accepted": stats["accepted"],
        "expected": count,
        "overall": overall,
        "steady": steady,
        "throttled": stats["throttled"],
        "logged_429s": named,
        "wall": wall,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=25.0)
    parser.add_argument("--rates", default="270,1000")
    args = parser.parse_args()
    print(
        f"{'configured':>10} {'account':32} {'allows':>6} {'batches/s':>9} {'share':>6} "
        f"{'after 5s':>8} {'429s':>5} {'seconds':>7}"
    )
    with tempfile.TemporaryDirectory(prefix="bench-pacing-") as tmp:
        for rate in (float(r) for r in args.rates.split(",")):
            for name, limit, burst in scenarios(rate):
                result = run(rate, limit, burst, args.seconds, pathlib.Path(tmp))
                if result["accepted"] != result["expected"]:
                    msg = f"{name}: {result['accepted']} of {result['expected']} batches accepted"
                    raise RuntimeError(msg)
                print(
                    f"{rate:10.0f} {name:32} {limit:6.0f} {result['overall']:9.1f} "
                    f"{result['overall'] / limit:6.1%} {result['steady'] / limit:8.1%} "
                    f"{result['throttled']:5d} {result['wall']:7.1f}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
