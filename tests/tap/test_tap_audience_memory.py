"""A delta file far larger than any buffer is streamed: peak memory barely moves."""

from __future__ import annotations

import subprocess
import sys

from tests.support.files import REPO_ROOT
from tests.support.tap import generator

DELTA_NAME = "Big-Audience_42_2024-05-01_00-00-00_721e1d63-a396-4676-bac2-3f6f31e88cc2.txt"
FILE_MB = 80
MAX_GROWTH_MB = 32

# Runs the tap once over a tiny drop (imports, first allocations), then over the big
# one, and prints how far the peak RSS (ru_maxrss, KiB on Linux) rose in between.
PROBE = """
import resource, sys
from tap_mparticle.tap import TapMParticle
small, big = sys.argv[1], sys.argv[2]
TapMParticle(config={"bucket_url": small}).sync_all()
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
TapMParticle(config={"bucket_url": big}).sync_all()
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print("RSS_GROWTH_KIB", after - before, file=sys.stderr)
"""


def test_a_large_delta_file_streams_in_bounded_memory(tmp_path):
    small = tmp_path / "small"
    big = tmp_path / "big"
    (small / "audiences").mkdir(parents=True)
    (big / "audiences").mkdir(parents=True)
    generator.write_large_delta(small / "audiences" / DELTA_NAME, 1)
    rows = generator.write_large_delta(big / "audiences" / DELTA_NAME, FILE_MB)
    assert (big / "audiences" / DELTA_NAME).stat().st_size > FILE_MB << 20
    log = tmp_path / "probe.log"
    with (
        log.open("wb") as log_file,
        subprocess.Popen(
            [sys.executable, "-c", PROBE, str(small), str(big)],
            cwd=REPO_ROOT,
            stdout=subprocess.PIPE,
            stderr=log_file,
        ) as probe,
    ):
        assert probe.stdout is not None
        # Counted as they stream past, so this process never holds the output either.
        records = sum(1 for line in probe.stdout if line.startswith(b'{"type":"RECORD"'))
        returncode = probe.wait(timeout=120)
    stderr = log.read_text(encoding="utf-8", errors="replace")
    assert returncode == 0, stderr
    assert records == rows + 1000  # the big file and the small one
    growth_kib = int(stderr.rsplit("RSS_GROWTH_KIB", 1)[1].split()[0])
    assert growth_kib < MAX_GROWTH_MB * 1024, f"peak RSS grew {growth_kib / 1024:.0f} MiB"
