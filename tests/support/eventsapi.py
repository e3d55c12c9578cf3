"""A local stand-in for mParticle's Events API, for tests and benchmarks.

It behaves like the documented API where the target depends on it: Basic
auth (401 without a header, 403 with a wrong one), at most 100 batches and
256 KB per request, 202 with ``X-mp-rate-limit-percentage-used``, and
de-duplication by ``source_request_id``.  Every batch is checked against
mParticle's published JSON Schema, vendored in tests/fixtures/mparticle_schema,
and a batch that fails it is answered 400 naming the failing path.  Faults can be
scripted for the next N requests: 429 with Retry-After, 5xx, slow answers,
dropped connections, or "accept then drop" (the response is lost after the
batches were recorded, as when a network fails on the way back).  With
``rate_limit=(rate, burst)`` a token bucket (see rate_limit.py) limits batches per
second as an account does: 429 with Retry-After and X-mp-rate-limit-exceeded when
empty, and the last second's usage in X-mp-rate-limit-percentage-used.
"""

from __future__ import annotations

import base64
import collections
import copy
import dataclasses
import functools
import gc
import json
import pathlib
import threading
import time
import typing as t
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import fastjsonschema
import msgspec
from typing_extensions import Self

from tests.support.rate_limit import TokenBucket

if t.TYPE_CHECKING:
    import ssl

SCHEMA_DIR = pathlib.Path(__file__).resolve().parents[1] / "fixtures" / "mparticle_schema"
BATCH_SCHEMA = SCHEMA_DIR / "mparticle-eventsapi-schema.json"
BULK_SCHEMA = SCHEMA_DIR / "mparticle-eventsapi-bulk-schema.json"
MAX_BATCHES = 100
MAX_BYTES = 256 * 1024
#: How often the serving loop looks for a shutdown: every test stops a server, and
#: socketserver's default (0.5 s) made each wait a quarter of a second on average.
SHUTDOWN_POLL_S = 0.01
HISTORICAL_MIN_AGE_MS = 72 * 3600 * 1000


class PublishedSchema:
    """mParticle's published batch schema (vendored), compiled once with fastjsonschema.

    fastjsonschema gives the same verdicts as jsonschema's ``Draft7Validator`` with a
    ``FormatChecker`` on this schema (``ip``'s oneOf of the ipv4/ipv6 formats, the UUID
    patterns, integers) at about a twentieth of the cost, which matters because every
    batch every test sends passes through here.  One difference, on purpose: a pattern's
    ``$`` matches only at the very end, as ECMA-262 (which JSON Schema names) says, so a
    UUID followed by a newline fails here; Python's ``re.search`` lets it through.

    fastjsonschema stops at the first error, and an event that fails the schema fails its
    ``oneOf`` over 17 event types, which would name only ``events/N``.  So a failing event
    is checked again against the one definition its ``event_type`` selects; the message
    then names the field inside the event (``events/0/data/location: ...``).
    """

    def __init__(self, batch_schema: dict[str, t.Any], bulk_schema: dict[str, t.Any]) -> None:
        """Compile the batch schema, one validator per event type, and the bulk schema."""
        # fastjsonschema rewrites the "$ref"s of the schema it compiles, so each compile
        # gets its own copy.
        self._batch = fastjsonschema.compile(copy.deepcopy(batch_schema), use_default=False)
        definitions = batch_schema["definitions"]
        self._by_type: dict[str, t.Callable[[t.Any], t.Any]] = {}
        for choice in batch_schema["properties"]["events"]["items"]["oneOf"]:
            name = choice["$ref"].rsplit("/", 1)[-1]
            only = {
                "$schema": batch_schema["$schema"],
                "definitions": copy.deepcopy(definitions),
                "allOf": [choice],
            }
            check = fastjsonschema.compile(only, use_default=False)
            for event_type in definitions[name]["properties"]["event_type"]["enum"]:
                self._by_type[event_type] = check

        def offline(uri: str) -> dict[str, t.Any]:
            # The bulk schema's items are a remote $ref to the batch schema's $id.
            if uri != batch_schema["$id"]:
                msg = f"the vendored bulk schema refers to {uri}, which is not vendored"
                raise ValueError(msg)
            return copy.deepcopy(batch_schema)

        self._bulk = fastjsonschema.compile(
            copy.deepcopy(bulk_schema), handlers={"https": offline}, use_default=False
        )

    @classmethod
    def vendored(cls) -> PublishedSchema:
        """The copies in tests/fixtures/mparticle_schema (see the README there)."""
        return cls(json.loads(BATCH_SCHEMA.read_text()), json.loads(BULK_SCHEMA.read_text()))

    def bulk_valid(self, body: t.Any) -> bool:
        """Whether a whole ``/bulkevents`` body passes the published bulk schema."""
        try:
            self._bulk(body)
        except fastjsonschema.JsonSchemaValueException:
            return False
        return isinstance(body, list) and all(isinstance(b, dict) for b in body)

    def errors(self, batch: t.Any) -> list[str]:
        """Why ``batch`` fails the schema (empty if it passes), naming the failing path."""
        if not isinstance(batch, dict):
            # The schema has no top-level "type"; the API documents a batch as an object.
            return [f"(batch): must be a JSON object, not {type(batch).__name__}"]
        try:
            self._batch(batch)
        except fastjsonschema.JsonSchemaValueException as error:
            path = [str(part) for part in error.path[1:]]
            if len(path) == 2 and path[0] == "events" and error.rule == "oneOf":
                return [self._event_error(path, batch["events"][int(path[1])], error)]
            return [_describe(path, error)]
        return []

    def _event_error(
        self, path: list[str], event: t.Any, error: fastjsonschema.JsonSchemaValueException
    ) -> str:
        if not isinstance(event, dict):
            return f"{'/'.join(path)}: must be an object, not {type(event).__name__}"
        event_type = event.get("event_type")
        check = self._by_type.get(event_type) if isinstance(event_type, str) else None
        if check is None:
            known = ", ".join(sorted(self._by_type))
            return f"{'/'.join(path)}/event_type: {event_type!r} is not one of {known}"
        try:
            check(event)
        except fastjsonschema.JsonSchemaValueException as inner:
            return _describe([*path, *(str(part) for part in inner.path[1:])], inner)
        return _describe(path, error)


def _describe(path: list[str], error: fastjsonschema.JsonSchemaValueException) -> str:
    """``events/0/data/location: must contain [...] properties`` (at most 300 characters)."""
    detail = error.message.removeprefix(f"{error.name} ")
    return f"{'/'.join(path) or '(batch)'}: {detail}"[:300]


@functools.cache
def published_schema() -> PublishedSchema:
    """The vendored schema, compiled once per process."""
    return PublishedSchema.vendored()


def load_validator() -> t.Callable[[t.Any], list[str]]:
    """A function returning the published schema's errors for one batch."""
    return published_schema().errors


@dataclasses.dataclass
class Fault:
    """What to do instead of (or before) a normal answer."""

    kind: str  # "pass", "status", "slow", "drop", "accept_then_drop", "accept_then_hang"
    status: int = 500
    headers: dict[str, str] = dataclasses.field(default_factory=dict)
    delay_s: float = 0.0
    #: For "status": the answer's body as is, not JSON (a proxy's or gateway's page).
    body: bytes | None = None


@dataclasses.dataclass
class Received:
    """One request as the server saw it."""

    path: str
    n_batches: int
    n_bytes: int
    status: int
    body: bytes = b""  # the request body as it arrived, for snapshot tests
    at: float = 0.0  # monotonic seconds when the answer went out


class EventsApiServer:
    """Threaded HTTP server on 127.0.0.1 with an ephemeral port.

    Use as a context manager; ``url`` is the ``/v2`` base to give the target.
    """

    def __init__(  # noqa: PLR0913 - every knob a test scripts
        self,
        api_key: str = "test-key",
        api_secret: str = "test-secret",  # noqa: S107 - a local fake
        *,
        percentage_used: int = 10,
        answer_delay_s: float = 0.0,
        reject_if: t.Callable[[dict[str, t.Any]], str | None] | None = None,
        validate: bool = True,
        rate_limit: tuple[float, float] | None = None,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        """Create the server (not yet serving); with `tls` it speaks HTTPS only."""
        self.api_key = api_key
        self.bucket = TokenBucket(*rate_limit) if rate_limit else None
        self.api_secret = api_secret
        self.percentage_used = percentage_used
        self.answer_delay_s = answer_delay_s
        self.reject_if = reject_if
        # validate=False is for tests of delivery mechanics that send opaque bodies.
        self.schema = published_schema() if validate else None
        self.lock = threading.Lock()
        self.faults: collections.deque[Fault] = collections.deque()
        self.accepted: dict[str, dict[str, t.Any]] = {}
        self.accepted_paths: dict[str, str] = {}
        self.duplicates: list[str] = []
        self.requests: list[Received] = []
        self.rejected: list[tuple[dict[str, t.Any] | None, list[str]]] = []
        self.historical_unprocessed: list[str] = []
        self.hanging = threading.Event()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._httpd.daemon_threads = True
        self._scheme = "http"
        if tls is not None:
            # The handshake happens as each connection is accepted.
            self._httpd.socket = tls.wrap_socket(self._httpd.socket, server_side=True)
            self._scheme = "https"
        self._thread: threading.Thread | None = None

    # -- scripting -------------------------------------------------------------

    def script(self, fault: Fault, times: int = 1) -> None:
        """Apply ``fault`` to the next ``times`` requests."""
        with self.lock:
            self.faults.extend(dataclasses.replace(fault) for _ in range(times))

    def fail_with(self, status: int, times: int = 1, **headers: str) -> None:
        """Answer the next requests with ``status`` (and headers, e.g. Retry_After)."""
        fixed = {k.replace("_", "-"): v for k, v in headers.items()}
        self.script(Fault("status", status=status, headers=fixed), times)

    def clear_faults(self) -> None:
        """Forget faults not yet used."""
        with self.lock:
            self.faults.clear()

    def validate(self, batch: t.Any) -> list[str]:
        """The published schema's errors for one batch (none when validation is off)."""
        return self.schema.errors(batch) if self.schema is not None else []

    # -- results -----------------------------------------------------------------

    @property
    def url(self) -> str:
        """Base URL ending in /v2."""
        host, port = self._httpd.server_address[:2]
        return f"{self._scheme}://{host!s}:{port}/v2"

    def batches(self) -> list[dict[str, t.Any]]:
        """Accepted batches (first copy of each source_request_id), in arrival order."""
        with self.lock:
            return list(self.accepted.values())

    def events(self) -> list[dict[str, t.Any]]:
        """Every event of every accepted batch."""
        return [e for b in self.batches() for e in b.get("events") or []]

    # -- lifecycle ----------------------------------------------------------------

    def __enter__(self) -> Self:
        """Start serving in a background thread."""
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, args=(SHUTDOWN_POLL_S,), daemon=True
        )
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        """Stop serving and close the socket."""
        self._httpd.shutdown()
        self._httpd.server_close()

    # -- request handling -----------------------------------------------------

    def _next_fault(self) -> Fault | None:
        with self.lock:
            return self.faults.popleft() if self.faults else None

    def _check_auth(self, header: str | None) -> int | None:
        if not header or not header.startswith("Basic "):
            return 401
        try:
            decoded = base64.b64decode(header[6:]).decode()
        except ValueError:
            return 403
        if decoded != f"{self.api_key}:{self.api_secret}":
            return 403
        return None

    def _accept(self, path: str, batches: list[dict[str, t.Any]]) -> None:
        now_ms = int(time.time() * 1000)
        with self.lock:
            for batch in batches:
                request_id = str(batch.get("source_request_id"))
                if request_id in self.accepted:
                    self.duplicates.append(request_id)
                    continue
                self.accepted[request_id] = batch
                self.accepted_paths[request_id] = path
                if path.endswith("/historical"):
                    events = batch.get("events") or []
                    stamps = [e.get("data", {}).get("timestamp_unixtime_ms") for e in events]
                    if not events or any(
                        s is None or s > now_ms - HISTORICAL_MIN_AGE_MS for s in stamps
                    ):
                        self.historical_unprocessed.append(request_id)

    def handle(self, handler: BaseHTTPRequestHandler) -> None:  # noqa: C901, PLR0911, PLR0912, PLR0915
        """Answer one POST."""
        fault = self._next_fault()
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        path = handler.path

        def answer(
            status: int, payload: object = None, headers: dict[str, str] | None = None
        ) -> None:
            if isinstance(payload, bytes):
                body, kind = payload, "text/plain"
            else:
                body = b"" if payload is None else json.dumps(payload).encode()
                kind = "application/json"
            # Recorded before the answer goes out: a client that has its answer may
            # finish, and its test look at `requests`, before this thread resumes.
            with self.lock:
                self.requests.append(
                    Received(path, len(batches or []), len(raw), status, raw, time.monotonic())
                )
            try:
                handler.send_response(status)
                for key, value in (headers or {}).items():
                    handler.send_header(key, value)
                handler.send_header("Content-Length", str(len(body)))
                if body:
                    handler.send_header("Content-Type", kind)
                handler.end_headers()
                handler.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                handler.close_connection = True  # the client gave up waiting

        batches: list[dict[str, t.Any]] | None = None
        if fault is not None and fault.kind == "drop":
            handler.close_connection = True
            handler.connection.shutdown(2)
            return
        if fault is not None and fault.kind == "slow":
            time.sleep(fault.delay_s)
        elif self.answer_delay_s:
            time.sleep(self.answer_delay_s)
        if path not in {"/v2/bulkevents", "/v2/bulkevents/historical", "/v2/events"}:
            answer(404, {"errors": [{"code": "NOT_FOUND", "message": path}]})
            return
        denied = self._check_auth(handler.headers.get("Authorization"))
        if denied is not None:
            answer(denied, {"errors": [{"code": "UNAUTHORIZED", "message": "bad credentials"}]})
            return
        if fault is not None and fault.kind == "status" and fault.body is not None:
            answer(fault.status, fault.body, fault.headers)
            return
        if fault is not None and fault.kind == "status":
            answer(
                fault.status, {"errors": [{"code": "FAULT", "message": "scripted"}]}, fault.headers
            )
            return
        if len(raw) > MAX_BYTES:
            answer(413, {"errors": [{"code": "TOO_LARGE", "message": f"{len(raw)} bytes"}]})
            return
        try:
            # msgspec, not json: the stand-in must not be what a throughput benchmark
            # measures (it parses every body; a DecodeError is a ValueError).
            parsed = msgspec.json.decode(raw)
        except ValueError:
            answer(400, {"errors": [{"code": "BAD_REQUEST", "message": "malformed JSON"}]})
            return
        batches = parsed if path != "/v2/events" else [parsed]
        if not isinstance(batches, list) or len(batches) > MAX_BATCHES:
            message = "the body must be a JSON array of at most 100 batches"
            answer(400, {"errors": [{"code": "BAD_REQUEST", "message": message}]})
            return
        usage = str(self.percentage_used)
        if self.bucket is not None:
            verdict = self.bucket.take(len(batches))
            if not verdict.accepted:
                headers = {
                    "Retry-After": str(verdict.retry_after_s),
                    "X-mp-rate-limit-exceeded": self.bucket.name,
                }
                answer(429, {"errors": [{"code": "TOO_MANY", "message": "slow down"}]}, headers)
                return
            usage = str(verdict.percent_used)
        problems: list[str] = []
        # A bulk body that passes the published bulk schema needs no batch-by-batch
        # check; one that fails is checked batch by batch to say which and where.
        schema = self.schema
        if schema is not None and path != "/v2/events" and schema.bulk_valid(batches):
            schema = None
        for batch in batches:
            errors = schema.errors(batch) if schema is not None else []
            custom = self.reject_if(batch) if self.reject_if and isinstance(batch, dict) else None
            if custom:
                errors = [*errors, custom]
            if errors:
                with self.lock:
                    self.rejected.append((batch if isinstance(batch, dict) else None, errors))
                problems.extend(errors[:3])
        if problems:
            answer(400, {"errors": [{"code": "BAD_REQUEST", "message": p} for p in problems]})
            return
        self._accept(path, batches)
        if fault is not None and fault.kind == "accept_then_hang":
            # Accepted, but the answer never comes in time: a crash test kills the
            # client now, exactly when mParticle has data the client cannot know about.
            self.hanging.set()
            time.sleep(fault.delay_s)
        if fault is not None and fault.kind == "accept_then_drop":
            handler.close_connection = True
            handler.connection.shutdown(2)
            return
        answer(202, None, {"X-mp-rate-limit-percentage-used": usage})

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                server.handle(self)

            def do_GET(self) -> None:
                # Counters for a server in another process (benchmarks).
                with server.lock:
                    stats = {
                        "accepted": len(server.accepted),
                        "events": sum(len(b.get("events") or []) for b in server.accepted.values()),
                        "duplicates": len(server.duplicates),
                        "requests": len(server.requests),
                        "rejected": len(server.rejected),
                        "throttled": sum(r.status == 429 for r in server.requests),
                        "answered": [
                            (r.at, r.n_batches) for r in server.requests if r.status == 202
                        ],
                    }
                body = json.dumps(stats).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_DELETE(self) -> None:
                with server.lock:
                    server.accepted.clear()
                    server.duplicates.clear()
                    server.requests.clear()
                    server.rejected.clear()
                self.send_response(204)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: t.Any) -> None:  # noqa: A002, ARG002
                return

        return Handler


def serve_forever(
    ready: t.Any = None,
    *,
    validate: bool = True,
    rate_limit: tuple[float, float] | None = None,
) -> None:
    """Serve until killed; send the URL through ``ready`` (a pipe end) or print it.

    The process keeps every batch it accepts; its cyclic garbage collector would
    re-walk that ever-growing store again and again, until answers slowed enough to
    hold clients up (benchmarks measured the stand-in, not the client). What it
    stores is plain JSON data, freed by reference counting: the collector is off.
    """
    gc.disable()
    with EventsApiServer(validate=validate, rate_limit=rate_limit) as running:
        if ready is not None:
            ready.send(running.url)
        else:
            print(f"Events API stand-in at {running.url} (key test-key, secret test-secret)")  # noqa: T201
        threading.Event().wait()


if __name__ == "__main__":  # pragma: no cover - manual use: python -m tests.support.eventsapi
    serve_forever()
