"""A local stand-in for mParticle's Events API, for tests and benchmarks.

It behaves like the documented API where the target depends on it: Basic
auth (401 without a header, 403 with a wrong one), at most 100 batches and
256 KB per request, 202 with ``X-mp-rate-limit-percentage-used``, and
de-duplication by ``source_request_id``.  Each batch is checked against the
published JSON Schema when ``../shared/reference/mparticle/schema`` exists
beside the repository, else against a small built-in check.  Faults can be
scripted for the next N requests: 429 with Retry-After, 5xx, slow answers,
dropped connections, or "accept then drop" (the response is lost after the
batches were recorded, as when a network fails on the way back).
"""

from __future__ import annotations

import base64
import collections
import dataclasses
import json
import os
import pathlib
import threading
import time
import typing as t
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from typing_extensions import Self

SCHEMA_DIR = pathlib.Path(
    # The override lets the suite be run as CI would run it without ../shared.
    os.environ.get("EVENTSAPI_SCHEMA_DIR")
    or pathlib.Path(__file__).resolve().parents[3] / "shared/reference/mparticle/schema"
)
MAX_BATCHES = 100
MAX_BYTES = 256 * 1024
HISTORICAL_MIN_AGE_MS = 72 * 3600 * 1000


def load_validator() -> t.Callable[[t.Any], list[str]]:  # noqa: C901
    """A function returning schema errors for one batch (published schema if present)."""
    schema_file = SCHEMA_DIR / "mparticle-eventsapi-schema.json"
    if schema_file.exists():
        from jsonschema import Draft7Validator, FormatChecker  # noqa: PLC0415

        validator = Draft7Validator(
            json.loads(schema_file.read_text()), format_checker=FormatChecker()
        )

        def published(batch: t.Any) -> list[str]:
            return [
                f"{'/'.join(map(str, e.absolute_path))}: {e.message}"[:300]
                for e in validator.iter_errors(batch)
            ]

        published.source = "published schema"  # type: ignore[attr-defined]
        return published

    def minimal(batch: t.Any) -> list[str]:
        errors: list[str] = []
        if not isinstance(batch, dict):
            return ["batch is not an object"]
        if batch.get("environment", "production") not in {"production", "development"}:
            errors.append("environment invalid")
        if "schema_version" in batch:
            errors.append("schema_version is not allowed")
        identities = batch.get("user_identities", {})
        if not isinstance(identities, dict):
            errors.append("user_identities must be an object")
        for event in batch.get("events") or []:
            if not isinstance(event, dict) or "event_type" not in event or "data" not in event:
                errors.append("event needs event_type and data")
                continue
            data = event["data"]
            stamp = data.get("timestamp_unixtime_ms")
            if stamp is not None and not isinstance(stamp, int):
                errors.append("timestamp_unixtime_ms must be an integer")
            if event["event_type"] == "custom_event" and (
                "event_name" not in data or "custom_event_type" not in data
            ):
                errors.append("custom_event needs event_name and custom_event_type")
        return errors

    minimal.source = "built-in check"  # type: ignore[attr-defined]
    return minimal


@dataclasses.dataclass
class Fault:
    """What to do instead of (or before) a normal answer."""

    kind: str  # "pass", "status", "slow", "drop", "accept_then_drop", "accept_then_hang"
    status: int = 500
    headers: dict[str, str] = dataclasses.field(default_factory=dict)
    delay_s: float = 0.0


@dataclasses.dataclass
class Received:
    """One request as the server saw it."""

    path: str
    n_batches: int
    n_bytes: int
    status: int


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
    ) -> None:
        """Create the server (not yet serving)."""
        self.api_key = api_key
        self.api_secret = api_secret
        self.percentage_used = percentage_used
        self.answer_delay_s = answer_delay_s
        self.reject_if = reject_if
        self.validate = load_validator() if validate else (lambda _batch: [])
        self.schema_source: str = getattr(self.validate, "source", "no check")
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

    # -- results -----------------------------------------------------------------

    @property
    def url(self) -> str:
        """Base URL ending in /v2."""
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}/v2"

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
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
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
            body = b"" if payload is None else json.dumps(payload).encode()
            try:
                handler.send_response(status)
                for key, value in (headers or {}).items():
                    handler.send_header(key, value)
                handler.send_header("Content-Length", str(len(body)))
                if body:
                    handler.send_header("Content-Type", "application/json")
                handler.end_headers()
                handler.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                handler.close_connection = True  # the client gave up waiting
            with self.lock:
                self.requests.append(Received(path, len(batches or []), len(raw), status))

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
        if fault is not None and fault.kind == "status":
            answer(
                fault.status, {"errors": [{"code": "FAULT", "message": "scripted"}]}, fault.headers
            )
            return
        if len(raw) > MAX_BYTES:
            answer(413, {"errors": [{"code": "TOO_LARGE", "message": f"{len(raw)} bytes"}]})
            return
        try:
            parsed = json.loads(raw)
        except ValueError:
            answer(400, {"errors": [{"code": "BAD_REQUEST", "message": "malformed JSON"}]})
            return
        batches = parsed if path != "/v2/events" else [parsed]
        if not isinstance(batches, list) or len(batches) > MAX_BATCHES:
            answer(400, {"errors": [{"code": "BAD_REQUEST", "message": "over 100 batches"}]})
            return
        problems: list[str] = []
        for batch in batches:
            errors = self.validate(batch)
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
        answer(202, None, {"X-mp-rate-limit-percentage-used": str(self.percentage_used)})

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


def serve_forever(ready: t.Any = None, *, validate: bool = True) -> None:
    """Serve until killed; send the URL through ``ready`` (a pipe end) or print it."""
    with EventsApiServer(validate=validate) as running:
        if ready is not None:
            ready.send(running.url)
        else:
            print(f"Events API stand-in at {running.url} (key test-key, secret test-secret)")  # noqa: T201
        threading.Event().wait()


if __name__ == "__main__":  # pragma: no cover - manual use: python eventsapi_server.py
    serve_forever()
