"""A replayed tap-mparticle events line is sent whole, in one go, or not at all."""

from __future__ import annotations

import datetime as dt
import typing as t

import time_machine

from tests.support.target import (
    SCHEMA,
    Input,
    line_messages,
    lines_sent,
    state_message,
    target_states,
)

if t.TYPE_CHECKING:
    from tests.support.eventsapi import EventsApiServer


def ids(lineno: int, count: int) -> list[str]:
    return [f"m{lineno}-{i}" for i in range(count)]


def test_input_ending_inside_a_line_sends_nothing_of_it_and_the_rerun_sends_it_whole(
    server: EventsApiServer, config: dict[str, t.Any]
):
    # A tap stopped at a bad line: its output ends cleanly between two records of line 2.
    cut_short = [SCHEMA, *line_messages(1, 4), state_message(1), *line_messages(2, 3)]
    states = target_states(config, Input(cut_short))
    assert lines_sent(server.batches()) == {1: [ids(1, 4)]}
    assert states[-1] == {"bookmarks": {"events": {"line": 1}}}
    # The next run replays line 2 whole (the STATE did not cover it).
    rerun = [SCHEMA, *line_messages(2, 6), state_message(2)]
    target_states(config, Input(rerun))
    assert lines_sent(server.batches()) == {1: [ids(1, 4)], 2: [ids(2, 6)]}
    assert server.duplicates == []


def test_a_whole_trailing_line_with_no_state_after_it_is_not_sent(
    server: EventsApiServer, config: dict[str, t.Any]
):
    states = target_states(
        config, Input([SCHEMA, *line_messages(1, 2), state_message(1), *line_messages(2, 2)])
    )
    assert lines_sent(server.batches()) == {1: [ids(1, 2)]}
    assert states[-1] == {"bookmarks": {"events": {"line": 1}}}


def test_the_sdk_max_age_drain_never_splits_a_line(
    server: EventsApiServer, config: dict[str, t.Any]
):
    lines = [
        SCHEMA,
        *line_messages(1, 3),
        state_message(1),
        *line_messages(2, 5),
        *line_messages(3, 2),
        state_message(3),
    ]
    middle_of_line_2 = lines.index(line_messages(2, 1, first=2)[0])
    with time_machine.travel(dt.datetime(2024, 5, 1, tzinfo=dt.timezone.utc), tick=False) as clock:

        def hook(number: int) -> None:
            if number == middle_of_line_2:
                clock.shift(dt.timedelta(minutes=6))  # past the SDK's five-minute drain

        target_states(config, Input(lines, hook))
    assert lines_sent(server.batches()) == {1: [ids(1, 3)], 2: [ids(2, 5)], 3: [ids(3, 2)]}


def test_a_full_sink_never_splits_a_line(server: EventsApiServer, config: dict[str, t.Any]):
    config["batch_size_rows"] = 100  # the smallest drain; line 2 straddles it
    lines = [SCHEMA, *line_messages(1, 70), *line_messages(2, 60), state_message(2)]
    target_states(config, Input(lines))
    sent = lines_sent(server.batches())
    assert sent == {1: [ids(1, 70)], 2: [ids(2, 60)]}


def test_a_line_larger_than_a_drain_can_hold_is_still_sent_in_fixed_pieces(
    server: EventsApiServer, config: dict[str, t.Any]
):
    config["batch_size_rows"] = 100
    target_states(config, Input([SCHEMA, *line_messages(1, 250), state_message(1)]))
    sent = lines_sent(server.batches())
    # held until whole, then split by the 100-events-per-batch rule alone
    assert [len(piece) for piece in sent[1]] == [100, 100, 50]
    assert [i for piece in sent[1] for i in piece] == ids(1, 250)
