"""Keys identify the data, not where it is mounted; state from 0.1.0 still holds."""

from __future__ import annotations

import json
import shutil

from scripts.capture_state import SAMPLE_DROP, pin_mtimes
from tap_mparticle.audience_records import NOT_IN_ARCHIVE
from tap_mparticle.tap import STREAM_TYPES
from tests.support.files import REPO_ROOT
from tests.support.s3 import s3_config, upload_tree
from tests.support.tap import run_tap

STREAMS = [cls.name for cls in STREAM_TYPES]
LEGACY_STATE = REPO_ROOT / "tests" / "tap" / "fixtures" / "state-0.1.0.json"


def keys_by_stream(out):
    return {
        stream: sorted(
            tuple(r[k] for k in out.schema(stream)["key_properties"]) for r in out.records(stream)
        )
        for stream in STREAMS
    }


def test_the_same_drop_has_the_same_keys_from_a_local_mirror_and_from_s3(
    tmp_path, s3_client, s3_bucket, moto_endpoint
):
    mirror = tmp_path / "somewhere" / "else" / "drop"
    shutil.copytree(SAMPLE_DROP, mirror)
    upload_tree(s3_client, s3_bucket, mirror, prefix="exports/")
    local = run_tap({"bucket_url": str(mirror)}, streams=set(STREAMS))
    remote = run_tap(
        s3_config(moto_endpoint, s3_bucket, bucket_url=f"s3://{s3_bucket}/exports"),
        streams=set(STREAMS),
    )
    assert keys_by_stream(local) == keys_by_stream(remote)
    assert all(keys_by_stream(local).values())
    event = local.records("events")[0]
    assert not event["_sdc_source_file"].startswith("/")
    assert event["_sdc_source_uri"] == str(mirror / event["_sdc_source_file"])
    remote_uris = {r["_sdc_source_uri"] for r in remote.records("events")}
    assert all(uri.startswith(f"s3://{s3_bucket}/exports/") for uri in remote_uris)
    # Audience keys are relative to audiences_prefix, not to the bucket root.
    memberships = local.records("audience_memberships")
    assert {r["_sdc_source_file"].split("/")[0] for r in memberships} >= {"downloads", "gcs"}


def test_key_columns_are_never_null_or_empty():
    out = run_tap({"bucket_url": str(SAMPLE_DROP)}, streams=set(STREAMS))
    for stream in STREAMS:
        schema = out.schema(stream)
        for column in schema["key_properties"]:
            assert schema["schema"]["properties"][column]["type"] in (["string"], ["integer"])
            assert column in schema["schema"]["required"]
        for record in out.records(stream):
            assert all(record[k] not in (None, "") for k in schema["key_properties"])
    members = {r["_sdc_source_member"] for r in out.records("audience_memberships")}
    assert NOT_IN_ARCHIVE in members  # files that are not ZIPs
    assert any(m.endswith(".csv") for m in members)  # CSVs inside the sample ZIP


def test_a_bookmark_written_by_0_1_0_is_read_not_discarded(tmp_path):
    drop = tmp_path / "drop"
    shutil.copytree(SAMPLE_DROP, drop)
    pin_mtimes(drop)  # the stamps the fixture's state was captured with
    legacy = json.loads(LEGACY_STATE.read_text(encoding="utf-8"))
    config = {"bucket_url": str(drop)}
    again = run_tap(config, state=legacy)
    assert all(again.records(stream) == [] for stream in STREAMS)
    # A new file after the legacy bookmark is read, and only it.
    new = drop / "2024-05-02" / "Late_App_20240503000000000000_11111.txt"
    new.write_bytes((SAMPLE_DROP / "mPTravel_20240502000000000000_40647.txt").read_bytes())
    after = run_tap(config, state=again.final_state if again.states else legacy)
    assert {r["_sdc_source_file"] for r in after.records("events")} == {
        "2024-05-02/Late_App_20240503000000000000_11111.txt"
    }
    assert after.records("audience_memberships") == []
