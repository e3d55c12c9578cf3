"""A token bucket that limits batches per second as an mParticle account does.

Used by the Events API stand-in (``EventsApiServer(rate_limit=...)``) and, with an
injected clock, by the pacer's unit tests, so both face the same limit.

- The bucket holds ``burst`` batches and refills at ``rate`` per second; a request
  of n batches takes n tokens or is refused whole (429).
- A refusal says when enough tokens will be there (``Retry-After``, whole seconds
  as mParticle sends them) and names the limit (``X-mp-rate-limit-exceeded``).
- Every acceptance reports the batches accepted in the last second as a share of
  ``rate`` (``X-mp-rate-limit-percentage-used``), which may pass 100 during a burst.
"""

from __future__ import annotations

import collections
import dataclasses
import math
import threading
import time
import typing as t


@dataclasses.dataclass
class Verdict:
    """The bucket's answer to one request."""

    accepted: bool
    percent_used: int = 0
    retry_after_s: int = 0


class TokenBucket:
    """Thread-safe; ``clock`` is monotonic seconds."""

    def __init__(
        self,
        rate: float,
        burst: float,
        *,
        name: str = "account",
        clock: t.Callable[[], float] = time.monotonic,
    ) -> None:
        """Start full, as an idle account's bucket is."""
        self.rate = rate
        self.burst = burst
        self.name = name
        self.clock = clock
        self.tokens = burst
        self.refused = 0
        self._stamp = clock()
        self._window: collections.deque[tuple[float, int]] = collections.deque()
        self._window_sum = 0
        self._lock = threading.Lock()

    def take(self, n_batches: int) -> Verdict:
        """Take ``n_batches`` tokens if they are there."""
        with self._lock:
            now = self.clock()
            self.tokens = min(self.burst, self.tokens + (now - self._stamp) * self.rate)
            self._stamp = now
            while self._window and self._window[0][0] <= now - 1.0:
                self._window_sum -= self._window.popleft()[1]
            # A hair of tolerance: refill arithmetic in floats must not refuse a
            # request that arrives exactly on time.
            if self.tokens < n_batches - 1e-6:
                self.refused += 1
                missing = n_batches - self.tokens
                return Verdict(accepted=False, retry_after_s=max(1, math.ceil(missing / self.rate)))
            self.tokens -= n_batches
            self._window.append((now, n_batches))
            self._window_sum += n_batches
            return Verdict(accepted=True, percent_used=round(self._window_sum * 100 / self.rate))
