"""Sharded runs: N taps over one drop read disjoint sets of files whose union is the drop."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from typing import TYPE_CHECKING, Any

import pytest
import time_machine
from singer_sdk.exceptions import ConfigValidationError

from scripts.generate_drop import generate_drop
from tap_mparticle.sharding import ShardStateError, shard_of
from tap_mparticle.tap import TapMParticle
from tests.support.files import REPO_ROOT
from tests.support.s3 import s3_config
from tests.support.tap import TapOutput, _parse, run_cli, run_tap
from tests.tap.test_tap_sync import batch_line

if TYPE_CHECKING:
    from pathlib import Path

UTC = dt.timezone.utc
T0 = dt.datetime(2024, 6, 1, tzinfo=UTC)
SHARDS = 3


class Bucket:
    """Puts files with a chosen LastModified into a local directory or a moto bucket."""

    def __init__(self, root: Path, config: dict[str, Any], s3: tuple[Any, str] | None) -> None:
        self.root = root
        self.config = config
        self.s3 = s3

    def put(self, key: str, data: bytes, when: dt.datetime) -> None:
        if self.s3 is None:
            path = self.root / key
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            os.utime(path, (when.timestamp(), when.timestamp()))
            return
        client, bucket = self.s3
        # moto runs in this process: its clock, travelled, stamps LastModified.
        with time_machine.travel(when, tick=False):
            client.put_object(Bucket=bucket, Key=key, Body=data)


@pytest.fixture(params=["local", "s3"])
def bucket(request, tmp_path: Path) -> Bucket:
    root = tmp_path / "drop"
    root.mkdir()
    if request.param == "local":
        return Bucket(root, {"bucket_url": str(root)}, None)
    client = request.getfixturevalue("s3_client")
    name = request.getfixturevalue("s3_bucket")
    config = s3_config(request.getfixturevalue("moto_endpoint"), name)
    return Bucket(root, config, (client, name))


def run_shards_concurrently(
    config: dict[str, Any], states: list[dict[str, Any] | None], work: Path
) -> list[TapOutput]:
    """Start one tap process per shard at once, then collect each one's output."""
    work.mkdir()
    procs = []
    for index, state in enumerate(states):
        config_file = work / f"config-{index}.json"
        config_file.write_text(
            json.dumps({**config, "shard_count": len(states), "shard_index": index})
        )
        args = [sys.executable, "-m", "tap_mparticle", "--config", str(config_file)]
        if state is not None:
            state_file = work / f"state-{index}.json"
            state_file.write_text(json.dumps(state))
            args += ["--state", str(state_file)]
        procs.append(subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE))
    outputs = []
    for proc in procs:
        stdout, stderr = proc.communicate(timeout=300)
        outputs.append(TapOutput(_parse(stdout), proc.returncode, stderr.decode()))
    for out in outputs:
        assert out.returncode == 0, out.stderr[-3000:]
    return outputs


def event_keys(out: TapOutput) -> set[tuple[str, int, int]]:
    keys = [
        (r["_sdc_source_file"], r["_sdc_source_lineno"], r["_sdc_event_index"])
        for r in out.records("events")
    ]
    assert len(keys) == len(set(keys))
    return set(keys)


def file_names(out: TapOutput) -> set[str]:
    return {r["_sdc_source_file"].rsplit("/", 1)[-1] for r in out.records("events")}


def assert_disjoint(parts: list[set[Any]]) -> None:
    for i, part in enumerate(parts):
        for other in parts[i + 1 :]:
            assert not part & other, "an event was read by two shards"


def test_three_concurrent_shards_read_the_drop_exactly_once(bucket, tmp_path):
    source = tmp_path / "generated"
    summary = generate_drop(source, events=600, seed=13, per_file=20)
    paths = sorted(p for p in source.rglob("*") if p.is_file())
    for i, path in enumerate(paths):
        bucket.put(
            path.relative_to(source).as_posix(), path.read_bytes(), T0 + i * dt.timedelta(seconds=5)
        )
    data_files = {p.name for p in paths if "Verification" not in p.name}

    first = run_shards_concurrently(bucket.config, [None] * SHARDS, tmp_path / "run1")
    keys = [event_keys(out) for out in first]
    assert_disjoint(keys)
    assert sum(len(k) for k in keys) == summary.events
    names = [file_names(out) for out in first]
    assert_disjoint(names)
    assert set().union(*names) == data_files
    assert all(names), "every shard owns some of the 30 files"
    for index, out in enumerate(first):
        state = out.final_state["bookmarks"]["events"]
        assert (state["shard_count"], state["shard_index"]) == (SHARDS, index)
        assert set(state["files_read"]) <= {
            k
            for k in (p.relative_to(source).as_posix() for p in paths)
            if k.endswith(tuple(names[index]))
        }

    # Between runs: for each shard's bookmark, files stamped in that very second and
    # files stamped 30 minutes before it (inside the 120-minute look-back window),
    # plus files newer than everything.
    bookmarks = [
        dt.datetime.fromisoformat(out.final_state["bookmarks"]["events"]["replication_key_value"])
        for out in first
    ]
    stamps: dict[str, dt.datetime] = {}
    for index, mark in enumerate(bookmarks):
        for n in range(3):
            stamps[f"same_{index}_{n}.txt"] = mark
            stamps[f"late_{index}_{n}.txt"] = mark - dt.timedelta(minutes=30)
    for n in range(3):
        stamps[f"new_{n}.txt"] = max(bookmarks) + dt.timedelta(seconds=30)
    for name, when in stamps.items():
        bucket.put(f"2024-06-01/{name}", batch_line(2, name=name).encode(), when)

    second = run_shards_concurrently(
        bucket.config, [out.final_state for out in first], tmp_path / "run2"
    )
    new_keys = [event_keys(out) for out in second]
    assert_disjoint(keys + new_keys)
    new_names = [file_names(out) for out in second]
    assert_disjoint(new_names)
    assert set().union(*new_names) == set(stamps)
    assert sum(len(k) for k in new_keys) == 2 * len(stamps)
    # The scenario really has late and same-second files for the shards that own them.
    owned_late = [
        name
        for index, part in enumerate(new_names)
        for name in part
        if stamps[name] <= bookmarks[index]
    ]
    assert any(n.startswith("same_") for n in owned_late)
    assert any(n.startswith("late_") for n in owned_late)

    third = run_shards_concurrently(
        bucket.config, [out.final_state for out in second], tmp_path / "run3"
    )
    assert [out.records("events") for out in third] == [[], [], []]


def test_membership_is_a_stable_hash_of_the_key():
    # Pinned: another hash (or Python's salted hash()) would move files between
    # shards under states that already exist.
    keys = [f"2024-05-01/mPTravel_{n}.txt" for n in range(12)]
    assert [shard_of(key, 4) for key in keys] == [3, 3, 3, 2, 0, 1, 0, 0, 3, 0, 0, 2]
    counts = [0] * 4
    for n in range(4000):
        counts[shard_of(f"2024-05-01/App_2024050100000000000{n}_1.txt", 4)] += 1
    assert all(900 < c < 1100 for c in counts), counts


@pytest.fixture
def small_drop(tmp_path) -> dict[str, Any]:
    root = tmp_path / "small"
    for n in range(6):
        path = root / "2024-05-01" / f"App_{n}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(batch_line(1, name=f"E{n}"))
    return {"bucket_url": str(root)}


def test_a_state_of_another_shard_count_is_refused(small_drop):
    sharded = run_tap({**small_drop, "shard_count": 3, "shard_index": 0}).final_state
    with pytest.raises(ShardStateError) as refused:
        TapMParticle(config={**small_drop, "shard_count": 4, "shard_index": 0}, state=sharded)
    message = str(refused.value)
    assert "written by shard 0 of 3" in message
    assert "this run is shard 0 of 4" in message
    assert "set shard_count back to 3" in message
    assert "\n" not in message
    # Back to one tap: the shard's state covers a third of the drop, so it is refused too.
    with pytest.raises(ShardStateError, match="this run is unsharded"):
        TapMParticle(config=small_drop, state=sharded)


def test_an_unsharded_state_is_refused_by_a_sharded_run(small_drop):
    unsharded = run_tap(small_drop).final_state
    assert "shard_count" not in unsharded["bookmarks"]["events"]
    with pytest.raises(ShardStateError, match="written by unsharded and this run is shard 1 of 2"):
        TapMParticle(config={**small_drop, "shard_count": 2, "shard_index": 1}, state=unsharded)


def test_two_shards_cannot_share_one_state(small_drop):
    state = run_tap({**small_drop, "shard_count": 3, "shard_index": 1}).final_state
    with pytest.raises(ShardStateError, match="give every shard its own state"):
        TapMParticle(config={**small_drop, "shard_count": 3, "shard_index": 2}, state=state)


def test_the_refusal_is_one_line_and_a_failed_exit(small_drop, tmp_path):
    sharded = run_tap({**small_drop, "shard_count": 2, "shard_index": 0}).final_state
    done = run_cli({**small_drop, "shard_count": 3, "shard_index": 0}, tmp_path, state=sharded)
    assert done.returncode == 1
    assert done.messages == [], "refused before any message"
    assert "Traceback" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if "shard_count back to 2" in line]
    assert len(errors) == 1


def test_a_shard_with_no_state_yet_starts_fresh(small_drop):
    # An empty state (a new shard, or a shard that has read nothing) is any shard's.
    out = run_tap({**small_drop, "shard_count": 2, "shard_index": 1}, state={})
    assert out.records("events")


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ({"shard_count": 0}, "shard_count must be a whole number, 1 or more, not 0"),
        ({"shard_count": 3, "shard_index": 3}, "shard_index must be 0 to 2 (0-based)"),
        ({"shard_index": -1}, "shard_index must be 0 to 0"),
        # The schema's enum refuses it first, naming the value.
        ({"date_folders_by": "hour"}, "'hour' is not one of ['event_time', 'upload_time', 'none']"),
    ],
)
def test_bad_shard_and_folder_settings_are_named(small_drop, extra, expected):
    with pytest.raises(ConfigValidationError) as refused:
        TapMParticle(config={**small_drop, **extra})
    assert expected in " ".join([str(refused.value), *refused.value.errors])


def test_none_lists_date_named_folders_before_start_date(tmp_path):
    # Folder names that look like dates but are not (date_folders_by: none) are listed.
    path = tmp_path / "drop" / "2020-01-01" / "App_1.txt"
    path.parent.mkdir(parents=True)
    path.write_text(batch_line(1, name="InDateLikeFolder"))
    config = {"bucket_url": str(tmp_path / "drop"), "start_date": "2024-01-01T00:00:00Z"}
    assert run_tap(config).records("events") == []
    names = [
        r["event_name"] for r in run_tap({**config, "date_folders_by": "none"}).records("events")
    ]
    assert names == ["InDateLikeFolder"]


def test_every_stream_is_sharded_alike():
    # The sample drop has events and every kind of audience file; two shards split each
    # stream's records between them with nothing lost or doubled.
    config = {"bucket_url": str(REPO_ROOT / "samples" / "drop")}
    streams = {"events", "batches", "audience_memberships", "audience_user_attributes"}
    whole = run_tap(config, streams=streams)
    halves = [
        run_tap({**config, "shard_count": 2, "shard_index": i}, streams=streams) for i in range(2)
    ]
    for stream in sorted(streams):
        expected = sorted(json.dumps(r, sort_keys=True) for r in whole.records(stream))
        assert expected, stream
        parts = [[json.dumps(r, sort_keys=True) for r in out.records(stream)] for out in halves]
        assert all(parts), stream
        assert sorted(parts[0] + parts[1]) == expected, stream
