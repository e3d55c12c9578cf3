"""The real `meltano` CLI: install from meltano.yml, then run tap-mparticle into target-jsonl."""

import json
import subprocess

import pytest

from tests.conftest import MELTANO
from tests.s3support import AWS_TEST_KEY, AWS_TEST_SECRET, REPO_ROOT, upload_tree

pytestmark = pytest.mark.meltano


def meltano(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [MELTANO, *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )


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
    first = meltano(env, "run", "--state-id-suffix", state_id, "tap-mparticle", "target-jsonl")
    assert first.returncode == 0, first.stderr[-3000:]
    events = (out_dir / "events.jsonl").read_text().splitlines()
    assert len(events) == 600
    assert {json.loads(line)["_sdc_source_uri"].split("/")[2] for line in events} == {s3_bucket}
    assert AWS_TEST_SECRET not in first.stderr + first.stdout

    second = meltano(env, "run", "--state-id-suffix", state_id, "tap-mparticle", "target-jsonl")
    assert second.returncode == 0, second.stderr[-3000:]
    assert "events: 0 new files" in second.stderr
    assert len((out_dir / "events.jsonl").read_text().splitlines()) == 600

    state = meltano(env, "state", "get", f"dev:tap-mparticle-to-target-jsonl:{state_id}")
    assert state.returncode == 0, state.stderr[-2000:]
    bookmarks = json.loads(state.stdout)["singer_state"]["bookmarks"]
    assert len(bookmarks["events"]["files_read"]) == 6
    assert AWS_TEST_SECRET not in state.stdout


def test_meltano_invoke_about_lists_every_setting(meltano_env):
    done = meltano(meltano_env, "invoke", "tap-mparticle", "--about", "--format=json")
    assert done.returncode == 0, done.stderr[-2000:]
    about = json.loads(done.stdout)
    assert {"bucket_url", "events_prefix", "audiences_prefix", "on_bad_record"} <= set(
        about["settings"]["properties"]
    )
