"""The test PostgreSQL server (``CLEANFEED_TEST_POSTGRES_URL``).

Unset, PostgreSQL tests are skipped, except under ``CI=true`` where that is
a failure (CI must never silently test one backend).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from blocklist.store.db import normalise_url
from support.ci import in_ci

POSTGRES_ENV = "CLEANFEED_TEST_POSTGRES_URL"
FAULTS_SKIP_REASON = f"set {POSTGRES_ENV} to run the PostgreSQL fault tests"


def postgres_admin_url(skip_reason: str = FAULTS_SKIP_REASON) -> str:
    """The test server's URL; skip when unset, except under CI=true (then fail)."""
    url = os.environ.get(POSTGRES_ENV, "").strip()
    if not url:
        if in_ci():
            pytest.fail(f"CI=true but {POSTGRES_ENV} is unset: PostgreSQL tests must run in CI")
        pytest.skip(skip_reason)
    return url


def admin_engine(skip_reason: str) -> Engine:
    """An autocommit engine on the test server, checked with ``SELECT 1``.

    Unset: skipped with ``skip_reason`` (failed under CI). Set but
    unreachable: failed, since the developer asked for these tests.
    """
    url = postgres_admin_url(skip_reason)
    engine = create_engine(normalise_url(url), isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except OperationalError as e:
        engine.dispose()
        pytest.fail(f"{POSTGRES_ENV} is set but PostgreSQL is unreachable: {e.orig}")
    return engine


@contextmanager
def fresh_postgres_database(admin_url: str) -> Iterator[str]:
    """Create a brand-new database on the test server; drop it afterwards.

    Yields its SQLAlchemy URL (psycopg 3) as a string with the password.
    """
    base = normalise_url(admin_url)
    name = f"cf_fault_{uuid.uuid4().hex[:12]}"
    # pre-ping: a test may restart the server while this engine's pool is idle.
    engine = create_engine(base, isolation_level="AUTOCOMMIT", pool_pre_ping=True)
    try:
        with engine.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception:
        engine.dispose()
        raise
    url = make_url(base).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        try:
            with engine.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        finally:
            engine.dispose()
