"""Capture the exact request bodies mParticle's own Python SDK sends to the Events API.

Why: a corpus of batches that nobody on this project wrote.  PyPI ``mparticle==0.16.1``
(mParticle/mparticle-python-sdk) builds each batch from its own models and serialises
it itself; the bytes it POSTs are what a real integration built on it sends, quirks
included (``customerid`` as the customer id key, ``mpid`` as a string).

The SDK's host is configurable, so it is pointed at a throwaway HTTP server on
127.0.0.1 that records each POST and answers 202.  The batches follow the SDK's README
"Usage" section and its ``example_usage.py``; every value the SDK would not choose
itself is fixed here (the example's consent timestamps, which it takes from the clock,
are fixed too), and the SDK adds no random ids or timestamps of its own, so the output
is the same bytes on every run.

Usage: ``python scripts/capture_sdk_bodies.py [OUT_DIR]``
(default: tests/fixtures/real/python-sdk).
"""

from __future__ import annotations

import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING

import mparticle

if TYPE_CHECKING:
    from collections.abc import Callable

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "real" / "python-sdk"
# example_usage.py reads these two from the clock; fixed at its other timestamp's second.
CONSENT_TIMESTAMP = 1552596256


class Recorder(ThreadingHTTPServer):
    """An HTTP server that keeps every POST body, in arrival order."""

    def __init__(self) -> None:
        """Listen on an ephemeral port of 127.0.0.1."""
        self.posts: list[tuple[str, bytes]] = []
        super().__init__(("127.0.0.1", 0), _Handler)


class _Handler(BaseHTTPRequestHandler):
    server: Recorder
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.server.posts.append((self.path, self.rfile.read(length)))
        self.send_response(202)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002, ARG002
        return


def readme_batch() -> mparticle.Batch:
    """The README's "Usage" batch: a session around one custom event."""
    batch = mparticle.Batch()
    batch.environment = "development"
    batch.events = [
        mparticle.SessionStartEvent(),
        mparticle.AppEvent("Hello World", "navigation"),
        mparticle.SessionEndEvent(),
    ]
    return batch


def example_consent_state() -> mparticle.ConsentState:
    """example_usage.py's CCPA and GDPR consent, with fixed timestamps."""
    ccpa = mparticle.CCPAConsentState()
    ccpa.document = "document_agreement.v3"
    ccpa.consented = True
    ccpa.timestamp_unixtime_ms = CONSENT_TIMESTAMP
    ccpa.location = "mparticle.test/signup"
    ccpa.hardware_id = "IDFA:a5d96n32-224a-3b11-1088-a202695bc710"
    gdpr = mparticle.GDPRConsentState()
    gdpr.document = "document_agreement.v2"
    gdpr.consented = True
    gdpr.timestamp_unixtime_ms = CONSENT_TIMESTAMP
    gdpr.location = "dtmgbank.com/signup"
    gdpr.hardware_id = "IDFA:a5d934n0-232f-4afc-2e9a-3832d95zc702"
    consent = mparticle.ConsentState()
    consent.ccpa = {"data_sale_opt_out": ccpa}
    consent.gdpr = {"document_agreement": gdpr}
    return consent


def example_events() -> list[object]:
    """example_usage.py's events: a custom event and a purchase inside a session."""
    app_event = mparticle.AppEvent("Example", "navigation")
    app_event.timestamp_unixtime_ms = 1552596256103
    app_event.custom_flags = {
        "answer": 42,
        "question": "What is the answer to life, the universe, and everything?",
        "dolphins": ["So long", "Thanks for all the fish"],
    }
    product = mparticle.Product()
    product.name = "Example Product"
    product.id = "sample-sku"
    product.price = 19.99
    action = mparticle.ProductAction("purchase")
    action.products = [product]
    action.tax_amount = 1.50
    action.total_amount = 21.49
    commerce = mparticle.CommerceEvent(action)
    commerce.timestamp_unixtime_ms = 1552596256103

    start = mparticle.SessionStartEvent()
    start.session_id = 12345678
    start.timestamp_unixtime_ms = 1552596256103
    end = mparticle.SessionEndEvent()
    end.session_id = start.session_id  # the SDK's example ties start and end by session_id
    end.session_duration_ms = 10000
    end.timestamp_unixtime_ms = 1552596266103 + 10000

    return [start, app_event, commerce, end]


def example_usage_batch() -> mparticle.Batch:
    """example_usage.py's batch: identities, device, consent, a purchase, a session."""
    batch = mparticle.Batch()
    batch.environment = "development"
    identities = mparticle.UserIdentities()
    identities.customerid = "123456"
    identities.email = "user@example.com"
    batch.user_identities = identities

    device = mparticle.DeviceInformation()
    device.ios_advertising_id = "07d2ebaa-e956-407e-a1e6-f05f871bf4e2"
    device.android_advertising_id = "a26f9736-c262-47ea-988b-0b0504cee874"
    device.att_timestamp_unixtime_ms = 1552596256103
    device.att_authorization_status = "authorized"
    batch.device_info = device
    batch.user_attributes = {"Account type": "trial", "TrialEndDate": "2016-12-01"}

    batch.consent_state = example_consent_state()
    batch.integration_attributes = {"123": {"someIntegrationAttribute": "value"}}

    batch.events = example_events()
    batch.mpid = "600868121729048600"  # a string, as the example sets it
    batch.mp_deviceid = "59780f39-d7a0-4ebe-9950-280f937c29e2"
    return batch


def lifecycle_batch() -> mparticle.Batch:
    """The example's other events (screen view, app state transitions) and app info."""
    batch = mparticle.Batch()
    batch.environment = "production"
    identities = mparticle.UserIdentities()
    identities.customerid = "123456"
    batch.user_identities = identities
    batch.application_info = mparticle.ApplicationInformation(
        application_name="Example App", application_version="1.0.1", package="com.example.app"
    )
    screen = mparticle.ScreenViewEvent(screen_name="Home", timestamp_unixtime_ms=1552596256103)
    screen.custom_flags = {"foo": "bar", "answer": 42, "arrays": ["foo", "bar", "baz"]}
    transitions = [
        mparticle.ApplicationStateTransitionEvent.create_install_event(),
        mparticle.ApplicationStateTransitionEvent.create_upgrade_event(),
        mparticle.ApplicationStateTransitionEvent.create_foreground_event(),
        mparticle.ApplicationStateTransitionEvent.create_background_event(),
    ]
    for event in transitions:
        event.timestamp_unixtime_ms = 1552596256103
    batch.events = [screen, *transitions]
    return batch


def user_update_batch() -> mparticle.Batch:
    """A batch without events: only identities and attributes, as a user update."""
    batch = mparticle.Batch()
    batch.environment = "production"
    identities = mparticle.UserIdentities()
    identities.customerid = "123456"
    identities.email = "user@example.com"
    batch.user_identities = identities
    batch.user_attributes = {"Account type": "paid", "colors": ["red", "blue"]}
    batch.deleted_user_attributes = ["TrialEndDate"]
    return batch


def bulk_batches() -> list[mparticle.Batch]:
    """One bulk upload: the README batch and a user update."""
    return [readme_batch(), user_update_batch()]


# (file name, endpoint, batches): one upload_events call each, or one bulk_upload_events.
CAPTURES: list[tuple[str, str, Callable[[], object]]] = [
    ("events_readme_usage.json", "events", readme_batch),
    ("events_example_usage.json", "events", example_usage_batch),
    ("events_lifecycle.json", "events", lifecycle_batch),
    ("bulkevents_with_user_update.json", "bulkevents", bulk_batches),
]


def capture(out_dir: Path) -> list[Path]:
    """POST every capture through the SDK to a local recorder; write each body as sent."""
    recorder = Recorder()
    thread = threading.Thread(target=recorder.serve_forever, daemon=True)
    thread.start()
    try:
        configuration = mparticle.Configuration()
        configuration.host = f"http://127.0.0.1:{recorder.server_address[1]}/v2"
        configuration.api_key = "capture-key"
        configuration.api_secret = "capture-secret"  # noqa: S105 - a local recorder
        api = mparticle.EventsApi(configuration)
        for _name, endpoint, build in CAPTURES:
            if endpoint == "events":
                api.upload_events(build())
            else:
                api.bulk_upload_events(build())
    finally:
        recorder.shutdown()
        recorder.server_close()
    expected = [f"/v2/{endpoint}" for _name, endpoint, _build in CAPTURES]
    if [path for path, _body in recorder.posts] != expected:
        msg = f"expected POSTs to {expected}, got {[p for p, _ in recorder.posts]}"
        raise RuntimeError(msg)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for (name, _endpoint, _build), (_path, body) in zip(CAPTURES, recorder.posts, strict=True):
        target = out_dir / name
        target.write_bytes(body)
        written.append(target)
    return written


if __name__ == "__main__":
    for path in capture(Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_OUT):
        print(path)
