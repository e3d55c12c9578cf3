"""Checks that run before any data moves, and the guards on what the tap prints.

A config mistake should cost one line naming the setting and what is wrong, and
a non-zero exit, before the first request: not a botocore traceback from deep
inside the first listing, and not a silent default. Reading the config files and
`--state` ourselves (instead of letting the SDK's CLI callbacks raise) gives the
same one line for a config file that is not a JSON object or a corrupt state file.

Secrets: botocore's DEBUG log dumps every request, headers and body included, so
under `--log-level=debug` it would print the session token and the external id
(and the assumed role's temporary credentials). Its loggers are capped at INFO,
and every handler gets a filter that masks the configured secret values, so no
log level prints a secret.
"""

from __future__ import annotations

import difflib
import json
import logging
import re
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

import botocore.session

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

#: Longest look-back window accepted: a year. Longer ones only make every run list
#: and compare more, and values near 10^12 overflow date arithmetic.
MAX_LOOKBACK_MINUTES = 525_600
#: Most files downloaded at once (each holds up to 8 MiB in flight).
MAX_DOWNLOAD_CONCURRENCY = 64
#: Loggers that dump request headers or bodies at DEBUG.
CHATTY_LOGGERS = (
    "botocore",
    "boto3",
    "s3transfer",
    "urllib3",
    "smart_open",
    "azure",  # azure-core's HTTP logging policy: request URLs (a SAS) and headers
    "google",  # google-auth and the storage client: token requests
)
_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d+$")
_CUSTOM_REGION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$")
_ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]{1,512}$")
MASK = "***"
#: Shorter values are not masked (they would mask ordinary words).
MIN_SECRET_LENGTH = 4


def aws_setting_errors(config: Mapping[str, Any]) -> list[str]:
    """Problems with the AWS settings that can be seen without a request.

    Args:
        config: The tap's config.

    Returns:
        One message per problem, each naming its setting.
    """
    errors: list[str] = []
    endpoint = config.get("aws_endpoint_url")
    if endpoint:
        parsed = urlparse(str(endpoint))
        if parsed.scheme not in {"http", "https"} or not parsed.hostname:
            errors.append(
                f"aws_endpoint_url {endpoint!r} is not an http(s) URL (e.g. http://localhost:9000)"
            )
    region = config.get("aws_region")
    if region:
        # Any AWS region looks like us-east-1; S3-compatible stores may name their own.
        pattern = _CUSTOM_REGION if endpoint else _REGION
        if not pattern.match(str(region)):
            errors.append(f"aws_region {region!r} is not a region name (e.g. us-east-1)")
    role = config.get("aws_role_arn")
    if role and not _ROLE_ARN.match(str(role)):
        errors.append(
            f"aws_role_arn {role!r} is not an IAM role ARN "
            "(arn:aws:iam::<12-digit account>:role/<name>)"
        )
    profile = config.get("aws_profile")
    if profile:
        available = botocore.session.Session().available_profiles
        if profile not in available:
            known = ", ".join(sorted(available)) or "none"
            errors.append(
                f"aws_profile {profile!r} is not in the AWS config or credentials files "
                f"(profiles found: {known})"
            )
    return errors


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
    try:
        value = json.loads(text) if text.strip() else {}
    except (ValueError, RecursionError) as exc:
        msg = f"{where}: not valid JSON ({exc})"
        raise ConfigFileError(msg) from None
    if not isinstance(value, dict):
        msg = f"{where}: must hold a JSON object, not a JSON {type(value).__name__}"
        raise ConfigFileError(msg)
    return value


class _MaskSecrets(logging.Filter):
    """Replace secret values in a log record's final message."""

    def __init__(self, secrets: list[str]) -> None:
        super().__init__()
        self.secrets = secrets

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = message
        for secret in self.secrets:
            masked = masked.replace(secret, MASK)
        if masked != message:
            record.msg, record.args = masked, None
        return True


def guard_logs(secrets: Iterable[object]) -> None:
    """Cap chatty loggers at INFO and mask `secrets` in every handler's output.

    Args:
        secrets: The configured secret values (empty and short ones are skipped).
    """
    for name in CHATTY_LOGGERS:
        logger = logging.getLogger(name)
        if logger.getEffectiveLevel() < logging.INFO:
            logger.setLevel(logging.INFO)
    values = sorted(
        {str(s) for s in secrets if s and len(str(s)) >= MIN_SECRET_LENGTH}, key=len, reverse=True
    )
    if not values:
        return
    handlers = list(logging.getLogger().handlers)
    for name in logging.root.manager.loggerDict:
        handlers.extend(getattr(logging.getLogger(name), "handlers", []))
    for handler in handlers:
        existing = next((f for f in handler.filters if isinstance(f, _MaskSecrets)), None)
        if existing is None:
            handler.addFilter(_MaskSecrets(values))
        else:
            existing.secrets = sorted({*existing.secrets, *values}, key=len, reverse=True)
