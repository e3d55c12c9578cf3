"""JSON documents from a byte stream: one per line, several per line, or one huge line.

Kinesis Firehose writes record payloads back to back with no separator unless the
producer adds a newline, so an audience delivery object can be a single line of
many megabytes holding `{...}{...}{...}`. Other audience files are newline-delimited.
This reader handles all three without holding more than one line (or, for a line
longer than `MAX_LINE`, one document) in memory:

- A normal line is decoded with msgspec in one call: the fast path, which is what a
  500 MB cloud-storage delta file takes, line by line.
- A line msgspec rejects is retried as concatenated documents (`}{`), split with the
  standard library's `raw_decode`, which reports where each document ends.
- A line longer than `MAX_LINE` is never read whole: it is decoded incrementally,
  document by document, refilling a text buffer as documents straddle chunks.

Documents are numbered by the 1-based line they start on; the caller numbers
documents within a line. Pretty-printed (multi-line) documents are not supported:
no mParticle surface writes them.
"""

from __future__ import annotations

import codecs
import gzip
import json
import zlib
from typing import IO, TYPE_CHECKING, Any

import msgspec

from tap_mparticle.parsers import BadInputError

if TYPE_CHECKING:
    from collections.abc import Iterator

#: Longest line read in one piece; longer lines are decoded document by document.
MAX_LINE = 1 << 20
#: Largest single document accepted inside a long line (bounds the text buffer).
MAX_DOCUMENT = 16 << 20
#: A decode error this close to the end of the buffer may just mean "read more".
_INCOMPLETE_MARGIN = 16
_WHITESPACE = " \t\r\n"
_GZIP_ERRORS = (EOFError, zlib.error, gzip.BadGzipFile)

_msgspec_decode = msgspec.json.Decoder().decode
_raw_decode = json.JSONDecoder().raw_decode

Document = tuple[int, Any]


def iter_json_documents(stream: IO[bytes], location: str) -> Iterator[Document | BadInputError]:
    """Yield `(line number, document)` for every JSON document, or an error per bad one.

    Args:
        stream: Decompressed bytes (see `parsers.open_decompressed`).
        location: The file's URI, for error messages.

    Yields:
        `(lineno, value)`, or a `BadInputError` for a line (or the rest of a long
        line) that is not UTF-8 or not JSON.

    Raises:
        BadInputError: The gzip stream is truncated or corrupt, so nothing after
            the named line can be read.
    """
    lineno = 0
    while True:
        line = _readline(stream, location, lineno + 1)
        if not line:
            return
        lineno += 1
        if len(line) == MAX_LINE and not line.endswith(b"\n"):
            yield from _long_line(stream, line, lineno, location)
            continue
        stripped = line.strip()
        if not stripped:
            continue
        try:
            yield lineno, _msgspec_decode(stripped)
        except UnicodeDecodeError:
            # msgspec does not say where; the codec does (only paid on a bad line).
            yield from _concatenated(stripped, lineno, location)
        except msgspec.DecodeError:
            yield from _concatenated(stripped, lineno, location)


def _readline(stream: IO[bytes], location: str, lineno: int) -> bytes:
    try:
        return stream.readline(MAX_LINE)
    except _GZIP_ERRORS as exc:
        reason = f"truncated or corrupt gzip data ({exc})"
        raise BadInputError(location, reason, lineno) from exc


def _not_utf8(location: str, lineno: int, exc: UnicodeDecodeError) -> BadInputError:
    return BadInputError(location, f"bytes that are not UTF-8 at offset {exc.start}", lineno)


def _concatenated(line: bytes, lineno: int, location: str) -> Iterator[Document | BadInputError]:
    """Split one line that is not a single document into back-to-back documents."""
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as exc:
        yield _not_utf8(location, lineno, exc)
        return
    documents: list[Any] = []
    pos = 0
    while pos < len(text):
        try:
            value, pos = _raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            # Emit nothing from a line that is only partly JSON: it is one bad line.
            reason = f"not valid JSON ({exc.msg} at character {exc.pos + 1})"
            yield BadInputError(location, reason, lineno)
            return
        documents.append(value)
        while pos < len(text) and text[pos] in _WHITESPACE:
            pos += 1
    for value in documents:
        yield lineno, value


def _long_line(
    stream: IO[bytes], first: bytes, lineno: int, location: str
) -> Iterator[Document | BadInputError]:
    """Decode a line too long to hold, one document at a time."""
    utf8 = codecs.getincrementaldecoder("utf-8")()
    buffer = ""
    pos = 0
    chunk: bytes | None = first
    done = False
    while True:
        if chunk is not None:
            done = not chunk or chunk.endswith(b"\n")
            try:
                buffer = buffer[pos:] + utf8.decode(chunk, final=done)
            except UnicodeDecodeError as exc:
                yield _not_utf8(location, lineno, exc)
                _skip_line(stream, location, lineno, done=done)
                return
            pos = 0
            chunk = None
        while pos < len(buffer) and buffer[pos] in _WHITESPACE:
            pos += 1
        if pos >= len(buffer):
            if done:
                return
            chunk = _readline(stream, location, lineno)
            continue
        try:
            value, end = _raw_decode(buffer, pos)
        except json.JSONDecodeError as exc:
            incomplete = exc.pos >= len(buffer) - _INCOMPLETE_MARGIN or exc.msg.startswith(
                "Unterminated string"
            )
            if incomplete and not done and len(buffer) - pos < MAX_DOCUMENT:
                chunk = _readline(stream, location, lineno)
                continue
            reason = f"not valid JSON ({exc.msg}); the rest of this line is skipped"
            yield BadInputError(location, reason, lineno)
            _skip_line(stream, location, lineno, done=done)
            return
        yield lineno, value
        pos = end


def _skip_line(stream: IO[bytes], location: str, lineno: int, *, done: bool) -> None:
    while not done:
        chunk = _readline(stream, location, lineno)
        done = not chunk or chunk.endswith(b"\n")
