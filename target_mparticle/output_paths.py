"""The files a run writes (dead letters, dry-run bodies): where, and whether it can.

Checked before the first record, so an unwritable place is one line naming its
setting, not a bare errno on the first dead letter; and a dry run is kept off the
real run's files.
"""

from __future__ import annotations

import os
import pathlib
import typing as t

if t.TYPE_CHECKING:
    from collections.abc import Mapping


def dry_run_dead_letters(dry_run_path: str | pathlib.Path) -> pathlib.Path:
    """The dead-letter file of a dry run: beside its bodies, replaced on each run.

    A dry run must leave the real run's outputs as they were: its dead letters in
    `dead_letter_path` would be there twice once the real run wrote them too.
    """
    path = pathlib.Path(dry_run_path)
    return path.parent / f"{path.stem or 'dry-run'}-dead-letters.jsonl"


def output_path_errors(config: Mapping[str, t.Any]) -> list[str]:
    """Problems with the files this run would write (dead letters, dry-run bodies)."""
    errors: list[str] = []
    dry_run_path = str(config.get("dry_run_path") or "").strip()
    if config.get("dry_run"):
        if not dry_run_path:
            errors.append("dry_run_path is empty, but dry_run is true")
        else:
            errors.extend(_writable("dry_run_path", dry_run_path))
    if config.get("dry_run") and dry_run_path:
        # A dry run's dead letters go beside its bodies, a file it replaces: never a
        # real run's dead letters (`x.jsonl` beside makes `x-dead-letters.jsonl`).
        beside = dry_run_dead_letters(dry_run_path)
        real = str(config.get("dead_letter_path") or "").strip()
        if real and beside.expanduser().resolve() == pathlib.Path(real).expanduser().resolve():
            errors.append(
                f"dry_run_path {dry_run_path!r} would put the dry run's dead letters in "
                f"dead_letter_path {real!r}, which a dry run must leave as it is: choose "
                "another dry_run_path"
            )
        elif config.get("on_invalid_record") == "dead_letter":
            errors.extend(_writable("dry_run_path", str(beside)))
        return errors
    if config.get("on_invalid_record") != "dead_letter":
        return errors
    path = str(config.get("dead_letter_path") or "").strip()
    if not path:
        errors.append("dead_letter_path is empty, but on_invalid_record is dead_letter")
    else:
        errors.extend(_writable("dead_letter_path", path))
    return errors


def _writable(setting: str, value: str) -> list[str]:
    """Say why a file could not be created or appended to, without touching it."""
    path = pathlib.Path(value).expanduser()
    if path.exists():
        if not path.is_file():
            return [f"{setting} {value!r} is not a regular file"]
        if not os.access(path, os.W_OK):
            return [f"{setting} {value!r} is not writable"]
        return []
    ancestor = path.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        return [f"{setting} {value!r} cannot be created: {str(ancestor)!r} is not a directory"]
    if not os.access(ancestor, os.W_OK | os.X_OK):
        return [f"{setting} {value!r} cannot be created: {str(ancestor)!r} is not writable"]
    return []
