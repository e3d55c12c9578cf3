"""Run the tap with `python -m tap_mparticle`."""

from __future__ import annotations

from tap_mparticle.tap import TapMParticle

TapMParticle.cli()
