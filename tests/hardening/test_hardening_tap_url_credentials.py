"""A `user:password@` in an endpoint URL or bucket_url is never printed."""

from __future__ import annotations

import json
import logging
import typing as t
import warnings

import pytest
from singer_sdk.exceptions import ConfigValidationError

from mparticle_facts.plugin_guards import guard_logs, mask_userinfo
from tap_mparticle.storage import StorageError
from tap_mparticle.tap import TapMParticle
from tests.support.cloud import AZURITE_ACCOUNT, AZURITE_KEY
from tests.support.files import error_lines
from tests.support.s3 import s3_config
from tests.support.tap import run_cli

if t.TYPE_CHECKING:
    from pathlib import Path

PASSWORD = "pa55word-in-url"


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        (f"at http://minio:{PASSWORD}@127.0.0.1:9000/: x", "at http://***@127.0.0.1:9000/: x"),
        (f"'HTTPS://token{PASSWORD}@host'", "'HTTPS://***@host'"),
        (f"s3://u:{PASSWORD}@bucket/key", "s3://***@bucket/key"),
        (f"http://u:p@{PASSWORD}@host/x", "http://***@host/x"),  # the last @ ends it
        # An @ after the host is a path's or a key's, not credentials.
        ("s3://bucket/2024/a@b.txt", "s3://bucket/2024/a@b.txt"),
        ("mail ops@example.com at http://host/", "mail ops@example.com at http://host/"),
        # Signatures and keys in a query or a connection string, any case.
        ("at http://h/a?sv=1&sig=ab%2B/c%3D: no", "at http://h/a?sv=1&sig=***: no"),
        ("'accountname=a;accountkey=eby8/+==;x'", "'accountname=a;accountkey=***;x'"),
        ("a signature, sig or design=1", "a signature, sig or design=1"),
    ],
)
def test_mask_userinfo(text: str, masked: str):
    assert mask_userinfo(text) == masked


class _Keep(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def test_every_log_line_masks_url_credentials():
    logger = logging.getLogger("tap-mparticle.test-url-credentials")
    keep = _Keep()
    logger.addHandler(keep)
    try:
        guard_logs([], [])  # the guard goes on every handler present
        logger.warning("endpoint %s", f"http://u:{PASSWORD}@h:1/")
    finally:
        logger.removeHandler(keep)
    assert keep.lines == ["endpoint http://***@h:1/"]


def test_a_captured_warning_is_one_line_without_the_source_line_that_warned():
    """As the SDK's end-of-life notice reaches the log on Python 3.10 (`py.warnings`)."""
    logger = logging.getLogger("py.warnings")
    keep = _Keep()
    logger.addHandler(keep)
    logging.captureWarnings(capture=True)
    try:
        guard_logs([], [])
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            warnings.warn("Python 3.10 reached\nits end of life", FutureWarning, stacklevel=1)
    finally:
        logging.captureWarnings(capture=False)
        logger.removeHandler(keep)
    (line,) = keep.lines
    assert line.endswith(": FutureWarning: Python 3.10 reached\\nits end of life")
    assert "warnings.warn(" not in line


def test_storage_errors_mask_url_credentials():
    error = StorageError(f"cannot list gs://b/ at http://u:{PASSWORD}@127.0.0.1:1/: refused")
    assert str(error) == "cannot list gs://b/ at http://***@127.0.0.1:1/: refused"


@pytest.mark.parametrize(
    ("mistake", "message"),
    [
        (
            {"aws_endpoint_url": f"ftp://u:{PASSWORD}@h/"},
            "aws_endpoint_url 'ftp://***@h/' is not an http(s) URL",
        ),
        (
            {"gcs_endpoint_url": f"ftp://u:{PASSWORD}@h/"},
            "gcs_endpoint_url 'ftp://***@h/' is not an http(s) URL",
        ),
        (
            {"azure_endpoint_url": f"ftp://u:{PASSWORD}@h/"},
            "azure_endpoint_url 'ftp://***@h/' is not an http(s) URL",
        ),
        (
            {"bucket_url": f"s3://u:{PASSWORD}@bucket"},
            "bucket_url 's3://***@bucket' holds credentials (user:password@)",
        ),
        (
            {"bucket_url": f"gs://u:{PASSWORD}@bucket"},
            "bucket_url 'gs://***@bucket' holds credentials (user:password@)",
        ),
    ],
)
def test_setting_errors_mask_url_credentials(mistake: dict, message: str):
    with pytest.raises(ConfigValidationError) as raised:
        TapMParticle(config={"bucket_url": "s3://bucket", **mistake})
    errors = raised.value.errors or []
    assert [e for e in errors if message in e], errors
    assert not any(PASSWORD in e for e in errors)


def test_cli_never_prints_the_endpoints_credentials(tmp_path: Path, moto_endpoint: str):
    """The listing names the endpoint (INFO) and botocore quotes it (the error): both masked."""
    endpoint = moto_endpoint.replace("http://", f"http://minio:{PASSWORD}@")
    run = run_cli(s3_config(endpoint, "no-such-bucket"), tmp_path)
    assert run.returncode == 1
    (line,) = error_lines(run.stderr)
    masked = moto_endpoint.replace("http://", "http://***@")
    assert f"cannot list s3://no-such-bucket/audiences/ at {masked}" in line
    assert PASSWORD not in run.stderr
    assert "Traceback" not in run.stderr


SAS_SIGNATURE = "c2lnbmF0dXJlLWluLWEtdXJs%2BPRB%3D"
PRESIGNED = "X-Amz-Credential=AKIAPRESIGNED0000042%2F20240501&X-Amz-Signature=5e1gnature0042"


@pytest.mark.parametrize(
    ("mistake", "hidden", "error"),
    [
        # Azure's portal gives the SAS as a URL; pasted as the endpoint, it was quoted.
        (
            {"azure_endpoint_url": f"{{account_url}}?sv=2024-05-04&sp=rl&sig={SAS_SIGNATURE}"},
            ["c2lnbmF0dXJl"],
            "azure_endpoint_url has a query string: give the URL without it",
        ),
        # A connection string pasted as the endpoint or the account name.
        (
            {"azure_endpoint_url": "{connection_string}"},
            ["{key_head}"],
            "AccountKey=***;BlobEndpoint=",
        ),
        (
            {"azure_account_name": "{connection_string}"},
            ["{key_head}", "{key_head_lower}"],
            "azure_account_name is not a storage account name",
        ),
        # An S3 presigned URL pasted as the endpoint.
        (
            {"aws_endpoint_url": f"https://s3.amazonaws.com/?{PRESIGNED}"},
            ["5e1gnature", "AKIAPRE"],
            "X-Amz-Credential=***&X-Amz-Signature=***' has a path",
        ),
    ],
)
def test_a_signature_or_key_in_a_setting_that_is_no_secret_is_never_printed(  # noqa: PLR0913, PLR0917 - fixtures
    tmp_path: Path,
    azurite_server,
    azure_container: str,
    mistake: dict,
    hidden: list[str],
    error: str,
):
    names = {
        "account_url": azurite_server.account_url,
        "connection_string": (
            f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};"
            f"AccountKey={AZURITE_KEY};BlobEndpoint={azurite_server.account_url};"
        ),
        "key_head": AZURITE_KEY[:16],
        "key_head_lower": AZURITE_KEY[:16].lower(),
    }
    config = {
        "bucket_url": f"az://{azure_container}",
        "azure_account_name": AZURITE_ACCOUNT,
        **{name: value.format(**names) for name, value in mistake.items()},
    }
    if "aws_endpoint_url" in mistake:
        config = {"bucket_url": "s3://bucket", **mistake}
    run = run_cli(config, tmp_path)
    assert run.returncode == 1
    assert [line for line in error_lines(run.stderr) if error in line]
    assert "Traceback" not in run.stderr
    shown = run.stderr + json.dumps(run.messages)
    assert [text.format(**names) for text in hidden if text.format(**names) in shown] == []
