"""Changing shard_count: the old shards' states, merged, let the new shards go on exactly."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys

from scripts.generate_drop import generate_drop
from tap_mparticle.reshard import main as reshard
from tests.support.tap import run_tap
from tests.tap.test_tap_sync import batch_line

UTC = dt.timezone.utc
T0 = dt.datetime(2024, 6, 1, tzinfo=UTC)


def keys(out) -> list[tuple[str, int, int]]:
    return [
        (r["_sdc_source_file"], r["_sdc_source_lineno"], r["_sdc_event_index"])
        for r in out.records("events")
    ]


def test_three_shards_become_two_without_rereading_or_losing_a_file(tmp_path):
    root = tmp_path / "drop"
    summary = generate_drop(root, events=300, seed=3, per_file=20)
    for i, path in enumerate(sorted(p for p in root.rglob("*") if p.is_file())):
        stamp = (T0 + dt.timedelta(seconds=5 * i)).timestamp()
        os.utime(path, (stamp, stamp))
    config = {"bucket_url": str(root)}
    old = [run_tap({**config, "shard_count": 3, "shard_index": i}) for i in range(3)]
    assert sum(len(keys(out)) for out in old) == summary.events
    old_files = []
    for i, out in enumerate(old):
        old_files.append(tmp_path / f"old-{i}.json")
        # As `meltano state get` prints it.
        old_files[-1].write_text(json.dumps({"singer_state": out.final_state}))

    command = [sys.executable, "-m", "tap_mparticle.reshard", "--shard-count", "2"]
    done = subprocess.run(
        [*command, "--out-dir", str(tmp_path / "new"), *map(str, old_files)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    new_states = [
        json.loads((tmp_path / "new" / f"state-{i}.json").read_text())["singer_state"]
        for i in range(2)
    ]

    # Nothing read before is read again ...
    new_config = {**config, "shard_count": 2}
    again = [run_tap({**new_config, "shard_index": i}, state=new_states[i]) for i in range(2)]
    assert [keys(out) for out in again] == [[], []]
    # ... and a late file, a same-second file and a new one are each read once.
    latest = max(
        dt.datetime.fromisoformat(out.final_state["bookmarks"]["events"]["replication_key_value"])
        for out in old
    )
    added = {
        "late.txt": latest - dt.timedelta(minutes=30),
        "same.txt": latest,
        "new.txt": latest + dt.timedelta(minutes=1),
    }
    for name, when in added.items():
        path = root / "2024-06-01" / name
        path.parent.mkdir(exist_ok=True)
        path.write_text(batch_line(1, name=name))
        os.utime(path, (when.timestamp(), when.timestamp()))
    runs = [
        run_tap({**new_config, "shard_index": i}, state=again[i].final_state or new_states[i])
        for i in range(2)
    ]
    names = sorted(r["event_name"] for out in runs for r in out.records("events"))
    assert names == sorted(added)


def test_a_missing_old_shard_is_refused_in_one_line(tmp_path, capsys):
    root = tmp_path / "drop"
    (root / "2024-05-01").mkdir(parents=True)
    for n in range(6):
        (root / "2024-05-01" / f"App_{n}.txt").write_text(batch_line(1))
    states = []
    for i in range(2):  # shard 2 of 3 is left out
        out = run_tap({"bucket_url": str(root), "shard_count": 3, "shard_index": i})
        states.append(tmp_path / f"s{i}.json")
        states[-1].write_text(json.dumps(out.final_state))
    code = reshard(["--shard-count", "2", "--out-dir", str(tmp_path / "new"), *map(str, states)])
    assert code == 1
    err = capsys.readouterr().err.strip()
    assert err == (
        "reshard: need the state of every one of the 3 old shards exactly once, "
        "got shard indexes [0, 1]"
    )
    assert not (tmp_path / "new").exists()


def test_a_state_the_tap_would_refuse_is_refused_naming_its_file(tmp_path, capsys):
    """Checked as the tap checks `--state`: one line and nothing written, no traceback."""
    good = {"bookmarks": {"events": {"replication_key_value": "2024-05-01T00:00:00+00:00"}}}
    cases = {
        # Not wrapped state: dict() of a string used to raise a ValueError.
        "wrapped-text.json": ({"singer_state": "oops"}, "not a Singer state"),
        "no-bookmarks.json": ({"foo": 1}, "not a Singer state"),
        # An int where the bookmarks go: used to end in an AttributeError.
        "bookmarks-int.json": ({"singer_state": {"bookmarks": 5}}, "bookmarks must be an object"),
        # Would be merged and passed on to every new shard, then refused by the tap.
        "bad-field.json": (
            {"bookmarks": {"events": {"replication_key_value": 7}}},
            'stream "events": replication_key_value',
        ),
    }
    for name, (body, words) in cases.items():
        bad = tmp_path / name
        bad.write_text(json.dumps(body))
        fine = tmp_path / "fine.json"
        fine.write_text(json.dumps(good))
        out_dir = tmp_path / "new"
        code = reshard(["--shard-count", "2", "--out-dir", str(out_dir), str(fine), str(bad)])
        err = capsys.readouterr().err.strip()
        assert code == 1, name
        assert err.startswith(f"reshard: {bad}"), err
        assert words in err, err
        assert "\n" not in err
        assert not out_dir.exists()


def test_a_rewrite_in_the_bookmarks_second_is_read_once_after_resharding(tmp_path):
    """The old shards' versions pass to the new shards with their keys."""
    root = tmp_path / "drop"
    root.mkdir()
    stamp = T0.timestamp()
    names = [f"f{n}.txt" for n in range(6)]
    for name in names:
        (root / name).write_text(batch_line(1, name=name))
        os.utime(root / name, (stamp, stamp))
    config = {"bucket_url": str(root)}
    old = [run_tap({**config, "shard_count": 2, "shard_index": i}) for i in range(2)]
    old_files = []
    for i, out in enumerate(old):
        old_files.append(tmp_path / f"old-{i}.json")
        old_files[-1].write_text(json.dumps(out.final_state))
    out_dir = tmp_path / "new"
    assert reshard(["--shard-count", "3", "--out-dir", str(out_dir), *map(str, old_files)]) == 0
    states = [json.loads((out_dir / f"state-{i}.json").read_text()) for i in range(3)]

    (root / "f4.txt").write_text(batch_line(2, name="f4 rewritten"))
    os.utime(root / "f4.txt", (stamp, stamp))
    (root / "f5.txt").write_text(batch_line(1, name="f5.txt"))  # same bytes again
    os.utime(root / "f5.txt", (stamp, stamp))
    runs = [
        run_tap({**config, "shard_count": 3, "shard_index": i}, state=states[i]) for i in range(3)
    ]
    read = sorted(r["event_name"] for out in runs for r in out.records("events"))
    assert read == ["f4 rewritten", "f4 rewritten"]
