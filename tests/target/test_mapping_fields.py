"""A mapped row's own event type, session, custom flags and location (the `*_field` keys).

Every body goes through the stand-in (or a dry run checked by the same validator),
which holds it to mParticle's published JSON Schema.
"""

from __future__ import annotations

import json
import logging
import typing as t

import pytest
import yaml
from singer_sdk.exceptions import ConfigValidationError

from target_mparticle.convert import BatchDefaults, Converter
from target_mparticle.mapping import StreamMapping
from target_mparticle.target import TargetMParticle
from target_mparticle.values import Tally
from tests.support.eventsapi import load_validator
from tests.support.files import REPO_ROOT, dead_letters
from tests.support.target import dry_run_dead_letters, run_target, singer_lines

validate = load_validator()

# The values of mParticle's own examples in its Events API JSON reference
# (docs.mparticle.com/developers/server/json-reference/): the custom_event example
# ("click", "navigation", its session_uuid), the `location` section's coordinates and
# the `custom_flags` section's Google flags.
EXAMPLE_SESSION = "91b86d0c-86cb-4124-a8b2-edee107de454"
EXAMPLE_LOCATION = {"latitude": 40.7142, "longitude": 74.0064, "accuracy": 195.0165104914573}
EXAMPLE_FLAGS = {
    "Google.Category": "pageview",
    "Google.Label": "main:mktg:personal::home",
    "Google.Value": "123",
}
FIELDS = {
    "custom_event_type_field": "event_type",
    "session_uuid_field": "session",
    "custom_flags_field": "flags",
    "location_field": "where",
}


def converter(mapping: dict[str, t.Any]) -> Converter:
    parsed = StreamMapping.from_config(mapping, explicit=True)
    return Converter("s", ["id"], parsed, BatchDefaults(), Tally())


def clicks_mapping(**extra: t.Any) -> dict[str, t.Any]:
    return {
        "clicks": {
            "identities": {"customer_id": "customer_id"},
            "event_name_field": "name",
            "source_message_id_field": "id",
            **FIELDS,
            **extra,
        }
    }


def click(**fields: t.Any) -> dict[str, t.Any]:
    row = {
        "id": "e8335d31-2031-4bff-afec-17ffc1784697",
        "customer_id": "c-1",
        "name": "click",
        "button_name": "home",
        "event_type": "navigation",
        "session": EXAMPLE_SESSION,
        "flags": EXAMPLE_FLAGS,
        "where": EXAMPLE_LOCATION,
    }
    row.update(fields)
    return row


def test_a_row_like_mparticles_example_is_sent_as_the_example(server, config):
    config["mappings"] = clicks_mapping()
    run = run_target(config, singer_lines("clicks", [click()], key=["id"]))
    assert run.error is None
    assert server.rejected == []
    (event,) = server.events()
    # The fields the keys consume are the event's own, not custom attributes too.
    assert event == {
        "event_type": "custom_event",
        "data": {
            "source_message_id": "e8335d31-2031-4bff-afec-17ffc1784697",
            "session_uuid": EXAMPLE_SESSION,
            "location": EXAMPLE_LOCATION,
            "custom_flags": EXAMPLE_FLAGS,
            "custom_attributes": {"button_name": "home"},
            "event_name": "click",
            "custom_event_type": "navigation",
        },
    }


def test_json_text_from_a_csv_tap_and_scalar_flags(tmp_path):
    """CSV and spreadsheet taps send JSON columns as text; numbers and booleans
    become text, as the schema's String takes them; a null flag says nothing."""
    config = dry_run_dead_letters(tmp_path)
    config["mappings"] = clicks_mapping()
    row = click(
        flags=json.dumps({"Google.Value": 123, "GA4.NonInteraction": True, "gone": None}),
        where=json.dumps({"latitude": "-33.8688", "longitude": 151.2093, "country_code": "AU"}),
        session="DDFBEA89-9A54-41C3-97F3-334FDD3B98BC",  # upper case, as in the reference
    )
    run = run_target(config, singer_lines("clicks", [row], key=["id"]))
    assert run.error is None
    (request,) = [json.loads(x) for x in (tmp_path / "dry.jsonl").read_text().splitlines()]
    (batch,) = request["body"]
    assert validate(batch) == []
    data = batch["events"][0]["data"]
    assert data["custom_flags"] == {"Google.Value": "123", "GA4.NonInteraction": "true"}
    assert data["location"] == {"latitude": -33.8688, "longitude": 151.2093, "country_code": "AU"}
    assert data["session_uuid"] == "DDFBEA89-9A54-41C3-97F3-334FDD3B98BC"


def test_null_and_blank_values_leave_the_field_out_and_the_type_is_other(server, config, caplog):
    config["mappings"] = clicks_mapping()
    rows = [
        click(id="a", event_type=None, session=None, flags=None, where=None),
        click(id="b", event_type="", session=" ", flags={}, where={}),
        click(id="c", event_type="search", flags="", where={"latitude": None, "longitude": None}),
    ]
    with caplog.at_level(logging.WARNING):
        run = run_target(config, singer_lines("clicks", rows, key=["id"]))
    assert run.error is None
    assert server.rejected == []
    sent = {e["data"]["source_message_id"]: e["data"] for e in server.events()}
    for row in ("a", "b"):
        assert sent[row]["custom_event_type"] == "other"
        assert not {"session_uuid", "custom_flags", "location"} & set(sent[row])
        assert sent[row]["custom_attributes"] == {"button_name": "home"}
    assert sent["c"]["custom_event_type"] == "search"
    assert sent["c"]["session_uuid"] == EXAMPLE_SESSION
    # The fall-back to other is counted in the run's closing warnings, not silent.
    assert "2 custom_events sent as other: field 'event_type' null or blank" in caplog.text


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        (
            {"event_type": "Navigation"},
            (
                "custom event type field 'event_type' holds 'Navigation', not a custom_event type "
                "the Events API accepts (location, media, navigation, other, search, social, "
                "transaction, user_content, user_preference)"
            ),
        ),
        ({"event_type": "purchase"}, "holds 'purchase', not a custom_event type"),
        ({"event_type": 7}, "custom event type field 'event_type' holds 7, not a custom_event"),
        ({"session": "session-1"}, "session uuid field 'session' holds 'session-1', not a UUID"),
        ({"session": 12}, "session uuid field 'session' holds 12, not a UUID"),
        ({"flags": "[1, 2]"}, "custom flags field 'flags' holds [1, 2], not an object"),
        ({"flags": "{oops"}, "custom flags field 'flags' holds '{oops', which is not JSON"),
        (
            {"flags": {"GA4.Items": ["a", "b"]}},
            (
                "custom flags field 'flags': flag 'GA4.Items' holds ['a', 'b']; the Events API "
                "takes text, a number or a boolean per flag"
            ),
        ),
        ({"where": [40.7, 74.0]}, "location field 'where' holds [40.7, 74.0], not an object"),
        (
            {"where": {"lat": 40.7, "lng": 74.0}},
            "location field 'where' has 'lat', not a location key (latitude, longitude, ",
        ),
        (
            {"where": {"latitude": 40.7}},
            "location field 'where' has no longitude (the Events API needs both)",
        ),
        (
            {"where": {"latitude": 91, "longitude": 0}},
            "location field 'where': latitude 91.0 is not from -90 to 90",
        ),
        (
            {"where": {"latitude": "1e999", "longitude": 0}},
            "location field 'where': latitude '1e999' is not a number",
        ),
        (
            {"where": {"latitude": 0, "longitude": "east"}},
            "location field 'where': longitude 'east' is not a number",
        ),
        (
            {"where": {"latitude": 0, "longitude": 0, "accuracy": -1}},
            "location field 'where': accuracy -1.0 is not at least 0",
        ),
        (
            {"where": {"latitude": 0, "longitude": 0, "dma_code": 501.5}},
            "location field 'where': dma_code 501.5 is not a 32-bit integer",
        ),
        (
            {"where": {"latitude": 0, "longitude": 0, "location_source": "gps"}},
            "location_source 'gps' is not one of unknown, ip_lookup, lat_long",
        ),
    ],
)
def test_a_value_the_events_api_would_refuse_makes_the_record_invalid(tmp_path, fields, reason):
    config = dry_run_dead_letters(tmp_path)
    config["mappings"] = clicks_mapping()
    good = click(id="good")
    run = run_target(config, singer_lines("clicks", [click(id="bad", **fields), good], key=["id"]))
    assert run.error is None
    (letter,) = dead_letters(config)
    assert letter["record"]["id"] == "bad"
    # Named by stream and key, then the field and the value.
    named = 'stream \'clicks\' record {"id":"bad"}: '
    assert letter["reason"].startswith(named), letter["reason"]
    assert reason in letter["reason"]
    (request,) = [json.loads(x) for x in (tmp_path / "dry.jsonl").read_text().splitlines()]
    assert [b["events"][0]["data"]["source_message_id"] for b in request["body"]] == ["good"]


def test_on_invalid_record_fail_stops_the_run_naming_the_value(config):
    config["mappings"] = clicks_mapping()
    config["on_invalid_record"] = "fail"
    run = run_target(config, singer_lines("clicks", [click(event_type="nope")], key=["id"]))
    assert run.error is not None
    assert "custom event type field 'event_type' holds 'nope'" in str(run.error)


def test_a_commerce_rows_own_type_is_its_product_action_unless_it_names_one(server, config):
    """As the literal custom_event_type does: the reference puts the action in
    product_action.action, which a `product_action` field still sets per row."""
    config["mappings"] = {
        "cart": {
            "kind": "commerce_event",
            "identities": {"customer_id": "customer_id"},
            "source_message_id_field": "id",
            "custom_event_type_field": "step",
            "event_attributes": [],
        }
    }
    rows = [
        {"id": "1", "customer_id": "c", "step": "add_to_cart", "total_amount": 5},
        {"id": "2", "customer_id": "c", "step": "checkout", "product_action": "refund"},
        {"id": "3", "customer_id": "c", "step": "navigation", "total_amount": 1},
        {"id": "4", "customer_id": "c", "step": None, "total_amount": 2},
    ]
    run = run_target(config, singer_lines("cart", rows, key=["id"]))
    assert run.error is None
    assert server.rejected == []
    sent = {e["data"]["source_message_id"]: e["data"] for e in server.events()}
    got = {k: (d.get("custom_event_type"), d["product_action"]["action"]) for k, d in sent.items()}
    assert got == {
        "1": ("add_to_cart", "add_to_cart"),
        "2": ("checkout", "refund"),
        "3": ("navigation", "purchase"),
        "4": (None, "purchase"),
    }


def test_a_commerce_row_takes_the_commerce_types(tmp_path):
    config = dry_run_dead_letters(tmp_path)
    config["mappings"] = {
        "cart": {
            "kind": "commerce_event",
            "identities": {"customer_id": "customer_id"},
            "custom_event_type_field": "step",
        }
    }
    rows = [{"id": "1", "customer_id": "c", "step": "add_to_basket"}]
    assert run_target(config, singer_lines("cart", rows, key=["id"])).error is None
    (letter,) = dead_letters(config)
    assert (
        "holds 'add_to_basket', not a commerce_event type the Events API accepts ("
        in (letter["reason"])
    )
    assert "add_to_cart, " in letter["reason"]


def test_screen_views_take_session_flags_and_location(server, config):
    config["mappings"] = {
        "screens": {
            "kind": "screen_view",
            "identities": {"customer_id": "customer_id"},
            "session_uuid_field": "session",
            "custom_flags_field": "flags",
            "location_field": "where",
        }
    }
    row = {
        "customer_id": "c",
        "session": EXAMPLE_SESSION,
        "flags": EXAMPLE_FLAGS,
        "where": EXAMPLE_LOCATION,
    }
    assert run_target(config, singer_lines("screens", [row])).error is None
    assert server.rejected == []
    (event,) = server.events()
    assert event["event_type"] == "screen_view"
    data = event["data"]
    assert (data["session_uuid"], data["location"], data["custom_flags"]) == (
        EXAMPLE_SESSION,
        EXAMPLE_LOCATION,
        EXAMPLE_FLAGS,
    )
    assert "custom_attributes" not in data


@pytest.mark.parametrize("key", list(FIELDS))
def test_kind_user_refuses_the_event_keys_at_start_up(config, key):
    config["mappings"] = {"users": {"kind": "user", key: "f"}}
    with pytest.raises(ConfigValidationError) as refused:
        TargetMParticle(config=config)
    assert refused.value.errors == [
        f"mappings['users'].{key} is for event mappings ("
        + (
            "custom_event, commerce_event"
            if key == "custom_event_type_field"
            else "custom_event, screen_view, commerce_event"
        )
        + "); a kind user mapping sends no event"
    ]


@pytest.mark.parametrize(
    ("mapping", "error"),
    [
        (
            {"custom_event_type": "search", "custom_event_type_field": "t"},
            "mappings['m']: set custom_event_type or custom_event_type_field, not both",
        ),
        (
            {"kind": "screen_view", "custom_event_type_field": "t"},
            (
                "mappings['m'].custom_event_type_field is for custom_event and commerce_event "
                "mappings; a screen_view has no custom_event_type"
            ),
        ),
        ({"location_field": ""}, "mappings['m'].location_field must be a non-empty string"),
    ],
)
def test_mistakes_in_the_keys_are_refused_at_start_up(config, mapping, error):
    config["mappings"] = {"m": mapping}
    with pytest.raises(ConfigValidationError) as refused:
        TargetMParticle(config=config)
    assert error in refused.value.errors, refused.value.errors


@pytest.mark.parametrize("key", list(FIELDS))
def test_a_mapped_field_the_schema_lacks_is_warned_about(config, caplog, key):
    """A misspelt field name: the row carries no such field, so the key does nothing."""
    config["mappings"] = clicks_mapping(**{key: "misspelt"})
    with caplog.at_level(logging.WARNING):
        run = run_target(config, singer_lines("clicks", [click()], key=["id"]))
    assert run.error is None
    assert "mapped field 'misspelt' is not in the stream's schema" in caplog.text
    assert "mapped field 'misspelt' was absent from 1 of 1 record" in caplog.text


def test_the_keys_are_in_the_config_schema_for_about():
    about = TargetMParticle.config_jsonschema["properties"]["mappings"]
    entry = about["additionalProperties"]["properties"]
    assert set(FIELDS) <= set(entry)


def test_the_readme_example_runs_as_written(server, config):
    text = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("##### Events with their own type, session, flags and location\n", 1)[1]
    mapping_yaml = section.split("```yaml\n", 1)[1].split("```", 1)[0]
    row_text = section.split("A row `", 1)[1].split("` becomes", 1)[0]
    config.update(yaml.safe_load(mapping_yaml))
    row = json.loads(" ".join(row_text.split("\n")))
    run = run_target(config, singer_lines("clicks", [row]))
    assert run.error is None
    assert server.rejected == []
    (event,) = server.events()
    data = event["data"]
    assert data["custom_event_type"] == "navigation"
    assert data["session_uuid"] == EXAMPLE_SESSION
    assert data["custom_flags"] == {"Google.Category": "pageview"}
    assert data["location"] == EXAMPLE_LOCATION
    assert data["custom_attributes"] == {"button_name": "home"}


def test_ids_of_mappings_without_the_keys_are_what_they_were():
    """A mapping's ids are scoped by what it says: adding the keys to the mapping type
    must not re-scope mappings that use none of them, or a re-run after upgrading
    re-sends batches mParticle would have dropped as copies."""
    row = {"id": 1, "email": "a@b.c", "n": 2}
    # The request id this row had before the keys existed (commit f83b9fc).
    assert converter({"identities": {"email": "email"}}).convert(row).request_id == (
        "3473818c-bb96-595b-ba08-cec7433fa7c8"
    )
    # A mapping that does use one is another mapping: its corrected rows are new.
    changed = converter({"identities": {"email": "email"}, "location_field": "geo"})
    assert changed.convert(row).request_id != "3473818c-bb96-595b-ba08-cec7433fa7c8"
