"""Values that are lists or objects where mParticle expects one word of a list.

Found by mutating tap-mparticle's real output at random: an object as `platform`,
`os` or a product action's `action` raised TypeError (unhashable) deep in the
conversion. Such a value is now simply not one of the allowed words: the field is
dropped (device and application info) or the record refused (product action).
"""

from __future__ import annotations

import json
import typing as t

import pytest

from tests.support.target import event_record, run_target

HOSTILE = [{"a": 1}, ["iOS"], [], {}]


def tap_lines(record: dict[str, t.Any]) -> list[str]:
    schema = {"properties": {k: {} for k in record}}
    return [
        json.dumps({"type": "SCHEMA", "stream": "events", "schema": schema, "key_properties": []}),
        json.dumps({"type": "RECORD", "stream": "events", "record": record}),
        json.dumps({"type": "STATE", "value": {"line": 1}}),  # the line is complete
    ]


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
    schema = {"properties": {k: {} for k in order}}
    lines = [
        json.dumps(
            {"type": "SCHEMA", "stream": "orders", "schema": schema, "key_properties": ["id"]}
        ),
        json.dumps({"type": "RECORD", "stream": "orders", "record": order}),
    ]
    run = run_target(config, lines)
    assert run.error is None
    assert server.batches() == []
    (letter,) = [json.loads(x) for x in (tmp_path / "dead.jsonl").read_text().splitlines()]
    assert "product action" in letter["reason"]
    assert "is not one the Events API accepts" in letter["reason"]
