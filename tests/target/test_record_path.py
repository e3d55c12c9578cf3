"""A plain stream's RECORDs skip the SDK's per-record steps that do nothing; all else is as before.

`sdk_hooks.plain_sink` decides; these tests pin that the straight path sends the very
same request bodies as the SDK's path, and that anything configured on the record
stream (stream maps, flattening, record metadata) still goes the SDK's way.
"""

from __future__ import annotations

import json
import typing as t

import pytest

from target_mparticle import sdk_hooks
from tests.support.target import SCHEMA, run_target

if t.TYPE_CHECKING:
    import pathlib


def dry_run(tmp_path: pathlib.Path, name: str, fixture: str, **extra: t.Any) -> tuple[str, t.Any]:
    path = tmp_path / f"{name}.jsonl"
    run = run_target({"dry_run": True, "dry_run_path": str(path), **extra}, fixture)
    assert run.error is None
    return path.read_text(), run.target


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
    assert straight.count("\n") > 1
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
