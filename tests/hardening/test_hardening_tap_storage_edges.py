"""The drop's edges: links not followed, names not text bad input, a read that dies one line."""

from __future__ import annotations

import contextlib
import datetime as dt
import http.server
import logging
import os
import socket
import threading
from typing import TYPE_CHECKING, Any

import pytest

from tap_mparticle.aws_session import AwsSettings
from tap_mparticle.storage import S3Storage, walk_folders
from tests.support.cases import batch_line, event
from tests.support.files import error_lines
from tests.support.tap import run_cli, run_tap

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path


def test_symbolic_links_are_never_followed(tmp_path: Path, caplog):
    drop = tmp_path / "drop"
    (drop / "2024-05-01").mkdir(parents=True)
    (drop / "2024-05-01" / "a.txt").write_bytes(batch_line(event("inside")))
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_bytes(batch_line(event("outside")))
    (drop / "loop").symlink_to(drop)  # a loop back to the root
    (drop / "dangling.txt").symlink_to(tmp_path / "nowhere")
    (drop / "out").symlink_to(outside)  # a folder outside bucket_url
    (drop / "out.txt").symlink_to(outside / "secret.txt")
    (drop / "again.txt").symlink_to(drop / "2024-05-01" / "a.txt")  # one file, two keys
    caplog.set_level(logging.WARNING)
    records = run_tap({"bucket_url": str(drop)}).records("events")
    assert [r["event_name"] for r in records] == ["inside"]
    warnings = [r.getMessage() for r in caplog.records if "symbolic link" in r.getMessage()]
    assert len(warnings) == 1


def test_a_linked_bucket_url_itself_is_read(tmp_path: Path):
    real = tmp_path / "real"
    real.mkdir()
    (real / "a.txt").write_bytes(batch_line(event("x")))
    (tmp_path / "link").symlink_to(real)
    records = run_tap({"bucket_url": str(tmp_path / "link")}).records("events")
    assert [r["event_name"] for r in records] == ["x"]


def _drop_with_names_not_text(tmp_path: Path) -> Path:
    """One good file, a file and a folder whose names are not UTF-8."""
    drop = tmp_path / "drop"
    (drop / "2024-05-01").mkdir(parents=True)
    (drop / "2024-05-01" / "a.txt").write_bytes(batch_line(event("inside")))
    folder = os.fsencode(drop)
    bad_file = folder + b"/2024-05-01/App_\xff\xfe_20240501000000000000_00001.txt"
    bad_folder = folder + b"/f\xff"
    os.mkdir(bad_folder)  # noqa: PTH102  (a bytes path: Path takes str)
    for path in (bad_file, bad_folder + b"/b.txt"):
        with open(path, "wb") as handle:  # noqa: PTH123  (a bytes path: Path takes str)
            handle.write(batch_line(event("not-text")))
    return drop


def test_local_names_that_are_not_utf8_are_skipped_and_counted_with_skip(tmp_path: Path, caplog):
    drop = _drop_with_names_not_text(tmp_path)
    caplog.set_level(logging.WARNING)
    config = {"bucket_url": str(drop), "start_date": "2024-01-01T00:00:00Z"}
    out = run_tap({**config, "on_bad_record": "skip"})
    assert [r["event_name"] for r in out.records("events")] == ["inside"]
    warnings = sorted(r.getMessage() for r in caplog.records if "not UTF-8" in r.getMessage())
    assert warnings == [
        (
            f"events: skipped bad input: {drop}/2024-05-01/App_\\xff\\xfe_20240501000000000000_"
            "00001.txt: the file's name is not UTF-8 text, so it cannot be a key and it is "
            "not read; rename it"
        ),
        (
            f"events: skipped bad input: {drop}/f\\xff/: the folder's name is not UTF-8 "
            "text, so it cannot be a key and none of its files is read; rename it"
        ),
    ]
    assert any(
        "events: skipped 2 bad items" in r.getMessage() and "in 2 files" in r.getMessage()
        for r in caplog.records
    )


def test_a_local_name_not_utf8_stops_the_run_with_fail_and_the_bookmark_stays(tmp_path: Path):
    """It used to be a warning only: exit 0, and the bookmark moved past the file."""
    drop = tmp_path / "drop"
    drop.mkdir()
    (drop / "a.txt").write_bytes(batch_line(event("inside")))
    with open(os.fsencode(drop) + b"/bad\xff\xfename.txt", "wb") as handle:  # noqa: PTH123
        handle.write(batch_line(event("not-text")))
    run = run_cli({"bucket_url": str(drop)}, tmp_path)
    assert run.returncode == 1
    assert run.records("events") == []
    assert not any(s.get("bookmarks", {}).get("events") for s in run.states)
    (line,) = error_lines(run.stderr)
    assert line.endswith(
        f"{drop}/bad\\xff\\xfename.txt: the file's name is not UTF-8 text, so it cannot be "
        "a key and it is not read; rename it"
    )
    assert "Traceback" not in run.stderr


def test_a_name_not_utf8_belongs_to_one_shard(tmp_path: Path):
    drop = _drop_with_names_not_text(tmp_path)
    runs = [
        run_cli(
            {"bucket_url": str(drop), "shard_count": 3, "shard_index": i, "on_bad_record": "skip"},
            tmp_path,
        )
        for i in range(3)
    ]
    assert all(run.returncode == 0 for run in runs)
    assert sum(run.stderr.count("skipped bad input") for run in runs) == 2


def test_bucket_keys_that_are_not_text_are_bad_input_in_every_cloud_listing():
    # A JSON listing (GCS) can carry a lone surrogate escape; S3 and Azure share the walk.
    stamp = dt.datetime(2024, 5, 1, tzinfo=dt.timezone.utc)
    listing = {
        "": [
            "bad\ud800/",
            ("a.txt", 5, stamp, "1"),
            ("b\udcff.txt", 5, stamp, "2"),
            "skipped\ud800/",
        ],
        "bad\ud800/": [("bad\ud800/c.txt", 5, stamp, "3")],
    }
    files = list(
        walk_folders("", "", "gs://b/", lambda f: f == "skipped\ud800/", listing.__getitem__)
    )
    assert sorted((f.key, f.uri, f.name_not_text) for f in files) == [
        ("a.txt", "gs://b/a.txt", False),
        ("bad\ud800/", "gs://b/bad\\ud800/", True),
        ("b\udcff.txt", "gs://b/b\\xff.txt", True),
    ]


BODY = b"".join(batch_line(event(f"e{i}")) for i in range(3_000))
CUT = 5_000


class _DyingS3(http.server.BaseHTTPRequestHandler):
    """Lists one object, then serves its first bytes and drops every connection after."""

    protocol_version = "HTTP/1.1"
    #: The object's key, as XML text (S3 writes a newline in a key as `&#10;`).
    key_xml = "a.txt"

    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        if "list-type" not in self.path:
            type(self).reads.append(self.path)
        if "list-type" in self.path:
            xml = (
                '<?xml version="1.0" encoding="UTF-8"?><ListBucketResult><Name>b</Name>'
                "<Prefix></Prefix><KeyCount>1</KeyCount><IsTruncated>false</IsTruncated>"
                f"<Contents><Key>{self.key_xml}</Key><LastModified>2024-05-01T00:00:00.000Z</LastModified>"
                f'<Size>{len(BODY)}</Size><ETag>"x"</ETag></Contents></ListBucketResult>'
            ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/xml")
            self.send_header("Content-Length", str(len(xml)))
            self.end_headers()
            self.wfile.write(xml)
            return
        start = int((self.headers.get("Range") or "bytes=0-").split("=")[1].split("-")[0])
        if start == 0:
            self.send_response(206)
            self.send_header("Content-Length", str(len(BODY)))
            self.send_header("Content-Range", f"bytes 0-{len(BODY) - 1}/{len(BODY)}")
            self.send_header("ETag", '"x"')
            self.end_headers()
            self.wfile.write(BODY[:CUT])
            self.wfile.flush()
        # The endpoint dies mid-read, and stays dead (shutdown: rfile/wfile hold the socket).
        self.close_connection = True
        self.connection.shutdown(socket.SHUT_RDWR)


@contextlib.contextmanager
def dying_endpoint(key_xml: str = "a.txt") -> Iterator[tuple[str, list[str]]]:
    """The endpoint's URL, and the object reads it was asked for (one per attempt)."""
    reads: list[str] = []
    handler = type("_DyingS3Key", (_DyingS3,), {"key_xml": key_xml, "reads": reads})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", reads
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(
    ("key_xml", "shown", "attempts"),
    [
        ("a.txt", "a.txt", "3"),
        ("new&#10;line.txt", "new\\nline.txt", "2"),  # S3 allows a newline
    ],
)
def test_an_endpoint_that_dies_mid_read_is_one_error_line(tmp_path: Path, key_xml, shown, attempts):
    with dying_endpoint(key_xml) as (endpoint, reads):
        config = {
            "bucket_url": "s3://b",
            "aws_endpoint_url": endpoint,
            "aws_access_key_id": "AKIAFAKEFAKEFAKE",
            "aws_secret_access_key": "fake-secret",
            "aws_region": "us-east-1",
            "on_bad_record": "skip",  # a storage failure is not bad input: it still stops
        }
        run = run_cli(config, tmp_path, env={"AWS_MAX_ATTEMPTS": attempts})
    assert run.returncode == 1
    errors = [line for line in run.stderr.splitlines() if "ERROR" in line]
    assert len(errors) == 1, run.stderr
    assert f"cannot read s3://b/{shown}: the read failed part-way" in errors[0]
    # AWS_MAX_ATTEMPTS, which every AWS tool reads, sets the attempts a request
    # (smart_open reopens a dropped read once more on its own); the default's 8
    # are checked on the client below, where their backoff costs no test time.
    assert int(attempts) <= len(reads) <= 2 * int(attempts)
    assert "Traceback" not in run.stderr


@pytest.mark.parametrize(("env", "expected"), [(None, 8), ("5", 5), ("0", 8), ("many", 8)])
def test_s3_requests_get_8_attempts_unless_aws_max_attempts_says(monkeypatch, env, expected):
    # botocore reads AWS_MAX_ATTEMPTS only for a client that names no count; ours does.
    monkeypatch.delenv("AWS_MAX_ATTEMPTS", raising=False)
    if env is not None:
        monkeypatch.setenv("AWS_MAX_ATTEMPTS", env)
    aws = AwsSettings(access_key_id="AKIAFAKE", secret_access_key="x", region="us-east-1")
    client = S3Storage("b", "", aws).client
    assert client.meta.config.retries["total_max_attempts"] == expected
