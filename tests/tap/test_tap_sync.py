import datetime as dt
import gzip
import json

import jsonschema
import pytest

from tap_mparticle import client as client_module
from tap_mparticle import storage
from tap_mparticle.tap import TapMParticle
from tests.support.files import set_mtime
from tests.support.s3 import s3_config
from tests.support.tap import run_tap


def validator():
    schema = TapMParticle(config={"bucket_url": "/nonexistent"}, validate_config=False)
    events_schema = schema.streams["events"].schema
    return jsonschema.Draft7Validator(events_schema, format_checker=jsonschema.FormatChecker())


def batch_line(n_events: int, name: str = "Late", mpid: int = 42) -> str:
    events = [
        {
            "event_type": "custom_event",
            "data": {"event_name": name, "timestamp_unixtime_ms": "1714521600000"},
        }
        for _ in range(n_events)
    ]
    return json.dumps({"events": events, "mpid": str(mpid), "user_identities": []}) + "\n"


def test_every_event_once_typed_and_valid(drop):
    out = run_tap(drop.config)
    records = out.records("events")
    assert len(records) == drop.summary.events
    check = validator()
    for record in records:
        check.validate(record)
    keys = {
        (r["_sdc_source_file"], r["_sdc_source_lineno"], r["_sdc_event_index"]) for r in records
    }
    assert len(keys) == len(records), "primary keys are unique"
    assert {r["event_type"] for r in records} == set(drop.summary.by_type)
    assert not any("Verification" in r["_sdc_source_file"] for r in records)
    assert all(isinstance(r["mpid"], int) for r in records)
    assert any(r["mpid"] < 0 for r in records)
    assert {r["_sdc_source_file"].rsplit("/", 1)[-1] for r in records} == {
        k.rsplit("/", 1)[-1] for k in drop.summary.keys
    }
    schema_message = out.schema("events")
    assert schema_message["key_properties"] == [
        "_sdc_source_file",
        "_sdc_source_lineno",
        "_sdc_event_index",
    ]
    assert schema_message["bookmark_properties"] == ["_sdc_modified_at"]


def test_primary_keys_are_stable_across_rereads(drop):
    first = run_tap(drop.config).records("events")
    second = run_tap(drop.config).records("events")  # no state: a full re-read
    key = lambda r: (r["_sdc_source_file"], r["_sdc_source_lineno"], r["_sdc_event_index"])  # noqa: E731
    assert {key(r): r["data"] for r in first} == {key(r): r["data"] for r in second}


def test_a_clean_rerun_emits_nothing(drop):
    first = run_tap(drop.config)
    again = run_tap(drop.config, state=first.final_state)
    assert again.records("events") == []
    assert (
        again.final_state["bookmarks"]["events"]["files_read"]
        == (first.final_state["bookmarks"]["events"]["files_read"])
    )


def test_state_after_each_file_lets_a_killed_run_resume_without_rereading(drop, monkeypatch):
    # STATE is spaced out on big runs (tests/hardening checks that); here after each file.
    monkeypatch.setattr(client_module, "STATE_EVERY_FILES", 1)
    full = run_tap(drop.config)
    all_keys = sorted(
        (r["_sdc_source_file"], r["_sdc_source_lineno"], r["_sdc_event_index"])
        for r in full.records("events")
    )
    # Messages up to the STATE after the events stream's second file are what a run
    # killed then had written.
    states_seen = 0
    cut = 0
    in_events = False
    for index, message in enumerate(full.messages):
        in_events = in_events or message.get("stream") == "events"
        if in_events and message["type"] == "STATE":
            states_seen += 1
            if states_seen == 2:
                cut = index
                break
    assert cut, "a STATE message follows each file"
    before = [m["record"] for m in full.messages[:cut] if m["type"] == "RECORD"]
    resumed = run_tap(drop.config, state=full.messages[cut]["value"]).records("events")
    union = sorted(
        (r["_sdc_source_file"], r["_sdc_source_lineno"], r["_sdc_event_index"])
        for r in before + resumed
    )
    assert union == all_keys
    assert before
    assert resumed


def test_date_folders_before_start_date_are_not_listed(drop):
    # This file is fresh (mtime now) but sits in a folder dated before start_date.
    old = drop.root / "2024-04-30" / "mPTravel_20240430000000000000_11111.txt"
    old.parent.mkdir()
    old.write_text(batch_line(3, name="FromOldFolder"))
    drop.publish()
    config = {**drop.config, "start_date": "2024-05-01T00:00:00Z"}
    names = {r["event_name"] for r in run_tap(config).records("events")}
    assert "FromOldFolder" not in names
    # Without start_date the same file is read: the folder, not the file, was skipped.
    names = {r["event_name"] for r in run_tap(drop.config).records("events")}
    assert "FromOldFolder" in names


def test_events_prefix_reads_only_that_folder(drop):
    folder = drop.root / "mp-events" / "2024-05-03"
    folder.mkdir(parents=True)
    (folder / "app_20240503000000000000_22222.txt").write_bytes(
        gzip.compress(batch_line(2, name="InFolder").encode(), mtime=0)
    )
    drop.publish()
    records = run_tap({**drop.config, "events_prefix": "/mp-events"}).records("events")
    assert [r["event_name"] for r in records] == ["InFolder", "InFolder"]
    # The key is relative to bucket_url + events_prefix; the URI says where it was read.
    assert records[0]["_sdc_source_file"] == "2024-05-03/app_20240503000000000000_22222.txt"
    assert records[0]["_sdc_source_uri"].endswith(
        "mp-events/2024-05-03/app_20240503000000000000_22222.txt"
    )


def test_start_date_skips_files_modified_before_it(drop):
    future = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=1)).isoformat()
    assert run_tap({**drop.config, "start_date": future}).records("events") == []


def test_same_second_and_late_files_are_read_exactly_once(empty_drop):
    day = empty_drop.root / "2024-05-01"
    day.mkdir(parents=True)
    # Whole seconds: S3 and Azure report LastModified to the second.
    bookmark = dt.datetime.now(dt.timezone.utc).replace(microsecond=0) - dt.timedelta(hours=1)
    (day / "a_1.txt").write_text(batch_line(1, "First"))
    empty_drop.publish(modified_at=bookmark)
    config = {**empty_drop.config, "lookback_window_minutes": 60}
    run1 = run_tap(config)
    assert [r["event_name"] for r in run1.records("events")] == ["First"]
    assert run1.final_state["bookmarks"]["events"]["replication_key_value"].startswith(
        bookmark.strftime("%Y-%m-%dT%H:%M:%S")
    )

    (day / "a_2.txt").write_text(batch_line(1, "SameSecond"))
    empty_drop.publish(modified_at=bookmark)
    (day / "a_0.txt").write_text(batch_line(1, "Late"))
    empty_drop.publish(modified_at=bookmark - dt.timedelta(minutes=30))
    (day / "a_00.txt").write_text(batch_line(1, "TooLate"))
    empty_drop.publish(modified_at=bookmark - dt.timedelta(minutes=90))

    run2 = run_tap(config, state=run1.final_state)
    assert sorted(r["event_name"] for r in run2.records("events")) == ["Late", "SameSecond"]
    run3 = run_tap(config, state=run2.final_state)
    assert run3.records("events") == []
    files_read = run3.final_state["bookmarks"]["events"]["files_read"]
    assert set(files_read) == {"2024-05-01/a_0.txt", "2024-05-01/a_1.txt", "2024-05-01/a_2.txt"}


def test_state_forgets_files_that_left_the_window(tmp_path):
    root = tmp_path / "drop"
    root.mkdir()
    base = dt.datetime(2024, 5, 1, tzinfo=dt.timezone.utc)
    for hour in range(6):
        path = root / f"f_{hour}.txt"
        path.write_text(batch_line(1))
        set_mtime(path, base + dt.timedelta(hours=hour))
    out = run_tap({"bucket_url": str(root), "lookback_window_minutes": 120})
    assert len(out.records("events")) == 6
    assert set(out.final_state["bookmarks"]["events"]["files_read"]) == {
        "f_3.txt",
        "f_4.txt",
        "f_5.txt",
    }


def test_empty_objects_and_folder_markers_are_ignored(s3_client, s3_bucket, moto_endpoint):
    s3_client.put_object(Bucket=s3_bucket, Key="2024-05-01/", Body=b"")
    s3_client.put_object(Bucket=s3_bucket, Key="2024-05-01/empty.txt", Body=b"")
    s3_client.put_object(Bucket=s3_bucket, Key="2024-05-01/real.txt", Body=batch_line(2).encode())
    out = run_tap(s3_config(moto_endpoint, s3_bucket))
    assert len(out.records("events")) == 2
    assert list(out.final_state["bookmarks"]["events"]["files_read"]) == ["2024-05-01/real.txt"]


def test_hidden_and_empty_local_files_are_ignored(tmp_path):
    root = tmp_path / "drop"
    root.mkdir()
    (root / ".DS_Store").write_bytes(b"\x00\x01binary")
    (root / "empty.txt").write_bytes(b"")
    (root / "real.txt").write_text(batch_line(1))
    out = run_tap({"bucket_url": f"file://{root}"})
    assert len(out.records("events")) == 1
    assert list(out.final_state["bookmarks"]["events"]["files_read"]) == ["real.txt"]


def test_listing_pages_through_more_keys_than_one_page_holds(
    s3_client, s3_bucket, moto_endpoint, monkeypatch
):
    # S3 pages at 1,000 keys; a page of 10 walks the same continuation-token path over 25 keys.
    monkeypatch.setattr(storage, "LIST_PAGE_SIZE", 10)
    body = batch_line(1).encode()
    for i in range(25):
        s3_client.put_object(Bucket=s3_bucket, Key=f"2024-05-01/app_{i:05d}.txt", Body=body)
    out = run_tap(s3_config(moto_endpoint, s3_bucket))
    assert len(out.records("events")) == 25
    assert len({r["_sdc_source_file"] for r in out.records("events")}) == 25


@pytest.mark.parametrize("concurrency", [1, 3])
def test_download_concurrency_does_not_change_output(drop, concurrency):
    records = run_tap({**drop.config, "download_concurrency": concurrency}).records("events")
    assert [
        (r["_sdc_source_file"], r["_sdc_source_lineno"], r["_sdc_event_index"]) for r in records
    ] == [
        (r["_sdc_source_file"], r["_sdc_source_lineno"], r["_sdc_event_index"])
        for r in run_tap(drop.config).records("events")
    ]
