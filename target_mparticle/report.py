"""The progress and summary lines, in words a reader can take at face value.

Counts get the right plural ("1 request", "2 requests"). Time spent held back by
pacing and rate limits is wall-clock time (see `Pacer.held_back_s`): the sum of each
sender thread's own waits would exceed the run's length with parallel requests.
"""

from __future__ import annotations

import typing as t

if t.TYPE_CHECKING:
    from target_mparticle.client import Stats

_IRREGULAR = {"entry": "entries", "retry": "retries", "batch": "batches"}


def counted(count: int, noun: str) -> str:
    """Say `count noun` with the plural the count needs.

    Args:
        count: How many.
        noun: The singular noun, e.g. "request".

    Returns:
        e.g. "1 request", "2 requests", "0 batches".
    """
    if count == 1:
        return f"1 {noun}"
    return f"{count:,} {_IRREGULAR.get(noun, noun + 's')}"


def run_totals(stats: Stats, held_back_s: float) -> str:
    """The run's delivery counters so far.

    Args:
        stats: The client's counters.
        held_back_s: Wall-clock seconds with requests held back.

    Returns:
        One phrase for the progress and summary lines.
    """
    return (
        f"{counted(stats.requests, 'request')}, {counted(stats.batches, 'batch')}, "
        f"{counted(stats.events, 'event')}, {counted(stats.retries, 'retry')}, "
        f"{counted(stats.throttled, 'rate-limited answer')}, "
        f"{held_back_s:.1f}s of wall time held back by pacing or rate limits"
    )


def progress_line(  # noqa: PLR0913  (one line of this many facts)
    stream: str,
    *,
    records: int,
    batches: int,
    requests: int,
    refused: int,
    stats: Stats,
    held_back_s: float,
) -> str:
    """What one drain delivered, and the run's totals.

    Args:
        stream: The stream drained.
        records: Records in the drain.
        batches: Batches they became.
        requests: Requests those filled (before any split to isolate a refusal).
        refused: Records of the drain that became invalid records (not delivered).
        stats: The client's counters.
        held_back_s: Wall-clock seconds with requests held back.

    Returns:
        The line.
    """
    # Without the refusals, a drain whose rows mParticle partly refused read as all
    # sent, beside run totals that had fewer batches.
    not_delivered = f", {counted(refused, 'record')} refused" if refused else ""
    return (
        f"Stream {stream!r}: {counted(records, 'record')} sent as "
        f"{counted(batches, 'batch')} in {counted(requests, 'request')}{not_delivered} "
        f"(run totals: {run_totals(stats, held_back_s)})"
    )


def summary_line(  # noqa: PLR0913  (one line of this many facts)
    *,
    records: int,
    destination: str,
    seconds: float,
    stats: Stats | None,
    held_back_s: float,
    invalid: int,
    policy: str,
) -> str:
    """The end-of-run summary.

    Args:
        records: Records delivered.
        destination: Where they went (URL and key, or the dry-run file).
        seconds: The run's wall time.
        stats: The client's counters, None when nothing was delivered.
        held_back_s: Wall-clock seconds with requests held back.
        invalid: Invalid records.
        policy: The on_invalid_record policy.

    Returns:
        The line.
    """
    from target_mparticle.client import Stats  # noqa: PLC0415  (a runtime default only)

    return (
        f"Summary: {counted(records, 'record')} delivered to {destination} in "
        f"{seconds:.1f}s: {run_totals(stats or Stats(), held_back_s)}; "
        f"{counted(invalid, 'invalid record')} ({policy})"
    )
