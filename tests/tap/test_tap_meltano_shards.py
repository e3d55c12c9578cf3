"""meltano.yml's fan-out: three inherited shard plugins run in parallel by real `meltano run`."""

from __future__ import annotations

import json
import subprocess
import uuid

import pytest

from scripts.generate_drop import generate_drop
from tests.support.files import REPO_ROOT
from tests.support.meltano import MELTANO

pytestmark = pytest.mark.meltano
SHARDS = 3


def run_in_parallel(env: dict[str, str], suffix: str, out_dirs: list) -> None:
    procs = [
        subprocess.Popen(
            [
                MELTANO,
                "run",
                "--state-id-suffix",
                suffix,
                f"tap-mparticle-shard-{i}",
                "target-jsonl",
            ],
            cwd=REPO_ROOT,
            env={**env, "TARGET_JSONL_DESTINATION_PATH": str(out_dirs[i])},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(SHARDS)
    ]
    try:
        results = [proc.communicate(timeout=600)[1] for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    for proc, stderr in zip(procs, results, strict=True):
        assert proc.returncode == 0, stderr[-3000:]


def test_meltano_runs_the_shard_plugins_in_parallel(meltano_env, tmp_path):
    summary = generate_drop(tmp_path / "drop", events=600, seed=5, per_file=20)
    env = {**meltano_env, "TAP_MPARTICLE_BUCKET_URL": str(tmp_path / "drop")}
    out_dirs = [tmp_path / f"out-{i}" for i in range(SHARDS)]
    for out in out_dirs:
        out.mkdir()
    suffix = uuid.uuid4().hex[:8]
    # Meltano creates its system database on first use; three first uses at once would
    # race to create it, as they would on a fresh deployment (run one command first).
    first = subprocess.run(
        [MELTANO, "state", "list"], cwd=REPO_ROOT, env=env, capture_output=True, check=False
    )
    assert first.returncode == 0, first.stderr[-2000:]

    run_in_parallel(env, suffix, out_dirs)
    shards = [
        [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
        for out in out_dirs
    ]
    keys = [
        {(r["_sdc_source_file"], r["_sdc_source_lineno"], r["_sdc_event_index"]) for r in shard}
        for shard in shards
    ]
    assert all(keys), "every shard read some files"
    assert sum(len(k) for k in keys) == len(set().union(*keys)) == summary.events

    for i in range(SHARDS):
        state_id = f"dev:tap-mparticle-shard-{i}-to-target-jsonl:{suffix}"
        got = subprocess.run(
            [MELTANO, "state", "get", state_id],
            cwd=REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=False,
            timeout=300,
        )
        assert got.returncode == 0, got.stderr[-2000:]
        events = json.loads(got.stdout)["singer_state"]["bookmarks"]["events"]
        assert (events["shard_count"], events["shard_index"]) == (SHARDS, i)
