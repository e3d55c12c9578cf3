"""Numbers written as text are hostile too: each is read, or refused, at once.

`mparticle_facts.numbers` reads ids and times both plugins receive as strings. Text
that looks numeric to `str.isdigit` but not to `int` (`"²"`, `"+-5"`), 5,000 digits
(beyond Python's own int/str limit), or an exponent that would make a billion-digit
int (`"1e999999999"`) once crashed or hung the reader; each now reads as no number.
"""

from __future__ import annotations

import json
import subprocess
import sys
import typing as t

import pytest

from mparticle_facts.numbers import (
    INT64_MAX,
    INT64_MIN,
    MAX_DIGITS,
    MIN_UNIX_MS,
    epoch_ms,
    in_date_range,
    to_int,
    to_int64,
    to_number,
)
from tap_mparticle.audience_records import to_timestamp
from target_mparticle import schema_rules as rules
from target_mparticle.coerce import NUMBERS_DROPPED, UNREADABLE
from target_mparticle.values import to_epoch_ms
from tests.support.files import REPO_ROOT, dead_letters
from tests.support.target import run_target, run_target_cli, singer_lines

if t.TYPE_CHECKING:
    from tests.support.eventsapi import EventsApiServer

HOSTILE_TEXT = [
    "1e999999999",
    "-1e999999999",
    "1e-999999999",
    "9" * 5_000,
    "1" * 400 + ".5",
    "+-5",
    "--1",
    "²",
    "",
    "+",
    "NaN",
    "Infinity",
]


@pytest.mark.parametrize("text", HOSTILE_TEXT)
def test_hostile_numeric_text_is_no_number(text):
    assert to_int(text) is None
    assert to_number(text) is None or abs(to_number(text)) < 10**MAX_DIGITS
    assert epoch_ms(text) is None or isinstance(epoch_ms(text), int)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("42", 42),
        (" -7 ", -7),
        ("+3", 3),
        ("1.0", 1),
        ("1e3", 1000),
        ("٣", 3),
        ("9" * 4000, 10**4000 - 1),
    ],
)
def test_numeric_text_still_reads_exactly(text, expected):
    assert to_int(text) == expected


def test_hostile_numbers_in_records_cost_only_their_field(
    server: EventsApiServer, config: dict[str, t.Any]
):
    """A replayed event whose ids and times are hostile text is sent without them or refused."""
    events = [
        {
            "event_type": "custom_event",
            "data": {
                "event_name": "Play",
                "custom_event_type": "media",
                "event_id": text,
                "session_id": text,
                "timestamp_unixtime_ms": 1_763_000_000_000,
            },
        }
        for text in HOSTILE_TEXT
    ]
    batches = [{"user_identities": {"customer_id": "c1"}, "events": [e]} for e in events]
    config["on_invalid_record"] = "dead_letter"
    run = run_target(config, singer_lines("replayed", batches))
    assert run.error is None
    sent = server.events()
    assert len(sent) == len(HOSTILE_TEXT)
    assert all("event_id" not in e["data"] and "session_id" not in e["data"] for e in sent)
    assert json.dumps(sent)  # every body was valid JSON the stand-in accepted


@pytest.mark.parametrize(
    ("milliseconds", "inside"),
    [
        (MIN_UNIX_MS, True),
        (MIN_UNIX_MS - 1, False),
        (253402300799000, True),  # 9999-12-31T23:59:59.000
        (253402300799999, True),  # 9999-12-31T23:59:59.999: the last instant of year 9999
        (253402300800000, False),  # 10000-01-01T00:00:00.000
    ],
)
def test_the_date_range_is_years_1_to_9999_to_the_last_millisecond(milliseconds, inside):
    """Both plugins bound times the same way, and a real instant of 9999's last second is one."""
    assert in_date_range(milliseconds) is inside
    assert (to_epoch_ms(milliseconds) == milliseconds) is inside  # target: inclusive bound


def test_the_last_millisecond_of_year_9999_is_a_timestamp_the_tap_writes():
    assert to_timestamp("253402300799999") == "9999-12-31T23:59:59.999+00:00"
    assert to_timestamp("9999-12-31T23:59:59.9Z") == "9999-12-31T23:59:59.900+00:00"


# Python 3.10's datetime.fromisoformat refuses each of these; 3.11's reads them.
ISO_TIMES_311 = {
    "2024-05-01 12:00:00.1+00": 1714564800100,  # a warehouse's timestamptz as text
    "2024-05-01T12:00:00+0000": 1714564800000,
    "2024-05-01T12:00:00.1234567Z": 1714564800123,
    "20240501T120000Z": 1714564800000,
}


def test_times_read_as_python_3_11_reads_them_without_the_sdk_loaded():
    """On 3.10 singer-sdk patches datetime with the backport, but only once it is imported."""
    program = (
        "import json, sys\n"
        "from mparticle_facts.numbers import epoch_ms\n"
        "print(json.dumps([sorted(m for m in sys.modules if m.startswith('singer_sdk')),"
        f" [epoch_ms(text) for text in {list(ISO_TIMES_311)!r}]]))\n"
    )
    run = subprocess.run(  # a fresh interpreter: this one has the SDK loaded
        [sys.executable, "-c", program], capture_output=True, text=True, check=True, cwd=REPO_ROOT
    )
    loaded, read = json.loads(run.stdout)
    assert loaded == []
    assert read == list(ISO_TIMES_311.values())
    assert [epoch_ms(text) for text in ISO_TIMES_311] == list(ISO_TIMES_311.values())


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (INT64_MAX, INT64_MAX),
        (INT64_MIN, INT64_MIN),
        (str(INT64_MAX), INT64_MAX),
        (INT64_MAX + 1, None),
        (INT64_MIN - 1, None),
        ("9223372036854775808", None),
        (10**30, None),
        ("1e30", None),
    ],
)
def test_64_bit_integers_are_read_and_larger_ones_refused(value, expected):
    assert to_int64(value) == expected


def test_integers_beyond_64_bits_never_reach_a_request(
    server: EventsApiServer, config: dict[str, t.Any]
):
    """mParticle's ids and times are 64-bit; the schema's `integer` has no bound to say so."""
    huge = 10**30
    data = {"event_name": "Play", "custom_event_type": "media", "event_id": huge}
    replayed = [
        {
            "user_identities": {"customer_id": "c1"},
            "events": [
                {"event_type": "custom_event", "data": {**data, "timestamp_unixtime_ms": ts}}
            ],
        }
        for ts in (1_763_000_000_000, str(huge), huge)
    ]
    replayed.append({"mpid": huge, "events": [{"event_type": "custom_event", "data": data}]})
    config["on_invalid_record"] = "dead_letter"
    config["mappings"] = {
        "users": {"kind": "user", "identities": {"mpid": "mp"}},
        "orders": {"kind": "custom_event", "timestamp_field": "ts", "identities": {"email": "e"}},
    }
    run = run_target(
        config,
        [
            *singer_lines("replayed", replayed),
            *singer_lines("users", [{"id": 1, "mp": huge}, {"id": 2, "mp": INT64_MAX}]),
            *singer_lines("orders", [{"id": 1, "e": "a@example.com", "ts": huge}]),
        ],
    )
    assert run.error is None
    sent = server.events()
    assert len(sent) == 3
    assert all("event_id" not in e["data"] for e in sent)  # dropped, the events sent
    assert [e["data"].get("timestamp_unixtime_ms") for e in sent].count(1_763_000_000_000) == 1
    assert max(abs(v) for v in _numbers(server.batches())) <= INT64_MAX
    assert [b.get("mpid") for b in server.batches() if "events" not in b] == [INT64_MAX]
    reasons = [letter["reason"] for letter in dead_letters(config)]
    assert len(reasons) == 3
    # 3 event ids and 2 event times, each dropped and counted for the run's summary.
    assert run.target.delivery.tally["integers outside 64 bits dropped"] == 5
    assert any("timestamp field 'ts' holds 1" in r and "no usable time" in r for r in reasons)
    assert any("has no user identity, mpid or device identity" in r for r in reasons)
    assert any("mpid field 'mp' is not a 64-bit integer" in r for r in reasons)


#: Numbers beyond 64 bits, as JSON numbers and as text, just past each end and far out.
BEYOND_64_BITS = [INT64_MAX + 1, INT64_MIN - 1, 10**30, "99999999999999999999", "1e30", 1e300]


@pytest.mark.parametrize("huge", BEYOND_64_BITS, ids=repr)
def test_no_number_field_in_any_shape_carries_more_than_64_bits(
    server: EventsApiServer, config: dict[str, t.Any], huge: object
):
    """Every integer- and number-typed field, at every level and in every input shape.

    Number fields (prices, quantities, coordinates), fields the schema leaves free
    (`sdk_version`, `context`'s), batch-level ids and times, consent timestamps: each
    once reached the request as a 31-digit number, which the schema's unbounded
    `integer`/`number` let through and mParticle cannot store.
    """
    numbers = dict.fromkeys(sorted(rules.INTEGER_FIELDS | rules.NUMBER_FIELDS), huge)
    product = {"id": "p1", "name": "Pen", **numbers}
    data = {
        **numbers,
        "event_name": "Buy",
        "custom_event_type": "other",
        "timestamp_unixtime_ms": 1_763_000_000_000,
        "free_form": huge,
        "location": {"latitude": huge, "longitude": huge, "accuracy": huge},
        "product_action": {"action": "purchase", **numbers, "products": [product]},
        "shopping_cart": {"products": [product]},
        "product_impressions": [{"product_impression_list": "l", "products": [product]}],
        "custom_flags": {"flag": huge},
    }
    consent = {"consented": True, "timestamp_unixtime_ms": huge}
    replayed = {
        "user_identities": {"customer_id": "c1"},
        "mpid": huge,
        "origin_mpid": huge,
        "timestamp_unixtime_ms": huge,
        "sdk_version": huge,
        "context": {"data_plan": {"plan_id": "plan", "plan_version": huge}, "free_form": huge},
        "consent_state": {"gdpr": {"marketing": consent}, "ccpa": {"data_sale_opt_out": consent}},
        "device_info": {**numbers, "platform": "iOS"},
        "integration_attributes": {"1": {"free_form": huge}},
        "events": [
            {"event_type": kind, "data": {**data, "session_uuid": _UUID}}
            for kind in ("custom_event", "commerce_event", "screen_view", "session_start")
        ],
    }
    tap_event = {
        "event_type": "custom_event",
        "mpid": huge,
        "source_message_id": "m1",
        "user_identities": {"customer_id": "c1"},
        "device_info": {"att_timestamp_unixtime_ms": huge, "platform": "iOS"},
        "data": data,
    }
    config["on_invalid_record"] = "dead_letter"
    config["mappings"] = {
        "clicks": {
            "kind": "custom_event",
            "timestamp_field": "ts",
            "identities": {"customer_id": "c", "mpid": "mp"},
            "event_attributes": ["n"],
            "consent": {"gdpr": {"marketing": {"consented": "ok", "timestamp": "at"}}},
        },
        "orders": {"kind": "commerce_event", "timestamp_field": "ts", "identities": {"email": "e"}},
    }
    click = {"id": 1, "c": "c1", "mp": 5, "ts": 1_763_000_000_000, "n": huge, "ok": True}
    order = {"e": "a@example.com", "ts": 1_763_000_000_000, "total_amount": huge}
    run = run_target(
        config,
        [
            *singer_lines("replayed", [replayed]),
            *singer_lines("events", [tap_event]),
            *singer_lines("clicks", [click, {**click, "id": 2, "at": huge}]),
            *singer_lines("orders", [{**order, "products": [product]}]),
        ],
    )
    assert run.error is None
    assert max(abs(v) for v in _numbers(server.batches())) <= INT64_MAX
    assert server.rejected == []
    # Each record was sent without its huge numbers, but one: a consent time that
    # names no moment refuses its record, as any unusable consent time does.
    assert len(server.events()) == 4 + 1 + 1 + 1
    (letter,) = dead_letters(config)
    assert "consent timestamp field 'at' holds no usable time" in letter["reason"]
    assert run.target.delivery.tally["numbers outside 64 bits dropped"] > 0


_UUID = "3f0b6c8e-8a2f-4f50-9d0a-1c2b3d4e5f60"


def _numbers(value: object) -> t.Iterator[int | float]:
    if isinstance(value, dict):
        for item in value.values():
            yield from _numbers(item)
    elif isinstance(value, list):
        for item in value:
            yield from _numbers(item)
    elif type(value) in {int, float}:
        yield t.cast("int | float", value)


def test_numbers_json_allows_but_msgspec_cannot_hold_cost_only_their_field(
    server: EventsApiServer, config: dict[str, t.Any]
):
    """`1e400` and a 5,000-digit integer are valid JSON: they used to end the run as
    "not a JSON message"; now the record goes on and the number is dropped, counted."""
    schema = json.dumps(
        {"type": "SCHEMA", "stream": "orders", "schema": {"properties": {}}, "key_properties": []}
    )
    lines = [
        schema,
        '{"type": "RECORD", "stream": "orders", "record": {"e": "a@b.c", "total_amount": 1e400}}',
        '{"type": "RECORD", "stream": "orders", "record": {"e": "b@c.d", "total_amount": '
        + "9" * 5000
        + "}}",
        '{"type": "RECORD", "stream": "orders", "record": {"e": "c@d.e", "total_amount": 12.5}}',
    ]
    config["mappings"] = {
        "orders": {
            "kind": "commerce_event",
            "custom_event_type": "purchase",
            "identities": {"email": "e"},
        }
    }
    run = run_target(config, lines)
    assert run.error is None
    totals = [e["data"]["product_action"].get("total_amount") for e in server.events()]
    assert totals == [None, None, 12.5]
    tally = run.target.delivery.tally
    assert tally[NUMBERS_DROPPED] + tally[UNREADABLE] == 2  # each dropped, and said


def test_nan_and_infinity_are_left_out_and_counted_not_the_end_of_the_run(tmp_path):
    """Python's json.dumps writes them (singer-io taps), and the SDK's reader takes them.

    They used to end the run as "not a JSON message". Left out as a field the tap did
    not send, they delete nothing under `null_user_attributes: delete`.
    """
    schema = {
        "type": "SCHEMA",
        "stream": "users",
        "schema": {"properties": {}},
        "key_properties": [],
    }
    lines = [
        json.dumps(schema),
        (
            '{"type": "RECORD", "stream": "users", "record": {"e": "a@b.c", "plan": "pro", '
            '"score": NaN, "ratio": -Infinity, "tags": ["x", Infinity, "y"]}}'
        ),
        '{"type": "RECORD", "stream": "users", "record": {"e": "b@c.d", "big": 1e400, "n": NaN}}',
    ]
    config = {
        "dry_run": True,
        "dry_run_path": str(tmp_path / "dry.jsonl"),
        "mappings": {
            "users": {
                "kind": "user",
                "identities": {"email": "e"},
                "null_user_attributes": "delete",
            }
        },
    }
    done = run_target_cli(tmp_path, config, "\n".join(lines) + "\n")
    assert done.returncode == 0, done.stderr[-2000:]
    sent = [json.loads(line)["body"] for line in (tmp_path / "dry.jsonl").read_text().splitlines()]
    first, second = [batch for body in sent for batch in body]
    assert first["user_attributes"] == {"plan": "pro", "tags": ["x", "y"]}
    assert "deleted_user_attributes" not in first
    assert "n" not in second.get("user_attributes", {})
    assert (
        "Changed or left out to fit mParticle: 4 NaN and Infinity values left out "
        "(JSON and mParticle have no such number)"
    ) in done.stderr


def test_a_nan_line_sends_its_other_numbers_as_any_other_line_does(tmp_path):
    """Decoded again with Python's json, the line's floats stay floats (as msgspec reads
    them): as Decimals they were written otherwise (`1E-7` for `1e-07`), a change."""
    schema = {
        "type": "SCHEMA",
        "stream": "users",
        "schema": {"properties": {}},
        "key_properties": [],
    }
    row = '"z": 1e-7, "big": 12345678901234567890.5, "deep": '
    plain = "[" * 600 + "1" + "]" * 600
    nan = "[" * 600 + "1, NaN" + "]" * 600 + ', "q": NaN'
    start = '{"type": "RECORD", "stream": "users", "record": {"e": '
    lines = [
        json.dumps(schema),
        start + '"a@b.c", ' + row + plain + "}}",
        start + '"b@c.d", ' + row + nan + "}}",  # another user: not folded with the first
    ]
    config = {
        "dry_run": True,
        "dry_run_path": str(tmp_path / "dry.jsonl"),
        "mappings": {"users": {"kind": "user", "identities": {"email": "e"}}},
    }
    done = run_target_cli(tmp_path, config, "\n".join(lines) + "\n")
    assert done.returncode == 0, done.stderr[-2000:]
    sent = [json.loads(line)["body"] for line in (tmp_path / "dry.jsonl").read_text().splitlines()]
    plain, with_nan = [batch["user_attributes"] for body in sent for batch in body]
    assert with_nan == plain  # NaN 600 levels down left out, the rest written alike
    assert plain["z"] == "1e-07"


def test_a_nan_key_property_is_named_as_nan_not_only_as_missing(tmp_path):
    """Left out, a NaN key property makes the SDK's "missing key properties" error;
    the line says why, and only on the line that held it."""
    schema = {
        "type": "SCHEMA",
        "stream": "users",
        "schema": {"properties": {"id": {"type": "number"}, "e": {"type": "string"}}},
        "key_properties": ["id"],
    }
    start = '{"type": "RECORD", "stream": "users", "record": '
    lines = [
        json.dumps(schema),
        start + '{"id": 1, "e": "a@b.c", "n": NaN}}',
        start + '{"id": NaN, "e": "b@c.d", "score": Infinity}}',
        start + '{"e": "c@d.e"}}',
    ]
    config = {
        "dry_run": True,
        "dry_run_path": str(tmp_path / "dry.jsonl"),
        "mappings": {"users": {"kind": "user", "identities": {"email": "e"}}},
    }
    done = run_target_cli(tmp_path, config, "\n".join(lines[:3]) + "\n")
    assert done.returncode == 1
    errors = [line for line in done.stderr.splitlines() if "ERROR" in line]
    assert len(errors) == 1
    assert "Malformed Singer input at line 3: Record is missing" in errors[0]
    assert errors[0].endswith(
        "(this line's 'id' held NaN or Infinity, which JSON has no number for)"
    )
    # A later line that truly lacks its key is not blamed on an earlier NaN.
    done = run_target_cli(tmp_path, config, "\n".join([lines[0], lines[1], lines[3]]) + "\n")
    assert done.returncode == 1
    assert "Malformed Singer input at line 3: Record is missing" in done.stderr
    assert "held NaN" not in done.stderr


@pytest.mark.parametrize(
    "line",
    [
        '{"type": "STATE", "value": {"bookmarks": {"s": {"at": NaN}}}}',
        '{"type": "SCHEMA", "stream": "s", "schema": {"properties": {"a": {"maximum": NaN}}}}',
        '{"type": "RECORD", "stream": NaN, "record": {"a": 1}}',
        '{"type": "RECORD", "stream": "s", "record": {"a": NaN, "b": "\\ud800"}}',
        '{"type": "RECORD", "stream": "s", "record": {"a": NaN, "b": }}',
        '{"type": "RECORD", "stream": "s", "record": {"b": "\\ud800"}}',
    ],
    ids=[
        "nan-in-state",
        "nan-in-schema",
        "nan-as-stream",
        "nan-and-lone-surrogate",
        "nan-and-bad-syntax",
        "lone-surrogate",
    ],
)
def test_what_else_msgspec_refuses_stays_no_json(tmp_path, line):
    done = run_target_cli(
        tmp_path, {"dry_run": True, "dry_run_path": str(tmp_path / "d")}, line + "\n"
    )
    assert done.returncode == 1
    assert "line 1: not a JSON message" in done.stderr


def test_a_number_beyond_floats_under_multiple_of_is_an_invalid_record(tmp_path):
    """`1e400` reaches validation as a Decimal; a float `multipleOf` cannot divide it.

    That raised decimal's ConversionSyntax, reported as a broken schema ending the
    run; it is the record's value, so `on_invalid_record` takes the record.
    """
    schema = {"properties": {"v": {"type": ["number", "null"], "multipleOf": 0.01}}}
    lines = [
        json.dumps({"type": "SCHEMA", "stream": "users", "schema": schema, "key_properties": []}),
        '{"type": "RECORD", "stream": "users", "record": {"e": "a@b.c", "v": 1e400}}',
        '{"type": "RECORD", "stream": "users", "record": {"e": "b@c.d", "v": 1.25}}',
    ]
    config = {
        "dry_run": True,
        "dry_run_path": str(tmp_path / "dry.jsonl"),
        "on_invalid_record": "skip",
        "mappings": {"users": {"kind": "user", "identities": {"email": "e"}}},
    }
    done = run_target_cli(tmp_path, config, "\n".join(lines) + "\n")
    assert done.returncode == 0, done.stderr
    assert "a number too large for its checks (multipleOf)" in done.stderr
    assert "1 invalid record (skip)" in done.stderr
    sent = [json.loads(line)["body"] for line in (tmp_path / "dry.jsonl").read_text().splitlines()]
    assert [b["user_identities"] for body in sent for b in body] == [{"email": "b@c.d"}]
