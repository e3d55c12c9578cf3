"""Records to inbound Events API items: one converter per stream, no I/O.

Three record shapes are understood:

* records following a ``mappings`` entry (a users table, an orders stream);
* tap-mparticle ``events`` records, one event with its batch's context;
* whole mParticle batches: tap-mparticle ``batches`` records, or batches another
  producer wrote (an ``events`` array and/or ``user_identities`` plus batch fields;
  one with no ``events`` is a user update).

The events of one original batch line, whichever of the two tap streams they come
from, get the same group id (from the file, line and position in the line), so
`assemble` derives the same ``source_request_id``s for both, and a replay that
selects both streams sends every event once.
"""

from __future__ import annotations

import typing as t

from mparticle_facts.numbers import to_int64
from target_mparticle.audience_rows import (
    AudienceRows,
    is_audience_attribute,
    is_audience_membership,
)
from target_mparticle.clean import (
    clean_application_info,
    clean_device_info,
    clean_event,
    clean_identities,
    clean_user_attributes,
    environment_of,
    replayed_fields,
)
from target_mparticle.inbound import InvalidRecordError, fit_shell
from target_mparticle.items import BatchDefaults, Item, digest_id, environment_tag, public
from target_mparticle.mapped import MappedRecords
from target_mparticle.preflight import quoted

__all__ = ["BatchDefaults", "Converter", "Item", "digest_id", "is_tap_event", "is_whole_batch"]


def is_tap_event(stream: str, record: t.Mapping[str, t.Any]) -> bool:
    """Whether ``record`` looks like one tap-mparticle ``events`` record."""
    if "event_type" not in record or not isinstance(record.get("data"), dict):
        return False
    return stream == "events" or "user_identities" in record or "mpid" in record


def is_whole_batch(record: t.Mapping[str, t.Any]) -> bool:
    """Whether ``record`` is an mParticle batch: events and/or identities plus batch fields."""
    if isinstance(record.get("events"), list):
        return True
    return isinstance(record.get("user_identities"), (dict, list)) and "event_type" not in record


#: tap-mparticle's audience streams: their rows are never generic records.
AUDIENCE_STREAMS = frozenset({"audience_memberships", "audience_user_attributes"})
#: Every tap-mparticle stream: what the "*" mapping leaves to the replay.
TAP_MPARTICLE_STREAMS = AUDIENCE_STREAMS | {"events", "batches"}

#: Event fields a tap-mparticle events record also carries beside its `data`.
_BORROWED = ("source_message_id", "session_uuid", "timestamp_unixtime_ms")


def _with_borrowed(record: t.Mapping[str, t.Any], data: dict[str, t.Any]) -> dict[str, t.Any]:
    """`data`, or a copy given the fields it lacks from beside it in the record.

    Older or partial records carry an event's id, session or time only at the top
    level; most carry them in `data` too, and then `data` is used as it is.
    """
    filled = data
    for field in _BORROWED:
        if data.get(field) is None and record.get(field) is not None:
            filled = dict(data) if filled is data else filled
            filled[field] = record[field]
    if "custom_attributes" not in data and record.get("custom_attributes"):
        filled = dict(data) if filled is data else filled
        filled["custom_attributes"] = record["custom_attributes"]
    return filled


def line_group(record: t.Mapping[str, t.Any]) -> str | None:
    """The group of a record read from one batch of a tap-mparticle file, else None.

    Both tap streams carry the file, the line and the batch's position in the line
    (0 where the tap predates `_sdc_batch_index`).
    """
    if "_sdc_source_file" not in record or "_sdc_source_lineno" not in record:
        return None
    return digest_id(
        "line",
        record["_sdc_source_file"],
        record["_sdc_source_lineno"],
        record.get("_sdc_batch_index") or 0,
    )


def _user_of(record: t.Mapping[str, t.Any]) -> tuple[object, object, object]:
    """Who a tap-mparticle events record is about, as the record gives it."""
    return record.get("mpid"), record.get("user_identities"), record.get("device_info")


class Converter(MappedRecords, AudienceRows):
    """Turns the records of one stream into :class:`Item` objects."""

    #: `_user_of` the record whose shell `_last_shell` holds.
    _last_user: tuple[object, object, object] = (None, None, None)

    #: The last line's file, number (and its type) and batch index, and its group.
    _last_where: tuple[tuple[t.Any, ...] | None, str | None] = (None, None)

    def _line_group(self, record: t.Mapping[str, t.Any]) -> str | None:
        """`line_group`, hashed once per line: a line's events arrive one after another."""
        lineno = record.get("_sdc_source_lineno")
        # The type too: 1 and 1.0 are equal keys but hash to different groups.
        where = (
            record.get("_sdc_source_file"),
            lineno,
            type(lineno),
            record.get("_sdc_batch_index"),
        )
        if where != self._last_where[0]:
            self._last_where = (where, line_group(record))
        return self._last_where[1]

    def convert(self, record: dict[str, t.Any]) -> Item:
        """Pick the record's shape and build its item; raises InvalidRecordError."""
        try:
            if (not self.mapping.explicit or self.mapping.audience_only) and (
                "audience_id" in record  # what both audience row shapes have
            ):
                row = self._audience_row(record)
                if row is not None:
                    return row
            if not self.mapping.explicit:
                if is_tap_event(self.stream, record):
                    return self._tap_event(record)
                if is_whole_batch(record):
                    return self._whole_batch(record)
            return self._mapped(record)
        except InvalidRecordError as exc:
            msg = f"{self.describe(record)}: {exc}"
            raise InvalidRecordError(msg) from exc
        except RecursionError:
            # Objects hundreds of levels deep (the reader takes about 1,000): the
            # cleaning recurses per level. The record alone is refused, not the run.
            msg = f"{self.describe(record)}: is nested too deeply to convert"
            raise InvalidRecordError(msg) from None

    def _audience_row(self, record: dict[str, t.Any]) -> Item | None:
        """An audience row's item; None for a record of another stream that only looks like one.

        A row of tap-mparticle's own audience streams with no action it knows is
        refused: it is no generic record, to be sent as an event named after the stream.
        """
        if is_audience_membership(record):
            return self._audience_membership(record)
        if is_audience_attribute(record):
            return self._audience_attribute(record)
        if self.stream not in AUDIENCE_STREAMS:
            return None
        msg = (
            f"action {quoted(record.get('action'))} is not one of add, remove "
            "(memberships) or upsert, delete (attributes)"
        )
        raise InvalidRecordError(msg)

    def _shell(self, record: t.Mapping[str, t.Any], *, replay: bool) -> dict[str, t.Any]:
        """The batch fields of a replayed event's or batch's record, fitted to the schema."""
        tally = self.tally
        identities = clean_identities(record.get("user_identities"), tally)
        mpid = to_int64(record.get("mpid"))
        if mpid is None:
            mpid = identities.mpid
        device = clean_device_info(record.get("device_info"), tally)
        for kind, value in identities.device.items():
            device.setdefault(kind, value)
        application = clean_application_info(record.get("application_info"), tally)
        attributes = clean_user_attributes(record.get("user_attributes"), tally)
        # The fields that hold something, in the order bodies have always had them.
        batch: dict[str, t.Any] = {"environment": environment_of(record, self.environment)}
        if identities.user:
            batch["user_identities"] = identities.user
        if mpid is not None:
            batch["mpid"] = mpid
        if device:
            batch["device_info"] = device
        if application:
            batch["application_info"] = application
        if attributes:
            batch["user_attributes"] = attributes
        if replay:
            batch.update(replayed_fields(record, tally))
            fit_shell(batch, tally, built_attributes=True)
        else:
            # Built by the clean_* functions alone: the same names (and environment)
            # make a shell of the same validity (see inbound.CertainShapes).
            shape = (
                batch["environment"],
                tuple(batch),
                tuple(identities.user),
                tuple(device),
                tuple(application),
            )
            self._shapes.fit(batch, shape, tally)
        if not identities.user and "mpid" not in batch and not batch.get("device_info"):
            msg = "has no user identity, mpid or device identity"
            raise InvalidRecordError(msg)
        self._add_plan(batch)
        return batch

    def _add_plan(self, batch: dict[str, t.Any]) -> None:
        """The configured data plan, as mapped records get it, unless the batch names one."""
        plan = self.plan_context
        if plan is None:
            return
        context = batch.get("context")
        if not isinstance(context, dict):
            batch["context"] = dict(plan)
        elif "data_plan" not in context:
            batch["context"] = {**context, **plan}

    # -- tap-mparticle events -------------------------------------------------

    def _tap_event(self, record: dict[str, t.Any]) -> Item:
        data = _with_borrowed(record, record["data"])
        event = clean_event(record["event_type"], data, self.tally)
        group = self._line_group(record)
        line_key = None if group is None else ("line", group)
        if line_key is None and record.get("batch_id") is not None:
            line_key = ("batch", record["batch_id"])
        if line_key is not None and line_key == self._last_line:
            # Events of one batch line share its context: build the shell once.
            if _user_of(record) != self._last_user:
                # The tap copies a line's user onto each of its events: these differ,
                # and merged, one user's events would go out under the other's.
                msg = (
                    "names the same batch line as the record before it but another user "
                    "(mpid, user_identities or device_info differ)"
                )
                raise InvalidRecordError(msg)
            batch, group = self._last_shell
            return Item(self.stream, record, batch, [event], group, group)
        batch = self._shell(record, replay=False)
        if group is None:
            group = (
                digest_id(*line_key)
                if line_key is not None
                else digest_id(
                    "user",
                    batch.get("mpid"),
                    batch.get("user_identities"),
                    batch.get("device_info"),
                )
            )
        if line_key is not None:
            self._last_line, self._last_shell = line_key, (batch, group)
            self._last_user = _user_of(record)
        return Item(self.stream, record, batch, [event], group, group)

    # -- whole batches --------------------------------------------------------

    def _whole_batch(self, record: dict[str, t.Any]) -> Item:
        given_events = record.get("events")
        if given_events is not None and type(given_events) is not list:
            # Not a list (a number, text, an object): no events to take one by one.
            msg = f"events is not a list: {quoted(given_events)}"
            raise InvalidRecordError(msg)
        batch = self._shell(record, replay=True)
        events: list[dict[str, t.Any]] = []
        refused: list[tuple[dict[str, t.Any], str]] = []
        for index, raw in enumerate(given_events or ()):
            if not isinstance(raw, dict):
                refused.append((self._alone(record, raw), f"event {index} is not an object"))
                continue
            try:
                events.append(clean_event(raw.get("event_type"), raw.get("data"), self.tally))
            except InvalidRecordError as exc:
                refused.append((self._alone(record, raw), f"event {index}: {exc}"))
        group = line_group(record)
        if group is not None:
            return Item(self.stream, record, batch, events, group, group, refused)
        given = record.get("source_request_id")
        request_id = (
            str(given)
            if given
            else digest_id("whole", environment_tag(batch["environment"]), public(record))
        )
        return Item(self.stream, record, batch, events, None, request_id, refused)

    @staticmethod
    def _alone(record: t.Mapping[str, t.Any], event: object) -> dict[str, t.Any]:
        """A refused event with its batch context, as the dead letter keeps it."""
        return {**record, "events": [event]}
