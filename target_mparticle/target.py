"""target-mparticle: Singer records into mParticle's Events API.

This module is the Singer SDK side only: when STATE may be passed on, what a signal
does, and how a failure ends the run (one line, exit 1). The settings are in
`settings`, the sending in `delivery`, the per-stream work in `sinks`.
"""

from __future__ import annotations

import gc
import logging
import os
import sys
import typing as t
from functools import cached_property

import jsonschema
from singer_sdk import Target
from singer_sdk.exceptions import (
    ConfigValidationError,
    InvalidJSONSchema,
    MapExpressionError,
    MappingError,
)
from singer_sdk.helpers._classproperty import classproperty

from mparticle_facts.env_config import plugin_environment_config
from mparticle_facts.plugin_guards import (
    exit_stdout_closed,
    redact_config_errors,
)
from target_mparticle import lenient_json, sdk_hooks
from target_mparticle._compat import override
from target_mparticle.client import AuthError, DeliveryError
from target_mparticle.delivery import Delivery
from target_mparticle.invalid import InvalidRecordFatalError
from target_mparticle.preflight import (
    INPUT_ERRORS,
    NumberedLines,
    SingerInputReader,
    check_activate_version_message,
    check_config_files,
    check_record_message,
    exit_with_one_line,
    guard_logs,
    quoted,
    stdin_bytes,
    warn_unknown_settings,
)
from target_mparticle.schema_rules import MAX_BATCHES_PER_REQUEST
from target_mparticle.settings import CONFIG_SCHEMA, MEANINGLESS_SDK_SETTINGS, TargetSettings
from target_mparticle.sinks import HARD_MAX_SIZE, EventsSink, drain_size
from target_mparticle.validation import schema_mistake

if t.TYPE_CHECKING:
    from types import FrameType

    import click
    from singer_sdk.sinks import Sink

# A STATE message drains the sinks (and so can be passed on) once this many
# records wait, or once the oldest waiting record is this old: often enough to
# keep a crash's re-send small, rarely enough that requests stay full.
STATE_DRAIN_MIN_RECORDS = MAX_BATCHES_PER_REQUEST
STATE_DRAIN_MAX_AGE_S = 60.0
GC_THRESHOLDS = (50_000, 20, 100)
SECRET_SETTINGS = ("api_key", "api_secret")


class TargetMParticle(Target):
    """Loads records into mParticle; STATE only follows accepted records."""

    name = "target-mparticle"
    # Both console scripts ship in one distribution, named after the tap: this is
    # where --version and --about find the version and the supported Pythons.
    package_name = "tap-mparticle"
    default_sink_class = EventsSink
    # Sinks drain one after another: a user's changes from two streams (an audience
    # membership and an attribute) must never be in flight at once, or the earlier
    # could land after the later. Each drain still sends its requests in parallel.
    message_reader_class = SingerInputReader
    config_jsonschema = CONFIG_SCHEMA

    @classproperty
    def _env_var_config(cls) -> dict[str, t.Any]:  # noqa: N805  (the SDK's name)
        """Settings from environment variables, each value checked in one line."""
        return plugin_environment_config(t.cast("type[TargetMParticle]", cls))

    @classmethod
    @override
    def append_builtin_config(cls, config_jsonschema: dict[str, t.Any]) -> None:
        """Offer the SDK's built-in settings, less those that mean nothing here."""
        super().append_builtin_config(config_jsonschema)
        for name in MEANINGLESS_SDK_SETTINGS:
            config_jsonschema["properties"].pop(name, None)

    @override
    def __init__(self, **kwargs: t.Any) -> None:  # noqa: ANN401 - passed on to the SDK
        """Read the settings once; every mistake is one line naming its setting."""
        # One line per log line before the SDK says anything (first, on Python 3.10, its
        # end-of-life warning); the secrets are added once the config is read.
        guard_logs([])
        try:
            super().__init__(**kwargs)
        except ConfigValidationError as exc:
            # The SDK checked the config before our log filter could mask its secrets.
            raw = sdk_hooks.raw_config(self)
            exc.errors = redact_config_errors(exc.errors or [str(exc)], raw, SECRET_SETTINGS)
            raise
        guard_logs(self.config.get(name) for name in SECRET_SETTINGS)
        warn_unknown_settings(self, MEANINGLESS_SDK_SETTINGS)
        self._warn_batch_size()
        self.settings = TargetSettings.from_config(self.config)
        self.max_parallelism = 1  # see the class comment: per-user order across streams
        self._states_held_back = 0
        self._last_written_state: dict[str, t.Any] | None = None
        #: Stream -> its plain sink (or None: the SDK's path), until the next SCHEMA.
        self._plain: dict[str, sdk_hooks.Plain | None] = {}
        reader = t.cast("SingerInputReader", self.message_reader)
        reader.on_failure = self._close_after_failure
        reader.on_not_numbers = self._count_not_numbers
        self.delivery.ignored.expect_stream_maps(self.config.get("stream_maps"))

    def _warn_batch_size(self) -> None:
        """Say so when `batch_size_rows` is taken otherwise (see `EventsSink.max_size`)."""
        configured = self.config.get("batch_size_rows")
        if configured is None or configured < 1:  # below 1 is refused with the settings
            return
        taken = drain_size(int(configured))
        if taken != configured:
            self.logger.warning(
                "batch_size_rows %s is taken as %d: a drain holds %d to %d records "
                "(a full request at least, and what a drain can hold at most)",
                configured,
                taken,
                MAX_BATCHES_PER_REQUEST,
                HARD_MAX_SIZE,
            )

    def _count_not_numbers(self, count: int) -> None:
        """NaN and Infinity values the reader left out, for the closing warnings."""
        self.delivery.tally[lenient_json.NOT_NUMBERS] += count

    @cached_property
    def delivery(self) -> Delivery:
        """The run's delivery (client, dead letters, counters), shared by every sink."""
        delivery = Delivery(self.settings)
        delivery.on_state = self._pass_state_on
        return delivery

    @override
    def _drain_all(self, sink_list: t.Iterable[Sink], parallelism: int) -> None:
        """Drain one at a time when at most one sink holds records.

        The SDK starts a joblib thread pool for every drain, even of one sink, and
        polls it with sleeps; our requests already run in parallel in the client.
        """
        sinks = [sink for sink in sink_list if sink.current_size]
        if len(sinks) <= 1:
            for sink in sinks:
                self.drain_one(sink)
            return
        super()._drain_all(sinks, parallelism)

    def latest_state(self) -> object:
        """The last STATE received; a new object each time a new one arrives."""
        return sdk_hooks.latest_state(self)

    def takes_records(self, sink: Sink) -> bool:
        """Whether `sink` still takes its stream's records (a new SCHEMA retires it)."""
        return sdk_hooks.is_active(self, sink)

    def _pending_records(self) -> int:
        return sum(sink.current_size for sink in sdk_hooks.active_sinks(self))

    @override
    def _process_record_message(self, message_dict: dict[str, t.Any]) -> None:
        """A plain stream's RECORD goes straight to its sink; anything else as the SDK does."""
        stream_name = message_dict.get("stream")
        record = message_dict.get("record")
        if type(stream_name) is not str or type(record) is not dict:
            check_record_message(message_dict)  # a present field of the wrong kind is one line
            super()._process_record_message(message_dict)
            return
        try:
            plain = self._plain[stream_name]
        except KeyError:
            plain = self._plain[stream_name] = sdk_hooks.plain_sink(self, stream_name)
        if plain is None:
            try:
                super()._process_record_message(message_dict)
            except MappingError:
                raise
            except Exception as exc:
                if not _raised_by_a_map(exc):
                    raise
                # An expression the SDK does not catch itself (`total / 0`, a null in
                # `int(x)`, `record["nope"]`): as one line, as its own errors are.
                msg = f"an expression for stream {stream_name!r} raised {type(exc).__name__}: {exc}"
                raise MapExpressionError(msg) from None
            return
        sdk_hooks.process_plain_record(self, plain, record)

    @override
    def _process_schema_message(self, message_dict: dict[str, t.Any]) -> None:
        """The SDK's, then each stream's plain sink is looked up again at its next RECORD.

        Only a SCHEMA replaces a stream's maps or sink (of its own stream, or of
        another that a stream map aliases to it), so between two the answer is kept.
        """
        self.delivery.ignored.input_stream(message_dict["stream"])
        try:
            super()._process_schema_message(message_dict)
        except InvalidJSONSchema as exc:
            if not isinstance(exc.__cause__, jsonschema.SchemaError):
                raise
            stream = quoted(message_dict.get("stream"))
            msg = f"the SCHEMA of stream {stream} is not JSON Schema: "
            raise InvalidJSONSchema(msg + schema_mistake(exc.__cause__)) from None
        finally:
            self._plain.clear()

    @override
    def _process_state_message(self, message_dict: dict[str, t.Any]) -> None:
        super()._process_state_message(message_dict)
        pending = self._pending_records()
        if (
            pending == 0
            or pending >= STATE_DRAIN_MIN_RECORDS
            or sdk_hooks.max_record_age_s(self) >= STATE_DRAIN_MAX_AGE_S
        ):
            # drain_all writes the STATE only after every sink drained cleanly.
            self.drain_all()

    @override
    def _process_activate_version_message(self, message_dict: dict[str, t.Any]) -> None:
        """The SDK's (a warning: not implemented), after one line for a malformed one."""
        check_activate_version_message(message_dict, self.mapper.stream_maps)
        super()._process_activate_version_message(message_dict)

    @override
    def _write_state_message(self, state: dict[str, t.Any]) -> None:
        """Pass each distinct STATE on once, after its drain settled; repeats are dropped.

        A dry run passes none on: Meltano would save it, and the real run after the
        dry run would then start where the dry run ended and send nothing.
        """
        if "delivery" in self.__dict__:
            # Written now, or once the drains in flight have settled (delivery.py).
            self.delivery.pass_or_hold(state)
            return
        self._pass_state_on(state)

    def _pass_state_on(self, state: dict[str, t.Any]) -> None:
        """Write a STATE whose records have all been delivered (repeats are dropped)."""
        if state == self._last_written_state:
            return
        if self.settings.dry_run:
            if not self._states_held_back:
                self.logger.info(
                    "Dry run: STATE is not passed on, so a real run afterwards sends "
                    "everything this run only wrote to %s",
                    self.settings.dry_run_path,
                )
            self._states_held_back += 1
            self._last_written_state = state
            return
        super()._write_state_message(state)
        self._last_written_state = state

    def _close_after_failure(self) -> None:
        """Close connections and files of a run that failed; drains in flight finish first.

        The command line exits right after, but a process that goes on (an
        orchestrator running the target in-process, the tests) would otherwise keep
        the sender thread's sockets and the dead-letter file open until collected.
        Drains already in flight finish first, as they would at the command line's
        exit. A signal's SystemExit never comes here: it must not wait for a drain.
        """
        delivery = self.__dict__.get("delivery")
        if delivery is None:
            return
        try:
            delivery.close()
        except Exception as exc:  # noqa: BLE001 - the run's own error follows
            self.logger.warning("Could not close connections and files: %s", exc)

    @override
    def process_endofpipe(self) -> None:
        """Drain, then log the run's summary and close files and connections."""
        try:
            super().process_endofpipe()
            self.delivery.settle()
        except Exception:
            self._close_after_failure()
            raise
        self.delivery.report()
        if self._states_held_back:
            self.logger.info(
                "Dry run: %d STATE message%s held back (none passed on)",
                self._states_held_back,
                "" if self._states_held_back == 1 else "s",
            )
        self.delivery.close()

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
        delivery = self.__dict__.get("delivery")
        if delivery is not None and (delivery.delivering or delivery.overlap.in_flight):
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
            self.delivery.settle()
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
        # Records are plain dicts freed by reference counting; the cyclic collector
        # only re-walks every live object (the modules, the drain in memory) again and
        # again, about a tenth of the run's CPU. Collect far less often instead.
        gc.freeze()
        gc.set_threshold(*GC_THRESHOLDS)
        source = file_input or stdin_bytes()
        lines = NumberedLines(source)
        try:
            super().invoke(
                about=about,
                about_format=about_format,
                config=config,
                file_input=t.cast("t.IO[str]", lines),
            )
        except MappingError as exc:
            # A stream map that cannot apply to a record (a name it does not have): one
            # line with simpleeval's reason, not two tracebacks.
            reason = f": {exc.__cause__}" if exc.__cause__ is not None else ""
            logging.getLogger(cls.name).error(  # noqa: TRY400
                "stream_maps could not be applied at input line %d: %s%s",
                lines.lineno,
                str(exc).rstrip("."),
                reason,
            )
            sys.exit(1)
        except INPUT_ERRORS as exc:
            exit_with_one_line(exc, lines, logging.getLogger(cls.name))
        except AuthError as exc:
            logging.getLogger(cls.name).error("%s", exc)  # noqa: TRY400
            sys.exit(1)
        except (DeliveryError, InvalidRecordFatalError) as exc:
            # One sentence more: the error's own text may end in a full stop already
            # (the SDK's "Could not parse value ... for field 'id'.").
            logging.getLogger(cls.name).error(  # noqa: TRY400
                "%s. The last STATE written covers only accepted records; re-run to resume.",
                str(exc).rstrip(". "),
            )
            sys.exit(1)
        except BrokenPipeError:
            exit_stdout_closed(
                logging.getLogger(cls.name),
                "A STATE could not be passed on; records before it were delivered, and the "
                "next run resumes from the last STATE written (mParticle drops copies).",
            )
        finally:
            if source is not file_input and source is not sys.stdin.buffer:
                source.close()  # our own reader of fd 0 (closefd=False: stdin stays open)


if __name__ == "__main__":
    TargetMParticle.cli()


def _raised_by_a_map(exc: BaseException) -> bool:
    """Whether `exc` came out of evaluating a stream map's expression (simpleeval)."""
    frame = exc.__traceback__
    while frame is not None:
        if frame.tb_frame.f_code.co_filename.endswith(("singer_sdk/mapper.py", "simpleeval.py")):
            return True
        frame = frame.tb_next
    return False
