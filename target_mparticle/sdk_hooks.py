"""Every private part of the Singer SDK target-mparticle relies on, in one place, with why.

The SDK offers no public hook for what a careful API target needs: passing STATE on
only after delivery, draining on STATE, stopping on a signal without writing STATE
ahead of delivery. So the target overrides or reads the private names listed here,
and nowhere else reads them. `tests/test_sdk_contract.py` checks each against the
installed SDK (it exists, its signature, and a fingerprint of its source), so an SDK
upgrade that renames or changes one fails the suite instead of silently changing
what the target does. Re-read the SDK's new code before updating a fingerprint.
"""

from __future__ import annotations

import time
import typing as t

from singer_sdk.mapper import SameRecordTransform
from singer_sdk.sinks import Sink as SdkSink

if t.TYPE_CHECKING:
    from singer_sdk import Target, metrics
    from singer_sdk.sinks import Sink

#: Methods the target overrides: (SDK class, method) -> why.
OVERRIDDEN: dict[tuple[str, str], str] = {
    ("singer_sdk.plugin_base:PluginBase", "_env_var_config"): (
        "--config ENV: a .env from the working directory only, never over the real "
        "environment, and every value checked in one line (plugin_guards)"
    ),
    ("singer_sdk.target_base:Target", "_process_state_message"): (
        "drain on a STATE only when enough records wait or the oldest is old enough, "
        "so requests stay full and STATE still moves"
    ),
    ("singer_sdk.target_base:Target", "_write_state_message"): (
        "pass each distinct STATE on once, and none in a dry run"
    ),
    ("singer_sdk.target_base:Target", "_handle_termination"): (
        "a signal mid-delivery must exit without a STATE; the SDK's drains and exits 0"
    ),
    ("singer_sdk.target_base:Target", "_drain_all"): (
        "drain a single sink in place: the SDK starts and polls (with sleeps) a joblib "
        "pool for every drain"
    ),
    ("singer_sdk.sinks.core:Sink", "_parse_timestamps_in_record"): (
        "the same parsing on the schema's date-like fields only, found once per schema, "
        "instead of each field's schema looked up on every record"
    ),
    ("singer_sdk.sinks.core:Sink", "_validate_and_parse"): (
        "a record its stream's SCHEMA refuses goes to on_invalid_record; the SDK logs a "
        "traceback and stops the run whatever the setting says"
    ),
    ("singer_sdk.target_base:Target", "_process_record_message"): (
        "a RECORD for a stream without stream maps, flattening or metadata goes straight "
        "to its sink: the SDK's copy, identity map and look-ups cost a quarter of a record"
    ),
    ("singer_sdk.target_base:Target", "_process_schema_message"): (
        "the plain sink of each stream is kept from one SCHEMA to the next; a SCHEMA "
        "may replace the maps or the sink, so it forgets them"
    ),
    ("singer_sdk.target_base:Target", "_process_activate_version_message"): (
        "an ACTIVATE_VERSION without a stream or version, or for a stream no SCHEMA "
        "described, is one line; the SDK's raises a bare KeyError"
    ),
    ("singer_sdk.singerlib.encoding.base:GenericSingerReader", "process_lines"): (
        "the same loop (in preflight.SingerInputReader) without a set built and a check "
        "called per line for the `type` key every good message has"
    ),
    ("singer_sdk.singerlib.encoding.base:GenericSingerReader", "assert_line_requires"): (
        "the same check (in preflight.SingerInputReader), quoting a message missing a key "
        "to 80 characters: the SDK's quotes it whole, a 30 MB line in one log line"
    ),
    ("singer_sdk.plugin_base:PluginBase", "cb_config"): (
        "a config file that is not a JSON object is one line, not a traceback"
    ),
}

#: Attributes the target reads: (SDK class, attribute) -> why.
READ: dict[tuple[str, str], str] = {
    ("singer_sdk.helpers._classproperty", "classproperty"): (
        "the decorator the SDK declares _env_var_config with, to override it in kind"
    ),
    ("singer_sdk.plugin_base:PluginBase", "_env_var_prefix"): (
        "the TAP_MPARTICLE_ / TARGET_MPARTICLE_ prefix the SDK names variables by"
    ),
    ("singer_sdk.target_base:Target", "_latest_state"): (
        "replaced on every new STATE: tells a sink whether a STATE came since a record"
    ),
    ("singer_sdk.target_base:Target", "_sinks_active"): "records pending in every sink",
    ("singer_sdk.plugin_base:PluginBase", "_config"): (
        "the config as given, to mask secret values in the SDK's config errors"
    ),
    ("singer_sdk.sinks.core:Sink", "_warned_missing_fields"): (
        "fields without a schema are warned about once, as the SDK's own parsing does"
    ),
    ("singer_sdk.sinks.batch:BatchSink", "_get_context"): "the plain RECORD path, as the SDK's",
    ("singer_sdk.sinks.core:Sink", "_remove_sdc_metadata_from_record"): (
        "the plain RECORD path, as the SDK's"
    ),
    ("singer_sdk.sinks.core:Sink", "_singer_validate_message"): (
        "the plain RECORD path, as the SDK's"
    ),
    ("singer_sdk.sinks.core:Sink", "_after_process_record"): (
        "the plain RECORD path skips it: the SDK's only logs the batch context at DEBUG"
    ),
    ("singer_sdk.target_base:Target", "_handle_max_record_age"): (
        "the plain RECORD path, as the SDK's"
    ),
    ("singer_sdk.target_base:Target", "_last_full_drain_at"): (
        "the plain RECORD path asks `_handle_max_record_age` only once the oldest "
        "pending record is older than the SDK's limit"
    ),
    ("singer_sdk.target_base:Target", "_MAX_RECORD_AGE_IN_MINUTES"): (
        "the SDK's record age limit, read once per sink for the same check"
    ),
    ("singer_sdk.sinks.core:Sink", "_total_records_read"): (
        "the plain RECORD path adds to it as `tally_record_read` does"
    ),
    ("singer_sdk.sinks.core:Sink", "_batch_records_read"): (
        "the plain RECORD path adds to it as `tally_record_read` does; `is_full` reads "
        "it without the `current_size` properties"
    ),
    ("singer_sdk.target_base:Target", "_max_record_age_in_minutes"): (
        "how old the oldest pending record is, to drain on a STATE"
    ),
}


def raw_config(plugin: Target) -> dict[str, t.Any]:
    """The config as given, also when the SDK's check of it failed (`config` is unset then)."""
    return dict(getattr(plugin, "_config", None) or {})


def latest_state(target: Target) -> object:
    """The STATE the SDK last received (a new object per new STATE)."""
    return getattr(target, "_latest_state", None)


def active_sinks(target: Target) -> list[Sink]:
    """The sinks of the streams seen so far."""
    return list(getattr(target, "_sinks_active", {}).values())


def is_active(target: Target, sink: Sink) -> bool:
    """Whether `sink` still takes its stream's records (a new SCHEMA retires it)."""
    return getattr(target, "_sinks_active", {}).get(sink.stream_name) is sink


def max_record_age_s(target: Target) -> float:
    """Seconds since the oldest record still pending arrived."""
    return float(getattr(target, "_max_record_age_in_minutes", 0.0)) * 60


class Plain(t.NamedTuple):
    """A sink RECORDs go straight to, what its records are checked against, and counted in."""

    sink: Sink
    keys: frozenset[str]
    #: The sink's `record_count` metric.
    counter: metrics.Counter
    #: The SDK's record age limit (`_MAX_RECORD_AGE_IN_MINUTES`), in seconds.
    max_age_s: float


def plain_sink(target: Target, stream_name: object) -> Plain | None:
    """The sink a RECORD of `stream_name` goes straight to, or None for the SDK's path.

    Straight means the SDK's per-record steps would do nothing: one stream map that
    passes records on unchanged under the same name (no stream maps or flattening
    configured), no `_sdc` metadata to add, no record preprocessing overridden.
    """
    maps = target.mapper.stream_maps.get(stream_name)  # type: ignore[call-overload]
    sink = getattr(target, "_sinks_active", {}).get(stream_name)
    found = _plain(maps, sink, stream_name)
    if found is None:
        return None
    return Plain(
        found,
        frozenset(found.key_properties),
        found.record_counter_metric,
        60 * float(target._MAX_RECORD_AGE_IN_MINUTES),  # noqa: SLF001
    )


def _plain(maps: t.Any, sink: t.Any, stream_name: object) -> Sink | None:  # noqa: ANN401 - SDK's untyped
    if sink is None or maps is None or len(maps) != 1:
        return None
    (only,) = maps
    if (
        type(only) is not SameRecordTransform
        or only.flattening_enabled
        or only.stream_alias != stream_name
        or sink.include_sdc_metadata_properties
        or type(sink).preprocess_record is not SdkSink.preprocess_record
        or type(sink)._after_process_record is not SdkSink._after_process_record  # noqa: SLF001
    ):
        return None
    return t.cast("Sink", sink)


#: The metadata columns `Sink._remove_sdc_metadata_from_record` pops.
SDC_METADATA = frozenset(
    {
        "_sdc_extracted_at",
        "_sdc_received_at",
        "_sdc_batched_at",
        "_sdc_deleted_at",
        "_sdc_sequence",
        "_sdc_table_version",
        "_sdc_sync_started_at",
    }
)


def process_plain_record(target: Target, plain: Plain, record: dict[str, t.Any]) -> None:
    """The SDK's RECORD steps that do something for a plain sink, in the SDK's order.

    Skipped: the record's copy (the reader made the dict for this message alone), the
    identity map, the sink look-ups, the empty preprocessing hook and the SDK's
    after-record hook (one DEBUG line of the batch context, naming no record). The
    metadata removal and the key check are called only when they have something to
    do, which a look at the record's keys tells.
    """
    sink = plain.sink
    context = sink._get_context(record)  # noqa: SLF001
    if not SDC_METADATA.isdisjoint(record):
        sink._remove_sdc_metadata_from_record(record)  # noqa: SLF001
    sink._validate_and_parse(record)  # noqa: SLF001
    if not record.keys() >= plain.keys:
        sink._singer_validate_message(record)  # noqa: SLF001 - raises the SDK's error
    # `tally_record_read()`, `record_counter_metric.increment()` and
    # `_handle_max_record_age()` inline: with `is_full`, about a twentieth of a record's
    # time. The counter's periodic METRIC line comes at each drain instead
    # (`log_record_count`), and its total at the end as before.
    sink._total_records_read += 1  # noqa: SLF001
    sink._batch_records_read += 1  # noqa: SLF001
    sink.process_record(record, context)
    plain.counter.value += 1
    if sink.is_full:
        target.logger.info(
            "Target sink for %r is full. Current size is '%s'. Draining...",
            sink.stream_name,
            sink.current_size,
        )
        target.drain_one(sink)
    if time.time() - target._last_full_drain_at > plain.max_age_s:  # noqa: SLF001
        target._handle_max_record_age()  # noqa: SLF001 - logs, drains all, resets the age


def log_record_count(sink: Sink) -> None:
    """The `record_count` METRIC line, when its interval has passed since the last one.

    The plain RECORD path adds to the counter's value without asking the clock;
    each drain asks instead.
    """
    sink.record_counter_metric.increment(0)
