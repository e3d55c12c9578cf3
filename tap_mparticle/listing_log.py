"""What a stream's listing found, said in the log after each listing.

One INFO summary (new files of files listed, under which prefix of which place),
the date folders left unlisted and the other shards' share. A first run (the
stream has no bookmark yet) that lists no file at all gets a WARNING naming the
place and the settings to check: a wrong bucket_url or prefix, or a drop that is
still empty, otherwise runs "successfully" for ever. An incremental run that
finds nothing new is normal and stays INFO.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import logging

    from tap_mparticle.folders import FolderFilter
    from tap_mparticle.sharding import Shard


@dataclasses.dataclass(frozen=True)
class Listing:
    """One stream's listing: where, and what it found."""

    stream: str
    prefix: str
    #: The setting that holds `prefix` (events_prefix, audiences_prefix).
    prefix_setting: str
    #: The storage's description (bucket and endpoint, or directory); never a secret.
    where: str
    listed: int
    new: int
    #: Listed files other shards own.
    others: int


def log_listing(
    logger: logging.Logger,
    listing: Listing,
    skip_folder: FolderFilter,
    shard: Shard,
    *,
    first_run: bool,
) -> None:
    """Log the listing's summary, and warn when a first run listed nothing.

    Args:
        logger: The stream's logger.
        listing: What the listing found.
        skip_folder: The folder filter it used (for the folders it left unlisted).
        shard: This run's shard.
        first_run: True when the stream has no bookmark yet.
    """
    logger.info(
        "%s: %d new %s of %d listed under prefix %r of %s",
        listing.stream,
        listing.new,
        "file" if listing.new == 1 else "files",
        listing.listed,
        listing.prefix,
        listing.where,
    )
    if first_run and not listing.listed and not skip_folder.skipped_by_date:
        logger.warning(
            "%s: no file at all under prefix %r of %s on a first run (no bookmark yet): "
            "check bucket_url and %s (or deselect the stream if the drop holds none of "
            "its files)%s",
            listing.stream,
            listing.prefix,
            listing.where,
            listing.prefix_setting,
            pattern_hint(listing.prefix),
        )
    if skip_folder.skipped_by_date:
        logger.info(
            "%s: %d date folders before %s not listed (date_folders_by: %s), the first %r",
            listing.stream,
            skip_folder.skipped_by_date,
            skip_folder.first_day,
            skip_folder.date_folders_by,
            skip_folder.example,
        )
    if shard.count > 1:
        logger.info(
            "%s: %s; %d listed files belong to other shards",
            listing.stream,
            shard.describe(),
            listing.others,
        )


#: Characters of a glob or a regular expression, which a key prefix matches literally.
PATTERN_CHARACTERS = frozenset("*?[]^$\\|+(){}")


def pattern_hint(prefix: str) -> str:
    """A hint for a prefix that looks like a glob or a regular expression, else "".

    A prefix is the literal start of every key read, so `events/*.txt` or
    `^events/.*` matches no key at all; peers' users trip on exactly this (a glob
    where a regex was wanted, and back). S3 allows these characters in keys, so
    they are not refused, only pointed at when nothing was found.

    Args:
        prefix: The stream's prefix, as normalised.

    Returns:
        The hint, starting with "; ", or "" when the prefix has none of them.
    """
    literal = prefix.removeprefix("^")  # a regex anchor, before the folder it anchors
    cut = next((i for i, char in enumerate(literal) if char in PATTERN_CHARACTERS), None)
    if cut is None:
        return ""
    folder = literal[:cut].rpartition("/")[0]
    meant = f"the prefix {folder!r}" if folder else "no prefix (the root)"
    return (
        f"; {prefix!r} holds {literal[cut]!r}, but a prefix is the literal start of a key, "
        f"not a glob or regular expression: did you mean {meant}?"
    )
