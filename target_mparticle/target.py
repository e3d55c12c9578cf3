"""target-mparticle: Singer records into mParticle's Events API."""

from __future__ import annotations

import logging
import os
import pathlib
import sys
import time
import typing as t
from functools import cached_property

from singer_sdk import Target
from singer_sdk import typing as th
from singer_sdk.exceptions import ConfigValidationError

from target_mparticle._compat import override
from target_mparticle.assemble import assemble, now_ms
from target_mparticle.client import (
    AuthError,
    ClientSettings,
    DeliveryError,
    DryRunClient,
    EventsApiClient,
    pack,
)
from target_mparticle.ignored import IgnoredSettings
from target_mparticle.invalid import InvalidRecordFatalError, InvalidRecords
from target_mparticle.mapping import MAPPING_SCHEMA, StreamMapping, mapping_errors
from target_mparticle.preflight import (
    INPUT_ERRORS,
    NumberedLines,
    SingerInputReader,
    check_config_files,
    exit_with_one_line,
    guard_logs,
    output_path_errors,
    warn_unknown_settings,
)
from target_mparticle.report import progress_line, summary_line
from target_mparticle.schema_rules import MAX_BATCHES_PER_REQUEST
from target_mparticle.sinks import EventsSink
from target_mparticle.values import Tally

if t.TYPE_CHECKING:
    from types import FrameType

    import click

    from target_mparticle.convert import Item

POD_URLS = {
    "us1": "https://s2s.us1.mparticle.com/v2",
    "us2": "https://s2s.us2.mparticle.com/v2",
    "eu1": "https://s2s.eu1.mparticle.com/v2",
    "au1": "https://s2s.au1.mparticle.com/v2",
}
# A STATE message drains the sinks (and so can be passed on) once this many
# records wait, or once the oldest waiting record is this old: often enough to
# keep a crash's re-send small, rarely enough that requests stay full.
STATE_DRAIN_MIN_RECORDS = MAX_BATCHES_PER_REQUEST
STATE_DRAIN_MAX_AGE_S = 60.0
# SDK settings that mean nothing for an API target: it writes no tables (so no load
# method), and metadata columns would only become event attributes. Not offered in
# --about; refused when set to anything but what the target does anyway.
MEANINGLESS_SDK_SETTINGS = {"load_method": "append-only", "add_record_metadata": False}


class TargetMParticle(Target):
    """Loads records into mParticle; STATE only follows accepted records."""

    name = "target-mparticle"
    # Both console scripts ship in one distribution, named after the tap: this is
    # where --version and --about find the version and the supported Pythons.
    package_name = "tap-mparticle"
    default_sink_class = EventsSink
    message_reader_class = SingerInputReader

    config_jsonschema = th.PropertiesList(
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
            description="mParticle environment every batch is sent to.",
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
            description="Retries per request on 429, 5xx, timeouts and dropped "
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
            "on_invalid_record is dead_letter.",
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
            description="Longest delay between two retries without Retry-After.",
        ),
    ).to_dict()

    @classmethod
    @override
    def append_builtin_config(cls, config_jsonschema: dict[str, t.Any]) -> None:
        """Offer the SDK's built-in settings, less those that mean nothing here."""
        super().append_builtin_config(config_jsonschema)
        for name in MEANINGLESS_SDK_SETTINGS:
            config_jsonschema["properties"].pop(name, None)

    @override
    def __init__(self, **kwargs: t.Any) -> None:  # noqa: ANN401 - passed on to the SDK
        """Validate the cross-field rules JSON Schema cannot express."""
        super().__init__(**kwargs)
        guard_logs((self.config.get("api_key"), self.config.get("api_secret")))
        warn_unknown_settings(self)
        errors = self._config_errors()
        if errors:
            msg = "Invalid target-mparticle configuration"
            raise ConfigValidationError(msg, errors=errors, schema=self.config_jsonschema)
        self.tally = Tally()
        self.ignored = IgnoredSettings(self.mappings)
        self._states_held_back = 0
        self._started = time.monotonic()
        self._delivering = 0
        self._last_written_state: dict[str, t.Any] | None = None

    def _config_errors(self) -> list[str]:
        config = self.config
        errors: list[str] = []
        if not config.get("dry_run"):
            errors.extend(
                f"{key} is required unless dry_run is true"
                for key in ("api_key", "api_secret")
                if not config.get(key)
            )
        api_url = config.get("api_url")
        if api_url and (
            not api_url.startswith(("http://", "https://"))
            or not api_url.rstrip("/").endswith("/v2")
        ):
            errors.append(f"api_url must be an http(s) URL ending in /v2, not {api_url!r}")
        errors.extend(mapping_errors(config.get("mappings") or {}))
        errors.extend(output_path_errors(config))
        for key, inert in MEANINGLESS_SDK_SETTINGS.items():
            value = config.get(key)
            if value is not None and value != inert:
                errors.append(
                    f"{key} means nothing for target-mparticle (it posts events to an "
                    f"API and writes no tables); remove it (got {value!r})"
                )
        for key, low in (
            ("max_retries", 0),
            ("max_batches_per_second", 0),
            ("max_parallel_requests", 1),
            ("request_timeout", 0.001),
            ("backoff_base_seconds", 0),
            ("backoff_max_seconds", 0),
        ):
            value = config.get(key)
            if value is not None and value < low:
                errors.append(f"{key} must be at least {low}, not {value!r}")
        return errors

    # -- typed settings ---------------------------------------------------------

    @cached_property
    def base_url(self) -> str:
        """The Events API base URL: api_url if set, else the pod's."""
        url = self.config.get("api_url") or POD_URLS[self.config.get("pod", "us1")]
        return str(url).rstrip("/")

    @cached_property
    def environment(self) -> str:
        """The mParticle environment stamped on every batch."""
        return str(self.config.get("environment", "development"))

    @cached_property
    def historical_mode(self) -> str:
        """auto, never or always."""
        return str(self.config.get("historical", "auto"))

    @cached_property
    def on_invalid_record(self) -> str:
        """fail, skip or dead_letter."""
        return str(self.config.get("on_invalid_record", "fail"))

    @cached_property
    def mappings(self) -> dict[str, StreamMapping]:
        """Parsed mappings by stream name, "*" included."""
        raw = self.config.get("mappings") or {}
        return {
            stream: StreamMapping.from_config(entry, explicit=stream != "*")
            for stream, entry in raw.items()
        }

    def mapping_for(self, stream: str) -> StreamMapping:
        """The stream's own mapping, else "*", else the defaults."""
        return self.mappings.get(stream) or self.mappings.get("*") or StreamMapping()

    @cached_property
    def invalid(self) -> InvalidRecords:
        """The on_invalid_record policy with its dead-letter file."""
        path = self.config.get("dead_letter_path")
        return InvalidRecords(self.on_invalid_record, pathlib.Path(path) if path else None)

    @cached_property
    def client(self) -> EventsApiClient | DryRunClient:
        """The real client, or the dry-run writer; created on first delivery."""
        if self.config.get("dry_run"):
            return DryRunClient(pathlib.Path(self.config["dry_run_path"]), self.base_url)
        return EventsApiClient(
            ClientSettings(
                base_url=self.base_url,
                api_key=str(self.config["api_key"]),
                api_secret=str(self.config["api_secret"]),
                max_retries=int(self.config.get("max_retries", 8)),
                max_batches_per_second=float(self.config.get("max_batches_per_second", 270)),
                timeout_s=float(self.config.get("request_timeout", 60)),
                parallel_requests=int(self.config.get("max_parallel_requests", 4)),
                backoff_base_s=float(self.config.get("backoff_base_seconds", 1)),
                backoff_max_s=float(self.config.get("backoff_max_seconds", 60)),
            )
        )

    # -- delivery -----------------------------------------------------------------

    def deliver(self, stream: str, items: t.Sequence[Item]) -> None:
        """Send one drain's items; return only when each is accepted or dead-lettered."""
        self._delivering += 1
        try:
            prepared, rejected = assemble(items, self.historical_mode, now_ms())
            for item, reason in rejected:
                self.invalid.handle(stream, item.record, f"{stream!r}: {reason}")
            requests_ = pack(prepared)
            refused = self.client.deliver(requests_, isolate_bad=self.on_invalid_record != "fail")
            for batch, reason in refused:
                for item in batch.items:
                    self.invalid.handle(stream, item.record, f"{stream!r}: {reason}")
            self.invalid.sync()
        finally:
            self._delivering -= 1
        self.logger.info(
            "%s",
            progress_line(
                stream,
                records=len(items),
                batches=len(prepared),
                requests=len(requests_),
                stats=self.client.stats,
                held_back_s=self._held_back_s(),
            ),
        )

    def _held_back_s(self) -> float:
        """Wall-clock seconds requests waited for pacing or rate limits (0 in a dry run)."""
        client = self.__dict__.get("client")
        return client.pacer.held_back_s if isinstance(client, EventsApiClient) else 0.0

    def _pending_records(self) -> int:
        return sum(sink.current_size for sink in self._sinks_active.values())

    @override
    def _process_state_message(self, message_dict: dict[str, t.Any]) -> None:
        super()._process_state_message(message_dict)
        pending = self._pending_records()
        if (
            pending == 0
            or pending >= STATE_DRAIN_MIN_RECORDS
            or self._max_record_age_in_minutes * 60 >= STATE_DRAIN_MAX_AGE_S
        ):
            # drain_all writes the STATE only after every sink drained cleanly.
            self.drain_all()

    @override
    def _write_state_message(self, state: dict[str, t.Any]) -> None:
        """Pass each distinct STATE on once; drains with nothing new repeat it.

        A dry run passes none on: Meltano would save it, and the real run after the
        dry run would then start where the dry run ended and send nothing.
        """
        if state == self._last_written_state:
            return
        if self.config.get("dry_run"):
            if not self._states_held_back:
                self.logger.info(
                    "Dry run: STATE is not passed on, so a real run afterwards sends "
                    "everything this run only wrote to %s",
                    self.config.get("dry_run_path"),
                )
            self._states_held_back += 1
            self._last_written_state = state
            return
        super()._write_state_message(state)
        self._last_written_state = state

    @override
    def process_endofpipe(self) -> None:
        """Drain, then log the run's summary and close files and connections."""
        super().process_endofpipe()
        self._summary()
        self._close()

    def _summary(self) -> None:
        stats = self.client.stats if "client" in self.__dict__ else None
        records = sum(getattr(sink, "sent_records", 0) for sink in self._sinks_active.values())
        self.logger.info(
            "%s",
            summary_line(
                records=records,
                destination=self.client.describe() if stats else self.base_url,
                seconds=time.monotonic() - self._started,
                stats=stats,
                held_back_s=self._held_back_s(),
                invalid=self.invalid.count,
                policy=self.on_invalid_record,
            ),
        )
        if self._states_held_back:
            self.logger.info(
                "Dry run: %d STATE message%s held back (none passed on)",
                self._states_held_back,
                "" if self._states_held_back == 1 else "s",
            )
        self.ignored.report()
        for what, count in sorted(self.tally.items()):
            self.logger.warning("Repaired to fit mParticle's limits: %d %s", count, what)

    def _close(self) -> None:
        if "client" in self.__dict__:
            self.client.close()
        if "invalid" in self.__dict__:
            self.invalid.close()

    @override
    def _handle_termination(
        self,
        signum: int,
        frame: FrameType | None,  # noqa: ARG002 - signal handler signature
    ) -> None:
        """Stop on SIGTERM/SIGINT without ever writing a STATE ahead of delivery.

        The SDK's handler drains and exits 0 even when the drain fails; and a
        signal landing mid-drain would let it write STATE for a half-sent batch.
        """
        if self._delivering:
            self.logger.error(
                "Received signal %d while delivering; stopping without a new STATE "
                "(the last STATE written still holds)",
                signum,
            )
            # Exit now: a clean shutdown would wait for requests still in flight.
            sys.stdout.flush()
            logging.shutdown()
            os._exit(128 + signum)
        self.logger.info("Received signal %d; delivering what is pending", signum)
        try:
            self.drain_all(is_endofpipe=True)
        except (DeliveryError, InvalidRecordFatalError) as exc:
            self.logger.error("%s", exc)  # noqa: TRY400 - one line, no traceback
            sys.exit(1)
        sys.exit(0)

    @classmethod
    @override
    def cb_config(cls, ctx: click.Context, param: click.Option, value: tuple[str, ...]) -> t.Any:  # noqa: ANN401 - the SDK's private _ConfigInput
        """Read the config files; one that is not a JSON object is one line and exit 1."""
        check_config_files(ctx, value, logging.getLogger(cls.name))
        return super().cb_config(ctx, param, value)

    @classmethod
    @override
    def invoke(  # type: ignore[override]
        cls,
        *,
        about: bool = False,
        about_format: str | None = None,
        config: t.Any = None,  # noqa: ANN401 - the SDK's private config input type
        file_input: t.IO[str] | None = None,
    ) -> None:
        """Run the target; known failures end with one clear line and exit 1."""
        lines = NumberedLines(file_input or sys.stdin)
        try:
            super().invoke(
                about=about,
                about_format=about_format,
                config=config,
                file_input=t.cast("t.IO[str]", lines),
            )
        except INPUT_ERRORS as exc:
            exit_with_one_line(exc, lines, logging.getLogger(cls.name))
        except AuthError as exc:
            logging.getLogger(cls.name).error("%s", exc)  # noqa: TRY400
            sys.exit(1)
        except (DeliveryError, InvalidRecordFatalError) as exc:
            logging.getLogger(cls.name).error(  # noqa: TRY400
                "%s. The last STATE written covers only accepted records; re-run to resume.",
                exc,
            )
            sys.exit(1)


if __name__ == "__main__":
    TargetMParticle.cli()
