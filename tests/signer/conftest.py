"""Fixtures of the publisher tests: initialised data directories on SQLite and PostgreSQL.

The store tests' pattern (tests/store/conftest.py): each test gets a fresh
database, a new SQLite file or a new uniquely named PostgreSQL schema
selected through the connection's ``search_path`` and dropped afterwards.
PostgreSQL comes from ``CLEANFEED_TEST_POSTGRES_URL``; unset, its tests are
skipped, except under ``CI=true`` where that is a failure.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from support.postgres import POSTGRES_ENV, admin_engine
from support.publish_helpers import Deployment, make_deployment

BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(scope="session")
def postgres_admin() -> Iterator[Engine]:
    """An autocommit engine on the test PostgreSQL server, checked once."""
    engine = admin_engine(f"set {POSTGRES_ENV} to run PostgreSQL publisher tests")
    yield engine
    engine.dispose()


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of a fresh, empty database on each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'data' / 'cleanfeed.db'}"
        return
    admin: Engine = request.getfixturevalue("postgres_admin")
    schema = f"cf_signer_{uuid.uuid4().hex[:16]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = admin.url.update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))


@pytest.fixture
def deployment(database_url: str, tmp_path: Path) -> Iterator[Deployment]:
    """An initialised deployment on each backend."""
    dep = make_deployment(tmp_path / "data", database_url)
    try:
        yield dep
    finally:
        dep.db.dispose()


@pytest.fixture
def sqlite_deployment(tmp_path: Path) -> Iterator[Deployment]:
    """An initialised deployment on SQLite only (tests that copy the database file)."""
    dep = make_deployment(tmp_path / "data", f"sqlite:///{tmp_path / 'data' / 'cleanfeed.db'}")
    try:
        yield dep
    finally:
        dep.db.dispose()
