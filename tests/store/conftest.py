"""Fixtures of the store contract suite: every test runs on SQLite and PostgreSQL.

Kinto's pattern (kinto/core/storage/testing.py): one backend-agnostic suite,
parametrised over the backends. Each test starts from an empty database: a
copy of a freshly created SQLite file, or a PostgreSQL schema private to the
test session (a unique name selected through the connection's
``search_path``, dropped at the end) whose rows are deleted and identities
restarted before each test. Migration tests get a brand-new schema each.

PostgreSQL comes from ``CLEANFEED_TEST_POSTGRES_URL``. Unset: its tests are
skipped, except under ``CI=true`` where a missing or unreachable server
fails them (CI must never silently test one backend). Set but unreachable:
they fail too, since the developer asked for them.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import URL, Engine, text
from support.contract_helpers import NOW, state_of
from support.postgres import admin_engine

from blocklist.store import Database
from blocklist.store import lists as store_lists
from blocklist.store.models import Base

SKIP_REASON = "set CLEANFEED_TEST_POSTGRES_URL to run PostgreSQL contract tests"

BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(scope="session")
def postgres_admin() -> Iterator[Engine]:
    """An autocommit engine on the test PostgreSQL server, checked once."""
    engine = admin_engine(SKIP_REASON)
    yield engine
    engine.dispose()


def _postgres_url(admin: Engine, schema: str) -> URL:
    # search_path selects the test's schema; synchronous_commit=off only
    # speeds up the tests' many small commits (durability is not under test).
    options = f"-csearch_path={schema} -csynchronous_commit=off"
    return admin.url.update_query_dict({"options": options})


@contextmanager
def _postgres_schema(admin: Engine) -> Iterator[str]:
    schema = f"cf_test_{uuid.uuid4().hex[:16]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield schema
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))


@pytest.fixture(params=BACKENDS)
def empty_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """A fresh database with no tables at all, on each backend (migration tests)."""
    if request.param == "sqlite":
        database = Database(f"sqlite:///{tmp_path / 'empty.db'}")
        yield database
        database.dispose()
        return
    admin: Engine = request.getfixturevalue("postgres_admin")
    with _postgres_schema(admin) as schema:
        database = Database(_postgres_url(admin, schema))
        try:
            yield database
        finally:
            database.dispose()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file with the models' schema, copied for each test."""
    path = tmp_path_factory.mktemp("template") / "store.db"
    database = Database(f"sqlite:///{path}")
    database.create_all()
    database.dispose()  # checkpoints the WAL into the main file
    return path


@pytest.fixture(scope="session")
def postgres_database(postgres_admin: Engine) -> Iterator[Database]:
    """One schema with the models' tables per test session (per xdist worker).

    The engine is shared too, so SQLAlchemy's compiled-statement cache
    survives from test to test.
    """
    with _postgres_schema(postgres_admin) as schema:
        database = Database(_postgres_url(postgres_admin, schema))
        database.create_all()
        try:
            yield database
        finally:
            database.dispose()


def _empty_postgres(database: Database) -> None:
    # DELETE rather than TRUNCATE: on a handful of rows it is many times
    # faster (TRUNCATE recreates every table and index file).
    with database.engine.begin() as conn:
        conn.execute(text("UPDATE lists SET canary_entry_id = NULL"))
        for table in reversed(Base.metadata.sorted_tables):
            conn.execute(table.delete())
        for table in Base.metadata.sorted_tables:
            for column in table.primary_key.columns:  # restart identities (ids from 1)
                conn.execute(
                    text(
                        "SELECT setval(pg_get_serial_sequence(:t, :c), 1, false)"
                        " WHERE pg_get_serial_sequence(:t, :c) IS NOT NULL"
                    ),
                    {"t": table.name, "c": column.name},
                )


@pytest.fixture(params=BACKENDS)
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """A database with the models' schema and no rows, on each backend.

    SQLite: a copy of a template file. PostgreSQL: the session's schema with
    every row deleted and every identity restarted, which leaves it in the
    state a fresh schema would have, without re-running the DDL.
    """
    if request.param == "postgres":
        database: Database = request.getfixturevalue("postgres_database")
        _empty_postgres(database)
        yield database
        return
    path = tmp_path / "store.db"
    shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
    database = Database(f"sqlite:///{path}")
    try:
        yield database
    finally:
        database.dispose()


@pytest.fixture
def list_id(db: Database) -> int:
    """A list needing one approval (besides the creator), with its canary."""
    with db.transaction() as s:
        row = store_lists.create_list(
            s,
            name="main",
            origin="example.org/cleanfeed/main",
            canary_url="http://canary.example.org/cleanfeed-canary.html",
            approvals_required=1,
            home_country="CA",
            now=NOW,
        )
        return row.id


@pytest.fixture
def list2_id(db: Database) -> int:
    """A list needing two approvals."""
    with db.transaction() as s:
        row = store_lists.create_list(
            s,
            name="strict",
            origin="example.org/cleanfeed/strict",
            canary_url="http://canary.example.org/strict-canary.html",
            approvals_required=2,
            now=NOW,
        )
        return row.id


@pytest.fixture
def unchanged(db: Database) -> Callable[..., None]:
    """``unchanged(fn, Error, match=None)``: ``fn`` raises ``Error``, nothing changed.

    Compares every table's row count and every audit chain's head.
    """

    def check(
        fn: Callable[[], object], error: type[BaseException], match: str | None = None
    ) -> None:
        before = state_of(db)
        with pytest.raises(error, match=match):
            fn()
        assert state_of(db) == before

    return check
