"""The `batches` stream, back-to-back (Firehose) event files, and batch recognition."""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any

import jsonschema
import pytest

from tap_mparticle.events import NotABatchError, batch_record
from tests.support.files import write
from tests.support.s3 import STORAGES, serve_drop
from tests.support.tap import catalog_selecting, run_cli, run_tap

if TYPE_CHECKING:
    from pathlib import Path

# One of each kind of batch mParticle's outputs write, in the outbound shape.
FULL_BATCH: dict[str, Any] = {
    "events": [
        {
            "data": {
                "event_name": "Play",
                "custom_event_type": "media",
                "timestamp_unixtime_ms": "1714521600123",
                "event_id": "-12",
                "session_id": 77,
                "message_id": 5,
            },
            "event_type": "custom_event",
        }
    ],
    "user_identities": [
        {"identity_type": "customer_id", "identity": "c-1", "timestamp_unixtime_ms": 1540483995196},
        {"identity_type": "email", "identity": "c1@example.com", "created_this_batch": True},
    ],
    "user_attributes": {"$FirstName": "Zoë", "tags": ["a", "b"]},
    "deleted_user_attributes": ["old_tier"],
    "device_info": {"platform": "iOS"},
    "application_info": {"application_name": "App"},
    "consent_state": {
        "gdpr": {"marketing": {"consented": True, "timestamp_unixtime_ms": 1}},
        "ccpa": {"data_sale_opt_out": {"consented": False, "timestamp_unixtime_ms": 2}},
    },
    "context": {"data_plan": {"plan_id": "travel", "plan_version": 3}},
    "integration_attributes": {"160": {"sessionId": "abc"}},
    "partner_identities": {"Acme_Id": "p-9"},
    "source_info": {"channel": "native", "is_historical": False},
    "source_request_id": "req-1",
    "sdk_version": "8.1.0",
    "ip": "203.0.113.7",
    "mp_deviceid": "0b8f5b2f-0c1d-4f7e-9a4b-1a2b3c4d5e6f",
    "mpid": "-8203932131457467343",
    "batch_id": 1287273029578014331,
    "timestamp_unixtime_ms": "1714521600999",
    "schema_version": 2,
    "message_type": "events",
    "unique_id": "u-1",
    "environment": "production",
    "future_field": {"kept": True},
}
# "Send Batches without Events": how attribute and identity changes are forwarded.
USER_UPDATE = {
    "user_identities": {"customer_id": "c-2"},
    "user_attributes": {"tier": "gold"},
    "mpid": 42,
    "environment": "development",
}


def check_schema(out, stream: str) -> None:
    schema = out.schema(stream)["schema"]
    validator = jsonschema.Draft7Validator(schema, format_checker=jsonschema.FormatChecker())
    for record in out.records(stream):
        validator.validate(record)


@pytest.fixture(params=STORAGES)
def batch_drop(request, tmp_path: Path):
    root = tmp_path / "drop"
    write(
        root / "2024-05-01" / "App_20240501000000000000_11111.txt",
        json.dumps(FULL_BATCH) + "\n" + json.dumps(USER_UPDATE) + "\n",
    )
    # Kinesis Firehose lands mParticle's Firehose output with no separator, gzipped,
    # under YYYY/MM/DD/HH/.
    write(
        root / "2024" / "05" / "01" / "13" / "stream-1-2024-05-01-13-00-00-abc",
        json.dumps(FULL_BATCH) + json.dumps(USER_UPDATE) + json.dumps(FULL_BATCH),
        gzipped=True,
    )
    config, _ = serve_drop(request, root)
    return config


def test_batches_keep_every_field_typed_and_batches_without_events(batch_drop):
    out = run_tap(batch_drop, streams={"batches"})
    records = out.records("batches")
    assert len(records) == 5
    check_schema(out, "batches")
    by_place = {
        (
            r["_sdc_source_file"].rsplit("/", 1)[-1],
            r["_sdc_source_lineno"],
            r["_sdc_batch_index"],
        ): r
        for r in records
    }
    full = by_place[("App_20240501000000000000_11111.txt", 1, 0)]
    # Typed where the schema can say so; 64-bit ids exact (no float on the way).
    assert full["mpid"] == -8203932131457467343
    assert full["batch_id"] == 1287273029578014331
    assert full["timestamp_unixtime_ms"] == 1714521600999
    # Everything else exactly as written.
    for name in (
        "events",
        "user_identities",
        "user_attributes",
        "deleted_user_attributes",
        "consent_state",
        "context",
        "integration_attributes",
        "partner_identities",
        "source_info",
        "source_request_id",
        "sdk_version",
        "ip",
        "mp_deviceid",
        "message_type",
        "unique_id",
        "environment",
        "device_info",
        "application_info",
    ):
        assert full[name] == FULL_BATCH[name], name
    assert full["user_identities"][0]["timestamp_unixtime_ms"] == 1540483995196
    assert full["other_fields"] == {"future_field": {"kept": True}}
    update = by_place[("App_20240501000000000000_11111.txt", 2, 0)]
    assert update["events"] is None
    assert update["user_attributes"] == {"tier": "gold"}
    # The Raw Data Feed's object shape becomes mParticle's array.
    assert update["user_identities"] == [{"identity_type": "customer_id", "identity": "c-2"}]
    firehose = sorted(
        (r for r in records if r["_sdc_source_file"].endswith("-abc")),
        key=lambda r: r["_sdc_batch_index"],
    )
    assert [(r["_sdc_source_lineno"], r["_sdc_batch_index"]) for r in firehose] == [
        (1, 0),
        (1, 1),
        (1, 2),
    ]
    assert [r["mpid"] for r in firehose] == [-8203932131457467343, 42, -8203932131457467343]
    schema_message = out.schema("batches")
    assert schema_message["key_properties"] == [
        "_sdc_source_file",
        "_sdc_source_lineno",
        "_sdc_batch_index",
    ]


def test_events_are_read_from_back_to_back_batches_with_unique_keys(batch_drop):
    out = run_tap(batch_drop)
    assert out.records("batches") == []  # not selected by default
    records = out.records("events")
    check_schema(out, "events")
    firehose = [r for r in records if r["_sdc_source_file"].endswith("-abc")]
    assert len(firehose) == 2
    keys = {
        (r["_sdc_source_file"], r["_sdc_source_lineno"], r["_sdc_event_index"]) for r in records
    }
    assert len(keys) == len(records) == 3
    assert sorted((r["_sdc_batch_index"], r["_sdc_event_index"]) for r in firehose) == [
        (0, 0),
        (2, 1),
    ]


def test_a_rerun_emits_nothing_for_either_stream(batch_drop):
    first = run_tap(batch_drop, streams={"batches", "events"})
    again = run_tap(batch_drop, state=first.final_state, streams={"batches", "events"})
    assert again.records("batches") == []
    assert again.records("events") == []


def test_firehose_hour_folders_before_start_date_are_not_listed(tmp_path):
    root = tmp_path / "drop"
    write(root / "2024" / "04" / "30" / "23" / "old", json.dumps(USER_UPDATE) + "\n")
    write(root / "2024" / "05" / "02" / "00" / "new", json.dumps(USER_UPDATE) + "\n")
    for path in (root / "2024").rglob("*"):
        if path.is_file():
            stamp = 1714608000  # 2024-05-02: both files are new by LastModified
            os.utime(path, (stamp, stamp))
    config = {"bucket_url": str(root), "start_date": "2024-05-01T00:00:00Z"}
    out = run_tap(config, streams={"batches"})
    assert [r["_sdc_source_file"].rsplit("/", 1)[-1] for r in out.records("batches")] == ["new"]


@pytest.mark.parametrize(
    ("document", "reason"),
    [
        ({"name": "not a batch", "count": 3}, "none of its keys is a batch field: count, name"),
        ({"events": [{"event_type": "x"}, 3]}, "events[1] is not an object"),
        ({"mpid": "abc"}, "mpid is 'abc', not an integer"),
        ({"user_attributes": []}, "user_attributes is a JSON list, not an object"),
        ({"environment": {"x": 1}}, "environment is a JSON dict, not a string"),
        ({"deleted_user_attributes": [1]}, "deleted_user_attributes[0] is not a string"),
    ],
)
def test_documents_that_are_not_batches_are_named(document, reason):
    with pytest.raises(NotABatchError, match=reason.replace("[", r"\[").replace("]", r"\]")):
        batch_record(document)


def test_an_unrecognised_line_is_bad_input_for_both_streams(tmp_path):
    root = tmp_path / "drop"
    write(
        root / "App_20240501000000000000_22222.txt",
        json.dumps(USER_UPDATE) + "\n" + json.dumps({"hello": "world"}) + "\n",
    )
    for stream in ("events", "batches"):
        failed = run_cli(
            {"bucket_url": str(root)},
            tmp_path,
            extra_args=("--catalog", str(_catalog(tmp_path, root, stream))),
        )
        assert failed.returncode == 1
        assert "App_20240501000000000000_22222.txt:2: not an mParticle batch" in failed.stderr
    skipped = run_tap({"bucket_url": str(root), "on_bad_record": "skip"}, streams={"batches"})
    assert [r["mpid"] for r in skipped.records("batches")] == [42]


def _catalog(tmp_path: Path, root: Path, stream: str) -> Path:
    path = tmp_path / f"catalog-{stream}.json"
    path.write_text(json.dumps(catalog_selecting({"bucket_url": str(root)}, {stream})))
    return path


def test_readme_names_every_batches_field_and_its_key():
    from tap_mparticle.streams import BatchesStream  # noqa: PLC0415
    from tests.support.files import REPO_ROOT  # noqa: PLC0415

    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("### The `batches` stream", 1)[1].split("\n### ", 1)[0]
    for field in BatchesStream.schema["properties"]:
        assert f"`{field}`" in section, field
    assert "`_sdc_source_file`, `_sdc_source_lineno`, `_sdc_batch_index`" in section
