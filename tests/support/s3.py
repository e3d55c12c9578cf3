"""moto's S3 servers (threaded, or strict in a process of its own) and putting a drop into them.

`serve_drop` also serves a drop from a local directory, fake-gcs-server and Azurite
(see `cloud`), so one parametrised test runs over all four storages.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import socket
import subprocess
import sys
import time
from typing import TYPE_CHECKING, Any

from moto.core import DEFAULT_ACCOUNT_ID
from moto.s3.models import s3_backends

from tests.support.cloud import azure_config, gcs_config

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path
    from typing import Protocol

    class Publish(Protocol):
        def __call__(self, modified_at: dt.datetime | None = None) -> None: ...


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
def moto_process(**env: str) -> Iterator[str]:
    """moto's S3 server in a process of its own (its own GIL), once it listens.

    `env` adds environment variables to the server's (moto reads its options there).
    """
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        env={**os.environ, **env},
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


@contextlib.contextmanager
def strict_moto(no_auth_actions: int = 0) -> Iterator[str]:
    """A moto server in its own process that checks credentials and IAM policies.

    The first `no_auth_actions` requests are let through unsigned, to set up users,
    roles and buckets; every request after that needs credentials IAM allows.
    """
    with moto_process(INITIAL_NO_AUTH_ACTION_COUNT=str(no_auth_actions)) as endpoint:
        yield endpoint


def set_s3_last_modified(bucket: str, key: str, when: dt.datetime) -> None:
    """Give an object on the in-process moto server a LastModified (moto has no API for it)."""
    fake_key = s3_backends[DEFAULT_ACCOUNT_ID]["aws"].buckets[bucket].keys[key]
    fake_key.last_modified = when.astimezone(dt.timezone.utc).replace(tzinfo=None)


class _NewFiles:
    """The files under a root not yet published, or rewritten since: each version returned once.

    A file rewritten on disk is published again under its key (an overwrite).
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.published: dict[str, bytes] = {}

    def __call__(self) -> list[tuple[str, Path]]:
        fresh = []
        for path in sorted(p for p in self.root.rglob("*") if p.is_file()):
            key = path.relative_to(self.root).as_posix()
            body = path.read_bytes()
            if self.published.get(key) != body:
                self.published[key] = body
                fresh.append((key, path))
        return fresh


def _serve_local(request: Any, new_files: _NewFiles) -> tuple[dict[str, Any], Publish]:
    del request

    def publish(modified_at: dt.datetime | None = None) -> None:
        for _, path in new_files():
            if modified_at is not None:
                os.utime(path, (modified_at.timestamp(), modified_at.timestamp()))

    return {"bucket_url": str(new_files.root)}, publish


def _serve_s3(request: Any, new_files: _NewFiles) -> tuple[dict[str, Any], Publish]:
    s3_client = request.getfixturevalue("s3_client")
    bucket = request.getfixturevalue("s3_bucket")

    def publish(modified_at: dt.datetime | None = None) -> None:
        for key, path in new_files():
            s3_client.put_object(Bucket=bucket, Key=key, Body=path.read_bytes())
            if modified_at is not None:
                set_s3_last_modified(bucket, key, modified_at)

    return s3_config(request.getfixturevalue("moto_endpoint"), bucket), publish


def _serve_gcs(request: Any, new_files: _NewFiles) -> tuple[dict[str, Any], Publish]:
    server = request.getfixturevalue("fake_gcs_server")
    bucket = request.getfixturevalue("gcs_bucket")
    gcs_bucket = server.client().bucket(bucket)

    def publish(modified_at: dt.datetime | None = None) -> None:
        for key, path in new_files():
            gcs_bucket.blob(key).upload_from_filename(str(path))
            if modified_at is not None:
                server.set_updated(bucket, key, modified_at)

    return gcs_config(server, bucket), publish


def _serve_azure(request: Any, new_files: _NewFiles) -> tuple[dict[str, Any], Publish]:
    server = request.getfixturevalue("azurite_server")
    container = request.getfixturevalue("azure_container")
    container_client = server.service().get_container_client(container)

    def publish(modified_at: dt.datetime | None = None) -> None:
        with server.clock_at(modified_at):
            for key, path in new_files():
                container_client.upload_blob(key, path.read_bytes(), overwrite=True)

    return azure_config(server, container), publish


#: Every storage backend the parametrised sync, state and bad-input tests run over.
SERVERS = {"local": _serve_local, "s3": _serve_s3, "gcs": _serve_gcs, "azure": _serve_azure}
STORAGES = list(SERVERS)


def serve_drop(request: Any, root: Path) -> tuple[dict[str, Any], Publish]:
    """Serve a drop directory as the parametrised backend asks (one of `STORAGES`).

    Returns the tap config reaching it and a `publish(modified_at=None)` that makes
    files added (or rewritten) under `root` since the last call visible, with
    `modified_at` (if given) as their LastModified / updated / mtime. What is under
    `root` now is published.
    """
    config, publish = SERVERS[request.param](request, _NewFiles(root))
    publish()
    return config, publish
