"""Fixtures of the ISP client tests.

The suite runs with ``--import-mode=importlib``, so sibling helper modules
are not importable by name; this directory is put on ``sys.path`` so the
tests can share ``isp_helpers`` (crafted notes, state fingerprints).
"""

from __future__ import annotations

import sys
from pathlib import Path

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)
