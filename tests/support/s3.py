"""moto's S3 servers (threaded, or strict in a process of its own) and putting a drop into them."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

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


@contextlib.contextmanager
def strict_moto(no_auth_actions: int = 0) -> Iterator[str]:
    """A moto server in its own process that checks credentials and IAM policies.

    The first `no_auth_actions` requests are let through unsigned, to set up users,
    roles and buckets; every request after that needs credentials IAM allows.
    """
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": str(no_auth_actions)}
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise
                time.sleep(0.1)  # waiting for the server to listen, not timing anything
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=30)


def serve_drop(request: Any, root: Path) -> tuple[dict[str, Any], Callable[[], None]]:
    """Serve a drop directory as the parametrised backend asks ("local" or "s3").

    Returns the tap config reaching it and a `publish()` that makes files added under
    `root` since the last call visible (a no-op for the local directory).
    """
    if request.param == "local":
        return {"bucket_url": str(root)}, lambda: None
    s3_client = request.getfixturevalue("s3_client")
    bucket = request.getfixturevalue("s3_bucket")
    endpoint = request.getfixturevalue("moto_endpoint")
    uploaded = set(upload_tree(s3_client, bucket, root))

    def publish() -> None:
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            key = path.relative_to(root).as_posix()
            if key not in uploaded:
                s3_client.put_object(Bucket=bucket, Key=key, Body=path.read_bytes())
                uploaded.add(key)

    return s3_config(endpoint, bucket), publish
