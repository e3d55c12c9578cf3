"""The records both audience streams emit, and the value coercions every shape shares.

Sources write the same facts in different types: audience ids and MPIDs as numbers
or strings, flags as booleans or strings, timestamps in seconds or milliseconds as
numbers or strings. Each is coerced here once, and a value that cannot be read is a
`NotAudienceError` naming it, which the parsers turn into bad input for that line.

Every membership row names a user (an identity with a value, or an MPID) and a
time: each documented shape requires both (`IdentityValues`/`UserIdentities` or
an MPID, and `MembershipChangedTimestamp`, `timestamp_ms` or
`scanned_timestamp_ms`), and a row without them says nothing a destination can
apply. One lacking either, or an identity without a value, is a `NotAudienceError`
(bad input for its line), never a row of nulls or a silently dropped identity.

Records are keyed by where they came from, which is stable across re-reads: file,
archive member (`NOT_IN_ARCHIVE`, "-", outside a ZIP: key columns are never empty,
since some targets turn "" into NULL and then refuse it in a key), line, and
`_sdc_record_index`, the 0-based position of the record among the same stream's
records from that line (a Firehose line may hold many messages, each with many
identities). The index is given before `identity_types` filters rows, so a row keeps
its key whatever the filter.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from mparticle_facts.identities import is_mpid_key
from mparticle_facts.numbers import format_unix_ms, to_int
from tap_mparticle.cursor import parse_timestamp
from tap_mparticle.parsers import BadInputError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator

MEMBERSHIPS = "audience_memberships"
USER_ATTRIBUTES = "audience_user_attributes"
#: `_sdc_source_member` of rows that do not come from inside a ZIP archive.
NOT_IN_ARCHIVE = "-"

#: What a parser yields: a record for one of the two streams, or a bad line.
AudienceItem = tuple[str, dict[str, Any]] | BadInputError

#: Epoch values below this are seconds, at or above it milliseconds. 1e11 seconds
#: is the year 5138; 1e11 milliseconds is March 1973, before any mParticle data.
SECONDS_LIMIT = 100_000_000_000
_TRUE = frozenset({"true", "1", "yes"})
_FALSE = frozenset({"false", "0", "no"})


class NotAudienceError(ValueError):
    """A JSON document that is none of the audience shapes, or one with a bad value."""


@dataclasses.dataclass(frozen=True)
class AudienceFile:
    """What the parsers need to know about the file besides its bytes.

    Attributes:
        location: The file's URI, for messages.
        name: The last part of its key (delta files carry the audience in it).
        normalize: Maps an identity type as spelled by the source to the Events API's.
        identity_types: Identity types to emit, or None for all.
    """

    location: str
    name: str
    normalize: Callable[[str], str]
    identity_types: frozenset[str] | None = None


def to_timestamp(value: Any) -> str | None:  # noqa: ANN401  (any JSON scalar)
    """Render an epoch value in seconds or milliseconds (or an ISO string) as RFC 3339 UTC.

    Sources disagree on the unit (the download's `scanned_timestamp_ms` holds
    seconds in mParticle's own example), so it is told from the magnitude: below
    `SECONDS_LIMIT` (1e11) the value is seconds, otherwise milliseconds.

    Args:
        value: A number, a numeric string, an ISO 8601 string, or null/"".

    Returns:
        e.g. `2020-07-08T00:16:14.230+00:00`, or None for null and "".

    Raises:
        NotAudienceError: The value is not a timestamp.
    """
    if value is None or value == "":
        return None
    number: float | None = None
    if isinstance(value, bool):
        number = None
    elif isinstance(value, (int, float)):
        number = value
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return _iso_timestamp(value)
    if number is None or number != number or number in {float("inf"), float("-inf")}:  # noqa: PLR0124  (NaN check)
        msg = f"timestamp {value!r} is not a number of seconds or milliseconds"
        raise NotAudienceError(msg)
    millis = round(number * 1000) if abs(number) < SECONDS_LIMIT else round(number)
    try:
        return format_unix_ms(millis)
    except (OverflowError, ValueError):
        msg = f"timestamp {value!r} is out of range"
        raise NotAudienceError(msg) from None


def required_timestamp(value: Any, field: str) -> str:  # noqa: ANN401  (any JSON scalar)
    """`to_timestamp` for the time a membership row cannot go without.

    Args:
        value: The field's value (None when the field is missing).
        field: Its name, for the message.

    Returns:
        The timestamp.

    Raises:
        NotAudienceError: It is missing, null, "" or not a timestamp.
    """
    timestamp = to_timestamp(value)
    if timestamp is None:
        msg = f"{field} is missing or empty, and a membership change needs its time"
        raise NotAudienceError(msg)
    return timestamp


def _iso_timestamp(value: str) -> str:
    """ISO 8601 text as RFC 3339 UTC, or a NotAudienceError for this value alone.

    A valid ISO string can still be outside the years 1 to 9999 once in UTC
    (`0001-01-01T00:00:00+01:00`) or at millisecond precision: that is a bad value
    on its line like any other, not an error that costs the whole file.
    """
    try:
        moment = parse_timestamp(value.strip())
    except ValueError:
        msg = f"timestamp {value!r} is not a number of seconds or milliseconds"
        raise NotAudienceError(msg) from None
    try:
        return format_unix_ms(round(moment.timestamp() * 1000))
    except (OverflowError, ValueError):
        msg = f"timestamp {value!r} is out of range"
        raise NotAudienceError(msg) from None


def to_bool(value: Any, field: str) -> bool:  # noqa: ANN401  (any JSON scalar)
    """Read a flag mParticle may write as a boolean, a string or 0/1.

    Args:
        value: The value.
        field: Its name, for the message.

    Returns:
        The flag.

    Raises:
        NotAudienceError: The value is missing or not a flag.
    """
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in {0, 1}:
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    msg = f"{field} is {value!r}, not true or false"
    raise NotAudienceError(msg)


def to_audience_id(value: Any, field: str) -> int:  # noqa: ANN401  (any JSON scalar)
    """Read a required audience id written as a number or a string.

    Args:
        value: The value.
        field: Its name, for the message.

    Returns:
        The id.

    Raises:
        NotAudienceError: It is missing or not an integer.
    """
    number = to_int(value)
    if number is None:
        msg = f"{field} is {value!r}, not an integer audience id"
        raise NotAudienceError(msg)
    return number


def to_mpid(value: Any) -> int | None:  # noqa: ANN401  (any JSON scalar)
    """Read an MPID (may be negative, often a string); null or "" is None.

    Args:
        value: The value.

    Returns:
        The MPID or None.

    Raises:
        NotAudienceError: It is present but not an integer.
    """
    if value is None or value == "":
        return None
    number = to_int(value)
    if number is None:
        msg = f"mpid {value!r} is not an integer"
        raise NotAudienceError(msg)
    return number


def json_type(value: Any) -> str:  # noqa: ANN401  (any JSON value)
    """The JSON name of a decoded value's type, for messages (`object`, not `dict`)."""
    names = {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}
    return names.get(type(value), "number")


def text_value(value: Any, field: str) -> str | None:  # noqa: ANN401  (any JSON value)
    """Render an identity, name or attribute value as the text mParticle means.

    mParticle's formats give these as text, and sources write numeric ids as
    numbers as often as strings, so numbers and booleans are read as their text.
    An object or array is no text at all: rendering it (Python's `{'a': 1}`) would
    send made-up data downstream, so it is refused.

    Args:
        value: A JSON value.
        field: What it is, for the message (e.g. `AudienceName`).

    Returns:
        The text (`true`/`false` for booleans), or None for null.

    Raises:
        NotAudienceError: The value is an object or an array.
    """
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        msg = f"{field} is a JSON {json_type(value)}, not text"
        raise NotAudienceError(msg)
    return str(value)


def membership(  # noqa: PLR0913  (one row has this many facts)
    *,
    audience_id: int,
    audience_name: str | None,
    mpid: int | None,
    identity_type: str | None,
    identity_value: str | None,
    action: str,
    timestamp: str,
    source_format: str,
    variant: str | None = None,
    identity_encoding: str = "raw",
) -> dict[str, Any]:
    """Build one `audience_memberships` row (provenance is added by the caller).

    Returns:
        The record.

    Raises:
        NotAudienceError: The row names no user: no identity and no MPID.
    """
    if mpid is None and identity_value is None:
        msg = "no identity with a value and no mpid, so the membership names no user"
        raise NotAudienceError(msg)
    return {
        "audience_id": audience_id,
        "audience_name": audience_name,
        "variant": variant,
        "mpid": mpid,
        "identity_type": identity_type,
        "identity_value": identity_value,
        "identity_encoding": identity_encoding,
        "action": action,
        "timestamp": timestamp,
        "source_format": source_format,
    }


def identity_rows(
    identities: Iterable[tuple[str, Any, str]],
    file: AudienceFile,
    **common: Any,  # noqa: ANN401  (the membership() keywords shared by every row)
) -> list[dict[str, Any]]:
    """Turn one message's identities into membership rows.

    An identity named like the MPID fills the `mpid` column instead of making a
    row. A message with no identity at all but an MPID (an anonymous user) still
    yields one row, with a null identity, so the membership change is not lost;
    with neither, `membership` refuses it.

    Args:
        identities: `(type as spelled by the source, value, encoding)`.
        file: The file, for the normaliser.
        **common: The other `membership` fields (`mpid` may be None here).

    Returns:
        The rows; `mpid` is the one given, else the one found among the identities.

    Raises:
        NotAudienceError: An identity has no value (null or ""): dropping it would
            lose it without a word, and a row for it would name no one. Or its
            value is an object or an array (see `text_value`).
    """
    found_mpid: int | None = None
    rows = []
    for raw_type, raw_value, encoding in identities:
        value = text_value(raw_value, f"identity {raw_type!r:.60}")
        if value is None or value == "":
            msg = f"identity {raw_type!r:.60} has no value"
            raise NotAudienceError(msg)
        if is_mpid_key(raw_type):
            found_mpid = to_mpid(value)
            continue
        rows.append((file.normalize(raw_type), value, encoding))
    mpid = common.pop("mpid", None)
    if mpid is None:
        mpid = found_mpid
    if not rows:
        return [membership(mpid=mpid, identity_type=None, identity_value=None, **common)]
    return [
        membership(
            mpid=mpid,
            identity_type=identity_type,
            identity_value=value,
            identity_encoding=encoding,
            **common,
        )
        for identity_type, value, encoding in rows
    ]


class RecordNumberer:
    """Give records their key columns and apply the `identity_types` filter.

    Numbering happens before filtering so keys do not depend on the filter.
    """

    def __init__(self, file: AudienceFile, member: str = NOT_IN_ARCHIVE) -> None:
        """Start at the first line.

        Args:
            file: The file (for the filter).
            member: The archive member the lines are in, `NOT_IN_ARCHIVE` outside a ZIP.
        """
        self._file = file
        self._member = member
        self._lineno = -1
        self._counts: dict[str, int] = {}

    def number(
        self, lineno: int, items: Iterable[tuple[str, dict[str, Any]]]
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        """Stamp `_sdc_source_member`, `_sdc_source_lineno` and `_sdc_record_index`.

        Args:
            lineno: The line (or CSV row's line) the records come from.
            items: `(stream name, record)` pairs in the order the line holds them.

        Yields:
            The pairs that pass the `identity_types` filter.
        """
        if lineno != self._lineno:
            self._lineno = lineno
            self._counts = {}
        wanted = self._file.identity_types
        for kind, record in items:
            index = self._counts.get(kind, 0)
            self._counts[kind] = index + 1
            if wanted is not None and kind == MEMBERSHIPS and record["identity_type"] not in wanted:
                continue
            record["_sdc_source_member"] = self._member
            record["_sdc_source_lineno"] = lineno
            record["_sdc_record_index"] = index
            yield kind, record
