"""A mapped record's shell skips the check once its shape is known valid, and only then.

`inbound.CertainShapes` keys a shell on its environment and field names; a shape is
kept only when its values' types alone make it valid (`certain_by_types`). These
tests pin what that judgement says for each kind of field, and run hostile values
through a warmed converter: it must build exactly what a fresh one (which checks
every shell) builds, and every shell it builds must pass the full validator.
"""

from __future__ import annotations

import collections
import copy
import typing as t

import pytest

from mparticle_facts.identities import DEVICE_IDENTITIES
from target_mparticle import inbound, schema_rules
from target_mparticle.clean import VALIDATED_ENTRIES
from target_mparticle.convert import BatchDefaults, Converter
from target_mparticle.inbound import CertainShapes, InvalidRecordError, certain_by_types
from target_mparticle.mapping import StreamMapping
from target_mparticle.values import Tally
from tests.target.test_fastcheck import HOSTILE, UUID, full

MAPPING = {
    "kind": "user",
    "identities": {
        "email": "email",
        "customer_id": "cid",
        "mpid": "mp",
        "push_token": "push",
        "ios_advertising_id": "idfa",
    },
}
BASE = {"id": 1, "email": "a@example.com", "cid": "c1", "plan": "pro", "score": 3}
SHELL = {
    "environment": "development",
    "user_identities": {"email": "a@example.com", "customer_id": "7"},
    "mpid": 1000,
    "user_attributes": {"plan": "pro", "tags": ["a", "b"]},
}


@pytest.mark.parametrize(
    ("change", "certain"),
    [
        ({}, True),
        ({"device_info": {"push_token": "t"}}, True),  # any string is a push token
        ({"device_info": {"ios_advertising_id": UUID}}, False),  # a pattern decides
        ({"device_info": {"platform": "iOS"}}, False),  # an enum decides
        ({"user_identities": {"not_an_identity": "x"}}, False),
        ({"user_identities": {"email": ["a"]}}, False),
        ({"mpid": True}, False),
        ({"mpid": "7"}, False),
        ({"deleted_user_attributes": ["old"]}, False),  # each name is checked
        ({"context": {"data_plan": {"plan_id": "p"}}}, False),
        ({"new_field": 1}, False),
    ],
)
def test_a_shell_is_certain_by_types_only_where_no_value_can_change_the_verdict(change, certain):
    shell = {**SHELL, **change}
    assert certain_by_types(shell) is certain
    if certain:  # and then the full validator takes it, as every shell of its shape
        assert full(inbound._shell_check(), shell)


def test_entries_the_builder_validated_are_certain_as_text_only_when_named():
    shell = {**SHELL, "device_info": {"platform": "iOS"}, "application_info": {"os": "IOS"}}
    assert certain_by_types(shell, VALIDATED_ENTRIES)
    assert not certain_by_types(shell)  # the enums decide, unless the builder checked
    assert not certain_by_types({**shell, "device_info": {"platform": 1}}, VALIDATED_ENTRIES)


def test_a_shape_that_is_not_certain_is_fitted_every_time():
    shapes = CertainShapes()
    tally: collections.Counter[str] = collections.Counter()
    shape = ("development", ("environment", "user_identities", "mpid"))
    for _ in range(2):
        batch = {"environment": "development", "user_identities": {"email": "a"}, "mpid": "x"}
        shapes.fit(batch, shape, tally)
        assert batch == {"environment": "development", "user_identities": {"email": "a"}}
    assert tally["batch fields that could not be valid dropped (mpid)"] == 2


def converter() -> Converter:
    parsed = StreamMapping.from_config(MAPPING, explicit=True)
    return Converter("users", ["id"], parsed, BatchDefaults(), Tally())


def outcome(conv: Converter, record: dict[str, t.Any]) -> tuple[str, object]:
    try:
        return "built", conv.convert(copy.deepcopy(record)).batch
    except InvalidRecordError as exc:
        return "refused", str(exc)


def test_a_warmed_converter_builds_what_a_fresh_one_builds_and_all_of_it_is_valid():
    warmed = converter()
    check = inbound._shell_check()
    values = (*HOSTILE, "v" * 5000, "\u0000\ud7ff", 10**30, -0.0)
    fields = ("email", "cid", "mp", "push", "idfa", "plan")
    built = 0
    for field in fields:
        for value in values:
            record = {**BASE, field: value}
            got = outcome(warmed, record)
            assert got == outcome(converter(), record), (field, value)
            if got[0] == "built":
                built += 1
                assert full(check, got[1]), (field, value)
    assert built > len(fields) * len(values) / 2
    # The usual shapes were taken as certain: the saving is there, not only the safety.
    assert len(warmed._shapes._known) >= 2


def tap_event(**batch: object) -> dict[str, t.Any]:
    """A tap-mparticle events record, its batch's fields given."""
    data = {"event_name": "Play", "custom_event_type": "media", "timestamp_unixtime_ms": "1"}
    return {"event_type": "custom_event", "data": data, "mpid": 7, **batch}


def test_a_warmed_tap_event_converter_builds_what_fresh_ones_build_all_valid():
    """Every device and application field, with every enum member and hostile value."""
    warmed = Converter("events", [], StreamMapping(), BatchDefaults(), Tally())
    check = inbound._shell_check()
    enums = {v for values in schema_rules.DEVICE_INFO_ENUMS.values() for v in values}
    values = (*HOSTILE, *sorted(enums), *sorted(schema_rules.APPLICATION_OS_VALUES), 10**30)
    usual = {"platform": "iOS", "ios_idfv": UUID, "screen_height": 800}
    records = [
        tap_event(
            device_info={**usual, field: value},
            application_info={"application_name": "A", "os": "IOS"},
            user_identities={"email": "a@example.com"},
        )
        for field in sorted(schema_rules.DEVICE_INFO_FIELDS)
        for value in values
    ]
    records += [
        tap_event(device_info=usual, application_info={"application_name": "A", field: value})
        for field in sorted(schema_rules.APPLICATION_INFO_FIELDS)
        for value in values
    ]
    # Device identities also arrive among the user identities (`ios_idfa`).
    records += [
        tap_event(device_info={"platform": "iOS"}, user_identities={"email": "a@x", kind: value})
        for kind in sorted(DEVICE_IDENTITIES)
        for value in (UUID, *values)
    ]
    for record in records:
        got = outcome(warmed, record)
        fresh = Converter("events", [], StreamMapping(), BatchDefaults(), Tally())
        assert got == outcome(fresh, record), record
        if got[0] == "built":
            assert full(check, got[1]), record
    assert len(warmed._shapes._known) >= 2
