"""Guards both plugins put round their config files, their logs and their stdout.

Not facts about mParticle, but the same in both plugins, so they live once in the
package both share: reading a config or state file that must be a JSON object (one
line when it is not), naming settings no one has, masking secret values (and the
`user:password@` of any URL) in every log line, at any level, DEBUG included, and
saying so when stdout's reader is gone.
"""

from __future__ import annotations

import contextlib
import copy
import difflib
import json
import logging
import os
import re
import sys
from typing import IO, TYPE_CHECKING, Any, NoReturn

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

    from singer_sdk.plugin_base import PluginBase

MASK = "***"
#: Shorter values are not masked: they would hide ordinary words in messages.
MIN_SECRET_LENGTH = 4


def unknown_settings(config: Mapping[str, Any], known: Iterable[str]) -> list[str]:
    """One message per config key no setting has, with the closest setting if any.

    Args:
        config: The config as given.
        known: Every setting name (the plugin's and the SDK's built-in ones).

    Returns:
        Messages such as `unknown setting 'on_bad_recrod' is ignored (did you mean
        'on_bad_record'?)`.
    """
    names = sorted(set(known))
    messages = []
    for key in sorted(set(config) - set(names)):
        close = difflib.get_close_matches(key, names, n=1, cutoff=0.75)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        messages.append(f"unknown setting {key!r} is ignored{hint}")
    return messages


class ConfigFileError(Exception):
    """A config or state file that cannot be used; the message is one line."""


def read_json_object(path: str, what: str) -> dict[str, Any]:
    """Read a JSON file that must hold an object.

    Args:
        path: The file.
        what: What it is, for the message (`config file`, `state file`).

    Returns:
        The object.

    Raises:
        ConfigFileError: It cannot be read, is not JSON, or is not an object.
    """
    try:
        with open(path, encoding="utf-8") as file:  # noqa: PTH123  (a CLI path, str)
            text = file.read()
    except OSError as exc:
        msg = f"{what} {path}: cannot be read ({exc.strerror})"
        raise ConfigFileError(msg) from None
    except UnicodeDecodeError as exc:
        msg = f"{what} {path}: not UTF-8 text (byte {exc.start})"
        raise ConfigFileError(msg) from None
    return parse_json_object(text, f"{what} {path}")


def read_text(stream: IO[str], where: str) -> str:
    """An opened text file's whole text, or one line saying it is not UTF-8.

    Raises:
        ConfigFileError: The bytes are not UTF-8.
    """
    try:
        return stream.read()
    except UnicodeDecodeError as exc:
        msg = f"{where}: not UTF-8 text (byte {exc.start})"
        raise ConfigFileError(msg) from None


def parse_json_object(text: str, where: str) -> dict[str, Any]:
    """Parse text that must be a JSON object.

    Args:
        text: The text.
        where: What it is, for the message.

    Returns:
        The object.

    Raises:
        ConfigFileError: Not JSON or not an object.
    """
    text = text.removeprefix("\ufeff")  # a byte-order mark, as Windows editors write
    try:
        value = json.loads(text) if text.strip() else {}
    except (ValueError, RecursionError) as exc:
        msg = f"{where}: not valid JSON ({exc})"
        raise ConfigFileError(msg) from None
    if not isinstance(value, dict):
        msg = f"{where}: must hold a JSON object, not a JSON {type(value).__name__}"
        raise ConfigFileError(msg)
    return value


def _texts(value: object) -> set[str]:
    """How a value, and each part of it, can appear in a message: as text and as repr."""
    found = {str(value), repr(value)}
    parts: Iterable[object] = ()
    if isinstance(value, dict):
        parts = [*value.keys(), *value.values()]
    elif isinstance(value, (list, tuple)):
        parts = value
    for part in parts:
        found |= _texts(part)
    return found


def redact_config_errors(
    errors: Iterable[str], config: Mapping[str, Any], secrets: Iterable[str]
) -> list[str]:
    """Config validation messages without the values of secret settings.

    The SDK's messages start with the value they refuse (`98765432 is not of type
    'string', 'null' in config['api_key']`): a secret of the wrong type would be
    printed before the log filter that masks secrets exists, and that filter only
    knows text values. The value is replaced by `***`; the setting is still named.

    Args:
        errors: The messages, one per mistake.
        config: The config as given.
        secrets: The names of the secret settings.

    Returns:
        The messages, masked.
    """
    values = [config[name] for name in secrets if config.get(name) is not None]
    texts = sorted(
        {text for value in values for text in _texts(value) if len(text) >= MIN_SECRET_LENGTH},
        key=len,
        reverse=True,
    )
    masked = []
    for error in errors:
        line = error
        for value in values:
            shown = repr(value)
            if line.startswith(shown):  # the usual form, whatever the value's length
                line = MASK + line[len(shown) :]
        for text in texts:
            line = line.replace(text, MASK)
        masked.append(line)
    return masked


#: What would break a one-line message: C0 and C1 controls, DEL, and Unicode's line
#: and paragraph separators (which some log viewers also break lines on).
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def one_line(text: str) -> str:
    r"""`text` with control characters escaped as Python writes them (`\n`, `\x1b`).

    Names from outside (an S3 key, a ZIP member, a Singer stream) may hold a newline;
    printed raw, it splits the one-line error an operator greps for and fakes a
    second log line, and an escape sequence drives the reader's terminal.

    Args:
        text: A message or a name.

    Returns:
        The text, on one line.
    """
    return _CONTROL.sub(lambda match: match.group().encode("unicode_escape").decode(), text)


#: The user:password@ part of a URL (up to its last @ before the path), any scheme.
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s?#'\"\\]*@")


#: A signature or key given as `name=value` in a URL's query or a connection string:
#: Azure's SAS (`sig`), S3's presigned URLs, a connection string's key or SAS.
_SECRET_PARAMETER = re.compile(
    r"(?i)\b(sig|x-amz-signature|x-amz-credential|x-amz-security-token|accountkey"
    r"|sharedaccesssignature)=[^&;:,)\s'\"\\]+"
)


def mask_userinfo(text: str) -> str:
    """`text` with the credentials in any URL masked: `user:password@`, signatures, keys.

    A setting that is no secret can hold one: an endpoint such as
    `http://minio:secret@host:9000`, the SAS URL Azure's portal gives (`?...&sig=...`)
    or a connection string pasted as `azure_endpoint_url`; and libraries quote URLs
    in their errors.

    Args:
        text: A message or a URL.

    Returns:
        The text, each `scheme://user:password@` written `scheme://***@`, and each
        `sig=`, `X-Amz-Signature=`, `X-Amz-Credential=`, `X-Amz-Security-Token=`,
        `AccountKey=` and `SharedAccessSignature=` value written `***`.
    """
    text = _SECRET_PARAMETER.sub(lambda match: f"{match.group(1)}={MASK}", text)
    return _USERINFO.sub(lambda match: f"{match.group(1)}{MASK}@", text)


#: Formats a traceback as any handler would, to look for secrets in it.
_TRACEBACKS = logging.Formatter()


class _GuardLines(logging.Filter):
    """Mask secret values (and URL credentials) in a log record's message (one line) and traceback.

    Stream and field names come from the input, and the SDK prints some of them as
    they are (its sink loggers are named after the stream; its "Schema has changed
    for stream" line quotes it): a name holding a line break would start a forged
    log line, and one holding an escape sequence would drive the reader's terminal.
    """

    def __init__(self, secrets: list[str]) -> None:
        super().__init__()
        self.secrets = secrets

    def filter(self, record: logging.LogRecord) -> bool:
        record.name = one_line(record.name)
        message = record.getMessage()
        guarded = message
        if record.name == "py.warnings":
            # A captured warning ends with the source line that warned (`  warn(...)`),
            # a developer's detail on a line of its own: the warning is the rest.
            head, newline, last = guarded.rstrip("\n").rpartition("\n")
            guarded = head if newline and last.startswith("  ") else guarded.rstrip("\n")
        guarded = mask(guarded, self.secrets)
        # After masking: a secret may hold a line break itself.
        guarded = one_line(mask_userinfo(guarded))
        if guarded != message:
            record.msg, record.args = guarded, None
        if record.exc_info and record.exc_info[1] is not None:
            # The SDK logs an uncaught exception with its traceback, whose last line
            # may quote a request (a header holding a token). One that holds a secret
            # is kept as masked text only: the JSON formatter would print the live one.
            text = record.exc_text or _TRACEBACKS.formatException(record.exc_info)
            guarded = mask_userinfo(mask(text, self.secrets))
            if guarded != text:
                record.exc_info, record.exc_text = None, guarded
        return True


def secret_texts(secrets: Iterable[object]) -> list[str]:
    r"""The secrets worth masking (empty and very short ones skipped), longest first.

    Each also as errors quote it escaped (a pasted line break as `\n`: http.client's
    `Invalid header value b'...'`, a JSON echo). Longest first, so a secret that
    contains another is masked whole.
    """
    long_enough = (str(s) for s in secrets if s and len(str(s)) >= MIN_SECRET_LENGTH)
    return sorted({f for s in long_enough for f in _escaped_forms(s)}, key=len, reverse=True)


def _escaped_forms(secret: str) -> set[str]:
    """`secret` and the escaped spellings of it that Python, JSON and HTTP errors print."""
    forms = {
        secret,
        one_line(secret),
        repr(secret)[1:-1],
        json.dumps(secret)[1:-1],
        json.dumps(secret, ensure_ascii=False)[1:-1],
        repr(secret.encode())[2:-1],
    }
    with contextlib.suppress(UnicodeEncodeError):  # http.client sends Latin-1 header bytes
        forms.add(repr(secret.encode("latin-1"))[2:-1])
    return forms


def mask(text: str, secrets: Iterable[str]) -> str:
    """`text` with each of `secrets` (as `secret_texts` gives them) written `***`."""
    for secret in secrets:
        text = text.replace(secret, MASK)
    return text


def guard_logs(secrets: Iterable[object], chatty_loggers: Sequence[str]) -> None:
    """Cap chatty loggers at INFO; in every handler's output, mask `secrets`, one line each.

    Their children too: a logging config (SINGER_SDK_LOG_CONFIG) that sets
    `botocore.endpoint` to DEBUG overrides the parent's level, and printed an assumed
    role's temporary credentials, which no setting holds to mask.

    Args:
        secrets: The configured secret values (empty and short ones are skipped).
        chatty_loggers: Libraries whose DEBUG output echoes requests (and so secrets).
    """
    below = tuple(f"{name}." for name in chatty_loggers)
    for name in [
        *chatty_loggers,
        *(n for n in list(logging.root.manager.loggerDict) if n.startswith(below)),
    ]:
        logger = logging.getLogger(name)
        if logger.getEffectiveLevel() < logging.INFO:
            logger.setLevel(logging.INFO)
    values = secret_texts(secrets)
    handlers = list(logging.getLogger().handlers)
    for name in logging.root.manager.loggerDict:
        handlers.extend(getattr(logging.getLogger(name), "handlers", []))
    for handler in handlers:
        existing = next((f for f in handler.filters if isinstance(f, _GuardLines)), None)
        if existing is None:
            handler.addFilter(_GuardLines(values))
        else:
            existing.secrets = sorted({*existing.secrets, *values}, key=len, reverse=True)


def exit_stdout_closed(logger: logging.Logger, resume: str) -> NoReturn:
    """Stop with one line because stdout's reader is gone; exit code 1.

    Click turns the BrokenPipeError into a silent exit 1 (its convention for a
    command piped into `head`); for a Singer plugin it means the other end of the
    pipeline stopped, which deserves a word.

    Args:
        logger: The plugin's logger (stderr is still open).
        resume: What the next run starts from, for the message.
    """
    logger.error(
        "stdout was closed (whatever reads this plugin's output stopped); stopping. %s",
        resume,
    )
    # Nothing more can reach stdout: keep the interpreter's last flush quiet.
    sys.stdout = open(os.devnull, "w")  # noqa: PTH123, SIM115 - until the process exits
    sys.exit(1)


def settings_schema(plugin: type[PluginBase]) -> dict[str, Any]:
    """A plugin's config JSON Schema with the SDK's built-in settings added, on a copy.

    `append_builtin_config` adds to the schema it is given, and the plugin's own is a
    class attribute every instance shares.
    """
    schema = copy.deepcopy(plugin.config_jsonschema)
    plugin.append_builtin_config(schema)
    return schema
