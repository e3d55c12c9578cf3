"""Delivery to the Events API: parallel senders, pacing, retries, dry run.

The client only ever reports success for a batch once mParticle answered 202
for a request holding it; everything else either retries with the very same
body (and so the same ``source_request_id``s) or raises, which is what lets the
target hold STATE back until delivery is certain.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import sys
import threading
import time
import typing as t
from concurrent.futures import ThreadPoolExecutor

import backoff
import urllib3

from mparticle_facts.plugin_guards import mask, secret_texts
from target_mparticle.pacing import Pacer
from target_mparticle.schema_rules import MAX_BATCHES_PER_REQUEST, MAX_REQUEST_BYTES
from target_mparticle.transport import (
    Reply,
    Transport,
    TransportFailure,
    TransportProxyLogin,
    TransportTimeout,
    TransportTLSRefused,
    TransportUntrusted,
)

if t.TYPE_CHECKING:
    import pathlib

    from target_mparticle.assemble import PreparedBatch

LOGGER = logging.getLogger("target-mparticle")
BULK_PATH = "/bulkevents"
HISTORICAL_PATH = "/bulkevents/historical"
MAX_RETRY_AFTER_SECONDS = 900.0
_RETRY_AFTER = urllib3.util.Retry()  # its parser reads seconds and HTTP dates alike
RATE_HEADER = "X-mp-rate-limit-percentage-used"
LIMIT_HEADER = "X-mp-rate-limit-exceeded"
PACED_SWITCH_INTERVAL_S = 0.0005
HTTP_ACCEPTED = 202
HTTP_BAD_REQUEST = 400
HTTP_UNAUTHORIZED = 401
HTTP_FORBIDDEN = 403
HTTP_PROXY_LOGIN = 407
HTTP_TOO_MANY = 429
HTTP_SERVER_ERROR = 500
#: Server errors that are no passing state, so every retry gets them again: the
#: server does not do what was asked or speak this HTTP (RFC 9110, 15.6.2 and
#: 15.6.6), or a network in between wants a login (RFC 6585, 6). mParticle documents
#: retrying 5xx in general and 503 in particular; it names none of these.
SETTLED_SERVER_ERRORS = {
    501: (
        "not implemented",
        "the server does not offer what was asked: check api_url leads to the Events API",
    ),
    505: ("HTTP version not supported", "check api_url leads to the Events API"),
    511: (
        "network authentication required",
        (
            "a proxy or network between the target "
            "and mParticle asks for a login (HTTPS_PROXY, NO_PROXY)"
        ),
    ),
}


class DeliveryError(Exception):
    """Delivery failed for good; the target must stop without a newer STATE."""


class AuthError(DeliveryError):
    """The credentials were refused (mParticle's key or secret, a proxy's login)."""


class UntrustedServerError(DeliveryError):
    """The API host's TLS certificate did not verify; retrying cannot help."""


class TLSRefusedError(DeliveryError):
    """The TLS handshake with the API host failed the same way every attempt would."""


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
        self._transport = Transport(
            self.base_url,
            connections=max(1, settings.parallel_requests),
            timeout_s=settings.timeout_s,
        )
        self._headers = urllib3.util.make_headers(
            basic_auth=f"{settings.api_key}:{settings.api_secret}",
            user_agent="target-mparticle",
        )
        self._headers["Content-Type"] = "application/json"
        #: What an error quoting the server must not repeat: a server may echo the
        #: request's credentials (the Basic token is key:secret in base64).
        self._secrets = secret_texts(
            (
                settings.api_key,
                settings.api_secret,
                self._headers["authorization"].removeprefix("Basic "),
                *self._transport.proxy_secrets,  # a proxy's 407 page may quote its login
            )
        )
        if self.pacer.enabled:
            # A sender waits for the GIL up to this long while the main thread converts;
            # 5 ms by default, enough to bunch two paced requests at a strict limit.
            sys.setswitchinterval(PACED_SWITCH_INTERVAL_S)
        self._pool = ThreadPoolExecutor(
            max_workers=max(1, settings.parallel_requests),
            thread_name_prefix="mparticle-post",
        )

    def close(self) -> None:
        """Stop the sender threads and close the pooled connections."""
        self._pool.shutdown(wait=True)
        self._transport.close()

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
        then does the waiting; a 5xx (for its `Retry-After` too, if it has one), a
        timeout or a dropped connection waits in this sender only. Delays without
        `Retry-After` come from `backoff`'s exponential generator (base
        `backoff_base_seconds`, capped at `backoff_max_seconds`) with its full jitter:
        uniform between 0 and the delay.
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
            sent_at, waited = self.pacer.acquire(n)
            if waited > 0:
                self.stats.add(throttle_wait_s=waited)
            problem, retry_after, throttled = self._post_once(request.path, body, n)
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
                # Every sender waits, in acquire; the pacer also cuts its rate (pacing.py).
                self.pacer.throttled(sent_at, delay)
            else:
                self._sleep(delay)

    def _post_once(self, path: str, body: bytes, n: int) -> tuple[str | None, float | None, bool]:
        """One attempt: `(problem, Retry-After seconds, rate limited)`; no problem on 202.

        The pacer hears of every 202 with its usage header (a 429, from `_send`).
        """
        url = self.base_url + path
        try:
            response = self._transport.post(path, body, self._headers)
        except TransportTimeout:
            return "timed out", None, False
        except TransportUntrusted as exc:
            msg = (
                f"the TLS certificate of {url} did not verify ({exc}); if a private CA or "
                "a TLS-inspecting proxy signs it, name that CA's bundle in REQUESTS_CA_BUNDLE"
            )
            raise UntrustedServerError(msg) from exc
        except TransportTLSRefused as exc:
            raise TLSRefusedError(_tls_refused(url, exc)) from exc
        except TransportProxyLogin as exc:
            raise AuthError(_proxy_login(url, f"the tunnel was refused ({exc})")) from exc
        except TransportFailure as exc:
            return f"connection failed ({exc})", None, False
        status = response.status
        if status == HTTP_ACCEPTED:
            self.pacer.accepted(n, _percent(response.headers.get(RATE_HEADER.lower())))
            return None, None, False
        if status == HTTP_TOO_MANY:
            self.stats.add(throttled=1)
            retry_after = _retry_after(response.headers.get("retry-after"))
            limit = response.headers.get(LIMIT_HEADER.lower(), "").strip().strip('"') or "unnamed"
            problem = f"HTTP 429: the {limit} rate limit was exceeded ({LIMIT_HEADER}: {limit})"
            return problem, retry_after, True
        if status >= HTTP_SERVER_ERROR and status not in SETTLED_SERVER_ERRORS:
            # A 503 may say when to come back (RFC 9110, 10.2.3): that wait, in this
            # sender only; a 5xx is no rate limit, so the pacer keeps its rate.
            return f"HTTP {status}", _retry_after(response.headers.get("retry-after")), False
        raise self._refusal(url, response)

    def _refusal(self, url: str, response: Reply) -> DeliveryError:
        """The error for an answer no retry can change (any but 202, 429 and most 5xx)."""
        status = response.status
        if status in {HTTP_UNAUTHORIZED, HTTP_FORBIDDEN}:
            msg = (
                f"mParticle refused the credentials (HTTP {status}) at {url}; "
                "check api_key, api_secret and pod"
            )
            return AuthError(msg)
        said = _api_message(response, self._masked)
        if status == HTTP_PROXY_LOGIN:
            return AuthError(_proxy_login(url, f"it said: {said}"))
        if status == HTTP_BAD_REQUEST:
            return BadRequestError(f"HTTP 400 from {url}: {said}")
        if status in SETTLED_SERVER_ERRORS:
            what, hint = SETTLED_SERVER_ERRORS[status]
            return DeliveryError(f"HTTP {status} ({what}) from {url}: {said}; not retried: {hint}")
        return DeliveryError(f"unexpected HTTP {status} from {url}: {said}")

    def _masked(self, text: str) -> str:
        """`text` from the server with the run's credentials masked (logs and dead letters)."""
        return mask(text, self._secrets)

    def describe(self) -> str:
        """Where data goes, for log lines: the URL only (the key is a credential too)."""
        return self.base_url


def _proxy_login(url: str, said: str) -> str:
    """One line for a proxy that wants a login (or another one): where to give it."""
    return (
        f"the proxy asked for a login (HTTP 407) on POST {url}: give its user and password "
        f"in HTTPS_PROXY (HTTP_PROXY for http://) as http://user:password@host; {said}"
    )


def _tls_refused(url: str, exc: TransportTLSRefused) -> str:
    """One line for a handshake no retry can complete, with OpenSSL's reason and a hint."""
    if exc.plain_http:
        hint = "the server does not answer in TLS there: is this an http:// endpoint?"
    else:
        hint = (
            "the server and this client share no TLS version, cipher or certificate "
            "they both accept; check api_url (and any proxy) lead to the Events API"
        )
    return f"the TLS handshake with {url} failed ({exc}); {hint}"


def _percent(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return float(value.strip().rstrip("%"))
    except ValueError:
        return None


def _retry_after(value: str | None) -> float | None:
    """Seconds a `Retry-After` header asks for: a number or an HTTP date (urllib3 parses both).

    Capped at `MAX_RETRY_AFTER_SECONDS`; None when absent or unreadable, and when it
    asks for no wait (`0`, a date past): honoured, a burst of such 429s spent every
    retry within a second and ended the run, where the backoff rides it out.
    """
    if value is None:
        return None
    try:
        seconds = _RETRY_AFTER.parse_retry_after(value.strip())
    except urllib3.exceptions.InvalidHeader:
        return None
    return min(seconds, MAX_RETRY_AFTER_SECONDS) if seconds > 0 else None


def _api_message(response: Reply, masked: t.Callable[[str], str]) -> str:
    """The API's own error text, from ``errors[].message`` when present, `masked`.

    Masked before a long answer is cut to its first 500 characters: a cut through a
    secret the server quoted would leave the secret's head, which no mask matches.
    """
    text = response.data.decode("utf-8", "replace")
    try:
        payload = json.loads(text)
    except ValueError:
        return masked(text)[:500] or response.reason or "no message"
    if isinstance(payload, dict) and isinstance(payload.get("errors"), list):
        messages = [
            str(e.get("message") or e.get("code")) for e in payload["errors"] if isinstance(e, dict)
        ]
        if messages:
            return masked("; ".join(messages))
    return masked(str(payload))[:500]


class DryRunClient:
    """Writes the requests it would send, one JSON line each; sends nothing."""

    def __init__(self, path: pathlib.Path, base_url: str) -> None:
        """Open (truncate) the output file so each run's file is that run's bodies."""
        self.path = path
        self.base_url = base_url.rstrip("/")
        self.stats = Stats()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._file = path.open("wb")
        except OSError as exc:
            # The start-up check found the place writable (e.g. /proc, as root).
            msg = f"dry_run_path {str(path)!r} cannot be written ({exc.strerror or exc})"
            raise DeliveryError(msg) from None
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
