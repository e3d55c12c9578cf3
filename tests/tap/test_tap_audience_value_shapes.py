"""Audience values of the wrong shape are bad input, never null and never Python's repr.

A `list_value` that is no array once became `list_value: null` on an upsert, which
target-mparticle applies as a delete of the attribute; objects became `{'a': 1}` text.
"""

from __future__ import annotations

import io
import json
import logging

import pytest

from mparticle_facts.identities import IdentityNormalizer
from tap_mparticle.audience_download import read_manifest
from tap_mparticle.audience_records import AudienceFile
from tap_mparticle.audiences import parse_audience_file
from tap_mparticle.parsers import BadInputError
from tests.support.tap import assert_valid, run_tap, tap_error

DELTA_NAME = "Test-Audience_1234_2024-05-01_00-00-00_721e1d63-a396-4676-bac2-3f6f31e88cc2.txt"
ATTRIBUTES = "audience_user_attributes"
MEMBERSHIPS = "audience_memberships"


def partner(change: object = None, *, identity: object = None, name: object = "Ex") -> bytes:
    """A partner feed line: one attribute change, or one identity added to an audience."""
    audience: dict[str, object] = {"audience_id": 456, "audience_name": name, "action": "add"}
    if change is not None:
        audience.update(action="attribute_update", user_attributes=[change])
    profile = {
        "mpid": "12345",
        "user_identities": [identity] if identity is not None else [],
        "audiences": [audience],
    }
    message = {
        "type": "audience_membership_change_request",
        "timestamp_ms": 1714592744065,
        "user_profiles": [profile],
    }
    return json.dumps(message).encode()


def firehose(identities: object, name: object = "Low") -> bytes:
    message = {
        "AudienceId": 1,
        "AudienceName": name,
        "IsMember": True,
        "MembershipChangedTimestamp": 1714521600,
        "UserIdentities": identities,
    }
    return json.dumps(message).encode()


def delta(identities: object) -> bytes:
    message = {
        "IsAddRequest": True,
        "IdentityValues": identities,
        "MembershipChangedTimestamp": 1714521600000,
    }
    return json.dumps(message).encode()


def parse(data: bytes, name: str = "feed.jsonl") -> list[object]:
    file = AudienceFile(
        location=f"/drop/audiences/{name}",
        name=name,
        normalize=IdentityNormalizer(lambda _name, _kept: None),
    )
    return list(parse_audience_file(io.BytesIO(data), file, lambda: None))


BAD = [
    # (line, file name, what the message must say)
    (
        partner({"key": "k", "list_value": "abc", "action": "upsert"}),
        "feed.jsonl",
        "user attribute 'k' list_value is a JSON string, not an array",
    ),
    (
        partner({"key": "k", "list_value": {"a": 1}, "action": "upsert"}),
        "feed.jsonl",
        "user attribute 'k' list_value is a JSON object, not an array",
    ),
    (
        partner({"key": "k", "list_value": ["a", None], "action": "upsert"}),
        "feed.jsonl",
        "user attribute 'k' list_value[1] is null, not text",
    ),
    (
        partner({"key": "k", "list_value": ["a", {"a": 1}], "action": "upsert"}),
        "feed.jsonl",
        "user attribute 'k' list_value[1] is a JSON object, not text",
    ),
    (
        partner({"key": "k", "value": {"a": 1}, "action": "upsert"}),
        "feed.jsonl",
        "user attribute 'k' value is a JSON object, not text",
    ),
    (
        partner({"key": "k", "value": [1, 2], "action": "upsert"}),
        "feed.jsonl",
        "user attribute 'k' value is a JSON array, not text",
    ),
    (
        partner({"key": {"a": 1}, "value": "v", "action": "upsert"}),
        "feed.jsonl",
        "a user attribute key is a JSON object, not text",
    ),
    (
        partner(identity={"type": "email", "value": {"a": 1}}),
        "feed.jsonl",
        "identity 'email' is a JSON object, not text",
    ),
    (
        partner(identity={"type": ["email"], "value": "a@b.c"}),
        "feed.jsonl",
        "the type of an entry of user_identities is a JSON array, not text",
    ),
    (
        partner(identity={"type": "email", "value": "a"}, name={"a": 1}),
        "feed.jsonl",
        "audience_name is a JSON object",
    ),
    (
        firehose({"CustomerId": {"a": 1}}),
        "fh.json",
        "identity 'CustomerId' is a JSON object, not text",
    ),
    (firehose({"CustomerId": ["a"]}), "fh.json", "identity 'CustomerId' is a JSON array, not text"),
    (
        firehose({"CustomerId": "c"}, name=["x"]),
        "fh.json",
        "AudienceName is a JSON array, not text",
    ),
    (
        delta({"customer_id": {"a": 1}}),
        DELTA_NAME,
        "identity 'customer_id' is a JSON object, not text",
    ),
]


@pytest.mark.parametrize(("line", "name", "reason"), BAD)
def test_wrong_shape_is_bad_input_for_its_line(line, name, reason):
    good = partner({"key": "g", "value": "v", "action": "upsert"})
    items = parse(line + b"\n" + good + b"\n", name)
    (error,) = [item for item in items if isinstance(item, BadInputError)]
    assert error.lineno == 1
    assert reason in error.reason
    # Nothing of the bad line came through (a partial line would be a silent change).
    kept = [item for item in items if not isinstance(item, BadInputError)]
    assert all(record["_sdc_source_lineno"] == 2 for _kind, record in kept)
    assert len(kept) == 1


def test_numbers_and_booleans_are_their_text_and_null_values_stay_null():
    # Numeric ids and flags are what sources write; they are text in mParticle's terms.
    lines = [
        partner({"key": "n", "value": 5, "action": "upsert"}),
        partner({"key": "l", "list_value": [1, True, "x", 1.5], "action": "upsert"}),
        partner({"key": "d", "list_value": "ignored on a delete", "action": "delete"}),
        firehose({"CustomerId": 1234}),
        partner(identity={"type": "customer", "value": 99}),
    ]
    items = parse(b"\n".join(lines))
    assert not [item for item in items if isinstance(item, BadInputError)]
    attributes = [r for kind, r in items if kind == ATTRIBUTES]
    assert [(r["key"], r["value"], r["list_value"], r["action"]) for r in attributes] == [
        ("n", "5", None, "upsert"),
        ("l", None, ["1", "true", "x", "1.5"], "upsert"),
        ("d", None, None, "delete"),
    ]
    members = [r for kind, r in items if kind == MEMBERSHIPS]
    assert [r["identity_value"] for r in members] == ["1234", "99"]


def test_manifest_variant_that_is_not_text_is_refused():
    manifest = {"files": [{"file_name": "1_A_x.csv", "total_rows": 1, "variant_name": {"a": 1}}]}
    with pytest.raises(BadInputError, match=r"names the variant of '1_A_x\.csv' not as text"):
        read_manifest(json.dumps(manifest).encode(), "/drop/audiences/manifest.json")


def write_drop(tmp_path):
    audiences = tmp_path / "audiences"
    audiences.mkdir()
    lines = [
        partner({"key": "g", "value": "v", "action": "upsert"}),
        partner({"key": "k", "list_value": "abc", "action": "upsert"}),
        partner({"key": "h", "list_value": ["a"], "action": "upsert"}),
    ]
    (audiences / "p.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    return str((audiences / "p.jsonl").resolve())


def test_fail_stops_on_the_line_naming_the_field(tmp_path):
    location = write_drop(tmp_path)
    message = tap_error({"bucket_url": str(tmp_path), "on_bad_record": "fail"})
    assert f"{location}:2: user attribute 'k' list_value is a JSON string, not an array" in message


def test_skip_warns_counts_and_keeps_the_other_lines(tmp_path, caplog):
    location = write_drop(tmp_path)
    with caplog.at_level(logging.WARNING):
        out = run_tap({"bucket_url": str(tmp_path), "on_bad_record": "skip"})
    rows = assert_valid(out, ATTRIBUTES)
    assert [(r["key"], r["value"], r["list_value"]) for r in rows] == [
        ("g", "v", None),
        ("h", None, ["a"]),
    ]
    log = "\n".join(caplog.messages)
    assert f"{location}:2: user attribute 'k' list_value" in log
    assert "skipped 1 bad items" in log


def legacy(attributes: object) -> bytes:
    """A pre-2.0 partner message: plain `user_attributes` map, `added_audiences`."""
    profile = {
        "mpid": "77",
        "user_identities": [{"type": "customer", "encoding": "raw", "value": "c-77"}],
        "user_attributes": attributes,
        "added_audiences": [{"audience_id": 11, "audience_name": "Big spenders"}],
    }
    message = {
        "type": "audience_membership_change_request",
        "timestamp_ms": 1714592744065,
        "user_profiles": [profile],
    }
    return json.dumps(message).encode()


@pytest.mark.parametrize(
    ("attributes", "reason"),
    [
        ("tier=gold", "the profile's user_attributes is a JSON string, not an object"),
        ([["tier", "gold"]], "the profile's user_attributes is a JSON array, not an object"),
        ({"tier": {"a": 1}}, "user attribute 'tier' value is a JSON object, not text"),
        ({"tags": ["a", None]}, "user attribute 'tags' list_value[1] is null, not text"),
    ],
)
def test_pre_2_user_attributes_of_the_wrong_shape_are_bad_input(attributes, reason):
    items = parse(legacy(attributes) + b"\n" + legacy({"tier": "gold"}) + b"\n")
    (error,) = [item for item in items if isinstance(item, BadInputError)]
    assert (error.lineno, reason in error.reason) == (1, True), error.reason
    kept = [record for _kind, record in (i for i in items if not isinstance(i, BadInputError))]
    assert {record["_sdc_source_lineno"] for record in kept} == {2}
