"""A corrupt `--state` is one line naming the stream and field, exit 1, before data moves."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import typing as t

import pytest

from scripts.capture_state import SAMPLE_DROP
from tap_mparticle import cursor as cursor_module
from tap_mparticle.cursor import FileCursor
from tap_mparticle.sharding import Shard
from tap_mparticle.state_shape import StateShapeError, check_state
from tap_mparticle.storage import RemoteFile
from tap_mparticle.tap import TapMParticle
from tests.support.files import REPO_ROOT, error_lines
from tests.support.tap import run_cli

if t.TYPE_CHECKING:
    from pathlib import Path

CONFIG = {"bucket_url": "s3://bucket"}
STAMP = "2024-05-03T00:00:00+00:00"

#: (the stream's bookmark, what the one error line must say). The first five are the
#: fuzzing review's inputs.
BAD_BOOKMARKS = [
    (
        {"replication_key": "_sdc_modified_at", "replication_key_value": 5},
        'stream "events": replication_key_value must be an ISO 8601 timestamp',
    ),
    ({"files_read": [1]}, 'stream "events": files_read must be an object'),
    ({"replication_key_value": "garbage"}, "replication_key_value must be an ISO 8601 timestamp"),
    ({"files_read_floor": "zz"}, "files_read_floor must be an ISO 8601 timestamp (in UTC, from"),
    ({"files_read": {"a\nb": 3}}, 'files_read["a\\nb"] must be an ISO 8601 timestamp'),
    ({"replication_key_value": "0001-01-01T00:00:00Z"}, "replication_key_value must be"),
    ({"files_read_floor": "9999-12-31T23:59:59-05:00"}, "files_read_floor must be"),
    ({"replication_key": "updated_at"}, "replication_key must be '_sdc_modified_at'"),
    ({"files_read_versions": ["a"]}, "files_read_versions must be an object of file key to"),
    ({"files_read_versions": {"a": 5}}, 'files_read_versions["a"] must be a string, not 5'),
    (
        {"late_check": {"until": "x"}},
        'late_check.until must be an ISO 8601 timestamp (in UTC, from year 2 to 9999), not "x"',
    ),
    ({"late_check": {"until": STAMP, "count": "1"}}, "late_check.count must be a whole number"),
    ({"late_check": {"until": STAMP, "xor": "zz"}}, "late_check.xor must be a hexadecimal"),
    ({"shard_count": "x"}, 'shard_count must be a whole number from 1, not "x"'),
    ({"shard_count": 2, "shard_index": 2}, "shard_index must be a whole number from 0 to 1"),
    ({"progress_markers": []}, "progress_markers must be an object"),
    ({"partitions": [1]}, "partitions must be a list of objects"),
]


@pytest.mark.parametrize(("bookmark", "message"), BAD_BOOKMARKS)
def test_a_bad_bookmark_field_is_named_with_its_value(bookmark: dict, message: str):
    with pytest.raises(StateShapeError) as raised:
        TapMParticle(
            config={"bucket_url": "s3://bucket"}, state={"bookmarks": {"events": bookmark}}
        )
    assert message in str(raised.value)


@pytest.mark.parametrize(
    ("state", "message"),
    [
        ({"bookmarks": 5}, "bookmarks must be an object of stream bookmarks, not 5"),
        ({"bookmarks": None}, "bookmarks must be an object of stream bookmarks, not null"),
        (
            {"bookmarks": {"events": None}},
            'stream "events": the bookmark must be an object, not null',
        ),
        ({"bookmarks": {"events": 5}}, 'stream "events": the bookmark must be an object, not 5'),
        (
            {"bookmarks": {"x" * 100: []}},
            'stream "' + "x" * 39 + "...: the bookmark must be an object, not []",
        ),
    ],
)
def test_a_bad_bookmarks_object_is_named(state: dict, message: str):
    with pytest.raises(StateShapeError) as raised:
        check_state(state)
    assert str(raised.value) == message


def test_a_long_bad_value_is_quoted_by_its_start_only():
    with pytest.raises(StateShapeError) as raised:
        check_state({"bookmarks": {"events": {"replication_key_value": "9" * 5000}}})
    assert str(raised.value).endswith('not "' + "9" * 39 + "...")


@pytest.mark.parametrize(
    ("state", "message"),
    [
        (BAD_BOOKMARKS[0][0], BAD_BOOKMARKS[0][1]),
        ("bookmarks", "bookmarks must be an object of stream bookmarks, not 5"),
        (BAD_BOOKMARKS[1][0], BAD_BOOKMARKS[1][1]),
        (BAD_BOOKMARKS[2][0], BAD_BOOKMARKS[2][1]),
        (BAD_BOOKMARKS[3][0], BAD_BOOKMARKS[3][1]),
    ],
)
def test_cli_refuses_a_corrupt_state_before_any_stream_moves(
    tmp_path: Path, state: dict | str, message: str
):
    """The audience streams come first: they used to emit records and STATE before the crash."""
    drop = tmp_path / "drop"
    shutil.copytree(SAMPLE_DROP, drop)
    given = {"bookmarks": 5} if state == "bookmarks" else {"bookmarks": {"events": state}}
    # Meltano's wrapper is unwrapped first, then checked the same way.
    run = run_cli({"bucket_url": str(drop)}, tmp_path, {"singer_state": given})
    assert run.returncode == 1
    assert run.messages == []
    (line,) = error_lines(run.stderr)
    assert "tap-state.json: " in line
    assert message in line
    assert "Traceback" not in run.stderr


def test_every_state_the_tap_writes_still_loads(tmp_path: Path):
    """0.1.0's state, the pipeline snapshot, a sharded one and a capped history pass."""
    for path in (
        REPO_ROOT / "tests" / "tap" / "fixtures" / "state-0.1.0.json",
        REPO_ROOT / "tests" / "snapshots" / "pipeline-state.json",
    ):
        check_state(json.loads(path.read_text()))
    drop = tmp_path / "drop"
    shutil.copytree(SAMPLE_DROP, drop)
    first = run_cli({"bucket_url": str(drop), "shard_count": 2, "shard_index": 1}, tmp_path)
    assert first.returncode == 0, first.stderr
    assert any("shard_count" in b for b in first.final_state["bookmarks"].values())
    again = run_cli(
        {"bucket_url": str(drop), "shard_count": 2, "shard_index": 1}, tmp_path, first.final_state
    )
    assert again.returncode == 0, again.stderr
    check_state(capped_history_state())


def capped_history_state() -> dict:
    """A bookmark whose history overflowed, so it holds `files_read_floor` too."""
    bookmark: dict = {}
    files = cursor_module.MAX_FILES_READ + 5
    cursor = FileCursor(bookmark, start_date=None, lookback=dt.timedelta(days=365))
    start = dt.datetime(2024, 5, 1, tzinfo=dt.timezone.utc)
    for index in range(files):
        moment = start + dt.timedelta(seconds=index)
        cursor.mark_read(RemoteFile(f"f{index}", f"file:///f{index}", moment, 1))
    cursor.compact()
    Shard(3, 2).stamp_state(bookmark)
    assert "files_read_floor" in bookmark
    return {"bookmarks": {"events": bookmark}}
