"""Values that are lists or objects where mParticle expects one word of a list.

Found by mutating tap-mparticle's real output at random: an object as `platform`,
`os`, a product action's `action` or an audience row's `action` raised TypeError
(unhashable) deep in the conversion. Such a value is now simply not one of the
allowed words: the field is dropped (device and application info) or the record
refused (product action, audience row).
"""

from __future__ import annotations

import json
import pathlib
import typing as t

import pytest

from tests.support.target import event_record, run_target, singer_lines

HOSTILE = [{"a": 1}, ["iOS"], [], {}]


def tap_lines(record: dict[str, t.Any]) -> list[str]:
    """One tap-shaped event, then the STATE that says its line is complete."""
    return [*singer_lines("events", [record]), json.dumps({"type": "STATE", "value": {"line": 1}})]


@pytest.mark.parametrize("value", HOSTILE, ids=repr)
def test_device_platform_and_application_os_that_are_not_words_are_dropped(server, config, value):
    record = {
        **event_record(1, 0),
        "device_info": {"platform": value, "att_authorization_status": value, "brand": "x"},
        "application_info": {"os": value, "application_name": "App"},
    }
    run = run_target(config, tap_lines(record))
    assert run.error is None
    (batch,) = server.batches()
    assert batch["device_info"] == {"brand": "x"}
    assert batch["application_info"] == {"application_name": "App"}


@pytest.mark.parametrize("value", HOSTILE, ids=repr)
def test_a_product_action_that_is_not_a_word_refuses_the_record(server, config, tmp_path, value):
    config["mappings"] = {"orders": {"kind": "commerce_event", "custom_event_type": "purchase"}}
    config["on_invalid_record"] = "dead_letter"
    order = {"id": 1, "customer_id": "c1", "product_action": {"action": value}}
    run = run_target(config, list(singer_lines("orders", [order], ["id"])))
    assert run.error is None
    assert server.batches() == []
    (letter,) = [json.loads(x) for x in (tmp_path / "dead.jsonl").read_text().splitlines()]
    assert "product action" in letter["reason"]
    assert "is not one the Events API accepts" in letter["reason"]


@pytest.mark.parametrize("stream", ["audience_memberships", "audience_user_attributes"])
@pytest.mark.parametrize("value", [*HOSTILE, "bogus"], ids=repr)
def test_an_audience_row_whose_action_is_not_a_word_is_no_audience_row(
    server, config, stream, value
):
    """Like an unknown word, it is not read as an audience change: handled once, no crash."""
    config["on_invalid_record"] = "dead_letter"
    row = {
        "audience_id": 8754,
        "mpid": 77,
        "identity_type": "customer_id",
        "identity_value": "c1",
        "key": "tier",
        "value": "gold",
        "action": value,
    }
    run = run_target(config, list(singer_lines(stream, [row])))
    assert run.error is None
    dead = pathlib.Path(config["dead_letter_path"])
    letters = dead.read_text().splitlines() if dead.exists() else []
    assert len(server.batches()) + len(letters) == 1
    for batch in server.batches():  # sent as any record of an unmapped stream is
        assert batch["mpid"] == 77
        assert "audience" not in batch.get("user_attributes", {})
