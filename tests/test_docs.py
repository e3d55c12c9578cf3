"""README and meltano.yml say what the code does: both are checked against the config schemas."""

from __future__ import annotations

import pytest
import yaml
from singer_sdk.helpers import capabilities

from scripts.update_readme import README, render
from tap_mparticle.tap import TapMParticle
from target_mparticle.target import TargetMParticle
from tests.s3support import REPO_ROOT

PLUGINS = {
    ("extractors", "tap-mparticle"): TapMParticle,
    ("loaders", "target-mparticle"): TargetMParticle,
}
KIND_BY_TYPE = {
    "string": {"string", "date_iso8601", "options"},
    "integer": {"integer"},
    # Meltano 4.4's `decimal` kind crashes serialising the config (Decimal is not JSON
    # serialisable), so fractional settings are declared `integer` for Meltano.
    "number": {"integer"},
    "boolean": {"boolean"},
    "array": {"array"},
    "object": {"object"},
}


def test_readme_settings_tables_match_about_output():
    current = README.read_text(encoding="utf-8")
    assert "<!-- tap-settings:start -->" in current
    assert "<!-- target-settings:start -->" in current
    assert render(current) == current, "README settings tables are stale: run `make docs`"


def test_readme_gives_the_two_commands_first():
    text = README.read_text(encoding="utf-8")
    first_section = text.split("\n## ", 2)[1]
    assert "make demo" in first_section
    assert "make test" in first_section


def meltano_plugin(kind: str, name: str) -> dict:
    project = yaml.safe_load((REPO_ROOT / "meltano.yml").read_text())
    return next(p for p in project["plugins"][kind] if p["name"] == name)


def json_types(prop: dict) -> set[str]:
    if "anyOf" in prop:
        return {t for sub in prop["anyOf"] for t in json_types(sub)}
    raw = prop.get("type", [])
    return {raw} if isinstance(raw, str) else set(raw)


def sdk_builtin_settings() -> set[str]:
    """Settings the SDK adds to every plugin's schema (stream maps, flattening, ...)."""
    return {
        name
        for value in vars(capabilities).values()
        if isinstance(value, dict) and isinstance(value.get("properties"), dict)
        for name in value["properties"]
    }


@pytest.mark.parametrize(("kind", "name"), list(PLUGINS))
def test_meltano_settings_match_the_config_schema(kind, name):
    builtin = sdk_builtin_settings()
    schema = PLUGINS[kind, name].config_jsonschema["properties"]
    settings = {s["name"]: s for s in meltano_plugin(kind, name)["settings"]}
    # Every setting of our own is declared; SDK built-ins may be declared too.
    assert set(settings) - builtin == set(schema) - builtin
    assert set(settings) <= set(schema)
    for setting_name, prop in schema.items():
        if setting_name not in settings:
            continue
        setting = settings[setting_name]
        assert bool(setting.get("sensitive")) == bool(prop.get("secret")), setting_name
        assert setting.get("label"), setting_name
        assert setting.get("description"), setting_name
        types = json_types(prop) - {"null"}
        allowed = set().union(*(KIND_BY_TYPE[t] for t in types))
        assert setting.get("kind", "string") in allowed, (setting_name, setting.get("kind"), types)
        if prop.get("enum"):
            assert setting["kind"] == "options", setting_name
            assert {o["value"] for o in setting["options"]} == set(prop["enum"]) - {None}
