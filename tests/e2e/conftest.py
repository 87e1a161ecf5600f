"""The end-to-end tests share e2e_helpers.py and release_helpers.py
(``--import-mode=importlib`` puts no test directory on ``sys.path``)."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)


@pytest.fixture(scope="session")
def installed_client() -> Iterator[object]:
    """The client released and installed offline as docs/isp.md says (release_helpers)."""
    from release_helpers import make_installed_client

    installed = make_installed_client()
    yield installed
    shutil.rmtree(installed.release_dir.parent.parent, ignore_errors=True)
