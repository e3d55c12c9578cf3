"""Fixtures for the tap suites: a generated drop, served from a directory or from moto."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from scripts.generate_drop import DropSummary, generate_drop
from tests.s3support import serve_drop, strict_moto

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path


class Drop:
    """A drop on disk plus the config that reaches it through one backend."""

    def __init__(
        self, root: Path, config: dict[str, Any], summary: DropSummary, publish: Callable[[], None]
    ) -> None:
        self.root = root
        self.config = config
        self.summary = summary
        self._publish = publish

    def publish(self) -> None:
        """Make files added under `root` since the last publish visible to the tap."""
        self._publish()


@pytest.fixture(params=["local", "s3"])
def drop(request, tmp_path: Path) -> Drop:
    """The generated sample drop, read from a local directory or from a moto bucket."""
    root = tmp_path / "drop"
    summary = generate_drop(root, events=600, seed=11)
    config, publish = serve_drop(request, root)
    return Drop(root, config, summary, publish)


@pytest.fixture
def strict_moto_endpoint() -> Iterator[str]:
    """A credential-checking moto server where nothing has been set up."""
    with strict_moto() as endpoint:
        yield endpoint
