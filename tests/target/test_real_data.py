"""Both plugins over real, public mParticle data (tests/fixtures/real, sources in its README).

The tap must keep every event and every batch field of what mParticle's docs, its
Python SDK and its Firehose SDK wrote; the target must turn all of it into bodies
the published schema accepts (the stand-in checks each), sending each batch once.
"""

from __future__ import annotations

import json
import random
import typing as t

import pytest

from mparticle_facts.numbers import to_int
from tap_mparticle.events import BATCH_FIELDS, INTEGER_FIELDS, identities_as_array
from tests.support.eventsapi import load_validator
from tests.support.files import REAL_DROP, REPO_ROOT, dead_letters, real_batches
from tests.support.tap import TapOutput, assert_valid, run_tap
from tests.support.target import dry_run_dead_letters, run_target, singer_lines

EVENT_PREFIXES = ("events/", "firehose-events/")


@pytest.fixture(scope="module")
def tap_output() -> dict[str, TapOutput]:
    return {
        prefix: run_tap(
            {"bucket_url": str(REAL_DROP), "events_prefix": prefix},
            streams={"batches", "events"},
        )
        for prefix in EVENT_PREFIXES
    }


@pytest.mark.parametrize("prefix", EVENT_PREFIXES)
def test_every_batch_field_and_event_survives_the_tap(tap_output, prefix):
    out = tap_output[prefix]
    sources = real_batches(prefix)
    records = out.records("batches")
    assert len(sources) == len(records) == 12
    order = sorted(
        records,
        key=lambda r: (r["_sdc_source_file"], r["_sdc_source_lineno"], r["_sdc_batch_index"]),
    )
    for source, record in zip(sources, order, strict=True):
        for name, value in source.items():
            if name in INTEGER_FIELDS:
                assert record[name] == to_int(value), name
            elif name == "user_identities":
                assert record[name] == identities_as_array(value)
            elif name in BATCH_FIELDS:
                assert record[name] == value, name
            else:
                assert record["other_fields"][name] == value, name
    events = out.records("events")
    source_events = [e for b in sources for e in b.get("events") or []]
    assert len(events) == len(source_events) == 50
    assert sorted(json.dumps(e["data"], sort_keys=True) for e in events) == sorted(
        json.dumps(e.get("data") or {}, sort_keys=True) for e in source_events
    )


def test_the_back_to_back_file_holds_the_same_batches(tap_output):
    def content(prefix: str) -> list[str]:
        records = tap_output[prefix].records("batches")
        return sorted(
            json.dumps({k: v for k, v in r.items() if not k.startswith("_sdc_")}, sort_keys=True)
            for r in records
        )

    assert content("events/") == content("firehose-events/")


def only(out: TapOutput, stream: str) -> list[str]:
    """The tap's Singer lines for one stream (SCHEMA, RECORDs) and every STATE."""
    return [
        json.dumps(m) for m in out.messages if m["type"] == "STATE" or m.get("stream") == stream
    ]


@pytest.mark.parametrize("stream", ["batches", "events"])
def test_a_replay_of_the_corpus_accounts_for_every_event(server, config, tap_output, stream):
    config["on_invalid_record"] = "dead_letter"
    run = run_target(config, only(tap_output["events/"], stream))
    assert run.error is None
    # Every body the stand-in saw validated against mParticle's published schema.
    assert server.rejected == []
    letters = dead_letters(config)
    # A batch refused whole (no identity at all) is one letter holding all its
    # events; an event refused alone is one letter holding that event.
    lettered = sum(
        len(letter["record"].get("events") or []) if stream == "batches" else 1
        for letter in letters
    )
    assert len(server.events()) + lettered == 50
    reasons = {letter["reason"].rsplit(": ", 1)[-1] for letter in letters}
    # What the corpus really lacks: mParticle's own examples without identities,
    # the README's session_end without its duration, the sample batch's identity
    # change with no old identity, a custom event with no name.
    assert reasons <= {
        "has no user identity, mpid or device identity",
        "data must contain ['session_duration_ms'] properties",
        "data must contain ['old'] properties",
        "data must contain ['event_name'] properties",
    }
    assert len(server.events()) == 29


def test_the_target_checks_against_the_same_published_schema_the_stand_in_enforces():
    shipped = REPO_ROOT / "target_mparticle" / "schema" / "mparticle.inbound.eventsapi.schema.json"
    vendored = (
        REPO_ROOT / "tests" / "fixtures" / "mparticle_schema" / "mparticle-eventsapi-schema.json"
    )
    assert json.loads(shipped.read_bytes()) == json.loads(vendored.read_bytes())


# Values that break a field in the ways real producers do: empty, wrong type, null.
_MANGLED: tuple[t.Any, ...] = ({}, [], [{}], "", "x", -1, 1.5, None, True, {"k": {}}, ["a", 3])


def test_mangled_real_events_still_give_only_valid_bodies(tmp_path):
    """Every body is valid for any input: real events with fields broken at random.

    Each of the corpus's events gets fields replaced by mangled values (seeded, so
    the same every run); whatever the target sends must validate, and every event
    must be either sent or refused with a reason.
    """
    rng = random.Random(7)  # noqa: S311 - reproducible mutations, not security
    events = [e for b in real_batches("events/") for e in b.get("events") or []]
    batches = []
    for round_ in range(8):
        for index, original in enumerate(events):
            data = json.loads(json.dumps(original.get("data") or {}))
            for key in rng.sample(sorted(data), k=min(len(data), 2)):
                data[key] = rng.choice(_MANGLED)
            data[rng.choice(["location", "product_action", "breadcrumbs", "custom_flags"])] = (
                rng.choice(_MANGLED)
            )
            batches.append(
                {
                    "user_identities": {"customer_id": f"c-{round_}-{index}"},
                    "events": [{"event_type": original.get("event_type"), "data": data}],
                }
            )
    config = dry_run_dead_letters(tmp_path)
    run = run_target(config, singer_lines("mangled", batches))
    assert run.error is None
    validate = load_validator()
    sent = 0
    for line in (tmp_path / "dry.jsonl").read_text(encoding="utf-8").splitlines():
        for batch in json.loads(line)["body"]:
            assert validate(batch) == [], batch
            sent += len(batch.get("events") or [])
    refused = dead_letters(config)
    assert sent + len(refused) == len(batches) == 400
    assert sent > 200


def test_real_audience_data_goes_in_as_user_attributes_or_is_refused_with_its_reason(
    server, config
):
    """mParticle's own Kinesis, GCS and partner-feed examples, straight into the target."""
    config["on_invalid_record"] = "dead_letter"
    out = run_tap(
        {"bucket_url": str(REAL_DROP)}, streams={"audience_memberships", "audience_user_attributes"}
    )
    # The tap's rows of real data fit its catalog, non-null timestamps included.
    memberships = assert_valid(out, "audience_memberships")
    attributes = assert_valid(out, "audience_user_attributes")
    assert memberships
    assert attributes
    rows = len(memberships) + len(attributes)
    run = run_target(config, [json.dumps(m) for m in out.messages])
    assert run.error is None
    assert server.rejected == []
    sent = {
        name
        for batch in server.batches()
        for name in [
            *(batch.get("user_attributes") or {}),
            *(batch.get("deleted_user_attributes") or []),
        ]
    }
    # Adds and removes of the docs' audiences (1234, 123123, ...) and the partner
    # feed's attribute changes all arrive.
    assert {"audience_1234", "audience_123123", "Some Key", "Churned"} <= sent
    letters = dead_letters(config)
    # What cannot be sent is said: hashed identities (the partner feed's md5 emails)
    # and partner identities with no mpid; nothing is lost silently.
    assert letters
    assert all("and it has no mpid" in letter["reason"] for letter in letters)
    assert len(letters) < rows
