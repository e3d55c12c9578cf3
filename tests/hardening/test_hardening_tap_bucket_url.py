"""Mistakes in where the drop is (bucket_url, aws_endpoint_url): one config error, no output."""

from __future__ import annotations

import typing as t

import pytest
from singer_sdk.exceptions import ConfigValidationError

from tap_mparticle.tap import TapMParticle
from tests.support.files import error_lines
from tests.support.tap import run_cli, run_tap

if t.TYPE_CHECKING:
    from pathlib import Path


def config_errors(bucket_url: str) -> list[str]:
    with pytest.raises(ConfigValidationError) as raised:
        TapMParticle(config={"bucket_url": bucket_url})
    return list(raised.value.errors or [])


def test_file_url_with_a_host_is_refused():
    # urlparse reads `work` as a host; the tap used to drop it and read /x.
    (error,) = config_errors("file://work/x")
    assert error == (
        "bucket_url 'file://work/x' names host 'work': a file:// URL takes no host "
        "(or localhost); for a path use file:///work/x"
    )


def test_file_url_host_never_shows_a_password():
    (error,) = config_errors("file://me:hunter2@host/x")
    assert "hunter2" not in error
    assert "names host 'host'" in error


def test_file_url_with_localhost_or_no_host_reads_the_path(tmp_path: Path):
    (tmp_path / "events.txt").write_text("")
    for url in (f"file://localhost{tmp_path}", f"file://LocalHost{tmp_path}", f"file://{tmp_path}"):
        assert run_tap({"bucket_url": url}).records("events") == []


@pytest.mark.parametrize(
    ("url", "hint"),
    [
        ("s3//mybucket", "did you mean s3://mybucket?"),
        ("gs//b/pre", "did you mean gs://b/pre?"),
        ("s3:/mybucket", "did you mean s3://mybucket?"),
        ("az:container", "did you mean az://container?"),
    ],
)
def test_mistyped_cloud_url_hints_at_the_url(tmp_path: Path, url: str, hint: str, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a relative path: it must not exist here
    (error,) = [e for e in config_errors(url) if e.startswith("bucket_url")]
    assert error.startswith(f"bucket_url {url!r} ")
    assert error.endswith(hint)


def test_missing_local_directory_fails_before_any_output(tmp_path: Path):
    missing = tmp_path / "no-such-drop"
    run = run_cli({"bucket_url": str(missing)}, tmp_path)
    assert run.returncode == 1
    assert run.messages == []  # not even a SCHEMA
    (line,) = error_lines(run.stderr)
    assert f"bucket_url '{missing}' does not exist (a local directory: {missing})" in line
    assert "Traceback" not in run.stderr


def test_a_file_is_not_a_local_drop(tmp_path: Path):
    a_file = tmp_path / "drop.txt"
    a_file.write_text("")
    (error,) = config_errors(str(a_file))
    assert error == f"bucket_url '{a_file}' is not a directory (a local drop is a directory)"


def test_endpoint_url_with_a_path_is_refused_before_any_request(
    tmp_path: Path, moto_endpoint: str, s3_client, s3_bucket: str
):
    event = b'{"events": [{"event_type": "uninstall", "data": {}}], "mpid": "7"}'
    s3_client.put_object(Bucket=s3_bucket, Key="2024-05-01/app_1.txt", Body=event)
    config = {
        "bucket_url": f"s3://{s3_bucket}",
        "aws_region": "us-east-1",
        "aws_access_key_id": "AKIATESTTESTTESTTEST",
        "aws_secret_access_key": "test-secret",
    }
    with_path = {**config, "aws_endpoint_url": f"{moto_endpoint}/{s3_bucket}"}
    run = run_cli(with_path, tmp_path)
    assert run.returncode == 1
    assert run.messages == []
    (line,) = error_lines(run.stderr)
    assert line.endswith(
        f"aws_endpoint_url '{moto_endpoint}/{s3_bucket}' has a path: no path allowed: put the "
        "bucket in bucket_url (e.g. http://localhost:9000 and s3://bucket/prefix)"
    )
    # The same endpoint without the path reads the bucket.
    fixed = run_cli({**config, "aws_endpoint_url": moto_endpoint}, tmp_path)
    assert fixed.returncode == 0, fixed.stderr[-2000:]
    assert [r["mpid"] for r in fixed.records("events")] == [7]
