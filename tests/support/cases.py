"""Generators of the small bad inputs the hardening suite keeps (nothing hand-made).

Each function builds bytes from a description, so a reader sees what a case holds
without opening a binary fixture: an events line with a given timestamp, a gzip
file with one trailer byte flipped, a ZIP whose member claims an unknown
compression method or the encrypted flag, and so on.
"""

from __future__ import annotations

import gzip
import io
import json
import zipfile
from typing import Any

GOOD_TS_MS = 1714521600000  # 2024-05-01T00:00:00Z
#: Timestamps no datetime can hold: 1e20 ms, the year 10000, far before year 1.
OUT_OF_RANGE_TS = (10**20, 253402300800000, -(10**17))
CSV_HEADER = "mpid, scanned_timestamp_ms, identity_value, identity_type\n"


def event(name: str, ts_ms: Any = GOOD_TS_MS) -> dict[str, Any]:
    """One custom event named `name`."""
    return {
        "event_type": "custom_event",
        "data": {"event_name": name, "timestamp_unixtime_ms": ts_ms},
    }


def batch_line(*events: dict[str, Any], mpid: int = 7) -> bytes:
    """One events-file line: a batch holding `events`."""
    return json.dumps({"mpid": mpid, "events": list(events)}).encode() + b"\n"


def nested(depth: int) -> bytes:
    """A JSON value nested `depth` arrays deep."""
    return b"[" * depth + b"]" * depth


def deep_batch_line(depth: int) -> bytes:
    """A batch line whose event data holds a value nested `depth` deep."""
    return (
        b'{"mpid":7,"events":[{"event_type":"custom_event","data":{"x":' + nested(depth) + b"}}]}\n"
    )


def huge_int_batch_line(digits: int) -> bytes:
    """A batch line whose mpid is an integer of `digits` digits."""
    return (
        b'{"mpid":' + b"9" * digits + b',"events":[' + json.dumps(event("big")).encode() + b"]}\n"
    )


def gzip_with_flipped_byte(data: bytes, offset_from_end: int) -> bytes:
    """gzip `data`, then flip the low bit of one trailer byte (8: CRC32, 4: size)."""
    packed = bytearray(gzip.compress(data, mtime=0))
    packed[-offset_from_end] ^= 1
    return bytes(packed)


def csv_row(mpid: int, value: str) -> str:
    """One audience download CSV row."""
    return f"{mpid}, 1714521600, {value}, customer_id\n"


def zip_of(members: dict[str, bytes]) -> bytes:
    """A ZIP of `members`, stored uncompressed (so headers are easy to patch)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def patch_member(archive: bytes, name: str, *, method: int | None = None, flags: int = 0) -> bytes:
    """Rewrite one member's compression method and/or OR in general-purpose flags.

    Both the local header (`PK\\x03\\x04`) and the central directory entry
    (`PK\\x01\\x02`) are patched, as zipfile reads one or the other.
    """
    data = bytearray(archive)
    encoded = name.encode()
    # (signature, flags offset, method offset, name length offset, name offset)
    for signature, flag_at, method_at, length_at, name_at in (
        (b"PK\x03\x04", 6, 8, 26, 30),
        (b"PK\x01\x02", 8, 10, 28, 46),
    ):
        start = 0
        while (start := data.find(signature, start)) >= 0:
            length = int.from_bytes(data[start + length_at : start + length_at + 2], "little")
            if data[start + name_at : start + name_at + length] == encoded:
                old = int.from_bytes(data[start + flag_at : start + flag_at + 2], "little")
                data[start + flag_at : start + flag_at + 2] = (old | flags).to_bytes(2, "little")
                if method is not None:
                    data[start + method_at : start + method_at + 2] = method.to_bytes(2, "little")
            start += 4
    return bytes(data)


def with_central_directory_offset(archive: bytes, offset: int) -> bytes:
    """Rewrite the end record's offset of the central directory (4 bytes at +16).

    zipfile then finds the directory where it is, but takes the difference as
    padding before the archive, so every member's header offset goes negative.
    """
    data = bytearray(archive)
    end = data.rfind(b"PK\x05\x06")
    data[end + 16 : end + 20] = offset.to_bytes(4, "little")
    return bytes(data)
