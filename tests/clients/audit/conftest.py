"""Fixtures of the auditor tests.

The suite runs with ``--import-mode=importlib``: this directory (for
``audit_helpers``) and ``tests/api`` (for ``api_testing``, the real service
in-process) are put on ``sys.path``.
"""

from __future__ import annotations

import sys
from pathlib import Path

_HERE = Path(__file__).resolve().parent
for _path in (_HERE, _HERE.parents[1] / "api"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))
