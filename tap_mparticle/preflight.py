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

import re
from typing import TYPE_CHECKING, Any
from urllib.parse import ParseResult, urlparse

import botocore.session

# Shared with target-mparticle; re-exported so the tap imports its guards from one place.
from mparticle_facts.plugin_guards import (
    ConfigFileError,
    mask_userinfo,
    parse_json_object,
    read_json_object,
    unknown_settings,
)
from mparticle_facts.plugin_guards import guard_logs as _guard_logs

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


#: Settings whose surrounding whitespace (a pasted newline, a space) is never meant.
TRIMMED_AWS_SETTINGS = ("aws_access_key_id", "aws_secret_access_key", "aws_session_token")


def trim_aws_credentials(config: Mapping[str, Any]) -> dict[str, Any]:
    """The config with the AWS credentials' surrounding whitespace removed.

    A key pasted with a trailing newline or space was sent as is, and AWS refused
    it with a signature error that names no setting. Whitespace-only is unset.

    Args:
        config: The tap's config.

    Returns:
        A copy, trimmed.
    """
    trimmed = dict(config)
    for name in TRIMMED_AWS_SETTINGS:
        value = trimmed.get(name)
        if isinstance(value, str):
            trimmed[name] = value.strip()
    return trimmed


def http_url(text: str) -> ParseResult | None:
    """An endpoint setting's parts, or None when it is not an http(s) URL with a host.

    Args:
        text: The setting's value.

    Returns:
        The parsed URL; None also for one `urlparse` refuses ("Invalid IPv6 URL").
    """
    try:
        parsed = urlparse(text)
        host = parsed.hostname
    except ValueError:
        return None
    return parsed if parsed.scheme in {"http", "https"} and host else None


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
        parsed = http_url(str(endpoint))
        shown = mask_userinfo(str(endpoint))
        if parsed is None:
            errors.append(
                f"aws_endpoint_url {shown!r} is not an http(s) URL (e.g. http://localhost:9000)"
            )
        elif parsed.path.strip("/") or parsed.query:
            # botocore would send requests under the path, and the bucket named in
            # bucket_url after it: a NoSuchKey or NoSuchBucket on the first listing.
            errors.append(
                f"aws_endpoint_url {shown!r} has a path: no path allowed: put the bucket "
                "in bucket_url (e.g. http://localhost:9000 and s3://bucket/prefix)"
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


def guard_logs(secrets: Iterable[object]) -> None:
    """Cap botocore's and smart_open's DEBUG dumps at INFO and mask `secrets` everywhere.

    Args:
        secrets: The configured secret values.
    """
    _guard_logs(secrets, CHATTY_LOGGERS)


__all__ = [
    "ConfigFileError",
    "aws_setting_errors",
    "guard_logs",
    "parse_json_object",
    "read_json_object",
    "trim_aws_credentials",
    "unknown_settings",
]
