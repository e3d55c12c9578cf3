"""Write the .singer fixtures target-mparticle's tests read (deterministic, small).

Usage: python scripts/generate_target_fixtures.py [output_dir]
(default: tests/target/fixtures). Same bytes on every run.
"""

from __future__ import annotations

import json
import pathlib
import random
import sys
import uuid

OUT = pathlib.Path(__file__).resolve().parents[1] / "tests" / "target" / "fixtures"
BASE_MS = 1_763_000_000_000  # 2025-11-13, fixed so files never change
NS = uuid.UUID("7f1c2a52-3c59-4f0e-8a52-6d8f8f6f2f10")
FIRST_NAMES = ["Ada", "Grace", "Léa", "Zoë", "Håkon", "Mei", "Omar", "Priya", "Tomás", "Yuki"]


def line(message: dict) -> str:
    """Sorted keys and real UTF-8, so the files are byte-stable and readable."""
    return json.dumps(message, ensure_ascii=False, sort_keys=True)


def users(rng: random.Random, count: int, state_every: int) -> list[str]:
    """A warehouse users table: identities, attributes, a nested object, a list."""
    schema = {
        "type": "SCHEMA",
        "stream": "users",
        "key_properties": ["id"],
        "schema": {
            "type": "object",
            "properties": {
                "id": {"type": "integer"},
                "email": {"type": ["string", "null"]},
                "customer_id": {"type": ["string", "null"]},
                "first_name": {"type": ["string", "null"]},
                "plan": {"type": ["string", "null"]},
                "score": {"type": ["number", "null"]},
                "vip": {"type": ["boolean", "null"]},
                "tags": {"type": ["array", "null"], "items": {"type": "string"}},
                "address": {
                    "type": ["object", "null"],
                    "properties": {"city": {"type": "string"}, "zip": {"type": "string"}},
                },
                "updated_at": {"type": "string", "format": "date-time"},
            },
        },
    }
    out = [line(schema)]
    for n in range(1, count + 1):
        record = {
            "id": n,
            "email": f"user{n}@example.com",
            "customer_id": f"C{n:05d}",
            "first_name": rng.choice(FIRST_NAMES),
            "plan": rng.choice(["free", "pro", "team"]),
            "score": round(rng.uniform(0, 100), 2),
            "vip": rng.random() < 0.2,
            "tags": rng.sample(["a", "b", "c", "d"], k=rng.randint(0, 3)),
            "address": {"city": rng.choice(["Oslo", "Lyon", "Kyoto"]), "zip": f"{n:05d}"},
            "updated_at": f"2025-11-{1 + n % 28:02d}T10:00:00+00:00",
        }
        out.append(line({"type": "RECORD", "stream": "users", "record": record}))
        if n % state_every == 0:
            out.append(line({"type": "STATE", "value": {"bookmarks": {"users": {"id": n}}}}))
    return out


def orders(rng: random.Random, count: int) -> list[str]:
    """An orders stream with epoch-second times, for commerce mappings."""
    schema = {
        "type": "SCHEMA",
        "stream": "orders",
        "key_properties": ["order_id"],
        "schema": {
            "type": "object",
            "properties": {
                "order_id": {"type": "string"},
                "customer_id": {"type": "string"},
                "status": {"type": "string"},
                "total_amount": {"type": "number"},
                "currency_code": {"type": "string"},
                "placed_at": {"type": "integer"},
                "channel": {"type": ["string", "null"]},
            },
        },
    }
    out = [line(schema)]
    for n in range(1, count + 1):
        record = {
            "order_id": f"O-{n:06d}",
            "customer_id": f"C{rng.randint(1, 50):05d}",
            "status": rng.choice(["placed", "shipped"]),
            "total_amount": round(rng.uniform(5, 500), 2),
            "currency_code": "EUR",
            "placed_at": (BASE_MS // 1000) - n * 60,
            "channel": rng.choice(["web", "app", None]),
        }
        out.append(line({"type": "RECORD", "stream": "orders", "record": record}))
    out.append(line({"type": "STATE", "value": {"bookmarks": {"orders": {"n": count}}}}))
    return out


TAP_EVENT_SCHEMA = {
    "type": "object",
    "properties": {
        "event_type": {"type": "string"},
        "event_name": {"type": ["string", "null"]},
        "timestamp": {"type": "string", "format": "date-time"},
        "timestamp_unixtime_ms": {"type": "integer"},
        "source_message_id": {"type": ["string", "null"]},
        "session_uuid": {"type": ["string", "null"]},
        "mpid": {"type": "integer"},
        "batch_id": {"type": ["integer", "null"]},
        "environment": {"type": ["string", "null"]},
        "user_identities": {"type": "object"},
        "user_attributes": {"type": "object"},
        "device_info": {"type": "object"},
        "application_info": {"type": "object"},
        "custom_attributes": {"type": "object"},
        "data": {"type": "object"},
        "_sdc_source_file": {"type": "string"},
        "_sdc_source_lineno": {"type": "integer"},
        "_sdc_event_index": {"type": "integer"},
        "_sdc_modified_at": {"type": "string", "format": "date-time"},
    },
}


def _tap_event(  # noqa: PLR0913, PLR0917 - one argument per varying field
    rng: random.Random,
    file_key: str,
    lineno: int,
    index: int,
    mpid: int,
    stamp: int,
    session: str,
) -> dict:
    kind = rng.choice(["custom_event", "screen_view", "commerce_event", "session_start"])
    message_id = str(uuid.uuid5(NS, f"{file_key}:{lineno}:{index}"))
    data: dict = {
        "timestamp_unixtime_ms": str(stamp),  # outbound copies carry numbers as strings
        "event_id": str(rng.randint(1, 10**15)),
        "source_message_id": message_id,
        "session_id": str(rng.randint(1, 10**15)),
        "session_uuid": session,
        "message_id": str(rng.randint(1, 10**9)),
        "custom_attributes": {"plan": rng.choice(["free", "pro"]), "count": rng.randint(1, 9)},
    }
    name: str | None = None
    if kind == "custom_event":
        name = rng.choice(["Search", "Play", "Añadir"])
        data |= {"event_name": name, "custom_event_type": rng.choice(["navigation", "other"])}
    elif kind == "screen_view":
        name = rng.choice(["Home", "Cart"])
        data |= {"screen_name": name, "activity_type": "view"}
    elif kind == "commerce_event":
        name = "eCommerce - Purchase"
        data |= {
            "product_action": {
                "action": "purchase",
                "transaction_id": f"T{lineno}{index}",
                "total_amount": "42.50",
                "products": [{"id": "sku-1", "name": "Mug", "price": "12.5", "quantity": "2"}],
            },
            "currency_code": "USD",
        }
    return {
        "event_type": kind,
        "event_name": name,
        "timestamp": "",
        "timestamp_unixtime_ms": stamp,
        "source_message_id": message_id,
        "session_uuid": session,
        "mpid": mpid,
        "batch_id": lineno * 1000 + mpid % 1000,
        "environment": "production",
        "user_identities": {"customer_id": f"cust-{abs(mpid) % 997}", "email": f"{mpid}@ex.com"},
        "user_attributes": {"$FirstName": rng.choice(FIRST_NAMES), "tier": "gold"},
        "device_info": {
            "platform": "iOS",
            "ios_advertising_id": str(uuid.uuid5(NS, f"idfa{mpid}")),
            "device_application_stamp": "not-in-inbound-schema",
            "screen_height": "2532",
        },
        "application_info": {"application_name": "Demo", "os": "IOS", "sdk_build": "x"},
        "custom_attributes": data["custom_attributes"],
        "data": data,
        "_sdc_source_file": file_key,
        "_sdc_source_lineno": lineno,
        "_sdc_event_index": index,
        "_sdc_modified_at": "2025-11-13T00:00:00+00:00",
    }


def tap_events(rng: random.Random, files: int, lines_per_file: int) -> list[str]:
    """What tap-mparticle emits: outbound events with string numbers, STATE per file."""
    out = [
        line(
            {
                "type": "SCHEMA",
                "stream": "events",
                "schema": TAP_EVENT_SCHEMA,
                "key_properties": ["_sdc_source_file", "_sdc_source_lineno", "_sdc_event_index"],
            }
        )
    ]
    for f in range(files):
        file_key = f"mparticle/2025-11-13/Demo_20251113{f:06d}_1234{f}.txt"
        for lineno in range(1, lines_per_file + 1):
            mpid = rng.randint(-(2**62), 2**62)
            session = str(uuid.uuid5(NS, f"s{f}{lineno}"))
            for index in range(rng.randint(1, 6)):
                stamp = BASE_MS + f * 3_600_000 + lineno * 1000 + index
                record = _tap_event(rng, file_key, lineno, index, mpid, stamp, session)
                record["timestamp"] = f"2025-11-13T{f:02d}:00:{lineno % 60:02d}+00:00"
                out.append(line({"type": "RECORD", "stream": "events", "record": record}))
        out.append(line({"type": "STATE", "value": {"bookmarks": {"events": {"file": file_key}}}}))
    return out


def whole_batches(rng: random.Random, count: int) -> list[str]:
    """Raw outbound batches as another tap reading mParticle JSON would emit them."""
    schema = {"type": "SCHEMA", "stream": "raw_batches", "key_properties": [], "schema": {}}
    schema["schema"] = {"type": "object", "properties": {}, "additionalProperties": True}
    out = [line(schema)]
    for n in range(count):
        record = {
            "events": [
                {
                    "event_type": "custom_event",
                    "data": {
                        "event_name": "Replay",
                        "custom_event_type": "other",
                        "timestamp_unixtime_ms": str(BASE_MS + n),
                        "event_id": "1234",
                        "source_message_id": str(uuid.uuid5(NS, f"wb{n}")),
                    },
                }
            ],
            "user_identities": [
                {"identity_type": "customer_id", "identity": f"W{n}", "timestamp_unixtime_ms": 1}
            ],
            "environment": "production",
            "schema_version": 2,
            "message_type": "events",
            "batch_id": rng.randint(1, 10**12),
            "mpid": str(rng.randint(1, 10**12)),
            "timestamp_unixtime_ms": str(BASE_MS),
        }
        out.append(line({"type": "RECORD", "stream": "raw_batches", "record": record}))
    return out


def main() -> None:
    """Write every fixture file."""
    out_dir = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else OUT
    out_dir.mkdir(parents=True, exist_ok=True)
    files = {
        "users.singer": users(random.Random(1), 300, 50),
        "users_crash.singer": users(random.Random(2), 2000, 100),
        "orders.singer": orders(random.Random(3), 120),
        "tap_events.singer": tap_events(random.Random(4), 6, 25),
        "whole_batches.singer": whole_batches(random.Random(5), 20),
    }
    for name, lines in files.items():
        (out_dir / name).write_text("\n".join(lines) + "\n", encoding="utf-8")
        print(f"{out_dir / name}: {len(lines)} messages")


if __name__ == "__main__":
    main()
