"""The repository root and the small file helpers many test modules used to repeat."""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import datetime as dt

REPO_ROOT = Path(__file__).resolve().parents[2]
SAMPLE_DROP = REPO_ROOT / "samples" / "drop"
REAL_DROP = REPO_ROOT / "tests" / "fixtures" / "real" / "drop"


def write(path: Path, text: str | bytes, *, gzipped: bool = False) -> None:
    """Write `text` to `path` (parents made), gzip-compressed with a fixed mtime if asked."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = text.encode() if isinstance(text, str) else text
    path.write_bytes(gzip.compress(data, mtime=0) if gzipped else data)


def set_mtime(path: Path, when: dt.datetime) -> None:
    """Give `path` the access and modification time `when`."""
    stamp = when.timestamp()
    os.utime(path, (stamp, stamp))


def error_lines(stderr: str) -> list[str]:
    """The ERROR lines of a plugin's log on stderr."""
    return [line for line in stderr.splitlines() if "| ERROR" in line]


def dead_letters(config: dict[str, Any]) -> list[dict[str, Any]]:
    """Every dead letter the target wrote: to `dead_letter_path`, or a dry run's beside
    its `dry_run_path` (`<name>-dead-letters.jsonl`)."""
    path = Path(config["dead_letter_path"])
    if config.get("dry_run"):
        dry = Path(config["dry_run_path"])
        path = dry.with_name(f"{dry.stem}-dead-letters.jsonl")
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


def real_batches(prefix: str) -> list[dict[str, Any]]:
    """Every batch in the real corpus's files under `prefix`, read without the tap."""
    decoder = json.JSONDecoder()
    batches = []
    for path in sorted(p for p in (REAL_DROP / prefix).rglob("*") if p.is_file()):
        for line in path.read_text(encoding="utf-8").splitlines():
            position = 0
            while position < len(line.strip()):
                document, position = decoder.raw_decode(line, position)
                batches.append(document)
    return batches
