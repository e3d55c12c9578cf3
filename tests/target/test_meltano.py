"""`meltano run ... target-mparticle` with the project's own meltano.yml settings.

Meltano runs in a temp copy of the project, with the plugins pointed at this
virtualenv's console scripts instead of being installed again, so the tests are
quick and need no network; the settings (and their env vars) are the real ones.
"""

from __future__ import annotations

import gzip
import json
import os
import sys
from typing import TYPE_CHECKING

import pytest
import yaml

from tests.support.files import REPO_ROOT
from tests.support.meltano import BIN, meltano
from tests.support.s3 import AWS_TEST_KEY, AWS_TEST_SECRET, upload_tree
from tests.support.target import FIXTURES, SECRET

if TYPE_CHECKING:
    import pathlib

    from tests.support.eventsapi import EventsApiServer

pytestmark = pytest.mark.meltano


def project_copy(tmp_path: pathlib.Path) -> pathlib.Path:
    """meltano.yml as committed, plugins run from this venv, plus a plain-records tap."""
    project = yaml.safe_load((REPO_ROOT / "meltano.yml").read_text())
    for kind in ("extractors", "loaders"):
        for plugin in project["plugins"].get(kind, []):
            if plugin["name"] in {"tap-mparticle", "target-mparticle"}:
                plugin.pop("pip_url", None)
                plugin["executable"] = str(BIN / plugin["name"])
    tap = tmp_path / "tap_plain.py"
    tap.write_text(
        f"#!{sys.executable}\n"
        "import sys\n"
        f"sys.stdout.write(open({str(FIXTURES / 'users.singer')!r}, encoding='utf-8').read())\n"
    )
    tap.chmod(0o755)
    project["plugins"]["extractors"].append(
        {"name": "tap-plain", "namespace": "tap_plain", "executable": str(tap)}
    )
    root = tmp_path / "project"
    root.mkdir()
    (root / "meltano.yml").write_text(yaml.safe_dump(project, sort_keys=False))
    return root


def meltano_run(root: pathlib.Path, env: dict[str, str], *plugins: str):
    full_env = {
        **os.environ,
        "MELTANO_SEND_ANONYMOUS_USAGE_STATS": "false",
        "MELTANO_DATABASE_URI": f"sqlite:///{root}/meltano.db",
        "MELTANO_ENVIRONMENT": "dev",
        **env,
    }
    return meltano(root, full_env, "run", *plugins)


def target_env(server: EventsApiServer, mappings: dict) -> dict[str, str]:
    return {
        "TARGET_MPARTICLE_API_KEY": "test-key",
        "TARGET_MPARTICLE_API_SECRET": SECRET,
        "TARGET_MPARTICLE_API_URL": server.url,
        "TARGET_MPARTICLE_ENVIRONMENT": "production",
        "TARGET_MPARTICLE_MAPPINGS": json.dumps(mappings),
    }


def test_meltano_run_plain_records_through_mappings(server, tmp_path):
    root = project_copy(tmp_path)
    mappings = {
        "users": {
            "kind": "user",
            "identities": {"customer_id": "customer_id", "email": "email"},
            "user_attributes": {"$FirstName": "first_name", "plan": "plan", "tags": "tags"},
        }
    }
    result = meltano_run(root, target_env(server, mappings), "tap-plain", "target-mparticle")
    assert result.returncode == 0, result.stderr[-3000:]
    batches = server.batches()
    assert len(batches) == 300
    assert server.rejected == []
    assert all(b["environment"] == "production" for b in batches)
    assert all(set(b["user_attributes"]) <= {"$FirstName", "plan", "tags"} for b in batches)
    assert SECRET not in result.stderr + result.stdout


def _events_in_drop(root: pathlib.Path) -> int:
    count = 0
    for path in root.rglob("*.txt"):
        if "audiences" in path.relative_to(root).parts:
            continue
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
        for line in raw.decode("utf-8").splitlines():
            if line.strip():
                count += len(json.loads(line).get("events") or [])
    return count


def _replay_env(server, s3_client, s3_bucket, moto_endpoint) -> dict[str, str]:
    upload_tree(s3_client, s3_bucket, REPO_ROOT / "samples" / "drop")
    return {
        **target_env(server, {}),
        "TAP_MPARTICLE_BUCKET_URL": f"s3://{s3_bucket}",
        "TAP_MPARTICLE_AWS_ENDPOINT_URL": moto_endpoint,
        "TAP_MPARTICLE_AWS_ACCESS_KEY_ID": AWS_TEST_KEY,
        "TAP_MPARTICLE_AWS_SECRET_ACCESS_KEY": AWS_TEST_SECRET,
        "TAP_MPARTICLE_AWS_REGION": "us-east-1",
        "TAP_MPARTICLE_START_DATE": "2024-01-01T00:00:00Z",
    }


def test_meltano_run_replay_into_target_mparticle_as_the_readme_gives_it(
    server, tmp_path, s3_client, s3_bucket, moto_endpoint
):
    # meltano.yml as committed: tap-mparticle-replay selects batches and the
    # audience streams, all of which target-mparticle sends without a mapping.
    drop_events = _events_in_drop(REPO_ROOT / "samples" / "drop")
    root = project_copy(tmp_path)
    env = _replay_env(server, s3_client, s3_bucket, moto_endpoint)
    result = meltano_run(root, env, "tap-mparticle-replay", "target-mparticle")
    assert result.returncode == 0, result.stderr[-3000:]
    assert server.rejected == []
    events = server.events()
    assert len(events) == drop_events
    assert len({e["data"]["source_message_id"] for e in events}) == len(events)
    assert server.duplicates == []

    again = meltano_run(root, env, "replay")  # the job: same extractor, same state
    assert again.returncode == 0, again.stderr[-3000:]
    assert len(server.events()) == len(events)  # resumed from state: nothing re-sent
    assert SECRET not in result.stderr + again.stderr
    assert AWS_TEST_SECRET not in result.stderr + again.stderr


def test_a_dry_run_through_meltano_leaves_the_real_run_everything_to_send(
    server, tmp_path, s3_client, s3_bucket, moto_endpoint
):
    drop_events = _events_in_drop(REPO_ROOT / "samples" / "drop")
    root = project_copy(tmp_path)
    env = _replay_env(server, s3_client, s3_bucket, moto_endpoint)
    dry = meltano_run(
        root,
        {
            **env,
            "TARGET_MPARTICLE_DRY_RUN": "true",
            "TARGET_MPARTICLE_DRY_RUN_PATH": str(tmp_path / "dry.jsonl"),
        },
        "tap-mparticle-replay",
        "target-mparticle",
    )
    assert dry.returncode == 0, dry.stderr[-3000:]
    assert "Dry run: STATE is not passed on" in dry.stderr
    assert server.events() == []
    assert (tmp_path / "dry.jsonl").stat().st_size > 0

    real = meltano_run(root, env, "tap-mparticle-replay", "target-mparticle")
    assert real.returncode == 0, real.stderr[-3000:]
    assert len(server.events()) == drop_events  # everything, not 0


def test_meltano_run_tap_mparticle_target_mparticle_with_the_default_selection(
    server, tmp_path, s3_client, s3_bucket, moto_endpoint
):
    # Events and both audience streams, no mapping: events are replayed, memberships
    # and attribute changes become user attribute updates, nothing is dead-lettered.
    drop_events = _events_in_drop(REPO_ROOT / "samples" / "drop")
    root = project_copy(tmp_path)
    env = _replay_env(server, s3_client, s3_bucket, moto_endpoint)
    env["TARGET_MPARTICLE_ON_INVALID_RECORD"] = "dead_letter"
    env["TARGET_MPARTICLE_DEAD_LETTER_PATH"] = str(tmp_path / "dead.jsonl")
    result = meltano_run(root, env, "tap-mparticle", "target-mparticle")
    assert result.returncode == 0, result.stderr[-3000:]
    assert server.rejected == []
    assert not (tmp_path / "dead.jsonl").exists()
    assert len(server.events()) == drop_events
    updates = [b for b in server.batches() if "events" not in b]
    audience_attributes = {
        name
        for b in updates
        for name in [*(b.get("user_attributes") or {}), *(b.get("deleted_user_attributes") or [])]
    }
    assert any(name.startswith("audience_") for name in audience_attributes)
    assert len(audience_attributes) > 3
