"""Audience memory is bounded: a huge delta file streams, many identity names stay few."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import tracemalloc

from mparticle_facts.identities import IdentityNormalizer
from tap_mparticle.audience_records import MEMBERSHIPS
from tests.support.files import REPO_ROOT
from tests.support.tap import generator, run_tap

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


def unknown_names(count: int) -> list[str]:
    return [f"Partner{i}_Id" for i in range(count)]


def test_many_unknown_identity_names_keep_memory_and_warnings_bounded():
    # A new name per row (broken or hostile data) once grew the memo and the log
    # by one entry each: a million names cost 500 MB and a million warning lines.
    warned: list[str] = []
    normalize = IdentityNormalizer(lambda name, _kept: warned.append(name))
    bound = IdentityNormalizer.MAX_MEMO
    names = unknown_names(bound * 4)
    tracemalloc.start()
    try:
        for name in names[: bound * 2]:
            normalize(name)
        at_bound = tracemalloc.get_traced_memory()[0]
        for name in names[bound * 2 :]:
            normalize(name)
        grown = tracemalloc.get_traced_memory()[0] - at_bound
    finally:
        tracemalloc.stop()
    assert grown < 64 << 10, f"{bound * 2} more names grew memory by {grown} bytes"
    assert warned == names[: IdentityNormalizer.MAX_WARNED]
    assert normalize.warned == IdentityNormalizer.MAX_WARNED
    assert normalize.unwarned == len(names) - IdentityNormalizer.MAX_WARNED
    assert normalize.memo_full
    # Past the bound names are still normalised, known and unknown alike.
    assert normalize("CustomerId") == "customer_id"
    assert normalize(names[-1]) == f"partner{len(names) - 1}_id"


def test_unknown_identity_names_past_the_warned_few_are_counted_in_one_line(tmp_path, caplog):
    names = unknown_names(IdentityNormalizer.MAX_WARNED + 7)
    message = {
        "AudienceId": 1,
        "IsMember": True,
        "MembershipChangedTimestamp": 1714521600,
        "UserIdentities": dict.fromkeys(names, "v"),
    }
    (tmp_path / "audiences").mkdir()
    (tmp_path / "audiences" / "fh.json").write_text(json.dumps(message) + "\n")
    caplog.set_level(logging.WARNING)
    rows = run_tap({"bucket_url": str(tmp_path)}, streams={MEMBERSHIPS}).records(MEMBERSHIPS)
    assert [r["identity_type"] for r in rows] == [name.lower() for name in names]
    messages = [r.getMessage() for r in caplog.records if "identity type" in r.getMessage()]
    named = [m for m in messages if "is in no table of known spellings" in m]
    assert len(named) == IdentityNormalizer.MAX_WARNED
    assert sum("counted, not named one by one" in m for m in messages) == 1
    assert messages[-1] == (
        f"{MEMBERSHIPS}: 7 further identity type names in no table of known spellings "
        "were kept in snake_case"
    )
    assert len(messages) == IdentityNormalizer.MAX_WARNED + 2
