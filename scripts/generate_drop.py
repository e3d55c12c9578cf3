"""Write a realistic, deterministic mParticle "Amazon S3" event drop to a directory.

Same arguments, same bytes: timestamps come from a fixed epoch and a seeded
random generator, and gzip members carry mtime 0. The drop has what the docs say
a real one has: one outbound-format batch per line, every documented event type,
batches without events, numbers written as strings, negative MPIDs, unicode,
`YYYY-MM-DD/` date folders plus files at the base folder, gzip and plain files,
and the `mParticle_Bucket_Verification_*.txt` file holding `{}`.

Usage:
    python scripts/generate_drop.py OUT [--events N] [--per-file N] [--seed S] [--folder NAME]
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import gzip
import json
import random
import uuid
from pathlib import Path
from typing import Any

EPOCH_MS = 1_714_521_600_000  # 2024-05-01T00:00:00Z
APPS = ("mPTravel", "Café_App")
FILE_EVERY_MS = 6 * 3600 * 1000  # a file every six hours spreads the drop over date folders
GZIP_EVERY = 3  # every third file is gzipped, as with "Use Compression" on


@dataclasses.dataclass
class DropSummary:
    """What was written, so tests and benchmarks can check counts exactly."""

    files: int = 0
    batches: int = 0
    events: int = 0
    empty_batches: int = 0
    by_type: dict[str, int] = dataclasses.field(default_factory=dict)
    keys: list[str] = dataclasses.field(default_factory=list)


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _maybe_str(rng: random.Random, value: int) -> int | str:
    # mParticle's outbound JSON sometimes writes numbers as strings.
    return str(value) if rng.random() < 0.3 else value


def _event_data(rng: random.Random, event_type: str, ts_ms: int, session: str) -> dict[str, Any]:
    data: dict[str, Any] = {
        "timestamp_unixtime_ms": _maybe_str(rng, ts_ms),
        "event_id": _maybe_str(rng, rng.getrandbits(62)),
        "source_message_id": _uuid(rng),
        "session_id": _maybe_str(rng, rng.getrandbits(62)),
        "session_uuid": session,
        "custom_attributes": {},
    }
    specific: dict[str, dict[str, Any]] = {
        "custom_event": {
            "event_name": rng.choice(["Search", "Add to Wishlist", "Réservation ✈", "Play"]),
            "custom_event_type": rng.choice(["navigation", "search", "transaction", "media"]),
            "custom_attributes": {"destination": rng.choice(["Paris", "東京", "São Paulo"])},
        },
        "screen_view": {"screen_name": rng.choice(["Home", "Checkout", "Détails"])},
        "commerce_event": {
            "event_name": "eCommerce - Purchase",
            "currency_code": "EUR",
            "product_action": {
                "action": "purchase",
                "transaction_id": f"T{rng.randint(1000, 9999)}",
                "total_amount": round(rng.uniform(10, 900), 2),
                "products": [{"id": "sku-1", "name": "Hôtel night", "price": 120.5, "quantity": 2}],
            },
        },
        "session_start": {},
        "session_end": {"session_duration_ms": _maybe_str(rng, rng.randint(1000, 900_000))},
        "application_state_transition": {
            "application_transition_type": "application_background",
            "is_first_run": False,
        },
        "push_registration": {"register": True, "registration_token": _uuid(rng)},
        "push_message": {
            "push_message_type": "received",
            "push_message_token": _uuid(rng),
            "push_notification_payload": "{}",
            "network": "gcm",
        },
        "crash_report": {"class_name": "NullPointerException", "severity": "fatal", "message": "x"},
        "opt_out": {"is_opted_out": rng.random() < 0.5},
        "network_performance": {"url": "https://example.com/api", "response_code": 200},
        "breadcrumb": {"label": "tapped book", "session_number": 3},
        "uninstall": {},
        "first_run": {},
        "profile": {"previous_mpid": 1, "current_mpid": 2, "profile_event_type": "login"},
        "user_attribute_change": {"user_attribute_name": "tier", "new": "gold", "old": "silver"},
        "user_identity_change": {
            "new": {"identity_type": "email", "identity": "new@example.com"},
            "old": {"identity_type": "email", "identity": "old@example.com"},
        },
    }
    data.update(specific[event_type])
    return data


EVENT_TYPES = (
    "custom_event",
    "screen_view",
    "commerce_event",
    "session_start",
    "session_end",
    "application_state_transition",
    "push_registration",
    "push_message",
    "crash_report",
    "opt_out",
    "network_performance",
    "breadcrumb",
    "uninstall",
    "first_run",
    "profile",
    "user_attribute_change",
    "user_identity_change",
)
# Mostly custom events and screen views, as in a real app.
EVENT_WEIGHTS = (30, 25, 6, 6, 6, 4, 2, 2, 1, 1, 2, 3, 1, 1, 1, 1, 1)


def _batch(rng: random.Random, ts_ms: int, n_events: int, summary: DropSummary) -> dict[str, Any]:
    mpid = rng.getrandbits(63) * (-1 if rng.random() < 0.3 else 1)
    session = _uuid(rng)
    events = []
    for i in range(n_events):
        event_type = (
            EVENT_TYPES[i]
            if summary.events + i < len(EVENT_TYPES)  # every type appears at least once
            else rng.choices(EVENT_TYPES, EVENT_WEIGHTS)[0]
        )
        summary.by_type[event_type] = summary.by_type.get(event_type, 0) + 1
        events.append(
            {
                "data": _event_data(rng, event_type, ts_ms + i * 137, session),
                "event_type": event_type,
            }
        )
    customer = f"cust-{rng.randint(1, 5000)}"
    return {
        "events": events,
        "user_identities": [
            {"identity_type": "customer_id", "identity": customer, "timestamp_unixtime_ms": "1"},
            {"identity_type": "email", "identity": f"{customer}@example.com"},
        ],
        "user_attributes": {"$FirstName": rng.choice(["Zoë", "Ana", "Łukasz"]), "tier": "gold"},
        "device_info": {"platform": "Android", "android_advertising_id": _uuid(rng)},
        "application_info": {"application_name": "mPTravel", "application_version": "4.2"},
        "environment": rng.choice(["production", "production", "development"]),
        "schema_version": 2,
        "mpid": _maybe_str(rng, mpid),
        "batch_id": _maybe_str(rng, rng.getrandbits(62)),
        "message_type": "events",
        "timestamp_unixtime_ms": ts_ms + 60_000,
    }


def generate_drop(
    root: Path, events: int = 600, seed: int = 7, folder: str = "", per_file: int = 100
) -> DropSummary:
    """Write a drop holding exactly `events` events under `root/folder`.

    Args:
        root: Directory standing for the bucket.
        events: How many events in all.
        seed: Random seed; the same seed writes the same bytes.
        folder: mParticle's "Folder Name" (empty for the bucket root).
        per_file: Events per file.

    Returns:
        What was written.
    """
    rng = random.Random(seed)
    summary = DropSummary()
    base = root / folder if folder else root
    base.mkdir(parents=True, exist_ok=True)
    (base / "mParticle_Bucket_Verification_20240501-000000.txt").write_text("{}")

    remaining = events
    file_index = 0
    while remaining > 0:
        in_file = min(per_file, remaining)
        ts_ms = EPOCH_MS + file_index * FILE_EVERY_MS  # a file every ten minutes
        lines = []
        left = in_file
        while left > 0:
            n = min(left, rng.randint(1, 12))
            lines.append(_batch(rng, ts_ms, n, summary))
            summary.events += n
            summary.batches += 1
            left -= n
            ts_ms += 1000
            if rng.random() < 0.1:  # "Send Batches without Events" is on by default
                lines.append(_batch(rng, ts_ms, 0, summary))
                summary.batches += 1
                summary.empty_batches += 1
        remaining -= in_file
        summary.files += 1

        moment = dt.datetime.fromtimestamp(
            (EPOCH_MS + file_index * FILE_EVERY_MS) / 1000, dt.timezone.utc
        )
        name = f"{APPS[file_index % 2]}_{moment:%Y%m%d%H%M%S%f}_{rng.randint(10000, 99999)}.txt"
        # Most files in upload-date folders; every fifth at the base folder.
        subdir = "" if file_index % 5 == 4 else f"{moment:%Y-%m-%d}/"
        path = base / subdir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        body = "".join(json.dumps(b, ensure_ascii=False) + "\n" for b in lines).encode()
        if file_index % GZIP_EVERY == 1:
            body = gzip.compress(body, mtime=0)
        path.write_bytes(body)
        summary.keys.append(path.relative_to(root).as_posix())
        file_index += 1
    return summary


def main() -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--events", type=int, default=600)
    parser.add_argument("--per-file", type=int, default=100)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--folder", default="")
    args = parser.parse_args()
    summary = generate_drop(args.out, args.events, args.seed, args.folder, args.per_file)
    print(
        f"wrote {summary.events} events in {summary.batches} batches "
        f"({summary.empty_batches} without events) across {summary.files} files to {args.out}"
    )


if __name__ == "__main__":
    main()
