"""A malformed --catalog is one line naming the file; a catalog selecting nothing is warned of."""

from __future__ import annotations

import json
import typing as t

import pytest

from scripts.generate_drop import generate_drop
from tests.support.files import error_lines
from tests.support.tap import catalog_selecting, run_cli

if t.TYPE_CHECKING:
    from pathlib import Path

STREAMS = "audience_memberships, audience_user_attributes, batches, events"


def warning_lines(stderr: str) -> list[str]:
    # The tap's own: not Python's warnings (singer-sdk's end-of-life notice on Python 3.10).
    lines = stderr.splitlines()
    return [line for line in lines if "| WARNING" in line and "| py.warnings" not in line]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("{", "not valid JSON (Expecting property name"),
        ("[]", "must hold a JSON object, not a JSON list"),
        ('{"streams":"x"}', '"streams" must be a list of stream entries, not a JSON str'),
        ("{}", '"streams" must be a list of stream entries, not none'),
        ("", "is empty"),
        ('{"streams":[1]}', "streams[0] must be an object, not a JSON int"),
        ('{"streams":[{"schema":{}}]}', 'streams[0] has no "tap_stream_id" string'),
        (
            '{"streams":[{"tap_stream_id":"events","metadata":{"selected":true}}]}',
            'streams[0] "metadata" must be a list',
        ),
    ],
)
def test_malformed_catalog_is_one_line_naming_the_file(tmp_path: Path, text: str, problem: str):
    drop = tmp_path / "drop"
    generate_drop(drop, events=5, seed=3)
    catalog = tmp_path / "my-catalog.json"
    catalog.write_text(text)
    run = run_cli({"bucket_url": str(drop)}, tmp_path, extra_args=("--catalog", str(catalog)))
    assert run.returncode == 1
    assert run.messages == []
    (line,) = error_lines(run.stderr)
    assert f"catalog file {catalog}: {problem}" in line, run.stderr
    assert "Traceback" not in run.stderr


def _run_with_catalog(tmp_path: Path, catalog: dict[str, t.Any]):
    drop = tmp_path / "drop"
    generate_drop(drop, events=5, seed=3)
    path = tmp_path / "catalog.json"
    path.write_text(json.dumps(catalog))
    return run_cli({"bucket_url": str(drop)}, tmp_path, extra_args=("--catalog", str(path)))


def test_catalog_with_every_stream_deselected_warns(tmp_path: Path):
    run = _run_with_catalog(tmp_path, catalog_selecting({"bucket_url": str(tmp_path)}, []))
    assert run.returncode == 0, run.stderr
    assert [m for m in run.messages if m["type"] == "RECORD"] == []
    (line,) = warning_lines(run.stderr)
    assert (
        f"the catalog selects no stream: nothing is read and no bookmark moves (streams: {STREAMS})"
        in line
    )


def test_empty_catalog_warns(tmp_path: Path):
    run = _run_with_catalog(tmp_path, {"streams": []})
    assert run.returncode == 0, run.stderr
    (line,) = warning_lines(run.stderr)
    assert "the catalog selects no stream" in line


def test_catalog_naming_an_unknown_stream_says_so(tmp_path: Path):
    entry = {
        "tap_stream_id": "evnts",
        "schema": {},
        "metadata": [{"breadcrumb": [], "metadata": {"selected": True}}],
    }
    run = _run_with_catalog(tmp_path, {"streams": [entry]})
    assert run.returncode == 0, run.stderr
    unknown, nothing = warning_lines(run.stderr)
    assert f"catalog stream 'evnts' is not a stream of this tap (streams: {STREAMS})" in unknown
    assert "the catalog selects no stream" in nothing


def test_catalog_selecting_a_stream_gives_no_warning(tmp_path: Path):
    run = _run_with_catalog(tmp_path, catalog_selecting({"bucket_url": str(tmp_path)}, ["events"]))
    assert run.returncode == 0, run.stderr
    assert len([m for m in run.messages if m["type"] == "RECORD"]) == 5
    assert warning_lines(run.stderr) == []


@pytest.mark.parametrize("option", ["--catalog", "--state"])
def test_a_catalog_or_state_that_is_not_utf8_is_one_line(tmp_path: Path, option: str):
    """It was `ERROR | utf-8` and a UnicodeDecodeError traceback."""
    drop = tmp_path / "drop"
    generate_drop(drop, events=5, seed=3)
    given = tmp_path / "given.json"
    given.write_bytes(b'\xff{"streams": []}')
    run = run_cli({"bucket_url": str(drop)}, tmp_path, extra_args=(option, str(given)))
    assert run.returncode == 1
    assert "Traceback" not in run.stderr
    (line,) = error_lines(run.stderr)
    what = "catalog" if option == "--catalog" else "state"
    assert line.endswith(f"{what} file {given}: not UTF-8 text (byte 0)")


def test_a_state_with_a_byte_order_mark_is_read(tmp_path: Path):
    """Windows editors start a saved file with one; JSON readers of that file skip it."""
    drop = tmp_path / "drop"
    generate_drop(drop, events=5, seed=3)
    first = run_cli({"bucket_url": str(drop)}, tmp_path)
    state = [m["value"] for m in first.messages if m["type"] == "STATE"][-1]
    saved = tmp_path / "saved-state.json"
    saved.write_bytes(b"\xef\xbb\xbf" + json.dumps(state).encode())
    again = run_cli({"bucket_url": str(drop)}, tmp_path, extra_args=("--state", str(saved)))
    assert again.returncode == 0, again.stderr
    assert [m for m in again.messages if m["type"] == "RECORD"] == []  # nothing read twice
