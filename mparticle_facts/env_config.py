"""Settings from environment variables (`--config ENV`), each value checked in one line.

Both plugins read their `<PREFIX><SETTING>` variables here in place of the SDK's
reader; kept apart from `plugin_guards`, which guards config files, logs and stdout.
"""

from __future__ import annotations

import json
import math
import os
import pathlib
from typing import TYPE_CHECKING, Any

from dotenv import dotenv_values
from dotenv.parser import parse_stream
from singer_sdk.exceptions import ConfigValidationError

from mparticle_facts.plugin_guards import one_line, settings_schema, unknown_settings

if TYPE_CHECKING:
    import logging
    from collections.abc import Mapping

    from singer_sdk.plugin_base import PluginBase


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
