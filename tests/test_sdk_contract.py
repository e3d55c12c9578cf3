"""The private Singer SDK parts both plugins rely on are the ones listed, unchanged.

Each plugin lists what it overrides or reads in its `sdk_hooks` module, with why.
This test fails when an SDK upgrade renames one, changes its signature or changes its
code (a fingerprint of its source), and when a plugin overrides a private SDK method
without listing it: read the SDK's new code, adapt ours, then update the fingerprint.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import re

import pytest
from singer_sdk import Stream, Target
from singer_sdk.plugin_base import PluginBase
from singer_sdk.sinks import Sink

from tap_mparticle import sdk_hooks as tap_hooks
from tap_mparticle.audience_streams import AudienceFileStream
from tap_mparticle.client import MParticleFileStream
from tap_mparticle.streams import BatchesStream, EventsStream
from tap_mparticle.tap import TapMParticle
from target_mparticle import sdk_hooks as target_hooks
from target_mparticle.sinks import EventsSink
from target_mparticle.target import TargetMParticle

# SHA-256 (first 16 hex digits) of each method's source in singer-sdk 0.54.
FINGERPRINTS = {
    ("singer_sdk.streams.core:Stream", "_write_state_message"): "f82ecd8d16986823",
    ("singer_sdk.streams.core:Stream", "_generate_record_messages"): "9b5f9fbcdedb7a1a",
    ("singer_sdk.streams.core:Stream", "_increment_stream_state"): "cabc0edb2fd4f000",
    ("singer_sdk.streams.core:Stream", "log"): "09addc57198bbc45",
    ("singer_sdk.plugin_base:PluginBase", "cb_config"): "bb313c8c34f6ff33",
    ("singer_sdk.singerlib.encoding.base:GenericSingerReader", "process_lines"): "f6d848854616d1d8",
    (
        "singer_sdk.singerlib.encoding.base:GenericSingerReader",
        "assert_line_requires",
    ): "91c2ae04d02f56c8",
    ("singer_sdk.target_base:Target", "_process_state_message"): "e27158e2b1e7ea6d",
    ("singer_sdk.target_base:Target", "_write_state_message"): "bf40aa5e36ebef4d",
    ("singer_sdk.target_base:Target", "_handle_termination"): "0d610b822293792b",
    ("singer_sdk.tap_base:Tap", "_handle_termination"): "2bb79ae47769883a",
    ("singer_sdk.target_base:Target", "_max_record_age_in_minutes"): "a31b250546161e1b",
    ("singer_sdk.target_base:Target", "_drain_all"): "8160903b09186596",
    ("singer_sdk.sinks.core:Sink", "_parse_timestamps_in_record"): "b99dc17613b2e3ac",
    ("singer_sdk.target_base:Target", "_process_record_message"): "08aaf4096e2d39e7",
    ("singer_sdk.target_base:Target", "_process_schema_message"): "ed6e8449bc8ff234",
    ("singer_sdk.target_base:Target", "_process_activate_version_message"): "377950028ca9b3eb",
    ("singer_sdk.target_base:Target", "_handle_max_record_age"): "5762750ab1035404",
    ("singer_sdk.sinks.batch:BatchSink", "_get_context"): "4e0d39040097dc9b",
    ("singer_sdk.sinks.core:Sink", "_remove_sdc_metadata_from_record"): "7cd9e5fb192f13ec",
    ("singer_sdk.sinks.core:Sink", "_validate_and_parse"): "970aadabcc4da8c7",
    ("singer_sdk.sinks.core:Sink", "_singer_validate_message"): "018b08ee7f624f61",
    ("singer_sdk.sinks.core:Sink", "_after_process_record"): "185b5536ec21f7fb",
    ("singer_sdk.helpers._util", "utc_now"): "79d85139ddece0a3",
    ("singer_sdk.plugin_base:PluginBase", "_env_var_config"): "4e00272a5767a9a1",
    ("singer_sdk.plugin_base:PluginBase", "_env_var_prefix"): "87d8f7483c457e29",
    ("singer_sdk.helpers._classproperty", "classproperty"): "033fad34bfcf42c1",
}
LISTED = {
    **tap_hooks.OVERRIDDEN,
    **tap_hooks.READ,
    **target_hooks.OVERRIDDEN,
    **target_hooks.READ,
}


def resolve(path: str) -> object:
    module, _, name = path.partition(":")
    found = importlib.import_module(module)
    return getattr(found, name) if name else found


def source_of(owner: object, name: str) -> str | None:
    """The source of a function, method or property; None for an attribute holding data."""
    found = inspect.getattr_static(owner, name, None)
    if found is None or isinstance(found, (int, float, str)):
        return None
    if isinstance(found, (classmethod, staticmethod)):
        found = found.__func__
    if isinstance(found, property):
        found = found.fget
    return inspect.getsource(found)


@pytest.mark.parametrize(("owner", "name"), sorted(LISTED))
def test_each_listed_sdk_part_exists_unchanged(owner, name):
    assert LISTED[(owner, name)], "say why"
    resolved = resolve(owner)
    source = source_of(resolved, name)
    if source is None:
        # Set in __init__ or the class body: the SDK's own code must still assign it.
        assignment = re.compile(rf"(self\.|^    ){name}\s*(:[^=]*)?=", re.MULTILINE)
        assert assignment.search(inspect.getsource(resolved)), (owner, name)
        return
    fingerprint = hashlib.sha256(source.encode()).hexdigest()[:16]
    assert fingerprint == FINGERPRINTS[(owner, name)], (
        f"{owner}.{name} changed in this singer-sdk: re-read it against our use "
        f"({LISTED[(owner, name)]}), then update its fingerprint"
    )


@pytest.mark.parametrize(
    "ours",
    [
        TapMParticle,
        MParticleFileStream,
        AudienceFileStream,
        EventsStream,
        BatchesStream,
        TargetMParticle,
        EventsSink,
    ],
)
def test_every_private_sdk_method_we_override_is_listed(ours):
    sdk_bases = [c for c in ours.__mro__ if c.__module__.startswith("singer_sdk")]
    listed = {name for _, name in LISTED}
    for name, member in vars(ours).items():
        if not name.startswith("_") or name.startswith("__"):
            continue
        if not callable(member) and not isinstance(member, (property, classmethod)):
            continue  # class data such as abc's bookkeeping
        if any(name in vars(base) for base in sdk_bases):
            assert name in listed, f"{ours.__name__}.{name} overrides the SDK but is not listed"


def test_the_sdk_classes_we_list_are_the_ones_we_build_on():
    assert issubclass(TargetMParticle, Target)
    assert issubclass(EventsSink, Sink)
    assert issubclass(MParticleFileStream, Stream)
    assert issubclass(TapMParticle, PluginBase)
