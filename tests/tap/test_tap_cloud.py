"""What only GCS and Azure need proving: paging, raw reads, their errors, and the extras.

Everything else (sync, state, late files, date-folder pruning, download-ahead, bad
input) runs over every backend through the `drop`/`empty_drop` fixtures.
"""

import datetime as dt
import gzip
import http.server
import json
import os
import subprocess
import sys
import threading
import uuid
from urllib.parse import parse_qsl, quote

import pytest
from azure.storage.blob import ContainerSasPermissions, generate_container_sas
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tap_mparticle import storage_azure, storage_gcs
from tests.support.cloud import AZURITE_ACCOUNT, AZURITE_KEY, azure_config, gcs_config
from tests.support.files import error_lines
from tests.support.tap import run_cli, run_tap
from tests.tap.test_tap_sync import batch_line

# Blocks one cloud's client library in a child process, as on a machine without the extra.
WITHOUT_MODULE = """
import sys
blocked = sys.argv.pop(1).split(",")
class Block:
    def find_spec(self, name, path=None, target=None):
        if any(name == b or name.startswith(b + ".") for b in blocked):
            raise ImportError(name)
sys.meta_path.insert(0, Block())
from tap_mparticle.tap import TapMParticle
TapMParticle.cli()
"""


def keys_read(out) -> set[str]:
    """Keys of the files read, relative to bucket_url, as state remembers them."""
    return set(out.final_state["bookmarks"]["events"]["files_read"])


def test_a_bad_line_is_named_by_object_and_line_on_every_storage(tmp_path, empty_drop):
    day = empty_drop.root / "2024-05-01"
    day.mkdir()
    (day / "app_1.txt").write_bytes(batch_line(1).encode() + b"[1, 2]\n")
    empty_drop.publish()
    out = run_cli(empty_drop.config, tmp_path)
    assert out.returncode == 1
    assert "Traceback" not in out.stderr
    last = error_lines(out.stderr)[-1]
    assert "2024-05-01/app_1.txt:2: not an mParticle batch" in last
    url = str(empty_drop.config["bucket_url"])
    assert url.rsplit("://", maxsplit=1)[-1] in last  # the object's URI or path, not only its key


def test_validation_and_verification_files_are_skipped_on_every_storage(empty_drop):
    (empty_drop.root / "mparticle-validation-20240501120000.txt").write_bytes(b"")
    (empty_drop.root / "mParticle_Bucket_Verification_20240501-120000.txt").write_text("{}")
    (empty_drop.root / "app_1.txt").write_text(batch_line(2))
    empty_drop.publish()
    out = run_tap(empty_drop.config)
    assert keys_read(out) == {"app_1.txt"}
    assert len(out.records("events")) == 2


def test_keys_are_relative_to_a_bucket_url_with_a_prefix_on_every_storage(empty_drop):
    folder = empty_drop.root / "exports" / "mp" / "2024-05-01"
    folder.mkdir(parents=True)
    (folder / "app_1.txt").write_text(batch_line(1))
    (empty_drop.root / "elsewhere.txt").write_text(batch_line(1, name="Outside"))
    empty_drop.publish()
    url = str(empty_drop.config["bucket_url"]).rstrip("/") + "/exports/mp"
    out = run_tap({**empty_drop.config, "bucket_url": url})
    assert keys_read(out) == {"2024-05-01/app_1.txt"}
    [record] = out.records("events")
    assert record["_sdc_source_file"] == "2024-05-01/app_1.txt"
    # The URI says where the object is; for the clouds, in the URL's own scheme.
    assert record["_sdc_source_uri"].endswith("exports/mp/2024-05-01/app_1.txt")
    scheme = url.split("://")[0] if "://" in url else None
    if scheme in {"s3", "gs", "az"}:
        assert record["_sdc_source_uri"] == f"{url}/2024-05-01/app_1.txt"


@pytest.mark.parametrize("cloud", ["gcs", "azure"])
def test_listing_reads_every_page(request, monkeypatch, cloud):
    monkeypatch.setattr(storage_gcs, "LIST_PAGE_SIZE", 2)
    monkeypatch.setattr(storage_azure, "LIST_PAGE_SIZE", 2)
    body = batch_line(1).encode()
    names = [f"2024-05-0{d}/app_{i}.txt" for d in (1, 2, 3) for i in range(5)]
    names += [f"top_{i}.txt" for i in range(3)]
    if cloud == "gcs":
        server = request.getfixturevalue("fake_gcs_server")
        bucket_name = request.getfixturevalue("gcs_bucket")
        bucket = server.client().bucket(bucket_name)
        for name in names:
            bucket.blob(name).upload_from_string(body)
        # The emulator pages as GCS does: three folders and three objects take several pages.
        listing = server.client().list_blobs(bucket_name, delimiter="/", page_size=2)
        assert len(list(listing.pages)) > 1
        config = gcs_config(server, bucket_name)
    else:
        server = request.getfixturevalue("azurite_server")
        container_name = request.getfixturevalue("azure_container")
        container = server.service().get_container_client(container_name)
        for name in names:
            container.upload_blob(name, body)
        pages = container.walk_blobs(delimiter="/", results_per_page=2).by_page()
        assert len(list(pages)) > 1
        config = azure_config(server, container_name)
    out = run_tap(config)
    assert keys_read(out) == set(names)


@pytest.mark.parametrize("cloud", ["gcs", "azure"])
def test_an_object_larger_than_a_read_range_is_read_whole_and_in_order(request, monkeypatch, cloud):
    # Ranges of 1 KiB over a ~25 KiB object: every range boundary falls inside a line.
    monkeypatch.setattr(storage_gcs, "GCS_CHUNK_SIZE", 1024)
    monkeypatch.setattr(storage_azure, "AZURE_CHUNK_SIZE", 1024)
    body = "".join(batch_line(1, name=f"E{i}") for i in range(200)).encode()
    if cloud == "gcs":
        server = request.getfixturevalue("fake_gcs_server")
        bucket = request.getfixturevalue("gcs_bucket")
        server.client().bucket(bucket).blob("app_1.txt").upload_from_string(body)
        config = gcs_config(server, bucket)
    else:
        server = request.getfixturevalue("azurite_server")
        container = request.getfixturevalue("azure_container")
        server.service().get_container_client(container).upload_blob("app_1.txt", body)
        config = azure_config(server, container)
    records = run_tap(config).records("events")
    assert [r["event_name"] for r in records] == [f"E{i}" for i in range(200)]
    assert [r["_sdc_source_lineno"] for r in records] == list(range(1, 201))


def test_gzip_encoded_gcs_objects_are_read_as_stored(fake_gcs_server, gcs_bucket):
    # Uploaded with Content-Encoding: gzip, GCS would hand back decompressed bytes
    # unless asked for the raw ones; either way every event must come through once.
    blob = fake_gcs_server.client().bucket(gcs_bucket).blob("2024-05-01/app_1.txt")
    blob.content_encoding = "gzip"
    blob.upload_from_string(gzip.compress(batch_line(3).encode(), mtime=0))
    # gcs_project bills the reads to a project (userProject), as requester-pays needs.
    out = run_tap(gcs_config(fake_gcs_server, gcs_bucket, gcs_project="acme-billing"))
    assert len(out.records("events")) == 3


def assert_one_line(out, where: str, endpoint: str, reason: str, secrets: tuple[str, ...] = ()):
    assert out.returncode == 1
    assert "Traceback" not in out.stderr
    last = error_lines(out.stderr)[-1]
    assert where in last
    assert endpoint in last
    assert reason in last
    for secret in secrets:
        assert secret not in out.stderr + json.dumps(out.messages)


def test_missing_gcs_bucket_is_one_line(tmp_path, fake_gcs_server):
    out = run_cli(gcs_config(fake_gcs_server, "mp-forwarding-does-not-exist"), tmp_path)
    where = "gs://mp-forwarding-does-not-exist/"
    assert_one_line(out, where, fake_gcs_server.url, "NotFound (the bucket does not exist")


def test_missing_azure_container_is_one_line(tmp_path, azurite_server):
    out = run_cli(azure_config(azurite_server, "mp-forwarding-does-not-exist"), tmp_path)
    where = "az://mp-forwarding-does-not-exist/"
    reason = "ContainerNotFound (the container or blob does not exist)"
    assert_one_line(out, where, azurite_server.account_url, reason, (AZURITE_KEY,))


def test_refused_azure_key_is_one_line_and_never_the_key(tmp_path, azurite_server, azure_container):
    wrong_key = "V3JvbmdLZXk" + AZURITE_KEY[11:]
    config = azure_config(azurite_server, azure_container, azure_account_key=wrong_key)
    out = run_cli(config, tmp_path)
    reason = "(HTTP 403: the credentials were refused"
    where = f"az://{azure_container}/"
    assert_one_line(out, where, azurite_server.account_url, reason, (wrong_key,))


def test_refused_azure_sas_token_is_one_line_and_never_the_token(
    tmp_path, azurite_server, azure_container
):
    token = "sv=2021-08-06&ss=b&srt=sco&sp=rl&se=2099-01-01T00:00:00Z&sig=bm90LWEtcmVhbC1zaWc%3D"
    config = {
        **azure_config(azurite_server, azure_container),
        "azure_account_key": None,
        "azure_sas_token": token,
    }
    out = run_cli(config, tmp_path)
    assert_one_line(
        out,
        f"az://{azure_container}/",
        azurite_server.account_url,
        "HTTP 403",
        (token, "bm90LWEtcmVhbC1zaWc"),
    )


def test_a_connection_string_reaches_azurite(azurite_server, azure_container):
    container = azurite_server.service().get_container_client(azure_container)
    container.upload_blob("2024-05-01/app_1.txt", batch_line(2).encode())
    connection_string = (
        f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
        f"BlobEndpoint={azurite_server.account_url};"
    )
    out = run_tap(
        {"bucket_url": f"az://{azure_container}", "azure_connection_string": connection_string}
    )
    assert len(out.records("events")) == 2


class RefusingTokenServer(http.server.BaseHTTPRequestHandler):
    """Google's OAuth token endpoint saying no to a service account's signed request."""

    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        body = b'{"error": "invalid_grant", "error_description": "Invalid JWT Signature."}'
        self.send_response(400)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_refused_gcs_service_account_is_one_line_and_never_the_key(
    tmp_path, fake_gcs_server, gcs_bucket
):
    token_server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), RefusingTokenServer)
    threading.Thread(target=token_server.serve_forever, daemon=True).start()
    try:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
        key_file = tmp_path / "service-account.json"
        key_file.write_text(
            json.dumps(
                {
                    "type": "service_account",
                    "project_id": "test",
                    "private_key_id": uuid.uuid4().hex,
                    "private_key": pem,
                    "client_email": "reader@test.iam.gserviceaccount.com",
                    "client_id": "1",
                    "token_uri": f"http://127.0.0.1:{token_server.server_port}/token",
                }
            )
        )
        config = gcs_config(fake_gcs_server, gcs_bucket, gcs_credentials_file=str(key_file))
        out = run_cli(config, tmp_path)
    finally:
        token_server.shutdown()
        token_server.server_close()
    secret_line = pem.splitlines()[1]
    reason = "RefreshError (the credentials were refused)"
    assert_one_line(out, f"gs://{gcs_bucket}/", fake_gcs_server.url, reason, (secret_line,))


def test_an_unreadable_gcs_credentials_file_is_one_line(tmp_path, fake_gcs_server):
    key_file = tmp_path / "not-a-key.json"
    key_file.write_text('{"type": "service_account", "private_key": "SECRET-PEM-TEXT"}')
    config = gcs_config(fake_gcs_server, "b", gcs_credentials_file=str(key_file))
    out = run_cli(config, tmp_path)
    assert_one_line(out, str(key_file), "gcs_credentials_file", "", ("SECRET-PEM-TEXT",))


def test_a_gcs_key_pasted_in_place_of_its_path_is_refused_never_shown(tmp_path, fake_gcs_server):
    """The key's JSON given as gcs_credentials_file was quoted whole: "no such file"."""
    key = '{"type": "service_account", "private_key": "-----BEGIN PRIVATE KEY-----\\nPEMTEXT"}'
    config = gcs_config(fake_gcs_server, "b", gcs_credentials_file=key)
    out = run_cli(config, tmp_path)
    assert out.returncode == 1
    assert "Traceback" not in out.stderr
    (error,) = error_lines(out.stderr)
    assert "gcs_credentials_file holds a key's JSON, not the path of its file" in error
    assert "PEMTEXT" not in out.stderr


def run_without(blocked: str, config_file: os.PathLike[str]) -> subprocess.CompletedProcess[str]:
    """The tap's CLI in a Python where the comma-separated modules cannot be imported."""
    return subprocess.run(
        [sys.executable, "-c", WITHOUT_MODULE, blocked, "--config", str(config_file)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("url", "blocked", "extra"),
    [
        ("gs://b", "google.cloud.storage", "gcs"),
        ("az://c", "azure.storage.blob", "azure"),
        # Only an account name: the default credential chain, which needs azure-identity.
        ("az://c", "azure.identity", "azure"),
    ],
)
def test_a_missing_extra_is_one_line_naming_it(tmp_path, url, blocked, extra):
    config_file = tmp_path / "config.json"
    config_file.write_text(json.dumps({"bucket_url": url, "azure_account_name": "acme"}))
    done = run_without(blocked, config_file)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert f"pip install 'tap-mparticle[{extra}]'" in error_lines(done.stderr)[-1]


def test_a_local_run_needs_no_cloud_client(tmp_path):
    drop = tmp_path / "drop"
    drop.mkdir()
    (drop / "app_1.txt").write_text(batch_line(2))
    config_file = tmp_path / "config.json"
    config_file.write_text(json.dumps({"bucket_url": str(drop)}))
    blocked = "google.cloud.storage,azure.storage.blob,azure.identity"
    done = run_without(blocked, config_file)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count('"type":"RECORD"') + done.stdout.count('"type": "RECORD"') == 2


def run_at_debug(config: dict, tmp_path) -> subprocess.CompletedProcess[str]:
    config_file = tmp_path / "debug-config.json"
    config_file.write_text(json.dumps(config))
    return subprocess.run(
        [sys.executable, "-m", "tap_mparticle", "--config", str(config_file)],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "LOGLEVEL": "DEBUG"},
        timeout=120,
    )


def test_azure_secrets_are_never_printed_even_at_debug(tmp_path, azurite_server, azure_container):
    service = azurite_server.service()
    service.get_container_client(azure_container).upload_blob("app_1.txt", batch_line(1).encode())
    token = generate_container_sas(
        AZURITE_ACCOUNT,
        azure_container,
        account_key=AZURITE_KEY,
        permission=ContainerSasPermissions(read=True, list=True),
        expiry=dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1),
    )
    signature = dict(parse_qsl(token))["sig"]
    with_sas = {
        **azure_config(azurite_server, azure_container),
        "azure_account_key": None,
        "azure_sas_token": token,
    }
    connection_string = (
        f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};"
        f"BlobEndpoint={azurite_server.account_url};SharedAccessSignature={token}"
    )
    with_connection_string = {
        "bucket_url": f"az://{azure_container}",
        "azure_connection_string": connection_string,
    }
    for config in (with_sas, with_connection_string, azure_config(azurite_server, azure_container)):
        done = run_at_debug(config, tmp_path)
        assert done.returncode == 0, done.stderr[-2000:]
        assert "| DEBUG" in done.stderr
        assert '"type":"RECORD"' in done.stdout
        everything = done.stdout + done.stderr
        for secret in (token, signature, quote(signature, safe=""), AZURITE_KEY):
            assert secret not in everything


def test_connection_errors_after_the_clients_retries_say_what_they_mean():
    """Each client retries an unreachable endpoint for a minute or two, then names only a
    class (`RetryError`, `ServiceRequestError`); the line says what that means."""
    from azure.core import exceptions as azure_errors  # noqa: PLC0415
    from google.api_core import exceptions as google_errors  # noqa: PLC0415
    from requests import exceptions as requests_errors  # noqa: PLC0415

    gcs = storage_gcs.GcsStorage(
        "b", "", storage_gcs.GcsSettings(endpoint_url="http://127.0.0.1:9")
    )
    gave_up = google_errors.RetryError(
        "Timeout of 120.0s exceeded", requests_errors.ConnectionError()
    )
    assert gcs._reason(gave_up) == (
        "RetryError (the client retried for its deadline; the last error: ConnectionError)"
    )
    azure = storage_azure.AzureStorage(
        "c",
        "",
        storage_azure.AzureSettings(
            account_name=AZURITE_ACCOUNT, account_key=AZURITE_KEY, endpoint_url="http://127.0.0.1:9"
        ),
    )
    assert azure._reason(azure_errors.ServiceRequestError("refused")) == (
        "ServiceRequestError (no connection to the endpoint, after the client's retries)"
    )
    assert azure._reason(azure_errors.ServiceResponseError("reset")) == (
        "ServiceResponseError (the endpoint stopped answering, after the client's retries)"
    )
