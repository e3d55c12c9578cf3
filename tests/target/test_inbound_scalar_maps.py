"""Maps of scalars are left out of the compiled check: valid by construction, same outcome.

`inbound.fit_event` skips `custom_attributes` / `custom_flags` in the compiled check
when every value is a scalar, which the schema's `String` definition always accepts.
These tests pin that the schema really says so, and that the outcome (kept, dropped,
refused) is the one the full check gives.
"""

from __future__ import annotations

import collections
import copy

import fastjsonschema
import pytest

from target_mparticle import inbound
from target_mparticle.inbound import InvalidRecordError, fit_event, scalar_map_fields


def custom_event(**data: object) -> dict:
    return {
        "event_type": "custom_event",
        "data": {"event_name": "Play", "custom_event_type": "media", **data},
    }


def full_check(event: dict) -> bool:
    try:
        inbound._event_check(event["event_type"])(event)
    except fastjsonschema.JsonSchemaValueException:
        return False
    return True


def test_the_schema_names_the_scalar_maps_of_each_event_type():
    assert scalar_map_fields("custom_event") == {"custom_attributes", "custom_flags"}
    assert scalar_map_fields("screen_view") == {"custom_attributes", "custom_flags"}
    assert scalar_map_fields("session_start") == {"custom_attributes"}


@pytest.mark.parametrize(
    "attributes",
    [
        {"title": "Song", "n": 1, "ratio": 0.5, "vip": True, "gone": None},
        {},
        {"nested": {"x": "y"}},
        {"list": ["a"]},
    ],
    ids=["scalars", "empty", "nested", "list"],
)
def test_fitting_keeps_exactly_what_the_full_check_accepts(attributes):
    event = custom_event(custom_attributes=attributes, custom_flags=dict(attributes))
    valid = full_check(copy.deepcopy(event))
    tally: collections.Counter[str] = collections.Counter()
    fitted = fit_event(event, tally)
    assert ("custom_attributes" in fitted["data"]) is valid
    assert ("custom_flags" in fitted["data"]) is valid
    assert full_check(fitted)
    assert bool(tally) is not valid


def test_a_bad_required_field_is_still_refused_beside_a_scalar_map():
    event = custom_event(custom_attributes={"a": "b"}, custom_event_type="not-a-type")
    with pytest.raises(InvalidRecordError, match=r"custom_event_type|not one of"):
        fit_event(event, collections.Counter())


def test_a_differently_worded_schema_turns_the_shortcut_off(monkeypatch):
    changed = copy.deepcopy(inbound.schema())
    changed["definitions"]["String"] = {"type": ["string", "null"]}
    monkeypatch.setattr(inbound, "schema", lambda: changed)
    inbound.scalar_map_fields.cache_clear()
    try:
        assert scalar_map_fields("custom_event") == frozenset()
    finally:
        inbound.scalar_map_fields.cache_clear()
