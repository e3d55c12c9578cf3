"""Converted items into encoded batches: grouping, splitting, ids, endpoint choice.

Pure functions, no I/O. Items of one original batch line (a tap-mparticle replay)
are merged back into one batch; a batch over 100 events or 128,000 bytes is split;
every batch gets a `source_request_id` derived only from its content, so the same
input yields the same ids on a retry or a re-run and mParticle drops the copies.
"""

from __future__ import annotations

import dataclasses
import typing as t

from target_mparticle import schema_rules as rules
from target_mparticle.convert import Item, digest_id
from target_mparticle.inbound import InvalidRecordError
from target_mparticle.items import environment_tag
from target_mparticle.values import encode_json

THIRTY_DAYS_MS = 30 * 24 * 3600 * 1000
SEVENTY_TWO_HOURS_MS = 72 * 3600 * 1000


@dataclasses.dataclass(slots=True)
class PreparedBatch:
    """A batch ready to send: its encoded body and where it came from."""

    source_request_id: str
    body: bytes
    historical: bool
    items: list[Item]
    n_events: int


def trailing_group(items: t.Sequence[Item]) -> int:
    """Index where the last run of same-group items starts (len if none).

    A drain triggered by a full sink can cut a user's events in two; holding the
    tail back keeps batch contents, and so their ids, the same on every run.
    """
    if not items or items[-1].group is None:
        return len(items)
    group = items[-1].group
    index = len(items)
    while index > 0 and items[index - 1].group == group:
        index -= 1
    return index


def _is_historical(events: t.Sequence[dict[str, t.Any]], mode: str, now_ms: int) -> bool:
    if mode == "never" or not events:
        return False
    if mode == "auto":
        cutoff = now_ms - THIRTY_DAYS_MS
        for event in events:
            stamp = event["data"].get("timestamp_unixtime_ms")
            if stamp is None or stamp >= cutoff:
                return False
        return True
    stamps = [e["data"].get("timestamp_unixtime_ms") for e in events]
    if mode == "always":
        if any(s is None or s > now_ms - SEVENTY_TWO_HOURS_MS for s in stamps):
            msg = (
                "historical is 'always' but an event has no timestamp or is less than "
                "72 hours old, which the historical endpoint does not process"
            )
            raise InvalidRecordError(msg)
        return True
    return all(s is not None and s < now_ms - THIRTY_DAYS_MS for s in stamps)


def encode_batch(batch: dict[str, t.Any]) -> bytes:
    """JSON bytes of one batch, as they go on the wire."""
    return encode_json(batch)


def _pieces(
    shell: dict[str, t.Any], events: list[dict[str, t.Any]]
) -> t.Iterator[list[dict[str, t.Any]]]:
    """Split events so each batch holds at most 100 and stays under the byte cap."""
    if not events:
        yield []
        return
    start = 0
    while start < len(events):
        chunk = events[start : start + rules.MAX_EVENTS_PER_BATCH]
        while len(chunk) > 1 and len(encode_batch({**shell, "events": chunk})) > (
            rules.MAX_BATCH_BYTES
        ):
            chunk = chunk[: len(chunk) // 2]
        yield chunk
        start += len(chunk)


def assemble(
    items: t.Sequence[Item],
    historical_mode: str,
    now: int,
) -> tuple[list[PreparedBatch], list[tuple[Item, str]]]:
    """Merge grouped items, split oversized batches, encode; return the rejects too.

    A user's updates (rows of a `kind: user` mapping) that meet in one drain are
    folded into one batch like a user's audience rows: the drain's requests go out in
    parallel, so as separate batches an earlier row could reach mParticle after a
    later one and be the value the profile keeps.
    """
    prepared: list[PreparedBatch] = []
    rejected: list[tuple[Item, str]] = []
    for entry in _in_order(items):
        if not isinstance(entry, list):
            if entry.events:
                _merged([entry], historical_mode, now, prepared, rejected)
                continue
            # A user update, the usual reverse-ETL item, written out here (its own id,
            # one body, nothing to split): a call cost 1,100 instructions a record (1.3%).
            body = encode_batch({**entry.batch, "source_request_id": entry.request_id})
            if len(body) > rules.MAX_BATCH_BYTES:
                rejected.append((entry, _over_cap(body)))
            else:
                prepared.append(PreparedBatch(entry.request_id, body, False, [entry], 0))  # noqa: FBT003
        else:
            _merged(entry, historical_mode, now, prepared, rejected)
    return prepared, rejected


def _in_order(items: t.Sequence[Item]) -> list[Item | list[Item]]:
    """The items in order: alone, or with the rest of their group or of their user.

    Most user updates meet no other of their user in a drain, so each is looked up
    by one value (its first identity, else its mpid) and stays an item, not a list
    of one; only rows that share that value are told apart by their whole key
    (`_user_key`). Building the whole key for every row cost a user record 6%.
    """
    groups: dict[str, list[Item]] = {}
    probes: dict[object, int] = {}  # first identity or mpid -> its first entry in `order`
    users: dict[tuple[t.Any, ...], int] = {}  # whole keys, once two rows share a probe
    order: list[Item | list[Item]] = []
    for item in items:
        group = item.group
        if group is not None:
            bucket = groups.get(group)
            if bucket is None:
                bucket = groups[group] = []
                order.append(bucket)
            bucket.append(item)
            continue
        if not item.user_row:
            order.append(item)
            continue
        batch = item.batch
        probe = batch.get("mpid")
        for probe in (batch.get("user_identities") or _NONE).values():  # noqa: B007
            break
        at = probes.get(probe)
        if at is None:
            probes[probe] = len(order)
            order.append(item)
            continue
        _add_user(item, order, at, users)
    return order


#: An empty mapping, for `.values()` on a batch with no identities.
_NONE: dict[str, t.Any] = {}


def _add_user(
    item: Item, order: list[Item | list[Item]], at: int, users: dict[tuple[t.Any, ...], int]
) -> None:
    """`item`, whose probe an earlier entry (at `at`) shares: folded in if the same user."""
    earlier = order[at]
    first = earlier[0] if isinstance(earlier, list) else earlier
    users.setdefault(_user_key(first.batch), at)
    key = _user_key(item.batch)
    same = users.get(key)
    if same is None:
        users[key] = len(order)
        order.append(item)
        return
    entry = order[same]
    if isinstance(entry, list):
        entry.append(item)
    else:
        order[same] = [entry, item]


def _user_key(batch: dict[str, t.Any]) -> tuple[t.Any, ...]:
    """Who a user update is about: its environment, mpid and identities as sent."""
    identities = batch.get("user_identities")
    device = batch.get("device_info")
    return (
        batch["environment"],
        batch.get("mpid"),
        tuple(identities.items()) if identities else (),
        tuple(device.items()) if device else (),
    )


def _merged(
    members: list[Item],
    historical_mode: str,
    now: int,
    prepared: list[PreparedBatch],
    rejected: list[tuple[Item, str]],
) -> None:
    """One batch of the members' events (split if it must be), or their rejections."""
    first = members[0]
    events = [e for m in members for e in m.events]
    try:
        historical = _is_historical(events, historical_mode, now)
    except InvalidRecordError as exc:
        rejected.extend((m, str(exc)) for m in members)
        return
    shell = first.batch
    if any(m.batch is not shell for m in members[1:]):
        shell = fold_user_updates([m.batch for m in members])
        if not events and len(shell.get("user_attributes") or ()) > API_LIMIT:
            _attribute_pieces(members, shell, prepared, rejected)
            return
    for chunk, request_id, body in _encoded(members, shell, events):
        owners = members if not chunk or chunk is events else _owners(members, chunk)
        if len(body) > rules.MAX_BATCH_BYTES:
            reason = _over_cap(body)
            rejected.extend((m, reason) for m in owners)
            continue
        prepared.append(PreparedBatch(request_id, body, historical, owners, len(chunk)))


def _attribute_pieces(
    members: list[Item],
    shell: dict[str, t.Any],
    prepared: list[PreparedBatch],
    rejected: list[tuple[Item, str]],
) -> None:
    """A folded user update over mParticle's 100 attributes a batch, in several batches.

    Folded first, each attribute holds its final value and is in one batch only, so
    the batches may land in any order (sent one row each, as they came, an earlier
    row could land after a later one). Deletes and the other fields go in the first;
    each batch holds at most 100 attributes and stays under the byte cap. Each names
    every row folded into it, so a refusal dead-letters them all (once).
    """
    names = list(shell["user_attributes"].items())
    first = {k: v for k, v in shell.items() if k != "user_attributes"}
    later = {k: v for k, v in first.items() if k in _EVERY_PIECE}
    pieces: list[dict[str, t.Any]] = []
    start = 0
    while start < len(names):
        base = {**(later if pieces else first), "source_request_id": _ID_SIZED}
        chunk = names[start : start + API_LIMIT]
        while len(chunk) > 1 and len(encode_batch({**base, "user_attributes": dict(chunk)})) > (
            rules.MAX_BATCH_BYTES
        ):
            chunk = chunk[: len(chunk) // 2]
        del base["source_request_id"]
        pieces.append({**base, "user_attributes": dict(chunk)})
        start += len(chunk)
    rows = [m.request_id for m in members]
    batches = []
    for index, piece in enumerate(pieces):
        request_id = digest_id("fold", members[0].group, rows, index, len(pieces))
        body = encode_batch({**piece, "source_request_id": request_id})
        if len(body) > rules.MAX_BATCH_BYTES:  # its deletes and consent alone: all or none
            rejected.extend((m, _over_cap(body)) for m in members)
            return
        batches.append(PreparedBatch(request_id, body, False, members, 0))  # noqa: FBT003
    prepared.extend(batches)


#: What a folded update's later pieces carry: who the user is, and their attributes.
_EVERY_PIECE = frozenset(
    (
        "environment",
        "mpid",
        "mp_deviceid",
        "user_identities",
        "device_info",
        "ip",
        "context",
        "user_attributes",
    )
)
#: Stands in for a piece's id while its size is measured: the same length as one.
_ID_SIZED = "0" * 36
API_LIMIT = rules.API_LIMIT_USER_ATTRIBUTES


def _over_cap(body: bytes) -> str:
    return f"batch is {len(body)} bytes, over the {rules.MAX_BATCH_BYTES} cap"


def _encoded(
    members: list[Item], shell: dict[str, t.Any], events: list[dict[str, t.Any]]
) -> list[tuple[list[dict[str, t.Any]], str, bytes]]:
    """Each piece's events, source_request_id and body.

    A batch that fits whole, the usual case, is encoded once: its body is its own size
    check. Only one that does not is split, exactly as `_pieces` always split it.
    """
    if len(events) <= rules.MAX_EVENTS_PER_BATCH:
        body, request_id = _body(members, shell, events, 0, 1)
        if len(body) <= rules.MAX_BATCH_BYTES:
            return [(events, request_id, body)]
    pieces = list(_pieces(shell, events))
    out = []
    for index, chunk in enumerate(pieces):
        body, request_id = _body(members, shell, chunk, index, len(pieces))
        out.append((chunk, request_id, body))
    return out


def _body(
    members: list[Item],
    shell: dict[str, t.Any],
    chunk: list[dict[str, t.Any]],
    index: int,
    parts: int,
) -> tuple[bytes, str]:
    request_id = _request_id(members, chunk, index, parts)
    batch = {**shell, "source_request_id": request_id}
    if chunk:
        batch["events"] = chunk
    return encode_batch(batch), request_id


def _request_id(members: list[Item], chunk: list[dict[str, t.Any]], index: int, parts: int) -> str:
    """The batch's source_request_id: from its content only, so every re-run repeats it.

    Its environment is part of it, as of every converter's id (see `environment_tag`).
    """
    first = members[0]
    if not chunk and (first.group is not None or len(members) > 1):
        # A user's updates folded together: the id names every change in it.
        return digest_id("fold", first.group, [m.request_id for m in members])
    if first.group is not None:
        ids = [e["data"].get("source_message_id") for e in chunk]
        return digest_id("group", first.group, environment_tag(first.batch["environment"]), ids)
    if parts == 1:
        return first.request_id
    return digest_id("part", first.request_id, index, parts)


def fold_user_updates(shells: t.Sequence[dict[str, t.Any]]) -> dict[str, t.Any]:
    """One user's changes, in the order they came, as one batch.

    A later change always wins: set-then-delete leaves the attribute deleted,
    delete-then-set leaves it set, a later row's consent replaces an earlier one's
    purpose by purpose, and its other fields (its IP) replace an earlier one's, so
    one request carries the user's final state and no earlier change can overtake a
    later one in flight.

    Args:
        shells: The batch shells of one user's items, in record order.

    Returns:
        A new shell: every shell's fields, later ones winning, attributes and deletes folded.
    """
    merged: dict[str, t.Any] = {}
    attributes: dict[str, t.Any] = {}
    deleted: dict[str, None] = {}  # ordered set
    consent: dict[str, dict[str, t.Any]] = {}  # regulation -> purpose -> its state
    for shell in shells:
        merged.update(shell)
        for regulation, purposes in (shell.get("consent_state") or {}).items():
            # A row that says nothing of a purpose leaves it as an earlier row set it.
            consent.setdefault(regulation, {}).update(purposes)
        for name in shell.get("deleted_user_attributes") or ():
            attributes.pop(name, None)
            deleted[name] = None
        for name, value in (shell.get("user_attributes") or {}).items():
            deleted.pop(name, None)
            attributes[name] = value
    merged.pop("user_attributes", None)
    merged.pop("deleted_user_attributes", None)
    if consent:
        merged["consent_state"] = consent
    if attributes:
        merged["user_attributes"] = attributes
    if deleted:
        merged["deleted_user_attributes"] = list(deleted)
    return merged


def _owners(members: list[Item], chunk: list[dict[str, t.Any]]) -> list[Item]:
    """The records with events in `chunk`, each restricted to those events."""
    ids = {id(e) for e in chunk}
    owners = []
    for member in members:
        mine = [e for e in member.events if id(e) in ids]
        if mine:
            owners.append(member.part(mine))
    return owners
