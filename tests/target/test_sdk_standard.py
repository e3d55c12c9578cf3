"""The SDK's standard target tests, fed its own .singer scenarios.

Run as a dry run that skips records without identities: the SDK's sample
streams carry no identity fields, and what is checked here is the Singer
protocol handling (schemas, keys, state, odd data), not delivery.
"""

from __future__ import annotations

import pathlib
import tempfile

from singer_sdk.testing import get_target_test_class

from target_mparticle.target import TargetMParticle

_OUT = pathlib.Path(tempfile.mkdtemp(prefix="target-mparticle-sdk-"))

TestTargetMParticleStandard = get_target_test_class(
    TargetMParticle,
    config={
        "dry_run": True,
        "dry_run_path": str(_OUT / "dry.jsonl"),
        "on_invalid_record": "skip",
        "mappings": {"*": {"kind": "user", "identities": {"customer_id": "id"}}},
    },
)
