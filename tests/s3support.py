"""Helpers for tests that put a drop into moto's S3 server."""

from __future__ import annotations

from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
AWS_TEST_KEY = "AKIATESTKEY0000000001"
AWS_TEST_SECRET = "test-secret-do-not-log-0123456789"


def upload_tree(s3_client: Any, bucket: str, root: Path, prefix: str = "") -> list[str]:
    """Upload every file under `root` to `bucket`, keys relative to root, in sorted order."""
    keys = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        key = prefix + path.relative_to(root).as_posix()
        s3_client.put_object(Bucket=bucket, Key=key, Body=path.read_bytes())
        keys.append(key)
    return keys


def s3_config(moto_endpoint: str, bucket: str, **extra: object) -> dict[str, object]:
    """Tap config reaching `bucket` on the moto server."""
    return {
        "bucket_url": f"s3://{bucket}",
        "aws_endpoint_url": moto_endpoint,
        "aws_access_key_id": AWS_TEST_KEY,
        "aws_secret_access_key": AWS_TEST_SECRET,
        "aws_region": "us-east-1",
        **extra,
    }
