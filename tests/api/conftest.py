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
    deployed,
    deployment_client,
)


@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[Deployment]:
    """An initialised deployment (lists main and other, a token per role)."""
    with deployed(tmp_path) as d:
        yield d


@pytest.fixture
def tokens(deployment: Deployment) -> Tokens:
    """The deployment's tokens."""
    return deployment.tokens


@pytest.fixture
def client(deployment: Deployment) -> Iterator[ApiClient]:
    """A client on the deployment's app (httpx ASGITransport, in-process)."""
    with deployment_client(deployment) as c:
        yield c
