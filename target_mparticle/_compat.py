"""Names whose home module depends on the Python version."""

from __future__ import annotations

import sys

if sys.version_info >= (3, 12):
    from typing import override
else:  # pragma: no cover - exercised on Python 3.10 and 3.11 only
    from typing_extensions import override

__all__ = ["override"]
