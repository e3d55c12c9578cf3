import subprocess
import sys
import threading

import pytest

from tap_mparticle.prefetch import CHUNK_SIZE, prefetch
from tap_mparticle.storage import LocalStorage, StorageError


def listed(root):
    storage = LocalStorage(root)
    files = sorted(storage.list_files("", skip_folder=lambda _: False), key=lambda f: f.key)
    return storage, files


def write_files(root, sizes):
    root.mkdir()
    for index, size in enumerate(sizes):
        (root / f"f{index}.txt").write_bytes(bytes([65 + index]) * size)


@pytest.mark.parametrize("workers", [1, 2, 4])
def test_files_arrive_in_order_and_whole(tmp_path, workers):
    sizes = [10, 3 * CHUNK_SIZE + 7, 1, CHUNK_SIZE]
    write_files(tmp_path / "d", sizes)
    storage, files = listed(tmp_path / "d")
    seen = [(file.key, stream.read()) for file, stream in prefetch(storage, files, workers)]
    assert [key for key, _ in seen] == ["f0.txt", "f1.txt", "f2.txt", "f3.txt"]
    assert [data for _, data in seen] == [bytes([65 + i]) * size for i, size in enumerate(sizes)]


def read_all(downloads, into: list) -> None:
    for file, stream in downloads:
        into.append((file.key, stream.read()))


def test_a_file_that_vanished_fails_at_its_turn_after_the_ones_before(tmp_path):
    write_files(tmp_path / "d", [5, 5, 5])
    storage, files = listed(tmp_path / "d")
    (tmp_path / "d" / "f1.txt").unlink()
    read: list = []
    with pytest.raises(StorageError, match=r"f1\.txt"):
        read_all(prefetch(storage, files, 3), read)
    assert read == [("f0.txt", b"AAAAA")]


def download_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("download")]


def test_stopping_early_releases_the_download_threads(tmp_path):
    write_files(tmp_path / "d", [20 * CHUNK_SIZE] * 6)
    storage, files = listed(tmp_path / "d")
    before = set(download_threads())  # other tests' generators may not be collected yet
    downloads = prefetch(storage, files, 4)
    _, stream = next(downloads)
    assert stream.read(10) == b"A" * 10
    ours = set(download_threads()) - before
    assert ours, "the downloads were running"
    downloads.close()  # the consumer gives up with workers blocked on full queues
    assert [thread for thread in ours if thread.is_alive()] == []


ABANDONING_READER = """
import sys
from pathlib import Path
from tap_mparticle.prefetch import prefetch
from tap_mparticle.storage import LocalStorage
storage = LocalStorage(Path(sys.argv[1]))
files = sorted(storage.list_files("", skip_folder=lambda _: False), key=lambda f: f.key)
for _, stream in prefetch(storage, files, 2):
    sys.stdout.write(stream.read(3).decode())
"""


def test_files_abandoned_part_way_do_not_stall_the_next_ones(tmp_path):
    # Each file is far larger than what a worker may buffer; the reader gives up on
    # each after a few bytes, as the skip policy does after a corrupt gzip header.
    # A child process, so a regression fails on the timeout instead of hanging pytest.
    write_files(tmp_path / "d", [20 * CHUNK_SIZE] * 5)
    done = subprocess.run(
        [sys.executable, "-c", ABANDONING_READER, str(tmp_path / "d")],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert done.stdout == "AAABBBCCCDDDEEE"
