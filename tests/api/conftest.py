"""Fixtures of the API tests: a deployment per test and a client on its app.

The suite runs with ``--import-mode=importlib``; this directory is put on
``sys.path`` so tests (here and in other suites) can share ``api_testing``.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

from api_testing import (  # noqa: E402
    ApiClient,
    Deployment,
    Tokens,
    close_deployment,
    make_deployment,
)


@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[Deployment]:
    """An initialised deployment (lists main and other, a token per role)."""
    d = make_deployment(tmp_path)
    try:
        yield d
    finally:
        close_deployment(d)


@pytest.fixture
def tokens(deployment: Deployment) -> Tokens:
    """The deployment's tokens."""
    return deployment.tokens


@pytest.fixture
def client(deployment: Deployment) -> Iterator[ApiClient]:
    """A client on the deployment's app (httpx ASGITransport, in-process)."""
    c = ApiClient(deployment.app)
    try:
        yield c
    finally:
        c.close()
