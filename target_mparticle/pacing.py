"""Pacing to the account's rate limit: as fast as it allows, without provoking 429s.

mParticle limits an account in batches per second (270 by default, raised on
request) and says how close a request came: every 202 carries
``X-mp-rate-limit-percentage-used`` (the last second's usage as a share of the
limit), every 429 ``X-mp-rate-limit-exceeded`` (which limit) and maybe
``Retry-After``. The configured ``max_batches_per_second`` is only what the user
believes the limit to be. The pacer works out the real one and stays just under it:

1. **Spacing.** Each request books a slot ``n / rate`` seconds after the previous
   one (a virtual clock, as in GCRA), whatever thread sends it, so requests are
   spread evenly and parallel senders never burst, even into a server-side bucket
   that holds a single request's worth of batches (there, a request delayed on a
   busy machine can still arrive early enough for a 429). Each gap has a couple of
   milliseconds more (``JITTER_S``) for the jitter of arrival times, which at 100
   batches a request costs 0.5% of 270/s. A request goes out no sooner than its
   gap after the one before actually went out, so one sender's lateness (a slow
   wake, the GIL) never lets the next catch up; a sender whose slot a 429's pause
   overtook books anew.
2. **Measuring the limit.** On each 202 the pacer divides the batches it had
   accepted in the last second by the reported share used. That is the real limit
   (or, when others share the account, the part of it left to us); a smoothed
   value of it is the *estimate*. A share well under 100% is headroom, not a
   reason to slow down, so sending at the limit stays at the limit.
3. **Goal.** The configured rate while the estimate reaches it (within
   ``TOLERANCE``, the measurement's noise), else the estimate less ``MARGIN``, a
   headroom for the jitter of arrival times.
4. **AIMD.** The rate drops to the goal at once and climbs towards it additively
   (``CLIMB_PER_SECOND`` of the configured rate per second), so a lowered limit or
   an acceleration limit is approached, not jumped at. A 429 cuts the rate to
   ``BACKOFF`` times the measured limit (or, without one, the rate in force), once
   per round (429s for requests sent before the cut are echoes of the same excess),
   and remembers that rate: the climb stops ``MARGIN`` under it and probes above it
   only slowly (``PROBE_PER_SECOND``), because each 429 costs a ``Retry-After``
   pause of every sender, far more than the few percent a probe could win.

Steady state: the measured limit sets the pace; a 429 is a correction, not the
pacer's only signal, so the rate does not saw up and down between cuts. The clock
and sleep are injected, which is how the unit tests drive it without waiting.
"""

from __future__ import annotations

import collections
import threading
import time
import typing as t

#: Share of the measured limit kept as headroom for the jitter of arrival times.
MARGIN = 0.03
#: After a 429 the rate restarts at this share of the measured limit (or the rate in force).
BACKOFF = 0.85
#: Estimates this close under the configured rate count as reaching it.
TOLERANCE = 0.02
#: Additive increase: share of the configured rate regained per second.
CLIMB_PER_SECOND = 0.10
#: Above the rate of the last 429, the climb slows to this share per second.
PROBE_PER_SECOND = 0.002
#: Weight of a new measurement in the smoothed limit estimate.
SMOOTHING = 0.2
#: Usage shares under this many percent are too small to extrapolate a limit from.
MIN_SIGNAL_PERCENT = 20.0
#: Seconds of history behind "accepted in the last second" (mParticle's window).
WINDOW_S = 1.0
#: The rate never falls below this share of the configured rate.
FLOOR_SHARE = 0.02
#: Extra gap between two slots for the jitter of arrival times (a request may reach
#: mParticle a millisecond or two later or earlier than it left), at most
#: ``JITTER_SHARE`` of the gap.
JITTER_S = 0.002
JITTER_SHARE = 0.02
#: Lateness a sender may have before the schedule moves on by it.
LATE_TOLERANCE_S = 0.001


class Pacer:
    """Shared by every sender thread of one client; all methods are thread-safe.

    ``rate`` is the pace in force (batches per second); ``estimate`` the measured
    limit, None until the usage header has said enough.
    """

    def __init__(
        self,
        max_batches_per_second: float,
        clock: t.Callable[[], float] = time.monotonic,
        sleep: t.Callable[[float], None] = time.sleep,
    ) -> None:
        """Start at the configured rate; ``0`` disables pacing (Retry-After still pauses).

        Args:
            max_batches_per_second: The configured ceiling; the pacer never exceeds it.
            clock: Monotonic seconds.
            sleep: Blocks for the given seconds.
        """
        self.ceiling = float(max_batches_per_second)
        self.rate = self.ceiling
        self.estimate: float | None = None
        self.clock = clock
        self.sleep = sleep
        self._fault_rate: float | None = None  # accepted rate when the last 429 came
        self._next = 0.0
        self._paused_until = 0.0
        #: Wall-clock seconds during which at least one request was held back (four
        #: threads waiting the same second held the run back one second, not four).
        self.held_back_s = 0.0
        self._held_until = 0.0
        self._last_out = -1e18  # when the last request actually went out
        self._last_gap = 0.0
        self._last_cut = -1e18
        self._last_update = clock()
        self._started: float | None = None  # first slot: the usage window starts filling
        self._accepted: collections.deque[tuple[float, int]] = collections.deque()
        self._accepted_sum = 0
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        """Whether requests are paced at all (a ceiling of 0 turns pacing off)."""
        return self.ceiling > 0

    def acquire(self, n_batches: int) -> tuple[float, float]:
        """Block until ``n_batches`` may be sent.

        Returns:
            The slot's time on the clock (pass it to `throttled`) and the seconds waited.
        """
        waited = 0.0
        with self._lock:
            now = self.clock()
            if self._started is None:
                self._started = now
            self._update(now)
            start, gap = self._book(now, n_batches)
        kept_gap = False
        while True:
            slept = start > now
            if slept:
                self.sleep(start - now)
                waited += start - now
            with self._lock:
                # A sleep never ends before its time; a clock that says otherwise is coarse.
                now = max(self.clock(), start) if slept else self.clock()
                if self._paused_until > start:
                    # A 429 paused every sender while this one slept: book anew after it.
                    start, gap = self._book(now, n_batches)
                    continue
                earliest = self._last_out + self._last_gap
                if self.enabled and now < earliest and not kept_gap:
                    # The request before went out late (its slot was booked ahead of
                    # this one): keep the full gap after it, not after its slot.
                    start, kept_gap = earliest, True
                    self._hold(now, start)
                    continue
                if self.enabled and now - start > LATE_TOLERANCE_S:
                    self._next += now - start
                self._last_out, self._last_gap = now, gap
                return start, waited

    def _book(self, now: float, n_batches: int) -> tuple[float, float]:
        start = max(now, self._next, self._paused_until)
        gap = 0.0
        if self.enabled:
            gap = n_batches / self.rate
            gap += min(JITTER_S, gap * JITTER_SHARE)
            self._next = start + gap
        self._hold(now, start)
        return start, gap

    def _hold(self, now: float, until: float) -> None:
        """Count wall time held back: waits overlap, so only what extends the last."""
        self.held_back_s += max(0.0, until - max(now, self._held_until))
        self._held_until = max(self._held_until, until)

    def accepted(self, n_batches: int, percent_used: float | None) -> None:
        """Record a 202, with ``X-mp-rate-limit-percentage-used`` when it was sent."""
        with self._lock:
            now = self.clock()
            self._accepted.append((now, n_batches))
            self._accepted_sum += n_batches
            self._trim(now)
            if percent_used is not None and percent_used >= MIN_SIGNAL_PERCENT and self._warm(now):
                sample = self._accepted_sum * 100.0 / percent_used
                if self.estimate is None:
                    self.estimate = sample
                else:
                    self.estimate += SMOOTHING * (sample - self.estimate)
            self._update(now)

    def throttled(self, sent_at: float, retry_after: float | None) -> bool:
        """Record a 429 for a request sent at ``sent_at``; pause all senders if asked.

        Returns:
            Whether this 429 cut the rate (False for echoes of an earlier cut).
        """
        with self._lock:
            now = self.clock()
            if retry_after is not None:
                self._paused_until = max(self._paused_until, now + retry_after)
                # Nothing goes out while paused; the schedule restarts after it.
                self._next = max(self._next, self._paused_until)
            if not self.enabled or sent_at < self._last_cut:
                return False
            self._trim(now)
            # The limit as measured (the estimate), else the rate that proved too fast.
            # Not the batches accepted in the last second: at 100 batches a request
            # that count is too coarse to cut by.
            basis = min(self.rate, self.estimate) if self.estimate else self.rate
            self._fault_rate = basis
            self.rate = max(self.ceiling * FLOOR_SHARE, basis * BACKOFF)
            self._last_cut = now
            self._last_update = now
            return True

    def goal(self) -> float:
        """The rate the pacer is heading for: the configured one, or just under the limit."""
        goal = self.ceiling
        if self.estimate is not None and self.estimate < self.ceiling * (1.0 - TOLERANCE):
            goal = self.estimate * (1.0 - MARGIN)
        if self._fault_rate is not None:
            goal = min(goal, self._fault_rate * (1.0 - MARGIN))
        return max(self.ceiling * FLOOR_SHARE, goal)

    def _warm(self, now: float) -> bool:
        """Whether a full window of sending lies behind ``now``."""
        return self._started is not None and now - self._started >= WINDOW_S

    def _trim(self, now: float) -> None:
        while self._accepted and self._accepted[0][0] <= now - WINDOW_S:
            self._accepted_sum -= self._accepted.popleft()[1]

    def _update(self, now: float) -> None:
        """Move the rate towards the goal: down at once, up additively."""
        if not self.enabled:
            return
        elapsed = max(0.0, now - self._last_update)
        self._last_update = now
        if self._fault_rate is not None:
            self._fault_rate += PROBE_PER_SECOND * self.ceiling * elapsed
            if self._fault_rate * (1.0 - MARGIN) >= self.ceiling:
                self._fault_rate = None  # probed back to the configured rate
        goal = self.goal()
        if goal <= self.rate:
            self.rate = goal
        else:
            self.rate = min(goal, self.rate + CLIMB_PER_SECOND * self.ceiling * elapsed)
