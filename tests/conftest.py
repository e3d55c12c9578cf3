"""The fixtures every suite shares, on the helpers of tests/support.

Real S3 (moto), GCS (fake-gcs-server) and Azure (Azurite) APIs on 127.0.0.1, the
generated drop served from a directory or any of them, the local Events API stand-in
with a target config reaching it, and the environment for the real `meltano` CLI.
"""

from __future__ import annotations

import os
import uuid
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

from scripts.generate_drop import generate_drop
from tests.support.cloud import Azurite, FakeGcs, azurite, fake_gcs
from tests.support.eventsapi import EventsApiServer
from tests.support.files import REPO_ROOT
from tests.support.s3 import AWS_TEST_KEY, AWS_TEST_SECRET, STORAGES, serve_drop, strict_moto
from tests.support.tap import Drop
from tests.support.target import SECRET, local_config

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path


@pytest.fixture(scope="session", autouse=True)
def _isolated_aws_env() -> Iterator[None]:
    """Keep a developer's own AWS profile and keys out of every test."""
    saved = {k: os.environ.get(k) for k in ("AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE")}
    os.environ["AWS_CONFIG_FILE"] = os.devnull
    os.environ["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        os.environ.pop(name, None)
    yield
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """moto's standalone S3 server on a free port of 127.0.0.1."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3_client(moto_endpoint: str):
    return boto3.client(
        "s3",
        endpoint_url=moto_endpoint,
        region_name="us-east-1",
        aws_access_key_id=AWS_TEST_KEY,
        aws_secret_access_key=AWS_TEST_SECRET,
    )


@pytest.fixture
def s3_bucket(s3_client) -> str:
    """A new, empty bucket per test, named like mParticle's (mp-forwarding-...)."""
    name = f"mp-forwarding-{uuid.uuid4().hex[:12]}"
    s3_client.create_bucket(Bucket=name)
    return name


@pytest.fixture(scope="session")
def meltano_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Environment for running the real `meltano` CLI on this project.

    `make plugins` installed the plugins into `.meltano/` beforehand, so tests reach
    no network; the system database is a temp file, so tests never touch a
    developer's state.
    """
    installed = REPO_ROOT / ".meltano" / "extractors" / "tap-mparticle" / "venv"
    assert installed.is_dir(), "meltano plugins are not installed: run `make plugins`"
    db_dir = tmp_path_factory.mktemp("meltano-db")
    return {
        **os.environ,
        "MELTANO_SEND_ANONYMOUS_USAGE_STATS": "false",
        "MELTANO_DATABASE_URI": f"sqlite:///{db_dir}/meltano.db",
        "MELTANO_ENVIRONMENT": "dev",
    }


@pytest.fixture(params=STORAGES)
def drop(request, tmp_path: Path) -> Drop:
    """The generated sample drop, read from a directory, moto, fake-gcs-server or Azurite."""
    root = tmp_path / "drop"
    summary = generate_drop(root, events=600, seed=11)
    config, publish = serve_drop(request, root)
    return Drop(root, config, summary, publish)


@pytest.fixture(params=STORAGES)
def empty_drop(request, tmp_path: Path) -> Drop:
    """An empty bucket (directory, container) on each backend, for files a test publishes."""
    root = tmp_path / "drop"
    root.mkdir()
    config, publish = serve_drop(request, root)
    return Drop(root, config, None, publish)


@pytest.fixture(scope="session")
def fake_gcs_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeGcs]:
    """fake-gcs-server on a free port of 127.0.0.1, one for the whole session."""
    with fake_gcs(tmp_path_factory.mktemp("fake-gcs")) as server:
        yield server


@pytest.fixture
def gcs_bucket(fake_gcs_server: FakeGcs) -> str:
    """A new, empty GCS bucket per test."""
    name = f"mp-forwarding-{uuid.uuid4().hex[:12]}"
    fake_gcs_server.client().create_bucket(name)
    return name


@pytest.fixture(scope="session")
def azurite_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    """Azurite's blob service on a free port of 127.0.0.1, one for the whole session."""
    with azurite(tmp_path_factory.mktemp("azurite")) as server:
        yield server


@pytest.fixture
def azure_container(azurite_server: Azurite) -> str:
    """A new, empty Azure container per test."""
    name = f"mp-forwarding-{uuid.uuid4().hex[:12]}"
    azurite_server.service().create_container(name)
    return name


@pytest.fixture
def strict_moto_endpoint() -> Iterator[str]:
    """A credential-checking moto server where nothing has been set up."""
    with strict_moto() as endpoint:
        yield endpoint


@pytest.fixture
def server() -> Iterator[EventsApiServer]:
    """The local Events API stand-in, fresh per test."""
    with EventsApiServer(api_key="test-key", api_secret=SECRET) as running:
        yield running


@pytest.fixture
def config(server: EventsApiServer, tmp_path: Path) -> dict[str, Any]:
    """A target config reaching `server`, unpaced, with short retries and local output files."""
    return local_config(server.url, tmp_path)
