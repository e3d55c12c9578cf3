"""Numbers written as text are hostile too: each is read, or refused, at once.

`mparticle_facts.numbers` reads ids and times both plugins receive as strings. Text
that looks numeric to `str.isdigit` but not to `int` (`"²"`, `"+-5"`), 5,000 digits
(beyond Python's own int/str limit), or an exponent that would make a billion-digit
int (`"1e999999999"`) once crashed or hung the reader; each now reads as no number.
"""

from __future__ import annotations

import json
import typing as t

import pytest

from mparticle_facts.numbers import MAX_DIGITS, epoch_ms, to_int, to_number
from tests.support.target import run_target, singer_lines

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
