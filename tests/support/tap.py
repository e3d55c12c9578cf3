"""Run tap-mparticle in-process or as its console script; drops, catalogs and record checks."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import os
import subprocess
import sys
from typing import TYPE_CHECKING, Any

import jsonschema

from scripts import generate_audiences as generator
from tap_mparticle.tap import TapMParticle

if TYPE_CHECKING:
    import datetime as dt
    from collections.abc import Iterable
    from pathlib import Path

    from scripts.generate_drop import DropSummary
    from tests.support.s3 import Publish

__all__ = ["generator"]  # scripts/generate_audiences.py, for the audience tests

AUDIENCE_STREAMS = ("audience_memberships", "audience_user_attributes")
AUDIENCE_KEY = (
    "_sdc_source_file",
    "_sdc_source_member",
    "_sdc_source_lineno",
    "_sdc_record_index",
)


@dataclasses.dataclass
class TapOutput:
    """Messages a run wrote, split by type."""

    messages: list[dict[str, Any]]
    returncode: int = 0
    stderr: str = ""

    def records(self, stream: str) -> list[dict[str, Any]]:
        return [
            m["record"] for m in self.messages if m["type"] == "RECORD" and m["stream"] == stream
        ]

    @property
    def states(self) -> list[dict[str, Any]]:
        return [m["value"] for m in self.messages if m["type"] == "STATE"]

    @property
    def final_state(self) -> dict[str, Any]:
        return self.states[-1]

    def schema(self, stream: str) -> dict[str, Any]:
        return next(m for m in self.messages if m["type"] == "SCHEMA" and m["stream"] == stream)


def _parse(raw: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in raw.splitlines() if line.strip()]


def catalog_selecting(config: dict[str, Any], streams: Iterable[str]) -> dict[str, Any]:
    """The tap's catalog with exactly `streams` selected (every property of each)."""
    streams = set(streams)
    catalog = TapMParticle(config=config, validate_config=False).catalog_dict
    for entry in catalog["streams"]:
        for metadata in entry["metadata"]:
            metadata["metadata"]["selected"] = entry["tap_stream_id"] in streams
    return catalog


def run_tap(
    config: dict[str, Any],
    state: dict[str, Any] | None = None,
    streams: Iterable[str] | None = None,
) -> TapOutput:
    """Sync in this process (fast), capturing what the tap writes to stdout.

    `streams` selects exactly those streams; None keeps the default selection.
    """
    catalog = None if streams is None else catalog_selecting(config, streams)
    buffer = io.BytesIO()
    wrapper = io.TextIOWrapper(buffer, encoding="utf-8")
    with contextlib.redirect_stdout(wrapper):
        TapMParticle(config=config, state=state, catalog=catalog).sync_all()
        wrapper.flush()
    return TapOutput(_parse(buffer.getvalue()))


def tap_error(config: dict[str, Any], state: dict[str, Any] | None = None) -> str:
    """Sync in-process where the tap must stop; the message it stops with.

    The console script logs exactly this text as its last ERROR line and exits 1
    (TapMParticle.invoke); tests of that path itself use `run_cli`.
    """
    try:
        run_tap(config, state)
    except Exception as exc:  # noqa: BLE001 - the message is what the test inspects
        message = str(exc)
    else:
        msg = "the tap finished; an error was expected"
        raise AssertionError(msg)
    assert "\n" not in message, f"not one line: {message!r}"
    return message


def run_cli(
    config: dict[str, Any],
    tmp_path: Path,
    state: dict[str, Any] | None = None,
    extra_args: tuple[str, ...] = (),
    env: dict[str, str] | None = None,
) -> TapOutput:
    """Run the console entry point in a subprocess: real exit codes and stderr.

    `env` adds to the environment (e.g. `AWS_MAX_ATTEMPTS`).
    """
    config_file = tmp_path / "tap-config.json"
    config_file.write_text(json.dumps(config))
    args = [sys.executable, "-m", "tap_mparticle", "--config", str(config_file), *extra_args]
    if state is not None:
        state_file = tmp_path / "tap-state.json"
        state_file.write_text(json.dumps(state))
        args += ["--state", str(state_file)]
    environment = {**os.environ, **(env or {})}
    done = subprocess.run(args, capture_output=True, check=False, timeout=300, env=environment)
    return TapOutput(_parse(done.stdout), done.returncode, done.stderr.decode("utf-8", "replace"))


class Drop:
    """A drop on disk plus the config that reaches it through one backend."""

    def __init__(
        self, root: Path, config: dict[str, Any], summary: DropSummary | None, publish: Publish
    ) -> None:
        self.root = root
        self.config = config
        self._summary = summary
        self._publish = publish

    @property
    def summary(self) -> DropSummary:
        assert self._summary is not None, "an empty bucket has no summary"
        return self._summary

    def publish(self, modified_at: dt.datetime | None = None) -> None:
        """Make files added (or rewritten) under `root` since the last publish visible to the tap.

        With `modified_at`, they carry that LastModified (updated, mtime).
        """
        self._publish(modified_at)


def assert_valid(output: TapOutput, stream: str) -> list[dict[str, Any]]:
    """Validate every record of `stream` against its SCHEMA message; return the records."""
    schema = output.schema(stream)["schema"]
    validator = jsonschema.Draft7Validator(schema, format_checker=jsonschema.FormatChecker())
    records = output.records(stream)
    for record in records:
        errors = sorted(validator.iter_errors(record), key=str)
        assert not errors, (record, [e.message for e in errors])
    return records


def audience_keys(records: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """Primary keys of audience records, in order."""
    return [tuple(r[k] for k in AUDIENCE_KEY) for r in records]
