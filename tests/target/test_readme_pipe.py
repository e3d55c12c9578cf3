"""The README's plain-pipe example runs as written: first without a state file, then with one."""

from __future__ import annotations

import json
import subprocess

from tests.support.files import REPO_ROOT
from tests.support.target import SECRET

SAMPLE_DROP = REPO_ROOT / "samples" / "drop"


def pipe_script() -> str:
    text = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    block = text.split("<!-- pipe:start -->", 1)[1].split("<!-- pipe:end -->", 1)[0]
    return block.split("```sh\n", 1)[1].split("```", 1)[0]


def test_the_plain_pipe_example_runs_twice_without_and_with_state(server, tmp_path):
    script = pipe_script()
    # Point the example at the bundled drop (events at its root) instead of a bucket.
    script = script.replace('"s3://mp-forwarding-acme"', json.dumps(str(SAMPLE_DROP)))
    script = script.replace('"events_prefix": "mparticle", ', "")
    (tmp_path / ".venv").symlink_to(REPO_ROOT / ".venv")
    (tmp_path / "target.json").write_text(
        json.dumps({"api_key": "test-key", "api_secret": SECRET, "api_url": server.url})
    )

    def run():
        return subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=240,
            check=False,
        )

    first = run()
    assert first.returncode == 0, first.stderr[-3000:]
    sent = len(server.events())
    assert sent == 600
    state = json.loads((tmp_path / "state.json").read_text())
    assert "files_read" in state["bookmarks"]["events"]
    second = run()
    assert second.returncode == 0, second.stderr[-3000:]
    assert "events: 0 new files" in second.stderr
    assert len(server.events()) == sent  # the state was used: nothing sent twice
    assert (tmp_path / "catalog.json").stat().st_size > 0
