"""Batch values of the wrong shape are bad input naming the field, never dropped or repr'd.

`user_identities` given as a string, or entries without a type or value, once came
out as `[]` in `batches` and `{}` in `events` with exit 0; an object as an event's
`source_message_id` came out as the text `{'a': 1}`.
"""

from __future__ import annotations

import json
import logging

import pytest

from tap_mparticle.events import NotABatchError, batch_record, explode_batch
from tests.support.tap import assert_valid, run_tap, tap_error

EVENT = {"event_type": "custom_event", "data": {"event_name": "a", "custom_event_type": "other"}}


def event_with(**data: object) -> dict[str, object]:
    return {**EVENT, "data": {**EVENT["data"], **data}}  # type: ignore[dict-item]


def escaped(reason: str) -> str:
    return reason.replace("[", r"\[").replace("]", r"\]").replace("(", r"\(").replace(")", r"\)")


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("source_message_id", {"a": 1}, "event 1 source_message_id is a JSON object, not text"),
        ("session_uuid", ["u"], "event 1 session_uuid is a JSON array, not text"),
        ("event_name", {"n": "a"}, "event 1 event_name is a JSON object, not text"),
        ("custom_attributes", ["a"], "event 1 custom_attributes is a JSON array, not an object"),
        ("custom_attributes", "a=1", "event 1 custom_attributes is a JSON string, not an object"),
    ],
)
def test_an_event_column_of_the_wrong_shape_is_bad_input_for_that_event(field, value, reason):
    batch = {"mpid": 1, "events": [event_with(), event_with(**{field: value}), event_with()]}
    items = list(explode_batch(batch))
    assert [type(item).__name__ for item in items] == ["dict", "NotABatchError", "dict"]
    assert str(items[1]) == reason


def test_event_ids_and_names_written_as_numbers_are_their_text():
    screen = {"event_type": "screen_view", "data": {"screen_name": ["Home"]}}
    batch = {"events": [event_with(source_message_id=1234, session_uuid="s-1", event_name=7)]}
    (record,) = explode_batch(batch)
    assert (record["source_message_id"], record["session_uuid"]) == ("1234", "s-1")
    assert (record["event_name"], record["custom_attributes"]) == ("7", {})
    (error,) = explode_batch({"events": [screen]})
    assert str(error) == "event 0 screen_name is a JSON array, not text"


BAD_IDENTITIES = [
    ("cust-1", "batch field user_identities is a JSON string, not an array"),
    (5, "batch field user_identities is a JSON number, not an array"),
    ([{"identity": "cust-2"}], "batch field user_identities[0] has no identity_type string (None)"),
    (
        [{"identity_type": 7, "identity": "x"}],
        "batch field user_identities[0] has no identity_type string (7)",
    ),
    (
        [{"identity_type": "customer_id"}],
        "batch field user_identities[0] (customer_id) has no identity",
    ),
    (["customer_id"], "batch field user_identities[0] is a JSON string, not an object"),
    (
        [{"identity_type": "email", "identity": {"a": 1}}],
        "batch field user_identities[0].identity is a JSON object, not text",
    ),
    ({"email": ["a@b.c"]}, "batch field user_identities.email is a JSON array, not text"),
    (
        [
            {"identity_type": "email", "identity": "a@b.c"},
            {"identity_type": "email", "identity": "x@y.z"},
        ],
        "batch field user_identities gives email two different values",
    ),
]


@pytest.mark.parametrize(("identities", "reason"), BAD_IDENTITIES)
def test_malformed_identities_are_bad_input_for_both_streams(identities, reason):
    batch = {"mpid": 5, "events": [EVENT], "user_identities": identities}
    with pytest.raises(NotABatchError, match=escaped(reason)):
        batch_record(batch)
    with pytest.raises(NotABatchError, match=escaped(reason)):
        list(explode_batch(batch))


def test_identities_of_either_real_shape_still_read():
    outbound = [
        {"identity_type": "customer_id", "identity": "c1", "timestamp_unixtime_ms": 1},
        {"identity_type": "other", "identity": 42},
        {"identity_type": "email", "identity": None},
        {"identity_type": "customer_id", "identity": "c1"},  # repeated, same value
    ]
    inbound = {"customer_id": "c1", "other": 42, "email": None}
    for identities in (outbound, inbound, [], {}):
        batch = {"events": [EVENT], "user_identities": identities}
        (record,) = explode_batch(batch)
        assert record["user_identities"] == (inbound if identities else {})
        assert batch_record(batch)["user_identities"] is not None


def write_drop(tmp_path) -> str:
    """The reviewer's case: good batch, identities as a string, good batch."""
    lines = [
        {
            "events": [EVENT],
            "mpid": 4,
            "user_identities": [{"identity_type": "email", "identity": "e"}],
        },
        {"events": [EVENT], "mpid": 5, "user_identities": "cust-1"},
        {"events": [EVENT], "mpid": 6},
    ]
    path = tmp_path / "App_20240501000000000000_00001.txt"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return str(path.resolve())


@pytest.mark.parametrize("stream", ["events", "batches"])
def test_fail_stops_naming_file_line_and_field(tmp_path, stream):
    location = write_drop(tmp_path)
    config = {"bucket_url": str(tmp_path), "on_bad_record": "fail"}
    try:
        run_tap(config, streams={stream})
    except Exception as exc:  # noqa: BLE001 - the message is what is checked
        message = str(exc)
    else:
        pytest.fail("the tap finished; an error was expected")
    expected = f"{location}:2: batch field user_identities is a JSON string, not an array"
    assert expected in message
    assert expected in tap_error(config)  # the default selection stops the same way


@pytest.mark.parametrize("stream", ["events", "batches"])
def test_skip_warns_counts_and_keeps_the_other_lines(tmp_path, stream, caplog):
    location = write_drop(tmp_path)
    with caplog.at_level(logging.WARNING):
        out = run_tap({"bucket_url": str(tmp_path), "on_bad_record": "skip"}, streams={stream})
    assert [r["mpid"] for r in assert_valid(out, stream)] == [4, 6]
    log = "\n".join(caplog.messages)
    assert f"{location}:2: batch field user_identities is a JSON string" in log
    assert f"{stream}: skipped 1 bad items" in log


def test_an_empty_object_is_not_a_batch():
    # The README calls an object with no batch field bad input; `{}` is one (only
    # mParticle's bucket verification file holds it, and that file is skipped by name).
    for parse in (batch_record, lambda batch: list(explode_batch(batch))):
        with pytest.raises(NotABatchError, match=escaped("not an mParticle batch (an empty JSON")):
            parse({})


@pytest.mark.parametrize("stream", ["events", "batches"])
def test_an_empty_object_line_fails_or_is_skipped_and_counted(tmp_path, stream, caplog):
    path = tmp_path / "App_20240501000000000000_00002.txt"
    lines = [{"events": [EVENT], "mpid": 4}, {}, {"events": [EVENT], "mpid": 6}]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    expected = f"{path.resolve()}:2: not an mParticle batch (an empty JSON object)"
    with pytest.raises(Exception, match=escaped(expected)):
        run_tap({"bucket_url": str(tmp_path)}, streams={stream})
    with caplog.at_level(logging.WARNING):
        out = run_tap({"bucket_url": str(tmp_path), "on_bad_record": "skip"}, streams={stream})
    assert [r["mpid"] for r in assert_valid(out, stream)] == [4, 6]
    log = "\n".join(caplog.messages)
    assert expected in log
    assert f"{stream}: skipped 1 bad items" in log
