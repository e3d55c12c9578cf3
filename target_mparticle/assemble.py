"""Converted items into encoded batches: grouping, splitting, ids, endpoint choice.

Pure functions, no I/O. Items of one original batch line (a tap-mparticle replay)
are merged back into one batch; a batch over 100 events or 128,000 bytes is split;
every batch gets a `source_request_id` derived only from its content, so the same
input yields the same ids on a retry or a re-run and mParticle drops the copies.
"""

from __future__ import annotations

import dataclasses
import typing as t

import msgspec

from target_mparticle import schema_rules as rules
from target_mparticle.convert import Item, digest_id
from target_mparticle.inbound import InvalidRecordError

_BODY_ENCODER = msgspec.json.Encoder(decimal_format="number")
THIRTY_DAYS_MS = 30 * 24 * 3600 * 1000
SEVENTY_TWO_HOURS_MS = 72 * 3600 * 1000


@dataclasses.dataclass
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
    return _BODY_ENCODER.encode(batch)


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


def assemble(  # noqa: C901 - grouping, splitting and id rules read best together
    items: t.Sequence[Item],
    historical_mode: str,
    now: int,
) -> tuple[list[PreparedBatch], list[tuple[Item, str]]]:
    """Merge grouped items, split oversized batches, encode; return the rejects too."""
    groups: dict[str, list[Item]] = {}
    order: list[list[Item]] = []
    for item in items:
        if item.group is None:
            order.append([item])
            continue
        bucket = groups.get(item.group)
        if bucket is None:
            bucket = groups[item.group] = []
            order.append(bucket)
        bucket.append(item)

    prepared: list[PreparedBatch] = []
    rejected: list[tuple[Item, str]] = []
    for members in order:
        first = members[0]
        events = [e for m in members for e in m.events]
        try:
            historical = _is_historical(events, historical_mode, now)
        except InvalidRecordError as exc:
            rejected.extend((m, str(exc)) for m in members)
            continue
        pieces = list(_pieces(first.batch, events))
        for index, chunk in enumerate(pieces):
            if first.group is not None:
                ids = [e["data"].get("source_message_id") for e in chunk]
                request_id = digest_id("group", first.group, ids)
            elif len(pieces) == 1:
                request_id = first.request_id
            else:
                request_id = digest_id("part", first.request_id, index, len(pieces))
            batch = {**first.batch, "source_request_id": request_id}
            if chunk:
                batch["events"] = chunk
            body = encode_batch(batch)
            owners = members if first.group is None else _owners(members, chunk)
            if len(body) > rules.MAX_BATCH_BYTES:
                reason = f"batch is {len(body)} bytes, over the {rules.MAX_BATCH_BYTES} cap"
                rejected.extend((m, reason) for m in owners)
                continue
            prepared.append(PreparedBatch(request_id, body, historical, owners, len(chunk)))
    return prepared, rejected


def _owners(members: list[Item], chunk: list[dict[str, t.Any]]) -> list[Item]:
    ids = {id(e) for e in chunk}
    return [m for m in members if any(id(e) in ids for e in m.events)]
