"""Audience files of every documented shape in, membership and attribute records out.

mParticle has four ways of landing audience data as files, and none of them says
which it is; the shape is told from the content (and from the name where the name
carries data), never from a setting:

1. **Audience download**: a ZIP (it starts with `PK`) of one CSV per audience or
   A/B variant plus `manifest.json`, or the same files unzipped. A CSV starts with
   the header `mpid, scanned_timestamp_ms, identity_value, identity_type`. See
   `audience_download`.
2. **Kinesis Firehose delivery**: JSON records with `AudienceId` and `IsMember`,
   possibly inside `{"DeliveryStreamName", "Record": {"Data": ...}}` with `Data` an
   object or base64, newline-delimited or concatenated (see `jsondocs`).
3. **Cloud-storage delta files**: JSON lines with `IsAddRequest` and
   `IdentityValues`, in files named `[Audience-Name]_[Audience ID]_[Date]_[Time]_[GUID].txt`.
4. **Partner feed messages**: `{"type": "audience_membership_change_request", ...}`.

JSON documents are recognised one by one, so a file mixing shapes still reads.

Records and their keys are described in `audience_records`. Nothing here touches S3
or the Singer SDK.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import gzip
import re
import zlib
from typing import IO, TYPE_CHECKING, Any

import msgspec

from mparticle_facts.identities import is_mpid_key
from tap_mparticle.audience_download import (
    ZIP_MAGIC,
    Manifest,
    is_download_csv,
    parse_download_csv,
    parse_download_zip,
)
from tap_mparticle.audience_records import (
    MEMBERSHIPS,
    USER_ATTRIBUTES,
    AudienceFile,
    AudienceItem,
    NotAudienceError,
    RecordNumberer,
    identity_rows,
    json_type,
    required_timestamp,
    text_value,
    to_audience_id,
    to_bool,
    to_mpid,
    to_timestamp,
)
from tap_mparticle.jsondocs import iter_json_documents
from tap_mparticle.parsers import BadInputError, open_decompressed

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

PARTNER_MESSAGE_TYPE = "audience_membership_change_request"
PARTNER_ACTIONS = {"add": "add", "delete": "remove"}
#: Firehose messages before 2.0 list audiences by what happened to them.
LEGACY_AUDIENCE_KEYS = {"added_audiences": "add", "removed_audiences": "delete"}
ATTRIBUTE_ACTIONS = frozenset({"upsert", "delete"})
ENCODINGS = frozenset({"raw", "md5", "sha1", "sha256"})
VALIDATION_FILE = re.compile(r"^mparticle-validation-.*\.txt(\.gz)?$", re.IGNORECASE)
DELTA_FILE = re.compile(
    r"^(?P<name>.+)_(?P<id>\d+)_(?P<date>\d{4}-\d{2}-\d{2})_(?P<time>\d{2}-\d{2}-\d{2})"
    r"_(?P<guid>[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12})"
    r"\.txt(?:\.gz)?$"
)
_decode_json = msgspec.json.Decoder().decode


@dataclasses.dataclass(frozen=True)
class DeltaAudience:
    """The audience a cloud-storage delta file belongs to, read from its name."""

    audience_id: int
    audience_name: str


def delta_audience(name: str) -> DeltaAudience | None:
    """Read the audience from a cloud-storage delta file name.

    Args:
        name: e.g. `Test-Audience_1234_2020-01-01_00-00-00_<guid>.txt`.

    Returns:
        The audience, or None when the name does not follow the pattern. Spaces
        in the audience name were replaced with hyphens by mParticle; they are
        kept as hyphens, since a real hyphen cannot be told apart.
    """
    match = DELTA_FILE.match(name)
    if match is None:
        return None
    return DeltaAudience(int(match["id"]), match["name"])


def is_validation_file(name: str) -> bool:
    """Say whether a key is the empty file mParticle writes to test the connection.

    Args:
        name: The last part of the key.

    Returns:
        True for `mparticle-validation-<stamp>.txt`.
    """
    return VALIDATION_FILE.match(name) is not None


def records_from_document(document: Any, file: AudienceFile) -> list[tuple[str, dict[str, Any]]]:  # noqa: ANN401  (any JSON value)
    """Recognise one JSON document's shape and turn it into records.

    The whole document is converted before anything is returned, so a document
    with one bad value yields no partial rows.

    Args:
        document: A decoded JSON document.
        file: The file it came from.

    Returns:
        `(stream name, record)` pairs without provenance columns.

    Raises:
        NotAudienceError: The document is none of the shapes or holds a bad value.
    """
    if not isinstance(document, dict):
        msg = f"a JSON {type(document).__name__}, not an audience message"
        raise NotAudienceError(msg)
    if document.get("type") == PARTNER_MESSAGE_TYPE:
        return _partner_feed(document, file)
    if "Record" in document:
        document = _unwrap_firehose(document)
    if "AudienceId" in document or "IsMember" in document:
        return _firehose(document, file)
    if "IsAddRequest" in document or "IdentityValues" in document:
        return _cloud_storage(document, file)
    keys = ", ".join(sorted(document)[:6]) or "none"
    msg = (
        "not an audience message of any known shape (Firehose, cloud-storage delta or "
        f"partner feed); its keys: {keys}"
    )
    raise NotAudienceError(msg)


def _unwrap_firehose(document: dict[str, Any]) -> dict[str, Any]:
    record = document.get("Record")
    data = record.get("Data") if isinstance(record, dict) else None
    if isinstance(data, str):
        try:
            data = _decode_json(base64.b64decode(data, validate=True))
        except (binascii.Error, ValueError, msgspec.DecodeError):
            msg = "Record.Data is neither a JSON object nor base64 of one"
            raise NotAudienceError(msg) from None
    if not isinstance(data, dict):
        msg = "Record.Data is neither a JSON object nor base64 of one"
        raise NotAudienceError(msg)
    return data


def _firehose(document: dict[str, Any], file: AudienceFile) -> list[tuple[str, dict[str, Any]]]:
    identities = document.get("UserIdentities") or {}
    if not isinstance(identities, dict):
        msg = "UserIdentities is not an object"
        raise NotAudienceError(msg)
    top_mpid = next((v for k, v in document.items() if is_mpid_key(k)), None)
    rows = identity_rows(
        ((name, value, "raw") for name, value in identities.items()),
        file,
        audience_id=to_audience_id(document.get("AudienceId"), "AudienceId"),
        audience_name=text_value(document.get("AudienceName"), "AudienceName"),
        mpid=to_mpid(top_mpid),
        action="add" if to_bool(document.get("IsMember"), "IsMember") else "remove",
        timestamp=required_timestamp(
            document.get("MembershipChangedTimestamp"), "MembershipChangedTimestamp"
        ),
        source_format="firehose",
    )
    return [(MEMBERSHIPS, row) for row in rows]


def _cloud_storage(
    document: dict[str, Any], file: AudienceFile
) -> list[tuple[str, dict[str, Any]]]:
    audience = delta_audience(file.name)
    if audience is None:
        msg = (
            "a cloud-storage delta record in a file not named "
            "[Audience-Name]_[Audience ID]_[Date]_[Time]_[GUID].txt, so its audience is unknown"
        )
        raise NotAudienceError(msg)
    identities = document.get("IdentityValues") or {}
    if not isinstance(identities, dict):
        msg = "IdentityValues is not an object"
        raise NotAudienceError(msg)
    rows = identity_rows(
        ((name, value, "raw") for name, value in identities.items()),
        file,
        audience_id=audience.audience_id,
        audience_name=audience.audience_name,
        action="add" if to_bool(document.get("IsAddRequest"), "IsAddRequest") else "remove",
        timestamp=required_timestamp(
            document.get("MembershipChangedTimestamp"), "MembershipChangedTimestamp"
        ),
        source_format="cloud_storage",
    )
    return [(MEMBERSHIPS, row) for row in rows]


def _array(container: dict[str, Any], key: str) -> list[Any]:
    """`container[key]` as a list; missing, null or empty is `[]`.

    Iterating a number raises TypeError and iterating a string or object walks
    its characters or keys; either would be a crash or a misleading message far
    from the real problem, which is the value's type.

    Raises:
        NotAudienceError: The value is present but not an array.
    """
    value = container.get(key)
    if isinstance(value, list):
        return value
    if not value:  # null, "", 0, {}: nothing listed, as mParticle's examples write it
        return []
    msg = f"{key} is {value!r:.40}, not an array"
    raise NotAudienceError(msg)


def _partner_identities(profile: dict[str, Any]) -> list[tuple[str, Any, str]]:
    found = []
    for group in ("user_identities", "device_identities", "partner_identities"):
        for identity in _array(profile, group):
            if not isinstance(identity, dict) or not identity.get("type"):
                msg = f"an entry of {group} has no type"
                raise NotAudienceError(msg)
            encoding = str(identity.get("encoding") or "raw").lower()
            if encoding not in ENCODINGS:
                msg = f"identity encoding {encoding!r} is not raw, md5, sha1 or sha256"
                raise NotAudienceError(msg)
            kind = text_value(identity["type"], f"the type of an entry of {group}") or ""
            found.append((kind, identity.get("value"), encoding))
    return found


def _partner_feed(document: dict[str, Any], file: AudienceFile) -> list[tuple[str, dict[str, Any]]]:
    profiles = _array(document, "user_profiles")
    if not profiles:  # a heartbeat: no rows, but a time it gives must still be one
        to_timestamp(document.get("timestamp_ms"))
        return []
    timestamp = required_timestamp(document.get("timestamp_ms"), "timestamp_ms")
    out: list[tuple[str, dict[str, Any]]] = []
    for profile in profiles:
        if not isinstance(profile, dict):
            msg = "an entry of user_profiles is not an object"
            raise NotAudienceError(msg)
        identities = _partner_identities(profile)
        mpid = to_mpid(profile.get("mpid"))
        for audience in _profile_audiences(profile):
            audience_id = to_audience_id(audience.get("audience_id"), "audience_id")
            name = text_value(audience.get("audience_name"), "audience_name")
            action = audience.get("action")
            if action == "attribute_update":
                out.extend(
                    (USER_ATTRIBUTES, attribute)
                    for attribute in _attribute_updates(
                        audience, audience_id, name, mpid, timestamp
                    )
                )
                continue
            if not isinstance(action, str) or action not in PARTNER_ACTIONS:
                msg = f"audience action {action!r} is not add, delete or attribute_update"
                raise NotAudienceError(msg)
            rows = identity_rows(
                identities,
                file,
                audience_id=audience_id,
                audience_name=name,
                mpid=mpid,
                action=PARTNER_ACTIONS[action],
                timestamp=timestamp,
                source_format="partner_feed",
            )
            out.extend((MEMBERSHIPS, row) for row in rows)
    return out


def _profile_audiences(profile: dict[str, Any]) -> list[dict[str, Any]]:
    """A profile's audience entries, each with its `action`, in either message version.

    Firehose 2.x lists `audiences[]` each with an `action`; earlier versions list
    `added_audiences[]` and `removed_audiences[]`, and carry the user's attributes as a
    plain `user_attributes` map, which becomes one `attribute_update` per audience so
    the attributes are not lost.

    Raises:
        NotAudienceError: The profile has no audience list at all, an entry is not
            an object, or `user_attributes` is not a map.
    """
    keys = [key for key in ("audiences", *LEGACY_AUDIENCE_KEYS) if key in profile]
    if not keys:
        msg = "a user profile with no audiences, added_audiences or removed_audiences"
        raise NotAudienceError(msg)
    attributes = profile.get("user_attributes")
    if attributes is not None and not isinstance(attributes, dict):
        # Ignoring it would lose the user's attributes without a word.
        msg = f"the profile's user_attributes is a JSON {json_type(attributes)}, not an object"
        raise NotAudienceError(msg)
    entries: list[dict[str, Any]] = []
    for key in keys:
        for entry in _array(profile, key):
            if not isinstance(entry, dict):
                msg = f"an entry of {key} is not an object"
                raise NotAudienceError(msg)
            if key == "audiences":
                entries.append(entry)
                continue
            entries.append({**entry, "action": LEGACY_AUDIENCE_KEYS[key]})
            if attributes:
                entries.append(
                    {
                        **entry,
                        "action": "attribute_update",
                        "user_attributes": [
                            {"key": k, "value": v, "action": "upsert"}
                            if not isinstance(v, list)
                            else {"key": k, "list_value": v, "action": "upsert"}
                            for k, v in attributes.items()
                        ],
                    }
                )
    return entries


def _attribute_updates(
    audience: dict[str, Any],
    audience_id: int,
    audience_name: str | None,
    mpid: int | None,
    timestamp: str,
) -> Iterator[dict[str, Any]]:
    for change in _array(audience, "user_attributes"):
        if not isinstance(change, dict):
            msg = "an entry of user_attributes is not an object"
            raise NotAudienceError(msg)
        if not change:
            continue  # `{}` appears in mParticle's own example: nothing changed
        key = change.get("key")
        action = change.get("action")
        if not key or not isinstance(action, str) or action not in ATTRIBUTE_ACTIONS:
            msg = f"user attribute change {change!r:.200} needs a key and action upsert or delete"
            raise NotAudienceError(msg)
        name = text_value(key, "a user attribute key") or ""
        upsert = action == "upsert"
        yield {
            "audience_id": audience_id,
            "audience_name": audience_name,
            "mpid": mpid,
            "key": name,
            # A delete needs no value; what an upsert carries must be what it says,
            # since a null here reads downstream as "delete the attribute".
            "value": text_value(change.get("value"), f"user attribute {name!r:.60} value")
            if upsert
            else None,
            "list_value": _list_value(change.get("list_value"), name) if upsert else None,
            "action": action,
            "timestamp": timestamp,
            "source_format": "partner_feed",
        }


def _list_value(value: Any, key: str) -> list[str] | None:  # noqa: ANN401  (any JSON value)
    """An upsert's `list_value` as text items: mParticle's format is an array of strings.

    Anything else (a string, an object, a null or nested item) is no list of text,
    and is refused rather than emitted as null (which a destination applies as a
    delete) or as made-up text (`'None'`).

    Raises:
        NotAudienceError: The value is not an array, or an item is null, an object
            or an array.
    """
    if value is None:
        return None
    if not isinstance(value, list):
        msg = f"user attribute {key!r:.60} list_value is a JSON {json_type(value)}, not an array"
        raise NotAudienceError(msg)
    items = []
    for index, item in enumerate(value):
        field = f"user attribute {key!r:.60} list_value[{index}]"
        text = text_value(item, field)
        if text is None:
            msg = f"{field} is null, not text"
            raise NotAudienceError(msg)
        items.append(text)
    return items


def parse_json_documents(stream: IO[bytes], file: AudienceFile) -> Iterator[AudienceItem]:
    """Parse a Firehose, cloud-storage or partner feed file (any mix of them).

    Args:
        stream: Decompressed bytes.
        file: The file.

    Yields:
        Records for either stream, or a `BadInputError` per bad line or document.
    """
    numberer = RecordNumberer(file)
    for item in iter_json_documents(stream, file.location):
        if isinstance(item, BadInputError):
            yield item
            continue
        lineno, document = item
        try:
            records = records_from_document(document, file)
        except NotAudienceError as exc:
            yield BadInputError(file.location, str(exc), lineno)
            continue
        yield from numberer.number(lineno, records)


def parse_audience_file(
    raw: IO[bytes],
    file: AudienceFile,
    load_manifest: Callable[[], Manifest | None],
) -> Iterator[AudienceItem]:
    """Tell a file's shape from its first bytes and parse it accordingly.

    Args:
        raw: The file's raw bytes (gzip is detected and undone here).
        file: The file.
        load_manifest: Reads the `manifest.json` next to an unzipped download CSV
            (None when there is none); called only for such a CSV.

    Yields:
        `(stream name, record)` pairs, or a `BadInputError` per bad line or document.

    Raises:
        BadInputError: The file as a whole cannot be read.
    """
    stream = open_decompressed(raw)
    head = _peek(stream, file.location)
    if head.startswith(ZIP_MAGIC):
        yield from parse_download_zip(stream, file)
    elif is_download_csv(head):
        yield from parse_download_csv(
            stream,
            file,
            csv_name=file.name,
            location=file.location,
            manifest=load_manifest(),
        )
    else:
        yield from parse_json_documents(stream, file)


def _peek(stream: IO[bytes], location: str) -> bytes:
    peek = getattr(stream, "peek", None)
    if peek is None:  # pragma: no cover  (open_decompressed always buffers)
        msg = "internal: the stream cannot be peeked"
        raise BadInputError(location, msg)
    try:
        head: bytes = peek(4096)
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        reason = f"truncated or corrupt gzip data ({exc})"
        raise BadInputError(location, reason, 1) from exc
    return head
