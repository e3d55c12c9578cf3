"""An object overwritten in a GCS bucket or Azure container while the tap runs.

The tap's console script runs in a child process whose stdout this test stops
reading at the first record: the tap then cannot get further than a pipe (64 KiB)
and one block of records (256 KiB) past it, inside its first two files, far from the
last one, which is then overwritten. No timing is asserted; the full pipe is what
holds the tap back.
"""

import json
import subprocess
import sys

import pytest

from tests.support.cloud import azure_config, gcs_config
from tests.support.files import error_lines
from tests.support.tap import run_tap
from tests.tap.test_tap_sync import batch_line

FILES = 6
LINES = 400  # about 280 KB of RECORD messages (events and batches) a file


def body(tag: str) -> bytes:
    return "".join(batch_line(1, name=f"{tag}-{i}") for i in range(LINES)).encode()


@pytest.mark.parametrize("cloud", ["gcs", "azure"])
def test_a_file_overwritten_mid_run_is_read_once_in_its_new_version(request, tmp_path, cloud):
    if cloud == "gcs":
        server = request.getfixturevalue("fake_gcs_server")
        bucket = server.client().bucket(request.getfixturevalue("gcs_bucket"))
        config = gcs_config(server, bucket.name)

        def put(name: str, data: bytes) -> None:
            bucket.blob(name).upload_from_string(data)

    else:
        server = request.getfixturevalue("azurite_server")
        name = request.getfixturevalue("azure_container")
        container = server.service().get_container_client(name)
        config = azure_config(server, name)

        def put(name: str, data: bytes) -> None:
            container.upload_blob(name, data, overwrite=True)

    names = [f"2024-05-01/app_{i}.txt" for i in range(FILES)]
    for index, name in enumerate(names):
        put(name, body(f"old{index}"))
    config = {**config, "download_concurrency": 1, "audiences_prefix": "none"}
    config_file = tmp_path / "config.json"
    config_file.write_text(json.dumps(config))
    log = tmp_path / "stderr.log"
    with log.open("wb") as stderr:
        tap = subprocess.Popen(
            [sys.executable, "-m", "tap_mparticle", "--config", str(config_file)],
            stdout=subprocess.PIPE,
            stderr=stderr,
        )
    first = []
    for line in tap.stdout:
        first.append(json.loads(line))
        if first[-1]["type"] == "RECORD":
            break
    # Files are read oldest first: the last uploaded is the last read.
    put(names[-1], body("new"))
    # Read on through the same buffered file: communicate() would skip what it holds.
    messages = first + [json.loads(line) for line in tap.stdout]
    tap.stdout.close()
    assert tap.wait(timeout=300) == 1
    last = error_lines(log.read_text())[-1]
    assert f"{names[-1]} at " in last
    assert "it was overwritten since it was listed" in last
    state = next(m["value"] for m in reversed(messages) if m["type"] == "STATE")

    resumed = run_tap(config, state=state)
    events = [m["record"] for m in messages if m["type"] == "RECORD" and m["stream"] == "events"]
    records = events + resumed.records("events")

    keys = [(r["_sdc_source_file"], r["_sdc_source_lineno"]) for r in records]
    # Every line once: the STATE written before the failure covers every file read
    # (on Azure the failure came from opening the next file, and no STATE was written).
    assert len(keys) == len(set(keys)) == FILES * LINES
    by_file = {r["_sdc_source_file"]: r["event_name"].split("-")[0] for r in records}
    assert by_file == {name: f"old{i}" for i, name in enumerate(names[:-1])} | {names[-1]: "new"}
    assert run_tap(config, state=resumed.final_state).records("events") == []
