"""Every exception a parser can raise on data is one named, counted bad-input item.

With `on_bad_record: skip` every intact event on both sides of a bad one is kept;
with `fail` the run stops with one ERROR line naming the file and line.
"""

from __future__ import annotations

import gzip
import io
import json
import logging
import os
from typing import TYPE_CHECKING

import pytest

from tap_mparticle import audience_download, jsondocs
from tap_mparticle.audience_records import AudienceFile
from tests.support.cases import (
    CSV_HEADER,
    OUT_OF_RANGE_TS,
    batch_line,
    csv_row,
    deep_batch_line,
    event,
    gzip_with_flipped_byte,
    huge_int_batch_line,
    nested,
    patch_member,
    with_central_directory_offset,
    zip_of,
)
from tests.support.tap import run_cli, run_tap

if TYPE_CHECKING:
    from pathlib import Path


def skipped(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "skipped bad input" in r.getMessage()]


def read(root: Path, caplog: pytest.LogCaptureFixture, stream: str = "events") -> list[dict]:
    caplog.set_level(logging.WARNING)
    return run_tap({"bucket_url": str(root), "on_bad_record": "skip"}).records(stream)


def names(records: list[dict]) -> list[str]:
    return [r["event_name"] for r in records]


def test_every_data_exception_in_an_events_file_costs_only_its_own_line_or_event(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    lines = [batch_line(event("first"))]
    # the bad event's siblings in the same batch are kept too
    lines += [
        batch_line(event(f"before-{ts}"), event("bad", ts), event(f"after-{ts}"))
        for ts in OUT_OF_RANGE_TS
    ]
    lines += [deep_batch_line(1200), batch_line(event("mid")), huge_int_batch_line(5000)]
    lines.append(batch_line(event("last")))
    (tmp_path / "a.txt").write_bytes(b"\xef\xbb\xbf" + b"".join(lines))  # BOM on line 1 too
    records = read(tmp_path, caplog)
    expected = ["first"]
    for ts in OUT_OF_RANGE_TS:
        expected += [f"before-{ts}", f"after-{ts}"]
    assert names(records) == [*expected, "mid", "last"]
    messages = skipped(caplog)
    assert len(messages) == 5
    assert all("a.txt:" in m for m in messages)
    assert any("outside the years 1 to 9999" in m for m in messages)
    assert any("nested deeper" in m for m in messages)
    assert any("an integer of more than 4300 digits, the limit" in m for m in messages)


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        (
            batch_line(event("bad", 1e20)),
            "event 0 timestamp_unixtime_ms 1e+20 is outside the years",
        ),
        (
            batch_line(event("bad", -1e300)),
            "event 0 timestamp_unixtime_ms -1e+300 is outside the years",
        ),
        (
            batch_line(event("bad", 1714521600000.7)),
            "event 0 timestamp_unixtime_ms 1714521600000.7 is not an integer",
        ),
        (batch_line(event("bad", "NaN")), "event 0 timestamp_unixtime_ms 'NaN' is not an integer"),
    ],
)
def test_an_event_timestamp_that_is_no_integer_costs_its_event_not_a_silent_null(
    tmp_path: Path, caplog, bad: bytes, reason: str
):
    (tmp_path / "a.txt").write_bytes(batch_line(event("before")) + bad + batch_line(event("after")))
    records = read(tmp_path, caplog)
    assert names(records) == ["before", "after"]
    assert all(r["timestamp"] == "2024-05-01T00:00:00.000+00:00" for r in records)
    (message,) = skipped(caplog)
    assert f"a.txt:2: {reason}" in message


@pytest.mark.parametrize(
    ("mpid", "reason"),
    [
        ("abc", "batch field mpid is 'abc', not an integer"),
        (1.5, "batch field mpid is 1.5, not an integer"),
    ],
)
def test_an_mpid_that_is_no_integer_is_bad_input_for_both_streams(
    tmp_path: Path, caplog, mpid: object, reason: str
):
    bad = json.dumps({"mpid": mpid, "events": [event("bad")]}).encode() + b"\n"
    (tmp_path / "a.txt").write_bytes(batch_line(event("before")) + bad + batch_line(event("after")))
    caplog.set_level(logging.WARNING)
    config = {"bucket_url": str(tmp_path), "on_bad_record": "skip"}
    out = run_tap(config, streams={"events", "batches"})
    assert names(out.records("events")) == ["before", "after"]
    assert [r["_sdc_source_lineno"] for r in out.records("batches")] == [1, 3]
    messages = skipped(caplog)
    assert len(messages) == 2  # once per stream, as the same line is bad for both
    assert all(f"a.txt:2: {reason}" in m for m in messages)


def test_an_integer_beyond_64_bits_is_read_not_rejected(tmp_path: Path, caplog):
    (tmp_path / "a.txt").write_bytes(huge_int_batch_line(30))
    assert [r["mpid"] for r in read(tmp_path, caplog)] == [int("9" * 30)]
    assert not skipped(caplog)


@pytest.mark.parametrize(("offset", "what"), [(8, "CRC32"), (2, "size")])
def test_a_bad_gzip_trailer_keeps_every_event_and_counts_once(
    tmp_path: Path, caplog, offset: int, what: str
):
    data = b"".join(batch_line(event(f"e{i}")) for i in range(250))
    (tmp_path / "a.txt.gz").write_bytes(gzip_with_flipped_byte(data, offset))
    records = read(tmp_path, caplog)
    assert names(records) == [f"e{i}" for i in range(250)]
    (message,) = skipped(caplog)
    assert what in message
    assert "a.txt.gz" in message


def test_gzip_members_back_to_back_and_a_gzip_bom_line(tmp_path: Path, caplog):
    first = gzip.compress(b"\xef\xbb\xbf" + batch_line(event("one")), mtime=0)
    (tmp_path / "a.txt").write_bytes(first + gzip.compress(batch_line(event("two")), mtime=0))
    assert names(read(tmp_path, caplog)) == ["one", "two"]
    assert not skipped(caplog)


def test_an_overlong_document_is_skipped_without_being_held(tmp_path: Path, caplog, monkeypatch):
    # Event files are read document by document (Firehose writes whole files as one
    # line), so the bound is per document: one over it costs only itself.
    monkeypatch.setattr(jsondocs, "MAX_LINE", 1_000)
    monkeypatch.setattr(jsondocs, "MAX_DOCUMENT", 2_000)
    long_line = batch_line(*(event("x" * 50) for _ in range(100)))
    assert len(long_line) > 5_000
    back_to_back = b"".join(batch_line(event(f"c{i}")).strip() for i in range(40)) + b"\n"
    assert len(back_to_back) > 2_000
    (tmp_path / "a.txt").write_bytes(
        batch_line(event("a")) + long_line + back_to_back + batch_line(event("b"))
    )
    assert names(read(tmp_path, caplog)) == ["a", *(f"c{i}" for i in range(40)), "b"]
    (message,) = skipped(caplog)
    assert "a.txt:2:" in message
    assert "longer than 2000 characters" in message


def audience_drop(tmp_path: Path, name: str, data: bytes) -> Path:
    folder = tmp_path / "audiences"
    folder.mkdir(exist_ok=True)
    (folder / name).write_bytes(data)
    return tmp_path


def memberships(root: Path, caplog) -> list[dict]:
    return read(root, caplog, "audience_memberships")


def test_zip_members_with_unsupported_method_or_encryption_cost_only_themselves(
    tmp_path: Path, caplog
):
    members = {
        f"{n}_Aud{n}_172136Nov292018.csv": (CSV_HEADER + csv_row(n, f"user{n}")).encode()
        for n in (1, 2, 3)
    }
    archive = zip_of(members)
    archive = patch_member(archive, "1_Aud1_172136Nov292018.csv", method=99)
    archive = patch_member(archive, "2_Aud2_172136Nov292018.csv", flags=1)
    rows = memberships(audience_drop(tmp_path, "download.zip", archive), caplog)
    assert [r["identity_value"] for r in rows] == ["user3"]
    messages = skipped(caplog)
    assert len(messages) == 2
    assert any("1_Aud1" in m and "compression method" in m for m in messages)
    assert any("2_Aud2" in m and "encrypted" in m for m in messages)


def test_a_zip_whose_offsets_point_outside_it_is_bad_input_not_a_storage_error(
    tmp_path: Path, caplog
):
    # The seek before the archive's start fails with OSError (EINVAL), which once
    # read as a storage failure: not skippable, and blamed on the bucket.
    members = {
        f"{n}_Aud{n}_172136Nov292018.csv": (CSV_HEADER + csv_row(n, "x")).encode() for n in (1, 2)
    }
    archive = with_central_directory_offset(zip_of(members), 0xC8000000)
    root = audience_drop(tmp_path, "download.zip", archive)
    good = {"5_Aud_172136Nov292018.csv": (CSV_HEADER + csv_row(5, "kept")).encode()}
    (root / "audiences" / "other.zip").write_bytes(zip_of(good))
    assert [r["identity_value"] for r in memberships(root, caplog)] == ["kept"]
    messages = skipped(caplog)
    assert len(messages) == 2
    for n in (1, 2):
        assert any(
            f"download.zip!/{n}_Aud{n}_172136Nov292018.csv: unreadable archive member "
            "(an offset in the archive points outside it" in m
            for m in messages
        ), messages


def test_a_storage_read_that_fails_while_a_zip_is_spooled_stays_a_storage_error():
    # Only zipfile's reads of the local spool count as the archive's fault.
    class Dropped(io.RawIOBase):
        def readable(self) -> bool:
            return True

        def readinto(self, buffer) -> int:  # noqa: ARG002  (io's signature)
            raise ConnectionResetError(104, "Connection reset by peer")

    file = AudienceFile(
        location="s3://b/audiences/download.zip", name="download.zip", normalize=str
    )
    with pytest.raises(ConnectionResetError):
        list(audience_download.parse_download_zip(io.BufferedReader(Dropped()), file))


def test_a_zip_with_no_csv_and_no_manifest_is_bad_input(tmp_path: Path, caplog):
    root = audience_drop(tmp_path, "download.zip", zip_of({"readme.txt": b"hello"}))
    assert memberships(root, caplog) == []
    (message,) = skipped(caplog)
    assert "no CSV and no manifest.json" in message


def test_a_csv_field_over_the_csv_limit_costs_only_its_row(tmp_path: Path, caplog):
    rows = CSV_HEADER + csv_row(1, "a") + csv_row(2, '"' + "x" * 140_000 + '"') + csv_row(3, "c")
    members = {"5_Aud_172136Nov292018.csv": rows.encode()}
    root = audience_drop(tmp_path, "download.zip", zip_of(members))
    assert [r["identity_value"] for r in memberships(root, caplog)] == ["a", "c"]
    (message,) = skipped(caplog)
    assert "5_Aud_172136Nov292018.csv:3:" in message
    assert "field larger than field limit" in message


def test_a_manifest_over_its_limit_is_one_bad_item(tmp_path: Path, caplog, monkeypatch):
    monkeypatch.setattr(audience_download, "MAX_MANIFEST_BYTES", 100)
    csv_name = "5_Aud_172136Nov292018.csv"
    manifest = json.dumps({"files": [{"file_name": csv_name, "total_rows": 1, "pad": "x" * 200}]})
    members = {
        "manifest.json": manifest.encode(),
        csv_name: (CSV_HEADER + csv_row(1, "a")).encode(),
    }
    root = audience_drop(tmp_path, "download.zip", zip_of(members))
    assert [r["identity_value"] for r in memberships(root, caplog)] == ["a"]
    (message,) = skipped(caplog)
    assert "manifest.json" in message
    assert "limit" in message


def firehose(index: int) -> dict:
    return {
        "AudienceId": 9,
        "IsMember": True,
        "MembershipChangedTimestamp": 1714521600,
        "UserIdentities": {"customer_id": f"c{index}"},
    }


@pytest.mark.parametrize("max_line", [jsondocs.MAX_LINE, 64])
def test_a_bad_document_in_a_back_to_back_line_costs_only_itself(
    tmp_path: Path, caplog, monkeypatch, max_line: int
):
    # 64 bytes sends the same line down the long-line (streamed) path.
    monkeypatch.setattr(jsondocs, "MAX_LINE", max_line)
    documents = [json.dumps(firehose(i)).encode() for i in range(6)]
    documents[2] = b'{"AudienceId": 9, "IsMember": oops}'
    documents[4] = b'{"AudienceId":' + b"[" * 1500 + b"]" * 1500 + b"}"
    line = b"\xef\xbb\xbf" + b"".join(documents) + b"\n"
    root = audience_drop(tmp_path, "delivery-1", line + json.dumps(firehose(9)).encode() + b"\n")
    values = [r["identity_value"] for r in memberships(root, caplog)]
    assert values == ["c0", "c1", "c3", "c5", "c9"]
    assert len(skipped(caplog)) == 2


@pytest.mark.parametrize(
    ("between", "max_line"),
    [(b"\n", jsondocs.MAX_LINE), (b"", jsondocs.MAX_LINE), (b"", 64)],
    ids=["a-line-each", "back-to-back", "long-line"],
)
def test_json_nesting_past_the_limit_is_refused_on_every_python(
    tmp_path: Path, caplog, monkeypatch, between: bytes, max_line: int
):
    # The decoders take ~10,000 levels on Python 3.12+ and ~1,000 before; the tap's limit
    # is MAX_JSON_DEPTH on all. Brackets inside strings, or side by side, are no depth.
    monkeypatch.setattr(jsondocs, "MAX_LINE", max_line)
    wide = {**firehose(1), "note": "[" * 1500 + "{" * 600, "tags": [[0]] * 1500}
    lines = [json.dumps(firehose(0)).encode(), json.dumps(wide).encode()]
    lines.append(json.dumps({**firehose(2), "x": 0}).encode().replace(b"0}", nested(900) + b"}"))
    lines.append(b'{"AudienceId":9,"x":' + nested(1200) + b"}")
    lines.append(json.dumps(firehose(4)).encode())
    root = audience_drop(tmp_path, "delivery-1", between.join(lines) + b"\n")
    values = [r["identity_value"] for r in memberships(root, caplog)]
    assert values == ["c0", "c1", "c2", "c4"]
    (message,) = skipped(caplog)
    assert "JSON nested deeper than about 1000 levels, the limit" in message


@pytest.mark.parametrize("max_line", [jsondocs.MAX_LINE, 64])
def test_garbage_between_back_to_back_documents_is_one_bad_item_and_the_next_is_read(
    tmp_path: Path, caplog, monkeypatch, max_line: int
):
    # Reading used to resume only at `}{`, so the document after `xx` was lost.
    monkeypatch.setattr(jsondocs, "MAX_LINE", max_line)
    documents = [json.dumps(firehose(i)).encode() for i in range(4)]
    line = documents[0] + b"xx" + documents[1] + b", " + documents[2] + b"]]" + documents[3]
    root = audience_drop(tmp_path, "delivery-1", b"zz" + line + b"\n")
    values = [r["identity_value"] for r in memberships(root, caplog)]
    assert values == ["c0", "c1", "c2", "c3"]
    messages = skipped(caplog)
    assert len(messages) == 4  # the leading `zz`, and the garbage between each pair
    assert all("delivery-1:1: not valid JSON (Expecting value" in m for m in messages)


@pytest.mark.parametrize("max_line", [jsondocs.MAX_LINE, 64])
def test_a_lone_surrogate_escape_costs_its_document_and_a_pair_is_kept(
    tmp_path: Path, caplog, monkeypatch, max_line: int
):
    # msgspec refuses the whole line, so the standard-library decoder reads it,
    # document by document; 64 bytes sends it down the long-line path instead.
    monkeypatch.setattr(jsondocs, "MAX_LINE", max_line)
    documents = [json.dumps(firehose(i)).encode() for i in range(4)]
    documents[1] = documents[1].replace(b'"c1"', b'"\\ud800"')  # lone, in a value
    documents[2] = documents[2].replace(b'"customer_id"', b'"\\udc80b"')  # lone, in a key
    documents[3] = documents[3].replace(b'"c3"', b'"\\ud83d\\ude00"')  # a pair: U+1F600
    root = audience_drop(tmp_path, "delivery-1", b"".join(documents) + b"\n")
    values = [r["identity_value"] for r in memberships(root, caplog)]
    assert values == ["c0", "\U0001f600"]
    messages = skipped(caplog)
    assert len(messages) == 2
    assert all("delivery-1:1: a string with a lone surrogate escape" in m for m in messages)


def partner(profile_changes: dict, audience_changes: dict | None = None) -> bytes:
    """One partner-feed line: a profile with an email, in audience 1 (as changed)."""
    audience = {"audience_id": 1, "action": "add", **(audience_changes or {})}
    profile = {
        "mpid": "1",
        "user_identities": [{"type": "email", "value": "a@b.c"}],
        "audiences": [audience],
        **profile_changes,
    }
    message = {
        "type": "audience_membership_change_request",
        "timestamp_ms": 1714592744065,
        "user_profiles": [profile],
    }
    return json.dumps(message).encode() + b"\n"


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        (partner({"user_identities": 5}), "user_identities is 5, not an array"),
        (partner({"device_identities": "ab"}), "device_identities is 'ab', not an array"),
        (partner({}, {"action": ["add"]}), "audience action ['add'] is not add"),
        (partner({}, {"action": {"add": 1}}), "audience action {'add': 1} is not add"),
        (
            partner({}, {"action": "attribute_update", "user_attributes": 7}),
            "user_attributes is 7, not an array",
        ),
        (
            partner(
                {},
                {"action": "attribute_update", "user_attributes": [{"key": "k", "action": {}}]},
            ),
            "user attribute change {'key': 'k', 'action': {}} needs a key",
        ),
    ],
)
def test_a_wrongly_typed_partner_feed_value_costs_only_its_line(
    tmp_path: Path, caplog, bad: bytes, reason: str
):
    root = audience_drop(tmp_path, "feed.jsonl", partner({}) + bad + partner({}))
    rows = memberships(root, caplog)
    assert [(r["_sdc_source_lineno"], r["identity_value"]) for r in rows] == [
        (1, "a@b.c"),
        (3, "a@b.c"),
    ]
    (message,) = skipped(caplog)
    assert f"feed.jsonl:2: {reason}" in message


def test_fail_mode_stops_with_one_error_line_naming_file_and_line(tmp_path: Path):
    drop = tmp_path / "drop"
    drop.mkdir()
    (drop / "0-good.txt").write_bytes(batch_line(event("good")))
    os.utime(drop / "0-good.txt", (1_714_521_600, 1_714_521_600))
    lines = batch_line(event("ok")) + batch_line(event("bad", OUT_OF_RANGE_TS[0]))
    (drop / "a.txt").write_bytes(lines)
    run = run_cli({"bucket_url": str(drop)}, tmp_path)
    assert run.returncode == 1
    errors = [line for line in run.stderr.splitlines() if "ERROR" in line]
    assert len(errors) == 1, run.stderr
    assert "a.txt:2: event 0 timestamp_unixtime_ms" in errors[0]
    assert "Traceback" not in run.stderr
    # STATE is spaced out, but the file wholly read before the failure is covered.
    assert list(run.final_state["bookmarks"]["events"]["files_read"]) == ["0-good.txt"]
