"""One spelling per identity type, whatever the source called it.

Both plugins use this table: the tap to normalise what audience files and event
batches call an identity, the target to read identity columns and replayed
batches. One table means the two can never disagree about a name.

mParticle spells the same identity differently on every surface: Kinesis audience
messages say `CustomerId`, `Other3` and `GoogleAdvertisingIdentifier`, partner feed
messages say `customer`, `other3` and `google_advertising_id`, IDSync and the Python
and Node server SDKs say `customerid` (or `customerId`) and `android_aaid`, and the
Events API says `customer_id`, `other_id_3` and `android_advertising_id`. A warehouse
joining audiences to events needs one spelling, so every name is mapped to the Events
API's.

Names are looked up after *squashing* (lower case, no `_`, `-`, `.` or spaces), so
`CustomerId`, `customer_id` and `Customer ID` all hit the same entry without the
table listing each spelling. A name in no table is kept, converted to snake_case,
and reported once per name: a partner identity (`PartnerName_IdentityName`) is
legitimate and must not be lost, but a new spelling from mParticle should be seen
and added here.

The mParticle ID is not an identity type in the Events API but a column of its own;
`MPID_KEYS` lets the parsers lift it out of identity maps that carry it.
"""

from __future__ import annotations

import functools
import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

#: The Events API's identity type names: user identities, then device identities.
USER_IDENTITY_TYPES = (
    "customer_id",
    "email",
    "other",
    *(f"other_id_{n}" for n in range(2, 11)),
    "mobile_number",
    "phone_number_2",
    "phone_number_3",
    "facebook",
    "twitter",
    "google",
    "microsoft",
    "yahoo",
    "alias",
    "facebook_custom_audience_id",
)
DEVICE_IDENTITY_TYPES = (
    "ios_advertising_id",
    "ios_idfv",
    "android_advertising_id",
    "android_uuid",
    "roku_advertising_id",
    "roku_publisher_id",
    "microsoft_advertising_id",
    "microsoft_publisher_id",
    "fire_advertising_id",
    "amp_id",
    "push_token",
)
IDENTITY_TYPES = USER_IDENTITY_TYPES + DEVICE_IDENTITY_TYPES
#: The same names as sets, for membership tests on the hot path.
USER_IDENTITIES = frozenset(USER_IDENTITY_TYPES)
DEVICE_IDENTITIES = frozenset(DEVICE_IDENTITY_TYPES)

#: Other spellings, by source, of each type (the type's own name always matches too).
ALIASES: dict[str, tuple[str, ...]] = {
    "customer_id": ("CustomerId", "customer", "customerid"),
    "email": ("Email", "EmailAddress"),
    "other": ("Other", "other1", "other_id_1"),
    **{f"other_id_{n}": (f"Other{n}", f"other{n}", f"otherid{n}") for n in range(2, 11)},
    "mobile_number": ("MobileNumber", "phone_number", "phone_number_1"),
    "phone_number_2": ("PhoneNumber2",),
    "phone_number_3": ("PhoneNumber3",),
    "facebook": ("FacebookId",),
    "twitter": ("TwitterId", "TwitterHandle"),
    "google": ("GoogleId",),
    "microsoft": ("MicrosoftId",),
    "yahoo": ("YahooId",),
    "facebook_custom_audience_id": ("FacebookCustomAudienceId", "facebookcustomaudienceid"),
    "ios_advertising_id": (
        "IDFA",
        "ios_idfa",
        "AppleAdvertisingId",
        "AppleAdvertisingIdentifier",
        "IosAdvertisingIdentifier",
    ),
    "ios_idfv": ("IDFV", "ios_vendor_id", "AppleVendorId", "AppleVendorIdentifier"),
    "android_advertising_id": (
        "GoogleAdvertisingIdentifier",
        "google_advertising_id",
        "GAID",
        "android_aaid",
        "AAID",
    ),
    "android_uuid": ("android_id", "AndroidIdentifier"),
    "roku_advertising_id": ("roku_aid", "RokuAdvertisingIdentifier"),
    "roku_publisher_id": ("roku_pid", "RokuPublisherIdentifier"),
    "microsoft_advertising_id": ("microsoft_aid", "MicrosoftAdvertisingIdentifier"),
    "microsoft_publisher_id": ("microsoft_pid", "MicrosoftPublisherIdentifier"),
    "fire_advertising_id": ("fire_aid", "FireAdvertisingIdentifier"),
    "push_token": (
        "apple_push_notification_token",
        "google_cloud_messaging_token",
        "PushToken",
    ),
}

#: Squashed names meaning the mParticle ID itself (a column, not an identity type).
MPID_KEYS = frozenset({"mpid", "mparticleid"})

_SQUASH = re.compile(r"[\s_\-.]+")
_CAMEL_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_NOT_WORD = re.compile(r"[^a-z0-9]+")


@functools.lru_cache(maxsize=4096)  # a few dozen spellings recur on every record
def squash(name: str) -> str:
    """Reduce a spelling to its lookup key: lower case, separators removed.

    Args:
        name: e.g. `CustomerId`, `customer_id`, `Customer ID`.

    Returns:
        e.g. `customerid`.
    """
    return _SQUASH.sub("", name).lower()


def _build_table() -> dict[str, str]:
    table: dict[str, str] = {}
    for canonical in IDENTITY_TYPES:
        for spelling in (canonical, *ALIASES.get(canonical, ())):
            key = squash(spelling)
            if table.setdefault(key, canonical) != canonical:  # pragma: no cover  (a typo here)
                msg = f"identity spelling {spelling!r} maps to two types"
                raise RuntimeError(msg)
    return table


#: Squashed spelling -> Events API name.
LOOKUP = _build_table()
_CANONICAL_BY_SQUASHED = {squash(name): name for name in IDENTITY_TYPES}


def snake_case(name: str) -> str:
    """Convert an unknown identity name to snake_case, keeping its words.

    Args:
        name: e.g. `PartnerName_IdentityName` or `Some Id`.

    Returns:
        e.g. `partner_name_identity_name` or `some_id`; `unknown` if nothing is left.
    """
    words = _CAMEL_BOUNDARY.sub("_", name.strip()).lower()
    return _NOT_WORD.sub("_", words).strip("_") or "unknown"


def canonical_identity_type(name: str) -> str | None:
    """Look a spelling up in the table.

    Args:
        name: An identity type as some source spelled it.

    Returns:
        The Events API's name, or None when the table does not know it.
    """
    return LOOKUP.get(squash(name))


def field_identity_type(name: str) -> str | None:
    """Say which identity a record field holds by its name alone, if it is named for one.

    Unlike `canonical_identity_type`, only the Events API's own names count (in any
    case or separator: `customer_id`, `customerId`, `CustomerID`), plus the MPID: a
    column called `customer` or `Email Address` in someone's table is not taken for
    an identity unless a mapping says so.

    Args:
        name: A record field's name.

    Returns:
        The Events API name, `mpid`, or None.
    """
    key = squash(name)
    if key in MPID_KEYS:
        return "mpid"
    return _CANONICAL_BY_SQUASHED.get(key)


def is_mpid_key(name: str) -> bool:
    """Say whether an identity map key is the mParticle ID rather than an identity.

    Args:
        name: A key from `UserIdentities`, `IdentityValues` or a CSV `identity_type`.

    Returns:
        True for `mpid`, `MPID`, `mParticleId` and the like.
    """
    return squash(name) in MPID_KEYS


class IdentityNormalizer:
    """Map identity names to the Events API's, warning once per name it does not know.

    One instance per stream keeps the warnings per run, and memoises the names it
    has seen, so the per-record cost is one dict lookup. A source normally uses a
    handful of names; hostile or broken data can use a new one per row, so both
    the memo (`MAX_MEMO` names; later ones are normalised on each sighting, which
    costs a few string operations) and the warnings (`MAX_WARNED` names; later
    ones are counted in `unwarned`, for one summary line) are bounded.
    """

    #: Names remembered; beyond, memory would grow with the data.
    MAX_MEMO = 10_000
    #: Unknown names warned about one by one; beyond, the log would grow with the data.
    MAX_WARNED = 20

    def __init__(self, warn: Callable[[str, str], None]) -> None:
        """Start with nothing seen.

        Args:
            warn: Called with `(name, kept_as)` once for each of the first
                `MAX_WARNED` unknown names; `warned` is already counted.
        """
        self._warn = warn
        self._seen: dict[str, str] = {}
        #: Unknown names warned about so far.
        self.warned = 0
        #: Unknown names not warned about: distinct while the memo has room, then
        #: every sighting of a name it could not keep (an upper bound).
        self.unwarned = 0

    @property
    def memo_full(self) -> bool:
        """Whether names stopped being remembered (so `unwarned` may count repeats)."""
        return len(self._seen) >= self.MAX_MEMO

    def __call__(self, name: str) -> str:
        """Normalise one name.

        Args:
            name: An identity type as the source spelled it.

        Returns:
            The Events API name, or the name in snake_case if no table knows it.
        """
        known = self._seen.get(name)
        if known is not None:
            return known
        canonical = canonical_identity_type(name)
        if canonical is None:
            canonical = snake_case(name)
            if self.warned < self.MAX_WARNED:
                self.warned += 1
                self._warn(name, canonical)
            else:
                self.unwarned += 1
        if len(self._seen) < self.MAX_MEMO:
            self._seen[name] = canonical
        return canonical


def read_identity_types(value: object) -> tuple[frozenset[str] | None, list[str]]:
    """Check and normalise the `identity_types` setting.

    Names go through the same table as the data, so `CustomerId`, `customer` and
    `customer_id` all select `customer_id`. A name no table knows is an error rather
    than a silent filter that matches nothing (a typo would otherwise drop every row).

    Args:
        value: The setting as configured: None (all types) or a list of names.

    Returns:
        The set of Events API names (None for all), and any problems found.
    """
    if value is None:
        return None, []
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        return None, ["identity_types must be a list of identity type names"]
    if not value:
        return None, ["identity_types must name at least one type (leave it unset for all)"]
    unknown = [name for name in value if canonical_identity_type(name) is None]
    if unknown:
        names = ", ".join(repr(name) for name in unknown)
        return None, [
            f"identity_types has unknown names {names}; known: {', '.join(IDENTITY_TYPES)}"
        ]
    return frozenset(LOOKUP[squash(name)] for name in value), []
