"""date_folders_by: upload_time lists only the folders of the read window, counted on the wire."""

from __future__ import annotations

import datetime as dt
import os

import time_machine

from tap_mparticle.folders import folder_date
from tests.support.proxy import counting_proxy
from tests.support.s3 import s3_config
from tests.support.tap import run_tap
from tests.tap.test_tap_sync import batch_line

UTC = dt.timezone.utc
FIRST_DAY = dt.date(2025, 1, 1)
DAYS = 365


def names(out) -> list[str]:
    return [r["event_name"] for r in out.records("events")]


def test_upload_time_lists_only_the_folders_of_the_window(s3_client, s3_bucket, moto_endpoint):
    # A year of upload-time folders, one small file each, stamped at noon of its day
    # (moto runs in this process, so its travelled clock stamps LastModified).
    with time_machine.travel(dt.datetime(2025, 1, 1, tzinfo=UTC), tick=False) as clock:
        for n in range(DAYS):
            day = FIRST_DAY + dt.timedelta(days=n)
            clock.move_to(dt.datetime(day.year, day.month, day.day, 12, tzinfo=UTC))
            key = f"{day.isoformat()}/App_{day:%Y%m%d}120000000000_{n}.txt"
            s3_client.put_object(Bucket=s3_bucket, Key=key, Body=batch_line(1, f"Day{n}").encode())

    with counting_proxy(moto_endpoint) as (endpoint, log):
        config = s3_config(endpoint, s3_bucket, date_folders_by="upload_time")
        first = run_tap({**config, "start_date": "2025-12-31T00:00:00Z"}, streams={"events"})
        assert names(first) == ["Day364"]
        # A first run has no window yet: start_date (less a day) bounds the listing.
        assert sorted(log.list_prefixes(s3_bucket)) == ["", "2025-12-30/", "2025-12-31/"]

        with time_machine.travel(dt.datetime(2026, 1, 1, 0, 30, tzinfo=UTC), tick=False):
            s3_client.put_object(
                Bucket=s3_bucket,
                Key="2026-01-01/App_20260101003000000000_1.txt",
                Body=batch_line(2, "New").encode(),
            )
        log.clear()
        second = run_tap(config, state=first.final_state, streams={"events"})
        assert names(second) == ["New", "New"]
        # The root, and the folders from a day before the window (bookmark 2025-12-31
        # 12:00 minus 120 minutes) on: 4 LIST requests, not 367.
        assert sorted(log.list_prefixes(s3_bucket)) == [
            "",
            "2025-12-30/",
            "2025-12-31/",
            "2026-01-01/",
        ]

        # By event time any old folder can get a new file, so all are listed.
        log.clear()
        event_time = {**config, "date_folders_by": "event_time"}
        third = run_tap(event_time, state=first.final_state, streams={"events"})
        assert names(third) == ["New", "New"]
        assert len(log.list_prefixes(s3_bucket)) == DAYS + 2


def test_a_start_date_with_an_offset_is_compared_with_folder_days_in_utc(tmp_path):
    """00:00+02:00 on 2024-05-02 is 22:00 UTC on 2024-05-01: that folder is listed."""
    root = tmp_path / "drop"
    for day, hour, name in (("2024-05-01", 23, "AfterStart"), ("2024-04-30", 12, "Before")):
        path = root / day / f"App_{name}.txt"
        path.parent.mkdir(parents=True)
        path.write_text(batch_line(1, name))
        stamp = dt.datetime.fromisoformat(f"{day}T{hour:02d}:00:00+00:00").timestamp()
        os.utime(path, (stamp, stamp))
    for start in ("2024-05-02T00:00:00+02:00", "2024-05-01T22:00:00Z"):
        out = run_tap({"bucket_url": str(root), "start_date": start})
        assert names(out) == ["AfterStart"], start


def test_upload_time_trusts_the_folder_date_and_event_time_does_not(tmp_path):
    # A file that arrives late in an old folder (as "by event time" allows) is read
    # by event_time and, as upload_time promises it cannot happen, not listed there.
    root = tmp_path / "drop"
    config = {"bucket_url": str(root), "lookback_window_minutes": 60}
    recent = root / "2024-06-10" / "App_1.txt"
    recent.parent.mkdir(parents=True)
    recent.write_text(batch_line(1, "Recent"))
    stamp = dt.datetime(2024, 6, 10, 12, tzinfo=UTC).timestamp()
    os.utime(recent, (stamp, stamp))
    first = run_tap({**config, "date_folders_by": "upload_time"})
    assert names(first) == ["Recent"]

    late = root / "2024-06-01" / "App_2.txt"
    late.parent.mkdir()
    late.write_text(batch_line(1, "LateInOldFolder"))
    os.utime(late, (stamp, stamp))  # stamped inside the window, filed in an old folder
    upload = run_tap({**config, "date_folders_by": "upload_time"}, state=first.final_state)
    assert names(upload) == []
    event = run_tap({**config, "date_folders_by": "event_time"}, state=first.final_state)
    assert names(event) == ["LateInOldFolder"]


def test_a_folder_of_non_ascii_digits_is_no_date_folder_and_is_read(tmp_path):
    # "²⁰²⁴" passes str.isdigit() but not int(): it once crashed the listing.
    assert folder_date("²⁰²⁴/") is None
    assert folder_date("2024/²⁰/") is None
    arabic_indic = "\u0662\u0660\u0662\u0664-\u0660\u0665-\u0660\u0661/"  # 2024-05-01
    assert folder_date(arabic_indic) is None  # other decimal digits: not mParticle's
    assert folder_date("2024/") == dt.date(2024, 12, 31)
    # Four digits before S3 existed are an app or workspace id, not a year.
    assert folder_date("1234/") is None
    assert folder_date("acme/1234/05/") is None
    assert folder_date("1234/2024-05-10/") == dt.date(2024, 5, 10)
    root = tmp_path / "drop"
    (root / "²⁰²⁴").mkdir(parents=True)
    (root / "²⁰²⁴" / "App_1.txt").write_text(batch_line(1, "Superscript"))
    out = run_tap({"bucket_url": str(root), "start_date": "2024-01-01T00:00:00Z"})
    assert names(out) == ["Superscript"]


def test_an_app_id_folder_of_four_digits_is_listed_whatever_start_date_says(tmp_path):
    """`1234/` read as the year 1234 was wholly before `start_date`: never listed."""
    root = tmp_path / "drop"
    stamp = dt.datetime(2024, 6, 10, 12, tzinfo=UTC).timestamp()
    for folder, name in (("1234", "InAppFolder"), ("1234/2024-05-10", "InItsDateFolder")):
        path = root / folder / f"App_{name}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(batch_line(1, name))
        os.utime(path, (stamp, stamp))
    out = run_tap({"bucket_url": str(root), "start_date": "2024-05-01T00:00:00Z"})
    assert sorted(names(out)) == ["InAppFolder", "InItsDateFolder"]


def test_folders_left_unlisted_for_their_date_are_said(tmp_path, caplog):
    """An app id from 2006 on (`2019/`) is still read as a year: not silently, now.

    The first by name is named, whatever order the storage lists in.
    """
    root = tmp_path / "drop"
    for folder in ("2024-04-30", "2019", "2024-05-02"):
        (root / folder).mkdir(parents=True)
        (root / folder / "App_1.txt").write_text(batch_line(1, folder))
    with caplog.at_level("INFO"):
        out = run_tap({"bucket_url": str(root), "start_date": "2024-05-01T00:00:00Z"})
    assert names(out) == ["2024-05-02"]
    assert (
        "events: 2 date folders before 2024-05-01 not listed (date_folders_by: event_time), "
        "the first '2019/'"
    ) in caplog.text
