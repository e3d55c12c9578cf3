"""GCS and Azure edges a hostile review found: object metadata, URL forms, changes mid-run.

Each runs on the session's real emulators (fake-gcs-server, Azurite) with a fresh
bucket or container, in-process where a module constant is lowered to make a case
small (a read range of a few KiB instead of 4 MiB).
"""

import gzip
import hashlib
import json

import pytest
from azure.storage.blob import ContentSettings
from singer_sdk.exceptions import ConfigValidationError

from tap_mparticle import backends, storage_azure, storage_gcs
from tap_mparticle.aws_session import AwsSettings
from tap_mparticle.storage import StorageError
from tap_mparticle.tap import TapMParticle
from tests.support.cloud import azure_config, gcs_config
from tests.support.files import error_lines
from tests.support.tap import run_cli, run_tap, tap_error
from tests.tap.test_tap_sync import batch_line


def varied_lines(count: int, tag: str = "E") -> bytes:
    """Event lines that do not compress to almost nothing, so gzip spans several ranges."""
    digests = (hashlib.sha256(f"{tag}{i}".encode()).hexdigest()[:20] for i in range(count))
    names = (f"{tag}{i}-{digest}" for i, digest in enumerate(digests))
    return "".join(batch_line(1, name=name) for name in names).encode()


def test_azure_blobs_with_a_gzip_content_encoding_are_read_as_stored(
    monkeypatch, azurite_server, azure_container
):
    # The Azure client decompresses a blob stored with Content-Encoding: gzip range by
    # range: past the first range it handed back a fraction of the lines and no error,
    # and a blob whose metadata says gzip but whose bytes are not failed as "HTTP None".
    monkeypatch.setattr(storage_azure, "AZURE_CHUNK_SIZE", 1024)
    plain = varied_lines(300)
    packed = gzip.compress(plain, mtime=0)
    assert len(packed) > 3 * 1024
    container = azurite_server.service().get_container_client(azure_container)
    gzip_encoding = ContentSettings(content_encoding="gzip")
    container.upload_blob("2024-05-01/packed.txt", packed, content_settings=gzip_encoding)
    small = batch_line(2, name="Plain").encode()
    container.upload_blob("2024-05-01/mislabelled.txt", small, content_settings=gzip_encoding)
    records = run_tap(azure_config(azurite_server, azure_container)).records("events")
    by_file = sorted((r["_sdc_source_file"], r["_sdc_source_lineno"]) for r in records)
    expected = [("2024-05-01/mislabelled.txt", 1), ("2024-05-01/mislabelled.txt", 1)]
    expected += [("2024-05-01/packed.txt", n) for n in range(1, 301)]
    assert by_file == expected


def test_a_hash_or_question_mark_in_bucket_url_is_part_of_the_prefix(empty_drop):
    # urlparse took `#1` for a fragment and `?a` for a query and dropped them: the
    # tap read the folder x/ (or q/) instead, without a word.
    for folder in ("x#1", "x", "q?a", "q"):
        (empty_drop.root / folder).mkdir()
        (empty_drop.root / folder / "app_1.txt").write_text(batch_line(1, name=folder))
    empty_drop.publish()
    url = str(empty_drop.config["bucket_url"]).rstrip("/")
    for folder in ("x#1", "q?a"):
        out = run_tap({**empty_drop.config, "bucket_url": f"{url}/{folder}"})
        assert [r["event_name"] for r in out.records("events")] == [folder]


@pytest.mark.parametrize(
    ("url", "cloud", "name", "root", "account"),
    [
        ("az://c/pre/", "az", "c", "pre/", None),
        ("abfss://c", "az", "c", "", None),
        ("az://c@acme.blob.core.windows.net/a/b", "az", "c", "a/b/", "acme"),
        ("abfss://c@acme.dfs.core.windows.net/a", "az", "c", "a/", "acme"),
        ("abfs://c@acme.dfs.core.chinacloudapi.cn", "az", "c", "", "acme"),
        ("https://acme.blob.core.windows.net/c/my%20folder/x", "az", "c", "my folder/x/", "acme"),
        ("https://storage.googleapis.com/b/exports", "gs", "b", "exports/", None),
        ("gs://b/a#1/?x", "gs", "b", "a#1/?x/", None),
        ("s3://b/%2Fx", "s3", "b", "%2Fx/", None),
    ],
)
def test_every_spelling_of_a_bucket_or_container(url, cloud, name, root, account):
    parts = backends.cloud_url(url)
    assert (parts.cloud, parts.name, parts.root, parts.account_name) == (
        cloud,
        name,
        root,
        account,
    )


def test_an_azure_url_naming_the_account_reaches_its_endpoint():
    storage = backends.open_storage(
        "abfss://events@acme.dfs.core.windows.net/mp",
        AwsSettings(),
        storage_gcs.GcsSettings(),
        storage_azure.AzureSettings(sas_token="sv=2024&sig=x"),
    )
    assert storage.description == (
        "abfss://events@acme.dfs.core.windows.net/mp/ at https://acme.blob.core.windows.net"
    )


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"bucket_url": "gs://[b"}, "names bucket '[b': a bucket name holds only letters"),
        ({"bucket_url": "s3://b]/x"}, "names bucket 'b]': a bucket name holds only letters"),
        ({"bucket_url": "az://c?x=1"}, "names container 'c?x=1'"),
        ({"bucket_url": "file://[x/y"}, "is not a file:// URL"),
        ({"bucket_url": "https://example.com/c"}, "is not a storage URL"),
        ({"bucket_url": "https://acme.blob.core.windows.net/"}, "names no container"),
        (
            {"bucket_url": "https://acme.blob.core.windows.net/c?sv=2024&sig=SECRETSIG"},
            "'https://acme.blob.core.windows.net/c?***' holds a query (a SAS token?)",
        ),
        (
            {"bucket_url": "abfss://c@acme.dfs.core.windows.net", "azure_account_name": "other"},
            "names the Azure account 'acme' in its host: leave azure_account_name unset",
        ),
        (
            {"bucket_url": "az://c@acme.blob.core.windows.net", "azure_endpoint_url": "http://h"},
            "leave azure_endpoint_url unset",
        ),
        ({"bucket_url": "abfss://c"}, "an abfss:// bucket_url needs azure_account_name"),
        ({"bucket_url": "az://c", "azure_endpoint_url": "http://[x"}, "not an http"),
    ],
)
def test_a_malformed_cloud_url_is_one_config_error(config, message):
    with pytest.raises(ConfigValidationError) as raised:
        TapMParticle(config=config)
    errors = raised.value.errors or []
    assert [e for e in errors if message in e], errors
    assert not any("SECRETSIG" in e for e in errors)


def test_an_account_named_twice_alike_is_one_account():
    config = {"bucket_url": "az://c@acme.blob.core.windows.net", "azure_account_name": "ACME"}
    assert TapMParticle(config=config).settings.bucket_url == config["bucket_url"]


def cloud_storage(request, cloud: str):
    """A fresh bucket or container, our storage on it, and the emulator's own put/delete."""
    if cloud == "gcs":
        server = request.getfixturevalue("fake_gcs_server")
        bucket = server.client().bucket(request.getfixturevalue("gcs_bucket"))
        storage = backends.open_storage(
            f"gs://{bucket.name}",
            AwsSettings(),
            storage_gcs.GcsSettings(endpoint_url=server.url),
            storage_azure.AzureSettings(),
        )
        return storage, lambda n, d: bucket.blob(n).upload_from_string(d), bucket.delete_blob
    server = request.getfixturevalue("azurite_server")
    name = request.getfixturevalue("azure_container")
    container = server.service().get_container_client(name)
    config = azure_config(server, name)
    storage = backends.open_storage(
        f"az://{name}",
        AwsSettings(),
        storage_gcs.GcsSettings(),
        storage_azure.AzureSettings(
            account_name=config["azure_account_name"],
            account_key=config["azure_account_key"],
            endpoint_url=config["azure_endpoint_url"],
        ),
    )
    return (
        storage,
        lambda n, d: container.upload_blob(n, d, overwrite=True),
        container.delete_blob,
    )


@pytest.mark.parametrize("cloud", ["gcs", "azure"])
def test_an_object_changed_after_its_listing_is_never_read_torn(request, monkeypatch, cloud):
    # GCS read the new version cut at the listed size (or old ranges, then new ones);
    # Azure read the new version whole under the old LastModified, so the next run read
    # it again. Now the read stops with one line, and the next run's listing has it.
    monkeypatch.setattr(storage_gcs, "GCS_CHUNK_SIZE", 1024)
    monkeypatch.setattr(storage_azure, "AZURE_CHUNK_SIZE", 1024)
    storage, put, delete = cloud_storage(request, cloud)
    old, new = varied_lines(40), varied_lines(80, tag="New")
    for name in ("before.txt", "during.txt", "deleted.txt"):
        put(name, old)
    files = {f.key: f for f in storage.list_files("", skip_folder=lambda _: False)}
    put("before.txt", new)
    delete("deleted.txt")
    with storage.open(files["during.txt"]) as stream:
        assert stream.read(1024) == old[:1024]
        put("during.txt", new)
        with pytest.raises(StorageError, match="overwritten since it was listed"):
            stream.read()
    with pytest.raises(StorageError, match="overwritten since it was listed"):
        storage.open(files["before.txt"]).read()
    with pytest.raises(StorageError, match="deleted since it was listed"):
        storage.open(files["deleted.txt"]).read()
    # The next listing pins the new version, which reads whole.
    [again] = [
        f for f in storage.list_files("", skip_folder=lambda _: False) if f.key == "before.txt"
    ]
    assert storage.open(again).read() == new


def test_the_default_azure_chain_over_http_names_the_endpoint(tmp_path, azurite_server):
    # Without a key, SAS or connection string the tap signs in with an identity, whose
    # token the client sends over https only; the line said "invalid Azure settings".
    config = azure_config(azurite_server, "mp-forwarding-x", azure_account_key=None)
    out = run_cli(config, tmp_path)
    assert out.returncode == 1
    assert "Traceback" not in out.stderr
    assert "needs an https:// azure_endpoint_url" in error_lines(out.stderr)[-1]


def test_an_azure_chain_with_no_identity_says_none_was_found():
    """azure-identity raises before any request when no credential in the chain has an
    identity; the line said "the credentials were refused" (none were sent)."""
    from azure.core.exceptions import ClientAuthenticationError  # noqa: PLC0415

    storage = storage_azure.AzureStorage(
        "c", "", storage_azure.AzureSettings(account_name="acme", sas_token="sv=1&sig=x")
    )
    chain_failed = ClientAuthenticationError("DefaultAzureCredential failed to retrieve a token")
    assert storage._reason(chain_failed).startswith("no Azure credentials found (")


@pytest.mark.parametrize(
    ("settings", "reason"),
    [
        ({"azure_account_key": "not base64 !!"}, "azure_account_key is not a valid account key"),
        (
            {"azure_connection_string": "AccountName=devstoreaccount1;AccountKey=abc;"},
            "the AccountKey in azure_connection_string is not a valid account key",
        ),
        ({"azure_connection_string": "not one"}, "azure_connection_string is not a storage"),
    ],
)
def test_a_malformed_azure_secret_names_its_setting(
    azurite_server, azure_container, settings, reason
):
    # A key that is not base64 said "the credentials were refused" (none were sent),
    # a connection string the client cannot read "invalid Azure settings (ValueError)".
    config = azure_config(azurite_server, azure_container, **settings)
    if "azure_connection_string" in settings:
        config["azure_connection_string"] += f"BlobEndpoint={azurite_server.account_url};"
        for name in ("azure_account_name", "azure_account_key", "azure_endpoint_url"):
            del config[name]
    message = tap_error(config)
    assert reason in message
    assert "not base64 !!" not in message
    assert "AccountKey=abc" not in message


def test_a_gcloud_login_file_is_a_gcs_credentials_file(tmp_path, fake_gcs_server, gcs_bucket):
    # `gcloud auth application-default login` writes an authorized_user file, which
    # Application Default Credentials reads; as gcs_credentials_file it was refused
    # as "MalformedError" (only service account keys were read). This one holds an
    # access token still valid, so no request goes to Google's token endpoint (the
    # client always sends a login's refresh there, whatever the file says).
    fake_gcs_server.client().bucket(gcs_bucket).blob("a.txt").upload_from_string(batch_line(2))
    login = {
        "type": "authorized_user",
        "client_id": "reader.apps.googleusercontent.com",
        "client_secret": "client-secret",
        "refresh_token": "refresh-token",
        "token": "ya29.still-valid",
        "expiry": "2099-01-01T00:00:00Z",
    }
    login_file = tmp_path / "application_default_credentials.json"
    login_file.write_text(json.dumps(login))
    config = gcs_config(fake_gcs_server, gcs_bucket, gcs_credentials_file=str(login_file))
    assert len(run_tap(config).records("events")) == 2


def test_a_file_that_is_no_google_credentials_file_is_one_line(tmp_path, fake_gcs_server):
    not_json = tmp_path / "key.json"
    not_json.write_text("-----BEGIN PRIVATE KEY----- not a JSON file")
    config = gcs_config(fake_gcs_server, "mp-forwarding-x", gcs_credentials_file=str(not_json))
    message = tap_error(config)
    assert f"cannot load gcs_credentials_file {not_json}: " in message
    assert "JSONDecodeError (not a JSON credentials file)" in message
    assert "PRIVATE KEY" not in message
    federated = tmp_path / "federated.json"
    federated.write_text('{"type": "external_account", "credential_source": {}}')
    config = {**config, "gcs_credentials_file": str(federated)}
    assert "its type is 'external_account', not a service account key" in tap_error(config)
    missing = gcs_config(fake_gcs_server, "mp-forwarding-x", gcs_credentials_file="no.json")
    assert tap_error(missing).endswith(
        "cannot load gcs_credentials_file no.json: FileNotFoundError"
    )


def test_a_gcs_endpoint_with_a_trailing_slash_is_read(fake_gcs_server, gcs_bucket):
    # http://host:port/ made every request //storage/v1/...: "the bucket does not exist".
    fake_gcs_server.client().bucket(gcs_bucket).blob("a.txt").upload_from_string(batch_line(1))
    config = gcs_config(fake_gcs_server, gcs_bucket, gcs_endpoint_url=fake_gcs_server.url + "/")
    assert len(run_tap(config).records("events")) == 1


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (
            {"bucket_url": "gs://mp-b", "gcs_endpoint_url": "http://127.0.0.1:4443/storage/v1"},
            "gcs_endpoint_url 'http://127.0.0.1:4443/storage/v1' has a path",
        ),
        ({"bucket_url": "s3://mp-b", "aws_endpoint_url": "http://[x"}, "is not an http(s) URL"),
    ],
)
def test_endpoint_mistakes_are_one_config_error(config, message):
    with pytest.raises(ConfigValidationError) as raised:
        TapMParticle(config=config)
    assert [e for e in raised.value.errors or [] if message in e]


def test_an_azure_endpoint_that_is_no_accounts_names_the_setting(azurite_server, azure_container):
    # Azurite's endpoint without its account path: the listing said "the container or
    # blob does not exist", of a container that does.
    config = azure_config(azurite_server, azure_container, azure_endpoint_url=azurite_server.url)
    message = tap_error(config)
    assert "ResourceNotFound (the endpoint is no account's: check azure_endpoint_url" in message


def test_gcs_refusals_say_what_to_check():
    """fake-gcs-server checks no permission, so the API's answers are built here, as the
    client raises them; the line said only "Forbidden (HTTP 403)" or "BadRequest"."""
    from google.api_core import exceptions as google_errors  # noqa: PLC0415

    storage = storage_gcs.GcsStorage(
        "b", "", storage_gcs.GcsSettings(endpoint_url="http://127.0.0.1:9")
    )
    forbidden = google_errors.Forbidden("reader@x does not have storage.objects.list access")
    assert storage._reason(forbidden) == (
        "Forbidden (HTTP 403: the credentials lack storage.objects.list or "
        "storage.objects.get on the bucket)"
    )
    unpaid = google_errors.BadRequest(
        "Bucket is a requester pays bucket but no user project provided."
    )
    assert storage._reason(unpaid) == (
        "BadRequest (HTTP 400: the bucket is requester-pays, set gcs_project to the project "
        "to bill)"
    )
    assert storage._reason(google_errors.BadRequest("Invalid argument.")) == (
        "BadRequest (HTTP 400)"
    )
