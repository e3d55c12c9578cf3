"""Change `shard_count` without re-reading or losing a file: merge the old shards' states.

A shard's state says which of *its* files were read; under a new count every file
may belong to another shard, so no old state fits a new shard. But the old states
together describe the whole drop. Once every old shard has run to the end of the
drop (so each has read every file it owns), the union is exact:

- the bookmark is the latest of the old bookmarks: every file stamped before the
  latest bookmark minus the look-back window was read by its old shard, or was
  already outside its own window;
- `files_read` is the union of the old histories (the shards' keys are disjoint),
  so every file inside the window that was read is remembered;
- `files_read_floor` is the latest of the old floors;
- `files_read_versions` is the union of the old ones, each kept only while its
  key's merged LastModified is the one it was read at.

Every new shard starts from that same merged state, stamped with its own index:
its cursor filters by its own files as it lists them, and the next compaction
forgets the others' keys as they leave the window.

Usage:
    python -m tap_mparticle.reshard --shard-count 4 --out-dir new/ old-0.json old-1.json ...

Each input is a tap state (`{"bookmarks": ...}`) or what `meltano state get`
prints (`{"singer_state": ...}`); outputs `state-<index>.json` have the same shape.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from tap_mparticle.cursor import (
    REPLICATION_KEY,
    VERSIONS_KEY,
    format_timestamp,
    parse_timestamp,
)
from tap_mparticle.sharding import SHARD_COUNT_KEY, SHARD_INDEX_KEY, Shard
from tap_mparticle.state_shape import StateShapeError, check_state, singer_state


class ReshardError(Exception):
    """The old states do not describe one complete set of shards."""


def merge_states(states: list[dict[str, Any]], count: int) -> list[dict[str, Any]]:
    """Merge the states of every shard of one old count into states for `count` shards.

    Args:
        states: Tap states (`{"bookmarks": {stream: ...}}`), one per old shard.
        count: The new shard count.

    Returns:
        One tap state per new shard, index order.

    Raises:
        ReshardError: Shards are missing, repeated, or of different counts.
    """
    if count < 1:
        msg = f"the new shard count must be 1 or more, not {count}"
        raise ReshardError(msg)
    shards = [_shard_of_state(state) for state in states]
    old_counts = {shard.count for shard in shards}
    if len(old_counts) != 1:
        msg = f"the states were written with different shard counts: {sorted(old_counts)}"
        raise ReshardError(msg)
    old_count = old_counts.pop()
    indexes = sorted(shard.index for shard in shards)
    if indexes != list(range(old_count)):
        msg = (
            f"need the state of every one of the {old_count} old shards exactly once, "
            f"got shard indexes {indexes}"
        )
        raise ReshardError(msg)

    merged: dict[str, dict[str, Any]] = {}
    for state in states:
        for stream, bookmark in (state.get("bookmarks") or {}).items():
            if bookmark:
                merged[stream] = _merge_stream(merged.get(stream, {}), bookmark)
    out = []
    for index in range(count):
        bookmarks = {}
        for stream, bookmark in merged.items():
            copy = {**bookmark, "files_read": dict(bookmark.get("files_read", {}))}
            if VERSIONS_KEY in bookmark:
                copy[VERSIONS_KEY] = dict(bookmark[VERSIONS_KEY])
            Shard(count, index).stamp_state(copy)
            bookmarks[stream] = copy
        out.append({"bookmarks": bookmarks})
    return out


def _shard_of_state(state: dict[str, Any]) -> Shard:
    """The one shard every stream of a state was written by."""
    seen = {
        Shard(int(b.get(SHARD_COUNT_KEY, 1)), int(b.get(SHARD_INDEX_KEY, 0)))
        for b in (state.get("bookmarks") or {}).values()
        if b
    }
    if len(seen) != 1:
        msg = "a state holds no bookmarks, or bookmarks of several shards: " + (
            ", ".join(sorted(s.describe() for s in seen)) or "none"
        )
        raise ReshardError(msg)
    return seen.pop()


def _merge_stream(into: dict[str, Any], other: dict[str, Any]) -> dict[str, Any]:
    """One stream's merged bookmark (latest bookmark and floor, union of histories)."""
    history = dict(into.get("files_read") or {})
    for key, stamp in (other.get("files_read") or {}).items():
        history[key] = max(stamp, history.get(key, stamp))
    merged: dict[str, Any] = {"replication_key": REPLICATION_KEY, "files_read": history}
    versions = {
        key: version
        for source in (into, other)
        for key, version in (source.get(VERSIONS_KEY) or {}).items()
        if (source.get("files_read") or {}).get(key) == history.get(key)
    }
    if versions:
        merged[VERSIONS_KEY] = versions
    marks = [b["replication_key_value"] for b in (into, other) if b.get("replication_key_value")]
    if marks:
        merged["replication_key_value"] = format_timestamp(max(map(parse_timestamp, marks)))
    floors = [b["files_read_floor"] for b in (into, other) if b.get("files_read_floor")]
    if floors:
        merged["files_read_floor"] = format_timestamp(max(map(parse_timestamp, floors)))
    return merged


def main(argv: list[str] | None = None) -> int:
    """Read the old states, write one per new shard; one-line errors, exit code 1.

    Args:
        argv: Command-line arguments (default: `sys.argv[1:]`).

    Returns:
        The exit code.
    """
    parser = argparse.ArgumentParser(
        prog="python -m tap_mparticle.reshard",
        description="Merge the states of all old shards into states for a new shard_count.",
    )
    parser.add_argument("--shard-count", type=int, required=True, help="the new shard_count")
    parser.add_argument("--out-dir", type=Path, required=True, help="where state-<i>.json go")
    parser.add_argument("states", nargs="+", type=Path, help="one state file per old shard")
    args = parser.parse_args(argv)
    try:
        loaded = [_load(path) for path in args.states]
        merged = merge_states([state for state, _ in loaded], args.shard_count)
    except ReshardError as exc:
        print(f"reshard: {exc}", file=sys.stderr)  # noqa: T201  (a command-line tool)
        return 1
    wrapped = any(meltano for _, meltano in loaded)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    for index, state in enumerate(merged):
        body = {"singer_state": state} if wrapped else state
        (args.out_dir / f"state-{index}.json").write_text(json.dumps(body, indent=2) + "\n")
    print(  # noqa: T201
        f"wrote {len(merged)} states for shard_count {args.shard_count} to {args.out_dir}",
        file=sys.stderr,
    )
    return 0


def _load(path: Path) -> tuple[dict[str, Any], bool]:
    """A tap state from a file, and whether it came wrapped as Meltano prints it.

    Checked as the tap checks its `--state`: a file the tap would refuse is refused
    here, naming the file, before any new state is written.
    """
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        msg = f"cannot read state file {path}: {exc}"
        raise ReshardError(msg) from None
    if not isinstance(data, dict):
        msg = f"{path} is not a JSON object"
        raise ReshardError(msg)
    try:
        inner = singer_state(data, str(path))  # its message names the file
    except StateShapeError as exc:
        raise ReshardError(str(exc)) from None
    state = data if inner is None else inner
    try:
        # The tap refuses these fields at its next run; merged, they would pass on
        # to every new shard, or end here in a traceback.
        check_state(state)
    except StateShapeError as exc:
        msg = f"{path}: {exc}"
        raise ReshardError(msg) from None
    return state, inner is not None


if __name__ == "__main__":
    sys.exit(main())
