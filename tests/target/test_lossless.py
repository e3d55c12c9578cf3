"""Replays that lose nothing, and bodies mParticle accepts whatever arrives.

The stand-in checks every batch against mParticle's published schema; a refused
batch lands in `server.rejected`, so `server.rejected == []` is "every body valid".
"""

from __future__ import annotations

import json
import typing as t

import pytest

from tests.support.files import dead_letters
from tests.support.tap import run_tap
from tests.support.target import run_target, singer_lines

if t.TYPE_CHECKING:
    import pathlib

UUID = "0b8f5b2f-0c1d-4f7e-9a4b-1a2b3c4d5e6f"
TS = 1_714_521_600_000


def event(name: str, **data: t.Any) -> dict[str, t.Any]:
    return {
        "event_type": "custom_event",
        "data": {
            "event_name": name,
            "custom_event_type": "other",
            "timestamp_unixtime_ms": str(TS),
            "source_message_id": f"m-{name}",
            **data,
        },
    }


# Outbound batches as mParticle's S3 output writes them.
RICH = {
    "events": [event("a"), event("b", message_id=99, session_id="7", event_id="8")],
    "user_identities": [
        {"identity_type": "customer_id", "identity": "c-1", "timestamp_unixtime_ms": 1},
        {"identity_type": "email", "identity": "c1@example.com"},
    ],
    "user_attributes": {"tier": "gold", "tags": ["x", "y"]},
    "deleted_user_attributes": ["old_tier"],
    "consent_state": {
        "gdpr": {"marketing": {"consented": True, "timestamp_unixtime_ms": 1}},
        "ccpa": {"data_sale_opt_out": {"consented": False, "timestamp_unixtime_ms": 2}},
    },
    "context": {"data_plan": {"plan_id": "travel", "plan_version": "3"}},
    "integration_attributes": {"160": {"sessionId": "abc"}},
    "partner_identities": {"Acme_Id": "p-9"},
    "ip": "203.0.113.7",
    "mp_deviceid": UUID,
    "mpid": "-8203932131457467343",
    "batch_id": 12,
    "timestamp_unixtime_ms": str(TS + 5),
    "schema_version": 2,
    "message_type": "events",
    "source_info": {"channel": "native"},
    "environment": "development",
}
USER_UPDATE = {"user_identities": [{"identity_type": "customerid", "identity": "c-2"}], "mpid": 2}
# mParticle's published sample batch has an identity change whose `old` is null.
WITH_BROKEN_EVENT = {
    "events": [
        event("before"),
        {
            "event_type": "user_identity_change",
            "data": {
                "new": {"identity_type": "email", "identity": "n@example.com"},
                "old": None,
                "timestamp_unixtime_ms": TS,
            },
        },
        event("after"),
    ],
    "user_identities": [{"identity_type": "customer_id", "identity": "c-3"}],
}


@pytest.fixture
def drop(tmp_path: pathlib.Path) -> dict[str, t.Any]:
    root = tmp_path / "drop"
    root.mkdir()
    lines = [json.dumps(b) for b in (RICH, USER_UPDATE, WITH_BROKEN_EVENT)]
    (root / "App_20240501000000000000_11111.txt").write_text("\n".join(lines) + "\n")
    return {"bucket_url": str(root)}


def replay(drop: dict[str, t.Any], streams: set[str]) -> list[str]:
    """What tap-mparticle writes with these streams selected, as Singer lines."""
    return [json.dumps(m) for m in run_tap(drop, streams=streams).messages]


def test_a_batches_replay_keeps_everything_the_inbound_schema_takes(server, config, drop):
    config["on_invalid_record"] = "dead_letter"
    config["environment"] = "production"
    run = run_target(config, replay(drop, {"batches"}))
    assert run.error is None
    assert server.rejected == []
    sent = {b["user_identities"].get("customer_id"): b for b in server.batches()}
    rich = sent["c-1"]
    for name in (
        "consent_state",
        "deleted_user_attributes",
        "integration_attributes",
        "partner_identities",
        "ip",
        "mp_deviceid",
    ):
        assert rich[name] == RICH[name], name
    assert rich["context"] == {"data_plan": {"plan_id": "travel", "plan_version": 3}}
    assert rich["mpid"] == -8203932131457467343
    assert rich["user_attributes"] == {"tier": "gold", "tags": ["x", "y"]}
    # A replayed batch keeps its own environment; the setting fills in where none is.
    assert rich["environment"] == "development"
    assert sent["c-3"]["environment"] == "production"
    # mParticle's receipt stamps are the receiving workspace's to set.
    for stamped in ("batch_id", "timestamp_unixtime_ms", "source_info", "schema_version"):
        assert stamped not in rich
    # session_id and event_id are inbound fields; message_id is mParticle's own.
    second = rich["events"][1]["data"]
    assert (second["session_id"], second["event_id"]) == (7, 8)
    assert "message_id" not in second
    # A batch without events is a user update, with the SDKs' `customerid` understood.
    update = sent["c-2"]
    assert "events" not in update
    assert update["mpid"] == 2


def test_one_event_that_cannot_be_valid_is_dead_lettered_alone(server, config, drop):
    config["on_invalid_record"] = "dead_letter"
    run = run_target(config, replay(drop, {"batches"}))
    assert run.error is None
    (batch,) = [b for b in server.batches() if b["user_identities"].get("customer_id") == "c-3"]
    assert [e["data"]["event_name"] for e in batch["events"]] == ["before", "after"]
    (letter,) = dead_letters(config)
    assert letter["stream"] == "batches"
    assert "event 1" in letter["reason"]
    assert "old" in letter["reason"]
    # The dead letter keeps the event with its batch's context, for a fix and re-send.
    assert letter["record"]["events"] == [WITH_BROKEN_EVENT["events"][1]]
    assert letter["record"]["user_identities"] == WITH_BROKEN_EVENT["user_identities"]


def test_selecting_events_and_batches_sends_each_batch_once(server, config, drop):
    config["on_invalid_record"] = "skip"
    run = run_target(config, replay(drop, {"batches", "events"}))
    assert run.error is None
    assert server.rejected == []
    names = sorted(e["data"].get("event_name") for e in server.events())
    assert names == ["a", "after", "b", "before"]
    # The second copy of each event-carrying line had the same source_request_id.
    assert len(server.duplicates) == 2
    assert len(server.batches()) == 3


def test_optional_parts_that_cannot_be_valid_are_dropped_never_the_event(server, config):
    odd = {
        "user_identities": {"customer_id": "c-9"},
        "events": [
            event("empty location", location={}),
            {
                "event_type": "commerce_event",
                "data": {
                    "product_action": {},
                    "promotion_action": {},
                    "shopping_cart": {},
                    "product_impressions": [{}],
                    "timestamp_unixtime_ms": TS,
                },
            },
            {
                "event_type": "crash_report",
                "data": {"message": "boom", "severity": "fatal", "breadcrumbs": ["tap", 3]},
            },
            event("kept", custom_event_type="attribution"),
        ],
    }
    run = run_target(config, singer_lines("raw_batches", [odd]))
    assert run.error is None
    assert server.rejected == []
    events = server.events()
    assert [e["event_type"] for e in events] == [
        "custom_event",
        "commerce_event",
        "crash_report",
        "custom_event",
    ]
    assert "location" not in events[0]["data"]
    assert set(events[1]["data"]) == {"timestamp_unixtime_ms"}
    assert "breadcrumbs" not in events[2]["data"]
    assert events[3]["data"]["custom_event_type"] == "other"
    assert events[3]["data"]["custom_attributes"]["original_custom_event_type"] == "attribution"
    tally = run.target.delivery.tally
    assert tally["optional event fields that could not be valid dropped (location)"] == 1
    assert tally["optional event fields that could not be valid dropped (breadcrumbs)"] == 1
    assert sum(v for k, v in tally.items() if k.startswith("optional event fields")) == 6


def test_identity_spellings_in_mappings_and_batches(server, config):
    config["mappings"] = {"users": {"kind": "user", "identities": {"customerId": "id"}}}
    users = singer_lines("users", [{"id": "u-1", "plan": "pro"}], key=["id"])
    batches = singer_lines("sdk_bodies", [{"user_identities": {"customerid": "u-2"}, "events": []}])
    run = run_target(config, [*users, *batches])
    assert run.error is None
    assert sorted(b["user_identities"]["customer_id"] for b in server.batches()) == ["u-1", "u-2"]
