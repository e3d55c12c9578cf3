"""Write Meltano Hub definitions of both plugins into plugins/, from meltano.yml and --about.

The files follow the Hub's layout (`<plugin type>/<name>/<variant>.yml`) and its plugin
definition syntax: name, variant, namespace, label, description, docs, repo, pip_url,
executable, capabilities, settings, settings_group_validation, plus the Hub's listing
fields (domain_url, logo_url, keywords, maintenance_status) and the Python versions
the SDK's --about reports. Settings and capabilities are copied from meltano.yml, so
there is one place to edit; tests/test_docs.py fails when plugins/ falls behind.

    .venv/bin/python scripts/hub_definitions.py          # rewrite plugins/
    .venv/bin/python scripts/hub_definitions.py --check  # exit 1 if stale
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
VARIANT = "mparticle-singer"
LISTING: dict[str, dict[str, Any]] = {
    "tap-mparticle": {
        "kind": "extractors",
        "label": "mParticle (cloud storage drops)",
        "description": "Customer data platform: event batches and audience files mParticle "
        "writes to Amazon S3, Google Cloud Storage or Azure Blob Storage",
        "keywords": [
            "meltano_sdk",
            "mparticle",
            "s3",
            "gcs",
            "azure",
            "cdp",
            "events",
            "audiences",
        ],
    },
    "target-mparticle": {
        "kind": "loaders",
        "label": "mParticle (Events API)",
        "description": "Customer data platform: records into mParticle's server-to-server "
        "Events API",
        "keywords": ["meltano_sdk", "mparticle", "api", "cdp", "reverse-etl"],
    },
}


def definitions() -> dict[Path, str]:
    """Every Hub definition file, by path, as YAML text."""
    from tap_mparticle.tap import TapMParticle  # noqa: PLC0415  (scripts run from the root)

    urls = project_urls()
    project = yaml.safe_load((ROOT / "meltano.yml").read_text(encoding="utf-8"))
    pythons = TapMParticle.get_supported_python_versions() or []
    files: dict[Path, str] = {}
    for name, listing in LISTING.items():
        plugin = next(p for p in project["plugins"][listing["kind"]] if p["name"] == name)
        definition = {
            "name": name,
            "variant": VARIANT,
            "namespace": plugin["namespace"],
            "label": listing["label"],
            "description": listing["description"],
            "docs": urls["Documentation"],
            "repo": urls["Repository"],
            "pip_url": f"git+{urls['Repository']}.git",
            "executable": plugin["executable"],
            "domain_url": "https://www.mparticle.com/",
            "logo_url": f"/assets/logos/{listing['kind']}/mparticle.png",
            "keywords": listing["keywords"],
            "maintenance_status": "beta",
            "supported_python_versions": pythons,
            "capabilities": plugin["capabilities"],
            "settings_group_validation": plugin["settings_group_validation"],
            "settings": plugin["settings"],
        }
        path = ROOT / "plugins" / listing["kind"] / name / f"{VARIANT}.yml"
        files[path] = yaml.safe_dump(definition, sort_keys=False, allow_unicode=True, width=88)
    return files


def project_urls() -> dict[str, str]:
    """The `[project.urls]` table of pyproject.toml (no tomllib before Python 3.11)."""
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    table = text.split("[project.urls]", 1)[1].split("\n[", 1)[0]
    return dict(re.findall(r'^(\w+) = "([^"]+)"$', table, flags=re.MULTILINE))


def main() -> int:
    """Rewrite plugins/, or with --check exit 1 when it is stale."""
    stale = [path for path, text in definitions().items() if not _same(path, text)]
    if "--check" in sys.argv:
        for path in stale:
            print(f"stale: {path.relative_to(ROOT)} (run `make docs`)", file=sys.stderr)
        return 1 if stale else 0
    for path, text in definitions().items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return 0


def _same(path: Path, text: str) -> bool:
    return path.is_file() and path.read_text(encoding="utf-8") == text


if __name__ == "__main__":
    sys.exit(main())
