"""Running the real `meltano` CLI from this virtualenv on the project or a copy of it."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from tests.support.files import REPO_ROOT

BIN = Path(sys.executable).parent
MELTANO = str(BIN / "meltano")


def linked_project_copy(tmp_path: Path) -> Path:
    """meltano.yml in a new directory, with `.meltano/` linked so the installed plugins are reused.

    Editable installs resolve `-e .` to the repository, which the copy is not.
    """
    root = tmp_path / "project"
    root.mkdir()
    shutil.copyfile(REPO_ROOT / "meltano.yml", root / "meltano.yml")
    (root / ".meltano").mkdir()
    for kind in ("extractors", "loaders"):
        (root / ".meltano" / kind).symlink_to(REPO_ROOT / ".meltano" / kind)
    return root


def meltano(
    root: Path, env: dict[str, str], *args: str, timeout: int = 240
) -> subprocess.CompletedProcess[str]:
    """`meltano ARGS` in project `root`, output captured, never raising on a non-zero exit."""
    return subprocess.run(
        [MELTANO, *args],
        cwd=root,
        env={**env, "MELTANO_PROJECT_ROOT": str(root)},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
