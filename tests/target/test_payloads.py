from __future__ import annotations

import datetime as dt
import decimal
import hashlib
import json
import random
import uuid

import msgspec
import pytest
from singer_sdk.exceptions import ConfigValidationError

from target_mparticle.assemble import THIRTY_DAYS_MS, assemble, trailing_group
from target_mparticle.clean import clean_event, clean_identities
from target_mparticle.client import BULK_PATH, HISTORICAL_PATH, pack
from target_mparticle.coerce import UNREADABLE
from target_mparticle.convert import BatchDefaults, Converter, digest_id
from target_mparticle.inbound import InvalidRecordError, fit_shell
from target_mparticle.mapped import PRODUCTS_DROPPED
from target_mparticle.mapping import StreamMapping, mapping_errors
from target_mparticle.schema_rules import MAX_REQUEST_BYTES
from target_mparticle.values import (
    COLLISIONS,
    Tally,
    event_attributes,
    names_within_limits,
    scalar_user_attributes,
    to_epoch_ms,
    user_attributes,
)
from tests.support.eventsapi import load_validator
from tests.support.files import dead_letters
from tests.support.target import dry_run_dead_letters, run_target, singer_lines

NOW = 1_763_000_000_000
validate = load_validator()


def converter(mapping: dict | None = None, stream: str = "s", key=("id",)) -> Converter:
    parsed = StreamMapping.from_config(mapping or {}, explicit=mapping is not None)
    return Converter(stream, list(key), parsed, BatchDefaults(), Tally())


def batches_of(items, mode="auto", now=NOW):
    prepared, rejected = assemble(items, mode, now)
    assert not rejected
    return [json.loads(p.body) for p in prepared], prepared


# Values a warehouse row holds, and the edges of what the straight path takes.
_ROW_VALUES = (
    "Oslo", "", "é", "x" * 4096, "x" * 4097, 0, -7, 2**63, 2**70, True, False, 1.5,
    decimal.Decimal("1.10"), None, {"k": 1, "n": None}, [1, None, "a"], dt.date(2024, 5, 1),
)  # fmt: skip


def test_scalar_user_attributes_give_exactly_what_the_general_path_gives():
    pick = random.Random(7)  # noqa: S311 - a fixed, reproducible sample
    attributes = tuple((f"a{n}", f"f{n}") for n in range(6))
    straight = 0
    for _ in range(3000):
        row = {f"f{n}": pick.choice(_ROW_VALUES) for n in range(6) if pick.random() < 0.9}
        tally = Tally()
        general = user_attributes([(n, row.get(f)) for n, f in attributes], tally)
        fast = scalar_user_attributes(row, attributes)
        values = [v for v in row.values() if v is not None]
        plain = all(type(v) in (str, int) and len(str(v)) <= 4096 for v in values)
        # Taken straight exactly when every value is text or an integer within limits.
        assert (fast is not None) is plain, row
        if fast is not None:
            straight += 1
            assert fast == general
            assert list(fast) == list(general)  # same order, so the same bytes
            assert not tally
    assert 0 < straight < 3000


def test_attribute_names_past_the_limits_take_the_general_path():
    assert names_within_limits(["a" * 256] * 100)
    assert not names_within_limits(["a" * 257])
    assert not names_within_limits([f"a{n}" for n in range(101)])
    conv = converter({"kind": "user", "identities": {"email": "email"}})
    long_name = {"email": "a@b", "n" * 300: "v"}
    many = {"email": "a@b", **{f"c{n}": n for n in range(120)}}
    expected = Tally()
    for row in (long_name, many, {"email": "a@b", "plan": "pro", "score": 3}):
        pairs = [(k, v) for k, v in row.items() if k != "email"]
        assert conv.convert(dict(row)).batch["user_attributes"] == user_attributes(pairs, expected)
    # The general path's repairs, counted as before: one name cut, 20 attributes dropped.
    assert conv.tally == expected
    assert expected == {
        "attribute names truncated to 256": 1,
        "user attributes over the 100 per batch limit dropped": 20,
    }


def test_values_are_stringified_flattened_and_nulls_dropped():
    tally = Tally()
    attrs = event_attributes(
        [
            ("n", 3),
            ("f", 2.5),
            ("d", decimal.Decimal("1.10")),
            ("b", True),
            ("none", None),
            ("nested", {"a": {"b": 1}, "c": None}),
            ("when", dt.datetime(2025, 1, 2, tzinfo=dt.timezone.utc)),
            ("list", [1, "x"]),
        ],
        tally,
    )
    assert attrs == {
        "n": "3",
        "f": "2.5",
        "d": "1.10",
        "b": "true",
        "nested.a.b": "1",
        "when": "2025-01-02T00:00:00+00:00",
        "list": '[1,"x"]',
    }


def test_attribute_names_that_clash_once_flattened_or_cut_are_counted():
    """`a.b` beside `a: {b: ...}`, or two long names alike in their first 256
    characters: one value is lost, and the count says so."""
    tally = Tally()
    flat = event_attributes([("a.b", "flat"), ("a", {"b": "nested", "c": "x"})], tally)
    assert flat == {"a.b": "nested", "a.c": "x"}
    assert tally[COLLISIONS] == 1
    long = "n" * 256
    users = user_attributes([(long + "1", "one"), (long + "2", "two"), ("plan", "gold")], tally)
    assert users == {long: "two", "plan": "gold"}
    assert tally[COLLISIONS] == 2
    assert tally["attribute names truncated to 256"] == 2


def test_user_attribute_lists_stay_lists():
    assert user_attributes([("tags", ["a", None, 2])], Tally()) == {"tags": ["a", "2"]}


def test_limits_truncate_and_count():
    tally = Tally()
    long_name = "n" * 300
    attrs = event_attributes([(long_name, "v" * 5000)] + [(f"k{i}", i) for i in range(120)], tally)
    assert len(attrs) == 100
    assert "n" * 256 in attrs
    assert len(attrs["n" * 256]) == 4096
    assert tally["attribute names truncated to 256"] == 1
    assert tally["values truncated to 4096"] == 1
    assert tally["event attributes over the 100 per event limit dropped"] == 21


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2025-11-13T00:00:00Z", 1_762_992_000_000),
        ("2025-11-13T01:00:00+01:00", 1_762_992_000_000),
        (1_762_992_000, 1_762_992_000_000),
        (1_762_992_000_000, 1_762_992_000_000),
        ("1762992000", 1_762_992_000_000),
        (decimal.Decimal("1762992000.5"), 1_762_992_000_500),
        (dt.datetime(2025, 11, 13), 1_762_992_000_000),  # noqa: DTZ001 - naive means UTC
        ("not a time", None),
        (True, None),
        # A warehouse's date key, ISO 8601's basic form: a date, not seconds in 1970.
        ("20251113", 1_762_992_000_000),
        (" 20240229 ", 1_709_164_800_000),
        ("20241301", 20_241_301_000),  # no such date: still a number (seconds)
    ],
)
def test_timestamps_in_every_documented_form(value, expected):
    assert to_epoch_ms(value) == expected


def test_mapped_user_record_becomes_identity_and_attributes_only():
    conv = converter(
        {
            "kind": "user",
            "identities": {"customer_id": "cid", "email": "mail"},
            "user_attributes": {"$FirstName": "first", "plan": "plan"},
        }
    )
    item = conv.convert({"id": 1, "cid": 7, "mail": "a@b.c", "first": "Ada", "plan": "pro", "x": 1})
    [batch], _ = batches_of([item])
    assert batch["user_identities"] == {"customer_id": "7", "email": "a@b.c"}
    assert batch["user_attributes"] == {"$FirstName": "Ada", "plan": "pro"}
    assert "events" not in batch
    assert validate(batch) == []


def test_mapped_event_defaults_and_deterministic_ids():
    conv = converter({"event_name_field": "what", "timestamp_field": "at"})
    record = {"id": 5, "customer_id": "c5", "what": "Signup", "at": "2025-11-13T00:00:00Z", "v": 1}
    first = conv.convert(dict(record))
    again = converter({"event_name_field": "what", "timestamp_field": "at"}).convert(dict(record))
    assert first.request_id == again.request_id
    [batch], _ = batches_of([first])
    event = batch["events"][0]
    assert event["data"]["event_name"] == "Signup"
    assert event["data"]["custom_event_type"] == "other"
    assert event["data"]["timestamp_unixtime_ms"] == 1_762_992_000_000
    assert event["data"]["custom_attributes"] == {"id": "5", "v": "1"}
    assert batch["user_identities"] == {"customer_id": "c5"}
    assert validate(batch) == []
    changed = conv.convert({**record, "v": 2})
    assert changed.request_id != first.request_id


def _request_ids(environment: str) -> list[str]:
    """The source_request_id of each record shape's batch, under `environment`."""
    defaults = BatchDefaults(environment=environment)

    def conv(mapping, stream="s", key=("id",)):
        parsed = StreamMapping.from_config(mapping or {}, explicit=mapping is not None)
        return Converter(stream, list(key), parsed, defaults, Tally())

    items = [
        conv({"event_name_field": "what"}).convert({"id": 2, "customer_id": "c", "what": "W"}),
        conv(None, "audience_memberships").convert(
            {"audience_id": 7, "action": "add", "identity_type": "email", "identity_value": "x"}
        ),
        conv(None, "events", ()).convert(_tap_event(1, 0)),
        conv(None, "batches", ()).convert({"user_identities": {"email": "d@e.f"}, "mpid": 3}),
    ]
    return [b["source_request_id"] for item in items for b in batches_of([item])[0]]


def test_request_ids_differ_by_environment_and_repeat_within_one():
    """mParticle keeps these ids per API key, whatever the environment: the rows a
    development run sent must not be dropped as copies when sent to production."""
    development = _request_ids("development")
    assert _request_ids("development") == development
    production = _request_ids("production")
    assert len(production) == len(development) == 4
    assert not set(production) & set(development)


def test_request_ids_change_with_the_mapping_that_built_the_batch():
    """A mapping fixed and re-sent within mParticle's 30 to 60 days must not be dropped
    as a copy of the batch it replaces; the same mapping again gives the same ids."""
    row = {"id": 1, "email": "a@b.c", "plan": "gold"}
    mapping = {"event_name": "Signed up", "identities": {"email": "email"}}

    def event_id(mapping, defaults=None):
        parsed = StreamMapping.from_config(mapping, explicit=True)
        conv = Converter("signups", ["id"], parsed, defaults or BatchDefaults(), Tally())
        return conv.convert(dict(row)).request_id

    first = event_id(mapping)
    assert event_id(dict(mapping)) == first
    assert event_id({**mapping, "event_attributes": ["plan"]}) != first
    planned = BatchDefaults(data_plan_id="profile", data_plan_version=2)
    assert event_id(mapping, planned) != first


def test_a_user_update_back_to_an_earlier_value_gets_an_id_of_its_own():
    """Plan free, pro, free: with an id from content the third would repeat the first's
    and mParticle would drop it, leaving the profile on pro."""
    conv = converter({"kind": "user", "identities": {"email": "email"}}, stream="users")
    rows = [{"id": 1, "email": "a@b.c", "plan": plan} for plan in ("free", "pro", "free")]
    items = [conv.convert(dict(row)) for row in rows]
    ids = [item.request_id for item in items]
    assert len(set(ids)) == 3
    assert all(uuid.UUID(i).version == 4 for i in ids)  # UUID-shaped, like every other id
    sent = [b for item in items for b in batches_of([item])[0]]
    assert [b["source_request_id"] for b in sent] == ids
    assert [b["user_attributes"]["plan"] for b in sent] == ["free", "pro", "free"]
    # Another run (another converter) never repeats them.
    other = converter({"kind": "user", "identities": {"email": "email"}}, stream="users")
    assert other.convert(dict(rows[0])).request_id not in ids


def test_screen_view_and_commerce_mappings_validate():
    screen = converter({"kind": "screen_view", "event_name": "Home"}).convert(
        {"id": 1, "email": "a@b.c"}
    )
    commerce = converter(
        {"kind": "commerce_event", "custom_event_type": "purchase", "event_name": "Order"}
    ).convert(
        {
            "id": 2,
            "customer_id": "c",
            "transaction_id": 99,
            "total_amount": "10.5",
            "currency_code": "EUR",
            "products": [{"id": 1, "name": "Mug", "price": "5.25", "quantity": 2}],
        }
    )
    batches, _ = batches_of([screen, commerce])
    assert batches[0]["events"][0]["data"]["screen_name"] == "Home"
    action = batches[1]["events"][0]["data"]["product_action"]
    assert action["action"] == "purchase"
    assert action["transaction_id"] == "99"
    assert action["total_amount"] == 10.5
    assert action["products"][0]["id"] == "1"
    assert all(validate(b) == [] for b in batches)


def test_a_product_position_from_a_text_column_keeps_the_product_action():
    """`position` is an integer in a product but text elsewhere: typed by name alone,
    a "1" made the whole product_action invalid, and it was dropped."""
    conv = converter({"kind": "commerce_event", "custom_event_type": "purchase"})
    products = [{"id": "p1", "price": 99.5, "quantity": 1, "position": "1"}]
    item = conv.convert({"id": 1, "customer_id": "c", "total_amount": 99.5, "products": products})
    [batch], _ = batches_of([item])
    action = batch["events"][0]["data"]["product_action"]
    assert action["total_amount"] == 99.5
    assert action["products"][0]["position"] == 1
    assert validate(batch) == []
    bad = conv.convert({"id": 2, "customer_id": "c", "products": [{"id": "p", "position": 1.5}]})
    [batch], _ = batches_of([bad])
    assert "position" not in batch["events"][0]["data"]["product_action"]["products"][0]
    assert conv.tally["product positions that are not integers dropped"] == 1


def test_values_their_field_cannot_take_are_dropped_and_counted():
    """`"99,50"` for a total, `"n/a"` for a price: dropped as the schema would refuse
    them, never silently."""
    conv = converter({"kind": "commerce_event", "custom_event_type": "purchase"})
    products = [{"id": "p1", "price": "n/a", "quantity": 1}]
    item = conv.convert(
        {"id": 1, "customer_id": "c", "total_amount": "99,50", "products": products}
    )
    [batch], _ = batches_of([item])
    action = batch["events"][0]["data"]["product_action"]
    assert "total_amount" not in action
    assert "price" not in action["products"][0]
    assert validate(batch) == []
    assert conv.tally[UNREADABLE] == 2
    tally = Tally()
    data = {"event_name": "E", "custom_event_type": "other", "timestamp_unixtime_ms": 5}
    event = clean_event("custom_event", {**data, "session_uuid": {"x": 1}}, tally)
    assert "session_uuid" not in event["data"]
    assert tally[UNREADABLE] == 1


def test_a_deleted_attribute_is_named_as_it_was_set_and_unreadable_consent_times_counted():
    long = "n" * 300
    mapping = {
        "kind": "user",
        "identities": {"email": "email"},
        "user_attributes": {long: "v"},
        "null_user_attributes": "delete",
        "timestamp_field": "at",
        "consent": {"gdpr": {"marketing": "mkt"}},
    }
    conv = converter(mapping)
    given = conv.convert({"id": 1, "email": "a@b.c", "v": "x", "at": 1, "mkt": True})
    gone = conv.convert({"id": 1, "email": "a@b.c", "v": None, "at": "yesterday", "mkt": True})
    assert list(given.batch["user_attributes"]) == [long[:256]]
    assert gone.batch["deleted_user_attributes"] == [long[:256]]
    assert conv.tally["consent times taken as now: 'at' held no readable time"] == 1


def test_a_blank_identity_is_none_and_a_missing_time_is_named_missing():
    conv = converter({"identities": {"customer_id": "cid", "email": "mail"}})
    item = conv.convert({"id": 1, "cid": "   ", "mail": "a@b.c"})
    assert item.batch["user_identities"] == {"email": "a@b.c"}
    with pytest.raises(InvalidRecordError, match="has no identity"):
        conv.convert({"id": 2, "cid": " \t", "mail": ""})
    assert clean_identities({"customer_id": "  ", "email": "a@b.c"}, Tally()).user == {
        "email": "a@b.c"
    }
    timed = converter({"timestamp_field": "at", "identities": {"email": "mail"}})
    with pytest.raises(InvalidRecordError, match="timestamp field 'at' is missing or null"):
        timed.convert({"id": 3, "mail": "a@b.c"})
    with pytest.raises(InvalidRecordError, match="timestamp field 'at' holds 'soon', no usable"):
        timed.convert({"id": 4, "mail": "a@b.c", "at": "soon"})


def test_a_purchase_with_no_total_or_products_is_sent_and_counted():
    """Columns named otherwise (`total`, `items`) give a valid but empty purchase."""
    conv = converter({"kind": "commerce_event", "custom_event_type": "purchase"})
    item = conv.convert({"id": 3, "customer_id": "c", "total": "9.99", "items": [{"id": 1}]})
    [batch], _ = batches_of([item])
    assert batch["events"][0]["data"]["product_action"] == {"action": "purchase"}
    assert validate(batch) == []
    (counted,) = [k for k in conv.tally if k.startswith("purchases sent with no total_amount")]
    assert conv.tally[counted] == 1
    conv.convert({"id": 4, "customer_id": "c", "total_amount": "1"})
    conv.convert({"id": 5, "customer_id": "c", "products": [{"id": 1, "name": "Mug"}]})
    assert conv.tally[counted] == 1


@pytest.mark.parametrize(
    ("products", "sent", "dropped"),
    [
        # A CSV or spreadsheet tap sends a JSON column as text.
        (
            '[{"id": "p1", "name": "Mug", "price": "4.5"}]',
            [{"id": "p1", "name": "Mug", "price": 4.5}],
            0,
        ),
        ({"id": "p1", "name": "Mug"}, [{"id": "p1", "name": "Mug"}], 0),  # one product
        ([{"id": "p1"}, "sku-2", 7], [{"id": "p1"}], 2),
        ("sku-1, sku-2", None, 1),
        ("  ", None, 0),  # blank: null, as CSV taps write it
        ('{"id": ', None, 1),
        (42, None, 1),
    ],
)
def test_products_in_text_or_one_object_are_read_and_what_is_no_product_is_counted(
    products, sent, dropped
):
    conv = converter({"kind": "commerce_event", "custom_event_type": "purchase"})
    item = conv.convert({"id": 1, "customer_id": "c", "total_amount": 9, "products": products})
    [batch], _ = batches_of([item])
    assert batch["events"][0]["data"]["product_action"].get("products") == sent
    assert validate(batch) == []
    assert conv.tally[PRODUCTS_DROPPED] == dropped


def test_device_identities_go_to_device_info_and_bad_uuids_are_dropped():
    conv = converter({"identities": {"ios_advertising_id": "idfa", "customer_id": "cid"}})
    item = conv.convert({"id": 1, "idfa": "not-a-uuid", "cid": "c"})
    assert "device_info" not in item.batch
    assert conv.tally["ios_advertising_id values that are not UUIDs dropped"] == 1
    good = conv.convert({"id": 1, "idfa": "613ff528-afd1-4c1b-9628-e6ed25ece9c0"})
    assert good.batch["device_info"] == {
        "ios_advertising_id": "613ff528-afd1-4c1b-9628-e6ed25ece9c0"
    }


def test_record_without_identity_is_invalid_and_named_by_stream_and_key():
    with pytest.raises(InvalidRecordError, match=r"stream 'orders' record \{\"id\":9\}"):
        converter(stream="orders").convert({"id": 9, "amount": 1})


def test_outbound_event_is_made_inbound():
    tally = Tally()
    event = clean_event(
        "custom_event",
        {
            "event_name": "E",
            "custom_event_type": "attribution",
            "timestamp_unixtime_ms": "1595542763908",
            "event_id": "1234",
            "session_id": "5",
            "message_id": "x",
            "session_uuid": "not-a-uuid",
            "source_message_id": None,
            "custom_attributes": {"a": 1, "nested": {"b": True}},
        },
        tally,
    )
    assert event == {
        "event_type": "custom_event",
        "data": {
            "event_name": "E",
            # attribution is documented but not in the schema's enum: sent as allowed,
            # the original kept beside the event's own attributes, and counted
            "custom_event_type": "other",
            "timestamp_unixtime_ms": 1595542763908,
            "event_id": 1234,
            "session_id": 5,
            "custom_attributes": {
                "a": "1",
                "nested.b": "true",
                "original_custom_event_type": "attribution",
            },
        },
    }
    assert tally["custom_event_type values outside the schema kept in original_custom_event_type"]
    assert validate({"events": [event]}) == []
    with pytest.raises(InvalidRecordError, match="session_duration_ms"):
        clean_event("session_end", {}, tally)
    # A required field whose value cannot be read is named with the value, not
    # reported as missing.
    for unreadable, shown in (("abc", "'abc'"), (2**70, str(2**70)), ({"a": 1}, "{'a': 1}")):
        with pytest.raises(InvalidRecordError) as refused:
            clean_event("session_end", {"session_duration_ms": unreadable}, tally)
        assert str(refused.value) == (
            "session_end event is not valid for the Events API: required data field "
            f"session_duration_ms holds {shown}, which it cannot take"
        )
    with pytest.raises(InvalidRecordError, match=r"data must contain \['session_duration_ms'\]"):
        clean_event("session_end", {"session_duration_ms": None}, tally)
    with pytest.raises(InvalidRecordError, match="media"):
        clean_event("media", {}, tally)


def test_outbound_identity_array_becomes_object():
    tally = Tally()
    ids = clean_identities(
        [
            {"identity_type": "customer_id", "identity": "h.jekyll", "timestamp_unixtime_ms": 1},
            {"identity_type": "made_up", "identity": "x"},
        ],
        tally,
    )
    assert ids.user == {"customer_id": "h.jekyll"}
    assert tally["identities of unknown type 'made_up' dropped"] == 1


DROPPED = "identity values that are objects, lists or true/false dropped"


@pytest.mark.parametrize("bad", [{"a": 1}, [1, 2], True, False])
def test_an_identity_that_is_an_object_a_list_or_a_flag_is_dropped_and_counted(bad):
    """Sent as `{"a":1}` or `true`, it would be a real-looking identity naming no one."""
    tally = Tally()
    idfa = "0f8fad5b-d9cb-469f-a165-70867728950e"
    ids = clean_identities(
        {"customer_id": bad, "email": "a@b.c", "ios_idfa": idfa, "android_uuid": bad}, tally
    )
    assert ids.user == {"email": "a@b.c"}
    assert ids.device == {"ios_advertising_id": idfa}
    assert tally[DROPPED] == 2
    conv = converter({"identities": {"customer_id": "cid", "email": "mail"}})
    item = conv.convert({"id": 1, "cid": bad, "mail": "b@c.d"})
    assert item.batch["user_identities"] == {"email": "b@c.d"}
    assert conv.tally[DROPPED] == 1
    with pytest.raises(InvalidRecordError, match="has no identity"):
        conv.convert({"id": 2, "cid": bad})
    # Numbers stay identities: a warehouse's integer ids are real ones.
    assert conv.convert({"id": 3, "cid": 42}).batch["user_identities"] == {"customer_id": "42"}


def test_identity_spellings_of_the_sdks_are_one_identity():
    # mParticle's Python SDK writes `customerid`, its Node SDK `customerId`.
    idfa = "0f8fad5b-d9cb-469f-a165-70867728950e"
    ids = clean_identities(
        {"customerid": "c1", "customerId": "c1", "Email": "a@b.c", "ios_idfa": idfa, "MPID": "-7"},
        Tally(),
    )
    assert ids.user == {"customer_id": "c1", "email": "a@b.c"}
    assert ids.device == {"ios_advertising_id": idfa}
    assert ids.mpid == -7


def _tap_event(lineno: int, index: int, stamp: int = NOW - 1000) -> dict:
    return {
        "event_type": "custom_event",
        "event_name": "E",
        "timestamp_unixtime_ms": stamp,
        "source_message_id": f"m{lineno}-{index}",
        "mpid": lineno,
        "user_identities": {"customer_id": f"c{lineno}"},
        "data": {
            "event_name": "E",
            "custom_event_type": "other",
            "timestamp_unixtime_ms": str(stamp),
            "event_id": "7",
        },
        "_sdc_source_file": "f.txt",
        "_sdc_source_lineno": lineno,
        "_sdc_event_index": index,
    }


def test_tap_events_of_one_batch_line_are_grouped_into_one_batch():
    conv = converter(stream="events", key=())
    items = [conv.convert(_tap_event(line, i)) for line in (1, 2) for i in range(3)]
    batches, _ = batches_of(items)
    assert [len(b["events"]) for b in batches] == [3, 3]
    assert batches[0]["mpid"] == 1
    assert [e["data"]["source_message_id"] for e in batches[0]["events"]] == [
        "m1-0",
        "m1-1",
        "m1-2",
    ]
    assert all(validate(b) == [] for b in batches)
    assert trailing_group(items) == 3
    again, _ = batches_of(
        [converter(stream="events", key=()).convert(_tap_event(1, i)) for i in range(3)]
    )
    assert again[0]["source_request_id"] == batches[0]["source_request_id"]


@pytest.mark.parametrize(
    ("field", "other"),
    [
        ("mpid", 99),
        ("user_identities", {"customer_id": "someone-else"}),
        ("device_info", {"platform": "Android"}),
    ],
)
def test_an_event_naming_its_line_but_another_user_is_refused_not_merged(field, other):
    """Forged or mixed-up input: merged, its event would go out under the line's first user."""
    conv = converter(stream="events", key=())
    first = conv.convert(_tap_event(1, 0))
    stray = {**_tap_event(1, 1), field: other}
    with pytest.raises(InvalidRecordError, match="names the same batch line as the record before"):
        conv.convert(stray)
    # The same user goes on joining the line.
    same = conv.convert(_tap_event(1, 2))
    assert same.group == first.group


def test_big_groups_split_under_100_events_and_the_byte_cap():
    conv = converter(stream="events", key=())
    items = [conv.convert(_tap_event(1, i)) for i in range(250)]
    for item in items:
        item.events[0]["data"]["custom_attributes"] = {"pad": "x" * 1500}
    batches, prepared = batches_of(items)
    assert sum(len(b["events"]) for b in batches) == 250
    assert all(len(b["events"]) <= 100 for b in batches)
    assert all(len(p.body) <= 128_000 for p in prepared)
    assert len({b["source_request_id"] for b in batches}) == len(batches)
    requests = pack(prepared)
    assert all(len(r.body) <= MAX_REQUEST_BYTES for r in requests)


def test_a_group_under_100_events_but_over_the_byte_cap_is_split_too():
    # Encoded once when it fits: this one does not, so it is split as before.
    conv = converter(stream="events", key=())
    items = [conv.convert(_tap_event(1, i)) for i in range(90)]
    for item in items:
        item.events[0]["data"]["custom_attributes"] = {"pad": "x" * 1500}
    batches, prepared = batches_of(items)
    assert [len(b["events"]) for b in batches] == [45, 45]
    assert all(len(p.body) <= 128_000 for p in prepared)
    assert len({b["source_request_id"] for b in batches}) == 2
    fits, _ = batches_of(items[:40])
    assert [len(b["events"]) for b in fits] == [40]


def test_requests_hold_at_most_100_batches():
    conv = converter({"kind": "user"}, key=("id",))
    items = [conv.convert({"id": n, "email": f"{n}@x"}) for n in range(250)]
    _, prepared = batches_of(items)
    assert [len(r.batches) for r in pack(prepared)] == [100, 100, 50]


def test_user_updates_keep_their_order_among_groups_and_a_huge_one_is_refused_alone():
    users = converter({"kind": "user"}, key=("id",))
    events = converter(stream="events", key=())
    big = users.convert({"id": 2, "email": "b@x", **{f"a{n}": "x" * 4000 for n in range(40)}})
    items = [
        users.convert({"id": 1, "email": "a@x"}),
        events.convert(_tap_event(1, 0)),
        big,
        events.convert(_tap_event(1, 1)),  # same line: merged into the first group
        users.convert({"id": 3, "email": "c@x"}),
    ]
    prepared, rejected = assemble(items, "auto", NOW)
    assert [(item, reason.split(" bytes")[1]) for item, reason in rejected] == [
        (big, ", over the 128000 cap")
    ]
    sent = [json.loads(p.body) for p in prepared]
    assert [b.get("user_identities", {}).get("email") for b in sent] == ["a@x", None, "c@x"]
    assert len(sent[1]["events"]) == 2
    assert [p.source_request_id for p in prepared] == [
        items[0].request_id,
        sent[1]["source_request_id"],
        items[4].request_id,
    ]
    assert [b["source_request_id"] for b in sent] == [p.source_request_id for p in prepared]
    assert [(p.historical, p.n_events, p.items) for p in (prepared[0], prepared[2])] == [
        (False, 0, [items[0]]),
        (False, 0, [items[4]]),
    ]


def test_a_users_updates_in_one_drain_are_folded_so_none_overtakes_a_later_one():
    """A drain's requests go out in parallel: as separate batches, the row read first
    could be applied last. Folded, one batch carries what the last row says."""
    conv = converter(
        {
            "kind": "user",
            "identities": {"email": "email"},
            "ip_field": "ip",
            "null_user_attributes": "delete",
        },
        stream="users",
    )
    rows = [
        {"id": 1, "email": "a@b.c", "plan": "free", "coupon": "X", "ip": "203.0.113.1"},
        {"id": 2, "email": "b@b.c", "plan": "pro", "coupon": "Y"},
        {"id": 1, "email": "a@b.c", "plan": "pro", "coupon": None, "ip": "203.0.113.3"},
        {"id": 1, "email": "a@b.c", "plan": "free", "coupon": None},
    ]
    items = [conv.convert(dict(row)) for row in rows]
    prepared, rejected = assemble(items, "auto", NOW)
    assert rejected == []
    sent = [json.loads(p.body) for p in prepared]
    assert [b["user_identities"]["email"] for b in sent] == ["a@b.c", "b@b.c"]
    assert sent[0]["user_attributes"] == {"id": "1", "plan": "free"}
    assert sent[0]["deleted_user_attributes"] == ["coupon"]
    assert sent[0]["ip"] == "203.0.113.3"  # a later row's field wins; one without keeps it
    assert prepared[0].items == [items[0], items[2], items[3]]  # each record accounted for
    assert sent[0]["source_request_id"] not in {item.request_id for item in items}
    assert prepared[1].items == [items[1]]
    assert sent[1]["source_request_id"] == items[1].request_id
    # Another environment is another profile set: never folded together.
    parsed = StreamMapping.from_config(
        {"kind": "user", "identities": {"email": "email"}}, explicit=True
    )
    live = Converter("users", ["id"], parsed, BatchDefaults(environment="production"), Tally())
    other, _ = assemble([items[1], live.convert({"id": 2, "email": "b@b.c"})], "auto", NOW)
    assert len(other) == 2


def test_folded_consent_keeps_each_purpose_a_row_set_and_whole_batches_are_not_folded():
    """A row with marketing (analytics null) then one with analytics (marketing null):
    each purpose as its last row set it. Whole batches keep their producer's ids."""
    conv = converter(
        {
            "kind": "user",
            "identities": {"email": "email"},
            "consent": {"gdpr": {"marketing": "m", "analytics": "a"}, "ccpa": "sell"},
        },
        stream="users",
    )
    rows = [
        {"email": "a@b.c", "m": True, "a": None, "sell": None},
        {"email": "a@b.c", "m": None, "a": True, "sell": False},
        {"email": "a@b.c", "m": False, "a": None, "sell": None},
    ]
    items = [conv.convert(dict(row)) for row in rows]
    (folded,), _ = assemble(items, "auto", NOW)
    consent = json.loads(folded.body)["consent_state"]
    assert {k: v["consented"] for k, v in consent["gdpr"].items()} == {
        "marketing": False,
        "analytics": True,
    }
    assert consent["ccpa"]["data_sale_opt_out"]["consented"] is False
    whole = converter(stream="updates", key=())
    given = [
        whole.convert({"user_identities": {"email": "a@b.c"}, "source_request_id": rid})
        for rid in ("A", "B")
    ]
    sent, _ = assemble(given, "auto", NOW)
    assert [p.source_request_id for p in sent] == ["A", "B"]


def test_users_that_share_an_identity_value_are_told_apart_when_folding():
    """Rows are first looked up by their first identity's value: an email of one user
    equal to another's customer id must not fold the two together."""
    conv = converter({"kind": "user", "identities": {"email": "e", "customer_id": "c"}})
    rows = [
        {"id": 1, "e": "x", "c": None, "plan": "a1"},
        {"id": 2, "e": None, "c": "x", "plan": "b1"},
        {"id": 3, "e": None, "c": "x", "plan": "b2"},
        {"id": 4, "e": "x", "c": None, "plan": "a2"},
        {"id": 5, "e": None, "c": "y", "plan": "c1"},
    ]
    items = [conv.convert(dict(row)) for row in rows]
    prepared, _ = assemble(items, "auto", NOW)
    assert [p.items for p in prepared] == [[items[0], items[3]], [items[1], items[2]], [items[4]]]
    sent = [json.loads(p.body) for p in prepared]
    assert [b["user_attributes"]["plan"] for b in sent] == ["a2", "b2", "c1"]


def test_a_users_updates_that_together_pass_100_attributes_are_folded_then_split():
    """mParticle takes 100 user attributes a batch. Sent one row each (as they came),
    an earlier row could land after a later one in the parallel requests; folded
    first, each attribute holds its last value and is in one batch only."""
    conv = converter(
        {
            "kind": "user",
            "identities": {"email": "email"},
            "null_user_attributes": "delete",
            "ip_field": "ip",
        },
        stream="users",
    )
    rows = [
        {"email": "a@b.c", "gone": "x", "ip": "203.0.113.9", **{f"s{i}": "old" for i in range(60)}},
        {"email": "a@b.c", **{f"t{i}": "t" for i in range(60)}},
        {"email": "a@b.c", "gone": None, **{f"s{i}": "new" for i in range(60)}},
    ]
    items = [conv.convert(dict(row)) for row in rows]
    prepared, rejected = assemble(items, "auto", NOW)
    assert rejected == []
    sent = [json.loads(p.body) for p in prepared]
    assert [len(b["user_attributes"]) for b in sent] == [100, 20]
    final: dict[str, str] = {}
    for batch in sent:
        assert not final.keys() & batch["user_attributes"].keys()  # each name once
        final.update(batch["user_attributes"])
        assert batch["user_identities"] == {"email": "a@b.c"}
    assert final == {**{f"s{i}": "new" for i in range(60)}, **{f"t{i}": "t" for i in range(60)}}
    assert sent[0]["deleted_user_attributes"] == ["gone"]
    assert "deleted_user_attributes" not in sent[1]
    assert [b["ip"] for b in sent] == ["203.0.113.9"] * 2  # who and where, in each piece
    assert [p.items for p in prepared] == [items, items]
    ids = [p.source_request_id for p in prepared]
    assert len(set(ids)) == 2
    # The same rows assembled again (a retry of the drain) give the same ids.
    assert ids == [p.source_request_id for p in assemble(items, "auto", NOW)[0]]


def test_one_users_many_audiences_fold_into_batches_of_100_attributes():
    """150 audience adds of one user went out as one batch of 150 attributes."""
    conv = converter(stream="audience_memberships", key=())
    rows = [
        {
            "audience_id": n,
            "audience_name": f"A{n}",
            "action": "add",
            "identity_type": "email",
            "identity_value": "a@b.c",
            "timestamp": "2024-05-01T00:00:00.000+00:00",
            "_sdc_source_file": "audiences/x.csv",
            "_sdc_source_lineno": n + 2,
        }
        for n in range(150)
    ]
    items = [conv.convert(dict(row)) for row in rows]
    prepared, rejected = assemble(items, "auto", NOW)
    assert rejected == []
    sent = [json.loads(p.body) for p in prepared]
    assert [len(b["user_attributes"]) for b in sent] == [100, 50]
    names = [name for b in sent for name in b["user_attributes"]]
    assert len(set(names)) == 150


def test_historical_routing():
    conv = converter({"timestamp_field": "at"})
    old = conv.convert({"id": 1, "email": "a@b", "at": (NOW - THIRTY_DAYS_MS - 1) / 1000})
    new = conv.convert({"id": 2, "email": "a@b", "at": NOW / 1000})
    _, prepared = batches_of([old, new])
    assert [p.historical for p in prepared] == [True, False]
    assert [r.path for r in pack(prepared)] == [HISTORICAL_PATH, BULK_PATH]
    _, never = batches_of([old], mode="never")
    assert not never[0].historical
    _, rejected = assemble([new], "always", NOW)
    assert rejected
    assert "72 hours" in rejected[0][1]


def test_whole_batches_pass_through_without_outbound_fields():
    conv = converter(stream="raw", key=())
    record = {
        "events": [
            {
                "event_type": "screen_view",
                "data": {"screen_name": "Home", "timestamp_unixtime_ms": "1595542763908"},
            }
        ],
        "user_identities": [{"identity_type": "email", "identity": "a@b.c"}],
        "schema_version": 2,
        "message_type": "events",
        "batch_id": 9,
        "mpid": "123",
        "source_info": {"channel": "native"},
        "device_info": {"platform": "Android", "made_up": 1},
    }
    [batch], _ = batches_of([conv.convert(record)])
    assert set(batch) == {
        "environment",
        "user_identities",
        "mpid",
        "device_info",
        "events",
        "source_request_id",
    }
    assert batch["mpid"] == 123
    assert batch["device_info"] == {"platform": "Android"}
    assert validate(batch) == []


def test_mapping_errors_are_all_reported():
    errors = mapping_errors(
        {
            "a": {"kind": "nope", "event_name": "x", "event_name_field": "y", "extra": 1},
            "b": {"identities": {"fax": "f"}, "custom_event_type": "purchase"},
            "c": "not an object",
        }
    )
    assert len(errors) == 6


def test_identity_change_sides_get_the_timestamp_inbound_requires():
    event = clean_event(
        "user_identity_change",
        {
            "timestamp_unixtime_ms": "1714521604233",
            "new": {"identity_type": "email", "identity": "new@example.com"},
            "old": {"identity_type": "email", "identity": "old@example.com", "x": 1},
        },
        Tally(),
    )
    assert event["data"]["old"] == {
        "identity_type": "email",
        "identity": "old@example.com",
        "timestamp_unixtime_ms": 1714521604233,
    }
    assert validate({"events": [event]}) == []


@pytest.mark.parametrize("parts", [("user", "users", {"id": 1}), ("x",), (1, 2.5, None, [True])])
def test_content_ids_are_sha1_name_based_uuids(parts):
    """digest_id writes the version and variant bits into the hex digest by hand."""
    encoded = msgspec.json.encode(parts, order="sorted")
    digest = hashlib.sha1(encoded, usedforsecurity=False).digest()[:16]
    assert digest_id(*parts) == str(uuid.UUID(bytes=digest, version=5))


def test_a_tap_event_takes_what_its_data_lacks_from_beside_it_without_changing_the_record():
    record = {
        "event_type": "custom_event",
        "mpid": 7,
        "source_message_id": "0f8fad5b-d9cb-469f-a165-70867728950e",
        "timestamp_unixtime_ms": "1763000000000",
        "custom_attributes": {"title": "Song"},
        "data": {"event_name": "Play", "custom_event_type": "media", "source_message_id": None},
        "_sdc_source_file": "f.txt",
        "_sdc_source_lineno": 1,
        "_sdc_event_index": 0,
    }
    data_before = dict(record["data"])
    (event,) = converter(stream="events", key=()).convert(record).events
    assert event["data"] == {
        "event_name": "Play",
        "custom_event_type": "media",
        "source_message_id": "0f8fad5b-d9cb-469f-a165-70867728950e",
        "timestamp_unixtime_ms": 1_763_000_000_000,
        "custom_attributes": {"title": "Song"},
    }
    assert record["data"] == data_before
    complete = {**record, "data": {**data_before, "source_message_id": "mine"}}
    (own,) = converter(stream="events", key=()).convert(complete).events
    assert own["data"]["source_message_id"] == "mine"


def test_a_uuid_with_a_trailing_newline_is_dropped_alone_not_with_the_device_info():
    """A `$` pattern took it; the schema refused it and every device identity went with it."""
    mapping = {
        "kind": "user",
        "identities": {"email": "email", "push_token": "push", "ios_advertising_id": "idfa"},
    }
    conv = converter(mapping)
    uuid = "0f8fad5b-d9cb-469f-a165-70867728950e"
    record = {"id": 1, "email": "a@example.com", "push": "tok", "idfa": uuid + "\n"}
    item = conv.convert(record)
    assert item.batch["device_info"] == {"push_token": "tok"}
    assert conv.tally["ios_advertising_id values that are not UUIDs dropped"] == 1
    assert conv.convert({**record, "idfa": uuid}).batch["device_info"]["ios_advertising_id"] == uuid


def test_a_batch_whose_only_identity_cannot_be_valid_is_refused_not_sent_to_no_one():
    tally = Tally()
    kept = fit_shell(
        {"environment": "development", "mpid": 5, "device_info": {"ios_idfv": "x"}}, tally
    )
    assert kept == {"environment": "development", "mpid": 5}  # another identity is left
    with pytest.raises(InvalidRecordError, match="no identity left once device_info is dropped"):
        fit_shell({"environment": "development", "device_info": {"ios_idfv": "x"}}, Tally())


def nested(levels: int) -> object:
    value: object = 1
    for _ in range(levels):
        value = {"a": value}
    return value


@pytest.mark.parametrize("events", [5, True, "abc", {"event_type": "custom_event"}, {}])
def test_a_whole_batch_whose_events_is_not_a_list_is_one_invalid_record(events):
    record = {"user_identities": {"email": "a@b.c"}, "events": events}
    with pytest.raises(InvalidRecordError, match=r"^stream 'raw' record .*: events is not a list"):
        converter(stream="raw", key=()).convert(record)


def test_a_whole_batch_with_null_events_is_still_a_user_update():
    item = converter(stream="raw", key=()).convert(
        {"user_identities": {"email": "a@b.c"}, "events": None}
    )
    assert item.events == []
    assert item.refused == []
    assert item.batch["user_identities"] == {"email": "a@b.c"}


@pytest.mark.parametrize("where", ["integration_attributes", "location", "tap event location"])
def test_a_record_nested_too_deeply_to_convert_is_one_invalid_record(where):
    # 600 levels: the reader takes JSON about 1,000 deep; cleaning recurses per level.
    data = {"event_name": "E", "custom_event_type": "other"}
    record: dict = {"user_identities": {"email": "a@b.c"}, "events": []}
    if where == "integration_attributes":
        record[where] = nested(600)
    elif where == "location":
        record["events"] = [
            {"event_type": "custom_event", "data": {**data, "location": nested(600)}}
        ]
    else:
        record = {
            "event_type": "custom_event",
            "mpid": 5,
            "data": {**data, "location": nested(600)},
        }
    with pytest.raises(InvalidRecordError, match=r"^stream 'raw' record .*: is nested too deeply"):
        converter(stream="raw", key=()).convert(record)


def test_malformed_whole_batches_are_each_one_dead_letter_and_the_rest_is_sent(tmp_path):
    good = {"user_identities": {"email": "good@b.c"}, "events": []}
    records = [
        {"user_identities": {"email": "a@b.c"}, "events": "abc"},
        {
            "user_identities": {"email": "b@b.c"},
            "events": [],
            "integration_attributes": nested(600),
        },
        good,
    ]
    config = dry_run_dead_letters(tmp_path)
    run = run_target(config, singer_lines("batches", records))
    assert run.error is None
    letters = dead_letters(config)
    assert [(x["record"]["user_identities"], x["reason"].split(": ", 1)[1]) for x in letters] == [
        ({"email": "a@b.c"}, "events is not a list: 'abc'"),
        ({"email": "b@b.c"}, "is nested too deeply to convert"),
    ]
    (request,) = [json.loads(line) for line in (tmp_path / "dry.jsonl").read_text().splitlines()]
    assert [b["user_identities"] for b in request["body"]] == [{"email": "good@b.c"}]


def test_a_dry_run_leaves_the_real_dead_letter_file_as_it_was(tmp_path):
    """Its dead letters go beside its bodies, replaced on each run: in
    `dead_letter_path` they were there twice once the real run wrote them too."""
    config = dry_run_dead_letters(tmp_path)
    real = tmp_path / "dead.jsonl"
    real.write_text('{"from": "an earlier real run"}\n')
    bad = {"user_identities": {"email": "a@b.c"}, "events": "abc"}
    good = {"user_identities": {"email": "good@b.c"}, "events": []}
    assert run_target(config, singer_lines("batches", [bad, good])).error is None
    assert real.read_text() == '{"from": "an earlier real run"}\n'
    beside = tmp_path / "dry-dead-letters.jsonl"
    letters = [json.loads(line) for line in beside.read_text().splitlines()]
    assert [x["record"]["user_identities"] for x in letters] == [{"email": "a@b.c"}]
    # The next dry run's file is that run's: none left from this one.
    assert run_target(config, singer_lines("batches", [good])).error is None
    assert not beside.exists()
    assert real.read_text() == '{"from": "an earlier real run"}\n'


@pytest.mark.parametrize("policy", ["dead_letter", "skip"])
def test_a_dry_run_whose_dead_letters_would_be_the_real_ones_is_refused(tmp_path, policy):
    """`x.jsonl` puts a dry run's dead letters in `x-dead-letters.jsonl`: with
    `dry_run_path: output/target-mparticle.jsonl` that is the default dead_letter_path,
    which the dry run replaced (removed) without a word."""
    real = tmp_path / "target-mparticle-dead-letters.jsonl"
    real.write_text("{}\n")
    config = {
        "dry_run": True,
        "dry_run_path": str(tmp_path / "target-mparticle.jsonl"),
        "dead_letter_path": str(real),
        "on_invalid_record": policy,
    }
    with pytest.raises(ConfigValidationError) as refused:
        run_target(config, [])
    said = (
        f"dry_run_path {config['dry_run_path']!r} would put the dry run's dead letters in "
        f"dead_letter_path {str(real)!r}, which a dry run must leave as it is: choose "
        "another dry_run_path"
    )
    assert refused.value.errors == [said]
    assert real.read_text() == "{}\n"
