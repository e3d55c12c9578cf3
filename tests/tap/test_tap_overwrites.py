"""An object rewritten under its key within the second it was read is read again, once.

S3 and Azure stamp LastModified to the second, so the rewrite carries the stamp the
state already holds for the key; the listing's version (S3 ETag, Azure etag, GCS
generation, a local file's mtime in nanoseconds and size) is what tells the two apart.
A file whose version did not change is never read twice.
"""

from __future__ import annotations

import datetime as dt
import logging
import os

from tap_mparticle.sharding import shard_of
from tests.support.s3 import s3_config, set_s3_last_modified
from tests.support.tap import AUDIENCE_STREAMS, TapOutput, generator, run_tap
from tests.tap.test_tap_sync import batch_line

UTC = dt.timezone.utc
#: Whole seconds: S3 and Azure report LastModified to the second.
SECOND = dt.datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
VERSIONS = "files_read_versions"


def names(out: TapOutput) -> list[str]:
    return sorted(r["event_name"] for r in out.records("events"))


def events_state(out: TapOutput) -> dict:
    return out.final_state["bookmarks"]["events"]


def test_a_rewrite_within_the_second_is_read_again_whole_on_every_storage(empty_drop, caplog):
    day = empty_drop.root / "2024-05-01"
    day.mkdir()
    (day / "a.txt").write_text(batch_line(1, "First"))
    (day / "b.txt").write_text(batch_line(1, "Unchanged"))
    empty_drop.publish(modified_at=SECOND)
    run1 = run_tap(empty_drop.config)
    assert names(run1) == ["First", "Unchanged"]

    # a.txt rewritten in the same second (a longer body), and a new file in it too.
    (day / "a.txt").write_text(batch_line(1, "First") + batch_line(2, "Rewritten"))
    (day / "c.txt").write_text(batch_line(1, "Sibling"))
    empty_drop.publish(modified_at=SECOND)
    with caplog.at_level(logging.WARNING):
        run2 = run_tap(empty_drop.config, state=run1.final_state)
    # The whole of a.txt again (its first line too), c.txt; never b.txt.
    assert names(run2) == ["First", "Rewritten", "Rewritten", "Sibling"]
    stamps = {r["_sdc_source_file"]: r["_sdc_modified_at"] for r in run1.records("events")}
    rewritten = [r for r in run2.records("events") if r["_sdc_source_file"] == "2024-05-01/a.txt"]
    # The same LastModified as when it was first read: only the version changed.
    assert {r["_sdc_modified_at"] for r in rewritten} == {stamps["2024-05-01/a.txt"]}
    assert not [r for r in caplog.records if "NOT read" in r.getMessage()]  # not a late file

    run3 = run_tap(empty_drop.config, state=run2.final_state)
    assert run3.records("events") == []
    assert set(events_state(run3).get(VERSIONS, {})) == {
        "2024-05-01/a.txt",
        "2024-05-01/b.txt",
        "2024-05-01/c.txt",
    }


def test_a_state_written_before_versions_reads_no_file_twice_then_keeps_them(empty_drop):
    """An older state knows no version: a rewrite in that second is not read (as before);
    the next read of the key records one, and from then on rewrites are seen."""
    (empty_drop.root / "a.txt").write_text(batch_line(1, "First"))
    empty_drop.publish(modified_at=SECOND)
    run1 = run_tap(empty_drop.config)
    older = {"bookmarks": {"events": dict(events_state(run1))}}
    older["bookmarks"]["events"].pop(VERSIONS, None)

    (empty_drop.root / "a.txt").write_text(batch_line(2, "SameSecond"))
    empty_drop.publish(modified_at=SECOND)
    run2 = run_tap(empty_drop.config, state=older)
    assert run2.records("events") == []

    later = SECOND + dt.timedelta(seconds=1)
    (empty_drop.root / "a.txt").write_text(batch_line(3, "NextSecond"))
    empty_drop.publish(modified_at=later)
    run3 = run_tap(empty_drop.config, state=run2.final_state)
    assert names(run3) == ["NextSecond"] * 3

    (empty_drop.root / "a.txt").write_text(batch_line(1, "Again"))
    empty_drop.publish(modified_at=later)
    run4 = run_tap(empty_drop.config, state=run3.final_state)
    assert names(run4) == ["Again"]
    assert set(events_state(run4).get(VERSIONS, {})) == {"a.txt"}


def test_each_shard_rereads_only_its_own_rewritten_file(empty_drop):
    keys = [f"f{n}.txt" for n in range(8)]
    for key in keys:
        (empty_drop.root / key).write_text(batch_line(1, key))
    empty_drop.publish(modified_at=SECOND)
    shards = 2
    configs = [{**empty_drop.config, "shard_count": shards, "shard_index": i} for i in (0, 1)]
    first = [run_tap(config) for config in configs]
    assert sorted(name for out in first for name in names(out)) == keys

    (empty_drop.root / "f3.txt").write_text(batch_line(2, "f3 rewritten"))
    empty_drop.publish(modified_at=SECOND)
    second = [
        run_tap(config, state=out.final_state) for config, out in zip(configs, first, strict=True)
    ]
    owner = shard_of("f3.txt", shards)
    assert names(second[owner]) == ["f3 rewritten", "f3 rewritten"]
    assert names(second[1 - owner]) == []
    third = [
        run_tap(config, state=out.final_state) for config, out in zip(configs, second, strict=True)
    ]
    assert [names(out) for out in third] == [[], []]


def test_versions_follow_the_bookmark_and_a_late_file_is_read_once(empty_drop):
    """Versions are kept for the bookmark's second only: state stays small. A late file
    (inside the look-back window) is read once and not again, rewritten or not."""
    (empty_drop.root / "x.txt").write_text(batch_line(1, "X"))
    empty_drop.publish(modified_at=SECOND)
    run1 = run_tap(empty_drop.config)

    (empty_drop.root / "late.txt").write_text(batch_line(1, "Late"))
    empty_drop.publish(modified_at=SECOND - dt.timedelta(minutes=30))
    (empty_drop.root / "x.txt").write_text(batch_line(2, "X2"))
    empty_drop.publish(modified_at=SECOND)
    run2 = run_tap(empty_drop.config, state=run1.final_state)
    assert names(run2) == ["Late", "X2", "X2"]
    # The late file was read at a second before the bookmark's: no version kept.
    assert set(events_state(run2).get(VERSIONS, {})) == {"x.txt"}

    (empty_drop.root / "y.txt").write_text(batch_line(1, "Y"))
    empty_drop.publish(modified_at=SECOND + dt.timedelta(seconds=5))
    run3 = run_tap(empty_drop.config, state=run2.final_state)
    assert names(run3) == ["Y"]
    state = events_state(run3)
    assert set(state.get(VERSIONS, {})) == {"y.txt"}
    assert set(state["files_read"]) == {"x.txt", "late.txt", "y.txt"}
    assert run_tap(empty_drop.config, state=run3.final_state).records("events") == []


def test_an_s3_object_put_again_with_the_same_bytes_keeps_its_etag_and_is_not_reread(
    s3_client, s3_bucket, moto_endpoint
):
    config = s3_config(moto_endpoint, s3_bucket)

    def put(body: str) -> None:
        s3_client.put_object(Bucket=s3_bucket, Key="a.txt", Body=body.encode())
        set_s3_last_modified(s3_bucket, "a.txt", SECOND)

    put(batch_line(1, "First"))
    run1 = run_tap(config)
    put(batch_line(1, "First"))  # a retried upload: same bytes, same ETag
    assert run_tap(config, state=run1.final_state).records("events") == []
    put(batch_line(1, "Other"))  # new bytes, same second
    run2 = run_tap(config, state=run1.final_state)
    assert names(run2) == ["Other"]
    etag = s3_client.head_object(Bucket=s3_bucket, Key="a.txt")["ETag"]
    assert events_state(run2).get(VERSIONS) == {"a.txt": etag.strip('"')}


def test_a_local_file_rewritten_with_its_mtime_kept_to_the_nanosecond(tmp_path):
    """`cp -p` or rsync keep the mtime; the size still tells a new body."""
    root = tmp_path / "drop"
    root.mkdir()
    path = root / "a.txt"
    mtime_ns = int(SECOND.timestamp()) * 10**9 + 123_456_789

    def write(body: str) -> None:
        path.write_text(body)
        os.utime(path, ns=(mtime_ns, mtime_ns))

    write(batch_line(1, "First"))
    config = {"bucket_url": str(root)}
    run1 = run_tap(config)
    write(batch_line(1, "First"))  # copied again, unchanged
    assert run_tap(config, state=run1.final_state).records("events") == []
    write(batch_line(2, "Longer"))
    run2 = run_tap(config, state=run1.final_state)
    assert names(run2) == ["Longer", "Longer"]
    assert events_state(run2).get(VERSIONS) == {"a.txt": f"{mtime_ns}:{path.stat().st_size}"}
    assert run_tap(config, state=run2.final_state).records("events") == []


def test_both_audience_streams_reread_a_feed_rewritten_within_the_second(empty_drop):
    def feed(seed: int, count: int) -> bytes:
        files = generator.partner_files(generator.random.Random(seed), generator.Expected(), count)
        return files["partner/feed-0001.jsonl"]

    path = empty_drop.root / "audiences" / "partner" / "feed.jsonl"
    path.parent.mkdir(parents=True)
    path.write_bytes(feed(5, 2))
    empty_drop.publish(modified_at=SECOND)
    run1 = run_tap(empty_drop.config, streams=AUDIENCE_STREAMS)
    path.write_bytes(feed(6, 3))
    empty_drop.publish(modified_at=SECOND)
    run2 = run_tap(empty_drop.config, state=run1.final_state, streams=AUDIENCE_STREAMS)
    run3 = run_tap(empty_drop.config, state=run2.final_state, streams=AUDIENCE_STREAMS)
    for stream in AUDIENCE_STREAMS:
        assert run1.records(stream), stream
        assert run2.records(stream), stream  # the rewrite, read by each stream
        assert run2.records(stream) != run1.records(stream)
        assert run3.records(stream) == []
