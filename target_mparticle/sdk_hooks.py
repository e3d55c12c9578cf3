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

import typing as t

if t.TYPE_CHECKING:
    from singer_sdk import Target
    from singer_sdk.sinks import Sink

#: Methods the target overrides: (SDK class, method) -> why.
OVERRIDDEN: dict[tuple[str, str], str] = {
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
    ("singer_sdk.plugin_base:PluginBase", "cb_config"): (
        "a config file that is not a JSON object is one line, not a traceback"
    ),
}

#: Attributes the target reads: (SDK class, attribute) -> why.
READ: dict[tuple[str, str], str] = {
    ("singer_sdk.target_base:Target", "_latest_state"): (
        "replaced on every new STATE: tells a sink whether a STATE came since a record"
    ),
    ("singer_sdk.target_base:Target", "_sinks_active"): "records pending in every sink",
    ("singer_sdk.target_base:Target", "_max_record_age_in_minutes"): (
        "how old the oldest pending record is, to drain on a STATE"
    ),
}


def latest_state(target: Target) -> object:
    """The STATE the SDK last received (a new object per new STATE)."""
    return getattr(target, "_latest_state", None)


def active_sinks(target: Target) -> list[Sink]:
    """The sinks of the streams seen so far."""
    return list(getattr(target, "_sinks_active", {}).values())


def max_record_age_s(target: Target) -> float:
    """Seconds since the oldest record still pending arrived."""
    return float(getattr(target, "_max_record_age_in_minutes", 0.0)) * 60
