"""Lets ``python -m target_mparticle`` behave like the console script."""

from __future__ import annotations

from target_mparticle.target import TargetMParticle

TargetMParticle.cli()
