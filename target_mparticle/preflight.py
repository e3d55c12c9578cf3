"""Checks that run before any record is read, and the guards on what the target prints.

Every config mistake is one line naming the setting and what is wrong, with exit
code 1, before the first request: an output path that cannot be written (instead
of a bare errno on the first dead letter), `dead_letter` with no path, a config
file that is not a JSON object, a misspelt setting (warned about, by name, with the
closest real one). Malformed Singer input is one line naming the input line.

Secrets: the api_key and api_secret are masked in every handler's output, at
every level, and the HTTP libraries' loggers are capped at INFO.
"""

from __future__ import annotations

import collections
import sys
import typing as t

import msgspec
from singer_sdk.contrib.msgspec import MsgSpecReader
from singer_sdk.exceptions import (
    ConfigValidationError,
    InvalidJSONSchema,
    MissingKeyPropertiesError,
    RecordsWithoutSchemaException,
)
from singer_sdk.singerlib.exceptions import InvalidInputLine

from mparticle_facts.plugin_guards import (
    ConfigFileError,
    read_json_object,
    settings_schema,
    unknown_settings,
)
from mparticle_facts.plugin_guards import guard_logs as _guard_logs
from target_mparticle import lenient_json

if t.TYPE_CHECKING:
    import logging
    from collections.abc import Container, Iterable, Iterator, Mapping

    import click
    from singer_sdk import Target

CHATTY_LOGGERS = ("urllib3", "requests")


#: What `exit_with_one_line` reports: config mistakes and malformed Singer input
#: (the SDK raises a plain ValueError for an unknown message type, and
#: InvalidJSONSchema for a SCHEMA message whose schema is not JSON Schema).
_MALFORMED = (
    InvalidInputLine,
    RecordsWithoutSchemaException,
    MissingKeyPropertiesError,
    InvalidJSONSchema,
)
#: Why a BATCH message is refused (the target does not declare the `batch` capability).
NO_BATCH_MESSAGES = (
    "BATCH messages are not supported: configure the tap without batch_config, so that "
    "its records arrive as RECORD messages"
)
INPUT_ERRORS = (ConfigValidationError, *_MALFORMED, ValueError)


def exit_with_one_line(exc: Exception, lines: NumberedLines, logger: logging.Logger) -> t.NoReturn:
    """Log a config or input failure as one line per problem and exit 1.

    Args:
        exc: One of `INPUT_ERRORS`; any other ValueError is re-raised as it is.
        lines: The input, for the line number.
        logger: The target's logger.

    Raises:
        SystemExit: Always, with code 1.
        ValueError: A ValueError that is not about the input.
    """
    if isinstance(exc, ConfigValidationError):
        for error in exc.errors or [str(exc)]:
            logger.error("%s", error)
    elif isinstance(exc, _MALFORMED) or str(exc).startswith("Unknown message type"):
        # One line: some of the SDK's messages run over two (MissingKeyPropertiesError).
        message = " ".join(part.strip() for part in str(exc).splitlines())
        at, names = lines.left_out
        # Of the fields left out, those the message lists (as key properties: the
        # record keys it lists no longer hold them).
        names = tuple(name for name in names if repr(name) in message)
        if isinstance(exc, MissingKeyPropertiesError) and names and at == lines.lineno:
            fields = ", ".join(map(repr, names))
            message += f" (this line's {fields} held NaN or Infinity, which JSON has no number for)"
        logger.error("Malformed Singer input at line %d: %s", lines.lineno, bounded(message))
    else:
        raise exc
    sys.exit(1)


def check_config_files(ctx: click.Context, paths: Iterable[str], logger: logging.Logger) -> None:
    """Exit 1 with one line when a config file is unreadable, not JSON or not an object."""
    try:
        for path in paths:
            if path != "ENV":
                read_json_object(path, "config file")
    except ConfigFileError as exc:
        logger.error("%s", exc)  # noqa: TRY400 - one line is the whole story
        ctx.exit(1)


def warn_unknown_settings(target: Target, known: Iterable[str] = ()) -> None:
    """Warn, by name, about each config key that is no setting (ours, the SDK's, `known`).

    `known` are settings the target does not offer but checks itself (the SDK's
    `load_method`): called unknown, they would get a warning beside their error.
    """
    schema = settings_schema(type(target))
    for message in unknown_settings(target.config, [*schema["properties"], *known]):
        target.logger.warning("%s", message)


class SingerInputReader(MsgSpecReader):
    """The SDK's msgspec reader, minus its ERROR-with-traceback that quotes the whole line.

    A malformed line is reported once, by `exit_with_one_line`, with its number and
    its first characters.
    """

    _decode = msgspec.json.Decoder().decode
    #: Called when reading stops on an error, before it propagates (the target closes
    #: its connections and files there).
    on_failure: t.Callable[[], None] | None = None
    #: Called with how many NaN/Infinity values a line had left out (lenient_json).
    on_not_numbers: t.Callable[[int], None] | None = None
    #: The input being read, told which of a line's fields were left out as NaN.
    _lines: object = None

    @staticmethod
    def assert_line_requires(line_dict: dict[str, t.Any], requires: set[str]) -> None:
        """The SDK's check that a message has the `requires` keys, quoting 80 characters.

        The SDK's version quotes the whole message: a 30 MB RECORD without a `stream`
        was a 30 MB error line. The target and the SDK both call it through the reader.

        Raises:
            InvalidInputLine: Naming the missing keys and quoting the message's start.
        """
        if not requires.issubset(line_dict):
            missing = ", ".join(sorted(requires - set(line_dict)))
            msg = f"Line is missing required {missing} key(s): {quoted(line_dict)}"
            raise InvalidInputLine(msg)

    def deserialize_json(self, line: str | bytes) -> dict[str, t.Any]:
        """Decode one Singer message, given as text or (from stdin) as UTF-8 bytes.

        Raises:
            InvalidInputLine: Not JSON, or not UTF-8; the message quotes its first 80
                characters.
        """
        try:
            value: dict[str, t.Any] = self._decode(line)
        except msgspec.DecodeError as exc:
            # Valid to Python's json (1e400, NaN): see lenient_json.
            decoded = lenient_json.decode(line, range_error="out of range" in str(exc))
            if decoded is None:
                raise self._not_json(line) from None
            value = decoded.message
            if decoded.left_out and self.on_not_numbers is not None:
                self.on_not_numbers(decoded.left_out)
            if decoded.top_level and isinstance(self._lines, NumberedLines):
                self._lines.left_out = (self._lines.lineno, decoded.top_level)
        except (UnicodeDecodeError, RecursionError):
            raise self._not_json(line) from None
        return value

    @staticmethod
    def _not_json(line: str | bytes) -> InvalidInputLine:
        """The one-line error for a line that is not a JSON message."""
        text = line.decode("utf-8", "replace") if isinstance(line, bytes) else line
        return InvalidInputLine(f"not a JSON message: {text[:80].strip()!r}")

    def process_lines(
        self,
        file_input: t.IO[str] | None,
        callbacks: dict[str, t.Callable[[dict[str, t.Any]], None]],
    ) -> collections.Counter[str]:
        """The SDK's loop over the input, without two calls per line that do nothing.

        A message that is an object with a `type`, as every good one is, skips
        `assert_line_requires` (an object without one still gets it, and its error);
        a line that is JSON but no object is refused in one line (the SDK's check
        raised TypeError on a number, true, false or null). The decoding method is
        looked up once. A `type` that is not text is an unknown message type (the
        SDK's loop raised TypeError on a list or an object), and a BATCH message is
        refused in one line (`NO_BATCH_MESSAGES`; the SDK would hand its files' raw
        rows to sinks that expect converted records), and so are a SCHEMA or a STATE
        the SDK would crash on (`check_schema_message`, `check_state`). Otherwise
        line for line the SDK's. When reading stops on an error, `on_failure` is
        called before the error goes on.
        """
        callbacks = {**callbacks, "BATCH": _refuse_batch}
        for message_type, check in (("SCHEMA", check_schema_message), ("STATE", check_state)):
            if message_type in callbacks:
                callbacks[message_type] = _checked(check, callbacks[message_type])
        stats: dict[str, int] = collections.defaultdict(int)
        try:
            self._read(file_input or self.default_input, callbacks, stats)
        except Exception:
            if self.on_failure is not None:
                self.on_failure()
            raise
        return collections.Counter(**stats)

    def _read(
        self,
        lines: t.IO[str],
        callbacks: dict[str, t.Callable[[dict[str, t.Any]], None]],
        stats: dict[str, int],
    ) -> None:
        deserialize = self.deserialize_json
        self._lines = lines
        for line in lines:
            self._current_message = line
            line_dict = deserialize(line)
            if type(line_dict) is not dict:
                msg = f"not a Singer message (a JSON object): {quoted(line_dict)}"
                raise InvalidInputLine(msg)
            if "type" not in line_dict:
                self.assert_line_requires(line_dict, requires={"type"})
            record_type = line_dict["type"]
            try:
                callback = callbacks.get(record_type)
            except TypeError:  # a list or an object as the type: unknown, not a crash
                callback = None
            if callback:
                callback(line_dict)
            else:
                self._process_unknown_message(line_dict)
            stats[record_type] += 1


#: How much of a hostile value an error line quotes.
QUOTE_CHARS = 80
#: How long a malformed-input message may run: a few quoted values and the words around them.
MESSAGE_CHARS = 6 * QUOTE_CHARS


def quoted(value: object) -> str:
    """The start of a hostile value for an error line: its repr, cut at 80 characters."""
    return repr(value)[:QUOTE_CHARS]


def bounded(message: str) -> str:
    """`message`, cut at `MESSAGE_CHARS` characters, saying how much was left out.

    The SDK words some malformed-input errors itself and quotes what it read whole: a
    stream name, a message type, every key of a record missing its key properties. A
    30 MB name made a 30 MB log line; the start of it names the problem as well.
    """
    if len(message) <= MESSAGE_CHARS:
        return message
    return f"{message[:MESSAGE_CHARS]}... ({len(message) - MESSAGE_CHARS:,} more characters)"


def _refuse_batch(_message: dict[str, t.Any]) -> None:
    raise InvalidInputLine(NO_BATCH_MESSAGES)


def _checked(
    check: t.Callable[[dict[str, t.Any]], None],
    process: t.Callable[[dict[str, t.Any]], None],
) -> t.Callable[[dict[str, t.Any]], None]:
    """`process`, after `check` (which raises InvalidInputLine on a malformed message)."""

    def checked(message: dict[str, t.Any]) -> None:
        check(message)
        process(message)

    return checked


def check_schema_message(message: Mapping[str, t.Any]) -> None:
    """Refuse a SCHEMA the SDK would crash on, or one that names no fields.

    A non-text `stream`, a `schema` or `properties` that is no object, `key_properties`
    that are no list of names: the SDK let them through, then failed with a TypeError
    or an AttributeError setting up the sink. A missing field is left to the SDK.

    Raises:
        InvalidInputLine: Naming the field and quoting the start of its value.
    """
    _check_fields(message, "SCHEMA", (("stream", str, "text"), ("schema", dict, "an object")))
    keys = message.get("key_properties")
    if keys is not None and (type(keys) is not list or any(type(k) is not str for k in keys)):
        msg = f"a SCHEMA message's 'key_properties' is not a list of field names: {quoted(keys)}"
        raise InvalidInputLine(msg)
    schema = message.get("schema")
    if isinstance(schema, dict) and not isinstance(schema.get("properties", {}), dict):
        msg = f"a SCHEMA message's 'properties' is not an object: {quoted(schema['properties'])}"
        raise InvalidInputLine(msg)
    if isinstance(schema, dict) and "properties" not in schema:  # as the SDK's tests require
        msg = (
            f"the SCHEMA of stream {quoted(message.get('stream'))} names no fields ('properties'), "
            "as schemaless taps send it: declare them (Meltano's `schema` extra on the tap)"
        )
        raise InvalidInputLine(msg)


#: How deep a STATE's value may nest (objects and lists): far beyond any tap's
#: bookmarks, far below the depth at which copying or comparing it runs out of stack.
MAX_STATE_DEPTH = 100


def check_state(message: Mapping[str, t.Any]) -> None:
    """Refuse a STATE whose value nests deeper than `MAX_STATE_DEPTH`.

    The reader accepts JSON nested up to about 1,000 levels; the SDK deep-copies
    each STATE when it writes it, which from some 450 levels ran out of stack at the
    end of the input, long after the line was read.

    Raises:
        InvalidInputLine: Saying how deep a STATE may nest.
    """
    if nests_deeper_than(message.get("value"), MAX_STATE_DEPTH):
        msg = f"a STATE message's 'value' is nested more than {MAX_STATE_DEPTH} levels deep"
        raise InvalidInputLine(msg)


def nests_deeper_than(value: object, limit: int) -> bool:
    """Whether objects and lists in `value` nest more than `limit` levels (no recursion)."""
    if not isinstance(value, (dict, list)):
        return False
    stack: list[tuple[dict[t.Any, t.Any] | list[t.Any], int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return True
        children = node.values() if isinstance(node, dict) else node
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return False


def check_record_message(message: Mapping[str, t.Any]) -> None:
    """Refuse a RECORD whose `stream` is not text or whose `record` is not an object.

    A missing field is left to the SDK, which names it; this catches the present
    ones the SDK would crash on (a list as a stream name, a record that is a list).

    Raises:
        InvalidInputLine: Naming the field and quoting the start of its value.
    """
    _check_fields(message, "RECORD", (("stream", str, "text"), ("record", dict, "an object")))


def check_activate_version_message(message: dict[str, t.Any], streams: Container[object]) -> None:
    """Refuse an ACTIVATE_VERSION the SDK would crash on, before it does.

    The target ignores these messages (with the SDK's warning), but the SDK looks up
    their `stream` and `version` first: a missing one, a stream that is not text, or
    a stream no SCHEMA described before (as for a RECORD, an error: the tap and the
    target disagree on what is being loaded) raised a bare KeyError or TypeError.

    Args:
        message: The ACTIVATE_VERSION message.
        streams: The stream names SCHEMA messages described so far.

    Raises:
        InvalidInputLine: Naming the missing field or the stream.
    """
    SingerInputReader.assert_line_requires(message, requires={"stream", "version"})
    _check_fields(message, "ACTIVATE_VERSION", (("stream", str, "text"),))
    if message["stream"] not in streams:
        msg = (
            f"an ACTIVATE_VERSION message for stream {quoted(message['stream'])}, which no "
            "SCHEMA message described before it"
        )
        raise InvalidInputLine(msg)


def _check_fields(
    message: Mapping[str, t.Any],
    message_type: str,
    fields: Iterable[tuple[str, type, str]],
) -> None:
    """Refuse the first of `fields` (name, type, what it must be) present with another type.

    Raises:
        InvalidInputLine: Naming the message type and the field, quoting its value.
    """
    for field, kind, what in fields:
        if field in message and not isinstance(message[field], kind):
            article = "an" if message_type.startswith("A") else "a"
            msg = (
                f"{article} {message_type} message's {field!r} is not {what}: "
                f"{quoted(message[field])}"
            )
            raise InvalidInputLine(msg)


#: Bytes read from stdin at a time. The default buffer is the file system's block
#: (4 KiB): every refill releases the interpreter lock, and while requests are in
#: flight a sender thread takes it each time, so a 150 MB input cost some 40,000
#: thread switches, about a tenth of the run's CPU. A pipe still hands over at most
#: what it holds (64 KiB by default) per read.
STDIN_READ_BYTES = 1 << 20


def stdin_bytes() -> t.IO[bytes]:
    """Standard input as bytes, read in `STDIN_READ_BYTES` chunks.

    Falls back to `sys.stdin.buffer` when stdin is not a file descriptor (a test
    runner's in-memory stream).
    """
    try:
        fd = sys.stdin.fileno()
    except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation is both
        return sys.stdin.buffer
    return open(fd, "rb", buffering=STDIN_READ_BYTES, closefd=False)


class NumberedLines:
    """Iterate over input lines, remembering the number of the last one handed out.

    The target reads stdin as bytes: msgspec decodes UTF-8 bytes directly, and
    text mode's decoding of every line first cost as much again as reading it (a
    line that is not UTF-8 is then one malformed-input error, not a traceback).
    """

    def __init__(self, source: Iterable[str] | Iterable[bytes]) -> None:
        """Wrap `source` (stdin's bytes or any iterable of lines)."""
        self._source = source
        self.lineno = 0
        #: The last line whose record had top-level fields left out as NaN/Infinity,
        #: and their names, for the error should one of them be a key property.
        self.left_out: tuple[int, tuple[str, ...]] = (0, ())

    def __iter__(self) -> Iterator[str | bytes]:
        """Hand out the lines, counting them."""
        for line in self._source:
            self.lineno += 1
            yield line


def guard_logs(secrets: Iterable[object]) -> None:
    """Cap urllib3's DEBUG output at INFO and mask `secrets` in every log line.

    Args:
        secrets: The configured secret values.
    """
    _guard_logs(secrets, CHATTY_LOGGERS)
