"""A `user:password@` in an endpoint URL or bucket_url is never printed."""

from __future__ import annotations

import logging
import typing as t
import warnings

import pytest
from singer_sdk.exceptions import ConfigValidationError

from mparticle_facts.plugin_guards import guard_logs, mask_userinfo
from tap_mparticle.storage import StorageError
from tap_mparticle.tap import TapMParticle
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
