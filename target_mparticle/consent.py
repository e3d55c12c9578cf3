"""Consent state from record fields: the `consent` key of a mapping.

mParticle keeps consent per regulation: GDPR as any number of named purposes, CCPA as
one (`data_sale_opt_out`). Each purpose is `{consented, document, timestamp_unixtime_ms,
location, hardware_id}`, and outputs filter on it, so a warehouse's consent columns
must reach mParticle with the user's data or the data is forwarded without it.

A mapping names record fields, never values:

    consent:
      gdpr:
        marketing: marketing_opt_in            # shorthand: the boolean field
        analytics: {consented: analytics_ok, document: policy_version, timestamp: consent_at}
      ccpa: do_not_sell                        # CCPA's one purpose, data_sale_opt_out

A purpose whose `consented` field is null or absent in a record says nothing, and is
left out (absence is not refusal). A value that is not a boolean makes the record
invalid rather than guessing. Timestamps default to the record's event time, else now.
"""

from __future__ import annotations

import dataclasses
import re
import typing as t

from mparticle_facts.numbers import to_bool
from target_mparticle.inbound import InvalidRecordError
from target_mparticle.values import to_attribute_string, to_epoch_ms

#: The keys of the object form; `timestamp` is sent as `timestamp_unixtime_ms`.
PURPOSE_KEYS = ("consented", "document", "timestamp", "location", "hardware_id")
CCPA_PURPOSE = "data_sale_opt_out"
#: mParticle names GDPR purposes in lower case (its UI lower-cases what you type).
_PURPOSE_NAME = re.compile(r"^[a-z0-9][a-z0-9_\- ]*$")


@dataclasses.dataclass(frozen=True)
class PurposeFields:
    """Which record fields hold one purpose's facts (None: not mapped)."""

    consented: str
    document: str | None = None
    timestamp: str | None = None
    location: str | None = None
    hardware_id: str | None = None

    def fields(self) -> list[str]:
        """Every record field this purpose reads."""
        return [f for f in dataclasses.astuple(self) if f]


@dataclasses.dataclass(frozen=True)
class ConsentSpec:
    """A parsed `consent` mapping."""

    gdpr: dict[str, PurposeFields]
    ccpa: PurposeFields | None

    def fields(self) -> list[str]:
        """Every record field consent reads (they are not also sent as attributes)."""
        found = [f for purpose in self.gdpr.values() for f in purpose.fields()]
        return found + (self.ccpa.fields() if self.ccpa else [])

    @classmethod
    def from_config(cls, raw: t.Mapping[str, t.Any]) -> ConsentSpec:
        """Build from a `consent` object that `consent_errors` accepted."""
        gdpr = raw.get("gdpr") or {}
        ccpa = raw.get("ccpa")
        return cls(
            gdpr={str(name): _purpose(value) for name, value in gdpr.items()},
            ccpa=None if ccpa is None else _purpose(ccpa),
        )

    def build(
        self, record: t.Mapping[str, t.Any], default_ms: int
    ) -> dict[str, dict[str, dict[str, t.Any]]]:
        """The batch's `consent_state` from one record; empty when nothing is known.

        Args:
            record: The record.
            default_ms: When consent was given if the mapping names no timestamp field
                (the record's event time, else now).

        Raises:
            InvalidRecordError: A consented field holds something that is not a boolean,
                or a timestamp field holds no time.
        """
        state: dict[str, dict[str, dict[str, t.Any]]] = {}
        gdpr = {
            name: purpose
            for name, fields in self.gdpr.items()
            if (purpose := _purpose_state(fields, record, default_ms)) is not None
        }
        if gdpr:
            state["gdpr"] = gdpr
        if self.ccpa is not None:
            purpose = _purpose_state(self.ccpa, record, default_ms)
            if purpose is not None:
                state["ccpa"] = {CCPA_PURPOSE: purpose}
        return state


def _purpose(value: str | t.Mapping[str, t.Any]) -> PurposeFields:
    if isinstance(value, str):
        return PurposeFields(consented=value)
    return PurposeFields(**{k: str(v) for k, v in value.items() if v is not None})


def _purpose_state(
    fields: PurposeFields, record: t.Mapping[str, t.Any], default_ms: int
) -> dict[str, t.Any] | None:
    raw = record.get(fields.consented)
    if raw is None or raw == "":
        return None
    consented = to_bool(raw)
    if consented is None:
        msg = f"consent field {fields.consented!r} holds {raw!r}, not true or false"
        raise InvalidRecordError(msg)
    stamp = default_ms
    written = record.get(fields.timestamp) if fields.timestamp else None
    # Blank is null as CSV and spreadsheet taps write it: the default time, like null.
    if written is not None and not (isinstance(written, str) and not written.strip()):
        given = to_epoch_ms(written)  # years 1-9999: within 64 bits
        if given is None:
            msg = f"consent timestamp field {fields.timestamp!r} holds no usable time"
            raise InvalidRecordError(msg)
        stamp = given
    purpose: dict[str, t.Any] = {"consented": consented, "timestamp_unixtime_ms": stamp}
    for key in ("document", "location", "hardware_id"):
        field = getattr(fields, key)
        if field and record.get(field) not in (None, ""):
            purpose[key] = to_attribute_string(record[field])
    return purpose


def consent_errors(where: str, raw: object) -> list[str]:
    """Every problem in one mapping's `consent` object.

    Args:
        where: How to name the mapping in messages (`mappings['users'].consent`).
        raw: The configured value.

    Returns:
        One line per problem; empty when it is usable.
    """
    if not isinstance(raw, dict) or not raw:
        return [f"{where} must be an object with gdpr and/or ccpa"]
    errors = [
        f"{where}: unknown regulation {key!r} (use gdpr or ccpa)"
        for key in sorted(set(raw) - {"gdpr", "ccpa"})
    ]
    gdpr = raw.get("gdpr")
    if gdpr is not None:
        if not isinstance(gdpr, dict) or not gdpr:
            errors.append(f"{where}.gdpr must be an object of purpose -> field")
        else:
            for name, value in gdpr.items():
                if not _PURPOSE_NAME.match(str(name)):
                    errors.append(
                        f"{where}.gdpr: purpose {name!r} must be lower case, as mParticle "
                        "names purposes"
                    )
                errors.extend(_purpose_errors(f"{where}.gdpr.{name}", value))
    if raw.get("ccpa") is not None:
        errors.extend(_purpose_errors(f"{where}.ccpa", raw["ccpa"]))
    return errors


def _purpose_errors(where: str, value: object) -> list[str]:
    if isinstance(value, str) and value:
        return []
    if not isinstance(value, dict):
        return [f"{where} must be a field name or an object of {', '.join(PURPOSE_KEYS)}"]
    errors = [
        f"{where}: unknown key {key!r} (use {', '.join(PURPOSE_KEYS)})"
        for key in sorted(set(value) - set(PURPOSE_KEYS))
    ]
    if not isinstance(value.get("consented"), str) or not value.get("consented"):
        errors.append(f"{where}.consented must name the record's boolean field")
    errors.extend(
        f"{where}.{key} must be a field name"
        for key in PURPOSE_KEYS
        if key in value and not isinstance(value[key], str)
    )
    return errors
