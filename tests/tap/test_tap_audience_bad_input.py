"""Bad audience input: with fail, one line naming file and line and exit 1; with skip, go on."""

from __future__ import annotations

import gzip
import json
import logging
import subprocess
import sys
from typing import TYPE_CHECKING

import pytest

from tests.support.files import error_lines
from tests.support.tap import assert_valid, generator, run_cli, run_tap, tap_error

if TYPE_CHECKING:
    from pathlib import Path

DELTA_NAME = "Test-Audience_1234_2024-05-01_00-00-00_721e1d63-a396-4676-bac2-3f6f31e88cc2.txt"
FIREHOSE = json.dumps(
    {
        "AudienceId": 1,
        "AudienceName": "A",
        "IsMember": True,
        "MembershipChangedTimestamp": 1714521600,
        "UserIdentities": {"CustomerId": "c1", "Email": "e@x.com"},
    }
).encode()
DELTA = json.dumps(
    {
        "IsAddRequest": True,
        "IdentityValues": {"customer_id": "c", "mpid": "-5"},
        "MembershipChangedTimestamp": 1714521600000,
    }
).encode()
CSV_HEADER = b"mpid, scanned_timestamp_ms, identity_value, identity_type\n"
CSV_NAME = "8754_PotentialParisians_172136Nov292018.csv"
CSV_ROW = b"-1327484737295091692, 1538596779, h.jekyll, customer_id\n"
#: Valid ISO 8601, but after the last millisecond of year 9999 / before year 1 in UTC.
LATE_ISO, EARLY_ISO = "9999-12-31T23:30:00-01:00", "0001-01-01T00:00:00+01:00"


def partner_line(timestamp: object, identity: dict[str, str] | None = None) -> bytes:
    profile = {
        "mpid": "1",
        "user_identities": [identity or {"type": "email", "value": "a@b.c"}],
        "audiences": [{"audience_id": 1, "action": "add"}],
    }
    message = {
        "type": "audience_membership_change_request",
        "timestamp_ms": timestamp,
        "user_profiles": [profile],
    }
    return json.dumps(message).encode()


class Case:
    """One bad file among good ones: where the error is, why, and what stays intact."""

    def __init__(self, relative: str, lineno: int | None, reason: str, intact: int) -> None:
        self.relative = relative
        self.lineno = lineno
        self.reason = reason
        self.intact = intact

    def location(self, root: Path) -> str:
        """Where the message says the problem is: a newline in a name is shown as `\\n`."""
        path, _, member = self.relative.partition("!/")
        where = str((root / "audiences" / path).resolve()) + (f"!/{member}" if member else "")
        where = where.replace("\n", "\\n")
        return f"{where}:{self.lineno}" if self.lineno is not None else where


def manifest(rows: int) -> bytes:
    return json.dumps({"files": [{"file_name": CSV_NAME, "total_rows": rows}]}).encode()


def write_case(root: Path, kind: str) -> Case:  # noqa: C901, PLR0911  (one branch per kind)
    audiences = root / "audiences"
    audiences.mkdir(parents=True)
    # A good file in every drop: its 4 rows must come through in every case.
    (audiences / "good.json").write_bytes(FIREHOSE + b"\n" + FIREHOSE + b"\n")
    good = 4
    if kind == "manifest_mismatch":
        (audiences / "dl").mkdir()
        (audiences / "dl" / CSV_NAME).write_bytes(CSV_HEADER + CSV_ROW * 3)
        (audiences / "dl" / "manifest.json").write_bytes(manifest(5))
        return Case(f"dl/{CSV_NAME}", None, "manifest.json says 5 rows, the CSV has 3", good + 3)
    if kind == "zip_manifest_mismatch":
        archive = generator.zip_bytes(
            {CSV_NAME: CSV_HEADER + CSV_ROW * 2, "manifest.json": manifest(7)}
        )
        (audiences / "download.zip").write_bytes(archive)
        return Case(
            f"download.zip!/{CSV_NAME}", None, "manifest.json says 7 rows, the CSV has 2", good + 2
        )
    if kind == "csv_wrong_columns":
        (audiences / "dl").mkdir()
        rows = CSV_ROW + b"1, 1538596779, too, many, columns\n" + CSV_ROW
        (audiences / "dl" / CSV_NAME).write_bytes(CSV_HEADER + rows)
        (audiences / "dl" / "manifest.json").write_bytes(manifest(3))
        return Case(f"dl/{CSV_NAME}", 3, "5 columns, expected 4", good + 2)
    if kind == "not_json":
        (audiences / "fh.json").write_bytes(
            b"\n".join([FIREHOSE, FIREHOSE, b'{"Audience', FIREHOSE])
        )
        return Case("fh.json", 3, "not valid JSON", good + 6)
    if kind == "not_utf8":
        bad = b'{"IsAddRequest": true, "IdentityValues": {"email": "\xff\xfe"}}'
        (audiences / DELTA_NAME).write_bytes(b"\n".join([DELTA, DELTA, bad, DELTA]))
        return Case(DELTA_NAME, 3, "bytes that are not UTF-8 at offset 52", good + 3)
    if kind == "lone_surrogate":
        bad = b'{"IsAddRequest": true, "IdentityValues": {"customer_id": "\\udc80b"}}'
        (audiences / DELTA_NAME).write_bytes(b"\n".join([DELTA, DELTA, bad, DELTA]))
        return Case(DELTA_NAME, 3, "a string with a lone surrogate escape", good + 3)
    if kind.startswith("iso_out_of_range_"):
        return write_timestamp_case(audiences, kind, good)
    if kind.startswith("missing_"):
        return write_missing_field_case(audiences, kind, good)
    if kind == "newline_in_name":  # S3 keys may hold one; the message must stay one line
        (audiences / "new\nline.json").write_bytes(b"\n".join([FIREHOSE, b'{"Audience']))
        return Case("new\nline.json", 2, "not valid JSON", good + 2)
    if kind == "not_a_shape":
        (audiences / "fh.json").write_bytes(
            b"\n".join([FIREHOSE, FIREHOSE, b'{"hello": 1}', FIREHOSE])
        )
        return Case("fh.json", 3, "not an audience message of any known shape", good + 6)
    if kind == "truncated_gzip":
        body = b"".join(FIREHOSE + b"\n" for _ in range(4000))
        compressed = gzip.compress(body, mtime=0)
        (audiences / "fh.json.gz").write_bytes(compressed[: len(compressed) // 2])
        return Case("fh.json.gz", None, "truncated or corrupt gzip data", -1)
    raise AssertionError(kind)


def write_timestamp_case(audiences: Path, kind: str, good: int) -> Case:
    """A valid ISO timestamp out of range, in each audience shape that reads one."""
    if kind == "iso_out_of_range_delta":
        delta = {"IsAddRequest": True, "IdentityValues": {"customer_id": "c"}}
        bad = json.dumps({**delta, "MembershipChangedTimestamp": LATE_ISO}).encode()
        (audiences / DELTA_NAME).write_bytes(b"\n".join([DELTA, DELTA, bad, DELTA]))
        return Case(DELTA_NAME, 3, f"timestamp {LATE_ISO!r} is out of range", good + 3)
    if kind == "iso_out_of_range_partner":
        lines = [partner_line(1714592744065), partner_line(EARLY_ISO), partner_line("1714592744")]
        (audiences / "feed.jsonl").write_bytes(b"\n".join(lines))
        return Case("feed.jsonl", 2, f"timestamp {EARLY_ISO!r} is out of range", good + 2)
    if kind == "iso_out_of_range_csv":
        (audiences / "dl").mkdir()
        bad = f"1, {EARLY_ISO}, x, customer_id\n".encode()
        (audiences / "dl" / CSV_NAME).write_bytes(CSV_HEADER + CSV_ROW + bad + CSV_ROW)
        (audiences / "dl" / "manifest.json").write_bytes(manifest(3))
        return Case(f"dl/{CSV_NAME}", 3, f"timestamp {EARLY_ISO!r} is out of range", good + 2)
    raise AssertionError(kind)


def write_missing_field_case(audiences: Path, kind: str, good: int) -> Case:
    """A row lacking what every row needs (a user: an identity or an MPID; a time).

    Each was once emitted as a row of nulls, or its identity dropped without a word.
    """
    if kind == "missing_delta_identities":  # `IdentityValues` misspelled: no user at all
        values = {"IdentityValuez": {"customer_id": "a"}, "MembershipChangedTimestamp": 1}
        bad = json.dumps({"IsAddRequest": True, **values}).encode()
        (audiences / DELTA_NAME).write_bytes(b"\n".join([DELTA, bad, DELTA]))
        return Case(DELTA_NAME, 2, "no identity with a value and no mpid", good + 2)
    if kind == "missing_firehose_time":
        bad = {**json.loads(FIREHOSE), "MembershipChangedTimestamp": None}
        (audiences / "fh.json").write_bytes(b"\n".join([FIREHOSE, json.dumps(bad).encode()]))
        return Case("fh.json", 2, "MembershipChangedTimestamp is missing or empty", good + 2)
    if kind == "missing_partner_time":
        lines = [partner_line(1714592744065), partner_line(None), partner_line("1714592744")]
        (audiences / "feed.jsonl").write_bytes(b"\n".join(lines))
        return Case("feed.jsonl", 2, "timestamp_ms is missing or empty", good + 2)
    if kind == "missing_partner_identity_value":
        bad = partner_line(1714592744065, {"type": "email", "encoding": "md5"})
        (audiences / "feed.jsonl").write_bytes(b"\n".join([bad, partner_line(1714592744065)]))
        return Case("feed.jsonl", 1, "identity 'email' has no value", good + 1)
    rows = {"missing_csv_everything": b",,,\n", "missing_csv_identity_type": b"7, 1538596779, x,\n"}
    (audiences / "dl").mkdir()
    (audiences / "dl" / CSV_NAME).write_bytes(CSV_HEADER + CSV_ROW + rows[kind] + CSV_ROW)
    (audiences / "dl" / "manifest.json").write_bytes(manifest(3))
    reason = {
        "missing_csv_everything": "scanned_timestamp_ms is missing or empty",
        "missing_csv_identity_type": "an identity with no identity_type",
    }[kind]
    return Case(f"dl/{CSV_NAME}", 3, reason, good + 2)


KINDS = (
    "manifest_mismatch",
    "zip_manifest_mismatch",
    "csv_wrong_columns",
    "not_json",
    "not_utf8",
    "lone_surrogate",
    "iso_out_of_range_delta",
    "iso_out_of_range_partner",
    "iso_out_of_range_csv",
    "missing_delta_identities",
    "missing_firehose_time",
    "missing_partner_time",
    "missing_partner_identity_value",
    "missing_csv_everything",
    "missing_csv_identity_type",
    "not_a_shape",
    "newline_in_name",
    "truncated_gzip",
)


def test_fail_exits_non_zero_with_one_last_error_line_naming_the_file(tmp_path):
    # The console script once; the message for every kind is checked in-process below.
    root = tmp_path / "drop"
    case = write_case(root, "truncated_gzip")
    out = run_cli({"bucket_url": str(root)}, tmp_path)
    assert out.returncode == 1
    assert "Traceback" not in out.stderr
    # The SDK adds its own "unhandled error while syncing" line before ours.
    errors = [line for line in error_lines(out.stderr) if case.location(root) in line]
    assert len(errors) == 1, out.stderr
    assert f"{case.location(root)}:" in errors[0]
    assert case.reason in errors[0]
    assert errors[0] == error_lines(out.stderr)[-1]


@pytest.mark.parametrize("kind", KINDS)
def test_fail_names_file_and_line_in_one_line(tmp_path, kind):
    root = tmp_path / "drop"
    case = write_case(root, kind)
    message = tap_error({"bucket_url": str(root)})
    assert message.count(case.location(root)) == 1, message
    assert f"{case.location(root)}: {case.reason}" in message or (
        # A truncated gzip names the first line it could not read.
        case.lineno is None and f"{case.location(root)}:" in message and case.reason in message
    ), message


@pytest.mark.parametrize("kind", KINDS)
def test_skip_warns_counts_and_keeps_every_intact_record(tmp_path, kind, caplog):
    root = tmp_path / "drop"
    case = write_case(root, kind)
    # In-process (the fail test above covers the console script and its exit code).
    with caplog.at_level(logging.WARNING):
        out = run_tap({"bucket_url": str(root), "on_bad_record": "skip"})
    stderr = "\n".join(caplog.messages)
    records = assert_valid(out, "audience_memberships")
    if case.intact >= 0:
        assert len(records) == case.intact
    else:  # truncated gzip: every line before the damage, and the good file
        assert len(records) > 4
    warnings = [line for line in stderr.splitlines() if "skipped bad input:" in line]
    assert len(warnings) == 1, stderr
    assert case.location(root) in warnings[0]
    assert case.reason in warnings[0]
    assert (
        "audience_memberships: skipped 1 bad items (lines, rows, events or files) in 1 files"
        in (stderr)
    )
    # The attributes stream got these files from the same parse: no second warning.
    assert "audience_user_attributes: skipped" not in stderr


def test_skipping_large_corrupt_gzip_files_does_not_stall_the_download_ahead(tmp_path):
    # Each file goes bad in its first bytes but has 16 MiB behind the damage: more
    # than a download-ahead worker may queue, so an abandoned file must be drained.
    audiences = tmp_path / "drop" / "audiences"
    audiences.mkdir(parents=True)
    tail = bytes(range(256)) * (16 << 12)
    for index in range(3):
        damaged = bytearray(gzip.compress(FIREHOSE * 50, mtime=0))
        damaged[30:60] = b"\xff" * 30
        (audiences / f"big-{index}.json.gz").write_bytes(bytes(damaged) + tail)
    (audiences / "zz-good.json").write_bytes(FIREHOSE + b"\n")
    config = {"bucket_url": str(tmp_path / "drop"), "on_bad_record": "skip"}
    config_file = tmp_path / "config.json"
    config_file.write_text(json.dumps({**config, "download_concurrency": 2}))
    done = subprocess.run(
        [sys.executable, "-m", "tap_mparticle", "--config", str(config_file)],
        capture_output=True,
        check=False,
        timeout=60,  # a stalled run fails here instead of hanging the suite
    )
    assert done.returncode == 0, done.stderr.decode()
    stderr = done.stderr.decode()
    assert (
        "audience_memberships: skipped 3 bad items (lines, rows, events or files) in 3 files"
        in (stderr)
    )
    assert done.stdout.count(b'"stream":"audience_memberships"') >= 2  # SCHEMA + the good rows
