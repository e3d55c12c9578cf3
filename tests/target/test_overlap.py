"""Drains queued for the sender: in order, STATE only after them, nothing after a failure.

`overlap.Overlap` lets the main thread queue up to two drains and go on converting.
These tests drive it with real threads and deliveries that wait on events the test
sets, so each ordering is forced, not hoped for.
"""

from __future__ import annotations

import threading
import typing as t

import pytest

from target_mparticle.client import DeliveryError
from target_mparticle.overlap import MAX_IN_FLIGHT, Overlap


class Drain:
    """A delivery that records when it ran and finishes when the test lets it."""

    def __init__(
        self, name: str, log: list[str], *, fail: bool = False, refused: list[t.Any] | None = None
    ) -> None:
        self.name = name
        self.log = log
        self.fail = fail
        self.refused = refused or []
        self.release = threading.Event()
        self.finished = threading.Event()

    def __call__(self) -> list[t.Any]:
        self.log.append(f"start {self.name}")
        assert self.release.wait(timeout=10)
        self.log.append(f"end {self.name}")
        if self.fail:
            msg = f"{self.name} failed"
            raise DeliveryError(msg)
        return self.refused


def start(overlap: Overlap, drain: Drain) -> None:
    flight = overlap.start((drain.name, 1, 1, [], frozenset()), drain)
    flight.outcome.add_done_callback(lambda _: drain.finished.set())


def finish(*drains: Drain) -> None:
    for drain in drains:
        drain.release.set()
        assert drain.finished.wait(timeout=10)


def test_drains_are_sent_one_after_another_in_the_order_queued():
    overlap = Overlap()
    log: list[str] = []
    first, second = Drain("a", log), Drain("b", log)
    start(overlap, first)
    start(overlap, second)
    assert MAX_IN_FLIGHT == 2
    assert overlap.full
    second.release.set()  # b may finish at once, but must not start before a ends
    first.release.set()
    assert [f.stream for f in (overlap.settle_oldest()[0], overlap.settle_oldest()[0])] == [
        "a",
        "b",
    ]
    overlap.close()
    assert log == ["start a", "end a", "start b", "end b"]
    assert not overlap.in_flight


def test_a_state_waits_for_the_newest_drain_queued_when_it_arrived():
    overlap = Overlap()
    log: list[str] = []
    first, second = Drain("a", log), Drain("b", log)
    start(overlap, first)
    assert overlap.hold_or_pass({"n": 1}) is None
    start(overlap, second)
    assert overlap.hold_or_pass({"n": 2}) is None
    assert overlap.hold_or_pass({"n": 3}) is None  # a later STATE replaces one not yet due
    first.release.set()
    second.release.set()
    settled = [overlap.settle_oldest()[0] for _ in range(2)]
    assert [(f.stream, f.held_state) for f in settled if f] == [("a", {"n": 1}), ("b", {"n": 3})]
    assert overlap.hold_or_pass({"n": 4}) == {"n": 4}  # nothing in flight: written now
    overlap.close()


def test_nothing_queued_behind_a_failed_drain_is_sent():
    overlap = Overlap()
    log: list[str] = []
    failing, behind = Drain("a", log, fail=True), Drain("b", log)
    start(overlap, failing)
    start(overlap, behind)
    finish(failing, behind)
    assert overlap.pop_finished() == []  # a failure is only ever raised by settle_oldest
    with pytest.raises(DeliveryError, match="a failed"):
        overlap.settle_oldest()
    overlap.close()
    assert log == ["start a", "end a"]


def test_finished_drains_are_popped_in_order_with_what_was_refused():
    overlap = Overlap()
    log: list[str] = []
    refusal = ("batch", "refused by test")
    a, b = Drain("a", log), Drain("b", log, refused=[refusal])
    start(overlap, a)
    start(overlap, b)
    assert overlap.pop_finished() == []  # a is still being sent
    finish(a)
    assert [(f.stream, refused) for f, refused in overlap.pop_finished()] == [("a", [])]
    c = Drain("c", log)
    start(overlap, c)
    finish(b, c)
    popped = overlap.pop_finished()
    assert [(f.stream, refused) for f, refused in popped] == [("b", [refusal]), ("c", [])]
    assert not overlap.in_flight
    overlap.close()
