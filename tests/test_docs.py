"""README and meltano.yml say what the code does: both are checked against the config schemas."""

from __future__ import annotations

import pytest
import yaml
from singer_sdk.helpers import capabilities

from scripts.update_readme import README, render
from tap_mparticle.tap import TapMParticle
from target_mparticle.target import TargetMParticle
from tests.support.files import REPO_ROOT

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
    cls = PLUGINS[kind, name]
    full = {**cls.config_jsonschema, "properties": dict(cls.config_jsonschema["properties"])}
    cls.append_builtin_config(full)  # as `--about` shows them
    schema = full["properties"]
    settings = {s["name"]: s for s in meltano_plugin(kind, name)["settings"]}
    # Every setting is declared, the SDK's built-ins too: undeclared, Meltano stores
    # `meltano config set ... validate_records false` as the text "false".
    assert set(settings) == set(schema)
    # Meltano decides from these what it may ask of the plugin (state, catalog, ...).
    assert set(meltano_plugin(kind, name)["capabilities"]) == {c.value for c in cls.capabilities}
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


def own_settings(cls) -> dict[str, dict]:
    builtin = sdk_builtin_settings()
    return {k: v for k, v in cls.config_jsonschema["properties"].items() if k not in builtin}


def env_example() -> dict[str, str]:
    """NAME -> value of every `NAME=value` line, commented out (a default) or not."""
    found = {}
    for line in (REPO_ROOT / ".env.example").read_text(encoding="utf-8").splitlines():
        entry = line.removeprefix("# ")
        name, sep, value = entry.partition("=")
        if sep and name.isupper() and name.replace("_", "").isalnum():
            found[name] = value
    return found


@pytest.mark.parametrize(("kind", "name"), list(PLUGINS))
def test_env_example_lists_every_setting_with_its_default(kind, name):
    prefix = name.upper().replace("-", "_") + "_"
    listed = {
        k.removeprefix(prefix).lower(): v for k, v in env_example().items() if k.startswith(prefix)
    }
    schema = own_settings(PLUGINS[kind, name])
    assert set(listed) == set(schema), kind
    for setting, value in listed.items():
        default = schema[setting].get("default")
        if isinstance(default, (str, int, float)) and not isinstance(default, bool) and value:
            assert value == str(default), (setting, value, default)
        if isinstance(default, bool):
            assert value == str(default).lower(), setting


def test_readme_sections_come_in_the_order_users_expect():
    text = README.read_text(encoding="utf-8")
    sections = [line[3:] for line in text.splitlines() if line.startswith("## ")]
    assert sections == [
        "Install",
        "Quick start with Meltano",
        "Configuration",
        "Usage",
        "Capabilities",
        "Architecture",
        "Development",
    ]
    usage = text.split("\n## Usage\n", 1)[1].split("\n## ", 1)[0]
    assert usage.index("### tap-mparticle") < usage.index("### target-mparticle")


def test_hub_definitions_are_in_step_with_meltano_yml():
    from scripts.hub_definitions import LISTING, definitions  # noqa: PLC0415

    files = definitions()
    assert len(files) == len(LISTING)
    for path, text in files.items():
        assert path.is_file(), f"{path} missing: run `make docs`"
        assert path.read_text(encoding="utf-8") == text, f"{path} is stale: run `make docs`"
        definition = yaml.safe_load(text)
        for key in (
            "name", "variant", "namespace", "label", "description", "docs", "repo",
            "logo_url", "keywords", "maintenance_status", "supported_python_versions",
            "capabilities", "settings",
        ):  # fmt: skip
            assert definition.get(key), (path.name, key)
        assert definition["maintenance_status"] in {
            "active", "beta", "development", "inactive", "deprecated", "unknown"
        }  # fmt: skip
        plugin = PLUGINS[LISTING[definition["name"]]["kind"], definition["name"]]
        names = {s["name"] for s in definition["settings"]}
        assert set(own_settings(plugin)) <= names
        assert names - set(own_settings(plugin)) <= sdk_builtin_settings()


def test_pre_commit_runs_the_venv_tools_and_the_docs_checks():
    import subprocess  # noqa: PLC0415
    import sys  # noqa: PLC0415
    from pathlib import Path  # noqa: PLC0415

    config_path = REPO_ROOT / ".pre-commit-config.yaml"
    bin_dir = Path(sys.executable).parent
    valid = subprocess.run(
        [str(bin_dir / "pre-commit"), "validate-config", str(config_path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert valid.returncode == 0, valid.stdout + valid.stderr
    hooks = [h for repo in yaml.safe_load(config_path.read_text())["repos"] for h in repo["hooks"]]
    assert {h["id"] for h in hooks} >= {"ruff-check", "ruff-format", "readme-settings"}
    for hook in hooks:
        assert hook["language"] == "system"
        assert hook["entry"].startswith(".venv/bin/")
    for hook in hooks:
        if hook["id"] in {"readme-settings", "hub-definitions"}:
            argv = hook["entry"].split()
            done = subprocess.run(
                [sys.executable, *argv[1:]], cwd=REPO_ROOT, capture_output=True, check=False
            )
            assert done.returncode == 0, hook["id"]
