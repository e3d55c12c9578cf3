"""Bytes of a dropped file in, numbered lines and JSON documents out.

Nothing here knows about S3 or the Singer SDK, so every format quirk is tested on
plain byte strings. Compression is detected from the first bytes of the stream,
never from the key: mParticle does not document the extension it gives gzipped
drops, and an `aws s3 sync` or a rename can change it anyway.
"""

from __future__ import annotations

import io
import re
import sys
import zlib
from typing import IO, TYPE_CHECKING, Any

from mparticle_facts.plugin_guards import one_line

if TYPE_CHECKING:
    from collections.abc import Iterator

GZIP_MAGIC = b"\x1f\x8b"
#: Leading bytes of formats a drop can hold by mistake (an export, a `tar cj` of a
#: folder, a lake's files) that the tap does not read: named at once, one bad item
#: for the file, where reading them as text gave a screenful of "not UTF-8" lines.
OTHER_FORMATS = (
    (b"PK\x03\x04", "a zip archive"),
    (b"PK\x05\x06", "an empty zip archive"),
    (b"BZh", "bzip2 data"),
    (b"\xfd7zXZ\x00", "xz data"),
    (b"\x28\xb5\x2f\xfd", "zstd data"),
    (b"\x04\x22\x4d\x18", "lz4 data"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
    (b"PAR1", "a Parquet file"),
    (b"Obj\x01", "an Avro file"),
)
READ_BUFFER_SIZE = 1 << 20
UTF8_BOM = b"\xef\xbb\xbf"
#: Longest line of an events file or audience CSV (a batch or a row); a longer one
#: is bad input, skipped without being held in memory.
MAX_LINE_BYTES = 16 << 20
#: Longest gzip header file name or comment accepted.
MAX_GZIP_HEADER_FIELD = 64 << 10
#: JSON nesting the tap accepts; deeper documents are bad input. msgspec and the
#: standard library stop near it on Python 3.10 and 3.11 (the recursion limit), only
#: near 10,000 levels on 3.12 and later (their C recursion limit): see `nests_too_deep`.
MAX_JSON_DEPTH = 1000
#: Whether the decoders themselves refuse a document much deeper than MAX_JSON_DEPTH.
_DECODERS_STOP_NEAR_LIMIT = sys.version_info < (3, 12)
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_A_BRACKET = bytes(b for b in range(256) if b not in b"[]{}")
_DEFLATE = 8
_FHCRC, _FEXTRA, _FNAME, _FCOMMENT = 2, 4, 8, 16


class BadInputError(Exception):
    """A file, line or document that cannot be read as what the stream expects.

    The message always names where the problem is, so a data engineer can open the
    file at that line; it never carries credentials, and it is one line whatever
    the file's name holds (see `one_line`).
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
        super().__init__(one_line(f"{where}: {reason}"))


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


def other_format(stream: IO[bytes]) -> str | None:
    """What the stream holds, when its first bytes say it is a format the tap does not read.

    Args:
        stream: A decompressed, buffered stream (see `open_decompressed`); only peeked.

    Returns:
        The format in a few words ("bzip2 data"), or None for anything else,
        including a stream whose first bytes cannot be read yet (reading it says why).
    """
    peek = getattr(stream, "peek", None)
    if peek is None:
        return None
    try:
        head: bytes = peek(8)
    except (EOFError, OSError, zlib.error):
        return None
    return next((what for magic, what in OTHER_FORMATS if head.startswith(magic)), None)


class _Gunzip(io.RawIOBase):
    """Streaming gunzip that hands out every intact byte before reporting a problem.

    `gzip.GzipFile` raises as soon as a read reaches a cut or a bad trailer,
    dropping what it decompressed in that same read: one flipped bit in the CRC32
    trailer loses the whole file. Here the header and trailer are parsed by hand
    around a raw-deflate decompressor, so:

    - a truncated stream first yields all it decompressed; only the next read raises;
    - a trailer whose CRC32 or size does not match (or bytes after the last member
      that are not gzip) ends the stream normally, and the problem is kept in
      `trailer_error` for the reader to report as one bad-input item once it has
      consumed every line (see `trailer_error_of`).

    Concatenated members (`cat a.gz b.gz`) are read in turn.
    """

    def __init__(self, source: IO[bytes]) -> None:
        self._source = source
        self._input = b""
        self._decompressor: Any = None  # a zlib decompressor inside a member's body
        self._pending = b""
        self._crc = 0
        self._size = 0
        self._finished = False
        self.trailer_error: str | None = None

    def readable(self) -> bool:
        """Say the stream can be read, as io.BufferedReader asks."""
        return True

    def readinto(self, buffer: Any) -> int:  # noqa: ANN401  (any writable buffer)
        """Decompress into `buffer`, at most its size at a time; 0 at the end."""
        view = memoryview(buffer)
        while not self._pending:
            if self._finished:
                return 0
            if self._decompressor is None:
                self._start_member()
                continue
            self._pending = self._inflate(len(view))
        size = min(len(view), len(self._pending))
        view[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size

    def _fill(self, size: int) -> bool:
        """Have at least `size` bytes of input at hand; False when the source ends first."""
        while len(self._input) < size:
            chunk = self._source.read(READ_BUFFER_SIZE)
            if not chunk:
                return False
            self._input += chunk
        return True

    def _take(self, size: int, what: str) -> bytes:
        if not self._fill(size):
            msg = f"the gzip stream ends inside its {what}"
            raise EOFError(msg)
        taken, self._input = self._input[:size], self._input[size:]
        return taken

    def _take_until_nul(self, what: str) -> None:
        while b"\0" not in self._input:
            if len(self._input) > MAX_GZIP_HEADER_FIELD:
                msg = f"the gzip {what} is longer than {MAX_GZIP_HEADER_FIELD} bytes"
                raise zlib.error(msg)
            if not self._fill(len(self._input) + 1):
                msg = f"the gzip stream ends inside its {what}"
                raise EOFError(msg)
        self._input = self._input[self._input.index(b"\0") + 1 :]

    def _start_member(self) -> None:
        """Parse a member header (RFC 1952), or notice the clean end of the stream."""
        self._input = self._input.lstrip(b"\0")  # padding between members
        while not self._input:
            chunk = self._source.read(READ_BUFFER_SIZE)
            if not chunk:
                self._finished = True
                return
            self._input = chunk.lstrip(b"\0")
        if not self._fill(2) or self._input[:2] != GZIP_MAGIC:
            self.trailer_error = "bytes after the end of the gzip data that are not gzip"
            self._finished = True
            return
        header = self._take(10, "header")
        method, flags = header[2], header[3]
        if method != _DEFLATE:
            msg = f"unsupported gzip compression method {method} (only 8, deflate, exists)"
            raise zlib.error(msg)
        if flags & _FEXTRA:
            length = int.from_bytes(self._take(2, "header"), "little")
            self._take(length, "header")
        if flags & _FNAME:
            self._take_until_nul("file name")
        if flags & _FCOMMENT:
            self._take_until_nul("comment")
        if flags & _FHCRC:
            self._take(2, "header")
        self._decompressor = zlib.decompressobj(wbits=-zlib.MAX_WBITS)
        self._crc = 0
        self._size = 0

    def _inflate(self, limit: int) -> bytes:
        decompressor = self._decompressor
        if decompressor.eof:
            self._end_member()
            return b""
        if decompressor.unconsumed_tail:
            compressed = decompressor.unconsumed_tail
        elif self._input:
            compressed, self._input = self._input, b""
        else:
            compressed = self._source.read(READ_BUFFER_SIZE)
            if not compressed:
                msg = "the gzip stream ends before its end-of-stream marker"
                raise EOFError(msg)
        out: bytes = decompressor.decompress(compressed, limit)
        self._crc = zlib.crc32(out, self._crc)
        self._size += len(out)
        return out

    def _end_member(self) -> None:
        """Check the member's trailer; a mismatch is kept, not raised (see the class)."""
        self._input = self._decompressor.unused_data + self._input
        self._decompressor = None
        if not self._fill(8):
            self.trailer_error = "the gzip stream ends inside its trailer (CRC32 and size)"
            self._finished = True
            return
        trailer, self._input = self._input[:8], self._input[8:]
        crc, size = int.from_bytes(trailer[:4], "little"), int.from_bytes(trailer[4:], "little")
        if crc != self._crc:
            self.trailer_error = "the gzip trailer's CRC32 does not match the data"
        elif size != self._size & 0xFFFFFFFF:
            self.trailer_error = "the gzip trailer's size does not match the data"
        if self.trailer_error:
            self._finished = True


def trailer_error_of(stream: IO[bytes], location: str) -> BadInputError | None:
    """The bad-gzip-trailer problem of a stream read to its end, if it had one.

    Args:
        stream: A stream from `open_decompressed`, read to its end.
        location: The file's URI, for the message.

    Returns:
        One bad-input error (everything decoded before the trailer was intact and
        has been read), or None.
    """
    raw = getattr(stream, "raw", None)
    if isinstance(raw, _Gunzip) and raw.trailer_error:
        reason = f"{raw.trailer_error}; every line before it was read"
        return BadInputError(location, reason)
    return None


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


class OverlongLine(bytes):
    """Stands in for a line longer than `MAX_LINE_BYTES`: its first bytes, the rest skipped.

    Readers turn it into one bad-input item (`overlong`),
    so an endless line costs one buffer of memory and nothing around it.
    """


def iter_lines(stream: IO[bytes], location: str) -> Iterator[tuple[int, bytes]]:
    """Yield `(line number, line)` for every non-blank line, line numbers 1-based.

    Blank lines still count toward the numbering so the numbers match what an
    editor shows. A UTF-8 byte-order mark at the start of line 1 is dropped, and a
    line longer than `MAX_LINE_BYTES` comes out as an `OverlongLine`.

    Args:
        stream: A decompressed binary stream (see `open_decompressed`).
        location: The file's URI, for error messages.

    Yields:
        The line number and the line's bytes without surrounding whitespace.

    Raises:
        BadInputError: The gzip stream is truncated or corrupt; it names the first
            line that could not be read. Also, after the last line, a gzip trailer
            that does not match the (intact, already yielded) data.
    """
    lineno = 0
    try:
        while line := stream.readline(MAX_LINE_BYTES + 1):
            lineno += 1
            if len(line) > MAX_LINE_BYTES and not line.endswith(b"\n"):
                skip_rest_of_line(stream)
                yield lineno, OverlongLine(line[:64])
                continue
            if lineno == 1:
                line = line.removeprefix(UTF8_BOM)
            stripped = line.strip()
            if stripped:
                yield lineno, stripped
    except (EOFError, zlib.error) as exc:
        reason = f"truncated or corrupt gzip data ({exc})"
        raise BadInputError(location, reason, lineno + 1) from exc
    trailer = trailer_error_of(stream, location)
    if trailer is not None:
        raise trailer


def skip_rest_of_line(stream: IO[bytes]) -> None:
    """Read past the end of the current line, one buffer at a time.

    Args:
        stream: A decompressed binary stream in the middle of a line.
    """
    while chunk := stream.readline(READ_BUFFER_SIZE):
        if chunk.endswith(b"\n"):
            return


def overlong(location: str, lineno: int) -> BadInputError:
    """The bad-input error for a line over `MAX_LINE_BYTES`.

    Args:
        location: The file's URI.
        lineno: The line.

    Returns:
        The error, naming the limit.
    """
    reason = f"line longer than {MAX_LINE_BYTES} bytes, the limit; skipped"
    return BadInputError(location, reason, lineno)


def too_deep(location: str, lineno: int) -> BadInputError:
    """The bad-input error for a document nested beyond what the decoders accept.

    Args:
        location: The file's URI.
        lineno: The line.

    Returns:
        The error, naming the limit.
    """
    reason = f"JSON nested deeper than about {MAX_JSON_DEPTH} levels, the limit"
    return BadInputError(location, reason, lineno)


def nests_too_deep(document: bytes) -> bool:
    """Whether a decoded JSON document nests more than MAX_JSON_DEPTH levels.

    So the limit is the same on every Python: on 3.12 and later the decoders take
    documents ten times deeper, which a consumer on 3.10 or 3.11 cannot read back.
    Only a document with more brackets than the limit can be that deep (a count at C
    speed, so ordinary lines cost two counts). Then strings are dropped (a bracket in
    one is no nesting), only brackets kept, and each pass removes the innermost
    pairs: a document is as deep as the passes it takes to empty.

    Args:
        document: The UTF-8 text of one or more valid JSON documents.

    Returns:
        True if deeper than the limit (always False where the decoders stop near it).
    """
    if _DECODERS_STOP_NEAR_LIMIT:
        return False
    if document.count(b"{") + document.count(b"[") <= MAX_JSON_DEPTH:
        return False
    brackets = _JSON_STRING.sub(b"", document).translate(None, _NOT_A_BRACKET)
    brackets = brackets.replace(b"{", b"[").replace(b"}", b"]")
    for _ in range(MAX_JSON_DEPTH):
        brackets = brackets.replace(b"[]", b"")
        if not brackets:
            return False
    return True
