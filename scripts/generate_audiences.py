"""Generate audience files of every documented shape, deterministically.

Usage:
    python scripts/generate_audiences.py DEST            # every shape, under DEST/
    python scripts/generate_audiences.py DEST --sample   # the small demo sample

What it writes (facts from mParticle's audience docs; see the README):
- an audience download ZIP (manifest.json + one CSV per audience or A/B variant) and
  the same files unzipped in their own folder;
- Kinesis Firehose deliveries: records newline-delimited, concatenated with no
  separator, and wrapped as `{"DeliveryStreamName", "Record": {"Data": ...}}` with
  Data an object or base64; timestamps in seconds and milliseconds, as numbers and
  strings; one delivery gzipped;
- cloud-storage delta files named `[Audience-Name]_[Audience ID]_[Date]_[Time]_[GUID].txt`
  (one gzipped under the same name) and the empty `mparticle-validation-<stamp>.txt`;
- partner feed messages (add, delete, attribute_update with upsert, delete and `{}`,
  a heartbeat), one file gzipped.

Names, emails and attribute values include non-ASCII text. The same arguments give
the same bytes. `generate` returns how many records each stream should emit.
"""

from __future__ import annotations

import argparse
import base64
import gzip
import io
import json
import random
import uuid
import zipfile
from pathlib import Path
from typing import Any

SEED = 20240501
BASE_MS = 1_714_521_600_000  # 2024-05-01T00:00:00Z
ZIP_DATE = (2024, 5, 1, 0, 0, 0)
FIREHOSE_IDENTITIES = (
    "CustomerId",
    "Email",
    "Other",
    "Other3",
    "FacebookId",
    "GoogleAdvertisingIdentifier",
    "IDFA",
    "RokuAdvertisingIdentifier",
)
DELTA_IDENTITIES = ("customer_id", "email", "other_id_2", "android_advertising_id", "ios_idfv")
PARTNER_USER = ("email", "customer", "other2", "mobile_number")
PARTNER_DEVICE = ("ios_advertising_id", "ios_vendor_id", "google_advertising_id", "android_id")
NAMES = ("zoë", "José", "Åsa", "Kenji 健二", "Chloé", "Dmitri Дмитрий", "Ava", "Noah")


class Expected:
    """Records each stream should emit for what was written."""

    def __init__(self) -> None:
        """Start at zero."""
        self.counts = {"audience_memberships": 0, "audience_user_attributes": 0}

    def memberships(self, identities: int) -> None:
        """Count one membership message: a row per identity, or one row if none."""
        self.counts["audience_memberships"] += max(identities, 1)

    def attributes(self, changes: int) -> None:
        """Count attribute changes."""
        self.counts["audience_user_attributes"] += changes


def _guid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _mpid(rng: random.Random) -> int:
    return rng.randint(-(2**63), 2**63 - 1)


def _identity_value(rng: random.Random, kind: str) -> str:
    name = rng.choice(NAMES)
    if "mail" in kind.lower():
        return f"{name.split()[0].lower()}.{rng.randint(1, 999)}@exämple.com"
    if any(word in kind.lower() for word in ("advertising", "idfa", "vendor", "idfv", "android")):
        return _guid(rng)
    return f"{name.split()[0]}-{rng.randint(1000, 9999)}"


def gz(data: bytes) -> bytes:
    """Gzip with a fixed header time, so output is byte-for-byte reproducible."""
    return gzip.compress(data, mtime=0)


# --- 1. audience download -------------------------------------------------------


def download_files(rng: random.Random, expected: Expected, rows: int) -> dict[str, bytes]:
    """The files of one audience download: two CSVs (one an A/B variant) and the manifest."""
    audiences = [
        (8754, "PotentialParisians", None),
        (8755, "Lapsed Users - Variant B", "Variant B"),
    ]
    files: dict[str, bytes] = {}
    entries = []
    for index, (audience_id, name, _variant) in enumerate(audiences):
        file_name = f"{audience_id}_{name}_172136Nov292018.csv"
        lines = ["mpid, scanned_timestamp_ms, identity_value, identity_type"]
        by_type: dict[str, int] = {}
        for row in range(rows):
            identity_type = ("customer_id", "email", "ios_idfv", "other_id_4")[row % 4]
            # The docs' own example writes seconds in scanned_timestamp_ms.
            stamp = BASE_MS // 1000 + row if (row + index) % 2 else BASE_MS + row
            value = _identity_value(rng, identity_type)
            lines.append(f"{_mpid(rng)}, {stamp}, {value}, {identity_type}")
            by_type[identity_type] = by_type.get(identity_type, 0) + 1
            expected.memberships(1)
        files[file_name] = ("\n".join(lines) + "\n").encode("utf-8")
        entries.append(
            {
                "file_name": file_name,
                "min_timestamp_ms": BASE_MS,
                "max_timestamp_ms": BASE_MS + rows,
                "total_users": rows,
                "total_rows": rows,
                "rows_by_identity": by_type,
            }
        )
    manifest = {
        "archive_name": "mParticleAudiences_204223Jan022019_9dd9.zip",
        "id": _guid(rng),
        "audience_ids": [a[0] for a in audiences],
        "included_identities": ["customer_id", "email", "ios_idfv", "other_id_4"],
        "manifest_generated": "2024-05-01T00:00:00.0000000Z",
        "min_timestamp_ms": BASE_MS,
        "max_timestamp_ms": BASE_MS + rows,
        "total_rows": rows * len(audiences),
        "files": entries,
    }
    files["manifest.json"] = json.dumps(manifest, indent=2).encode("utf-8")
    return files


def zip_bytes(files: dict[str, bytes]) -> bytes:
    """A ZIP of the files with fixed timestamps (reproducible)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            info = zipfile.ZipInfo(name, date_time=ZIP_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, data)
    return buffer.getvalue()


# --- 2. Kinesis Firehose ------------------------------------------------------------


def firehose_record(rng: random.Random, expected: Expected, index: int) -> dict[str, Any]:
    """One Firehose audience message, its timestamp in one of four spellings."""
    seconds = BASE_MS // 1000 + index
    stamp: Any = (seconds, str(seconds), BASE_MS + index, str(BASE_MS + index))[index % 4]
    names = rng.sample(FIREHOSE_IDENTITIES, rng.randint(0 if index % 7 == 0 else 1, 4))
    identities = {name: _identity_value(rng, name) for name in names}
    if not identities:  # a user known only by MPID (a row needs an identity or an MPID)
        identities = {"MPID": str(-1 - index)}  # no draw: the other records stay the same
    expected.memberships(len(identities))
    return {
        "MembershipChangedTimestamp": stamp,
        "AudienceId": 123123 if index % 3 else str(123124),
        "AudienceName": "LowEngagement" if index % 3 else "Voyageurs ✈",
        "IsMember": index % 5 != 0,
        "UserIdentities": identities,
    }


def wrap(record: dict[str, Any], *, as_base64: bool) -> dict[str, Any]:
    """Wrap a record as Firehose shows it: Data as an object or base64."""
    payload = json.dumps(record, ensure_ascii=False).encode("utf-8")
    data: Any = base64.b64encode(payload).decode("ascii") if as_base64 else record
    return {"DeliveryStreamName": "mPTravelAudiences", "Record": {"Data": data}}


def firehose_files(rng: random.Random, expected: Expected, count: int) -> dict[str, bytes]:
    """Firehose deliveries: NDJSON, concatenated, wrapped (object and base64), gzipped."""
    folder = "firehose/2024/05/01/00/"
    stem = "mPTravelAudiences-1-2024-05-01-00-"

    def records(start: int) -> list[dict[str, Any]]:
        return [firehose_record(rng, expected, start + i) for i in range(count)]

    def dumps(value: dict[str, Any]) -> str:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))

    ndjson = "\n".join(dumps(r) for r in records(0)) + "\n"
    concatenated = "".join(dumps(r) for r in records(count))  # no separator at all
    wrapped = "\n".join(
        dumps(wrap(r, as_base64=i % 2 == 0)) for i, r in enumerate(records(2 * count))
    )
    mixed = "".join(dumps(wrap(r, as_base64=True)) for r in records(3 * count)) + "\n"
    return {
        f"{folder}{stem}00-{_guid(rng)}": ndjson.encode("utf-8"),
        f"{folder}{stem}05-{_guid(rng)}": concatenated.encode("utf-8"),
        f"{folder}{stem}10-{_guid(rng)}": wrapped.encode("utf-8"),
        f"{folder}{stem}15-{_guid(rng)}.gz": gz(mixed.encode("utf-8")),
    }


# --- 3. cloud-storage delta files -----------------------------------------------------


def delta_lines(rng: random.Random, expected: Expected | None, count: int, start: int = 0) -> str:
    """Delta records, one JSON object per line."""
    lines = []
    for index in range(start, start + count):
        names = rng.sample(DELTA_IDENTITIES, rng.randint(1, 3))
        identities: dict[str, str] = {name: _identity_value(rng, name) for name in names}
        if index % 4:
            identities["mpid"] = str(_mpid(rng))
        if expected is not None:
            expected.memberships(len(names))
        stamp: Any = BASE_MS + index if index % 3 else str(BASE_MS + index)
        record = {
            "IsAddRequest": index % 6 != 0,
            "IdentityValues": identities,
            "MembershipChangedTimestamp": stamp,
        }
        lines.append(json.dumps(record, ensure_ascii=False, separators=(",", ":")))
    return "\n".join(lines) + "\n"


def delta_name(rng: random.Random, name: str, audience_id: int, second: int) -> str:
    """A delta file name as mParticle builds it (spaces in the name become hyphens)."""
    return f"{name.replace(' ', '-')}_{audience_id}_2024-05-01_00-00-{second:02d}_{_guid(rng)}.txt"


def delta_files(rng: random.Random, expected: Expected, count: int) -> dict[str, bytes]:
    """Two delta files (one gzipped under its .txt name) and the empty validation file."""
    return {
        "gcs/" + delta_name(rng, "Test Audience", 1234, 0): delta_lines(
            rng, expected, count
        ).encode("utf-8"),
        "gcs/" + delta_name(rng, "Café Lovers", 5678, 1): gz(
            delta_lines(rng, expected, count, count).encode("utf-8")
        ),
        "gcs/mparticle-validation-20240501000000.txt": b"",
    }


# --- 4. partner feed ------------------------------------------------------------------


def partner_message(rng: random.Random, expected: Expected, index: int) -> dict[str, Any]:
    """One audience_membership_change_request with a few profiles."""
    profiles = []
    for _ in range(rng.randint(1, 3)):
        user = [
            {
                "type": t,
                "encoding": rng.choice(("raw", "md5", "sha256")),
                "value": _identity_value(rng, t),
            }
            for t in rng.sample(PARTNER_USER, rng.randint(0, 2))
        ]
        device = [
            {"type": t, "encoding": "raw", "value": _identity_value(rng, t)}
            for t in rng.sample(PARTNER_DEVICE, rng.randint(0, 2))
        ]
        audiences: list[dict[str, Any]] = []
        for position, action in enumerate(rng.sample(("add", "delete", "attribute_update"), 2)):
            audience: dict[str, Any] = {
                "audience_id": 456 + position,
                "audience_name": f"Example Audience {position} ✓",
                "audience_subscription_settings": {"setting": "value"},
                "action": action,
            }
            if action == "attribute_update":
                audience["user_attributes"] = [
                    {"key": "Favourite Café", "value": rng.choice(NAMES), "action": "upsert"},
                    {"key": "Churned", "action": "delete"},
                    {"key": "Tags", "list_value": ["a", "ß"], "action": "upsert"},
                    {},
                ]
                expected.attributes(3)
            else:
                expected.memberships(len(user) + len(device))
            audiences.append(audience)
        profiles.append(
            {
                "user_identities": user,
                "device_identities": device,
                "audiences": audiences,
                "mpid": str(_mpid(rng)),
            }
        )
    return {
        "type": "audience_membership_change_request",
        "id": _guid(rng),
        "timestamp_ms": BASE_MS + index,
        "firehose_version": "2.8.1",
        "account": {"account_id": 123456, "account_settings": {}},
        "user_profiles": profiles,
    }


def partner_files(rng: random.Random, expected: Expected, count: int) -> dict[str, bytes]:
    """Partner feed messages, one per line, with a heartbeat; one file gzipped."""

    def lines(start: int) -> bytes:
        out = [partner_message(rng, expected, start + i) for i in range(count)]
        heartbeat = {
            "type": "audience_membership_change_request",
            "id": _guid(rng),
            "timestamp_ms": BASE_MS,
            "firehose_version": "2.8.1",
            "account": {"account_id": 123456},
        }
        out.insert(1, heartbeat)
        return ("\n".join(json.dumps(m, ensure_ascii=False) for m in out) + "\n").encode()

    return {"partner/feed-0001.jsonl": lines(0), "partner/feed-0002.jsonl.gz": gz(lines(count))}


# --- entry points ---------------------------------------------------------------------


def generate(dest: Path, *, seed: int = SEED, scale: int = 6) -> dict[str, int]:
    """Write every shape under `dest` (the audiences prefix).

    Args:
        dest: The folder standing for `audiences_prefix`.
        seed: Random seed.
        scale: Rows or messages per file.

    Returns:
        Records each stream should emit: stream name -> count.
    """
    rng = random.Random(seed)
    expected = Expected()
    download = download_files(rng, expected, rows=scale)
    files: dict[str, bytes] = {"downloads/mParticleAudiences_20240501.zip": zip_bytes(download)}
    # The same download, unzipped: counted again, since those are other files.
    for name, data in download_files(random.Random(seed), expected, rows=scale).items():
        files[f"downloads/unzipped/{name}"] = data
    files.update(firehose_files(rng, expected, scale))
    files.update(delta_files(rng, expected, scale))
    files.update(partner_files(rng, expected, max(scale // 2, 2)))
    for key, data in files.items():
        path = dest / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return dict(expected.counts)


def write_sample_audiences(root: Path) -> None:
    """Write a small audience sample for the demo drop.

    Args:
        root: The drop root (files go to `root/audiences/`, the default
            `audiences_prefix`), or the audiences folder itself if it is named so.
    """
    dest = root if root.name == "audiences" else root / "audiences"
    generate(dest, seed=SEED, scale=3)


def write_large_delta(path: Path, megabytes: int, *, value_size: int = 1000) -> int:
    """Write one big cloud-storage delta file, streaming (for memory tests).

    Each line carries one identity padded to `value_size` characters, so a file
    of many megabytes stays quick to parse while still far larger than any buffer.

    Args:
        path: The file (name it like a delta file so the audience is known).
        megabytes: About how big.
        value_size: Characters per identity value.

    Returns:
        The number of membership records it holds.
    """
    target = megabytes << 20
    written = 0
    lines = 0
    with path.open("wb") as out:
        while written < target:
            block = []
            for index in range(lines, lines + 1000):
                value = f"{index:012d}-" + "é" * ((value_size - 13) // 2)
                record = {
                    "IsAddRequest": index % 2 == 0,
                    "IdentityValues": {"customer_id": value, "mpid": str(index)},
                    "MembershipChangedTimestamp": BASE_MS + index,
                }
                block.append(json.dumps(record, ensure_ascii=False, separators=(",", ":")))
            chunk = ("\n".join(block) + "\n").encode("utf-8")
            out.write(chunk)
            written += len(chunk)
            lines += 1000
    return lines


def write_long_firehose_line(path: Path, records: int, *, seed: int = SEED) -> int:
    """Write a Firehose delivery of concatenated records with no newline at all.

    Args:
        path: The file.
        records: How many messages.
        seed: Random seed.

    Returns:
        The number of membership records it holds.
    """
    rng = random.Random(seed)
    expected = Expected()
    with path.open("wb") as out:
        for index in range(records):
            record = wrap(firehose_record(rng, expected, index), as_base64=index % 2 == 0)
            out.write(json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode())
    return expected.counts["audience_memberships"]


def main() -> None:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("dest", type=Path, help="folder standing for the audiences prefix")
    parser.add_argument("--sample", action="store_true", help="the small demo sample")
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args()
    if args.sample:
        write_sample_audiences(args.dest)
        print(f"wrote a sample audience drop under {args.dest}")
        return
    counts = generate(args.dest, seed=args.seed)
    print(f"wrote audience files under {args.dest}: expect {counts}")


if __name__ == "__main__":
    main()
