"""The packages' layout: arrows only point down, no import circle, no module over 500 lines.

Each module sits in a layer; it may import modules of its own layer or below, never
above (type-only imports included: a stream does not reach back into the tap, a sink
not into the target; what they need is passed in). A new module must be placed here,
which is the moment to decide where it belongs.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("mparticle_facts", "tap_mparticle", "target_mparticle")
MAX_LINES = 500

# Bottom to top. Within a package, lower layers know nothing of higher ones.
LAYERS: list[set[str]] = [
    # What both plugins share: facts about mParticle's data.
    {
        "mparticle_facts",
        "mparticle_facts.identities",
        "mparticle_facts.numbers",
        "mparticle_facts.plugin_guards",
        "mparticle_facts.env_config",
    },
    # tap: bytes, storage, state, and the guards round config and logs.
    {
        "tap_mparticle",
        "tap_mparticle.parsers",
        "tap_mparticle.jsondocs",
        "tap_mparticle.aws_session",
        "tap_mparticle.storage",
        "tap_mparticle.storage_gcs",
        "tap_mparticle.storage_azure",
        "tap_mparticle.storage_stream",
        "tap_mparticle.cloud_config",
        "tap_mparticle.backends",
        "tap_mparticle.cursor",
        "tap_mparticle.state_shape",
        "tap_mparticle.sharding",
        "tap_mparticle.reshard",
        "tap_mparticle.folders",
        "tap_mparticle.prefetch",
        "tap_mparticle.late_files",
        "tap_mparticle.bad_input",
        "tap_mparticle.preflight",
        "tap_mparticle.schema_objects",
        "tap_mparticle.writer",
        "tap_mparticle.sdk_hooks",
        "tap_mparticle.interrupt",
        "tap_mparticle.listing_log",
        "tap_mparticle.catalog_checks",
    },
    # tap: formats, bytes to records (no storage, no SDK).
    {
        "tap_mparticle.events",
        "tap_mparticle.audience_records",
        "tap_mparticle.audience_download",
        "tap_mparticle.audiences",
    },
    {"tap_mparticle.settings"},
    # tap: streams.
    {"tap_mparticle.client", "tap_mparticle.streams", "tap_mparticle.audience_streams"},
    {"tap_mparticle.tap", "tap_mparticle.__main__"},
    # target: facts about the inbound schema, clocks, policies, guards.
    {
        "target_mparticle",
        "target_mparticle._compat",
        "target_mparticle.schema_rules",
        "target_mparticle.fastcheck",
        "target_mparticle.inbound",
        "target_mparticle.clock",
        "target_mparticle.pacing",
        "target_mparticle.transport",
        "target_mparticle.invalid",
        "target_mparticle.lenient_json",
        "target_mparticle.preflight",
        "target_mparticle.output_paths",
        "target_mparticle.sdk_hooks",
        "target_mparticle.validation",
        "target_mparticle.values",
    },
    # target: records to batches (pure).
    {
        "target_mparticle.consent",
        "target_mparticle.event_fields",
        "target_mparticle.mapping",
        "target_mparticle.items",
        "target_mparticle.mapped",
        "target_mparticle.audience_rows",
        "target_mparticle.coerce",
        "target_mparticle.clean",
        "target_mparticle.convert",
        "target_mparticle.assemble",
        "target_mparticle.ignored",
    },
    {"target_mparticle.settings"},
    # target: sending.
    {"target_mparticle.client", "target_mparticle.report"},
    {"target_mparticle.overlap"},
    {"target_mparticle.delivery"},
    {"target_mparticle.sinks"},
    {"target_mparticle.target", "target_mparticle.__main__"},
]
LAYER_OF = {module: index for index, layer in enumerate(LAYERS) for module in layer}


def modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).glob("*.py")):
            name = package if path.stem == "__init__" else f"{package}.{path.stem}"
            found[name] = path
    return found


def imports_of(path: Path, known: set[str]) -> set[str]:
    """Our modules a file imports, type-only imports included."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                candidate = f"{node.module}.{alias.name}"
                found.add(candidate if candidate in known else node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name in known}


GRAPH = {name: imports_of(path, set(modules())) - {name} for name, path in modules().items()}


def test_every_module_has_a_layer():
    assert sorted(set(GRAPH) - set(LAYER_OF)) == []


@pytest.mark.parametrize("module", sorted(GRAPH))
def test_imports_point_down(module):
    upward = sorted(dep for dep in GRAPH[module] if LAYER_OF[dep] > LAYER_OF[module])
    assert upward == [], f"{module} imports modules above it: {upward}"
    crossing = sorted(
        dep
        for dep in GRAPH[module]
        if dep.split(".")[0] not in {module.split(".")[0], "mparticle_facts"}
    )
    assert crossing == [], f"{module} imports the other plugin: {crossing}"


def test_no_import_circle():
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> None:
        if module in path:
            cycle = [*path[path.index(module) :], module]
            pytest.fail("import circle: " + " -> ".join(cycle))
        if module in done:
            return
        for dep in sorted(GRAPH[module]):
            visit(dep, [*path, module])
        done.add(module)

    for module in sorted(GRAPH):
        visit(module, [])


@pytest.mark.parametrize("module", sorted(GRAPH))
def test_no_module_is_over_500_lines(module):
    lines = len(modules()[module].read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, f"{module} has {lines} lines: split it by concern"
