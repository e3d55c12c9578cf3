"""Fixtures for the tap suites: a generated drop, served from each storage backend."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from scripts.generate_drop import DropSummary, generate_drop
from tests.s3support import STORAGES, serve_drop, strict_moto

if TYPE_CHECKING:
    import datetime as dt
    from collections.abc import Iterator
    from pathlib import Path

    from tests.s3support import Publish


class Drop:
    """A drop on disk plus the config that reaches it through one backend."""

    def __init__(
        self, root: Path, config: dict[str, Any], summary: DropSummary | None, publish: Publish
    ) -> None:
        self.root = root
        self.config = config
        self._summary = summary
        self._publish = publish

    @property
    def summary(self) -> DropSummary:
        assert self._summary is not None, "an empty bucket has no summary"
        return self._summary

    def publish(self, modified_at: dt.datetime | None = None) -> None:
        """Make files added under `root` since the last publish visible to the tap.

        With `modified_at`, they carry that LastModified (updated, mtime).
        """
        self._publish(modified_at)


@pytest.fixture(params=STORAGES)
def drop(request, tmp_path: Path) -> Drop:
    """The generated sample drop, read from a directory, moto, fake-gcs-server or Azurite."""
    root = tmp_path / "drop"
    summary = generate_drop(root, events=600, seed=11)
    config, publish = serve_drop(request, root)
    return Drop(root, config, summary, publish)


@pytest.fixture(params=STORAGES)
def empty_drop(request, tmp_path: Path) -> Drop:
    """An empty bucket (directory, container) on each backend, for files a test publishes."""
    root = tmp_path / "drop"
    root.mkdir()
    config, publish = serve_drop(request, root)
    return Drop(root, config, None, publish)


@pytest.fixture
def strict_moto_endpoint() -> Iterator[str]:
    """A credential-checking moto server where nothing has been set up."""
    with strict_moto() as endpoint:
        yield endpoint
