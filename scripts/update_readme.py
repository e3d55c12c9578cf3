"""Regenerate the README's settings tables from each plugin's `--about --format=markdown`.

The tables are never edited by hand: a setting's description lives in the config
schema, and tests/test_docs.py fails when the README falls behind it.

Usage: python scripts/update_readme.py [--check]
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PLUGINS = {"tap-settings": "tap_mparticle", "target-settings": "target_mparticle"}


def settings_section(module: str) -> str:
    """The `## Settings` part of a plugin's about text, headings moved down two levels."""
    about = subprocess.run(
        [sys.executable, "-m", module, "--about", "--format=markdown"],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    ).stdout
    start = about.index("## Settings")
    section = about[start:].strip()
    return re.sub(r"^(#+) ", lambda m: "#" * (len(m[1]) + 2) + " ", section, flags=re.MULTILINE)


def render(readme: str) -> str:
    """Return the README with every marked block replaced by fresh output."""
    for marker, module in PLUGINS.items():
        begin, end = f"<!-- {marker}:start -->", f"<!-- {marker}:end -->"
        if begin not in readme:
            continue
        head, rest = readme.split(begin, 1)
        _, tail = rest.split(end, 1)
        readme = f"{head}{begin}\n{settings_section(module)}\n{end}{tail}"
    return readme


def main() -> int:
    """Rewrite README.md, or with --check exit 1 if it is stale."""
    current = README.read_text(encoding="utf-8")
    fresh = render(current)
    if "--check" in sys.argv:
        if fresh != current:
            print("README.md settings tables are stale: run `make docs`", file=sys.stderr)
            return 1
        return 0
    README.write_text(fresh, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
