"""The audience streams end to end, over a local directory and over moto's S3 server."""

from __future__ import annotations

import datetime as dt
import logging
from collections import Counter
from typing import TYPE_CHECKING, Any

import pytest
from singer_sdk.exceptions import ConfigValidationError

from scripts.generate_drop import generate_drop
from tap_mparticle.tap import TapMParticle
from tests.support.files import set_mtime
from tests.support.s3 import STORAGES, s3_config, serve_drop, upload_tree
from tests.support.tap import (
    AUDIENCE_STREAMS,
    assert_valid,
    audience_keys,
    generator,
    run_tap,
)

if TYPE_CHECKING:
    from pathlib import Path

MEMBERSHIPS, ATTRIBUTES = AUDIENCE_STREAMS


class AudienceDrop:
    """Audience files (and an events drop beside them) served from one backend."""

    def __init__(self, root: Path, config: dict[str, Any], expected: dict[str, int], publish):
        self.root = root
        self.config = config
        self.expected = expected
        self.publish = publish


@pytest.fixture(params=STORAGES)
def audience_drop(request, tmp_path) -> AudienceDrop:
    root = tmp_path / "drop"
    expected = generator.generate(root / "audiences")
    config, publish = serve_drop(request, root)
    return AudienceDrop(root, config, expected, publish)


def test_every_shape_is_read_and_every_record_matches_its_schema(audience_drop):
    out = run_tap(audience_drop.config)
    memberships = assert_valid(out, MEMBERSHIPS)
    attributes = assert_valid(out, ATTRIBUTES)
    assert len(memberships) == audience_drop.expected[MEMBERSHIPS]
    assert len(attributes) == audience_drop.expected[ATTRIBUTES]
    assert set(Counter(r["source_format"] for r in memberships)) == {
        "download",
        "firehose",
        "cloud_storage",
        "partner_feed",
    }
    assert {r["action"] for r in memberships} == {"add", "remove"}
    assert {r["action"] for r in attributes} == {"upsert", "delete"}
    assert any(r["mpid"] is not None and r["mpid"] < 0 for r in memberships)
    assert any(r["variant"] == "Variant B" for r in memberships)
    assert any("é" in (r["identity_value"] or "") for r in memberships)
    assert any(r["audience_name"] == "Café-Lovers" for r in memberships)
    for stream, records in ((MEMBERSHIPS, memberships), (ATTRIBUTES, attributes)):
        assert out.schema(stream)["key_properties"] == [
            "_sdc_source_file",
            "_sdc_source_member",
            "_sdc_source_lineno",
            "_sdc_record_index",
        ]
        assert len(set(audience_keys(records))) == len(records), f"{stream} keys are not unique"
    # With the defaults the events stream reads the root but not audiences/.
    assert out.records("events") == []


def test_a_rerun_emits_nothing_and_keys_are_stable_across_rereads(audience_drop):
    first = run_tap(audience_drop.config)
    again = run_tap(audience_drop.config, state=first.final_state)
    for stream in AUDIENCE_STREAMS:
        assert again.records(stream) == []
        assert again.final_state["bookmarks"][stream] == first.final_state["bookmarks"][stream]
    reread = run_tap(audience_drop.config)  # no state: everything again, same keys and rows
    for stream in AUDIENCE_STREAMS:
        assert sorted(audience_keys(reread.records(stream))) == sorted(
            audience_keys(first.records(stream))
        )
        assert reread.records(stream) == first.records(stream)


def test_a_file_added_later_is_read_once_by_each_stream(audience_drop):
    first = run_tap(audience_drop.config)
    extra = generator.partner_files(generator.random.Random(5), generator.Expected(), 2)[
        "partner/feed-0001.jsonl"
    ]
    (audience_drop.root / "audiences" / "partner" / "late.jsonl").write_bytes(extra)
    audience_drop.publish()
    second = run_tap(audience_drop.config, state=first.final_state)
    for stream in AUDIENCE_STREAMS:
        assert second.records(stream)
        assert {r["_sdc_source_file"].rsplit("/", 1)[-1] for r in second.records(stream)} == {
            "late.jsonl"
        }
    third = run_tap(audience_drop.config, state=second.final_state)
    assert all(third.records(stream) == [] for stream in AUDIENCE_STREAMS)


def test_each_file_is_parsed_once_for_both_streams(audience_drop, caplog):
    with caplog.at_level(logging.INFO):
        out = run_tap(audience_drop.config)
    assert out.records(ATTRIBUTES)
    handed_over = [m for m in caplog.messages if "already parsed by" in m]
    assert handed_over == [
        f"{ATTRIBUTES}: 11 files already parsed by {MEMBERSHIPS} in this run, 0 to read"
    ]


def test_selecting_one_stream_then_both_is_exact(audience_drop):
    only_attributes = run_tap(audience_drop.config, streams={ATTRIBUTES})
    assert only_attributes.records(MEMBERSHIPS) == []
    assert len(only_attributes.records(ATTRIBUTES)) == audience_drop.expected[ATTRIBUTES]
    assert (
        MEMBERSHIPS not in only_attributes.final_state["bookmarks"]
        or not (only_attributes.final_state["bookmarks"][MEMBERSHIPS])
    )
    both = run_tap(audience_drop.config, only_attributes.final_state, AUDIENCE_STREAMS)
    # The memberships stream never read these files, so it reads them all now;
    # the attributes stream already did and emits nothing again.
    assert len(both.records(MEMBERSHIPS)) == audience_drop.expected[MEMBERSHIPS]
    assert both.records(ATTRIBUTES) == []
    only_memberships = run_tap(audience_drop.config, streams={MEMBERSHIPS})
    assert len(only_memberships.records(MEMBERSHIPS)) == audience_drop.expected[MEMBERSHIPS]
    assert only_memberships.records(ATTRIBUTES) == []


def test_identity_types_setting_filters_memberships(audience_drop):
    config = {**audience_drop.config, "identity_types": ["CustomerId", "email"]}
    out = run_tap(config)
    memberships = assert_valid(out, MEMBERSHIPS)
    assert memberships
    assert {r["identity_type"] for r in memberships} == {"customer_id", "email"}
    unfiltered = run_tap(audience_drop.config).records(MEMBERSHIPS)
    everything = dict(zip(audience_keys(unfiltered), unfiltered, strict=True))
    for key, record in zip(audience_keys(memberships), memberships, strict=True):
        assert everything[key] == record  # the same row, under the same key
    assert len(out.records(ATTRIBUTES)) == audience_drop.expected[ATTRIBUTES]


def test_bad_identity_types_setting_is_a_config_error(tmp_path):
    config = {"bucket_url": str(tmp_path), "identity_types": ["email", "emial"]}
    with pytest.raises(ConfigValidationError, match="identity_types has unknown names 'emial'"):
        TapMParticle(config=config)


def test_events_and_audiences_side_by_side_each_read_their_own(tmp_path):
    root = tmp_path / "drop"
    summary = generate_drop(root, events=200, seed=3)
    expected = generator.generate(root / "audiences", scale=3)
    out = run_tap({"bucket_url": str(root)})
    assert len(out.records("events")) == summary.events
    assert len(out.records(MEMBERSHIPS)) == expected[MEMBERSHIPS]
    assert all("/audiences/" not in r["_sdc_source_uri"] for r in out.records("events"))
    assert all("/audiences/" in r["_sdc_source_uri"] for r in out.records(MEMBERSHIPS))


def test_custom_audiences_prefix(tmp_path):
    expected = generator.generate(tmp_path / "mp" / "aud", scale=2)
    out = run_tap(
        {"bucket_url": str(tmp_path), "audiences_prefix": "/mp/aud", "events_prefix": "events"}
    )
    assert len(out.records(MEMBERSHIPS)) == expected[MEMBERSHIPS]


def test_late_file_inside_the_lookback_is_read_exactly_once(tmp_path):
    audiences = tmp_path / "audiences"
    generator.generate(audiences, scale=2)
    base = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.timezone.utc)
    for index, path in enumerate(sorted(p for p in audiences.rglob("*") if p.is_file())):
        set_mtime(path, base + dt.timedelta(seconds=index))
    config = {"bucket_url": str(tmp_path), "lookback_window_minutes": 60}
    first = run_tap(config)
    late_data = generator.partner_files(generator.random.Random(9), generator.Expected(), 2)
    late = audiences / "partner" / "late.jsonl"
    late.write_bytes(late_data["partner/feed-0001.jsonl"])
    set_mtime(late, base - dt.timedelta(minutes=30))  # older than the bookmark, inside the window
    too_late = audiences / "partner" / "too-late.jsonl"
    too_late.write_bytes(late_data["partner/feed-0001.jsonl"])
    set_mtime(too_late, base - dt.timedelta(minutes=90))  # before the window: taken as read
    second = run_tap(config, state=first.final_state)
    for stream in AUDIENCE_STREAMS:
        files = {r["_sdc_source_file"] for r in second.records(stream)}
        assert files == {"partner/late.jsonl"}, stream
    third = run_tap(config, state=second.final_state)
    assert all(third.records(stream) == [] for stream in AUDIENCE_STREAMS)
    # Same key, new LastModified (an overwritten object): read again, once.
    set_mtime(late, base + dt.timedelta(minutes=1))
    fourth = run_tap(config, state=third.final_state)
    assert {r["_sdc_source_uri"] for r in fourth.records(MEMBERSHIPS)} == {str(late.resolve())}
    assert run_tap(config, state=fourth.final_state).records(MEMBERSHIPS) == []


@pytest.mark.parametrize("backend", ["local", "s3"])
def test_unzipped_download_without_a_manifest_is_read_with_a_warning(
    tmp_path, caplog, request, backend
):
    files = generator.download_files(generator.random.Random(2), generator.Expected(), rows=3)
    folder = tmp_path / "audiences" / "dl"
    folder.mkdir(parents=True)
    for name, data in files.items():
        if name.endswith(".csv"):
            (folder / name).write_bytes(data)
    config: dict[str, Any] = {"bucket_url": str(tmp_path)}
    if backend == "s3":
        bucket = request.getfixturevalue("s3_bucket")
        upload_tree(request.getfixturevalue("s3_client"), bucket, tmp_path)
        config = s3_config(request.getfixturevalue("moto_endpoint"), bucket)
    with caplog.at_level(logging.WARNING):
        out = run_tap(config)
    assert len(out.records(MEMBERSHIPS)) == 6
    assert sum("no readable manifest.json" in m for m in caplog.messages) == 1


def test_sample_audiences_for_the_demo(tmp_path):
    generator.write_sample_audiences(tmp_path)
    out = run_tap({"bucket_url": str(tmp_path)})
    assert_valid(out, MEMBERSHIPS)
    assert out.records(MEMBERSHIPS)
    assert out.records(ATTRIBUTES)
    again = tmp_path / "again"
    generator.write_sample_audiences(again)
    for path in (tmp_path / "audiences").rglob("*"):
        if path.is_file():
            twin = again / "audiences" / path.relative_to(tmp_path / "audiences")
            assert twin.read_bytes() == path.read_bytes(), "the generator is deterministic"


def test_streams_whose_bookmarks_differ_replay_some_files_and_read_others(audience_drop):
    first = run_tap(audience_drop.config, streams={MEMBERSHIPS})
    extra = generator.partner_files(generator.random.Random(5), generator.Expected(), 2)
    (audience_drop.root / "audiences" / "partner" / "new.jsonl").write_bytes(
        extra["partner/feed-0001.jsonl"]
    )
    audience_drop.publish()
    both = run_tap(audience_drop.config, first.final_state, AUDIENCE_STREAMS)
    # Memberships had read everything but the new file; attributes had read nothing:
    # it gets the new file from the memberships pass and reads the other 11 itself.
    assert {r["_sdc_source_file"].rsplit("/", 1)[-1] for r in both.records(MEMBERSHIPS)} == {
        "new.jsonl"
    }
    attributes = assert_valid(both, ATTRIBUTES)
    new = [r for r in attributes if r["_sdc_source_file"].endswith("/new.jsonl")]
    assert new
    assert len(attributes) - len(new) == audience_drop.expected[ATTRIBUTES]
    assert len(set(audience_keys(attributes))) == len(attributes)
    files_in_order = [r["_sdc_modified_at"] for r in attributes]
    assert files_in_order == sorted(files_in_order), "files are read in LastModified order"
    again = run_tap(audience_drop.config, both.final_state, AUDIENCE_STREAMS)
    assert all(again.records(stream) == [] for stream in AUDIENCE_STREAMS)


def test_streams_that_stream_maps_remove_are_not_read_and_keep_their_bookmarks(tmp_path, caplog):
    """The README's pipe drops the audience streams with `null` maps: their files stay unread."""
    root = tmp_path / "drop"
    summary = generate_drop(root, events=60, seed=4)
    expected = generator.generate(root / "audiences", scale=2)
    maps = {MEMBERSHIPS: None, ATTRIBUTES: None}
    with caplog.at_level(logging.INFO):
        first = run_tap({"bucket_url": str(root), "stream_maps": maps})
    assert len(first.records("events")) == summary.events
    assert first.records(MEMBERSHIPS) == first.records(ATTRIBUTES) == []
    assert not set(first.final_state["bookmarks"]) & set(AUDIENCE_STREAMS)
    assert f"Stream '{MEMBERSHIPS}' is not read: stream_maps removes it" in caplog.text
    # Without the maps, the next run reads every audience file, and no event again.
    second = run_tap({"bucket_url": str(root)}, first.final_state)
    assert second.records("events") == []
    assert len(second.records(MEMBERSHIPS)) == expected[MEMBERSHIPS]
    assert len(second.records(ATTRIBUTES)) == expected[ATTRIBUTES]
    # `__else__: null` removes every stream the maps do not name, the same way.
    only_events = run_tap(
        {"bucket_url": str(root), "stream_maps": {"events": {}, "__else__": None}}
    )
    assert len(only_events.records("events")) == summary.events
    assert set(only_events.final_state["bookmarks"]) == {"events"}
