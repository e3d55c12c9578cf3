"""The inbound model beyond events: consent, data plans, deletes, ip/device id, audiences.

Every body is checked by the stand-in against mParticle's published schema, so each
test's `server.rejected == []` says the new fields are sent in a shape mParticle takes.
"""

from __future__ import annotations

import json
import typing as t

import pytest
import time_machine
from singer_sdk.exceptions import ConfigValidationError

from target_mparticle.target import TargetMParticle
from tests.support.files import dead_letters
from tests.support.target import KEY, event_record, run_target, singer_lines

NOW = "2026-01-02T03:04:05+00:00"
NOW_MS = 1_767_323_045_000


def users_config(config: dict[str, t.Any], **mapping: t.Any) -> dict[str, t.Any]:
    config["mappings"] = {"users": {"kind": "user", "identities": {"customer_id": "id"}, **mapping}}
    return config


@time_machine.travel(NOW, tick=False)
def test_consent_in_shorthand_and_object_forms(server, config):
    users_config(
        config,
        user_attributes=["plan"],
        timestamp_field="updated_at",
        consent={
            "gdpr": {
                "marketing": "marketing_ok",
                "analytics": {
                    "consented": "analytics_ok",
                    "document": "policy",
                    "timestamp": "analytics_at",
                    "location": "country",
                    "hardware_id": "device",
                },
            },
            "ccpa": "do_not_sell",
        },
    )
    records = [
        {
            "id": "u-1",
            "plan": "pro",
            "updated_at": "2025-12-01T00:00:00Z",
            "marketing_ok": True,
            "analytics_ok": "false",
            "policy": "v3",
            "analytics_at": 1_700_000_000,
            "country": "DE",
            "device": "hw-1",
            "do_not_sell": 1,
        },
        # Null consent says nothing: the purpose is left out, not sent as refused.
        {"id": "u-2", "plan": "free", "marketing_ok": None, "do_not_sell": False},
    ]
    run = run_target(config, singer_lines("users", records, key=["id"]))
    assert run.error is None
    assert server.rejected == []
    sent = {b["user_identities"]["customer_id"]: b for b in server.batches()}
    assert sent["u-1"]["consent_state"] == {
        "gdpr": {
            "marketing": {"consented": True, "timestamp_unixtime_ms": 1_764_547_200_000},
            "analytics": {
                "consented": False,
                "timestamp_unixtime_ms": 1_700_000_000_000,
                "document": "v3",
                "location": "DE",
                "hardware_id": "hw-1",
            },
        },
        "ccpa": {
            "data_sale_opt_out": {"consented": True, "timestamp_unixtime_ms": 1_764_547_200_000}
        },
    }
    # No event time in the record: consent is stamped now.
    assert sent["u-2"]["consent_state"] == {
        "ccpa": {"data_sale_opt_out": {"consented": False, "timestamp_unixtime_ms": NOW_MS}}
    }
    # Consent fields are consent, not user attributes.
    assert sent["u-1"]["user_attributes"] == {"plan": "pro"}


def test_a_consent_value_that_is_not_a_boolean_makes_the_record_invalid(server, config):
    users_config(config, consent={"ccpa": "do_not_sell"})
    config["on_invalid_record"] = "dead_letter"
    run = run_target(config, singer_lines("users", [{"id": "u-1", "do_not_sell": "maybe"}]))
    assert run.error is None
    (letter,) = dead_letters(config)
    assert "consent field 'do_not_sell' holds 'maybe', not true or false" in letter["reason"]
    assert server.batches() == []


@pytest.mark.parametrize("blank", ["", "   "])
def test_a_blank_consent_time_is_the_default_time_as_null_is(server, config, blank):
    """CSV and spreadsheet taps write null as ""; it made the record invalid."""
    users_config(
        config,
        timestamp_field="updated_at",
        consent={"ccpa": {"consented": "do_not_sell", "timestamp": "sold_at"}},
    )
    rows = [
        {"id": "u-1", "updated_at": "2025-12-01T00:00:00Z", "do_not_sell": "true", "sold_at": blank}
    ]
    run = run_target(config, singer_lines("users", rows, key=["id"]))
    assert run.error is None
    (batch,) = server.batches()
    purpose = batch["consent_state"]["ccpa"]["data_sale_opt_out"]
    assert purpose == {"consented": True, "timestamp_unixtime_ms": 1_764_547_200_000}


@pytest.mark.parametrize(
    ("consent", "message"),
    [
        ({"gdpr": {"Marketing": "m"}}, "must be lower case"),
        ({"gdpr": {"marketing": {"document": "d"}}}, "consented must name"),
        ({"gdpr": {"marketing": {"consented": "m", "when": "w"}}}, "unknown key 'when'"),
        ({"lgpd": {"x": "y"}}, "unknown regulation 'lgpd'"),
        ({"ccpa": 3}, "must be a field name or an object"),
    ],
)
def test_consent_mistakes_are_refused_up_front(config, consent, message):
    users_config(config, consent=consent)
    with pytest.raises(ConfigValidationError) as refused:
        TargetMParticle(config=config)
    assert any(message in error for error in refused.value.errors), refused.value.errors


def test_data_plan_from_settings_and_from_a_mapping(server, config):
    config["data_plan_id"] = "travel"
    config["data_plan_version"] = 3
    config["mappings"] = {
        "users": {"kind": "user", "identities": {"customer_id": "id"}},
        "orders": {
            "identities": {"customer_id": "id"},
            "data_plan_id": "commerce",
            "data_plan_version": 7,
        },
    }
    run = run_target(
        config,
        [
            *singer_lines("users", [{"id": "u-1", "plan": "pro"}], key=["id"]),
            *singer_lines("orders", [{"id": "u-2", "total": 5}], key=["id"]),
        ],
    )
    assert run.error is None
    assert server.rejected == []
    plans = {b["user_identities"]["customer_id"]: b["context"] for b in server.batches()}
    assert plans == {
        "u-1": {"data_plan": {"plan_id": "travel", "plan_version": 3}},
        "u-2": {"data_plan": {"plan_id": "commerce", "plan_version": 7}},
    }


def test_replays_get_the_configured_data_plan_unless_they_name_their_own(server, config):
    """A replayed batch kept no plan at all: the setting said "every batch", and
    replays went unvalidated without a word."""
    config["data_plan_id"] = "travel"
    whole = [
        {"user_identities": {"customer_id": "plain"}, "events": []},
        {
            "user_identities": {"customer_id": "consented"},
            "context": {"location": {"latitude": 1.5, "longitude": 2.5}},
            "events": [],
        },
        {
            "user_identities": {"customer_id": "own"},
            "context": {"data_plan": {"plan_id": "own-plan", "plan_version": 2}},
            "events": [],
        },
    ]
    tap_event = event_record(1, 0)
    run = run_target(
        config,
        [
            *singer_lines("batches", whole),
            *singer_lines("events", [tap_event], key=KEY),
            json.dumps({"type": "STATE", "value": {"done": 1}}),
        ],
    )
    assert run.error is None
    assert server.rejected == []
    plans = {b["user_identities"]["customer_id"]: b.get("context") for b in server.batches()}
    travel = {"data_plan": {"plan_id": "travel"}}
    assert plans == {
        "plain": travel,
        "consented": {"location": {"latitude": 1.5, "longitude": 2.5}, **travel},
        "own": {"data_plan": {"plan_id": "own-plan", "plan_version": 2}},
        "c1": travel,
    }


def test_null_user_attributes_delete_or_drop(server, config):
    config["mappings"] = {
        "deleting": {
            "kind": "user",
            "identities": {"customer_id": "id"},
            "null_user_attributes": "delete",
        },
        "dropping": {"kind": "user", "identities": {"customer_id": "id"}},
    }
    row = {"id": "u-1", "plan": "pro", "coupon": None}
    run = run_target(
        config,
        [
            *singer_lines("deleting", [row], key=["id"]),
            *singer_lines("dropping", [{**row, "id": "u-2"}], key=["id"]),
        ],
    )
    assert run.error is None
    assert server.rejected == []
    sent = {b["user_identities"]["customer_id"]: b for b in server.batches()}
    assert sent["u-1"]["user_attributes"] == {"plan": "pro"}
    assert sent["u-1"]["deleted_user_attributes"] == ["coupon"]
    assert "deleted_user_attributes" not in sent["u-2"]


def test_null_user_attributes_delete_leaves_fields_a_record_does_not_carry(server, config):
    """A column deselected in the tap (`!users.coupon`) is absent, not null: kept."""
    config["mappings"] = {
        "users": {
            "kind": "user",
            "identities": {"customer_id": "id"},
            "user_attributes": {"plan": "plan", "coupon": "coupon", "tier": "tier"},
            "null_user_attributes": "delete",
        }
    }
    rows = [{"id": "u-1", "plan": "pro", "tier": None}, {"id": "u-2", "plan": None}]
    run = run_target(config, singer_lines("users", rows, key=["id"]))
    assert run.error is None
    sent = {b["user_identities"]["customer_id"]: b for b in server.batches()}
    assert sent["u-1"]["deleted_user_attributes"] == ["tier"]
    assert sent["u-2"]["deleted_user_attributes"] == ["plan"]


def test_ip_device_id_mpid_and_device_identities_from_fields(server, config):
    config["mappings"] = {
        "users": {
            "kind": "user",
            "identities": {
                "mpid": "mparticle_id",
                "ios_advertising_id": "idfa",
                "email": "mail",
            },
            "ip_field": "last_ip",
            "device_id_field": "device",
        }
    }
    record = {
        "mparticle_id": "-8203932131457467343",
        "idfa": "613ff528-afd1-4c1b-9628-e6ed25ece9c0",
        "mail": "a@example.com",
        "last_ip": "2001:db8::1",
        "device": "0b8f5b2f-0c1d-4f7e-9a4b-1a2b3c4d5e6f",
        "tier": "gold",
    }
    run = run_target(config, singer_lines("users", [record]))
    assert run.error is None
    assert server.rejected == []
    (batch,) = server.batches()
    assert batch["mpid"] == -8203932131457467343
    assert batch["ip"] == "2001:db8::1"
    assert batch["mp_deviceid"] == "0b8f5b2f-0c1d-4f7e-9a4b-1a2b3c4d5e6f"
    assert batch["device_info"] == {"ios_advertising_id": "613ff528-afd1-4c1b-9628-e6ed25ece9c0"}
    assert batch["user_identities"] == {"email": "a@example.com"}
    assert batch["user_attributes"] == {"tier": "gold"}


def membership(audience_id: int, action: str, **fields: t.Any) -> dict[str, t.Any]:
    return {
        "audience_id": audience_id,
        "audience_name": "Big spenders",
        "variant": None,
        "mpid": None,
        "identity_type": "customer_id",
        "identity_value": "c-1",
        "identity_encoding": "raw",
        "action": action,
        "timestamp": "2024-05-01T00:00:00.000+00:00",
        "source_format": "firehose",
        **fields,
    }


def attribute(key: str, action: str, **fields: t.Any) -> dict[str, t.Any]:
    return {
        "audience_id": 9,
        "audience_name": "Big spenders",
        "mpid": 77,
        "key": key,
        "value": None,
        "list_value": None,
        "action": action,
        "timestamp": "2024-05-01T00:00:00.000+00:00",
        "source_format": "partner_feed",
        **fields,
    }


def test_audience_rows_become_user_attribute_updates_without_a_mapping(server, config):
    config["on_invalid_record"] = "dead_letter"
    rows = [
        membership(11, "add"),
        membership(12, "add", identity_type="email", identity_value="b@example.com"),
        membership(13, "remove", identity_type=None, identity_value=None, mpid=42),
        # A hashed identity cannot be sent as one: the row goes by its mpid.
        membership(14, "add", identity_encoding="sha256", identity_value="ab12", mpid=43),
        # Neither an identity mParticle can resolve nor an mpid: invalid, saying why.
        membership(15, "add", identity_encoding="md5", identity_value="cd34"),
        membership(16, "add", identity_type="partner_id", identity_value="p-1"),
        membership(17, "add", identity_type="ios_advertising_id", identity_value="not-a-uuid"),
        # With an mpid, an identity that cannot go goes unsent, and is counted.
        membership(18, "add", identity_type="ios_advertising_id", identity_value="x", mpid=44),
        membership(19, "add", identity_type="partner_id", identity_value="p-2", mpid=45),
        membership(20, "add", identity_value={"a": 1}, mpid=46),
        membership(21, "add", identity_value=["c-2"]),
    ]
    changes = [
        attribute("tier", "upsert", value="gold"),
        attribute("tags", "upsert", list_value=["a", "b"], mpid=78),
        attribute("churned", "delete", mpid=79),
    ]
    run = run_target(
        config,
        [
            *singer_lines("audience_memberships", rows),
            *singer_lines("audience_user_attributes", changes),
        ],
    )
    assert run.error is None
    assert server.rejected == []
    by_user = {
        json.dumps([b.get("user_identities"), b.get("mpid")], sort_keys=True): b
        for b in server.batches()
    }
    assert by_user['[{"customer_id": "c-1"}, null]']["user_attributes"] == {"audience_11": True}
    assert by_user['[{"email": "b@example.com"}, null]']["user_attributes"] == {"audience_12": True}
    assert by_user["[null, 42]"]["deleted_user_attributes"] == ["audience_13"]
    assert by_user["[null, 43]"]["user_attributes"] == {"audience_14": True}
    assert by_user["[null, 77]"]["user_attributes"] == {"tier": "gold"}
    assert by_user["[null, 78]"]["user_attributes"] == {"tags": ["a", "b"]}
    assert by_user["[null, 79]"]["deleted_user_attributes"] == ["churned"]
    assert "device_info" not in by_user["[null, 44]"]
    assert by_user["[null, 45]"]["user_attributes"] == {"audience_19": True}
    left_out = {k: v for k, v in run.target.delivery.tally.items() if "by mpid alone" in k}
    assert left_out == {
        "audience rows sent by mpid alone: identity an object, a list or true/false": 1,
        "audience rows sent by mpid alone: identity hashed": 1,
        "audience rows sent by mpid alone: identity type not one the Events API takes": 1,
        "audience rows sent by mpid alone: ios_advertising_id not a UUID": 1,
    }
    assert "user_identities" not in by_user["[null, 46]"]
    hashed, partner, device, listed = (letter["reason"] for letter in dead_letters(config))
    assert "its identity ['c-2'] is an object, a list or true/false and it has no mpid" in listed
    assert "identity is hashed (md5) and it has no mpid" in hashed
    assert "identity type 'partner_id' is not one the Events API takes" in partner
    assert "ios_advertising_id is not a UUID, as the Events API requires" in device


def test_an_add_remove_add_within_one_second_is_three_changes_not_a_copy(server, config):
    """Firehose and download stamps are whole seconds: the second add had the first's
    content, so its id, and mParticle dropped it; the user stayed removed."""

    def read_from(name: str, action: str) -> dict[str, t.Any]:
        where = {"_sdc_source_file": name, "_sdc_source_member": "-"}
        return {**membership(11, action), **where, "_sdc_source_lineno": 1, "_sdc_record_index": 0}

    runs = [read_from("a.json", "add"), read_from("b.json", "remove"), read_from("c.json", "add")]
    for row in runs:
        assert run_target(config, singer_lines("audience_memberships", [row])).error is None
    assert server.duplicates == []
    sent = server.batches()
    assert [b.get("user_attributes") or b.get("deleted_user_attributes") for b in sent] == [
        {"audience_11": True},
        ["audience_11"],
        {"audience_11": True},
    ]
    # The same file read again (a replay, a re-run after a crash): the same id, a copy.
    assert run_target(config, singer_lines("audience_memberships", [runs[0]])).error is None
    assert server.duplicates == [sent[0]["source_request_id"]]


@pytest.mark.parametrize("action", ["join", None, 5])
def test_an_audience_row_with_no_known_action_is_refused_not_sent_as_an_event(
    server, config, action
):
    """With its schema check off, the row used to go out as a `custom_event` named after
    the stream, attributes and all."""
    config["validate_records"] = False
    config["on_invalid_record"] = "dead_letter"
    rows = [membership(11, "add"), membership(12, action)]
    run = run_target(config, singer_lines("audience_memberships", rows))
    assert run.error is None
    assert [b["user_attributes"] for b in server.batches()] == [{"audience_11": True}]
    (letter,) = dead_letters(config)
    assert f"action {action!r} is not one of add, remove" in letter["reason"]


def test_audience_attribute_name_placeholders(server, config):
    config["audience_attribute_name"] = "aud_{audience_name}_{audience_id}{variant}"
    config["mappings"] = {"audience_memberships": {"audience_attribute_name": "seg {audience_id}"}}
    run = run_target(
        config,
        [
            *singer_lines("audience_memberships", [membership(11, "add")]),
            *singer_lines("other_memberships", [membership(12, "add", variant="-B")]),
        ],
    )
    assert run.error is None
    names = sorted(name for b in server.batches() for name in b["user_attributes"])
    assert names == ["aud_Big spenders_12-B", "seg 11"]


@pytest.mark.parametrize(
    ("template", "named"),
    [
        ("aud_{audience_name[0]}", "'{audience_name[0]}' is not one of"),
        ("{audience_name.__class__.__mro__}", "'{audience_name.__class__.__mro__}' is not"),
        ("{audience_id:>99999999}", "'{audience_id:>99999999}' is not one of"),
        ("{audience_id!r}", "'{audience_id!r}' is not one of"),
        ("{segment}", "'{segment}' is not one of"),
        ("aud_{audience_id", "is not a usable name (expected '}'"),
    ],
)
def test_audience_attribute_name_takes_bare_placeholders_only(config, template, named):
    """Values from the files go through `str.format`: an index, attribute or width could not."""
    config["audience_attribute_name"] = template
    config["mappings"] = {"audience_memberships": {"audience_attribute_name": template}}
    with pytest.raises(ConfigValidationError) as caught:
        TargetMParticle(config=config)
    errors = caught.value.errors
    assert len(errors) == 2
    assert errors[0].startswith("mappings['audience_memberships'].audience_attribute_name")
    assert errors[1].startswith("audience_attribute_name ")
    assert all(named in error for error in errors)


def test_audience_attribute_name_keeps_literal_braces(server, config):
    config["audience_attribute_name"] = "{{seg}}_{audience_id}"
    run = run_target(config, singer_lines("audience_memberships", [membership(11, "add")]))
    assert run.error is None
    assert [b["user_attributes"] for b in server.batches()] == [{"{seg}_11": True}]


def test_audience_rows_that_cannot_name_their_attribute_are_invalid(server, config):
    """An audience id that is no integer (it used to become `audience_None`), an empty name."""
    config["on_invalid_record"] = "dead_letter"
    config["mappings"] = {"nameless": {"audience_attribute_name": "{audience_name}"}}
    run = run_target(
        config,
        [
            *singer_lines(
                "audience_memberships",
                [
                    membership(t.cast("int", None), "add"),
                    membership(t.cast("int", {"id": 1}), "add"),
                    membership(t.cast("int", "21"), "add"),  # integer text is an integer
                ],
            ),
            *singer_lines("nameless", [membership(22, "add", audience_name=None)]),
            *singer_lines("audience_user_attributes", [attribute("", "upsert", value="x")]),
        ],
    )
    assert run.error is None
    names = [name for b in server.batches() for name in b.get("user_attributes", {})]
    assert names == ["audience_21"]
    reasons = [letter["reason"] for letter in dead_letters(config)]
    assert len(reasons) == 4
    assert "audience_id None is not an integer" in reasons[0]
    assert "audience_id {'id': 1} is not an integer" in reasons[1]
    assert "audience_attribute_name gives it an empty attribute name" in reasons[2]
    assert "its attribute key is empty" in reasons[3]


def test_a_later_change_for_a_user_is_never_overtaken(server, config):
    """Adds then removes, within one drain and across drains with requests in parallel.

    The stand-in records batches in the order it accepted them; applying them in that
    order, as mParticle would, must leave every user as the records' own order does.
    """
    config["max_parallel_requests"] = 4
    config["batch_size_rows"] = 400  # three drains, each of up to 300 users: 3 requests
    server.answer_delay_s = 0.01  # keeps several requests in flight at once
    users = 300
    rows = [membership(1, "add", identity_value=f"c-{user}") for user in range(users)]
    for user in range(users):
        rows.append(membership(1, "remove", identity_value=f"c-{user}"))
        rows.append(membership(2, "add", identity_value=f"c-{user}"))
    rows.extend(membership(2, "remove", identity_value=f"c-{user}") for user in range(0, users, 3))
    run = run_target(config, singer_lines("audience_memberships", rows))
    assert run.error is None
    assert server.rejected == []
    final: dict[str, dict[str, bool]] = {}
    for batch in server.batches():  # in arrival order
        state = final.setdefault(batch["user_identities"]["customer_id"], {})
        for name in batch.get("deleted_user_attributes") or ():
            state.pop(name, None)
        state.update(batch.get("user_attributes") or {})
    assert max(r.n_batches for r in server.requests) == 100  # full requests, in parallel
    for user in range(users):
        expected = {} if user % 3 == 0 else {"audience_2": True}
        assert final[f"c-{user}"] == expected, user


def test_a_users_later_row_is_what_mparticle_gets_whatever_order_requests_finish(server, config):
    """Rows 1 and 150 of one user: in two of a drain's parallel requests, the first
    could be applied last. Folded, the user's one batch holds row 150's value."""
    config["mappings"] = {"users": {"kind": "user", "identities": {"customer_id": "id"}}}
    rows = [{"id": f"u-{n}", "plan": "old"} for n in range(200)]
    rows[150] = {"id": "u-1", "plan": "new"}
    run = run_target(config, singer_lines("users", rows, key=["id"]))
    assert run.error is None
    mine = [b for b in server.batches() if b["user_identities"]["customer_id"] == "u-1"]
    assert [b["user_attributes"]["plan"] for b in mine] == ["new"]
    assert len(server.requests) > 1  # the two rows were a request apart
    assert len(server.batches()) == 199  # 200 rows, u-1's two in one batch
