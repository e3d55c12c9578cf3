"""Delivery to the Events API: pooled sessions, pacing, retries, dry run.

The client only ever reports success for a batch once mParticle answered 202
for a request holding it; everything else either retries with the very same
body (and so the same ``source_request_id``s) or raises, which is what lets the
target hold STATE back until delivery is certain.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import queue
import threading
import time
import typing as t
from concurrent.futures import ThreadPoolExecutor

import backoff
import requests
import urllib3
from requests.adapters import HTTPAdapter

from target_mparticle.schema_rules import MAX_BATCHES_PER_REQUEST, MAX_REQUEST_BYTES

if t.TYPE_CHECKING:
    import pathlib

    from target_mparticle.assemble import PreparedBatch

LOGGER = logging.getLogger("target-mparticle")
BULK_PATH = "/bulkevents"
HISTORICAL_PATH = "/bulkevents/historical"
MAX_RETRY_AFTER_SECONDS = 900.0
_RETRY_AFTER = urllib3.util.Retry()  # its parser reads seconds and HTTP dates alike
RATE_HEADER = "X-mp-rate-limit-percentage-used"
# Above this share of the account's limit (as mParticle reports it), slow down.
SLOWDOWN_FROM_PERCENT = 80.0
HTTP_ACCEPTED = 202
HTTP_BAD_REQUEST = 400
HTTP_UNAUTHORIZED = 401
HTTP_FORBIDDEN = 403
HTTP_TOO_MANY = 429
HTTP_SERVER_ERROR = 500


class DeliveryError(Exception):
    """Delivery failed for good; the target must stop without a newer STATE."""


class AuthError(DeliveryError):
    """mParticle refused the key or secret; retrying cannot help."""


class BadRequestError(DeliveryError):
    """mParticle refused a batch as malformed (HTTP 400)."""


@dataclasses.dataclass
class Request:
    """One POST: a path and the batches whose bodies make up its array."""

    path: str
    batches: list[PreparedBatch]

    @property
    def body(self) -> bytes:
        """The JSON array, joined from bodies encoded once at assembly time."""
        return b"[" + b",".join(b.body for b in self.batches) + b"]"


def pack(batches: t.Sequence[PreparedBatch]) -> list[Request]:
    """Fill requests in order up to 100 batches and the byte ceiling."""
    requests_: list[Request] = []
    open_by_path: dict[str, tuple[Request, int]] = {}
    for batch in batches:
        path = HISTORICAL_PATH if batch.historical else BULK_PATH
        size = len(batch.body) + 1
        current = open_by_path.get(path)
        if current is not None:
            request, used = current
            if len(request.batches) < MAX_BATCHES_PER_REQUEST and used + size <= MAX_REQUEST_BYTES:
                request.batches.append(batch)
                open_by_path[path] = (request, used + size)
                continue
        request = Request(path, [batch])
        requests_.append(request)
        open_by_path[path] = (request, size + 1)
    return requests_


@dataclasses.dataclass
class Stats:
    """Counters for progress lines and the end-of-run summary."""

    requests: int = 0
    batches: int = 0
    events: int = 0
    retries: int = 0
    throttled: int = 0
    throttle_wait_s: float = 0.0
    rejected_batches: int = 0
    lock: threading.Lock = dataclasses.field(default_factory=threading.Lock, repr=False)

    def add(self, **deltas: float) -> None:
        """Add to several counters at once, safely across sender threads."""
        with self.lock:
            for name, delta in deltas.items():
                setattr(self, name, getattr(self, name) + delta)


class Pacer:
    """Client-side pacing to a batches-per-second budget, shared by all threads.

    Each request books a slot ``n / rate`` seconds long; the rate shrinks when
    mParticle reports the account close to its limit or answers 429, and grows
    back as requests succeed, so a long run settles just under the limit.
    """

    def __init__(
        self,
        batches_per_second: float,
        clock: t.Callable[[], float] = time.monotonic,
        sleep: t.Callable[[float], None] = time.sleep,
    ) -> None:
        """Start at the full budget; ``0`` disables pacing (429s still back off)."""
        self.limit = batches_per_second
        self.factor = 1.0
        self.clock = clock
        self.sleep = sleep
        self._next = 0.0
        self._paused_until = 0.0
        self._lock = threading.Lock()
        #: Wall-clock seconds during which at least one request was held back. Each
        #: thread's own wait is not added up: four threads waiting the same second
        #: held the run back one second, not four.
        self.held_back_s = 0.0
        self._held_until = 0.0

    def acquire(self, n_batches: int) -> float:
        """Block until ``n_batches`` may be sent; return the seconds waited."""
        with self._lock:
            now = self.clock()
            start = max(now, self._next, self._paused_until)
            if self.limit > 0:
                self._next = start + n_batches / (self.limit * self.factor)
            # Waits are booked in clock order under the lock, so their union is
            # what each adds beyond the last one's end.
            self.held_back_s += max(0.0, start - max(now, self._held_until))
            self._held_until = max(self._held_until, start)
        wait = start - now
        if wait > 0:
            self.sleep(wait)
        return max(wait, 0.0)

    def pause(self, seconds: float) -> None:
        """Hold every sender back, as a 429 with Retry-After asks."""
        with self._lock:
            self._paused_until = max(self._paused_until, self.clock() + seconds)
            self.factor = max(0.1, self.factor * 0.5)

    def observe_usage(self, percent_used: float) -> None:
        """Adjust the rate from ``X-mp-rate-limit-percentage-used``."""
        with self._lock:
            if percent_used >= SLOWDOWN_FROM_PERCENT:
                target = max(0.1, (100.0 - percent_used) / (100.0 - SLOWDOWN_FROM_PERCENT))
                self.factor = min(self.factor, target)
            else:
                self.factor = min(1.0, self.factor + 0.05)


@dataclasses.dataclass(frozen=True)
class ClientSettings:
    """What the client needs from the target's config, already validated."""

    base_url: str
    api_key: str
    api_secret: str
    max_retries: int = 8
    max_batches_per_second: float = 270.0
    timeout_s: float = 60.0
    parallel_requests: int = 4
    backoff_base_s: float = 1.0
    backoff_max_s: float = 60.0


class EventsApiClient:
    """Sends requests with retries; thread-safe; one instance per target run."""

    def __init__(
        self,
        settings: ClientSettings,
        *,
        sleep: t.Callable[[float], None] = time.sleep,
    ) -> None:
        """Prepare the session pool and the pacer; nothing is sent yet."""
        self.settings = settings
        self.base_url = settings.base_url.rstrip("/")
        self.stats = Stats()
        self.pacer = Pacer(settings.max_batches_per_second, sleep=sleep)
        self._sleep = sleep
        self._sessions: queue.SimpleQueue[requests.Session] = queue.SimpleQueue()
        for _ in range(max(1, settings.parallel_requests)):
            self._sessions.put(self._new_session())
        self._pool = ThreadPoolExecutor(
            max_workers=max(1, settings.parallel_requests),
            thread_name_prefix="mparticle-post",
        )

    def _new_session(self) -> requests.Session:
        session = requests.Session()
        session.auth = (self.settings.api_key, self.settings.api_secret)
        session.headers.update(
            {"Content-Type": "application/json", "User-Agent": "target-mparticle"}
        )
        adapter = HTTPAdapter(pool_connections=1, pool_maxsize=1, max_retries=0)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        return session

    def close(self) -> None:
        """Stop the sender threads and close the pooled connections."""
        self._pool.shutdown(wait=True)
        with contextlib.suppress(queue.Empty):
            while True:
                self._sessions.get_nowait().close()

    def deliver(
        self, requests_: t.Sequence[Request], *, isolate_bad: bool
    ) -> list[tuple[PreparedBatch, str]]:
        """Send every request; return batches mParticle refused as malformed.

        With ``isolate_bad`` a 400 splits the request in halves until the bad
        batches are alone, so good neighbours still arrive; without it the
        first 400 raises. Any other failure raises once retries are spent.
        """
        if not requests_:
            return []
        futures = [
            self._pool.submit(self._send_isolating, r, isolate_bad=isolate_bad) for r in requests_
        ]
        rejected: list[tuple[PreparedBatch, str]] = []
        errors: list[BaseException] = []
        for future in futures:
            error = future.exception()
            if error is None:
                rejected.extend(future.result())
            elif isinstance(error, DeliveryError):
                errors.append(error)
            else:
                raise error
        if errors:
            auth = [e for e in errors if isinstance(e, AuthError)]
            raise (auth or errors)[0]
        return rejected

    def _send_isolating(
        self, request: Request, *, isolate_bad: bool
    ) -> list[tuple[PreparedBatch, str]]:
        try:
            self._send(request)
        except BadRequestError as exc:
            if not isolate_bad:
                raise
            if len(request.batches) == 1:
                self.stats.add(rejected_batches=1)
                return [(request.batches[0], str(exc))]
            half = len(request.batches) // 2
            return self._send_isolating(
                Request(request.path, request.batches[:half]), isolate_bad=isolate_bad
            ) + self._send_isolating(
                Request(request.path, request.batches[half:]), isolate_bad=isolate_bad
            )
        return []

    def _send(self, request: Request) -> None:
        """POST one request until mParticle accepts it, retrying what a retry can fix.

        Exactly one wait per failed attempt: a 429 holds every sender back (for its
        `Retry-After`, else for the backoff delay) through the pacer, whose `acquire`
        then does the waiting; a 5xx, a timeout or a dropped connection waits in this
        sender only. Delays without `Retry-After` come from `backoff`'s exponential
        generator (base `backoff_base_seconds`, capped at `backoff_max_seconds`) with
        its full jitter: uniform between 0 and the delay.
        """
        url = self.base_url + request.path
        body = request.body
        n = len(request.batches)
        delays = backoff.expo(
            factor=self.settings.backoff_base_s, max_value=self.settings.backoff_max_s
        )
        next(delays)  # the generator's first value primes it
        attempt = 0
        while True:
            waited = self.pacer.acquire(n)
            if waited > 0:
                self.stats.add(throttle_wait_s=waited)
            problem, retry_after, throttled = self._post_once(url, body)
            if problem is None:
                events = sum(b.n_events for b in request.batches)
                self.stats.add(requests=1, batches=n, events=events)
                return
            if attempt >= self.settings.max_retries:
                msg = (
                    f"gave up on POST {url} ({n} batches) after "
                    f"{attempt + 1} attempts; last problem: {problem}"
                )
                raise DeliveryError(msg)
            delay = retry_after if retry_after is not None else backoff.full_jitter(next(delays))
            attempt += 1
            self.stats.add(retries=1)
            LOGGER.info(
                "Retrying POST %s (%d batches) in %.2fs, attempt %d of %d: %s",
                url,
                n,
                delay,
                attempt,
                self.settings.max_retries,
                problem,
            )
            if throttled:
                self.pacer.pause(delay)  # every sender waits, in acquire
            else:
                self._sleep(delay)

    def _post_once(self, url: str, body: bytes) -> tuple[str | None, float | None, bool]:
        """One attempt: `(problem, Retry-After seconds, rate limited)`; no problem on 202."""
        session = self._sessions.get()
        try:
            response = session.post(url, data=body, timeout=self.settings.timeout_s)
        except requests.Timeout:
            return "timed out", None, False
        except requests.ConnectionError as exc:
            return f"connection failed ({type(exc).__name__})", None, False
        finally:
            self._sessions.put(session)
        status = response.status_code
        if status == HTTP_ACCEPTED:
            used = response.headers.get(RATE_HEADER)
            if used is not None:
                with contextlib.suppress(ValueError):
                    self.pacer.observe_usage(float(used))
            return None, None, False
        if status in {HTTP_UNAUTHORIZED, HTTP_FORBIDDEN}:
            msg = (
                f"mParticle refused the credentials (HTTP {status}) at {url}; "
                "check api_key, api_secret and pod"
            )
            raise AuthError(msg)
        if status == HTTP_TOO_MANY:
            self.stats.add(throttled=1)
            retry_after = _retry_after(response.headers.get("Retry-After"))
            limit = response.headers.get("X-mp-rate-limit-exceeded", "unspecified")
            return f"HTTP 429 rate limited ({limit} limit)", retry_after, True
        if status == HTTP_BAD_REQUEST:
            msg = f"HTTP 400 from {url}: {_api_message(response)}"
            raise BadRequestError(msg)
        if status >= HTTP_SERVER_ERROR:
            return f"HTTP {status}", None, False
        msg = f"unexpected HTTP {status} from {url}: {_api_message(response)}"
        raise DeliveryError(msg)

    def describe(self) -> str:
        """Where data goes, for log lines: the URL only (the key is a credential too)."""
        return self.base_url


def _retry_after(value: str | None) -> float | None:
    """Seconds a `Retry-After` header asks for: a number or an HTTP date (urllib3 parses both).

    Capped at `MAX_RETRY_AFTER_SECONDS`; None when absent or unreadable.
    """
    if value is None:
        return None
    try:
        seconds = _RETRY_AFTER.parse_retry_after(value.strip())
    except urllib3.exceptions.InvalidHeader:
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_SECONDS)


def _api_message(response: requests.Response) -> str:
    """The API's own error text, from ``errors[].message`` when present."""
    try:
        payload = response.json()
    except ValueError:
        return response.text[:500] or response.reason or "no message"
    if isinstance(payload, dict) and isinstance(payload.get("errors"), list):
        messages = [
            str(e.get("message") or e.get("code")) for e in payload["errors"] if isinstance(e, dict)
        ]
        if messages:
            return "; ".join(messages)
    return str(payload)[:500]


class DryRunClient:
    """Writes the requests it would send, one JSON line each; sends nothing."""

    def __init__(self, path: pathlib.Path, base_url: str) -> None:
        """Open (truncate) the output file so each run's file is that run's bodies."""
        self.path = path
        self.base_url = base_url.rstrip("/")
        self.stats = Stats()
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = path.open("wb")
        self._lock = threading.Lock()

    def deliver(
        self,
        requests_: t.Sequence[Request],
        *,
        isolate_bad: bool,  # noqa: ARG002 - same signature as the real client
    ) -> list[tuple[PreparedBatch, str]]:
        """Record each request as ``{"url": ..., "body": [...]}`` and flush."""
        with self._lock:
            for request in requests_:
                url = (self.base_url + request.path).encode()
                self._file.write(b'{"url":"' + url + b'","body":' + request.body + b"}\n")
                self.stats.add(
                    requests=1,
                    batches=len(request.batches),
                    events=sum(b.n_events for b in request.batches),
                )
            self._file.flush()
        return []

    def describe(self) -> str:
        """Where the bodies go, for log lines."""
        return f"dry run file {self.path}"

    def close(self) -> None:
        """Close the output file."""
        self._file.close()
