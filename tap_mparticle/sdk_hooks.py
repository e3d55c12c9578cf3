"""Every private part of the Singer SDK tap-mparticle relies on, in one place, with why.

A file tap needs what the SDK keeps private: STATE per file rather than per record,
record messages without the SDK's per-record walk, and the stream's tap. The stream
base (`client.py`) and the tap override or read only the names listed here.
`tests/test_sdk_contract.py` checks each against the installed SDK (it exists, its
signature, and a fingerprint of its source), so an SDK upgrade that renames or
changes one fails the suite instead of silently changing what the tap does. Re-read
the SDK's new code before updating a fingerprint.
"""

from __future__ import annotations

import typing as t

if t.TYPE_CHECKING:
    from singer_sdk import Tap

#: Methods the tap overrides: (SDK class, method) -> why.
OVERRIDDEN: dict[tuple[str, str], str] = {
    ("singer_sdk.plugin_base:PluginBase", "_env_var_config"): (
        "--config ENV: a .env from the working directory only, never over the real "
        "environment, and every value checked in one line (plugin_guards)"
    ),
    ("singer_sdk.streams.core:Stream", "_write_state_message"): (
        "STATE is written between files only, spaced out, with the history compacted"
    ),
    ("singer_sdk.streams.core:Stream", "_generate_record_messages"): (
        "the SDK walks every nested dict for deselected sub-properties; ours have none"
    ),
    ("singer_sdk.streams.core:Stream", "_increment_stream_state"): (
        "the bookmark moves per file (a file may hold no records), never per record"
    ),
    ("singer_sdk.streams.core:Stream", "log"): (
        "no generic 'unhandled error' line before the tap's own one-line error"
    ),
    ("singer_sdk.tap_base:Tap", "_handle_termination"): (
        "SIGINT/SIGTERM: the SDK writes STATE and exits 0; ours logs an ERROR naming the "
        "signal, writes no STATE and exits 128 + the signal number (interrupt.py)"
    ),
    ("singer_sdk.plugin_base:PluginBase", "cb_config"): (
        "a config file that is not a JSON object is one line, not a traceback"
    ),
}

#: Attributes and functions the tap reads: (SDK module or class, name) -> why.
READ: dict[tuple[str, str], str] = {
    ("singer_sdk.helpers._classproperty", "classproperty"): (
        "the decorator the SDK declares _env_var_config with, to override it in kind"
    ),
    ("singer_sdk.plugin_base:PluginBase", "_env_var_prefix"): (
        "the TAP_MPARTICLE_ / TARGET_MPARTICLE_ prefix the SDK names variables by"
    ),
    ("singer_sdk.streams.core:Stream", "_tap"): (
        "the stream's tap, for the settings and the one storage client"
    ),
    ("singer_sdk.streams.core:Stream", "_stream_version"): (
        "the version every RECORD message carries"
    ),
    ("singer_sdk.helpers._util", "utc_now"): "the time_extracted the SDK itself stamps",
    ("singer_sdk.plugin_base:PluginBase", "_config"): (
        "the config as given, to mask secret values in the SDK's config errors"
    ),
}


def raw_config(plugin: Tap) -> dict[str, t.Any]:
    """The config as given, also when the SDK's check of it failed (`config` is unset then)."""
    return dict(getattr(plugin, "_config", None) or {})
