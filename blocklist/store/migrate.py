"""Run the Alembic migrations from code, without an alembic.ini in the CWD.

``cleanfeed init``/``serve`` call :func:`upgrade` on start; it is idempotent
(a database at head is left alone). On PostgreSQL an advisory lock makes a
second process that migrates at the same moment wait, then find nothing to
do; on SQLite the write transaction does the same.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text

from blocklist.store.db import ADVISORY_LOCK_NAMESPACE, WRITE_EXECUTION_OPTION, Database
from blocklist.store.errors import StoreError

__all__ = [
    "MIGRATIONS_DIR",
    "alembic_config",
    "current_revision",
    "head_revision",
    "upgrade",
]

#: Directory holding env.py and versions/ (shipped as package data).
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

#: Advisory lock key serialising concurrent migrations (list ids are >= 1
#: and the deployment audit chain is 0, so -1 collides with neither).
_MIGRATION_LOCK_KEY = -1


def alembic_config() -> Config:
    """An Alembic :class:`Config` pointing at the packaged migrations."""
    config = Config()
    # configparser interpolation: a literal '%' in the path must be doubled.
    config.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    config.set_main_option("path_separator", "os")
    return config


def head_revision() -> str:
    """The newest revision of the packaged migrations."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "the packaged migrations have no head"
    return head


def current_revision(target: str | Database) -> str | None:
    """The revision a database is at, or ``None`` if it was never migrated."""
    database = target if isinstance(target, Database) else Database(target)
    try:
        with database.engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        if database is not target:
            database.dispose()


def upgrade(target: str | Database, revision: str = "head") -> None:
    """Upgrade a database (URL or :class:`Database`) to ``revision`` in one transaction.

    Raises:
        alembic.util.CommandError: an unknown revision.
        StoreUnavailable: an invalid URL.
    """
    database = target if isinstance(target, Database) else Database(target)
    config = alembic_config()
    try:
        # The write engine: BEGIN IMMEDIATE on SQLite, so the whole upgrade
        # holds the write lock from its first statement.
        engine = database.engine.execution_options(**{WRITE_EXECUTION_OPTION: True})
        with engine.connect() as conn:
            sqlite = conn.dialect.name == "sqlite"
            if sqlite:
                # SQLite rebuilds a table to change a constraint (batch
                # migrations: copy, drop, rename). Dropping a table that
                # other rows reference fails with foreign keys on, so the
                # upgrade follows SQLite's procedure for such changes
                # (sqlite.org/lang_altertable.html, "other kinds of table
                # schema changes"): foreign keys off outside the
                # transaction, PRAGMA foreign_key_check before the commit.
                driver = conn.connection.driver_connection
                assert driver is not None
                driver.execute("PRAGMA foreign_keys=OFF")
            try:
                with conn.begin():
                    if not sqlite:
                        conn.execute(
                            text("SELECT pg_advisory_xact_lock(:ns, :key)"),
                            {"ns": ADVISORY_LOCK_NAMESPACE, "key": _MIGRATION_LOCK_KEY},
                        )
                    config.attributes["connection"] = conn
                    command.upgrade(config, revision)
                    if sqlite:
                        broken = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                        if broken:
                            raise StoreError(
                                f"the upgrade to {revision} would leave {len(broken)} row(s) "
                                f"referencing missing rows (first: {tuple(broken[0])}); "
                                "nothing was changed"
                            )
            finally:
                if sqlite:
                    # Never hand a connection with foreign keys off back to the pool.
                    conn.invalidate()
    finally:
        if database is not target:
            database.dispose()
