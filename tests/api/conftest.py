"""Fixtures of the API tests: a deployment per test and a client on its app.

The building blocks live in ``tests/support/api_testing.py`` (``tests`` is on
pytest's ``pythonpath``), shared with the other suites.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from support.api_testing import (
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
