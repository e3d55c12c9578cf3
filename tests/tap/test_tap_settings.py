import json

import pytest
from singer_sdk.exceptions import ConfigValidationError

from tap_mparticle.settings import normalize_prefix
from tap_mparticle.storage import LocalStorage, S3Storage
from tap_mparticle.tap import TapMParticle
from tests.support.tap import run_cli


def make_tap(**config):
    return TapMParticle(config={"bucket_url": "s3://mp-forwarding-x", **config})


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"aws_access_key_id": "AKIA"}, "must be set together"),
        ({"aws_secret_access_key": "s"}, "must be set together"),
        ({"aws_session_token": "t"}, "aws_session_token needs"),
        ({"aws_external_id": "e"}, "only used with aws_role_arn"),
        (
            {"aws_profile": "p", "aws_access_key_id": "a", "aws_secret_access_key": "s"},
            "either aws_profile or aws_access_key_id",
        ),
        ({"bucket_url": "s3://"}, "names no bucket"),
        ({"bucket_url": "ftp://bucket"}, "unsupported scheme 'ftp'"),
        ({"bucket_url": "gs://"}, "names no bucket (expected gs://bucket)"),
        ({"bucket_url": "az:///x"}, "names no container (expected az://container)"),
        ({"bucket_url": "az://c"}, "an az:// bucket_url needs azure_account_name"),
        (
            {"azure_account_name": "a", "azure_account_key": "k", "azure_sas_token": "s"},
            "either azure_account_key or azure_sas_token",
        ),
        ({"azure_account_key": "k"}, "azure_account_key needs azure_account_name"),
        ({"gcs_endpoint_url": "localhost:4443"}, "gcs_endpoint_url 'localhost:4443' is not an"),
        ({"azure_endpoint_url": "127.0.0.1"}, "azure_endpoint_url '127.0.0.1' is not an http(s)"),
        (
            {"azure_connection_string": "c", "azure_sas_token": "s"},
            "azure_connection_string already names the account",
        ),
        ({"download_concurrency": 0}, "download_concurrency must be from 1 to 64"),
        ({"lookback_window_minutes": -5}, "lookback_window_minutes must be"),
        ({"start_date": "yesterday"}, "start_date"),
        (
            {"events_prefix": "mparticle", "audiences_prefix": "/mparticle/"},
            "events_prefix and audiences_prefix are both 'mparticle/'",
        ),
        (
            {"events_prefix": "s3://mp-forwarding-x/events"},
            "events_prefix 's3://mp-forwarding-x/events/' is a URL: a prefix is a folder",
        ),
        ({"audiences_prefix": "s3:/x/a"}, "audiences_prefix 's3:/x/a/' is a URL"),
    ],
)
def test_bad_settings_are_named(config, message):
    with pytest.raises(ConfigValidationError) as caught:
        make_tap(**config)
    assert any(message in error for error in caught.value.errors), caught.value.errors


def test_every_problem_is_reported_at_once():
    with pytest.raises(ConfigValidationError) as caught:
        make_tap(aws_access_key_id="a", aws_external_id="e", download_concurrency=0)
    assert len(caught.value.errors) == 3


def test_bad_setting_exits_non_zero_from_the_cli(tmp_path):
    out = run_cli(
        {"bucket_url": "s3://b", "aws_access_key_id": "AKIA", "aws_session_token": "tok-SECRET"},
        tmp_path,
    )
    assert out.returncode == 1
    assert "must be set together" in out.stderr
    assert "tok-SECRET" not in out.stderr


def test_the_connection_test_reads_one_event_and_exits_zero(tmp_path):
    # `test` is a declared capability: `--test` reads one record of a stream that has
    # some, not the drop, and says so with exit 0.
    drop = tmp_path / "drop"
    drop.mkdir()
    batch = {"events": [{"event_type": "custom_event", "data": {"event_name": "E"}}] * 3}
    (drop / "app_1.txt").write_text((json.dumps({**batch, "mpid": 1}) + "\n") * 5)
    out = run_cli({"bucket_url": str(drop)}, tmp_path, extra_args=("--test",))
    assert out.returncode == 0, out.stderr
    assert len(out.records("events")) == 1
    full = run_cli({"bucket_url": str(drop)}, tmp_path)
    assert len(full.records("events")) == 15


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("", ""), ("/", ""), ("events", "events/"), ("/a/b/", "a/b/"), (" x ", "x/")],
)
def test_prefixes_are_normalised(raw, expected):
    assert normalize_prefix(raw) == expected


def test_bucket_url_forms_pick_the_backend(tmp_path):
    s3 = make_tap(bucket_url="s3://mp-forwarding-x/some/prefix").storage
    assert isinstance(s3, S3Storage)
    assert (s3.bucket, s3.root) == ("mp-forwarding-x", "some/prefix/")
    assert isinstance(make_tap(bucket_url=str(tmp_path)).storage, LocalStorage)
    file_url = make_tap(bucket_url=f"file://{tmp_path}").storage
    assert isinstance(file_url, LocalStorage)
    assert file_url.root == tmp_path


def test_defaults(tmp_path):
    settings = make_tap(bucket_url=str(tmp_path)).settings
    assert settings.prefixes["events_prefix"] == ""
    assert settings.lookback.total_seconds() == 120 * 60
    assert settings.on_bad_record == "fail"
    assert settings.download_concurrency == 4


def test_settings_repr_hides_secrets():
    tap = make_tap(aws_access_key_id="AKIA", aws_secret_access_key="very-secret")
    assert "very-secret" not in repr(tap.settings)
    assert "very-secret" not in repr(tap.settings.aws)


def test_secret_settings_are_marked_secret():
    props = TapMParticle.config_jsonschema["properties"]
    secret = {name for name, prop in props.items() if prop.get("secret")}
    assert {"aws_secret_access_key", "aws_session_token", "aws_external_id"} <= secret


def test_env_config_is_read(tmp_path, monkeypatch):
    monkeypatch.setenv("TAP_MPARTICLE_BUCKET_URL", str(tmp_path))
    monkeypatch.setenv("TAP_MPARTICLE_ON_BAD_RECORD", "skip")
    tap = TapMParticle(config=None, parse_env_config=True)
    assert tap.settings.on_bad_record == "skip"
    assert json.dumps(tap.settings.bucket_url) == json.dumps(str(tmp_path))
