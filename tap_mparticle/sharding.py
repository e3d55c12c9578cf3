"""Splitting one drop between N taps: which files a shard owns, and whose state is whose.

N taps with the same settings and `shard_index` 0..N-1 read disjoint sets of files
whose union is the whole drop. A file belongs to shard `hash(key) mod N`, where the
key is the file's path relative to `bucket_url` and the hash is the first 8 bytes of
its BLAKE2b digest: the same on every machine, Python version and run (Python's own
`hash()` is salted per process), and independent of listing order and timestamps.
So a late or same-second file lands in the same shard whenever it is listed, and
each shard's read-once cursor (see `cursor`) works exactly as it does alone.

Each shard keeps its own state. A state only means something for the shard that
wrote it: under another `shard_count` the same file belongs to another shard, so
the history would be wrong for every file. A sharded run records `shard_count` and
`shard_index` in each stream's state, and a run refuses (before emitting anything)
a state recorded by another shard, rather than re-read or skip files silently. An
unsharded state (no record) counts as shard 0 of 1. How to change the count without
re-reading or losing a file: `reshard` (and the README's "Scaling out").
"""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Any

SHARD_COUNT_KEY = "shard_count"
SHARD_INDEX_KEY = "shard_index"


class ShardStateError(Exception):
    """The state given to a run was written by another shard or another shard count."""


@dataclasses.dataclass(frozen=True, slots=True)
class Shard:
    """One shard of `count`: the files whose key hashes to `index`."""

    count: int = 1
    index: int = 0

    def owns(self, key: str) -> bool:
        """Say whether a file is this shard's to read.

        Args:
            key: The file's key relative to `bucket_url`.

        Returns:
            True for exactly one shard of any count.
        """
        return self.count == 1 or shard_of(key, self.count) == self.index

    def describe(self) -> str:
        """E.g. `shard 1 of 3`, or `unsharded`."""
        return "unsharded" if self.count == 1 else f"shard {self.index} of {self.count}"

    def check_state(self, stream: str, state: dict[str, Any]) -> None:
        """Refuse a stream state that another shard (or shard count) wrote.

        An empty state (nothing read yet) is any shard's.

        Args:
            stream: The stream's name, for the message.
            state: The stream's bookmark dict as the run was given it.

        Raises:
            ShardStateError: The state is another shard's; the message says what to do.
        """
        if not state:
            return
        written = Shard(
            int(state.get(SHARD_COUNT_KEY, 1)),
            int(state.get(SHARD_INDEX_KEY, 0)),
        )
        if written == self:
            return
        if written.count == self.count:
            advice = (
                "give every shard its own state (in Meltano: one plugin and state ID per "
                "shard_index)"
            )
        else:
            advice = (
                f"set shard_count back to {written.count}, or change it as the README's "
                "'Scaling out' says (run every shard once more, then "
                "`python -m tap_mparticle.reshard` their states)"
            )
        msg = (
            f"{stream}: the state was written by {written.describe()} and this run is "
            f"{self.describe()}, so it would re-read or skip files; {advice}"
        )
        raise ShardStateError(msg)

    def stamp_state(self, state: dict[str, Any]) -> None:
        """Record in a stream state which shard it belongs to (nothing when unsharded).

        Args:
            state: The stream's bookmark dict, updated in place.
        """
        if self.count == 1:
            state.pop(SHARD_COUNT_KEY, None)
            state.pop(SHARD_INDEX_KEY, None)
            return
        state[SHARD_COUNT_KEY] = self.count
        state[SHARD_INDEX_KEY] = self.index


def shard_of(key: str, count: int) -> int:
    """The shard a key belongs to among `count`.

    Args:
        key: A file's key relative to `bucket_url`.
        count: How many shards.

    Returns:
        0 to count - 1.
    """
    # surrogatepass: the same bytes for every text key, and a key whose name is not
    # text (see `storage.name_not_text`) still belongs to exactly one shard.
    digest = hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % count
