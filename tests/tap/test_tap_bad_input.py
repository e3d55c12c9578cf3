import gzip
import json
import os
import subprocess
import sys

import pytest

from tests.support.files import error_lines
from tests.support.s3 import AWS_TEST_SECRET, s3_config
from tests.support.tap import run_cli, tap_error

GOOD = json.dumps(
    {"events": [{"event_type": "custom_event", "data": {"event_name": "Good"}}], "mpid": 1}
).encode()

BAD_LINES = {
    "not_json": b'{"events": [',
    "not_utf8": b'{"events": [], "x": "\xff\xfe"}',
    "not_a_batch": b"[1, 2, 3]",
    "events_not_array": b'{"events": "nope"}',
    "event_without_type": b'{"events": [{"data": {}}]}',
    "lone_surrogate": b'{"events": [{"event_type": "custom_event", "data": {"n": "\\ud800"}}]}',
}
EXPECTED_REASON = {
    "not_json": "not valid JSON",
    "not_utf8": "bytes that are not UTF-8",
    "not_a_batch": "not an mParticle batch",
    "events_not_array": "not an mParticle batch",
    "event_without_type": "event 0 has no string 'event_type'",
    "lone_surrogate": "a string with a lone surrogate escape",
}


def write_drop(tmp_path, bad: bytes):
    root = tmp_path / "drop"
    (root / "2024-05-01").mkdir(parents=True)
    path = root / "2024-05-01" / "app_1.txt"
    path.write_bytes(b"\n".join([GOOD, GOOD, bad, GOOD]) + b"\n")
    return root, path


def test_fail_exits_non_zero_with_one_last_error_line_naming_file_and_line(tmp_path):
    # The console script once; the message for every kind is checked in-process below.
    root, path = write_drop(tmp_path, BAD_LINES["not_json"])
    out = run_cli({"bucket_url": str(root)}, tmp_path)
    assert out.returncode == 1
    assert "Traceback" not in out.stderr
    errors = error_lines(out.stderr)
    assert errors
    assert f"{path.resolve()}:3: {EXPECTED_REASON['not_json']}" in errors[-1]


@pytest.mark.parametrize("kind", sorted(BAD_LINES))
def test_fail_names_file_and_line_in_one_line(tmp_path, kind):
    root, path = write_drop(tmp_path, BAD_LINES[kind])
    message = tap_error({"bucket_url": str(root)})
    assert message.endswith(f"{path.resolve()}:3: {EXPECTED_REASON[kind]}") or (
        f"{path.resolve()}:3: {EXPECTED_REASON[kind]}" in message
    )


@pytest.mark.parametrize("kind", sorted(BAD_LINES))
def test_skip_warns_counts_and_keeps_every_intact_event(tmp_path, kind):
    root, path = write_drop(tmp_path, BAD_LINES[kind])
    out = run_cli({"bucket_url": str(root), "on_bad_record": "skip"}, tmp_path)
    assert out.returncode == 0, out.stderr
    assert [r["_sdc_source_lineno"] for r in out.records("events")] == [1, 2, 4]
    assert f"skipped bad input: {path.resolve()}:3: {EXPECTED_REASON[kind]}" in out.stderr
    summary = "skipped 1 bad items (lines, rows, events or files) in 1 files (on_bad_record=skip)"
    assert summary in out.stderr


def test_skip_logs_a_file_s_first_bad_items_then_counts_the_rest(tmp_path):
    # A file of garbage must not turn the log into a copy of itself: the first 20 of
    # a file are logged, the rest summed up; another file's bad lines are logged anew.
    root = tmp_path / "drop"
    (root / "2024-05-01").mkdir(parents=True)
    noisy = root / "2024-05-01" / "app_1.txt"
    noisy.write_bytes(b"\n".join([GOOD] + [b"{oops"] * 25 + [GOOD]) + b"\n")
    quiet = root / "2024-05-01" / "app_2.txt"
    quiet.write_bytes(b"\n".join([b"{oops", GOOD, b"{oops"]) + b"\n")
    os.utime(quiet, (2_000_000_000, 2_000_000_000))
    os.utime(noisy, (1_900_000_000, 1_900_000_000))
    out = run_cli({"bucket_url": str(root), "on_bad_record": "skip"}, tmp_path)
    assert out.returncode == 0, out.stderr
    assert [r["_sdc_source_lineno"] for r in out.records("events")] == [1, 27, 2]
    logged = [line for line in out.stderr.splitlines() if "skipped bad input:" in line]
    assert [line.split(": not valid JSON")[0].rsplit(":", 1)[1] for line in logged] == [
        *(str(n) for n in range(2, 22)),
        "1",
        "3",
    ]
    assert f"{noisy.resolve()} has more than 20 bad items; the rest are counted" in out.stderr
    assert f"skipped 25 bad items in {noisy.resolve()} (the first 20 logged above)" in out.stderr
    assert f"bad items in {quiet.resolve()} (the first" not in out.stderr
    assert "skipped 27 bad items (lines, rows, events or files) in 2 files" in out.stderr


def test_skip_counts_an_archive_in_the_drop_as_one_bad_file_and_reads_the_rest(tmp_path):
    import bz2  # noqa: PLC0415

    root = tmp_path / "drop"
    root.mkdir()
    archive = root / "app_1.txt.bz2"
    archive.write_bytes(bz2.compress(b"\n".join([GOOD] * 50)))
    (root / "app_2.txt").write_bytes(GOOD + b"\n")
    out = run_cli({"bucket_url": str(root), "on_bad_record": "skip"}, tmp_path)
    assert out.returncode == 0, out.stderr
    assert [r["_sdc_source_file"].rsplit("/", 1)[-1] for r in out.records("events")] == [
        "app_2.txt"
    ]
    reason = "bzip2 data, not JSON lines: only gzip is decompressed; the file was not read"
    assert f"skipped bad input: {archive.resolve()}:1: {reason}" in out.stderr
    assert "skipped 1 bad items (lines, rows, events or files) in 1 files" in out.stderr


def truncated_gzip_drop(tmp_path):
    root = tmp_path / "drop"
    root.mkdir()
    body = b"".join(
        json.dumps({"events": [{"event_type": "uninstall", "data": {"n": i}}]}).encode() + b"\n"
        for i in range(3000)
    )
    compressed = gzip.compress(body, mtime=0)
    path = root / "app_1.txt"
    path.write_bytes(compressed[: len(compressed) * 2 // 3])
    after = root / "app_2.txt"
    after.write_bytes(GOOD + b"\n")
    return root, path


def test_truncated_gzip_fails_naming_the_file_and_line(tmp_path):
    root, path = truncated_gzip_drop(tmp_path)
    out = run_cli({"bucket_url": str(root)}, tmp_path)
    assert out.returncode == 1
    assert "Traceback" not in out.stderr
    assert f"{path.resolve()}:" in error_lines(out.stderr)[-1]
    assert "truncated or corrupt gzip" in error_lines(out.stderr)[-1]


def test_truncated_gzip_with_skip_keeps_intact_lines_and_goes_on(tmp_path):
    root, path = truncated_gzip_drop(tmp_path)
    out = run_cli({"bucket_url": str(root), "on_bad_record": "skip"}, tmp_path)
    assert out.returncode == 0, out.stderr
    records = out.records("events")
    from_truncated = [r for r in records if r["_sdc_source_uri"] == str(path.resolve())]
    assert len(from_truncated) > 1000
    assert [r["data"]["n"] for r in from_truncated] == list(range(len(from_truncated)))
    assert any(r["event_name"] == "Good" for r in records), "the next file is still read"
    assert "skipped 1 bad items (lines, rows, events or files) in 1 files" in out.stderr


def assert_one_storage_error(out, bucket: str, endpoint: str, reason: str = "") -> None:
    """Exit 1 with a last error line naming bucket, endpoint and reason, and no secret."""
    assert out.returncode == 1
    assert "Traceback" not in out.stderr
    last = error_lines(out.stderr)[-1]
    assert f"s3://{bucket}/" in last
    assert endpoint in last
    assert reason in last
    assert AWS_TEST_SECRET not in out.stderr + json.dumps(out.messages)


def test_missing_bucket_is_one_line_naming_bucket_and_endpoint(tmp_path, moto_endpoint):
    bucket = "mp-forwarding-does-not-exist"
    out = run_cli(s3_config(moto_endpoint, bucket), tmp_path)
    assert_one_storage_error(out, bucket, moto_endpoint, "NoSuchBucket")


def test_unreachable_endpoint_is_one_line_and_never_the_secret(tmp_path):
    endpoint = "http://127.0.0.1:9"
    # Two attempts, not eight: the line is the same, the wait much shorter.
    out = run_cli(s3_config(endpoint, "mp-forwarding-x"), tmp_path, env={"AWS_MAX_ATTEMPTS": "2"})
    assert_one_storage_error(out, "mp-forwarding-x", endpoint)


def test_secrets_never_reach_stdout_stderr_or_state(tmp_path, drop):
    config = {**drop.config, "aws_session_token": "tok-SECRET-123", "on_bad_record": "skip"}
    if "aws_access_key_id" not in config:
        config.update(aws_access_key_id="AKIAX", aws_secret_access_key=AWS_TEST_SECRET)
    out = run_cli(config, tmp_path)
    assert out.returncode == 0, out.stderr
    everything = out.stderr + json.dumps(out.messages)
    assert AWS_TEST_SECRET not in everything
    assert "tok-SECRET-123" not in everything
    if "azure_account_key" in config:
        assert config["azure_account_key"] not in everything


def test_refused_credentials_are_one_line_naming_bucket_and_endpoint(
    tmp_path, strict_moto_endpoint
):
    out = run_cli(s3_config(strict_moto_endpoint, "mp-forwarding-locked"), tmp_path)
    assert_one_storage_error(
        out, "mp-forwarding-locked", strict_moto_endpoint, "InvalidAccessKeyId"
    )


def test_failing_part_way_exits_even_with_large_downloads_in_flight(tmp_path):
    # The first file is bad; the next ones are far larger than what the download
    # threads may buffer, so at the failure they wait on full queues nobody reads.
    root = tmp_path / "drop"
    root.mkdir()
    bad = root / "a_bad.txt"
    bad.write_bytes(b"not json\n")
    os.utime(bad, (1_700_000_000, 1_700_000_000))
    line = GOOD[:-1] + b', "pad": "' + os.urandom(6000).hex().encode() + b'"}\n'
    for index in range(3):
        big = root / f"b_{index}.txt"
        big.write_bytes(line * 1500)  # about 18 MB each
        os.utime(big, (1_700_000_100 + index, 1_700_000_100 + index))
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"bucket_url": str(root), "download_concurrency": 3}))
    done = subprocess.run(
        [sys.executable, "-m", "tap_mparticle", "--config", str(config)],
        capture_output=True,
        timeout=120,  # a hang at exit fails here
        check=False,
    )
    assert done.returncode == 1
    assert f"{bad.resolve()}:1: not valid JSON" in done.stderr.decode()


def test_stdout_closed_by_the_reader_is_one_line_and_exit_1(tmp_path):
    """The target (or `head`) stopped reading: say so, instead of click's silent exit 1."""
    root = tmp_path / "drop"
    root.mkdir()
    for index in range(4):
        (root / f"app_{index}.txt").write_bytes((GOOD + b"\n") * 2000)
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"bucket_url": str(root), "download_concurrency": 3}))
    process = subprocess.Popen(
        [sys.executable, "-m", "tap_mparticle", "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "TAP_MPARTICLE_LOGLEVEL": "WARNING"},
    )
    assert process.stdout is not None
    process.stdout.close()  # the reader is gone before the first message
    _, stderr = process.communicate(timeout=120)  # a hang at exit fails here
    assert process.returncode == 1
    assert "Traceback" not in stderr.decode()
    errors = error_lines(stderr.decode())
    assert len(errors) == 1
    assert "stdout was closed" in errors[0]
