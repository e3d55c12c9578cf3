"""Download the next files while the current one is parsed, in bounded memory.

Parsing runs on the main thread; downloads are network waits. Overlapping them is
most of the speed of reading many small files from S3. Each file in flight gets a
thread and a bounded queue of chunks, so memory is `workers x MAX_CHUNKS x
CHUNK_SIZE` however large the files are: a worker whose queue is full simply waits,
and gives up when its file is closed early or the whole prefetch is stopped.
"""

from __future__ import annotations

import io
import queue
import threading
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    from tap_mparticle.storage import RemoteFile, Storage

CHUNK_SIZE = 1 << 20
MAX_CHUNKS = 8
_POLL_SECONDS = 0.5
# A worker sees the cancel within _POLL_SECONDS unless it is inside a storage read.
_JOIN_SECONDS = 30.0
_END = b""


class _Cancelled(Exception):  # noqa: N818  (control flow, not an error the user sees)
    """Raised inside a worker when the reader has gone away."""


class ChunkPipe(io.RawIOBase):
    """A read end for chunks a worker thread puts in; raises the worker's error in turn."""

    def __init__(self, cancelled: threading.Event) -> None:
        """Create an empty pipe.

        Args:
            cancelled: Set when the consumer stops early, so the worker gives up.
        """
        self._queue: queue.Queue[bytes | BaseException] = queue.Queue(maxsize=MAX_CHUNKS)
        self._cancelled = cancelled
        # Set when the reader closes this pipe before its end (a file abandoned after
        # a bad line): its worker must stop too, or it waits on a full queue forever
        # and, once every worker is stuck so, the next file never arrives.
        self._abandoned = threading.Event()
        self._pending = memoryview(b"")
        self._done = False

    def put(self, item: bytes | BaseException) -> None:
        """Hand a chunk (or the end marker, or an error) to the reader; wait while full.

        Args:
            item: A chunk, `b""` for the end, or the exception that stopped the download.

        Raises:
            _Cancelled: The reader has stopped.
        """
        while True:
            if self._cancelled.is_set() or self._abandoned.is_set():
                raise _Cancelled
            try:
                self._queue.put(item, timeout=_POLL_SECONDS)
            except queue.Full:
                continue
            return

    def close(self) -> None:
        """Stop this file's download, whether or not it was read to the end."""
        self._abandoned.set()
        super().close()

    def readable(self) -> bool:
        """Say the pipe can be read, as io.BufferedReader asks."""
        return True

    def readinto(self, buffer: Any) -> int:  # noqa: ANN401  (any writable buffer)
        """Fill `buffer` from the next chunk, waiting for the worker; 0 means the end."""
        while not self._pending:
            if self._done:
                return 0
            item = self._queue.get()
            if isinstance(item, BaseException):
                self._done = True
                raise item
            if item == _END:
                self._done = True
                return 0
            self._pending = memoryview(item)
        view = memoryview(buffer)
        size = min(len(view), len(self._pending))
        view[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size


class _Failed(io.RawIOBase):
    """A file that could not be opened: its first read raises why."""

    def __init__(self, error: Exception) -> None:
        self._error = error

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:  # noqa: ANN401, ARG002  (any writable buffer)
        raise self._error


def _download(storage: Storage, file: RemoteFile, pipe: ChunkPipe) -> None:
    try:
        with storage.open(file) as source:
            while chunk := source.read(CHUNK_SIZE):
                pipe.put(chunk)
        pipe.put(_END)
    except _Cancelled:
        return
    except Exception as exc:  # noqa: BLE001  (handed to the reader, which raises it)
        try:
            pipe.put(exc)
        except _Cancelled:
            return


def prefetch(
    storage: Storage,
    files: Sequence[RemoteFile],
    workers: int,
) -> Iterator[tuple[RemoteFile, IO[bytes]]]:
    """Yield each file with a stream of its raw bytes, in order, downloading ahead.

    Args:
        storage: Where the files are.
        files: The files, in the order they must be read.
        workers: Files downloaded at once; 0 or 1 reads each file only when reached.

    Yields:
        `(file, stream)`; the stream is closed, and its download stopped if still
        running, when the next file is requested.
    """
    if workers <= 1:
        for file in files:
            try:
                stream = storage.open(file)
            except Exception as exc:  # noqa: BLE001  (raised by the stream, as a worker's is)
                # Raised from the stream's first read, inside the reading of this file,
                # where the stream writes STATE for the files before it: raised here, the
                # next run read them all again (Azure and S3 fetch at open).
                stream = io.BufferedReader(_Failed(exc))
            with stream:
                yield file, stream
        return

    cancelled = threading.Event()
    pipes: dict[int, ChunkPipe] = {}
    threads: list[threading.Thread] = []
    try:
        started = 0
        for index, file in enumerate(files):
            while started < len(files) and started < index + workers:
                pipe = ChunkPipe(cancelled)
                pipes[started] = pipe
                # Daemon threads: a run that fails part-way must still be able to exit,
                # even with downloads waiting on full queues nobody will read.
                thread = threading.Thread(
                    target=_download,
                    args=(storage, files[started], pipe),
                    name=f"download_{started}",
                    daemon=True,
                )
                thread.start()
                threads.append(thread)
                started += 1
            reader = io.BufferedReader(pipes.pop(index), buffer_size=CHUNK_SIZE)
            yield file, reader
            reader.close()
            threads = [thread for thread in threads if thread.is_alive()]
    finally:
        cancelled.set()
        for thread in threads:
            thread.join(timeout=_JOIN_SECONDS)
