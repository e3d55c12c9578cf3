"""The pacer against a simulated account: an injected clock, the stand-in's token bucket.

Nothing here waits: the pacer's sleep advances a fake clock, and the account is the
same `TokenBucket` the Events API stand-in enforces, read on that clock.
"""

from __future__ import annotations

import dataclasses
import itertools
import threading

import pytest

from target_mparticle.pacing import JITTER_S, MARGIN, Pacer
from tests.support.rate_limit import TokenBucket


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@dataclasses.dataclass
class Outcome:
    accepted: list[tuple[float, int]]
    throttled: list[float]

    def rate(self, start: float, end: float) -> float:
        return sum(n for at, n in self.accepted if start <= at < end) / (end - start)


def simulate(  # noqa: PLR0913 - the knobs of one scenario
    configured: float,
    limit: float,
    burst: float,
    *,
    seconds: float = 60.0,
    batches: int = 100,
    header: bool = True,
) -> tuple[Pacer, Outcome]:
    """Send `batches`-batch requests for `seconds`, as the client does, one at a time."""
    clock = FakeClock()
    pacer = Pacer(configured, clock=clock, sleep=clock.sleep)
    bucket = TokenBucket(limit, burst, clock=clock)
    outcome = Outcome([], [])
    while clock.now < seconds:
        sent_at, _ = pacer.acquire(batches)
        verdict = bucket.take(batches)
        if verdict.accepted:
            outcome.accepted.append((clock.now, batches))
            pacer.accepted(batches, verdict.percent_used if header else None)
        else:
            outcome.throttled.append(clock.now)
            pacer.throttled(sent_at, float(verdict.retry_after_s))
    return pacer, outcome


@pytest.mark.parametrize(("configured", "burst"), [(270, 270), (270, 100), (1000, 100)])
def test_an_account_at_the_configured_limit_gets_it_without_a_429(configured, burst):
    pacer, outcome = simulate(configured, configured, burst)
    assert outcome.throttled == []
    # Usage near 100% is headroom used well, not a reason to brake.
    assert pacer.rate == configured
    # All of it but the couple of milliseconds per request kept for arrival jitter.
    assert outcome.rate(10, 60) == pytest.approx(configured, rel=0.025)


@pytest.mark.parametrize("burst", [180, 100])
def test_a_lower_real_limit_is_found_and_held_without_oscillating(burst):
    pacer, outcome = simulate(270, 180, burst, seconds=120)
    # The first excess costs a 429 or two; after that the usage header holds the pace.
    assert len(outcome.throttled) <= 2
    assert all(at < 10 for at in outcome.throttled)
    assert pacer.estimate == pytest.approx(180, rel=0.03)
    assert pacer.rate == pytest.approx(180 * (1 - MARGIN), rel=0.01)
    for start in range(20, 120, 20):
        assert 0.93 * 180 <= outcome.rate(start, start + 20) <= 180


def test_without_the_usage_header_429s_alone_still_approach_the_limit():
    # Plain AIMD: a saw-tooth with a 429 every few seconds, never far under the limit.
    pacer, outcome = simulate(270, 180, 180, seconds=120, header=False)
    assert pacer.estimate is None
    assert len(outcome.throttled) <= 25
    assert 0.8 * 180 <= outcome.rate(20, 120) <= 180


def test_a_raised_limit_is_used_up_to_the_configured_rate():
    # The account allows more than configured: the configured rate is the ceiling.
    pacer, outcome = simulate(270, 1000, 1000)
    assert outcome.throttled == []
    assert pacer.rate == 270
    assert outcome.rate(5, 60) == pytest.approx(270, rel=0.025)


def test_senders_asking_at_once_get_evenly_spaced_slots():
    clock = FakeClock()
    pacer = Pacer(200, clock=clock, sleep=clock.sleep)
    slots = [pacer.acquire(100)[0] for _ in range(4)]
    gap = 0.5 + JITTER_S
    assert slots == pytest.approx([0.0, gap, 2 * gap, 3 * gap])


def test_parallel_threads_never_send_closer_than_the_gap():
    """Four real threads on a shared fake clock: every send is a full gap after the last."""
    lock = threading.Lock()
    clock = FakeClock()
    sent: list[float] = []

    def sleep(seconds: float) -> None:
        with lock:
            clock.now += seconds  # a late wake for whoever slept earlier

    pacer = Pacer(1000, clock=clock, sleep=sleep)

    def sender() -> None:
        for _ in range(25):
            pacer.acquire(100)
            with lock:
                sent.append(clock.now)

    threads = [threading.Thread(target=sender) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(sent) == 100
    gaps = [b - a for a, b in itertools.pairwise(sorted(sent))]
    assert min(gaps) >= 0.1 - 1e-9


def test_a_late_sender_moves_the_schedule_on():
    clock = FakeClock()

    def oversleep(seconds: float) -> None:
        clock.now += seconds + 0.2

    pacer = Pacer(100, clock=clock, sleep=oversleep)
    pacer.acquire(100)
    start, waited = pacer.acquire(100)
    gap = 1.0 + JITTER_S
    assert (start, waited) == pytest.approx((gap, gap))
    assert clock.now == pytest.approx(gap + 0.2)
    assert pacer.acquire(100)[0] == pytest.approx(2 * gap + 0.2)


def test_retry_after_pauses_every_sender_and_echoes_cut_once():
    clock = FakeClock()
    pacer = Pacer(100, clock=clock, sleep=clock.sleep)
    first, _ = pacer.acquire(50)
    second, _ = pacer.acquire(50)
    clock.now += 0.05  # the answers arrive after both were sent
    assert pacer.throttled(first, 5.0) is True
    rate = pacer.rate
    assert rate == pytest.approx(85)
    # The second request was sent before the cut: its 429 is the same excess.
    assert pacer.throttled(second, 5.0) is False
    assert pacer.rate == rate
    start, _ = pacer.acquire(1)
    assert start == pytest.approx(second + 0.05 + 5.0)


def test_pacing_off_never_waits_but_honours_retry_after():
    clock = FakeClock()
    pacer = Pacer(0, clock=clock, sleep=clock.sleep)
    assert [pacer.acquire(100)[1] for _ in range(3)] == [0.0, 0.0, 0.0]
    assert pacer.throttled(0.0, 2.0) is False
    assert pacer.acquire(100) == (2.0, 2.0)


def test_the_rate_climbs_back_additively_after_a_cut():
    clock = FakeClock()
    pacer = Pacer(100, clock=clock, sleep=clock.sleep)
    sent_at, _ = pacer.acquire(10)
    pacer.throttled(sent_at, None)
    cut = pacer.rate
    clock.now += 1.0
    pacer.accepted(10, None)
    assert pacer.rate == pytest.approx(min(cut + 10, cut / 0.85 * (1 - MARGIN)))
    assert pacer.rate < 100
