"""The end-to-end tests share e2e_helpers.py (``--import-mode=importlib`` puts no
test directory on ``sys.path``)."""

from __future__ import annotations

import sys
from pathlib import Path

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)
