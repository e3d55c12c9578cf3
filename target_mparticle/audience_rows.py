"""tap-mparticle audience rows as user attribute updates (no mapping needed).

mParticle forwards an audience to outputs with no audience concept "as some kind of
user attribute or tag"; the target does the same in reverse: a membership `add` sets
the user attribute `audience_attribute_name` names to true, a `remove` deletes it; an
attribute row upserts or deletes its attribute. The user is the row's raw identity,
plus its MPID; each item's group is the user, so `assemble` folds one user's changes,
in order, into one batch.
"""

from __future__ import annotations

import typing as t

from mparticle_facts.identities import DEVICE_IDENTITIES, USER_IDENTITIES, canonical_identity_type
from mparticle_facts.numbers import to_int64
from target_mparticle import schema_rules as rules
from target_mparticle.clean import NOT_IDENTITIES, user_identity
from target_mparticle.inbound import InvalidRecordError, fit_shell
from target_mparticle.items import ConverterBase, Item, digest_id, public
from target_mparticle.preflight import quoted
from target_mparticle.values import to_attribute_string, truncate, user_attributes


def is_audience_membership(record: t.Mapping[str, t.Any]) -> bool:
    """Whether ``record`` is a tap-mparticle ``audience_memberships`` row."""
    return (
        "audience_id" in record
        and record.get("action") in ("add", "remove")  # compared, never hashed: any value
        and "identity_type" in record
    )


def is_audience_attribute(record: t.Mapping[str, t.Any]) -> bool:
    """Whether ``record`` is a tap-mparticle ``audience_user_attributes`` row."""
    return (
        "audience_id" in record
        and record.get("action") in ("upsert", "delete")
        and isinstance(record.get("key"), str)
    )


#: tap-mparticle's key of an audience row (its file, the CSV inside a ZIP, the line or
#: row, and the record's position there): the same on every read of the same file.
ROW_KEY = ("_sdc_source_file", "_sdc_source_member", "_sdc_source_lineno", "_sdc_record_index")


class AudienceRows(ConverterBase):
    """Converts tap-mparticle `audience_memberships` and `audience_user_attributes` rows."""

    def _audience_user(self, record: dict[str, t.Any]) -> dict[str, t.Any]:
        """Who an audience row is about: its raw identity where one can be sent, and MPID."""
        mpid = to_int64(record.get("mpid"))
        shell: dict[str, t.Any] = {"environment": self.environment}
        kind = canonical_identity_type(str(record.get("identity_type") or ""))
        value = record.get("identity_value")
        usable = (
            value not in (None, "")
            and record.get("identity_encoding", "raw") == "raw"
            and not isinstance(value, NOT_IDENTITIES)
        )
        if usable and kind in USER_IDENTITIES:
            shell["user_identities"] = {kind: user_identity(value, self.tally)}
        elif (
            usable
            and kind in DEVICE_IDENTITIES
            and (kind not in rules.UUID_DEVICE_FIELDS or rules.UUID_PATTERN.match(str(value)))
        ):
            shell["device_info"] = {kind: to_attribute_string(value)}
        elif mpid is None:
            reason, _ = _unusable(record, kind)
            msg = f"audience row cannot be sent: {reason} and it has no mpid"
            raise InvalidRecordError(msg)
        elif value not in (None, ""):
            # Sent by its mpid alone; the identity left out is counted, not lost unseen.
            _, counted = _unusable(record, kind)
            self.tally[f"audience rows sent by mpid alone: {counted}"] += 1
        if mpid is not None:
            shell["mpid"] = mpid
        context = self.data_plan_context()
        if context is not None:
            shell["context"] = context
        return shell

    def _audience_item(self, record: dict[str, t.Any], shell: dict[str, t.Any]) -> Item:
        fit_shell(shell, self.tally, built_attributes=True)
        user = digest_id(
            "user", shell.get("mpid"), shell.get("user_identities"), shell.get("device_info")
        )
        content = public(record)
        if "_sdc_source_file" in record:
            # A tap-mparticle row: where it was read, too. A user added, removed and
            # added again within one second (the Firehose and download stamps are
            # whole seconds) gave the second add the first's id, and mParticle
            # dropped it as a copy; a replay of the same file still repeats its ids.
            where = [record.get(field) for field in ROW_KEY]
            request_id = digest_id("audience", self.stream, self.id_scope, content, where)
        else:
            request_id = digest_id("audience", self.stream, self.id_scope, content)
        return Item(self.stream, record, shell, [], user, request_id)

    def _audience_membership(self, record: dict[str, t.Any]) -> Item:
        """An add sets the audience's user attribute to true; a remove deletes it."""
        shell = self._audience_user(record)
        audience_id = to_int64(record.get("audience_id"))
        if audience_id is None:
            msg = (
                f"audience_id {quoted(record.get('audience_id'))} is not an integer within 64 bits"
            )
            raise InvalidRecordError(msg)
        # An int and two strings: what the setting's check formatted it with.
        name = self.audience_attribute_name.format(
            audience_id=audience_id,
            audience_name=to_attribute_string(record.get("audience_name") or ""),
            variant=to_attribute_string(record.get("variant") or ""),
        )
        name = truncate(name, rules.API_LIMIT_NAME, "attribute names truncated to 256", self.tally)
        if not name:
            msg = "audience_attribute_name gives it an empty attribute name"
            raise InvalidRecordError(msg)
        if record.get("action") == "remove":
            shell["deleted_user_attributes"] = [name]
        else:
            shell["user_attributes"] = {name: True}
        return self._audience_item(record, shell)

    def _audience_attribute(self, record: dict[str, t.Any]) -> Item:
        """An upsert sets the attribute (lists as lists); a delete deletes it."""
        shell = self._audience_user(record)
        key = str(record["key"])
        if not key:
            msg = "its attribute key is empty"
            raise InvalidRecordError(msg)
        value = record.get("list_value")
        if value is None:
            value = record.get("value")
        if record.get("action") == "delete" or value is None:
            shell["deleted_user_attributes"] = [key]
        else:
            shell["user_attributes"] = user_attributes([(key, value)], self.tally)
        return self._audience_item(record, shell)


def _unusable(record: dict[str, t.Any], kind: str | None) -> tuple[str, str]:
    """Why a row's identity cannot identify its user in the Events API.

    Said twice: quoting the row, for its refusal, and without values from it, for the
    count of rows sent by their mpid alone (one tally key per reason, not per row).
    """
    value = record.get("identity_value")
    encoding = record.get("identity_encoding", "raw")
    if value in (None, ""):
        return "it has no identity", "no identity"
    if encoding != "raw":
        return f"its identity is hashed ({encoding})", "identity hashed"
    if isinstance(value, NOT_IDENTITIES):
        return (
            f"its identity {quoted(value)} is an object, a list or true/false",
            "identity an object, a list or true/false",
        )
    if kind is None:
        return (
            f"its identity type {record.get('identity_type')!r} is not one the Events API takes",
            "identity type not one the Events API takes",
        )
    return f"its {kind} is not a UUID, as the Events API requires", f"{kind} not a UUID"
