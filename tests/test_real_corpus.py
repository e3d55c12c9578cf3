"""The real-data corpus (tests/fixtures/real) and the Events API stand-in's schema check."""

from __future__ import annotations

import functools
import json
from typing import TYPE_CHECKING

import pytest
import requests
from jsonschema import Draft7Validator, FormatChecker

from scripts.build_real_corpus import build
from scripts.capture_sdk_bodies import capture
from tests.support.eventsapi import BATCH_SCHEMA, EventsApiServer, published_schema
from tests.support.files import REPO_ROOT

if TYPE_CHECKING:
    from pathlib import Path

REAL = REPO_ROOT / "tests" / "fixtures" / "real"
AUTH = ("test-key", "test-secret")
DECODER = json.JSONDecoder()
# mParticle's documented minimal valid batch (reference spec, section 2.7).
MINIMAL = {
    "environment": "production",
    "source_request_id": "5c1d2a9e-0b8f-4d43-9d0e-2f1c6a7b8e90",
    "user_identities": {"customer_id": "1234", "email": "a@b.com"},
    "user_attributes": {"$firstname": "John", "tier": "gold"},
    "device_info": {"ios_advertising_id": "613ff528-afd1-4c1b-9628-e6ed25ece9c0"},
    "events": [
        {
            "event_type": "custom_event",
            "data": {
                "event_name": "click",
                "custom_event_type": "navigation",
                "source_message_id": "e8335d31-2031-4bff-afec-17ffc1784697",
                "timestamp_unixtime_ms": 1700000000000,
                "custom_attributes": {"button": "home"},
            },
        }
    ],
}


def documents(data: str) -> list[object]:
    """Every JSON document in ``data``: one, one per line, or back to back (``}{``)."""
    found, position = [], 0
    while True:
        while position < len(data) and data[position] in " \t\r\n":
            position += 1
        if position == len(data):
            return found
        document, position = DECODER.raw_decode(data, position)
        found.append(document)


def corpus_files() -> list[Path]:
    return sorted(p for p in REAL.rglob("*") if p.is_file() and p.name != "README.md")


def source_document(source: str) -> object:
    """A drop manifest's source (``file``, ``file#n`` or ``file#Record.Data``) as parsed JSON."""
    name, _, part = source.partition("#")
    if name.startswith("docs/json-reference/{"):
        # The build script's one wrapper: the reference's event examples in one batch.
        from scripts.build_real_corpus import JSON_REFERENCE_EVENTS  # noqa: PLC0415

        folder = REAL / "docs" / "json-reference"
        return {"events": [json.loads((folder / n).read_text()) for n in JSON_REFERENCE_EVENTS]}
    parsed = documents((REAL / name).read_text(encoding="utf-8"))
    if part.isdigit():
        whole = parsed[0] if len(parsed) == 1 else parsed
        return whole[int(part)]  # type: ignore[index]
    (document,) = parsed
    for key in filter(None, part.split(".")):
        document = document[key]  # type: ignore[index]
    return document


@pytest.mark.parametrize("path", corpus_files(), ids=lambda p: str(p.relative_to(REAL)))
def test_every_corpus_file_is_json(path):
    parsed = documents(path.read_text(encoding="utf-8"))
    assert parsed, "empty file"
    if path.suffix == ".json" and "drop" not in path.parts:
        assert len(parsed) == 1  # a published example is one document


def test_every_corpus_file_is_described_in_the_readme():
    readme = (REAL / "README.md").read_text()
    raw = [p for p in corpus_files() if "drop" not in p.relative_to(REAL).parts]
    missing = [str(p.relative_to(REAL)) for p in raw if p.name not in readme]
    assert missing == []


def test_build_script_reproduces_the_committed_drop(tmp_path):
    build(tmp_path)
    built = {p.relative_to(tmp_path): p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    committed = {
        p.relative_to(REAL): p.read_bytes()
        for p in [*(REAL / "drop").rglob("*"), REAL / "drop-manifest.json"]
        if p.is_file()
    }
    assert sorted(built) == sorted(committed)
    assert [name for name in built if built[name] != committed[name]] == []


def test_drop_holds_the_published_documents_unchanged():
    manifest = json.loads((REAL / "drop-manifest.json").read_text())
    for name, entry in manifest.items():
        in_drop = documents((REAL / "drop" / name).read_text(encoding="utf-8"))
        assert in_drop == [source_document(s) for s in entry["sources"]], name
        assert len(in_drop) == entry["documents"]
        if "events" in entry:
            assert sum(len(d.get("events") or []) for d in in_drop) == entry["events"]


def test_drop_frames_batches_as_mparticle_outputs_do():
    manifest = json.loads((REAL / "drop-manifest.json").read_text())
    ndjson = [n for n, e in manifest.items() if e["framing"] == "events ndjson"]
    (concatenated,) = [n for n, e in manifest.items() if e["framing"] == "events concatenated"]
    lines = [
        line
        for n in ndjson
        for line in (REAL / "drop" / n).read_text(encoding="utf-8").splitlines()
    ]
    # Same batches, same order; Firehose's copy has them back to back with no separator.
    assert (REAL / "drop" / concatenated).read_text(encoding="utf-8") == "".join(lines)
    assert "}{" in "".join(lines)
    assert concatenated.split("/")[1:5] == ["2024", "05", "01", "13"]
    assert manifest[concatenated]["batches_without_events"] >= 1
    (s3_example,) = [(REAL / "drop" / n).read_text() for n in ndjson if "S3-Docs-Example" in n]
    assert '"timestamp_unixtime_ms":"1595542763908"' in s3_example  # numbers as strings, kept


def test_capture_script_reproduces_the_python_sdk_bodies(tmp_path):
    written = capture(tmp_path)
    assert sorted(p.name for p in written) == sorted(
        p.name for p in (REAL / "python-sdk").iterdir()
    )
    for path in written:
        assert path.read_bytes() == (REAL / "python-sdk" / path.name).read_bytes(), path.name


@functools.cache
def jsonschema_reference() -> Draft7Validator:
    """The published schema under jsonschema, as mParticle's docs suggest validating."""
    return Draft7Validator(json.loads(BATCH_SCHEMA.read_text()), format_checker=FormatChecker())


def post(server: EventsApiServer, path: str, body: object) -> requests.Response:
    return requests.post(f"{server.url}/{path}", json=body, auth=AUTH, timeout=10)


def test_stand_in_accepts_mparticles_minimal_valid_batch():
    with EventsApiServer() as server:
        assert post(server, "events", MINIMAL).status_code == 202
        second = {**MINIMAL, "source_request_id": "second"}
        assert post(server, "bulkevents", [second]).status_code == 202
        assert server.rejected == []
        assert [b["source_request_id"] for b in server.batches()] == [
            MINIMAL["source_request_id"],
            "second",
        ]


def with_event_data(**fields: object) -> dict:
    event = {**MINIMAL["events"][0], "data": {**MINIMAL["events"][0]["data"], **fields}}
    return {**MINIMAL, "events": [event]}


@pytest.mark.parametrize(
    ("batch", "expected"),
    [
        (with_event_data(location={}), "events/0/data/location: must contain"),
        ({**MINIMAL, "schema_version": 2}, "(batch): must not contain {'schema_version'}"),
        (
            {
                **MINIMAL,
                "events": [{"event_type": "commerce_event", "data": {"product_action": {}}}],
            },
            "events/0/data/product_action: must contain ['action']",
        ),
        ({**MINIMAL, "ip": "10.0.0.256"}, "ip: must be valid exactly by one definition"),
        ({**MINIMAL, "events": [{"event_type": "page_view", "data": {}}]}, "events/0/event_type:"),
        (["not", "a", "batch"], "(batch): must be a JSON object"),
    ],
    ids=[
        "empty-location",
        "schema_version",
        "empty-product_action",
        "bad-ip",
        "unknown-type",
        "list",
    ],
)
def test_stand_in_rejects_a_batch_that_fails_the_schema_naming_the_path(batch, expected):
    with EventsApiServer() as server:
        answer = post(server, "events", batch)
        assert answer.status_code == 400
        messages = [e["message"] for e in answer.json()["errors"]]
        assert len(messages) == 1
        assert messages[0].startswith(expected)
        assert server.batches() == []


def test_stand_in_rejects_mparticles_own_published_sample_as_published():
    sample = json.loads((REAL / "docs" / "mparticle.inbound.eventsapi.sample.json").read_text())
    with EventsApiServer() as server:
        answer = post(server, "bulkevents", [MINIMAL, sample])
        assert answer.status_code == 400
        assert [e["message"] for e in answer.json()["errors"]] == [
            "events/8/data/source_message_id: must be string"  # null, as published
        ]
        assert [errors for _batch, errors in server.rejected] == [
            ["events/8/data/source_message_id: must be string"]
        ]
        assert server.batches() == []  # one bad batch fails the whole request


@pytest.mark.parametrize(
    "value",
    [
        "1.2.3.4",
        "255.255.255.255",
        "0.0.0.0",  # noqa: S104 - a value under test, not a bind address
        "256.1.1.1",
        "1.2.3",
        "01.2.3.4",
        " 1.2.3.4",
        "::1",
        "::",
        "2001:db8::1",
        "::ffff:1.2.3.4",
        "1:2:3:4:5:6:7:8",
        "1::2::3",
        "fe80::1%eth0",
        "",
        None,
    ],
)
def test_compiled_schema_judges_ip_as_jsonschema_with_a_format_checker(value):
    # Without a format checker every string matches both oneOf branches and fails.
    reference = jsonschema_reference()
    batch = {**MINIMAL, "ip": value}
    assert (published_schema().errors(batch) == []) is reference.is_valid(batch)


@pytest.mark.parametrize(
    "value",
    [
        "613ff528-afd1-4c1b-9628-e6ed25ece9c0",
        "613FF528-AFD1-4C1B-9628-E6ED25ECE9C0",
        "613ff528afd14c1b9628e6ed25ece9c0",
        "{613ff528-afd1-4c1b-9628-e6ed25ece9c0}",
        "613ff528-afd1-4c1b-9628-e6ed25ece9c0x",
        "",
        None,
    ],
)
@pytest.mark.parametrize("field", ["mp_deviceid", "device_info", "session_uuid"])
def test_compiled_schema_judges_uuid_patterns_as_jsonschema(field, value):
    reference = jsonschema_reference()
    if field == "device_info":
        batch = {**MINIMAL, "device_info": {"ios_advertising_id": value}}
    elif field == "session_uuid":
        batch = with_event_data(session_uuid=value)
    else:
        batch = {**MINIMAL, "mp_deviceid": value}
    assert (published_schema().errors(batch) == []) is reference.is_valid(batch)


def test_compiled_schema_ends_a_pattern_at_the_end_of_the_string():
    # ECMA-262's "$" (which JSON Schema names) does not match before a final newline;
    # Python's re.search, under jsonschema, does. The stand-in follows ECMA-262.
    batch = {**MINIMAL, "mp_deviceid": "613ff528-afd1-4c1b-9628-e6ed25ece9c0\n"}
    pattern = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
    assert published_schema().errors(batch) == [f"mp_deviceid: must match pattern {pattern}"]
    assert jsonschema_reference().is_valid(batch)


def test_no_test_reads_outside_the_repository():
    # The steering folder beside the repository exists only where the project was
    # started; a clone has no such folder.
    spellings = ["shared" + "/reference", '"shared"' + ' / "reference"']
    readers = [
        str(p.relative_to(REPO_ROOT))
        for folder in ("tests", "benchmarks", "scripts")
        for p in (REPO_ROOT / folder).rglob("*.py")
        if any(s in p.read_text() for s in spellings)
    ]
    assert readers == []
