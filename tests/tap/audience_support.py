"""Helpers for the audience stream tests: the generator, stream selection, schema checks."""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
from typing import TYPE_CHECKING, Any

import jsonschema

from tap_mparticle.tap import TapMParticle
from tests.s3support import REPO_ROOT
from tests.tapsupport import TapOutput

if TYPE_CHECKING:
    from types import ModuleType

AUDIENCE_STREAMS = ("audience_memberships", "audience_user_attributes")
KEY = ("_sdc_source_file", "_sdc_source_member", "_sdc_source_lineno", "_sdc_record_index")


def load_generator() -> ModuleType:
    """scripts/generate_audiences.py as a module (scripts/ is not a package)."""
    path = REPO_ROOT / "scripts" / "generate_audiences.py"
    spec = importlib.util.spec_from_file_location("generate_audiences", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


generator = load_generator()


def selected_catalog(config: dict[str, Any], streams: tuple[str, ...]) -> dict[str, Any]:
    """The discovered catalog with only `streams` selected."""
    catalog = TapMParticle(config=config).catalog_dict
    for entry in catalog["streams"]:
        for metadata in entry["metadata"]:
            if metadata["breadcrumb"] == []:
                metadata["metadata"]["selected"] = entry["tap_stream_id"] in streams
    return catalog


def run_selected(
    config: dict[str, Any],
    streams: tuple[str, ...],
    state: dict[str, Any] | None = None,
) -> TapOutput:
    """Sync in-process with only `streams` selected."""
    catalog = selected_catalog(config, streams)
    buffer = io.BytesIO()
    wrapper = io.TextIOWrapper(buffer, encoding="utf-8")
    with contextlib.redirect_stdout(wrapper):
        TapMParticle(config=config, catalog=catalog, state=state).sync_all()
        wrapper.flush()
    messages = [json.loads(line) for line in buffer.getvalue().splitlines() if line.strip()]
    return TapOutput(messages)


def assert_valid(output: TapOutput, stream: str) -> list[dict[str, Any]]:
    """Validate every record of `stream` against its SCHEMA message; return the records."""
    schema = output.schema(stream)["schema"]
    validator = jsonschema.Draft7Validator(schema, format_checker=jsonschema.FormatChecker())
    records = output.records(stream)
    for record in records:
        errors = sorted(validator.iter_errors(record), key=str)
        assert not errors, (record, [e.message for e in errors])
    return records


def keys(records: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """Primary keys of the records, in order."""
    return [tuple(r[k] for k in KEY) for r in records]
