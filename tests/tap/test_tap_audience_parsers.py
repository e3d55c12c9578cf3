"""Audience shapes, identity names and value coercion, on plain bytes (no S3, no SDK)."""

from __future__ import annotations

import base64
import gzip
import io
import json

import pytest

from mparticle_facts.identities import (
    ALIASES,
    IDENTITY_TYPES,
    IdentityNormalizer,
    canonical_identity_type,
    read_identity_types,
    snake_case,
)
from tap_mparticle.audience_download import read_manifest
from tap_mparticle.audience_records import AudienceFile, NotAudienceError, to_timestamp
from tap_mparticle.audiences import delta_audience, parse_audience_file
from tap_mparticle.jsondocs import MAX_LINE
from tap_mparticle.parsers import BadInputError
from tests.support.files import REPO_ROOT
from tests.support.tap import generator

DELTA_NAME = "Test-Audience_1234_2020-01-01_00-00-00_721e1d63-a396-4676-bac2-3f6f31e88cc2.txt"
# mParticle/mparticle-firehose-java-sdk examples/json, vendored (see the README there).
FIREHOSE_SDK_EXAMPLES = REPO_ROOT / "tests" / "fixtures" / "real" / "firehose-java-sdk"
FIREHOSE_DOC = {
    "MembershipChangedTimestamp": "1234565788",
    "AudienceId": 123123,
    "AudienceName": "LowEngagement",
    "IsMember": True,
    "UserIdentities": {
        "CustomerId": "p.fogg138",
        "Email": "phileas@travelers.com",
        "Other": "balloondude83",
        "Other3": "balloongal89",
        "FacebookId": "phileas83",
        "GoogleAdvertisingIdentifier": "phileas83",
    },
}
PARTNER_DOC = {
    "type": "audience_membership_change_request",
    "id": "1317071d-3342-4e1e-a691-84bd7e762bda",
    "timestamp_ms": 1714592744065,
    "firehose_version": "3.2.0",
    "account": {"account_id": 123456},
    "user_profiles": [
        {
            "user_identities": [
                {"type": "email", "encoding": "md5", "value": "e179e95c00e7718ab4a23840f992ea63"},
                {"type": "customer", "encoding": "raw", "value": "c-1"},
                {"type": "other2", "encoding": "sha256", "value": "abc"},
            ],
            "device_identities": [
                {"type": "google_advertising_id", "encoding": "raw", "value": "g-1"},
            ],
            "audiences": [
                {"audience_id": 456, "audience_name": "A", "action": "add"},
                {
                    "audience_id": "789",
                    "audience_name": "B",
                    "action": "attribute_update",
                    "user_attributes": [
                        {"key": "Some Key", "value": "9999999", "action": "upsert"},
                        {"key": "Churned", "action": "delete"},
                        {},
                    ],
                },
                {"audience_id": 654, "audience_name": "C", "action": "delete"},
            ],
            "mpid": "-12345",
        }
    ],
}


def audience_file(name: str = "file.txt", identity_types=None, warnings=None) -> AudienceFile:
    sink = warnings if warnings is not None else []
    return AudienceFile(
        location=f"s3://bucket/audiences/{name}",
        name=name,
        normalize=IdentityNormalizer(lambda name, kept: sink.append((name, kept))),
        identity_types=identity_types,
    )


def parse(data: bytes, name: str = "file.txt", manifest=None, **kwargs):
    file = audience_file(name, **kwargs)
    return list(parse_audience_file(io.BytesIO(data), file, lambda: manifest))


def records(items, kind="audience_memberships"):
    return [
        record
        for item in items
        if not isinstance(item, BadInputError)
        for k, record in [item]
        if k == kind
    ]


def errors(items):
    return [item for item in items if isinstance(item, BadInputError)]


# --- identity names ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spelling", "expected"),
    [
        ("CustomerId", "customer_id"),
        ("Other3", "other_id_3"),
        ("Other10", "other_id_10"),
        ("Other", "other"),
        ("GoogleAdvertisingIdentifier", "android_advertising_id"),
        ("google_advertising_id", "android_advertising_id"),
        ("customer", "customer_id"),
        ("other2", "other_id_2"),
        ("ios_vendor_id", "ios_idfv"),
        ("android_id", "android_uuid"),
        ("apple_push_notification_token", "push_token"),
        ("FacebookId", "facebook"),
        ("Email", "email"),
        ("customer_id", "customer_id"),
        ("Customer ID", "customer_id"),
        ("facebookcustomaudienceid", "facebook_custom_audience_id"),
        ("ios_idfa", "ios_advertising_id"),
    ],
)
def test_identity_spellings_map_to_events_api_names(spelling, expected):
    assert canonical_identity_type(spelling) == expected


def test_every_events_api_name_and_alias_maps_to_itself_or_its_type():
    for name in IDENTITY_TYPES:
        assert canonical_identity_type(name) == name
    for name, aliases in ALIASES.items():
        for alias in aliases:
            assert canonical_identity_type(alias) == name


def test_unknown_identity_names_are_snake_cased_with_one_warning_each():
    warned = []
    normalize = IdentityNormalizer(lambda name, kept: warned.append((name, kept)))
    assert normalize("PartnerName_IdentityName") == "partner_name_identity_name"
    assert normalize("PartnerName_IdentityName") == "partner_name_identity_name"
    assert normalize("Some Id") == "some_id"
    assert normalize("CustomerId") == "customer_id"
    assert warned == [
        ("PartnerName_IdentityName", "partner_name_identity_name"),
        ("Some Id", "some_id"),
    ]
    assert snake_case("$$$") == "unknown"


def test_identity_types_setting_is_normalised_and_checked():
    assert read_identity_types(None) == (None, [])
    assert read_identity_types(["CustomerId", "email", "Other3"]) == (
        frozenset({"customer_id", "email", "other_id_3"}),
        [],
    )
    _, problems = read_identity_types(["email", "emial"])
    assert problems
    assert "emial" in problems[0]
    assert read_identity_types([])[1]
    assert read_identity_types("email")[1]
    assert read_identity_types([1])[1]


# --- timestamps ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1594167374230, "2020-07-08T00:16:14.230+00:00"),
        ("1594167374230", "2020-07-08T00:16:14.230+00:00"),
        (1594167374, "2020-07-08T00:16:14.000+00:00"),
        ("1594167374", "2020-07-08T00:16:14.000+00:00"),
        (1594167374.5, "2020-07-08T00:16:14.500+00:00"),
        ("1234565788", "2009-02-13T22:56:28.000+00:00"),
        (99_999_999_999, "5138-11-16T09:46:39.000+00:00"),
        (100_000_000_000, "1973-03-03T09:46:40.000+00:00"),
        ("2024-05-01T00:00:00Z", "2024-05-01T00:00:00.000+00:00"),
        (None, None),
        ("", None),
    ],
)
def test_timestamps_in_seconds_or_milliseconds(value, expected):
    assert to_timestamp(value) == expected


@pytest.mark.parametrize("value", ["soon", True, float("nan"), 10**30, [1]])
def test_bad_timestamps_are_refused(value):
    with pytest.raises(NotAudienceError):
        to_timestamp(value)


# --- Firehose ------------------------------------------------------------------------------


def test_firehose_record_one_row_per_identity_with_normalised_types():
    items = parse(json.dumps(FIREHOSE_DOC).encode() + b"\n")
    rows = records(items)
    assert [r["identity_type"] for r in rows] == [
        "customer_id",
        "email",
        "other",
        "other_id_3",
        "facebook",
        "android_advertising_id",
    ]
    assert {r["audience_id"] for r in rows} == {123123}
    assert {r["action"] for r in rows} == {"add"}
    assert {r["timestamp"] for r in rows} == {"2009-02-13T22:56:28.000+00:00"}
    assert {r["source_format"] for r in rows} == {"firehose"}
    assert [r["_sdc_record_index"] for r in rows] == list(range(6))


def test_firehose_wrapper_with_object_or_base64_data_and_concatenation():
    removed = {**FIREHOSE_DOC, "IsMember": False, "AudienceId": "7"}
    plain = json.dumps({"DeliveryStreamName": "s", "Record": {"Data": FIREHOSE_DOC}})
    encoded = base64.b64encode(json.dumps(removed).encode()).decode()
    b64 = json.dumps({"DeliveryStreamName": "s", "Record": {"Data": encoded}})
    # Two documents with no separator on line 1, one on line 2.
    items = parse((plain + b64 + "\n" + json.dumps(FIREHOSE_DOC)).encode())
    assert not errors(items)
    rows = records(items)
    assert len(rows) == 18
    line1 = [r for r in rows if r["_sdc_source_lineno"] == 1]
    assert [r["_sdc_record_index"] for r in line1] == list(range(12))
    assert [r["action"] for r in line1].count("remove") == 6
    assert {r["audience_id"] for r in line1} == {123123, 7}


def test_firehose_message_without_identities_still_records_the_change():
    doc = {**FIREHOSE_DOC, "UserIdentities": {"MPID": "-42"}}
    (row,) = records(parse(json.dumps(doc).encode()))
    assert row["mpid"] == -42
    assert row["identity_type"] is None
    assert row["identity_value"] is None


def test_a_line_longer_than_the_read_limit_is_decoded_document_by_document(tmp_path):
    path = tmp_path / "firehose-delivery"
    expected = generator.write_long_firehose_line(path, 9000)
    data = path.read_bytes()
    assert len(data) > 2 * MAX_LINE
    assert b"\n" not in data
    items = parse(data)
    assert not errors(items)
    rows = records(items)
    assert len(rows) == expected
    assert {r["_sdc_source_lineno"] for r in rows} == {1}
    assert [r["_sdc_record_index"] for r in rows] == list(range(expected))


def test_bad_json_inside_a_long_line_is_reported_and_the_next_line_still_read(tmp_path):
    path = tmp_path / "firehose-delivery"
    generator.write_long_firehose_line(path, 6000)
    data = path.read_bytes() + b'{"broken": \n' + json.dumps(FIREHOSE_DOC).encode() + b"\n"
    items = parse(data)
    (error,) = errors(items)
    assert error.lineno == 1
    assert any(r["_sdc_source_lineno"] == 2 for r in records(items))


# --- cloud storage delta ------------------------------------------------------------------


def test_delta_file_name_carries_the_audience():
    audience = delta_audience(DELTA_NAME)
    assert audience is not None
    assert (audience.audience_id, audience.audience_name) == (1234, "Test-Audience")
    assert delta_audience("My_Audience_With_Underscores_77_2020-01-01_00-00-00_" + DELTA_NAME[-40:])
    assert delta_audience("whatever.txt") is None


def test_delta_records():
    lines = [
        {
            "IsAddRequest": True,
            "IdentityValues": {"customer_id": "some_id", "mpid": "1"},
            "MembershipChangedTimestamp": 1594167374230,
        },
        {
            "IsAddRequest": "false",
            "IdentityValues": {"email": "é@x.fr", "other_id_2": 7},
            "MembershipChangedTimestamp": "1594167374",
        },
    ]
    data = "\n".join(json.dumps(line, ensure_ascii=False) for line in lines).encode()
    rows = records(parse(data, DELTA_NAME))
    assert [(r["identity_type"], r["identity_value"], r["action"], r["mpid"]) for r in rows] == [
        ("customer_id", "some_id", "add", 1),
        ("email", "é@x.fr", "remove", None),
        ("other_id_2", "7", "remove", None),
    ]
    assert {(r["audience_id"], r["audience_name"], r["source_format"]) for r in rows} == {
        (1234, "Test-Audience", "cloud_storage")
    }


def test_delta_record_in_a_file_named_otherwise_is_bad_input():
    line = {"IsAddRequest": True, "IdentityValues": {"customer_id": "x"}}
    (error,) = errors(parse(json.dumps(line).encode(), "renamed.txt"))
    assert "audience is unknown" in error.reason
    assert error.lineno == 1


# --- partner feed ---------------------------------------------------------------------


def test_partner_feed_add_delete_and_attribute_update():
    items = parse(json.dumps(PARTNER_DOC).encode())
    assert not errors(items)
    rows = records(items)
    assert [(r["audience_id"], r["action"]) for r in rows] == [(456, "add")] * 4 + [
        (654, "remove")
    ] * 4
    assert [r["identity_type"] for r in rows[:4]] == [
        "email",
        "customer_id",
        "other_id_2",
        "android_advertising_id",
    ]
    assert [r["identity_encoding"] for r in rows[:4]] == ["md5", "raw", "sha256", "raw"]
    assert {r["mpid"] for r in rows} == {-12345}
    attributes = records(items, "audience_user_attributes")
    assert [(a["audience_id"], a["key"], a["value"], a["action"]) for a in attributes] == [
        (789, "Some Key", "9999999", "upsert"),
        (789, "Churned", None, "delete"),
    ]
    assert {a["timestamp"] for a in attributes} == {"2024-05-01T19:45:44.065+00:00"}


def test_mparticles_own_partner_example_parses():
    data = (FIREHOSE_SDK_EXAMPLES / "AudienceMembershipChangeRequest.json").read_bytes()
    one_line = json.dumps(json.loads(data)).encode()
    warnings = []
    items = parse(one_line, warnings=warnings)
    assert not errors(items)
    assert len(records(items)) == 14  # 7 identities x (add + delete)
    assert len(records(items, "audience_user_attributes")) == 2
    assert warnings == [("partner_id", "partner_id")]


def test_partner_heartbeat_yields_nothing():
    heartbeat = {k: v for k, v in PARTNER_DOC.items() if k != "user_profiles"}
    assert parse(json.dumps(heartbeat).encode()) == []


def test_identity_types_filter_keeps_keys_stable():
    everything = records(parse(json.dumps(PARTNER_DOC).encode()))
    only = records(
        parse(json.dumps(PARTNER_DOC).encode(), identity_types=frozenset({"customer_id"}))
    )
    assert {r["identity_type"] for r in only} == {"customer_id"}
    by_key = {(r["_sdc_source_lineno"], r["_sdc_record_index"]): r for r in everything}
    for row in only:
        assert by_key[row["_sdc_source_lineno"], row["_sdc_record_index"]] == row


# --- download ---------------------------------------------------------------------------


def test_download_zip_and_unzipped_csv_give_the_same_rows():
    files = generator.download_files(generator.random.Random(1), generator.Expected(), rows=5)
    zipped = records(parse(generator.zip_bytes(files), "download.zip"))
    manifest = read_manifest(files["manifest.json"], "manifest.json")
    unzipped = []
    for name, data in files.items():
        if name.endswith(".csv"):
            items = parse(data, name, manifest=manifest)
            assert not errors(items)
            unzipped += records(items)
    strip = ("_sdc_source_member",)
    assert [{k: v for k, v in r.items() if k not in strip} for r in zipped] == [
        {k: v for k, v in r.items() if k not in strip} for r in unzipped
    ]
    assert len(zipped) == 10
    assert {r["_sdc_source_member"] for r in zipped} == {n for n in files if n.endswith(".csv")}
    variants = {(r["audience_id"], r["audience_name"], r["variant"]) for r in zipped}
    assert variants == {(8754, "PotentialParisians", None), (8755, "Lapsed Users", "Variant B")}
    assert {r["action"] for r in zipped} == {"add"}


CSV_HEADER_LINE = b"mpid, scanned_timestamp_ms, identity_value, identity_type\n"


def test_download_csv_row_values():
    data = (
        b"mpid, scanned_timestamp_ms, identity_value, identity_type\n"
        b"-1327484737295091692, 1538596779, h.jekyll.md, customer_id\n"
        b'3269816782460039080, 1580148438137, "74587f4b-6b8c-4a3c", ios_idfv\n'
    )
    rows = records(parse(data, "8754_PotentialParisians_172136Nov292018.csv"))
    assert [(r["mpid"], r["timestamp"], r["identity_value"], r["identity_type"]) for r in rows] == [
        (-1327484737295091692, "2018-10-03T19:59:39.000+00:00", "h.jekyll.md", "customer_id"),
        (3269816782460039080, "2020-01-27T18:07:18.137+00:00", "74587f4b-6b8c-4a3c", "ios_idfv"),
    ]
    assert [r["_sdc_source_lineno"] for r in rows] == [2, 3]


def test_download_rows_of_a_user_known_only_by_mpid_are_kept():
    # A row needs a user and a time; an MPID is a user, also when typed as an identity.
    data = CSV_HEADER_LINE + b"5, 1538596779, , \n" + b", 1538596779, 42, mpid\n"
    rows = records(parse(data, "8754_PotentialParisians_172136Nov292018.csv"))
    assert [(r["mpid"], r["identity_type"], r["identity_value"]) for r in rows] == [
        (5, None, None),
        (42, None, None),
    ]


def test_download_row_count_mismatch_and_bad_rows():
    files = generator.download_files(generator.random.Random(1), generator.Expected(), rows=4)
    name = next(n for n in files if n.startswith("8754"))
    data = files[name] + b"1, 1538596779, extra\n" + b"2, 1538596779, \xff\xfe, email\n"
    manifest = read_manifest(files["manifest.json"], "manifest.json")
    items = parse(data, name, manifest=manifest)
    reasons = [(e.lineno, e.reason) for e in errors(items)]
    assert reasons == [
        (6, "3 columns, expected 4"),
        (7, "bytes that are not UTF-8 at offset 15"),
        (None, "manifest.json says 4 rows, the CSV has 6"),
    ]
    assert len(records(items)) == 4


# --- bad input --------------------------------------------------------------------------


def test_bad_lines_are_named_and_the_rest_is_read():
    data = b"\n".join(
        [
            json.dumps(FIREHOSE_DOC).encode(),
            b"not json",
            b'{"AudienceId": 1, "IsMember": true, "UserIdentities": {"Email": "\xff"}}',
            b'{"hello": "world"}',
            b"[1, 2]",
            json.dumps({**FIREHOSE_DOC, "IsMember": "maybe"}).encode(),
            json.dumps(FIREHOSE_DOC).encode(),
        ]
    )
    items = parse(data)
    found = [(e.lineno, e.reason.split(" (")[0]) for e in errors(items)]
    assert found == [
        (2, "not valid JSON"),
        (3, "bytes that are not UTF-8 at offset 65"),
        (4, "not an audience message of any known shape"),
        (5, "a JSON list, not an audience message"),
        (6, "IsMember is 'maybe', not true or false"),
    ]
    assert {r["_sdc_source_lineno"] for r in records(items)} == {1, 7}


def test_truncated_gzip_keeps_the_lines_before_and_raises():
    lines = b"".join(json.dumps(FIREHOSE_DOC).encode() + b"\n" for _ in range(400))
    data = gzip.compress(lines, mtime=0)
    file = audience_file()
    stream = parse_audience_file(io.BytesIO(data[: len(data) // 2]), file, lambda: None)
    got = []
    with pytest.raises(BadInputError) as raised:
        got.extend(stream)
    assert "truncated or corrupt gzip" in raised.value.reason
    assert raised.value.lineno is not None
    assert got


# Firehose messages before 2.0 list `added_audiences` / `removed_audiences` per profile
# (the shape of the Java Firehose SDK's 1.x UserProfile), with plain user attributes.
LEGACY_PARTNER_DOC = {
    "type": "audience_membership_change_request",
    "id": "7c1e5a44-8f7a-4a0e-9a61-3f2b1c0d9e8f",
    "timestamp_ms": 1714592744065,
    "firehose_version": "1.3",
    "user_profiles": [
        {
            "mpid": "77",
            "user_identities": [{"type": "customer", "encoding": "raw", "value": "c-77"}],
            "device_identities": [{"type": "ios_idfa", "encoding": "raw", "value": "idfa-1"}],
            "user_attributes": {"tier": "gold"},
            "added_audiences": [{"audience_id": 11, "audience_name": "Big spenders"}],
            "removed_audiences": [{"audience_id": 12, "audience_name": "Lapsed"}],
        }
    ],
}


def test_pre_2_partner_feed_messages_yield_their_rows():
    items = parse(json.dumps(LEGACY_PARTNER_DOC).encode())
    assert not errors(items)
    rows = records(items)
    assert [(r["audience_id"], r["action"], r["identity_type"]) for r in rows] == [
        (11, "add", "customer_id"),
        (11, "add", "ios_advertising_id"),
        (12, "remove", "customer_id"),
        (12, "remove", "ios_advertising_id"),
    ]
    assert {r["mpid"] for r in rows} == {77}
    attributes = records(items, "audience_user_attributes")
    assert [(a["audience_id"], a["key"], a["value"], a["action"]) for a in attributes] == [
        (11, "tier", "gold", "upsert"),
        (12, "tier", "gold", "upsert"),
    ]


def test_a_profile_that_lists_no_audiences_is_bad_input_not_silence():
    doc = json.loads(json.dumps(LEGACY_PARTNER_DOC))
    profile = doc["user_profiles"][0]
    del profile["added_audiences"], profile["removed_audiences"]
    (error,) = errors(parse(json.dumps(doc).encode()))
    assert "no audiences, added_audiences or removed_audiences" in str(error)
    assert str(error).startswith("s3://bucket/audiences/file.txt:1: ")
