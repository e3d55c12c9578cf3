"""The ``mappings`` setting: parsed once, checked up front, used per record."""

from __future__ import annotations

import dataclasses
import string
import typing as t

from singer_sdk import typing as th

from mparticle_facts.identities import canonical_identity_type, is_mpid_key
from target_mparticle.consent import ConsentSpec, consent_errors
from target_mparticle.event_fields import EVENT_FIELD_KEYS, EventFields, event_field_errors
from target_mparticle.schema_rules import COMMERCE_EVENT_TYPES, CUSTOM_EVENT_TYPES

KINDS = ("custom_event", "screen_view", "commerce_event", "user")
MAPPING_KEYS = frozenset(
    {
        "kind",
        "event_name",
        "event_name_field",
        "custom_event_type",
        "timestamp_field",
        "identities",
        "user_attributes",
        "event_attributes",
        "source_message_id_field",
        "consent",
        "null_user_attributes",
        "ip_field",
        "device_id_field",
        "data_plan_id",
        "data_plan_version",
        "audience_attribute_name",
        *EVENT_FIELD_KEYS,
    }
)
NULL_USER_ATTRIBUTES = ("drop", "delete")
AUDIENCE_ONLY_KEYS = frozenset({"audience_attribute_name", "data_plan_id", "data_plan_version"})
#: The user attribute an audience membership sets, unless a mapping says otherwise.
DEFAULT_AUDIENCE_ATTRIBUTE = "audience_{audience_id}"
AUDIENCE_PLACEHOLDERS = frozenset({"audience_id", "audience_name", "variant"})


#: The JSON Schema of one `mappings` entry, for the target's config schema and --about.
MAPPING_SCHEMA = th.ObjectType(
    th.Property(
        "kind",
        th.StringType,
        allowed_values=list(KINDS),
        title="Kind",
        description="custom_event (default), screen_view, commerce_event, or user "
        "(identities and user attributes, no event).",
    ),
    th.Property(
        "event_name",
        th.StringType,
        title="Event name",
        description="Literal event (or screen) name. Default: the stream name.",
    ),
    th.Property(
        "event_name_field",
        th.StringType,
        title="Event name field",
        description="Record field holding the event (or screen) name.",
    ),
    th.Property(
        "custom_event_type",
        th.StringType,
        allowed_values=sorted(COMMERCE_EVENT_TYPES),
        title="Custom event type",
        description="mParticle custom_event_type; default other. For commerce events, "
        "a product action such as purchase also sets the product action.",
    ),
    th.Property(
        "custom_event_type_field",
        th.StringType,
        title="Custom event type field",
        description="Record field holding each row's custom_event_type (for commerce "
        "events also the product action when the row gives none); instead of "
        "custom_event_type. A value the Events API does not accept makes the record "
        "invalid; null or blank sends the default.",
    ),
    th.Property(
        "timestamp_field",
        th.StringType,
        title="Timestamp field",
        description="Record field with the event time: a date-time string, or epoch "
        "seconds or milliseconds.",
    ),
    th.Property(
        "identities",
        th.ObjectType(additional_properties=th.StringType),
        title="Identities",
        description="Identity type (user or device identity, or mpid) -> record field. "
        "Default: record fields named like identity types.",
    ),
    th.Property(
        "user_attributes",
        th.CustomType({"type": ["array", "object"]}),
        title="User attributes",
        description="List of fields, or object attribute name -> field "
        '(e.g. {"$FirstName": "first_name"}); only these are forwarded. '
        "Default: none, or every unused field for kind user.",
    ),
    th.Property(
        "event_attributes",
        th.CustomType({"type": ["array", "object"]}),
        title="Event attributes",
        description="List of fields, or object attribute name -> field. "
        "Default: every field not used above.",
    ),
    th.Property(
        "source_message_id_field",
        th.StringType,
        title="Source message id field",
        description="Record field holding a unique event id. Default: a "
        "deterministic UUID from the stream, key properties and record.",
    ),
    th.Property(
        "consent",
        th.ObjectType(additional_properties=True),
        title="Consent",
        description='{"gdpr": {"<purpose>": "<boolean field>" | {"consented", "document", '
        '"timestamp", "location", "hardware_id": "<field>"}}, "ccpa": "<boolean field>" | '
        "{...}}: the batch's consent_state from record fields.",
    ),
    th.Property(
        "null_user_attributes",
        th.StringType,
        allowed_values=["drop", "delete"],
        title="Null user attributes",
        description="drop (default): a null attribute is not sent; delete: its name goes "
        "in deleted_user_attributes, so mParticle removes it.",
    ),
    th.Property(
        "ip_field",
        th.StringType,
        title="IP field",
        description="Record field holding the user's IP address (the batch's ip).",
    ),
    th.Property(
        "device_id_field",
        th.StringType,
        title="Device ID field",
        description="Record field holding mParticle's device id (mp_deviceid, a UUID).",
    ),
    th.Property(
        "session_uuid_field",
        th.StringType,
        title="Session UUID field",
        description="Record field holding the event's session_uuid (a UUID; mParticle "
        "derives the session id from it). Event kinds only.",
    ),
    th.Property(
        "custom_flags_field",
        th.StringType,
        title="Custom flags field",
        description="Record field holding the event's custom_flags: an object (or its "
        "JSON text) of flag name -> text, number or boolean. Event kinds only.",
    ),
    th.Property(
        "location_field",
        th.StringType,
        title="Location field",
        description="Record field holding the event's location: an object (or its JSON "
        "text) with latitude and longitude, optionally accuracy (metres) and the other "
        "keys of mParticle's location. Event kinds only.",
    ),
    th.Property(
        "data_plan_id",
        th.StringType,
        title="Data plan ID",
        description="This stream's data plan, overriding the data_plan_id setting.",
    ),
    th.Property(
        "data_plan_version",
        th.IntegerType,
        title="Data plan version",
        description="Version of this stream's data plan.",
    ),
    th.Property(
        "audience_attribute_name",
        th.StringType,
        title="Audience attribute name",
        description="For tap-mparticle audience memberships: the user attribute name, "
        "overriding the audience_attribute_name setting.",
    ),
    additional_properties=False,
)


@dataclasses.dataclass(frozen=True)
class StreamMapping:
    """How the records of one stream become mParticle data."""

    kind: str = "custom_event"
    event_name: str | None = None
    event_name_field: str | None = None
    custom_event_type: str | None = None
    timestamp_field: str | None = None
    identities: dict[str, str] | None = None
    user_attributes: dict[str, str] | None = None
    event_attributes: dict[str, str] | None = None
    source_message_id_field: str | None = None
    consent: ConsentSpec | None = None
    null_user_attributes: str = "drop"
    ip_field: str | None = None
    device_id_field: str | None = None
    data_plan_id: str | None = None
    data_plan_version: int | None = None
    audience_attribute_name: str | None = None
    # Left out of the repr, which scopes the ids (see `scope_text`).
    custom_event_type_field: str | None = dataclasses.field(default=None, repr=False)
    session_uuid_field: str | None = dataclasses.field(default=None, repr=False)
    custom_flags_field: str | None = dataclasses.field(default=None, repr=False)
    location_field: str | None = dataclasses.field(default=None, repr=False)
    explicit: bool = False
    #: Set by keys that only tune tap-mparticle audience rows, which need no mapping.
    audience_only: bool = False
    #: The four event field keys applied (`event_fields.EventFields`); None when none is
    #: set, so other mappings pay one attribute test a record for them.
    event_fields: EventFields | None = dataclasses.field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        """Build the event field keys' applier once, for `MappedRecords` to test per record."""
        applier = EventFields.of(
            self.kind,
            self.custom_event_type_field,
            self.session_uuid_field,
            self.custom_flags_field,
            self.location_field,
        )
        object.__setattr__(self, "event_fields", applier)

    @classmethod
    def from_config(cls, raw: t.Mapping[str, t.Any], *, explicit: bool) -> StreamMapping:
        """Build from one ``mappings`` entry that :func:`mapping_errors` accepted."""
        return cls(
            kind=raw.get("kind", "custom_event"),
            event_name=raw.get("event_name"),
            event_name_field=raw.get("event_name_field"),
            custom_event_type=raw.get("custom_event_type"),
            timestamp_field=raw.get("timestamp_field"),
            identities=(
                {identity_key(str(k)) or str(k): str(v) for k, v in raw["identities"].items()}
                if raw.get("identities")
                else None
            ),
            user_attributes=_as_name_map(raw.get("user_attributes")),
            event_attributes=_as_name_map(raw.get("event_attributes")),
            source_message_id_field=raw.get("source_message_id_field"),
            consent=ConsentSpec.from_config(raw["consent"]) if raw.get("consent") else None,
            null_user_attributes=raw.get("null_user_attributes", "drop"),
            ip_field=raw.get("ip_field"),
            device_id_field=raw.get("device_id_field"),
            data_plan_id=raw.get("data_plan_id"),
            data_plan_version=raw.get("data_plan_version"),
            audience_attribute_name=raw.get("audience_attribute_name"),
            custom_event_type_field=raw.get("custom_event_type_field"),
            session_uuid_field=raw.get("session_uuid_field"),
            custom_flags_field=raw.get("custom_flags_field"),
            location_field=raw.get("location_field"),
            explicit=explicit,
            audience_only=bool(raw) and set(raw) <= AUDIENCE_ONLY_KEYS,
        )

    def scope_text(self) -> str:
        """What scopes the ids of this mapping's records (`ConverterBase.id_scope`).

        Its repr, plus the event field keys where set: a mapping that uses none of
        them gives the ids it gave before they existed, so mParticle still drops a
        re-sent copy, while setting one re-scopes them, as any change of mapping does.
        """
        named = {key: getattr(self, key) for key in EVENT_FIELD_KEYS if getattr(self, key)}
        return repr(self) + (repr(named) if named else "")

    def role_fields(self) -> list[str]:
        """Record fields named for one role each (time, name, ids, device, consent, event data).

        The fields a converted row consumes besides its identities and attributes: not
        sent again as attributes (`MappedRecords`), and watched like every mapped field.
        """
        named = (
            self.event_name_field,
            self.timestamp_field,
            self.source_message_id_field,
            self.custom_event_type_field,
            self.session_uuid_field,
            self.custom_flags_field,
            self.location_field,
            self.ip_field,
            self.device_id_field,
            *(self.consent.fields() if self.consent else ()),
        )
        return [name for name in named if name]

    def fields(self) -> list[str]:
        """Record fields this mapping names, in a stable order (for "ignored" reports)."""
        named = self.role_fields()
        for group in (self.identities, self.user_attributes, self.event_attributes):
            named.extend(name for name in (group or {}).values() if name)
        return list(dict.fromkeys(named))


def _as_name_map(value: object) -> dict[str, str] | None:
    """Lists mean "same name in mParticle as in the record"; objects rename."""
    if value is None:
        return None
    if isinstance(value, list):
        return {str(field): str(field) for field in value}
    if isinstance(value, dict):
        return {str(name): str(field) for name, field in value.items()}
    return None


def mapping_errors(mappings: t.Mapping[str, t.Any]) -> list[str]:
    """Every problem in the ``mappings`` setting, so one run reports them all."""
    errors: list[str] = []
    for stream, raw in mappings.items():
        where = f"mappings[{stream!r}]"
        if not isinstance(raw, dict):
            errors.append(f"{where} must be an object")
        else:
            errors.extend(_entry_errors(where, raw))
    return errors


def _entry_errors(where: str, raw: t.Mapping[str, t.Any]) -> list[str]:
    errors: list[str] = []
    errors.extend(f"{where}: unknown key {key!r}" for key in sorted(set(raw) - MAPPING_KEYS))
    kind = raw.get("kind", "custom_event")
    if kind not in KINDS:
        errors.append(f"{where}.kind must be one of {', '.join(KINDS)}, not {kind!r}")
    if raw.get("event_name") is not None and raw.get("event_name_field") is not None:
        errors.append(f"{where}: set event_name or event_name_field, not both")
    event_type = raw.get("custom_event_type")
    if event_type is not None:
        allowed = COMMERCE_EVENT_TYPES if kind == "commerce_event" else CUSTOM_EVENT_TYPES
        if kind in {"custom_event", "commerce_event"} and event_type not in allowed:
            errors.append(
                f"{where}.custom_event_type {event_type!r} is not valid for {kind}; "
                f"use one of {', '.join(sorted(allowed))}"
            )
    errors.extend(_identity_errors(where, raw.get("identities")))
    errors.extend(event_field_errors(where, raw))
    errors.extend(_option_errors(where, raw))
    return errors


def _option_errors(where: str, raw: t.Mapping[str, t.Any]) -> list[str]:
    """Problems with the attribute, consent, device and data plan keys of one mapping."""
    errors: list[str] = []
    for key in ("user_attributes", "event_attributes"):
        value = raw.get(key)
        if value is not None and not isinstance(value, (list, dict)):
            errors.append(f"{where}.{key} must be a list of fields or an object")
    if raw.get("consent") is not None:
        errors.extend(consent_errors(f"{where}.consent", raw["consent"]))
    if raw.get("null_user_attributes", "drop") not in NULL_USER_ATTRIBUTES:
        errors.append(
            f"{where}.null_user_attributes must be drop or delete, "
            f"not {raw['null_user_attributes']!r}"
        )
    for key in ("ip_field", "device_id_field"):
        value = raw.get(key)
        if value is not None and (not isinstance(value, str) or not value):
            errors.append(f"{where}.{key} must be a non-empty string")
    errors.extend(data_plan_errors(where, raw.get("data_plan_id"), raw.get("data_plan_version")))
    name = raw.get("audience_attribute_name")
    if name is not None:
        errors.extend(audience_attribute_errors(f"{where}.audience_attribute_name", name))
    return errors


def data_plan_errors(where: str, plan_id: object, version: object) -> list[str]:
    """Problems with a data plan id and version (a version needs an id)."""
    errors = []
    if plan_id is not None and (not isinstance(plan_id, str) or not plan_id):
        errors.append(f"{where}: data_plan_id must be a non-empty string, not {plan_id!r}")
    if version is not None and (
        isinstance(version, bool) or not isinstance(version, int) or not 1 <= version < 2**63
    ):
        errors.append(
            f"{where}: data_plan_version must be a whole number from 1 (within 64 bits), "
            f"not {str(version)[:80]!r}"
        )
    if version is not None and plan_id is None:
        errors.append(f"{where}: data_plan_version needs data_plan_id")
    return errors


def audience_attribute_errors(where: str, template: object) -> list[str]:
    """Problems with an audience attribute name template: anything but bare placeholders.

    The template goes to `str.format` with values from the files, so only the
    placeholders themselves are taken: an index (`{audience_name[0]}`) fails on an
    empty name mid-run, an attribute (`{audience_name.__class__}`) reads Python
    internals, a width (`{audience_id:>99999999}`) builds 100 MB per row.
    """
    if not isinstance(template, str) or not template.strip():
        return [f"{where} must be a non-empty string"]
    allowed = ", ".join(f"{{{p}}}" for p in sorted(AUDIENCE_PLACEHOLDERS))
    try:
        fields = [
            (name, spec, conversion)
            for _, name, spec, conversion in string.Formatter().parse(template)
            if name is not None
        ]
    except ValueError as exc:
        return [f"{where} {template[:80]!r} is not a usable name ({exc}); placeholders: {allowed}"]
    for name, spec, conversion in fields:
        if name not in AUDIENCE_PLACEHOLDERS or spec or conversion:
            shown = "{" + name + ("!" + conversion if conversion else "")
            shown += (":" + spec if spec else "") + "}"
            msg = (
                f"{where} {template[:80]!r} is not a usable name: {shown[:80]!r} is not one of "
                f"the placeholders {allowed}, written bare"
            )
            return [msg]
    return []


def _identity_errors(where: str, identities: object) -> list[str]:
    if identities is None:
        return []
    if not isinstance(identities, dict) or not identities:
        return [f"{where}.identities must be a non-empty object"]
    errors = [
        f"{where}.identities: {name!r} is not an mParticle identity type"
        for name in identities
        if identity_key(str(name)) is None
    ]
    spellings: dict[str, list[str]] = {}
    for name in identities:
        key = identity_key(str(name))
        if key is not None:
            spellings.setdefault(key, []).append(str(name))
    errors.extend(
        f"{where}.identities: {', '.join(map(repr, names))} are one identity type ({key}); "
        "name it once"
        for key, names in spellings.items()
        if len(names) > 1
    )
    return errors


def identity_key(name: str) -> str | None:
    """The Events API name of an identity as a mapping spells it (any known spelling).

    `customerid`, `CustomerId` and `customer_id` are one type; `mpid` stands for itself.
    """
    if is_mpid_key(name):
        return "mpid"
    return canonical_identity_type(name)
