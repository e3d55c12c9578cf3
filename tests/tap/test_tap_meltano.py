"""The real `meltano` CLI: install from meltano.yml, then run tap-mparticle into target-jsonl."""

import json

import pytest

from tests.support.files import REPO_ROOT
from tests.support.meltano import meltano
from tests.support.s3 import AWS_TEST_KEY, AWS_TEST_SECRET, upload_tree

pytestmark = pytest.mark.meltano


def test_meltano_run_over_moto_is_incremental(
    meltano_env, tmp_path, s3_client, s3_bucket, moto_endpoint
):
    upload_tree(s3_client, s3_bucket, REPO_ROOT / "samples" / "drop")
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    env = {
        **meltano_env,
        "TAP_MPARTICLE_BUCKET_URL": f"s3://{s3_bucket}",
        "TAP_MPARTICLE_AWS_ENDPOINT_URL": moto_endpoint,
        "TAP_MPARTICLE_AWS_ACCESS_KEY_ID": AWS_TEST_KEY,
        "TAP_MPARTICLE_AWS_SECRET_ACCESS_KEY": AWS_TEST_SECRET,
        "TAP_MPARTICLE_AWS_REGION": "us-east-1",
        "TARGET_JSONL_DESTINATION_PATH": str(out_dir),
    }
    state_id = f"test-{s3_bucket}"
    first = meltano(
        REPO_ROOT, env, "run", "--state-id-suffix", state_id, "tap-mparticle", "target-jsonl"
    )
    assert first.returncode == 0, first.stderr[-3000:]
    events = (out_dir / "events.jsonl").read_text().splitlines()
    assert len(events) == 600
    assert {json.loads(line)["_sdc_source_uri"].split("/")[2] for line in events} == {s3_bucket}
    assert AWS_TEST_SECRET not in first.stderr + first.stdout

    second = meltano(
        REPO_ROOT, env, "run", "--state-id-suffix", state_id, "tap-mparticle", "target-jsonl"
    )
    assert second.returncode == 0, second.stderr[-3000:]
    assert "events: 0 new files" in second.stderr
    assert len((out_dir / "events.jsonl").read_text().splitlines()) == 600

    state = meltano(REPO_ROOT, env, "state", "get", f"dev:tap-mparticle-to-target-jsonl:{state_id}")
    assert state.returncode == 0, state.stderr[-2000:]
    bookmarks = json.loads(state.stdout)["singer_state"]["bookmarks"]
    assert len(bookmarks["events"]["files_read"]) == 6
    assert AWS_TEST_SECRET not in state.stdout


def test_meltano_invoke_about_lists_every_setting(meltano_env):
    done = meltano(REPO_ROOT, meltano_env, "invoke", "tap-mparticle", "--about", "--format=json")
    assert done.returncode == 0, done.stderr[-2000:]
    about = json.loads(done.stdout)
    assert {"bucket_url", "events_prefix", "audiences_prefix", "on_bad_record"} <= set(
        about["settings"]["properties"]
    )
