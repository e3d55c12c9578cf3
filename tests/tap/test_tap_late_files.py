"""A file that lands after its look-back window is named in a warning, not skipped quietly."""

from __future__ import annotations

import datetime as dt
import logging
import shutil

from scripts.capture_state import SAMPLE_DROP
from tests.support.files import set_mtime
from tests.support.tap import run_tap

BASE = dt.datetime(2024, 5, 3, 12, 0, tzinfo=dt.timezone.utc)
EVENTS_FILE = SAMPLE_DROP / "mPTravel_20240502000000000000_40647.txt"


def _drop(tmp_path):
    root = tmp_path / "drop"
    for index in range(3):
        path = root / "2024-05-03" / f"App_2024050312000{index}000000_1111{index}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(EVENTS_FILE, path)
        set_mtime(path, BASE + dt.timedelta(minutes=index))
    return root


def _late_warnings(caplog):
    return [r.getMessage() for r in caplog.records if "NOT read" in r.getMessage()]


def test_a_file_later_than_the_window_is_named_with_how_late_and_the_setting(empty_drop, caplog):
    # Over every storage: the LastModified each backend reports drives the check.
    root = empty_drop.root
    for index in range(3):
        path = root / "2024-05-03" / f"App_2024050312000{index}000000_1111{index}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(EVENTS_FILE, path)
        empty_drop.publish(modified_at=BASE + dt.timedelta(minutes=index))
    config = {**empty_drop.config, "lookback_window_minutes": 60}
    first = run_tap(config)
    assert len({r["_sdc_source_file"] for r in first.records("events")}) == 3
    inside = root / "2024-05-03" / "Inside_20240503113000000000_22222.txt"
    shutil.copyfile(EVENTS_FILE, inside)
    empty_drop.publish(modified_at=BASE - dt.timedelta(minutes=30))  # late, inside the window
    too_late = root / "2024-05-03" / "TooLate_20240503100000000000_33333.txt"
    shutil.copyfile(EVENTS_FILE, too_late)
    empty_drop.publish(modified_at=BASE - dt.timedelta(minutes=90))  # 32 min before the window
    with caplog.at_level(logging.WARNING):
        second = run_tap(config, state=first.final_state)
    assert {r["_sdc_source_file"] for r in second.records("events")} == {
        "2024-05-03/Inside_20240503113000000000_22222.txt"
    }
    [warning] = _late_warnings(caplog)
    assert "2024-05-03/TooLate_20240503100000000000_33333.txt" in warning
    assert "32.0 minutes before the look-back window began" in warning
    assert "lookback_window_minutes (now 60) to at least 92" in warning
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        third = run_tap(config, state=second.final_state)
    assert third.records("events") == []
    assert _late_warnings(caplog) == []  # said once, not on every run


def test_several_late_files_are_counted(tmp_path, caplog):
    root = _drop(tmp_path)
    config = {"bucket_url": str(root), "lookback_window_minutes": 10}
    first = run_tap(config)
    for index in range(2):
        path = root / f"Late{index}_20240501000000000000_4444{index}.txt"
        shutil.copyfile(EVENTS_FILE, path)
        set_mtime(path, BASE - dt.timedelta(hours=5 + index))
    with caplog.at_level(logging.WARNING):
        second = run_tap(config, state=first.final_state)
    assert second.records("events") == []
    [warning] = _late_warnings(caplog)
    assert "2 files arrived since the last run" in warning
    assert "lookback_window_minutes (now 10)" in warning


def test_deleting_old_files_is_not_a_late_arrival(tmp_path, caplog):
    root = _drop(tmp_path)
    config = {"bucket_url": str(root), "lookback_window_minutes": 0}
    first = run_tap(config)
    next(root.rglob("App_*0_*.txt")).unlink()
    with caplog.at_level(logging.WARNING):
        run_tap(config, state=first.final_state)
    assert _late_warnings(caplog) == []


def test_one_file_is_said_in_the_singular(tmp_path, caplog):
    root = tmp_path / "drop"
    root.mkdir()
    shutil.copyfile(EVENTS_FILE, root / "App_20240503120000000000_55555.txt")
    with caplog.at_level(logging.INFO):
        run_tap({"bucket_url": str(root)})
    said = [r.getMessage() for r in caplog.records]
    assert any(m.startswith("events: 1 new file of 1 listed") for m in said)
    assert any(m.startswith("events: read 1 file, emitted") for m in said)
    assert any(m.startswith("audience_memberships: 0 new files of 0 listed") for m in said)
