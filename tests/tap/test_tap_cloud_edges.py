"""GCS and Azure edges a hostile review found: object metadata, URL forms, changes mid-run.

Each runs on the session's real emulators (fake-gcs-server, Azurite) with a fresh
bucket or container, in-process where a module constant is lowered to make a case
small (a read range of a few KiB instead of 4 MiB).
"""

import gzip
import hashlib

from azure.storage.blob import ContentSettings

from tap_mparticle import storage_azure
from tests.support.cloud import azure_config
from tests.support.tap import run_tap
from tests.tap.test_tap_sync import batch_line


def varied_lines(count: int) -> bytes:
    """Event lines that do not compress to almost nothing, so gzip spans several ranges."""
    names = (f"E{i}-{hashlib.sha256(str(i).encode()).hexdigest()[:20]}" for i in range(count))
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
