"""The project as a user meets it: `make demo`, the README's quick start, a validating loader.

Each test runs the real `meltano` CLI. Those that change configuration run in a copy
of the project (meltano.yml, with `.meltano/` linked so the installed plugins are
reused), so `meltano config set` never touches the repository's files.
"""

from __future__ import annotations

import csv
import json
import re
import shlex
import subprocess
import sys

import pytest

from tests.support.files import REPO_ROOT
from tests.support.meltano import linked_project_copy
from tests.support.meltano import meltano as run
from tests.support.s3 import AWS_TEST_KEY, AWS_TEST_SECRET, upload_tree

pytestmark = pytest.mark.meltano

SAMPLE_DROP = REPO_ROOT / "samples" / "drop"


def quick_start_commands() -> list[list[str]]:
    text = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    block = text.split("<!-- quickstart:start -->", 1)[1].split("<!-- quickstart:end -->", 1)[0]
    return [shlex.split(line) for line in block.splitlines() if line.startswith("meltano ")]


def test_the_readme_quick_start_commands_work_as_written(
    meltano_env, tmp_path, s3_client, s3_bucket, moto_endpoint
):
    upload_tree(s3_client, s3_bucket, SAMPLE_DROP)
    root = linked_project_copy(tmp_path)
    out_dir = tmp_path / "out"
    env = {
        **meltano_env,
        # Only what the README cannot know: where moto listens, and where output goes.
        "TAP_MPARTICLE_AWS_ENDPOINT_URL": moto_endpoint,
        "TARGET_JSONL_DESTINATION_PATH": str(out_dir),
    }
    out_dir.mkdir()
    placeholders = {
        "s3://mp-forwarding-acme": f"s3://{s3_bucket}",
        "AKIAIOSFODNN7EXAMPLE": AWS_TEST_KEY,
        "wJalrXUtnFEMIEXAMPLEKEY": AWS_TEST_SECRET,
    }
    commands = quick_start_commands()
    assert [c[:3] for c in commands if c[1] == "config"] == [["meltano", "config", "set"]] * 4
    for command in commands:
        if command[1] == "install":
            continue  # `make plugins` installed them; the copy links to them
        argv = [placeholders.get(arg, arg) for arg in command[1:]]
        done = run(root, env, *argv)
        assert done.returncode == 0, (argv, done.stderr[-3000:])
    # The setting took effect in the default (dev) environment: nothing pins it there.
    shown = run(root, env, "config", "print", "tap-mparticle")
    assert f"s3://{s3_bucket}" in shown.stdout, shown.stderr[-2000:]
    for secret in (AWS_TEST_KEY, AWS_TEST_SECRET):  # both went to .env, as the README says
        assert secret not in (root / "meltano.yml").read_text()
        assert secret in (root / ".env").read_text()
    events = (out_dir / "events.jsonl").read_text().splitlines()
    assert len(events) == 600


def test_make_demo_reads_the_sample_drop_through_its_own_environment(meltano_env):
    env = {k: v for k, v in meltano_env.items() if k != "MELTANO_ENVIRONMENT"}
    # output/ also holds a real run's dead letters: the demo empties only its own folder.
    kept = REPO_ROOT / "output" / "kept-by-the-demo-test.jsonl"
    kept.parent.mkdir(exist_ok=True)
    kept.write_text("{}\n")
    try:
        done = subprocess.run(
            [sys.executable, str(REPO_ROOT / "scripts" / "demo.py")],
            cwd=REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=240,
            check=False,
        )
        assert kept.read_text() == "{}\n"
    finally:
        kept.unlink(missing_ok=True)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "(output/demo/events.jsonl)" in done.stdout
    counts = dict(re.findall(r"^\s+(\w+)\s+(\d+) records", done.stdout, flags=re.MULTILINE))
    assert counts["events"] == "600"
    assert int(counts["audience_memberships"]) > 0
    # The default selection, as the README gives it: `batches` is not selected by default.
    assert "batches" not in counts


def read_csv(path):
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


@pytest.mark.parametrize("flattening", [True, False])
def test_a_validating_third_party_loader_takes_every_record(meltano_env, tmp_path, flattening):
    out_dir = tmp_path / "csv"
    env = {
        **meltano_env,
        "TAP_MPARTICLE_BUCKET_URL": str(SAMPLE_DROP),
        "TAP_MPARTICLE_FLATTENING_ENABLED": "true" if flattening else "false",
        "TAP_MPARTICLE_FLATTENING_MAX_DEPTH": "3",
        "TARGET_CSV_OUTPUT_PATH": str(out_dir),
        # every stream, batches (not selected by default) included
        "TAP_MPARTICLE__SELECT": json.dumps(
            ["events.*", "batches.*", "audience_memberships.*", "audience_user_attributes.*"]
        ),
    }
    done = run(REPO_ROOT, env, "run", "--full-refresh", "tap-mparticle", "target-csv")
    assert done.returncode == 0, done.stderr[-3000:]
    events = read_csv(out_dir / "events.csv")
    assert len(events) == 600
    assert "user_identities" in events[0]
    if flattening:
        assert not any("__" in column for column in events[0])
    batches = read_csv(out_dir / "batches.csv")
    assert len(batches) == 121
    assert "consent_state" in batches[0]
    assert "other_fields" in batches[0]
    members = read_csv(out_dir / "audience_memberships.csv")
    assert members
    assert all(row["_sdc_source_member"] for row in members)  # never empty: "-" or a CSV
    assert all(not row["_sdc_source_file"].startswith(("/", "s3:")) for row in members)
