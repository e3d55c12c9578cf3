from __future__ import annotations

import contextlib
import gc
import io
import json
import logging
import pathlib
import re
import sys
import threading
import warnings

import pytest
from singer_sdk.exceptions import ConfigValidationError

from target_mparticle.client import AuthError, BadRequestError, DeliveryError, DryRunClient
from target_mparticle.invalid import InvalidRecordFatalError
from target_mparticle.target import TargetMParticle
from tests.support.eventsapi import EventsApiServer, Fault
from tests.support.files import dead_letters
from tests.support.proxy import counting_proxy
from tests.support.target import FIXTURES, SECRET, run_target, singer_lines

USERS = 300


def accepted_user_ids(server: EventsApiServer) -> list[int]:
    return sorted(int(b["user_attributes"]["id"]) for b in server.batches())


def test_users_table_arrives_once_each_and_states_follow_acceptance(server, config):
    config["mappings"] = {"users": {"kind": "user"}}
    run = run_target(config, "users.singer")
    assert run.error is None
    assert accepted_user_ids(server) == list(range(1, USERS + 1))
    assert server.rejected == []
    assert server.duplicates == []
    assert [s["bookmarks"]["users"]["id"] for s in run.states] == [100, 200, 300]
    batch = server.batches()[0]
    assert batch["user_identities"] == {"customer_id": "C00001", "email": "user1@example.com"}
    assert batch["user_attributes"]["address.city"]
    assert isinstance(batch["user_attributes"]["tags"], list)
    assert batch["environment"] == "development"
    assert all(r.n_batches <= 100 for r in server.requests)


@pytest.mark.parametrize("bypassed", [False, True], ids=["proxied", "no_proxy"])
def test_the_proxy_the_environment_names_is_used_unless_no_proxy_covers_the_api(
    server, config, monkeypatch, bypassed
):
    config["mappings"] = {"users": {"kind": "user"}}
    with counting_proxy(server.url.removesuffix("/v2")) as (proxy_url, log):
        for lower in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
            monkeypatch.delenv(lower, raising=False)  # they win over the upper-case names
        monkeypatch.setenv("HTTP_PROXY", proxy_url)
        monkeypatch.setenv("NO_PROXY", "127.0.0.1" if bypassed else "")
        run = run_target(config, "users.singer")
    assert run.error is None
    assert accepted_user_ids(server) == list(range(1, USERS + 1))
    posts = [path for method, path, _ in log.requests if method == "POST"]
    assert posts == ([] if bypassed else [r.path for r in server.requests])
    assert len(server.requests) == 3


def test_tap_mparticle_events_replay_is_accepted_and_grouped_per_user(server, config):
    run = run_target(config, "tap_events.singer")
    assert run.error is None
    records = [
        json.loads(line)["record"]
        for line in (FIXTURES / "tap_events.singer").read_text().splitlines()
        if '"RECORD"' in line
    ]
    lines = {(r["_sdc_source_file"], r["_sdc_source_lineno"]) for r in records}
    assert len(server.batches()) == len(lines)
    sent_ids = sorted(e["data"]["source_message_id"] for e in server.events())
    assert sent_ids == sorted(r["source_message_id"] for r in records)
    assert server.rejected == []
    by_id = {r["source_message_id"]: r["data"] for r in records}
    for event in server.events():
        source = by_id[event["data"]["source_message_id"]]
        # The inbound schema takes session_id and event_id (SDKs tie sessions by them);
        # mParticle's own processing ids are not claimed in another workspace.
        assert event["data"]["session_id"] == int(source["session_id"])
        assert event["data"]["event_id"] == int(source["event_id"])
        assert "message_id" not in event["data"]
        assert isinstance(event["data"]["timestamp_unixtime_ms"], int)
    # STATE after each file, passed on once 100+ records were delivered (and at the end).
    assert run.states[-1]["bookmarks"]["events"]["file"].endswith("_12345.txt")
    assert len(run.states) == 3


def test_orders_as_commerce_events_and_whole_batches(server, config):
    config["mappings"] = {
        "orders": {
            "kind": "commerce_event",
            "custom_event_type": "purchase",
            "event_name": "Order placed",
            "timestamp_field": "placed_at",
            "source_message_id_field": "order_id",
            "identities": {"customer_id": "customer_id"},
            "event_attributes": ["status", "channel"],
        }
    }
    assert run_target(config, "orders.singer").error is None
    assert run_target(config, "whole_batches.singer").error is None
    assert server.rejected == []
    orders = [e for e in server.events() if e["event_type"] == "commerce_event"]
    assert len(orders) == 120
    by_id = {e["data"]["source_message_id"]: e["data"] for e in orders}
    assert sorted(by_id) == [f"O-{n:06d}" for n in range(1, 121)]
    first = by_id["O-000001"]
    assert first["product_action"]["action"] == "purchase"
    assert set(first["custom_attributes"]) <= {"status", "channel"}
    assert len(server.events()) == 140


def test_429_with_retry_after_then_success(server, config, caplog):
    server.fail_with(429, times=2, Retry_After="0", X_mp_rate_limit_exceeded="app")
    with caplog.at_level("INFO", logger="target-mparticle"):
        run = run_target(config, "users.singer")
    assert run.error is None
    assert len(server.batches()) == USERS
    assert run.target.delivery.client.stats.throttled == 2
    assert run.target.delivery.client.pacer.rate < 270
    retries = [r.getMessage() for r in caplog.records if "HTTP 429" in r.getMessage()]
    assert len(retries) == 2
    assert all("the app rate limit was exceeded" in m for m in retries)


@pytest.mark.parametrize("status", [500, 503])
def test_server_errors_are_retried_with_the_same_ids(server, config, status):
    server.fail_with(status, times=3)
    run = run_target(config, "users.singer")
    assert run.error is None
    assert len(server.batches()) == USERS
    assert run.target.delivery.client.stats.retries == 3


def test_dropped_connections_and_lost_answers_are_retried_and_deduplicated(server, config):
    server.script(Fault("drop"))
    server.script(Fault("accept_then_drop"))
    run = run_target(config, "users.singer")
    assert run.error is None
    assert len(server.batches()) == USERS
    assert len(server.duplicates) > 0
    first_request_ids = set(list(server.accepted)[:100])
    assert set(server.duplicates) <= first_request_ids | set(server.accepted)


def test_slow_answers_time_out_and_are_retried(config):
    # No schema check here: answer times must not depend on the machine's load.
    with EventsApiServer(api_key="test-key", api_secret=SECRET, validate=False) as server:
        config["api_url"] = server.url
        config["request_timeout"] = 0.5
        config["max_parallel_requests"] = 1
        server.script(Fault("slow", delay_s=1.0))
        run = run_target(config, "users.singer")
        assert run.error is None
        assert len(server.batches()) == USERS
        assert run.target.delivery.client.stats.retries >= 1


def test_retries_exhausted_fails_without_a_state_past_accepted_records(server, config):
    config["mappings"] = {"users": {"kind": "user"}}
    config["max_parallel_requests"] = 1
    server.script(Fault("pass"), times=1)
    server.fail_with(503, times=50)
    run = run_target(config, "users.singer")
    assert isinstance(run.error, DeliveryError)
    assert "gave up" in str(run.error)
    accepted = accepted_user_ids(server)
    assert accepted == list(range(1, 101))
    assert [s["bookmarks"]["users"]["id"] for s in run.states] == [100]


@pytest.mark.parametrize(("key", "secret", "status"), [("test-key", "wrong", 403)])
def test_refused_credentials_stop_at_once_naming_url_not_credentials(
    server, config, key, secret, status
):
    config["api_key"] = key
    config["api_secret"] = secret
    run = run_target(config, "users.singer")
    assert isinstance(run.error, AuthError)
    message = str(run.error)
    assert f"HTTP {status}" in message
    assert server.url in message
    assert "api_key" in message
    # The key is a credential too (declared secret): named, never shown.
    assert "test-key" not in message
    assert SECRET not in message
    assert "wrong" not in message
    assert run.states == []
    assert len(server.requests) <= 4  # one per parallel sender, no retries


def _bad_email(batch):
    return "refused by test" if batch.get("user_identities", {}).get("email") == "bad@x" else None


@pytest.fixture
def picky_server():
    with EventsApiServer(api_key="test-key", api_secret=SECRET, reject_if=_bad_email) as running:
        yield running


def _records_with_one_bad(n=150):
    records = [{"id": i, "email": f"{i}@x"} for i in range(n)]
    records[37]["email"] = "bad@x"
    return [*singer_lines("people", records, ["id"]), json.dumps({"type": "STATE", "value": 1})]


def test_http_400_isolates_the_bad_batch_into_dead_letters(picky_server, config, tmp_path, caplog):
    config["api_url"] = picky_server.url
    config["on_invalid_record"] = "dead_letter"
    with caplog.at_level(logging.INFO):
        run = run_target(config, _records_with_one_bad())
    assert run.error is None
    # The drain's progress line owns up to the refusal, beside the run's totals.
    said = "\n".join(r.getMessage() for r in caplog.records)
    assert (
        "Stream 'people': 150 records sent as 150 batches in 2 requests, 1 record refused" in said
    )
    assert len(picky_server.batches()) == 149
    dead = [json.loads(line) for line in (tmp_path / "dead.jsonl").read_text().splitlines()]
    assert [d["record"]["id"] for d in dead] == [37]
    assert "refused by test" in dead[0]["reason"]
    assert dead[0]["reason"].startswith("stream 'people' record {\"id\":37}: ")
    assert run.target.delivery.delivered == 149
    assert run.states == [1]
    assert SECRET not in (tmp_path / "dead.jsonl").read_text()


def test_a_refused_folded_batch_says_in_each_dead_letter_that_the_rows_went_together(config):
    """One user's rows of a drain go as one batch: refused, all of them are dead
    letters, each saying it was sent folded with the others, not only the row at fault."""

    def plan_bad(batch):
        return (
            "plan BAD refused"
            if (batch.get("user_attributes") or {}).get("plan") == "BAD"
            else None
        )

    rows = [{"id": 1, "email": "a@x", "plan": p} for p in ("free", "BAD")]
    rows.append({"id": 2, "email": "z@x", "plan": "pro"})
    config["on_invalid_record"] = "dead_letter"
    config["mappings"] = {"people": {"kind": "user", "identities": {"email": "email"}}}
    with EventsApiServer(api_key="test-key", api_secret=SECRET, reject_if=plan_bad) as server:
        config["api_url"] = server.url
        run = run_target(config, singer_lines("people", rows, ["id"]))
        accepted = [b["user_identities"]["email"] for b in server.batches()]
    assert run.error is None
    assert accepted == ["z@x"]
    reasons = [d["reason"] for d in dead_letters(config)]
    assert len(reasons) == 2
    assert all(
        r.endswith("plan BAD refused (sent folded with this user's 1 other rows)") for r in reasons
    )


def test_a_folded_update_refused_in_two_pieces_is_one_dead_letter_per_row(config):
    """Over 100 attributes, a user's folded update goes in two batches, each naming
    every row: both refused, each row is still one dead letter, and not delivered."""

    def refuse_user(batch):
        return "user refused" if batch["user_identities"]["email"] == "a@x" else None

    rows = [{"id": n, "email": "a@x", **{f"c{n}_{i}": "v" for i in range(60)}} for n in range(2)]
    rows.append({"id": 9, "email": "z@x", "plan": "pro"})
    config["on_invalid_record"] = "dead_letter"
    config["mappings"] = {"people": {"kind": "user", "identities": {"email": "email"}}}
    with EventsApiServer(api_key="test-key", api_secret=SECRET, reject_if=refuse_user) as server:
        config["api_url"] = server.url
        run = run_target(config, singer_lines("people", rows, ["id"]))
        accepted = [b["user_identities"]["email"] for b in server.batches()]
    assert run.error is None
    assert accepted == ["z@x"]
    assert sorted(d["record"]["id"] for d in dead_letters(config)) == [0, 1]
    assert run.target.delivery.delivered == 1


@pytest.mark.parametrize("stops", ["while reading", "at the end of the input"])
def test_a_run_that_fails_in_process_leaves_no_socket_or_file_open(picky_server, config, stops):
    """An orchestrator that runs the target in-process goes on after a failure."""
    config["api_url"] = picky_server.url
    lines = _records_with_one_bad()
    if stops == "while reading":
        # The bad batch is dead-lettered (the file is open), then a line is not JSON.
        config["on_invalid_record"] = "dead_letter"
        lines = [*lines, "not json"]
    else:
        # No STATE: the only drain is the last, and mParticle refuses a batch of it.
        lines = lines[:-1]
    left_open: list[str] = []
    hook = sys.unraisablehook
    sys.unraisablehook = lambda unraisable: left_open.append(repr(unraisable.exc_value))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", ResourceWarning)
            run = run_target(config, lines)
            assert run.error is not None
            assert picky_server.batches()  # connections were opened before it failed
            # Its sender threads are gone (they held the sockets, thread by thread).
            assert [t.name for t in threading.enumerate() if t.name.startswith("mparticle-")] == []
            del run
            gc.collect()
    finally:
        sys.unraisablehook = hook
    assert left_open == []


def test_dead_letters_are_on_disk_before_the_state_after_them_is_written(
    picky_server, config, tmp_path
):
    config["api_url"] = picky_server.url
    config["on_invalid_record"] = "dead_letter"
    dead = tmp_path / "dead.jsonl"
    target = TargetMParticle(config=config)
    written: list[tuple[object, list[int]]] = []
    write = target.delivery.on_state
    assert write is not None

    def write_and_look(state: dict) -> None:
        on_disk = dead.read_text().splitlines() if dead.exists() else []
        written.append((state, [json.loads(line)["record"]["id"] for line in on_disk]))
        write(state)

    target.delivery.on_state = write_and_look  # which thread settles, this one sees it
    with contextlib.redirect_stdout(io.StringIO()):
        target.listen(io.StringIO("\n".join(_records_with_one_bad()) + "\n"))
    assert written == [(1, [37])]


def test_http_400_with_fail_shows_the_api_message(picky_server, config):
    config["api_url"] = picky_server.url
    run = run_target(config, _records_with_one_bad())
    assert isinstance(run.error, BadRequestError)
    assert "refused by test" in str(run.error)
    assert run.states == []


def test_every_skipped_record_is_named_and_dead_letters_past_twenty_are_summed(
    config, tmp_path, caplog
):
    """Skipped, a record survives only as its log line; dead-lettered, in the file."""
    records = [{"id": i, "name": "nobody"} for i in range(30)]
    config["on_invalid_record"] = "skip"
    with caplog.at_level(logging.WARNING, logger="target-mparticle"):
        assert run_target(config, singer_lines("people", records, ["id"])).error is None
    named = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Invalid record")]
    assert [re.search(r"record (\{[^}]*\})", m).group(1) for m in named] == [
        f'{{"id":{i}}}' for i in range(30)
    ]
    caplog.clear()
    config["on_invalid_record"] = "dead_letter"
    with caplog.at_level(logging.WARNING, logger="target-mparticle"):
        assert run_target(config, singer_lines("people", records, ["id"])).error is None
    messages = [r.getMessage() for r in caplog.records]
    assert sum(m.startswith("Invalid record dead_letter") for m in messages) == 20
    assert f"each is in the dead-letter file {tmp_path / 'dead.jsonl'}" in " ".join(messages)
    assert len((tmp_path / "dead.jsonl").read_text().splitlines()) == 30


def test_a_reason_quoting_a_huge_key_is_cut_in_the_log_and_the_dead_letter(config, tmp_path):
    huge = "k" * 1_000_000
    config["on_invalid_record"] = "dead_letter"
    run = run_target(config, singer_lines("people", [{"id": huge, "name": "x"}], ["id"]))
    assert run.error is None
    (letter,) = [json.loads(line) for line in (tmp_path / "dead.jsonl").read_text().splitlines()]
    assert len(letter["reason"]) < 600
    assert "more characters)" in letter["reason"]
    assert letter["record"]["id"] == huge  # the record itself is kept whole


def test_records_without_identity_skip_dead_letter_or_fail(config, tmp_path):
    records = [{"id": 1, "email": "a@b"}, {"id": 2, "name": "nobody"}]
    lines = [*singer_lines("people", records, ["id"]), json.dumps({"type": "STATE", "value": 2})]
    config["on_invalid_record"] = "skip"
    run = run_target(config, lines)
    assert run.error is None
    assert run.target.delivery.invalid.count == 1
    assert run.states == [2]

    config["on_invalid_record"] = "dead_letter"
    run = run_target(config, lines)
    dead = json.loads((tmp_path / "dead.jsonl").read_text())
    assert dead["record"] == {"id": 2, "name": "nobody"}
    assert "stream 'people' record {\"id\":2}" in dead["reason"]

    config["on_invalid_record"] = "fail"
    run = run_target(config, lines)
    assert isinstance(run.error, InvalidRecordFatalError)
    assert run.states == []


def test_dry_run_needs_no_credentials_and_sends_nothing(server, tmp_path):
    config = {"dry_run": True, "dry_run_path": str(tmp_path / "out" / "dry.jsonl")}
    run = run_target(config, "tap_events.singer")
    assert run.error is None
    assert server.requests == []
    lines = (tmp_path / "out" / "dry.jsonl").read_text().splitlines()
    bodies = [json.loads(line) for line in lines]
    assert all(b["url"].startswith("https://s2s.us1.mparticle.com/v2/bulkevents") for b in bodies)
    batches = [batch for b in bodies for batch in b["body"]]
    assert sum(len(b["events"]) for b in batches) == 505
    assert all(server.validate(b) == [] for b in batches)
    # No STATE: Meltano would save it and the real run after it would send nothing.
    assert run.states == []
    assert run.target._states_held_back == 3


def test_a_dry_run_file_that_cannot_be_opened_is_one_error_naming_the_setting():
    """Past the start-up check (as root, /proc looks writable): no traceback either."""
    path = pathlib.Path("/proc/no-such-dir/dry.jsonl")
    with pytest.raises(DeliveryError, match=r"^dry_run_path '/proc/no-such-dir/dry.jsonl' cannot"):
        DryRunClient(path, "https://s2s.us1.mparticle.com/v2")


def test_a_dry_run_that_writes_no_body_still_replaces_the_last_runs_file(tmp_path, caplog):
    """Iterating on a mapping: stale bodies from the run before would mislead."""
    path = tmp_path / "dry.jsonl"
    config = {"dry_run": True, "dry_run_path": str(path), "on_invalid_record": "skip"}
    assert run_target(config, "tap_events.singer").error is None
    assert path.stat().st_size > 0
    with caplog.at_level(logging.INFO, logger="target-mparticle"):
        # Every record refused (no identity at all): nothing to write this time.
        run = run_target(config, singer_lines("orders", [{"id": 1}, {"id": 2}]))
    assert run.error is None
    assert path.read_bytes() == b""
    assert f"0 records delivered to dry run file {path}" in caplog.text


@pytest.mark.parametrize(
    ("config", "fragment"),
    [
        ({}, "api_key is required unless dry_run"),
        ({"dry_run": True, "api_url": "ftp://x/v2"}, "api_url must be an http(s) URL"),
        ({"dry_run": True, "api_url": "https://x/v1"}, "ending in /v2"),
        ({"dry_run": True, "mappings": {"s": {"kind": "user", "bogus": 1}}}, "bogus"),
        ({"dry_run": True, "max_parallel_requests": 0}, "max_parallel_requests"),
        # Each of these used to be taken, and then acted on in a way nobody asked for.
        (
            {
                "dry_run": True,
                "mappings": {"s": {"identities": {"customer_id": "a", "CustomerId": "b"}}},
            },
            "'customer_id', 'CustomerId' are one identity type (customer_id); name it once",
        ),
        ({"dry_run": True, "data_plan_id": ""}, "data_plan_id must be a non-empty string"),
        (
            {"dry_run": True, "data_plan_id": "p", "data_plan_version": 2**70},
            "data_plan_version must be a whole number from 1 (within 64 bits)",
        ),
        (
            {"dry_run": True, "mappings": {"s": {"data_plan_id": "p", "data_plan_version": 0}}},
            "data_plan_version must be a whole number from 1",
        ),
    ],
)
def test_cross_field_config_errors(config, fragment):
    with pytest.raises(ConfigValidationError) as info:
        TargetMParticle(config=config)
    assert any(fragment in e for e in info.value.errors)


def test_full_sink_drains_keep_each_users_events_in_one_batch(server, config):
    run_target(config, "tap_events.singer")
    whole = {k: len(b["events"]) for k, b in server.accepted.items()}
    with EventsApiServer(api_key="test-key", api_secret=SECRET) as other:
        config["api_url"] = other.url
        config["batch_size_rows"] = 100  # drains every 100 records, mid-batch-line
        run = run_target(config, "tap_events.singer")
        assert run.error is None
        assert {k: len(b["events"]) for k, b in other.accepted.items()} == whole


def _event(name: str, attributes: int = 0) -> dict:
    data = {"event_name": name, "custom_event_type": "other"}
    if attributes:  # each about 4 KB: 40 make an event over the 128,000-byte batch cap
        data["custom_attributes"] = {f"a{i}": "x" * 4_000 for i in range(attributes)}
    return {"event_type": "custom_event", "data": data}


def test_a_batch_split_for_size_is_refused_piece_by_piece_never_twice(config, tmp_path):
    """Two events too big for any batch: each dead-lettered alone; the small one is sent."""
    config["on_invalid_record"] = "dead_letter"
    config["dry_run"] = True
    config["dry_run_path"] = str(tmp_path / "dry.jsonl")
    big = {
        "user_identities": {"email": "a@x"},
        "events": [_event("small"), *(_event(n, 40) for n in ("big1", "big2"))],
    }
    good = {"user_identities": {"email": "b@x"}, "events": [_event("fine")]}
    run = run_target(
        config,
        [*singer_lines("replayed", [big, good], []), json.dumps({"type": "STATE", "value": 1})],
    )
    assert run.error is None
    sent = [
        [e["data"]["event_name"] for e in batch["events"]]
        for line in (tmp_path / "dry.jsonl").read_text().splitlines()
        for batch in json.loads(line)["body"]
    ]
    assert sorted(sent) == [["fine"], ["small"]]
    dead = dead_letters(config)
    assert [[e["data"]["event_name"] for e in d["record"]["events"]] for d in dead] == [
        ["big1"],
        ["big2"],
    ]
    assert all(d["record"]["user_identities"] == {"email": "a@x"} for d in dead)
    assert all(d["reason"].startswith("stream 'replayed' record {\"record\":") for d in dead)
    assert all("over the 128000 cap" in d["reason"] for d in dead)
    assert run.target.delivery.delivered == 1  # the record with refused events is not counted


def test_records_delivered_count_every_sink_a_schema_change_replaced(config, tmp_path):
    config["dry_run"] = True
    config["dry_run_path"] = str(tmp_path / "dry.jsonl")
    before = list(singer_lines("people", [{"id": 1, "email": "a@x"}], ["id"]))
    after = list(singer_lines("people", [{"id": 2, "email": "b@x", "plan": "pro"}], ["id"]))
    run = run_target(config, [*before, *after])
    assert run.error is None
    assert before[0] != after[0]  # a new SCHEMA: a new sink for the second record
    assert run.target.delivery.delivered == 2
