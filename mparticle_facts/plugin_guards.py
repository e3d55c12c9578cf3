"""Guards both plugins put round their config files, their logs and their stdout.

Not facts about mParticle, but the same in both plugins, so they live once in the
package both share: reading a config or state file that must be a JSON object (one
line when it is not), naming settings no one has, masking secret values (and the
`user:password@` of any URL) in every log line, at any level, DEBUG included, and
saying so when stdout's reader is gone.
"""

from __future__ import annotations

import copy
import difflib
import json
import logging
import math
import os
import pathlib
import re
import sys
from typing import IO, TYPE_CHECKING, Any, NoReturn

from dotenv import dotenv_values
from dotenv.parser import parse_stream
from singer_sdk.exceptions import ConfigValidationError

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

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


def mask_userinfo(text: str) -> str:
    """`text` with the credentials in any URL's `user:password@` part masked.

    An endpoint setting such as `http://minio:secret@host:9000` carries a secret
    that no secret setting names, and libraries quote the URL in their errors.

    Args:
        text: A message or a URL.

    Returns:
        The text, each `scheme://user:password@` written `scheme://***@`.
    """
    return _USERINFO.sub(lambda match: f"{match.group(1)}{MASK}@", text)


class _GuardLines(logging.Filter):
    """Mask secret values (and URL credentials) in a log record's final message, one line.

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
        return True


def secret_texts(secrets: Iterable[object]) -> list[str]:
    """The secrets worth masking (empty and very short ones skipped), longest first.

    Longest first, so a secret that contains another is masked whole.
    """
    return sorted(
        {str(s) for s in secrets if s and len(str(s)) >= MIN_SECRET_LENGTH}, key=len, reverse=True
    )


def mask(text: str, secrets: Iterable[str]) -> str:
    """`text` with each of `secrets` (as `secret_texts` gives them) written `***`."""
    for secret in secrets:
        text = text.replace(secret, MASK)
    return text


def guard_logs(secrets: Iterable[object], chatty_loggers: Iterable[str]) -> None:
    """Cap chatty loggers at INFO; in every handler's output, mask `secrets`, one line each.

    Args:
        secrets: The configured secret values (empty and short ones are skipped).
        chatty_loggers: Libraries whose DEBUG output echoes requests (and so secrets).
    """
    for name in chatty_loggers:
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


def plugin_environment_config(plugin: type[PluginBase]) -> dict[str, Any]:
    """`environment_config` over a plugin's settings, the SDK's built-in ones included.

    Both plugins' `_env_var_config` call this in place of the SDK's reader.
    """
    prefix = plugin._env_var_prefix  # noqa: SLF001  (see sdk_hooks)
    return environment_config(
        settings_schema(plugin), prefix, plugin.logger, pathlib.Path.cwd() / ".env"
    )


#: What a boolean setting takes from the environment: the SDK's true words, and theirs.
_TRUE_WORDS = ("true", "1", "yes", "on")
_FALSE_WORDS = ("false", "0", "no", "off")


def environment_config(
    schema: Mapping[str, Any], prefix: str, logger: logging.Logger, dotenv_path: pathlib.Path
) -> dict[str, Any]:
    """Settings from `<PREFIX><SETTING>` environment variables, each value checked.

    Replaces the SDK's reader (`--config ENV`), which went wrong in four ways:

    - it looked for a `.env` upwards from where the SDK is installed, so a run from
      anywhere took the `.env` of the checkout holding the virtualenv, and let it
      override the variables actually set: another workspace's key and secret, with
      exit 0. Here a `.env` is read from the working directory only, it never
      overrides a variable set in the environment, and the run says it read it;
    - an integer went through a bare `int()`: `1.5` was a traceback;
    - a number stayed text, which its own check then refused (`67`);
    - any word but four was false: `TARGET_MPARTICLE_DRY_RUN=ture` was a real run.

    Each mistake is one line naming its variable, never quoting an array or object
    (which may hold a secret).

    Args:
        schema: The plugin's config JSON Schema, built-in settings included.
        prefix: `TAP_MPARTICLE_` or `TARGET_MPARTICLE_`.
        logger: The plugin's logger.
        dotenv_path: The `.env` file to read, if it exists.

    Returns:
        The settings found.

    Raises:
        ConfigValidationError: One message per variable that cannot be read.
    """
    environment = {name: text for name, text in os.environ.items() if name.startswith(prefix)}
    from_file = _add_dotenv(environment, dotenv_path, prefix)
    found: dict[str, Any] = {}
    errors: list[str] = []
    variables = {
        prefix + name.upper().replace("-", "_"): (name, prop)
        for name, prop in (schema.get("properties") or {}).items()
    }
    for variable, (name, prop) in variables.items():
        if variable in environment:
            try:
                found[name] = _env_value(environment[variable], prop)
            except ValueError as exc:
                errors.append(one_line(f"{variable} (setting {name}): {exc}"))
    # A misspelt variable is no setting: said, as a misspelt key of a config file is.
    log_level = prefix + "LOGLEVEL"  # the SDK's log level, read from the environment itself
    loose = {name: None for name in environment if name not in variables and name != log_level}
    for message in unknown_settings(loose, variables):
        logger.warning("%s", message.replace("unknown setting", "unknown variable", 1))
    used = sorted(from_file & variables.keys())
    if used:
        logger.info("Settings also read from %s: %s", dotenv_path, ", ".join(used))
    if errors:
        msg = "settings in the environment cannot be read"
        raise ConfigValidationError(msg, errors=errors)
    return found


def _add_dotenv(environment: dict[str, str], dotenv_path: pathlib.Path, prefix: str) -> set[str]:
    """Add the `.env` file's variables the environment does not set; their names."""
    if not dotenv_path.is_file():
        return set()
    try:
        with dotenv_path.open(encoding="utf-8") as stream:
            # python-dotenv skips a line it cannot parse with a warning naming neither
            # file nor variable: a setting there (start_date, a secret) went unread.
            broken = [b.original.line for b in parse_stream(stream) if b.error]
        if broken:
            msg = f"{dotenv_path} line {broken[0]}: cannot be read (a quote left open?)"
            raise ConfigValidationError(msg, errors=[one_line(msg)])
        values = dotenv_values(dotenv_path)
    except (UnicodeDecodeError, OSError) as exc:
        msg = f"{dotenv_path} cannot be read as a .env file ({exc})"
        raise ConfigValidationError(msg, errors=[one_line(msg)]) from None
    added = set()
    for name, text in values.items():
        if name.startswith(prefix) and name not in environment and text is not None:
            environment[name] = text
            added.add(name)
    return added


def _json_types(prop: Mapping[str, Any]) -> set[str]:
    """The JSON types a setting's schema allows, `anyOf`/`oneOf` options included."""
    declared = prop.get("type")
    types = {declared} if isinstance(declared, str) else set(declared or ())
    for option in (*(prop.get("anyOf") or ()), *(prop.get("oneOf") or ())):
        if isinstance(option, dict):
            types |= _json_types(option)
    return types


def _env_value(text: str, prop: Mapping[str, Any]) -> Any:  # noqa: ANN401  (a setting's value)
    """One environment variable's text as the value its setting's type calls for."""
    types = _json_types(prop)
    if "null" in types and "string" not in types and text.strip() == "null":
        return None
    types.discard("null")
    if types == {"boolean"}:
        word = text.strip().lower()
        if word in _TRUE_WORDS or word in _FALSE_WORDS:
            return word in _TRUE_WORDS
        msg = f"{text[:40]!r} is not one of {', '.join(_TRUE_WORDS + _FALSE_WORDS)}"
        raise ValueError(msg)
    if types in ({"integer"}, {"number"}, {"integer", "number"}):
        return _env_number(text, whole="number" not in types)
    if types in ({"array"}, {"object"}):
        return _env_json(text, prop, types.pop())
    return text


def _env_number(text: str, *, whole: bool) -> int | float:
    value = _json_or_none(text)
    if type(value) is int or (not whole and type(value) is float and math.isfinite(value)):
        return value
    msg = f"{text[:40]!r} is not {'a whole number' if whole else 'a number'}"
    raise ValueError(msg)


def _env_json(text: str, prop: Mapping[str, Any], kind: str) -> Any:  # noqa: ANN401  (JSON)
    """A JSON array or object; a list of text may also be given as `a,b,c`."""
    listed_text = kind == "array" and "string" in str(prop.get("items", {}))
    if listed_text and not text.lstrip().startswith("["):
        return [part.strip() for part in text.split(",") if part.strip()]
    value = _json_or_none(text)
    if type(value) is (list if kind == "array" else dict):
        return value
    msg = f"is not a JSON {kind}"
    raise ValueError(msg)


def _json_or_none(text: str) -> Any:  # noqa: ANN401  (any JSON value)
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return None
