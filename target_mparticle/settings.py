"""target-mparticle's settings: the config schema, and the config read once into a typed object.

Defaults live in the schema only (`CONFIG_SCHEMA`); `TargetSettings.from_config`
reads the validated config once, fills what the SDK left unset from the schema's
defaults, and checks what JSON Schema cannot say (a dead-letter policy needs a path,
credentials unless it is a dry run, bounds on numbers, the mappings), one line per
mistake, as a `ConfigValidationError`. Everything else in the target reads typed
attributes, never the raw config.
"""

from __future__ import annotations

import dataclasses
import decimal
import pathlib
import typing as t
from urllib.parse import urlsplit

from singer_sdk import typing as th
from singer_sdk.exceptions import ConfigValidationError

from mparticle_facts.plugin_guards import mask_userinfo
from target_mparticle.items import BatchDefaults
from target_mparticle.mapping import (
    DEFAULT_AUDIENCE_ATTRIBUTE,
    MAPPING_SCHEMA,
    StreamMapping,
    audience_attribute_errors,
    data_plan_errors,
    mapping_errors,
)
from target_mparticle.output_paths import dry_run_dead_letters, output_path_errors

POD_URLS = {
    "us1": "https://s2s.us1.mparticle.com/v2",
    "us2": "https://s2s.us2.mparticle.com/v2",
    "eu1": "https://s2s.eu1.mparticle.com/v2",
    "au1": "https://s2s.au1.mparticle.com/v2",
}
# SDK settings that mean nothing for an API target: it writes no tables (so no load
# method), and metadata columns would only become event attributes. Not offered in
# --about; refused when set to anything but what the target does anyway.
MEANINGLESS_SDK_SETTINGS = {"load_method": "append-only", "add_record_metadata": False}
# What `output_paths.output_path_errors` reads: the files a run writes.
OUTPUT_SETTINGS = ("on_invalid_record", "dead_letter_path", "dry_run", "dry_run_path")
# Lower bounds of the numeric settings (the schema gives their types and defaults).
NUMBER_FLOORS = {
    "max_retries": 0,
    "max_batches_per_second": 0,
    "max_parallel_requests": 1,
    "request_timeout": 0.001,
    "backoff_base_seconds": 0,
    "backoff_max_seconds": 0,
    # The SDK's own setting, which the target honours: 0 or less would send one
    # record per drain in the SDK, and read as 100 here (sinks.py) without a word.
    "batch_size_rows": 1,
}

CONFIG_SCHEMA: dict[str, t.Any] = th.PropertiesList(
    th.Property(
        "api_key",
        th.StringType,
        secret=True,
        title="API key",
        description="Events API key of the mParticle input (feed or platform). "
        "Required unless dry_run.",
    ),
    th.Property(
        "api_secret",
        th.StringType,
        secret=True,
        title="API secret",
        description="Events API secret paired with the key. Required unless dry_run.",
    ),
    th.Property(
        "pod",
        th.StringType,
        default="us1",
        allowed_values=list(POD_URLS),
        title="Pod",
        description="mParticle pod hosting the workspace: us1, us2, eu1 or au1.",
    ),
    th.Property(
        "api_url",
        th.StringType,
        title="API URL",
        description="Base URL ending in /v2, overriding the pod's (proxies, tests).",
    ),
    th.Property(
        "environment",
        th.StringType,
        default="development",
        allowed_values=["development", "production"],
        title="Environment",
        description="mParticle environment of the batches the target builds; a replayed "
        "batch that names its own keeps it (a stream map can override it).",
    ),
    th.Property(
        "data_plan_id",
        th.StringType,
        title="Data plan ID",
        description="mParticle data plan every batch is validated against "
        "(context.data_plan.plan_id); a mapping may name its own, and a replayed batch "
        "that names one keeps it.",
    ),
    th.Property(
        "data_plan_version",
        th.IntegerType,
        title="Data plan version",
        description="Version of data_plan_id; unset: the plan's active version.",
    ),
    th.Property(
        "audience_attribute_name",
        th.StringType,
        default=DEFAULT_AUDIENCE_ATTRIBUTE,
        title="Audience attribute name",
        description="User attribute a tap-mparticle audience membership sets to true "
        "(add) or deletes (remove); placeholders {audience_id}, {audience_name}, "
        "{variant}.",
    ),
    th.Property(
        "mappings",
        th.ObjectType(additional_properties=MAPPING_SCHEMA),
        title="Mappings",
        description='Per stream name ("*" for every other stream): how records '
        "become events or user updates. tap-mparticle events and whole "
        "mParticle batches pass through without one.",
    ),
    th.Property(
        "historical",
        th.StringType,
        default="auto",
        allowed_values=["auto", "never", "always"],
        title="Historical endpoint",
        description="auto: batches whose events are all older than 30 days go to "
        "/bulkevents/historical; never; always (event batches only).",
    ),
    th.Property(
        "max_retries",
        th.IntegerType,
        default=8,
        title="Max retries",
        description="Retries per request on 429, 5xx (but 501, 505 and 511), timeouts and dropped "
        "connections before the run fails (without a newer STATE).",
    ),
    th.Property(
        "max_batches_per_second",
        th.NumberType,
        default=270,
        title="Max batches per second",
        description="Client-side pacing (the account's default limit is 270); "
        "0 turns pacing off. Slows further as mParticle reports usage near 100%.",
    ),
    th.Property(
        "on_invalid_record",
        th.StringType,
        default="fail",
        allowed_values=["fail", "skip", "dead_letter"],
        title="On invalid record",
        description="What to do with records mParticle would refuse (or refused "
        "with HTTP 400): fail the run, skip with a warning, or dead_letter.",
    ),
    th.Property(
        "dead_letter_path",
        th.StringType,
        default="output/target-mparticle-dead-letters.jsonl",
        title="Dead letter path",
        description="JSON lines file that invalid records are appended to when "
        "on_invalid_record is dead_letter. A dry run writes its dead letters beside "
        "dry_run_path instead (<name>-dead-letters.jsonl), leaving this file as it was.",
    ),
    th.Property(
        "dry_run",
        th.BooleanType,
        default=False,
        title="Dry run",
        description="Write the request bodies to dry_run_path instead of sending; "
        "no credentials needed.",
    ),
    th.Property(
        "dry_run_path",
        th.StringType,
        default="output/target-mparticle-dry-run.jsonl",
        title="Dry run path",
        description='JSON lines file of {"url", "body"} per request, written by a '
        "dry run (replaced on each run).",
    ),
    th.Property(
        "max_parallel_requests",
        th.IntegerType,
        default=4,
        title="Max parallel requests",
        description="Requests in flight at once (pacing still applies).",
    ),
    th.Property(
        "request_timeout",
        th.NumberType,
        default=60,
        title="Request timeout",
        description="Seconds to wait for mParticle to answer one request.",
    ),
    th.Property(
        "backoff_base_seconds",
        th.NumberType,
        default=1,
        title="Backoff base seconds",
        description="First retry delay when no Retry-After is given; doubles "
        "with each retry, with jitter.",
    ),
    th.Property(
        "backoff_max_seconds",
        th.NumberType,
        default=60,
        title="Backoff max seconds",
        description="Longest delay between two retries without Retry-After; "
        "at least backoff_base_seconds.",
    ),
).to_dict()


def schema_default(name: str) -> t.Any:  # noqa: ANN401  (any JSON value)
    """The default the schema gives a setting (None when it gives none, or for an SDK one)."""
    return CONFIG_SCHEMA["properties"].get(name, {}).get("default")


@dataclasses.dataclass(frozen=True)
class TargetSettings:
    """Every setting, typed and checked; built once per run from the validated config."""

    base_url: str
    api_key: str = dataclasses.field(repr=False)
    api_secret: str = dataclasses.field(repr=False)
    environment: str
    historical: str
    mappings: dict[str, StreamMapping]
    on_invalid_record: str
    #: Where dead letters go: `dead_letter_path`, or in a dry run `dry_run_dead_letters`.
    dead_letter_path: pathlib.Path | None
    dry_run: bool
    dry_run_path: pathlib.Path
    max_retries: int
    max_batches_per_second: float
    max_parallel_requests: int
    request_timeout: float
    backoff_base_seconds: float
    backoff_max_seconds: float
    #: Environment, data plan and audience attribute name every batch starts from.
    batch_defaults: BatchDefaults

    @classmethod
    def from_config(cls, config: t.Mapping[str, t.Any]) -> TargetSettings:
        """Read and check the config.

        Args:
            config: The target's config (validated by the SDK against the schema).

        Returns:
            The settings.

        Raises:
            ConfigValidationError: One line per mistake, each naming its setting.
        """

        def get(name: str) -> t.Any:  # noqa: ANN401  (any JSON value)
            value = config.get(name)
            return schema_default(name) if value is None else value

        errors = config_errors(config, get)
        if errors:
            msg = "Invalid target-mparticle configuration"
            raise ConfigValidationError(msg, errors=errors, schema=CONFIG_SCHEMA)
        raw_mappings = get("mappings") or {}
        dead_letter = get("dead_letter_path")
        if get("dry_run"):
            dead_letter = dry_run_dead_letters(get("dry_run_path"))
        return cls(
            base_url=str(get("api_url") or POD_URLS[get("pod")]).rstrip("/"),
            api_key=str(get("api_key") or ""),
            api_secret=str(get("api_secret") or ""),
            environment=str(get("environment")),
            historical=str(get("historical")),
            mappings={
                stream: StreamMapping.from_config(entry, explicit=stream != "*")
                for stream, entry in raw_mappings.items()
            },
            on_invalid_record=str(get("on_invalid_record")),
            dead_letter_path=pathlib.Path(dead_letter) if dead_letter else None,
            dry_run=bool(get("dry_run")),
            dry_run_path=pathlib.Path(get("dry_run_path")),
            max_retries=int(get("max_retries")),
            max_batches_per_second=float(get("max_batches_per_second")),
            max_parallel_requests=int(get("max_parallel_requests")),
            request_timeout=float(get("request_timeout")),
            backoff_base_seconds=float(get("backoff_base_seconds")),
            backoff_max_seconds=float(get("backoff_max_seconds")),
            batch_defaults=BatchDefaults(
                environment=str(get("environment")),
                data_plan_id=get("data_plan_id") or None,
                data_plan_version=get("data_plan_version"),
                audience_attribute_name=str(get("audience_attribute_name")),
            ),
        )

    def mapping_for(self, stream: str) -> StreamMapping:
        """The stream's own mapping, else "*", else the defaults."""
        return self.mappings.get(stream) or self.mappings.get("*") or StreamMapping()


def config_errors(config: t.Mapping[str, t.Any], get: t.Callable[[str], t.Any]) -> list[str]:
    """Every cross-field or range mistake in the config, one line each, naming the setting."""
    errors: list[str] = []
    if not get("dry_run"):
        errors.extend(
            f"{key} is required unless dry_run is true"
            for key in ("api_key", "api_secret")
            if not get(key)
        )
    errors.extend(_api_url_errors(get("api_url")))
    # Was a UnicodeEncodeError traceback quoting the character and its place.
    errors.extend(
        f"{key} holds a character HTTP Basic authentication cannot carry (only "
        "Latin-1 text): check it was copied whole; its value is not shown"
        for key in ("api_key", "api_secret")
        if not _latin1(str(get(key) or ""))
    )
    errors.extend(output_path_errors({k: get(k) for k in OUTPUT_SETTINGS}))
    errors.extend(mapping_errors(get("mappings") or {}))
    errors.extend(data_plan_errors("settings", get("data_plan_id"), get("data_plan_version")))
    # Set but empty is a mistake, not the default: every audience row would fail.
    errors.extend(
        audience_attribute_errors("audience_attribute_name", get("audience_attribute_name"))
    )
    for key, inert in MEANINGLESS_SDK_SETTINGS.items():
        value = config.get(key)
        if value is not None and value != inert:
            errors.append(
                f"{key} means nothing for target-mparticle (it posts events to an "
                f"API and writes no tables); remove it (got {value!r})"
            )
    for key, low in NUMBER_FLOORS.items():
        value = get(key)
        if _is_number(value) and value < low:
            errors.append(f"{key} must be at least {low}, not {value}")
    base, ceiling = get("backoff_base_seconds"), get("backoff_max_seconds")
    if _is_number(base) and _is_number(ceiling) and base > ceiling:
        errors.append(
            f"backoff_base_seconds ({base}) must not exceed backoff_max_seconds "
            f"({ceiling}): the first retry delay would already be cut to the longest"
        )
    return errors


def _api_url_errors(api_url: object) -> list[str]:
    """`api_url` must be an http(s) URL ending in /v2, with no `user:password@`.

    Credentials in the URL were never sent (the Events API takes api_key and
    api_secret), but every error, dead letter and dry-run line that names the URL
    wrote them out.
    """
    if not api_url:
        return []
    text = str(api_url)
    shown = mask_userinfo(text)
    if not text.startswith(("http://", "https://")) or not text.rstrip("/").endswith("/v2"):
        return [f"api_url must be an http(s) URL ending in /v2, not {shown!r}"]
    if "@" in urlsplit(text).netloc:
        msg = (
            f"api_url {shown!r} holds credentials (user:password@), which are never sent: "
            "the Events API takes api_key and api_secret; remove them from the URL"
        )
        return [msg]
    return []


def _latin1(text: str) -> bool:
    """Whether `text` can go in a Basic `Authorization` header (urllib3 encodes Latin-1)."""
    try:
        text.encode("latin-1")
    except UnicodeEncodeError:
        return False
    return True


def _is_number(value: object) -> t.TypeGuard[float]:
    """A number, as a config file's `0.05` arrives too: the SDK reads it as a Decimal."""
    return isinstance(value, (int, float, decimal.Decimal)) and not isinstance(value, bool)
