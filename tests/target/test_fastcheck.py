"""The quick check says "valid" only where the full validator agrees, and says it often.

`fastcheck` lets `inbound.fit_event` and `fit_shell` skip the compiled validator
for values it is certain about. Its one promise: True implies valid. These tests
break real events and batches (mParticle's own, from tests/fixtures/real) at every
position, with every kind of hostile value, and add every property each event type
names, and compare with the full validator; and they pin that the usual shapes do
take the quick path, so the saving cannot silently disappear.
"""

from __future__ import annotations

import collections
import copy
import typing as t

import fastjsonschema
import pytest

from target_mparticle import inbound, schema_rules
from target_mparticle.clean import _certainly_valid, clean_event
from target_mparticle.coerce import DROP, clean_data, clean_value
from target_mparticle.convert import BatchDefaults, Converter
from target_mparticle.fastcheck import Compiler
from target_mparticle.inbound import InvalidRecordError
from target_mparticle.settings import TargetSettings
from target_mparticle.values import Tally, user_attributes
from tests.support.files import real_batches

UUID = "0f8fad5b-d9cb-469f-a165-70867728950e"
#: One of each kind of value a producer sends where it should not.
HOSTILE: tuple[t.Any, ...] = (
    None,
    "",
    "x",
    "navigation",
    "production",
    "iOS",
    UUID,
    UUID + "\n",
    "1.2.3.4",
    0,
    -1,
    1.5,
    2.0,
    True,
    [],
    ["a"],
    ["a", 1],
    [{}],
    [None],
    {},
    {"k": "v"},
    {"k": {}},
    {"k": ["a"]},
    {"email": "a@b.c"},
)


def full(check: t.Callable[[t.Any], t.Any], value: object) -> bool:
    try:
        check(copy.deepcopy(value))
    except fastjsonschema.JsonSchemaValueException:
        return False
    return True


def positions(value: object, path: tuple[t.Any, ...] = ()) -> t.Iterator[tuple[t.Any, ...]]:
    """Every position inside a nested value (not the root)."""
    children: t.Iterable[tuple[t.Any, t.Any]] = ()
    if isinstance(value, dict):
        children = value.items()
    elif isinstance(value, list):
        children = enumerate(value)
    for key, child in children:
        yield (*path, key)
        yield from positions(child, (*path, key))


def replaced(value: t.Any, path: tuple[t.Any, ...], new: object) -> t.Any:
    out = copy.deepcopy(value)
    inner = out
    for key in path[:-1]:
        inner = inner[key]
    inner[path[-1]] = new
    return out


def real_events() -> list[dict[str, t.Any]]:
    """The corpus's events as `fit_event` receives them (coerced by `clean_event`)."""
    events = []
    for batch in real_batches("events/") + real_batches("firehose-events/"):
        for raw in batch.get("events") or ():
            data = copy.deepcopy(raw.get("data"))
            try:
                events.append(clean_event(raw.get("event_type"), data, collections.Counter()))
            except InvalidRecordError:
                continue
    return events


def judged(quick: t.Callable[[t.Any], bool], check: t.Any, values: t.Iterable[t.Any]) -> int:
    """Assert quick ⇒ full for every value; return how many the quick check accepted."""
    accepted = 0
    for value in values:
        if quick(value):
            accepted += 1
            assert full(check, value), value
    return accepted


def test_no_broken_real_event_is_judged_more_leniently_than_by_the_schema():
    events = real_events()
    assert len(events) > 20
    # Most of what clean_event returns takes the quick path; the rest (e.g. an enum
    # beside a `$ref`, read strictly here) goes to the full check.
    assert sum(inbound._event_quick(e["event_type"])(e) for e in events) > 0.7 * len(events)
    accepted = 0
    tried = 0
    for event in events:
        quick = inbound._event_quick(event["event_type"])
        check = inbound._event_check(event["event_type"])
        mutants = [replaced(event, p, new) for p in positions(event) for new in HOSTILE]
        tried += len(mutants)
        accepted += judged(quick, check, mutants)
    # The quick check still says yes to a good share of the broken ones (scalars
    # swapped for scalars); a check that always said no would pass the loop above.
    assert 0.1 * tried < accepted < tried


def sample(schema: t.Any) -> t.Any:
    """A value the schema accepts, for the simple schemas required fields have."""
    definitions = inbound.schema()["definitions"]
    if "enum" in schema:
        return schema["enum"][0]
    if "$ref" in schema:
        return sample(definitions[schema["$ref"].rsplit("/", 1)[-1]])
    named = schema.get("type", "object")
    kinds = named if isinstance(named, list) else [named]
    if "object" in kinds or "properties" in schema:
        properties = schema.get("properties", {})
        return {name: sample(properties[name]) for name in schema.get("required", ())}
    simple = {"string": "x", "integer": 1, "number": 1.5, "boolean": True, "array": []}
    return next(simple[k] for k in kinds if k in simple)


def data_properties(event_type: str) -> dict[str, t.Any]:
    """Every `data` property an event type's definition names, with its schema."""
    definitions = inbound.schema()["definitions"]
    found: dict[str, t.Any] = {}
    for part in inbound._data_parts(event_type):
        resolved = definitions.get(part.get("$ref", "").rsplit("/", 1)[-1], part)
        found.update(resolved.get("properties", {}))
    return found


@pytest.mark.parametrize("event_type", sorted(inbound.event_definitions()))
def test_every_property_of_every_event_type_is_judged_no_more_leniently(event_type):
    check = inbound._event_check(event_type)
    quick = inbound._event_quick(event_type)
    properties = data_properties(event_type)
    data = {name: sample(properties[name]) for name in inbound.required_data_fields(event_type)}
    base = {"event_type": event_type, "data": data}
    assert full(check, base), base
    assert quick(base)
    mutants = [
        replaced(base, ("data", name), value)
        for name in [*properties, "unknown_field"]
        for value in HOSTILE
    ]
    mutants += [{**base, "extra": 1}, {"event_type": event_type}, {**base, "data": None}]
    assert judged(quick, check, mutants) > 0


def real_shells() -> list[dict[str, t.Any]]:
    """The corpus's batches as `fit_shell` receives them (from the target's converter)."""
    settings = TargetSettings.from_config({"api_key": "k", "api_secret": "s"})
    converter = Converter("batches", [], settings.mapping_for("batches"), BatchDefaults(), Tally())

    def shell(batch: dict[str, t.Any]) -> dict[str, t.Any] | None:
        try:
            return converter.convert(copy.deepcopy(batch)).batch
        except InvalidRecordError:
            return None

    made = (shell(b) for b in real_batches("events/") + real_batches("firehose-events/"))
    return [s for s in made if s is not None]


def test_no_broken_real_batch_is_judged_more_leniently_than_by_the_schema():
    shells = real_shells()
    assert len(shells) > 10
    check = inbound._shell_check()
    quick = inbound._shell_quick()
    assert sum(quick(s) for s in shells) > 0.7 * len(shells)
    mutants = [replaced(s, p, new) for s in shells for p in positions(s) for new in HOSTILE]
    mutants += [
        {**s, name: new}
        for s in shells[:3]
        for name in ("user_identities", "mpid", "ip", "new_field")
        for new in HOSTILE
    ]
    assert judged(quick, check, mutants) > len(mutants) / 10


def test_attributes_user_attributes_builds_are_always_valid_so_the_quick_check_trusts_them():
    """`fit_shell(..., built_attributes=True)` skips them; this is why that is sound."""
    check = inbound._shell_check()
    trusting = inbound._shell_quick(built_attributes=True)
    values = (*HOSTILE, "v" * 5000, ["a"] * 1200, ["x" * 600, None, 2.5, True], 1e300, -0.0)
    names = ("plan", "n" * 300, "", "$Age")
    shells = []
    for value in values:
        attributes = user_attributes([(name, value) for name in names], Tally())
        shells.append({"environment": "development", "mpid": 7, "user_attributes": attributes})
    assert judged(trusting, check, shells) == len(shells)
    # Everything else is still checked: only the attributes are taken as they are.
    broken = [
        {**shells[0], "mpid": "seven"},
        {**shells[0], "environment": "staging"},
        {**shells[0], "user_identities": {"email": ["a"]}},
        {**shells[0], "new_field": 1},
    ]
    assert judged(trusting, check, broken) == 0


def test_the_usual_shells_take_the_quick_path():
    quick = inbound._shell_quick()
    assert quick(
        {
            "environment": "development",
            "user_identities": {"email": "a@example.com", "customer_id": "7"},
            "mpid": 1000,
            "device_info": {"platform": "iOS", "ios_idfv": UUID},
            "user_attributes": {"plan": "pro", "tags": ["a", "b"]},
            "deleted_user_attributes": ["old"],
            "context": {"data_plan": {"plan_id": "p", "plan_version": 2}},
        }
    )
    assert not quick({"environment": "staging"})
    assert not quick({"environment": "development", "ip": "1.2.3.4"})  # `format`: not modelled


def test_what_the_compiler_does_not_model_is_never_certain():
    compiler = Compiler({})
    assert not compiler.check({"type": "string", "format": "ipv4"})("1.2.3.4")
    assert not compiler.check({"oneOf": [{"type": "string"}]})("a")
    assert not compiler.check({"enum": [1, 2]})(1)
    assert not compiler.check({"$ref": "#/definitions/Missing"})("a")
    assert not compiler.check({"$ref": "#/definitions/X", "type": "string"})("a")


def test_types_are_matched_more_strictly_than_the_validator_never_less():
    compiler = Compiler({})
    integer = compiler.check({"type": "integer"})
    assert integer(3)
    assert not integer(True)  # noqa: FBT003 - the value under test
    assert not integer(3.0)  # the validator takes 3.0; the quick check leaves it to it
    assert compiler.check({"type": "number"})(3)
    assert not compiler.check({"type": "number"})(False)  # noqa: FBT003 - under test


def test_a_final_dollar_is_the_end_of_the_text_as_the_validator_reads_it():
    check = Compiler({}).check({"type": "string", "pattern": "^a$"})
    assert check("a")
    assert not check("a\n")
    assert not Compiler({}).check({"pattern": "^a$b"})("a")


def test_a_definition_that_refers_to_itself_compiles_and_is_never_certain_inside():
    document = {
        "definitions": {
            "Node": {
                "type": "object",
                "properties": {"next": {"$ref": "#/definitions/Node"}},
            }
        }
    }
    check = Compiler(document).check({"$ref": "#/definitions/Node"})
    assert check({})
    assert not check({"next": {}})


def test_all_of_and_any_of_and_additional_properties():
    strings = {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]}
    check = Compiler({}).check(
        {
            "type": "object",
            "allOf": [
                {"properties": {"a": {"type": "string"}}, "required": ["a"]},
                {
                    "properties": {
                        "a": {"enum": ["x", "y"]},
                        "b": {"type": "integer"},
                        "c": strings,
                    },
                    "additionalProperties": False,
                },
            ],
        }
    )
    assert check({"a": "x"})
    assert check({"a": "x", "c": "s"})
    assert check({"a": "x", "c": ["s", "t"]})
    assert not check({"a": "z"})
    assert not check({"b": 1})
    assert not check({"a": "x", "d": 1})
    assert not check({"a": "x", "c": ["s", 1]})
    assert not check({"a": "x", "c": None})


def test_whatever_clean_event_returns_for_a_broken_real_event_is_valid():
    """Coercion and check in one pass (`clean._certainly_valid`) never lets one through.

    A field whose coercion can only give a type the schema takes there skips the
    check; this breaks every field of mParticle's real events with every hostile
    value and checks each result with the full validator.
    """
    raw_events = [
        e
        for b in real_batches("events/") + real_batches("firehose-events/")
        for e in b.get("events") or ()
        if isinstance(e.get("data"), dict)
    ]
    results = 0
    for raw in raw_events:
        data = raw["data"]
        for path in positions(data):
            for value in HOSTILE:
                try:
                    event = clean_event(raw["event_type"], replaced(data, path, value), Tally())
                except InvalidRecordError:
                    continue
                results += 1
                assert full(inbound._event_check(event["event_type"]), event), event
    assert results > 10_000


def field_by_field(data: dict[str, t.Any], tally: Tally) -> dict[str, t.Any]:
    """What cleaning an event's data means: each field through its name's coercion."""
    out = {}
    for key, value in data.items():
        if key in schema_rules.OUTBOUND_ONLY_DATA_FIELDS:
            continue
        cleaned = clean_value(key, value, tally)
        if cleaned is not DROP:
            out[key] = cleaned
    return out


def test_an_events_data_planned_once_per_shape_cleans_as_field_by_field():
    """`clean_data` (a plan per set of field names, as-is shortcuts) = each field coerced.

    Every field of mParticle's real events, top level and nested, takes every hostile
    value, plus names at and over their limit and a digit string where an integer goes.
    """
    samples = [
        e["data"]
        for b in real_batches("events/") + real_batches("firehose-events/")
        for e in b.get("events") or ()
        if isinstance(e.get("data"), dict)
    ]
    # What an outbound copy adds, which only mParticle may set.
    samples.append({**samples[0], **dict.fromkeys(schema_rules.OUTBOUND_ONLY_DATA_FIELDS, "1")})
    extra = ("7", "n" * schema_rules.API_LIMIT_NAME, "n" * (schema_rules.API_LIMIT_NAME + 1))
    compared = 0
    for data in samples:
        for path in positions(data):
            for value in (*HOSTILE, *extra):
                broken = replaced(data, path, value)
                planned, expected = Tally(), Tally()
                assert clean_data(broken, planned) == field_by_field(broken, expected), (
                    path,
                    value,
                )
                assert planned == expected
                compared += 1
    assert compared > 10_000


def test_a_usual_event_is_certain_from_its_coercions_alone():
    data = {
        "event_name": "Play",
        "custom_event_type": "media",
        "timestamp_unixtime_ms": 1_763_000_000_000,
        "source_message_id": UUID,
        "event_id": 7,
        "custom_attributes": {"title": "Song"},
    }
    assert _certainly_valid("custom_event", data)
    assert not _certainly_valid("custom_event", {**data, "custom_event_type": "attribution"})
    assert not _certainly_valid("custom_event", {**data, "location": {"latitude": "x"}})
    assert not _certainly_valid(
        "custom_event", {k: v for k, v in data.items() if k != "event_name"}
    )


def test_fields_named_but_not_typed_take_any_value_and_required_ones_must_be_there():
    named = Compiler({}).check({"type": "object", "properties": {"a": {}, "b": True}})
    assert named({"a": {"x": [1]}, "c": None})
    assert not named(["a"])
    required = Compiler({}).check({"type": "object", "properties": {"a": {}}, "required": ["a"]})
    assert required({"a": None})
    assert not required({"b": 1})


def test_any_of_with_an_untyped_option_is_judged_by_each_option():
    check = Compiler({}).check({"anyOf": [{"enum": ["a", "b"]}, {"type": "null"}]})
    assert check("a")
    assert check(None)
    assert not check("c")
    assert not check(1)
    typed = Compiler({}).check({"anyOf": [{"type": "string", "enum": ["a"]}, {"type": "integer"}]})
    assert typed("a")
    assert typed(3)
    assert not typed("b")
    assert not typed(None)


def test_tables_keyed_by_input_field_names_stay_bounded():
    from target_mparticle import clean, coerce  # noqa: PLC0415 - the modules' private tables

    for index in range(coerce.MAX_NAMES + 50):
        clean_event("custom_event", {"event_name": "e", f"field_{index}": "x"}, Tally())
    assert len(clean._FIELD_RULES) <= coerce.MAX_NAMES
    assert len(clean._SHAPE_CHECKS) <= coerce.MAX_NAMES
    assert len(coerce._COERCE_BY_NAME) <= coerce.MAX_NAMES
    assert len(coerce._KIND_BY_NAME) <= coerce.MAX_NAMES
    assert len(coerce._PLANS) <= coerce.MAX_NAMES
