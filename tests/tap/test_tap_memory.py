"""Memory stays bounded whatever the file size: the tap streams, it never loads a file."""

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.cloud import azure_config, gcs_config

# Runs the tap's CLI in a child process and reports that process's own peak RSS.
PEAK_RSS_RUNNER = """
import atexit, resource, sys
from pathlib import Path
out = Path(sys.argv.pop(1))
atexit.register(lambda: out.write_text(str(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)))
from tap_mparticle.tap import TapMParticle
TapMParticle.cli()
"""


def peak_rss_kib(tmp_path, bucket_url: str | dict, name: str) -> int:
    config = tmp_path / f"{name}.json"
    settings = bucket_url if isinstance(bucket_url, dict) else {"bucket_url": bucket_url}
    config.write_text(json.dumps(settings))
    report = tmp_path / f"{name}.rss"
    with Path(os.devnull).open("wb") as sink:
        subprocess.run(
            [sys.executable, "-c", PEAK_RSS_RUNNER, str(report), "--config", str(config)],
            stdout=sink,
            stderr=subprocess.DEVNULL,
            check=True,
            timeout=300,
        )
    return int(report.read_text())


def write_gzip_file(path: Path, lines: int) -> int:
    path.parent.mkdir(parents=True)
    padding = "x" * 8000
    line = (
        json.dumps(
            {"events": [{"event_type": "custom_event", "data": {"pad": padding}}], "mpid": 1}
        )
        + "\n"
    ).encode()
    with gzip.open(path, "wb", compresslevel=1) as handle:
        for _ in range(lines):
            handle.write(line)
    return len(line) * lines


def test_peak_memory_does_not_grow_with_file_size(tmp_path):
    small = tmp_path / "small" / "app_1.txt"
    write_gzip_file(small, 100)
    big = tmp_path / "big" / "app_1.txt"
    big_bytes = write_gzip_file(big, 25_000)
    assert big_bytes > 200_000_000

    baseline = peak_rss_kib(tmp_path, str(small.parent), "small")
    peak = peak_rss_kib(tmp_path, str(big.parent), "big")
    growth_mib = (peak - baseline) / 1024
    # The whole file is 200 MB once gunzipped; the tap may buffer a few MiB of it.
    assert growth_mib < 40, (
        f"peak RSS grew {growth_mib:.0f} MiB for a {big_bytes / 1e6:.0f} MB file"
    )


def incompressible_lines(count: int) -> bytes:
    """Plain (not gzipped) batches padded with random hex: what is stored is what is read."""
    line = (
        json.dumps(
            {"events": [{"event_type": "custom_event", "data": {"pad": os.urandom(4000).hex()}}]}
        )
        + "\n"
    ).encode()
    return line * count


@pytest.mark.parametrize("cloud", ["gcs", "azure"])
def test_cloud_reads_stream_in_bounded_memory(request, tmp_path, cloud):
    # A 64 MB object: a client that downloaded whole objects would hold all of it.
    small, big = incompressible_lines(10), incompressible_lines(8000)
    assert len(big) > 60_000_000
    configs = {}
    for name, body in (("small", small), ("big", big)):
        if cloud == "gcs":
            server = request.getfixturevalue("fake_gcs_server")
            bucket = f"mp-forwarding-{name}-{os.getpid()}"
            server.client().create_bucket(bucket).blob("app_1.txt").upload_from_string(body)
            configs[name] = gcs_config(server, bucket)
        else:
            server = request.getfixturevalue("azurite_server")
            container = f"mp-forwarding-{name}-{os.getpid()}"
            server.service().create_container(container).upload_blob("app_1.txt", body)
            configs[name] = azure_config(server, container)
    baseline = peak_rss_kib(tmp_path, configs["small"], f"{cloud}-small")
    peak = peak_rss_kib(tmp_path, configs["big"], f"{cloud}-big")
    growth_mib = (peak - baseline) / 1024
    # Reads go in 4 MiB ranges; a whole-object download grows RSS by ~45 MiB here.
    assert growth_mib < 20, (
        f"peak RSS grew {growth_mib:.0f} MiB for a {len(big) / 1e6:.0f} MB object"
    )
