"""A first run that lists no file warns, naming the place and the settings to check."""

from __future__ import annotations

import logging
import typing as t

import pytest

from tests.support.tap import run_tap

if t.TYPE_CHECKING:
    from tests.support.tap import Drop


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


def test_first_run_listing_nothing_warns(drop: Drop, caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.INFO)
    config = {**drop.config, "events_prefix": "wrong-folder/"}
    out = run_tap(config, streams=["events"])
    assert out.records("events") == []
    (warning,) = warnings(caplog)
    assert warning.startswith("events: no file at all under prefix 'wrong-folder/' of ")
    assert warning.endswith(
        "on a first run (no bookmark yet): check bucket_url and events_prefix "
        "(or deselect the stream if the drop holds none of its files)"
    )
    # The place listed is named as the INFO summary names it.
    (summary,) = [r.getMessage() for r in caplog.records if "listed under prefix" in r.getMessage()]
    assert summary.endswith(warning.split(" of ", 1)[1].split(" on a first run")[0])


@pytest.mark.parametrize(
    ("prefix", "char", "meant"),
    [
        ("events/*.txt", "*", "the prefix 'events'"),
        ("^events/2024-05-0[1-9]", "[", "the prefix 'events'"),
        ("*", "*", "no prefix (the root)"),
    ],
)
def test_a_glob_or_regex_prefix_that_lists_nothing_is_pointed_at(
    drop: Drop, caplog: pytest.LogCaptureFixture, prefix: str, char: str, meant: str
):
    caplog.set_level(logging.INFO)
    out = run_tap({**drop.config, "events_prefix": prefix}, streams=["events"])
    assert out.records("events") == []
    (warning,) = warnings(caplog)
    shown = f"{prefix}/"
    assert warning.endswith(
        f"its files); {shown!r} holds {char!r}, but a prefix is the literal start of a key, "
        f"not a glob or regular expression: did you mean {meant}?"
    )


def test_runs_that_find_files_or_have_a_bookmark_do_not_warn(
    drop: Drop, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.INFO)
    first = run_tap(drop.config, streams=["events"])
    assert first.records("events")
    assert warnings(caplog) == []
    # An incremental run finding nothing new is normal...
    caplog.clear()
    again = run_tap(drop.config, state=first.final_state, streams=["events"])
    assert again.records("events") == []
    assert warnings(caplog) == []
    # ...and so is one that lists nothing at all once the stream has a bookmark.
    caplog.clear()
    moved = {**drop.config, "events_prefix": "wrong-folder/"}
    run_tap(moved, state=first.final_state, streams=["events"])
    assert warnings(caplog) == []


def test_a_stream_that_listed_nothing_before_is_not_warned_of_again(
    drop: Drop, caplog: pytest.LogCaptureFixture
):
    """A drop without audiences: the audience streams never get a bookmark, but their
    first run left an entry in the state; each later run warned again."""
    caplog.set_level(logging.INFO)
    config = {**drop.config, "events_prefix": "wrong-folder/"}
    first = run_tap(config, streams=["events"])
    assert len(warnings(caplog)) == 1
    assert first.final_state["bookmarks"]["events"] == {}  # listed, nothing to mark
    caplog.clear()
    run_tap(config, state=first.final_state, streams=["events"])
    assert warnings(caplog) == []
