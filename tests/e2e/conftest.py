"""Fixtures of the end-to-end tests (helpers in ``tests/support/e2e_helpers.py``
and ``tests/support/release_helpers.py``)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.e2e_helpers import Server, serve


@pytest.fixture(scope="session")
def installed_client() -> Iterator[object]:
    """The client released and installed offline as docs/isp.md says (release_helpers)."""
    from support.release_helpers import make_installed_client

    installed = make_installed_client()
    yield installed
    shutil.rmtree(installed.release_dir.parent.parent, ignore_errors=True)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    """``cleanfeed serve`` on ``tmp_path/data`` (log: ``tmp_path/serve.log``), stopped after."""
    s = serve(tmp_path / "data", tmp_path / "serve.log")
    try:
        yield s
    finally:
        s.stop()
