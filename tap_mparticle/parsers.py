"""Bytes of a dropped file in, numbered lines and JSON documents out.

Nothing here knows about S3 or the Singer SDK, so every format quirk is tested on
plain byte strings. Compression is detected from the first bytes of the stream,
never from the key: mParticle does not document the extension it gives gzipped
drops, and an `aws s3 sync` or a rename can change it anyway.
"""

from __future__ import annotations

import io
import zlib
from typing import IO, TYPE_CHECKING, Any

import msgspec

if TYPE_CHECKING:
    from collections.abc import Iterator

GZIP_MAGIC = b"\x1f\x8b"
READ_BUFFER_SIZE = 1 << 20

_decode_json = msgspec.json.Decoder().decode


class BadInputError(Exception):
    """A file, line or document that cannot be read as what the stream expects.

    The message always names where the problem is, so a data engineer can open the
    file at that line; it never carries credentials.
    """

    def __init__(self, location: str, reason: str, lineno: int | None = None) -> None:
        """Remember where the problem is and why.

        Args:
            location: The file's URI or path.
            reason: What is wrong, in a few words.
            lineno: The 1-based line number, when the problem is in one line.
        """
        self.location = location
        self.reason = reason
        self.lineno = lineno
        where = f"{location}:{lineno}" if lineno is not None else location
        super().__init__(f"{where}: {reason}")


def open_decompressed(raw: IO[bytes]) -> IO[bytes]:
    """Wrap a binary stream so reads return the file's content, gunzipped if need be.

    Args:
        raw: A readable binary stream positioned at the file's first byte.

    Returns:
        A buffered stream of the decompressed bytes. Nothing is read ahead beyond
        the buffer, so memory stays bounded whatever the file size.
    """
    buffered = (
        raw
        if isinstance(raw, io.BufferedReader)
        else io.BufferedReader(_Readable(raw), buffer_size=READ_BUFFER_SIZE)
    )
    if buffered.peek(2)[:2] == GZIP_MAGIC:
        return io.BufferedReader(_Gunzip(buffered), buffer_size=READ_BUFFER_SIZE)
    return buffered


class _Gunzip(io.RawIOBase):
    """Streaming gunzip that hands out every intact byte before reporting truncation.

    `gzip.GzipFile` raises as soon as a read reaches the cut, dropping the data
    decompressed in that same read, so the intact lines just before the cut would
    be lost. Here a truncated stream first yields all it decompressed, and only the
    next read raises. Concatenated members (`cat a.gz b.gz`) are read in turn.
    """

    def __init__(self, source: IO[bytes]) -> None:
        self._source = source
        self._decompressor = zlib.decompressobj(wbits=31)
        self._pending = b""
        self._finished = False  # the source ended cleanly after a whole member

    def readable(self) -> bool:
        """Say the stream can be read, as io.BufferedReader asks."""
        return True

    def readinto(self, buffer: Any) -> int:  # noqa: ANN401  (any writable buffer)
        """Decompress into `buffer`, at most its size at a time; 0 at the end."""
        view = memoryview(buffer)
        while not self._pending:
            if self._finished:
                return 0
            if self._decompressor.unconsumed_tail:
                compressed = self._decompressor.unconsumed_tail
            else:
                compressed = self._next_input()
                if not compressed:
                    return 0
            self._pending = self._decompressor.decompress(compressed, len(view))
        size = min(len(view), len(self._pending))
        view[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size

    def _next_input(self) -> bytes:
        """The next compressed bytes, starting a new member where one ended; b"" at the end."""
        if self._decompressor.eof:
            leftover = self._decompressor.unused_data.lstrip(b"\0")  # padding between members
            self._decompressor = zlib.decompressobj(wbits=31)
            if leftover:
                return leftover
            chunk = self._source.read(READ_BUFFER_SIZE)
            if not chunk:
                self._finished = True  # reads past the end keep answering "end"
                return b""
            return chunk
        chunk = self._source.read(READ_BUFFER_SIZE)
        if not chunk:
            msg = "the gzip stream ends before its end-of-stream marker"
            raise EOFError(msg)
        return chunk


class _Readable(io.RawIOBase):
    """Adapt any object with `read(n)` (a botocore body, a smart_open reader) to RawIOBase."""

    def __init__(self, source: IO[bytes]) -> None:
        self._source = source

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:  # noqa: ANN401  (a writable buffer of any kind)
        view = memoryview(buffer)
        chunk = self._source.read(len(view))
        size = len(chunk)
        view[:size] = chunk
        return size

    def close(self) -> None:
        self._source.close()
        super().close()


def iter_lines(stream: IO[bytes], location: str) -> Iterator[tuple[int, bytes]]:
    """Yield `(line number, line)` for every non-blank line, line numbers 1-based.

    Blank lines still count toward the numbering so the numbers match what an
    editor shows.

    Args:
        stream: A decompressed binary stream (see `open_decompressed`).
        location: The file's URI, for error messages.

    Yields:
        The line number and the line's bytes without surrounding whitespace.

    Raises:
        BadInputError: The gzip stream is truncated or corrupt; it names the first
            line that could not be read.
    """
    lineno = 0
    try:
        for lineno, line in enumerate(stream, start=1):
            stripped = line.strip()
            if stripped:
                yield lineno, stripped
    except (EOFError, zlib.error) as exc:
        reason = f"truncated or corrupt gzip data ({exc})"
        raise BadInputError(location, reason, lineno + 1) from exc


def decode_json(line: bytes, location: str, lineno: int) -> Any:  # noqa: ANN401  (any JSON value)
    """Decode one JSON document, naming the file and line when it is not valid JSON or UTF-8.

    Args:
        line: The bytes of the document.
        location: The file's URI, for error messages.
        lineno: The line the document is on.

    Returns:
        The decoded value (numbers stay as written: ints as int, floats as float).

    Raises:
        BadInputError: The bytes are not UTF-8 or not a JSON document.
    """
    try:
        return _decode_json(line)
    except UnicodeDecodeError as exc:
        msg = f"bytes that are not UTF-8 at offset {exc.start}"
        raise BadInputError(location, msg, lineno) from None
    except msgspec.DecodeError as exc:
        raise BadInputError(location, f"not valid JSON ({exc})", lineno) from None
