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

A bad document inside a line of back-to-back documents costs only itself, on a
short line and a long one alike: reading resumes at the next `}{` boundary.
Garbage between documents (`{...}xx{...}`, `{...},{...}`) is one bad item, and
reading resumes at the next `{`. A
UTF-8 byte-order mark before the first document is dropped, and a gzip trailer
that does not match (see `parsers`) is one bad-input item after the last document.

Documents are numbered by the 1-based line they start on; the caller numbers
documents within a line. Pretty-printed (multi-line) documents are not supported:
no mParticle surface writes them.
"""

from __future__ import annotations

import codecs
import gzip
import json
import re
import sys
import zlib
from typing import IO, TYPE_CHECKING, Any

import msgspec

from tap_mparticle.parsers import (
    UTF8_BOM,
    BadInputError,
    nests_too_deep,
    other_format,
    too_deep,
    trailer_error_of,
)

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
#: Where the next document of a line may start after a bad one: a broken document
#: may hold nested objects, so only a `{` right after a `}` is taken as the next one.
_NEXT_DOCUMENT = re.compile(r"\}\s*(?=\{)")
#: Where it may start after garbage that is no document at all: any `{`.
_NEXT_BRACE = re.compile(r"(?=\{)")
#: A `\\uD800`-`\\uDFFF` escape: the only way a surrogate reaches decoded text (strict
#: UTF-8 decoding refuses encoded ones), so text without one needs no further check.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")
_SURROGATE = re.compile("[\ud800-\udfff]")
_SURROGATE_REASON = "a string with a lone surrogate escape, which is not Unicode text"

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
    found = other_format(stream)
    if found is not None:
        reason = f"{found}, not JSON lines: only gzip is decompressed; the file was not read"
        raise BadInputError(location, reason, 1)
    lineno = 0
    while True:
        line = _readline(stream, location, lineno + 1)
        if not line:
            break
        lineno += 1
        long_line = len(line) >= MAX_LINE and not line.endswith(b"\n")
        if lineno == 1:
            line = line.removeprefix(UTF8_BOM)
        if long_line:
            yield from _long_line(stream, line, lineno, location)
            continue
        stripped = line.strip()
        if not stripped:
            continue
        try:
            document = _msgspec_decode(stripped)
        except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
            # Several documents, a bad one among them, a 64-bit overflow or deep
            # nesting: the slower decoder tells which part is which (only paid here).
            yield from _concatenated(stripped, lineno, location)
            continue
        yield too_deep(location, lineno) if nests_too_deep(stripped) else (lineno, document)
    trailer = trailer_error_of(stream, location)
    if trailer is not None:
        yield trailer


def _readline(stream: IO[bytes], location: str, lineno: int) -> bytes:
    try:
        return stream.readline(MAX_LINE)
    except _GZIP_ERRORS as exc:
        reason = f"truncated or corrupt gzip data ({exc})"
        raise BadInputError(location, reason, lineno) from exc


def _not_utf8(location: str, lineno: int, exc: UnicodeDecodeError) -> BadInputError:
    return BadInputError(location, f"bytes that are not UTF-8 at offset {exc.start}", lineno)


def _concatenated(line: bytes, lineno: int, location: str) -> Iterator[Document | BadInputError]:
    """Split one line that is not a single document into back-to-back documents.

    A bad document yields one error and reading resumes at the next `}{`, so the
    documents around it are kept.
    """
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as exc:
        yield _not_utf8(location, lineno, exc)
        return
    escaped = _SURROGATE_ESCAPE.search(text) is not None
    pos = _skip_whitespace(text, 0)
    while pos < len(text):
        try:
            value, end = _raw_decode(text, pos)
        except (ValueError, RecursionError) as exc:  # JSONDecodeError is a ValueError
            yield _bad_document(location, lineno, exc, pos)
            boundary = _resync_pattern(text, pos).search(text, pos + 1)
            if boundary is None:
                return
            pos = boundary.end()
            continue
        yield _checked(lineno, value, location, text[pos:end], escaped=escaped)
        pos = _skip_whitespace(text, end)


def _resync_pattern(text: str, pos: int) -> re.Pattern[str]:
    """What finds the next document after a bad item starting at `pos`.

    A bad item that starts with `{` is a broken document, whose nested objects must
    not be read as documents of their own: the next one starts after a `}`. Any
    other bad item is garbage between documents (`{A}xx{B}`), which holds no
    document, so the next `{` starts one; searching for `}{` instead would skip B.
    """
    return _NEXT_DOCUMENT if text.startswith("{", pos) else _NEXT_BRACE


def _skip_whitespace(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in _WHITESPACE:
        pos += 1
    return pos


def _checked(
    lineno: int, value: object, location: str, text: str, *, escaped: bool
) -> Document | BadInputError:
    r"""The document, or an error if it nests too deep or a string in it holds a lone surrogate.

    msgspec refuses `"\ud800"` but the standard-library decoder accepts it, and a
    string with a lone surrogate is not Unicode text: writing it as UTF-8 fails
    far from here, with a traceback. Paired surrogates decode to one character,
    so only escapes that stay surrogates after decoding are refused. `escaped`
    says the raw text holds a surrogate escape at all; without one (the usual
    case) the value is not walked. `text` is the document's own text, for the
    depth check (`nests_too_deep`: the decoders take deeper documents on 3.12+).
    """
    if nests_too_deep(text.encode()):
        return too_deep(location, lineno)
    if escaped and _holds_surrogate(value):
        return BadInputError(location, _SURROGATE_REASON, lineno)
    return lineno, value


def _holds_surrogate(value: object) -> bool:
    """Whether any string or key in `value` holds a surrogate (iterative: depth is free)."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            if _SURROGATE.search(item):
                return True
        elif isinstance(item, dict):
            pending.extend(item)
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return False


def _bad_document(location: str, lineno: int, exc: Exception, pos: int) -> BadInputError:
    if isinstance(exc, RecursionError):
        return too_deep(location, lineno)
    if isinstance(exc, json.JSONDecodeError):
        reason = f"not valid JSON ({exc.msg} at character {exc.pos + 1})"
    else:
        # The only other ValueError: an integer longer than the interpreter converts.
        # Python's own message words it differently on 3.10 and 3.11+, so it is ours.
        limit = sys.get_int_max_str_digits()
        reason = (
            f"not valid JSON (an integer of more than {limit} digits, the limit) "
            f"in the document at character {pos + 1}"
        )
    return BadInputError(location, reason, lineno)


def _long_line(  # noqa: C901  (one loop: refill, decode, resynchronise)
    stream: IO[bytes], first: bytes, lineno: int, location: str
) -> Iterator[Document | BadInputError]:
    """Decode a line too long to hold, one document at a time."""
    utf8 = codecs.getincrementaldecoder("utf-8")()
    buffer = ""
    pos = 0
    chunk: bytes | None = first
    done = False
    resync: re.Pattern[str] | None = None  # while skipping a bad item: what ends it
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
        if resync is not None:
            boundary = resync.search(buffer, pos)
            if boundary is None:
                if done:
                    return
                # Keep a trailing `}` (and blanks) in case `{` starts the next chunk.
                last = buffer.rfind("}", pos) if resync is _NEXT_DOCUMENT else -1
                pos = last if last >= 0 else len(buffer)
                chunk = _readline(stream, location, lineno)
                continue
            pos, resync = boundary.end(), None
        pos = _skip_whitespace(buffer, pos)
        if pos >= len(buffer):
            if done:
                return
            chunk = _readline(stream, location, lineno)
            continue
        try:
            value, end = _raw_decode(buffer, pos)
        except (ValueError, RecursionError) as exc:
            incomplete = isinstance(exc, json.JSONDecodeError) and (
                exc.pos >= len(buffer) - _INCOMPLETE_MARGIN
                or exc.msg.startswith("Unterminated string")
            )
            if incomplete and not done and len(buffer) - pos < MAX_DOCUMENT:
                chunk = _readline(stream, location, lineno)
                continue
            if incomplete and not done:
                reason = f"a document longer than {MAX_DOCUMENT} characters, the limit"
                yield BadInputError(location, reason, lineno)
            else:
                yield _bad_document(location, lineno, exc, pos)
            resync = _resync_pattern(buffer, pos)
            pos += 1
            continue
        escaped = _SURROGATE_ESCAPE.search(buffer, pos, end) is not None
        yield _checked(lineno, value, location, buffer[pos:end], escaped=escaped)
        pos = end


def _skip_line(stream: IO[bytes], location: str, lineno: int, *, done: bool) -> None:
    while not done:
        chunk = _readline(stream, location, lineno)
        done = not chunk or chunk.endswith(b"\n")
