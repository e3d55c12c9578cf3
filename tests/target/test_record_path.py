"""A plain stream's RECORDs skip the SDK's per-record steps that do nothing; all else is as before.

`sdk_hooks.plain_sink` decides; these tests pin that the straight path sends the very
same request bodies as the SDK's path, and that anything configured on the record
stream (stream maps, flattening, record metadata) still goes the SDK's way.
"""

from __future__ import annotations

import contextlib
import io
import json
import time
import typing as t

import pytest
from singer_sdk.exceptions import MissingKeyPropertiesError
from singer_sdk.sinks import Sink as SdkSink

from target_mparticle import sdk_hooks
from target_mparticle.sinks import EventsSink
from target_mparticle.target import TargetMParticle
from tests.support.target import SCHEMA, line_messages, run_target, state_message

if t.TYPE_CHECKING:
    import pathlib


def comparable(text: str) -> str:
    """Dry-run lines with user updates' ids blanked: those are drawn afresh each run."""
    lines = []
    for line in text.splitlines():
        request = json.loads(line)
        for batch in request["body"]:
            if "events" not in batch:
                assert batch.pop("source_request_id")
        lines.append(json.dumps(request, sort_keys=True))
    return "\n".join(lines)


def dry_run(tmp_path: pathlib.Path, name: str, fixture: str, **extra: t.Any) -> tuple[str, t.Any]:
    path = tmp_path / f"{name}.jsonl"
    run = run_target({"dry_run": True, "dry_run_path": str(path), **extra}, fixture)
    assert run.error is None
    return comparable(path.read_text()), run.target


@pytest.mark.parametrize(
    ("fixture", "stream", "field", "extra"),
    [
        ("tap_events.singer", "events", "mpid", {}),
        ("users.singer", "users", "id", {"mappings": {"users": {"kind": "user"}}}),
    ],
)
def test_straight_path_sends_the_bodies_the_sdk_path_sends(tmp_path, fixture, stream, field, extra):
    straight, target = dry_run(tmp_path, "straight", fixture, **extra)
    assert sdk_hooks.plain_sink(target, stream) is not None
    # A stream map that keeps every field as it is: the SDK's path, the same records.
    maps = {stream: {field: field}}
    via_sdk, target = dry_run(tmp_path, "sdk", fixture, **extra, stream_maps=maps)
    assert sdk_hooks.plain_sink(target, stream) is None
    assert straight.count("\n") > 0
    assert via_sdk == straight


def test_a_stream_map_still_applies(tmp_path):
    everything, _ = dry_run(tmp_path, "all", "tap_events.singer")
    firsts, target = dry_run(
        tmp_path,
        "firsts",
        "tap_events.singer",
        stream_maps={"events": {"__filter__": "_sdc_event_index == 0"}},
    )
    assert sdk_hooks.plain_sink(target, "events") is None

    def events(text: str) -> int:
        bodies = [json.loads(line)["body"] for line in text.splitlines()]
        return sum(len(batch["events"]) for body in bodies for batch in body)

    assert 0 < events(firsts) < events(everything)


@pytest.mark.parametrize(
    "extra",
    [
        {"flattening_enabled": True, "flattening_max_depth": 1},
        {"stream_maps": {"events": {"__alias__": "renamed"}}},
        {"stream_maps": {"other": {"__alias__": "renamed"}}},
    ],
    ids=["flattening", "alias", "unrelated-map"],
)
def test_what_is_configured_on_records_goes_the_sdk_way(extra):
    run = run_target({"dry_run": True, **extra}, [SCHEMA])
    assert run.error is None
    plain = extra.get("stream_maps", {}).get("other") is not None
    assert (sdk_hooks.plain_sink(run.target, "events") is not None) is plain


def users_lines(records: list[dict[str, t.Any]], *, strict: bool = False) -> list[str]:
    """A users SCHEMA naming every field of `records` (only id and email when strict)."""
    names = ["id", "email"] if strict else [k for r in records for k in r]
    schema = {"type": "object", "properties": {name: {} for name in names}}
    if strict:
        schema["additionalProperties"] = False
    head = {"type": "SCHEMA", "stream": "users", "schema": schema, "key_properties": ["id"]}
    return [json.dumps(head)] + [
        json.dumps({"type": "RECORD", "stream": "users", "record": r}) for r in records
    ]


def test_the_straight_path_drops_the_sdk_metadata_columns_the_sdk_path_drops(tmp_path):
    """Taps with `add_record_metadata` send `_sdc_*` columns the SCHEMA need not name.

    The SDK removes them before validation, so a schema without them still passes.
    """
    stamped = {
        "_sdc_extracted_at": "2024-05-01T00:00:00+00:00",
        "_sdc_received_at": "2024-05-01T00:00:01+00:00",
        "_sdc_batched_at": "2024-05-01T00:00:02+00:00",
        "_sdc_deleted_at": None,
        "_sdc_sequence": 17,
        "_sdc_table_version": 3,
        "_sdc_sync_started_at": 1714521600000,
    }
    assert set(stamped) == sdk_hooks.SDC_METADATA
    records = [{"id": 1, "email": "a@example.com", **stamped}, {"id": 2, "email": "b@example.com"}]
    config = {"mappings": {"users": {"kind": "user"}}, "dry_run": True}
    bodies = {}
    for name, extra in (("straight", {}), ("sdk", {"stream_maps": {"users": {"email": "email"}}})):
        path = tmp_path / f"{name}.jsonl"
        lines = users_lines(records, strict=True)
        run = run_target({**config, "dry_run_path": str(path), **extra}, lines)
        assert run.error is None
        assert (sdk_hooks.plain_sink(run.target, "users") is not None) is (name == "straight")
        bodies[name] = comparable(path.read_text())
    assert bodies["straight"] == bodies["sdk"]
    assert "a@example.com" in bodies["straight"]
    assert "_sdc_" not in bodies["straight"]


def test_sdc_metadata_is_what_the_sdk_removes():
    record = {"id": 1, "_sdc_source_file": "f", **dict.fromkeys(sdk_hooks.SDC_METADATA, 1)}
    SdkSink._remove_sdc_metadata_from_record(t.cast("t.Any", None), record)
    assert record == {"id": 1, "_sdc_source_file": "f"}


def test_a_record_without_its_key_stops_the_straight_path_as_the_sdk_path(tmp_path):
    records = [{"id": 1, "email": "a@example.com"}, {"email": "b@example.com"}]
    errors = []
    for extra in ({}, {"stream_maps": {"users": {"email": "email"}}}):
        config = {"mappings": {"users": {"kind": "user"}}, "dry_run": True, **extra}
        config["dry_run_path"] = str(tmp_path / "dry.jsonl")
        run = run_target(config, users_lines(records))
        errors.append(run.error)
    assert all(isinstance(e, MissingKeyPropertiesError) for e in errors), errors
    assert str(errors[0]) == str(errors[1])


@pytest.mark.parametrize("hook", ["preprocess_record", "_after_process_record"])
def test_a_sink_class_that_overrides_a_per_record_hook_takes_the_sdk_path(hook):
    """The straight path skips these two hooks, so a sink that has its own must not take it."""
    calls: list[str] = []

    def own(_self: object, *args: t.Any) -> t.Any:  # (record, context) or (context,)
        calls.append(hook)
        return args[0]

    sink_class = type("OwnHookSink", (EventsSink,), {hook: own})
    target_class = type("OwnHookTarget", (TargetMParticle,), {"default_sink_class": sink_class})
    source = io.StringIO("\n".join([SCHEMA, *line_messages(1, 3), state_message(1)]) + "\n")
    target = target_class(config={"dry_run": True})
    with contextlib.redirect_stdout(io.StringIO()):
        target.listen(source)  # type: ignore[arg-type]
    assert sdk_hooks.plain_sink(target, "events") is None
    assert calls == [hook] * 3


def listen_with(target: TargetMParticle, lines: list[str], before: t.Callable[[int], None]) -> None:
    """Feed `lines` to `target`, calling `before(n)` just before line n is read."""

    def source() -> t.Iterator[str]:
        for number, line in enumerate(lines):
            before(number)
            yield line + "\n"

    with contextlib.redirect_stdout(io.StringIO()):
        target.listen(source())  # type: ignore[arg-type]


def users(count: int) -> list[str]:
    return users_lines([{"id": i, "email": f"u{i}@example.com"} for i in range(count)])


def logged_record_counts(caplog: pytest.LogCaptureFixture) -> list[int]:
    points = [
        json.loads(r.getMessage().removeprefix("METRIC: "))
        for r in caplog.records
        if r.getMessage().startswith("METRIC: ")
    ]
    return [p["value"] for p in points if p["metric"] == "record_count"]


@pytest.mark.parametrize("path", ["straight", "sdk"])
def test_every_record_is_in_the_record_count_metric_on_both_paths(tmp_path, caplog, path):
    extra = {} if path == "straight" else {"stream_maps": {"users": {"email": "email"}}}
    config = {"mappings": {"users": {"kind": "user"}}, "dry_run": True, **extra}
    config["dry_run_path"] = str(tmp_path / "dry.jsonl")
    caplog.set_level("INFO", logger="singer_sdk.metrics")
    run = run_target(config, users(2_345))
    assert run.error is None
    assert (sdk_hooks.plain_sink(run.target, "users") is not None) is (path == "straight")
    assert sum(logged_record_counts(caplog)) == 2_345
    # What the SDK's `tally_record_read` keeps, for a sink class that reads it.
    assert run.target.get_sink("users")._total_records_read == 2_345


def test_the_record_count_metric_is_logged_at_a_drain_once_its_interval_has_passed(
    tmp_path, caplog
):
    """The straight path adds to the counter without the clock; a drain asks the clock."""
    target = TargetMParticle(
        config={
            "mappings": {"users": {"kind": "user"}},
            "dry_run": True,
            "dry_run_path": str(tmp_path / "dry.jsonl"),
        }
    )
    lines = users(300)
    lines.insert(201, json.dumps({"type": "STATE", "value": {"at": 200}}))

    def before(number: int) -> None:
        if number == 1:  # the SCHEMA is in: the interval has passed as far as the counter knows
            target.get_sink("users").record_counter_metric.last_log_time = 0

    caplog.set_level("INFO", logger="singer_sdk.metrics")
    listen_with(target, lines, before)
    # One line at the STATE's drain (200 records), one with the rest at the end.
    assert logged_record_counts(caplog) == [200, 100]


def test_the_straight_path_drains_records_older_than_the_sdk_age_limit(tmp_path):
    dry = tmp_path / "dry.jsonl"
    target = TargetMParticle(
        config={"mappings": {"users": {"kind": "user"}}, "dry_run": True, "dry_run_path": str(dry)}
    )
    sent_before_last: list[int] = []
    lines = users(5)

    def before(number: int) -> None:
        if number == 3:  # two records pending; the last full drain was an hour ago
            target._last_full_drain_at = time.time() - 3_600
        if number == len(lines) - 1:
            sent_before_last.append(target.get_sink("users").sent_records)  # type: ignore[attr-defined]

    listen_with(target, lines, before)
    assert sdk_hooks.plain_sink(target, "users") is not None
    # The third record was older than the limit's clock allows: all three sent at once.
    assert sent_before_last == [3]
    assert len(dry.read_text().splitlines()) == 2


def test_a_new_schema_mid_stream_takes_the_next_records_to_the_new_sink(tmp_path):
    """A changed SCHEMA replaces the stream's sink: later RECORDs must not reach the old one.

    The old sink is drained and cleaned up at the next full drain; its stricter
    successor refuses what the old schema let through.
    """
    dry = tmp_path / "dry.jsonl"
    loose = {"type": "object", "properties": {"id": {}, "email": {}}}
    strict = {
        "type": "object",
        "properties": {"id": {}, "email": {}, "plan": {"type": "string"}},
        "additionalProperties": False,
    }

    def schema(body: dict[str, t.Any]) -> str:
        return json.dumps(
            {"type": "SCHEMA", "stream": "users", "schema": body, "key_properties": ["id"]}
        )

    def record(i: int, plan: object) -> str:
        body = {"id": i, "email": f"u{i}@example.com", "plan": plan}
        return json.dumps({"type": "RECORD", "stream": "users", "record": body})

    lines = [
        schema(loose),
        *(record(i, "free") for i in (1, 2, 3)),
        schema(strict),
        *(record(i, "pro") for i in (4, 5, 6)),
        json.dumps({"type": "STATE", "value": {"at": 6}}),
        *(record(i, 7) for i in (7, 8, 9)),  # a plan the strict schema refuses
    ]
    config = {
        "mappings": {"users": {"kind": "user"}},
        "dry_run": True,
        "dry_run_path": str(dry),
        "on_invalid_record": "skip",
    }
    run = run_target(config, lines)
    assert run.error is None
    sent = [
        batch["user_identities"]["email"]
        for line in dry.read_text().splitlines()
        for batch in json.loads(line)["body"]
    ]
    assert sorted(sent) == [f"u{i}@example.com" for i in range(1, 7)]
    assert run.target.delivery.invalid.count == 3


@pytest.mark.parametrize("path", ["straight", "sdk"])
def test_a_field_the_schema_does_not_name_is_warned_about_once(tmp_path, caplog, path):
    extra = {} if path == "straight" else {"stream_maps": {"users": {"email": "email"}}}
    records = [{"id": i, "email": f"u{i}@example.com", "plan": "pro"} for i in range(3)]
    schema = {"type": "object", "properties": {"id": {}, "email": {}}}
    head = {"type": "SCHEMA", "stream": "users", "schema": schema, "key_properties": ["id"]}
    lines = [json.dumps(head)] + [
        json.dumps({"type": "RECORD", "stream": "users", "record": r}) for r in records
    ]
    config = {"mappings": {"users": {"kind": "user"}}, "dry_run": True, **extra}
    config["dry_run_path"] = str(tmp_path / "dry.jsonl")
    caplog.set_level("WARNING")
    run = run_target(config, lines)
    assert run.error is None
    assert (sdk_hooks.plain_sink(run.target, "users") is not None) is (path == "straight")
    warned = [
        r.getMessage() for r in caplog.records if "No schema for record field" in r.getMessage()
    ]
    assert warned == ["No schema for record field 'plan'"]


def test_a_line_held_back_in_a_sink_a_new_schema_retired_is_sent(tmp_path):
    """A line still open when a changed SCHEMA retired its sink was held back at the
    record-age drain; the SDK then forgot the sink, and the next STATE covered the
    line's events, never sent."""
    dry = tmp_path / "dry.jsonl"
    target = TargetMParticle(config={"dry_run": True, "dry_run_path": str(dry)})
    wider = json.loads(SCHEMA)
    wider["schema"]["properties"]["extra"] = {}
    lines = [
        SCHEMA,
        *line_messages(1, 3),
        state_message(1),
        *line_messages(2, 2),  # line 2 is open: no STATE after it yet
        json.dumps(wider),  # retires the sink that holds line 2
        *line_messages(3, 2),
        state_message(3),
    ]
    first_of_line_3 = lines.index(json.dumps(wider)) + 1

    def before(number: int) -> None:
        if number == first_of_line_3:  # the SDK's record-age drain is due
            target._last_full_drain_at = time.time() - 3_600

    listen_with(target, lines, before)
    sent = sorted(
        event["data"]["source_message_id"]
        for request in dry.read_text().splitlines()
        for batch in json.loads(request)["body"]
        for event in batch.get("events", [])
    )
    assert sent == ["m1-0", "m1-1", "m1-2", "m2-0", "m2-1", "m3-0", "m3-1"]
