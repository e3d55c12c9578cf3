import dataclasses
import datetime as dt

from tap_mparticle import cursor as cursor_module
from tap_mparticle.cursor import FileCursor
from tap_mparticle.storage import RemoteFile

T0 = dt.datetime(2024, 5, 1, 12, 0, 0, tzinfo=dt.timezone.utc)
HOUR = dt.timedelta(hours=1)


def remote(key: str, when: dt.datetime, version: str | None = None) -> RemoteFile:
    file = RemoteFile(key=key, uri=f"s3://b/{key}", last_modified=when, size=10)
    return file if version is None else dataclasses.replace(file, version=version)


def new_cursor(state: dict, start: dt.datetime | None = None) -> FileCursor:
    return FileCursor(state, start_date=start, lookback=2 * HOUR)


def test_a_fresh_cursor_reads_everything_after_start_date():
    cursor = new_cursor({}, start=T0)
    assert cursor.should_read(remote("a", T0))
    assert not cursor.should_read(remote("b", T0 - dt.timedelta(seconds=1)))


def test_same_second_file_listed_later_is_read_once():
    state: dict = {}
    cursor = new_cursor(state)
    first = remote("a", T0)
    cursor.mark_read(first)
    # next run: a second file stamped in the same second has appeared
    again = new_cursor(state)
    assert not again.should_read(first)
    sibling = remote("b", T0)
    assert again.should_read(sibling)
    again.mark_read(sibling)
    third = new_cursor(state)
    assert not third.should_read(sibling)
    assert not third.should_read(first)


def test_late_file_inside_window_is_read_but_outside_is_not():
    state: dict = {}
    cursor = new_cursor(state)
    cursor.mark_read(remote("new", T0))
    later = new_cursor(state)
    assert later.should_read(remote("late", T0 - HOUR))
    assert not later.should_read(remote("ancient", T0 - 3 * HOUR))


def test_an_overwritten_object_is_read_again():
    state: dict = {}
    cursor = new_cursor(state)
    cursor.mark_read(remote("a", T0))
    assert new_cursor(state).should_read(remote("a", T0 + dt.timedelta(seconds=5)))


def test_state_keeps_only_keys_inside_the_window():
    state: dict = {}
    cursor = new_cursor(state)
    cursor.mark_read(remote("old", T0))
    cursor.mark_read(remote("mid", T0 + HOUR))
    cursor.mark_read(remote("new", T0 + 3 * HOUR))
    cursor.compact()  # what the stream does before writing STATE
    assert set(state["files_read"]) == {"mid", "new"}
    assert state["replication_key"] == "_sdc_modified_at"
    assert state["replication_key_value"] == "2024-05-01T15:00:00+00:00"


def test_history_is_capped_with_a_floor(monkeypatch):
    monkeypatch.setattr(cursor_module, "MAX_FILES_READ", 3)
    state: dict = {}
    cursor = new_cursor(state)
    for i in range(5):
        cursor.mark_read(remote(f"k{i}", T0 + dt.timedelta(seconds=i)))
    cursor.compact()
    assert len(state["files_read"]) == 3
    assert state["files_read_floor"] == "2024-05-01T12:00:01+00:00"
    reloaded = new_cursor(state)
    # at or before the floor: taken as read, even if unseen
    assert not reloaded.should_read(remote("unseen", T0 + dt.timedelta(seconds=1)))
    assert reloaded.should_read(remote("unseen", T0 + dt.timedelta(seconds=3)))
    assert not reloaded.should_read(remote("k4", T0 + dt.timedelta(seconds=4)))


def test_a_file_stamped_in_the_future_never_moves_the_bookmark_past_the_run(caplog):
    """A local file touched to 2030 moved the bookmark there: every later file, stamped
    before 2030 minus the look-back, was taken as read."""
    state: dict = {}
    now = T0 + 10 * HOUR
    cursor = FileCursor(state, start_date=None, lookback=2 * HOUR, now=now)
    future = remote("touched", dt.datetime(2030, 1, 1, tzinfo=dt.timezone.utc))
    cursor.mark_read(remote("a", T0))
    cursor.mark_read(future)
    assert cursor.bookmark == now
    assert "s3://b/touched is stamped 2030-01-01" in caplog.text
    # The next run reads what lands after, and not the future file again.
    later = FileCursor(state, start_date=None, lookback=2 * HOUR, now=now + HOUR)
    assert later.should_read(remote("b", now + dt.timedelta(minutes=30)))
    assert not later.should_read(future)
    # A file uploaded while the run lists is stamped after its start: no warning.
    caplog.clear()
    later.mark_read(remote("c", now + HOUR + dt.timedelta(seconds=5)))
    assert later.bookmark == now + HOUR
    assert "in the future" not in caplog.text


def test_a_future_bookmark_or_floor_from_an_older_state_is_read_from_the_runs_start(caplog):
    """Written before the bookmark was capped: files after it were taken as read."""
    now = T0 + 10 * HOUR
    state = {
        "replication_key_value": "2030-01-01T00:00:00+00:00",
        "files_read_floor": "2030-01-01T00:00:00+00:00",
    }
    cursor = FileCursor(state, start_date=None, lookback=2 * HOUR, now=now)
    assert cursor.bookmark == now
    assert cursor.should_read(remote("missed", now - HOUR))
    assert "bookmark 2030-01-01T00:00:00+00:00 is in the future" in caplog.text


def test_the_history_cap_never_puts_the_floor_past_the_runs_start(monkeypatch):
    monkeypatch.setattr(cursor_module, "MAX_FILES_READ", 2)
    now = T0 + 10 * HOUR
    state: dict = {}
    cursor = FileCursor(state, start_date=None, lookback=2 * HOUR, now=now)
    for n in range(4):
        cursor.mark_read(remote(f"f{n}", dt.datetime(2030, 1, 1, 0, 0, n, tzinfo=dt.timezone.utc)))
    cursor.compact()
    later = FileCursor(state, start_date=None, lookback=2 * HOUR, now=now + HOUR)
    assert later.should_read(remote("new", now + dt.timedelta(minutes=30)))


def test_a_rewrite_within_the_second_is_read_once_per_version():
    state: dict = {}
    cursor = new_cursor(state)
    cursor.mark_read(remote("a", T0, "v1"))
    cursor.compact()
    again = new_cursor(state)
    assert not again.should_read(remote("a", T0, "v1"))
    assert again.should_read(remote("a", T0, "v2"))
    again.mark_read(remote("a", T0, "v2"))
    again.compact()
    assert state["files_read_versions"] == {"a": "v2"}
    third = new_cursor(state)
    assert not third.should_read(remote("a", T0, "v2"))
    assert third.should_read(remote("a", T0, "v3"))


def test_an_unknown_version_on_either_side_is_taken_as_the_same_file():
    state: dict = {}
    cursor = new_cursor(state)
    cursor.mark_read(remote("known", T0, "v1"))
    cursor.mark_read(remote("unknown", T0))
    cursor.compact()
    assert state["files_read_versions"] == {"known": "v1"}
    again = new_cursor(state)
    assert not again.should_read(remote("known", T0))  # a listing that gives none
    assert not again.should_read(remote("unknown", T0, "v9"))


def test_a_state_from_before_versions_loads_and_reads_no_file_twice():
    stamp = "2024-05-01T12:00:00+00:00"
    state: dict = {"replication_key_value": stamp, "files_read": {"a": stamp}}
    cursor = new_cursor(state)
    assert not cursor.should_read(remote("a", T0, "v1"))
    assert cursor.should_read(remote("b", T0, "v1"))
    cursor.mark_read(remote("b", T0, "v1"))
    cursor.compact()
    assert state["files_read"] == {"a": stamp, "b": stamp}
    assert state["files_read_versions"] == {"b": "v1"}


def test_versions_are_kept_for_the_bookmarks_second_only():
    state: dict = {}
    cursor = new_cursor(state)
    cursor.mark_read(remote("before", T0 - dt.timedelta(seconds=1), "v"))
    cursor.mark_read(remote("at", T0, "v"))
    # A local file's sub-second stamp in the same second.
    cursor.mark_read(remote("within", T0 + dt.timedelta(microseconds=500_000), "v"))
    cursor.compact()
    assert set(state["files_read"]) == {"before", "at", "within"}
    assert set(state["files_read_versions"]) == {"at", "within"}
    later = new_cursor(state)
    # A rewrite of a file whose second has passed keeps today's rule: taken as read.
    assert not later.should_read(remote("before", T0 - dt.timedelta(seconds=1), "v2"))
    later.mark_read(remote("next", T0 + dt.timedelta(seconds=1), "v"))
    later.compact()
    assert state["files_read_versions"] == {"next": "v"}


def test_a_late_file_read_below_the_bookmarks_second_keeps_no_version():
    state: dict = {}
    cursor = new_cursor(state)
    cursor.mark_read(remote("new", T0, "v"))
    cursor.mark_read(remote("late", T0 - HOUR, "v"))
    cursor.compact()
    assert state["files_read_versions"] == {"new": "v"}
    assert not new_cursor(state).should_read(remote("late", T0 - HOUR, "v"))


def test_the_history_cap_drops_the_versions_of_the_keys_it_drops(monkeypatch):
    monkeypatch.setattr(cursor_module, "MAX_FILES_READ", 2)
    state: dict = {}
    cursor = new_cursor(state)
    for key in ("k0", "k1", "k2"):
        cursor.mark_read(remote(key, T0, f"{key}-v"))
    cursor.compact()
    assert set(state["files_read_versions"]) == set(state["files_read"]) == {"k1", "k2"}
