"""No secret in any output, at any log level: distinctive fake values, searched everywhere.

Each secret setting gets a value that appears nowhere else; the plugins run as
console scripts at DEBUG (the level botocore dumps request headers and bodies at),
and stdout (records and STATE), stderr and every file they write are searched.
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
import subprocess
import sys
import typing as t

import pytest
from singer_sdk.logging import ConsoleFormatter, StructuredFormatter

from mparticle_facts.plugin_guards import guard_logs
from tap_mparticle.aws_session import AwsSettings, boto_session
from tests.support.cases import batch_line, event
from tests.support.eventsapi import EventsApiServer, Fault
from tests.support.target import SCHEMA, event_record, line_messages, state_message

if t.TYPE_CHECKING:
    from pathlib import Path

TAP_SECRETS = {
    "aws_access_key_id": "AKIAHARDENINGKEY0042",
    "aws_secret_access_key": "hardening-secret-access-key-7f3a",
    "aws_session_token": "hardening-session-token-9c1e",
    "aws_external_id": "hardening-external-id-4b2d",
}
TARGET_SECRETS = {"api_key": "hardening-api-key-51d0", "api_secret": "hardening-api-secret-e8b7"}


def run_debug(
    module: str, config: dict, tmp_path: Path, stdin: str = "", *args: str, **env_vars: str
):
    config_file = tmp_path / f"{module}.json"
    config_file.write_text(json.dumps(config))
    env = {**os.environ, "LOGLEVEL": "DEBUG", **env_vars}
    return subprocess.run(
        [sys.executable, "-m", module, "--config", str(config_file), *args],
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
        env=env,
        timeout=120,
    )


def leaks(secrets: dict[str, str], *texts: str) -> dict[str, int]:
    return {
        name: sum(text.count(value) for text in texts)
        for name, value in secrets.items()
        if any(value in text for text in texts)
    }


def test_tap_prints_no_secret_at_debug(tmp_path: Path, moto_endpoint: str, s3_client, s3_bucket):
    body = batch_line(event("ok")) + batch_line(event("bad", 10**20))
    s3_client.put_object(Bucket=s3_bucket, Key="2024-05-01/a.txt", Body=body)
    config = {
        "bucket_url": f"s3://{s3_bucket}",
        "aws_endpoint_url": moto_endpoint,
        "aws_region": "us-east-1",
        "aws_role_arn": "arn:aws:iam::123456789012:role/hardening",
        "on_bad_record": "skip",
        **TAP_SECRETS,
    }
    done = run_debug("tap_mparticle", config, tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "| DEBUG" in done.stderr  # the level really was DEBUG
    assert '"type":"STATE"' in done.stdout
    assert leaks(TAP_SECRETS, done.stdout, done.stderr) == {}
    # A failing run (bad line, fail mode) prints its error and STATE: still nothing.
    failing = run_debug("tap_mparticle", {**config, "on_bad_record": "fail"}, tmp_path)
    assert failing.returncode == 1
    assert leaks(TAP_SECRETS, failing.stdout, failing.stderr) == {}


def test_target_prints_and_writes_no_secret_at_debug(tmp_path: Path):
    lines = [SCHEMA, *line_messages(1, 3), state_message(1)]
    # A record mParticle would refuse (no identity at all) goes to the dead letters.
    no_identity = {**event_record(2, 0), "user_identities": {}, "mpid": None}
    refused = {"type": "RECORD", "stream": "events", "record": no_identity}
    stdin = "\n".join([*lines, json.dumps(refused), state_message(2)]) + "\n"
    dead = tmp_path / "dead.jsonl"
    dry = tmp_path / "dry.jsonl"
    with EventsApiServer(**TARGET_SECRETS) as server:
        config = {
            **TARGET_SECRETS,
            "api_url": server.url,
            "on_invalid_record": "dead_letter",
            "dead_letter_path": str(dead),
        }
        sent = run_debug("target_mparticle", config, tmp_path, stdin)
        refused_auth = run_debug(
            "target_mparticle", {**config, "api_secret": "hardening-wrong-secret"}, tmp_path, stdin
        )
    assert sent.returncode == 0, sent.stderr[-2000:]
    assert "| DEBUG" in sent.stderr
    assert dead.read_text()  # a dead letter was written
    assert refused_auth.returncode == 1
    dry_run = run_debug(
        "target_mparticle", {**config, "dry_run": True, "dry_run_path": str(dry)}, tmp_path, stdin
    )
    assert dry_run.returncode == 0, dry_run.stderr[-2000:]
    outputs = [
        sent.stdout,
        sent.stderr,
        refused_auth.stdout,
        refused_auth.stderr,
        dry_run.stdout,
        dry_run.stderr,
        dead.read_text(),
        dry.read_text(),
    ]
    assert leaks(TARGET_SECRETS, *outputs) == {}
    assert "hardening-wrong-secret" not in refused_auth.stderr


def test_a_secret_of_the_wrong_type_is_named_never_shown(tmp_path: Path):
    """The SDK's config check quotes the value it refuses, before any log filter exists."""
    target_secrets = {"api_key": 98765432, "api_secret": ["hardening-listed-secret"]}
    tap_secrets = {
        "aws_access_key_id": {"id": "AKIAHARDENINGNESTED"},
        "aws_secret_access_key": 12345678,
        "aws_session_token": 7,  # short: still not shown where its setting is named
    }
    runs = [
        run_debug("target_mparticle", {"dry_run": True, **target_secrets}, tmp_path),
        run_debug("tap_mparticle", {"bucket_url": str(tmp_path), **tap_secrets}, tmp_path),
    ]
    texts = ["98765432", "hardening-listed-secret", "AKIAHARDENINGNESTED", "12345678"]
    for run, names in zip(runs, (target_secrets, tap_secrets), strict=True):
        assert run.returncode == 1
        assert "Traceback" not in run.stderr
        errors = [line for line in run.stderr.splitlines() if "| ERROR" in line]
        assert [e for e in errors if "7 is not" in e] == []
        for name in names:  # each named, its value masked
            assert any(
                f"*** is not of type 'string', 'null' in config['{name}']" in e for e in errors
            )
        assert [text for text in texts if text in run.stdout + run.stderr] == []


def escaped_forms(secret: str) -> list[str]:
    """How an error may quote a secret: raw, escaped, and each of its lines alone."""
    return [secret, repr(secret)[1:-1], repr(secret.encode())[2:-1], *secret.splitlines()]


def test_a_secret_holding_a_line_break_is_masked_as_errors_quote_it(
    tmp_path: Path, moto_endpoint: str, s3_bucket
):
    """http.client refuses the header and quotes its bytes (`b'...\\n...'`): masked too."""
    token = "hardening-session\ntoken-0f3c"
    config = {
        "bucket_url": f"s3://{s3_bucket}",
        "aws_endpoint_url": moto_endpoint,
        "aws_region": "us-east-1",
        **TAP_SECRETS,
        "aws_external_id": None,
        "aws_session_token": token,
    }
    done = run_debug("tap_mparticle", config, tmp_path, AWS_MAX_ATTEMPTS="2")  # each retried
    assert done.returncode == 1
    (error,) = [line for line in done.stderr.splitlines() if "| ERROR" in line]
    assert "Invalid header value b'***'" in error
    shown = done.stdout + done.stderr
    assert [form for form in escaped_forms(token) if form in shown] == []


def test_a_server_quoting_a_secret_json_escaped_gets_it_masked(tmp_path: Path):
    """A gateway's plain-text 400 quoting key:secret as a JSON string (`\\n` escaped)."""
    secret = "hardening-api-secret\nsecond-line-7c2a"
    quoted = json.dumps(f"{TARGET_SECRETS['api_key']}:{secret}")
    stdin = "\n".join([SCHEMA, *line_messages(1, 1), state_message(1)]) + "\n"
    dead = tmp_path / "dead.jsonl"
    with EventsApiServer(TARGET_SECRETS["api_key"], secret) as server:
        server.script(Fault("status", status=400, body=f"denied {quoted}".encode()))
        config = {
            **TARGET_SECRETS,
            "api_secret": secret,
            "api_url": server.url,
            "on_invalid_record": "dead_letter",
            "dead_letter_path": str(dead),
        }
        done = run_debug("target_mparticle", config, tmp_path, stdin)
    assert done.returncode == 0, done.stderr[-2000:]
    letters = dead.read_text()
    assert 'denied \\"***:***\\"' in letters
    shown = done.stdout + done.stderr + letters
    assert [form for form in escaped_forms(secret) if form in shown] == []


@pytest.mark.parametrize("mode", ["send", "dry_run"])
def test_an_api_url_holding_credentials_is_refused_never_written(tmp_path: Path, mode: str):
    """They were never sent, but dead letters, dry-run lines and errors named the URL whole."""
    password = "hardening-url-password-93ad"
    stdin = "\n".join([SCHEMA, *line_messages(1, 2), state_message(1)]) + "\n"
    dead, dry = tmp_path / "dead.jsonl", tmp_path / "dry.jsonl"
    with EventsApiServer(**TARGET_SECRETS) as server:
        config = {
            **TARGET_SECRETS,
            "api_url": server.url.replace("http://", f"http://proxy-user:{password}@"),
            "on_invalid_record": "dead_letter",
            "dead_letter_path": str(dead),
            "dry_run": mode == "dry_run",
            "dry_run_path": str(dry),
        }
        server.script(Fault("status", status=400), times=10)
        done = run_debug("target_mparticle", config, tmp_path, stdin)
        sent = server.requests
    assert done.returncode == 1
    (error,) = [line for line in done.stderr.splitlines() if "| ERROR" in line]
    masked = server.url.replace("http://", "http://***@")
    assert f"api_url '{masked}' holds credentials (user:password@)" in error
    assert sent == []
    written = [path.read_text() for path in (dead, dry) if path.exists()]
    assert [text for text in [done.stdout, done.stderr, *written] if password in text] == []


def test_a_long_answer_quoting_the_key_is_masked_before_it_is_cut(tmp_path: Path):
    """Only an answer's first 500 characters are quoted: a key across the cut kept its head."""
    key = TARGET_SECRETS["api_key"]
    page = "x" * 480 + f" {key}:{TARGET_SECRETS['api_secret']}"  # the key starts at 481
    stdin = "\n".join([SCHEMA, *line_messages(1, 1), state_message(1)]) + "\n"
    with EventsApiServer(**TARGET_SECRETS) as server:
        server.script(Fault("status", status=501, body=page.encode()))
        done = run_debug(
            "target_mparticle", {**TARGET_SECRETS, "api_url": server.url}, tmp_path, stdin
        )
    assert done.returncode == 1
    (error,) = [line for line in done.stderr.splitlines() if "| ERROR" in line]
    assert "x" * 480 + " ***:***; not retried" in error
    assert key[:12] not in done.stdout + done.stderr


def test_a_role_that_cannot_be_assumed_is_one_line_without_the_token(
    tmp_path: Path, moto_endpoint: str, s3_bucket
):
    """AssumeRole failed outside any listing: a traceback, its last line quoting the token."""
    token = "hardening-session\ntoken-role-5e1b"
    config = {
        "bucket_url": f"s3://{s3_bucket}",
        "aws_endpoint_url": moto_endpoint,
        "aws_region": "us-east-1",
        **TAP_SECRETS,
        "aws_role_arn": "arn:aws:iam::123456789012:role/hardening",
        "aws_session_token": token,
    }
    done = run_debug("tap_mparticle", config, tmp_path)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    (error,) = [line for line in done.stderr.splitlines() if "| ERROR" in line]
    assert "cannot assume aws_role_arn arn:aws:iam::123456789012:role/hardening at" in error
    assert "Invalid header value b'***'" in error
    shown = done.stdout + done.stderr
    assert [form for form in escaped_forms(token) if form in shown] == []


@pytest.mark.parametrize("formatter", [ConsoleFormatter(), StructuredFormatter()])
def test_a_logged_traceback_quoting_a_secret_is_masked(formatter: logging.Formatter):
    """The SDK logs an uncaught exception with its traceback: its last line is masked too."""
    secret = TAP_SECRETS["aws_session_token"]
    logger = logging.getLogger("tap-mparticle.test-traceback")
    written = io.StringIO()
    handler = logging.StreamHandler(written)
    handler.setFormatter(formatter)
    logger.addHandler(handler)
    try:
        guard_logs([secret], [])
        try:
            msg = f"Invalid header value {secret.encode()!r} for http://u:pa55word-9e@host/"
            raise ValueError(msg)  # noqa: TRY301  (a real exception, as a library raises it)
        except ValueError:
            logger.exception("unhandled")
    finally:
        logger.removeHandler(handler)
    shown = written.getvalue()
    assert "unhandled" in shown
    assert secret not in shown
    assert "pa55word-9e" not in shown
    if isinstance(formatter, ConsoleFormatter):
        assert "ValueError: Invalid header value b'***' for http://***@host/" in shown


def test_a_secret_basic_auth_cannot_carry_is_named_never_shown(tmp_path: Path):
    """A secret outside Latin-1 was a traceback quoting its character and where it stood."""
    secret = "hardening-api-secret-€-41aa"
    with EventsApiServer(TARGET_SECRETS["api_key"], secret) as server:
        config = {**TARGET_SECRETS, "api_secret": secret, "api_url": server.url}
        stdin = "\n".join([SCHEMA, *line_messages(1, 1), state_message(1)]) + "\n"
        done = run_debug("target_mparticle", config, tmp_path, stdin)
        assert server.requests == []
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    (error,) = [line for line in done.stderr.splitlines() if "| ERROR" in line]
    assert "api_secret holds a character HTTP Basic authentication cannot carry" in error
    shown = done.stdout + done.stderr
    assert [text for text in [*escaped_forms(secret), "€", "\\u20ac"] if text in shown] == []


#: A logging config asking for botocore's request and response dumps by their own loggers.
BOTOCORE_DUMPS = """version: 1
incremental: true
loggers:
  botocore.endpoint: {level: DEBUG}
  botocore.parsers: {level: DEBUG}
  urllib3.connectionpool: {level: DEBUG}
"""


def test_a_logging_config_asking_for_botocore_dumps_gets_none(
    tmp_path: Path, moto_endpoint: str, s3_client, s3_bucket
):
    """Children of a capped logger kept their own DEBUG: the assumed role's temporary
    credentials (which no setting holds to mask) were printed, from STS's answer on."""
    s3_client.put_object(Bucket=s3_bucket, Key="2024-05-01/a.txt", Body=batch_line(event("ok")))
    log_config = tmp_path / "logging.yaml"
    log_config.write_text(BOTOCORE_DUMPS)
    config = {
        "bucket_url": f"s3://{s3_bucket}",
        "aws_endpoint_url": moto_endpoint,
        "aws_region": "us-east-1",
        **TAP_SECRETS,
        "aws_role_arn": "arn:aws:iam::123456789012:role/hardening",
    }
    done = run_debug("tap_mparticle", config, tmp_path, SINGER_SDK_LOG_CONFIG=str(log_config))
    assert done.returncode == 0, done.stderr[-2000:]
    assert '"type":"RECORD"' in done.stdout
    assert "| DEBUG" in done.stderr
    for dump in ("Sending http request", "<SecretAccessKey>", "X-Amz-Security-Token"):
        assert dump not in done.stderr
    assert re.findall(r"ASIA[A-Z0-9]{16}", done.stderr) == []  # moto's temporary key ids


def test_credentials_from_the_environment_are_masked_too(
    tmp_path: Path, moto_endpoint: str, s3_bucket
):
    """boto3's chain found them (AWS_SESSION_TOKEN), no setting held them: never masked."""
    token = "hardening-env-session\ntoken-2d7e"
    config = {
        "bucket_url": f"s3://{s3_bucket}",
        "aws_endpoint_url": moto_endpoint,
        "aws_region": "us-east-1",
    }
    done = run_debug(
        "tap_mparticle",
        config,
        tmp_path,
        AWS_ACCESS_KEY_ID="AKIAHARDENINGENV0042",
        AWS_SECRET_ACCESS_KEY="hardening-env-secret-key-51c3",
        AWS_SESSION_TOKEN=token,
        AWS_MAX_ATTEMPTS="2",  # the refused header is retried like a dropped connection
    )
    assert done.returncode == 1
    (error,) = [line for line in done.stderr.splitlines() if "| ERROR" in line]
    assert "Invalid header value b'***'" in error
    shown = done.stdout + done.stderr
    assert [form for form in escaped_forms(token) if form in shown] == []


def test_an_assumed_roles_temporary_credentials_are_masked(moto_endpoint: str):
    """STS hands out credentials no setting holds: masked from the moment they arrive."""
    logger = logging.getLogger("tap-mparticle.test-temporary-credentials")
    written = io.StringIO()
    handler = logging.StreamHandler(written)
    logger.addHandler(handler)
    try:
        aws = AwsSettings(
            access_key_id="AKIAHARDENINGROLE042",
            secret_access_key="hardening-role-secret-8d1f",
            region="us-east-1",
            endpoint_url=moto_endpoint,
            role_arn="arn:aws:iam::123456789012:role/hardening",
        )
        credentials = boto_session(aws).get_credentials()
        assert credentials is not None
        temporary = credentials.get_frozen_credentials()
        assert temporary.access_key.startswith("ASIA")  # STS's, not the user's
        logger.warning("%s %s %s", temporary.access_key, temporary.secret_key, temporary.token)
    finally:
        logger.removeHandler(handler)
    assert written.getvalue() == "*** *** ***\n"
