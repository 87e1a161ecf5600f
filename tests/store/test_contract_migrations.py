"""Contract: the Alembic migrations create exactly the models' schema (both backends)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect
from support.contract_helpers import NOW

from blocklist.store import Database, migrate
from blocklist.store import lists as store_lists
from blocklist.store.models import Base


def test_upgrade_on_an_empty_database_creates_the_models_schema(empty_db: Database) -> None:
    assert migrate.current_revision(empty_db) is None
    empty_db.migrate()
    assert migrate.current_revision(empty_db) == migrate.head_revision()
    with empty_db.engine.connect() as conn:
        # Autogenerate's comparison of reflected tables, columns, types,
        # nullability, indexes, unique and foreign key constraints.
        diff = compare_metadata(
            MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata
        )
        tables = set(inspect(conn).get_table_names())
    assert diff == []
    assert tables == set(Base.metadata.tables) | {"alembic_version"}


def test_the_circular_canary_key_exists_and_is_enforced(empty_db: Database) -> None:
    empty_db.migrate()
    with empty_db.engine.connect() as conn:
        keys = inspect(conn).get_foreign_keys("lists")
    assert [(k["constrained_columns"], k["referred_table"]) for k in keys] == [
        (["canary_entry_id"], "entries")
    ]
    with empty_db.transaction() as s:
        row = store_lists.create_list(
            s,
            name="m",
            origin="example.org/m",
            canary_url="http://canary.example.org/c.html",
            now=NOW,
        )
        assert row.canary_entry_id is not None


def test_upgrade_is_idempotent_and_works_from_any_directory(
    empty_db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # no alembic.ini here: configuration is in code
    assert not (Path(os.getcwd()) / "alembic.ini").exists()
    migrate.upgrade(empty_db)
    migrate.upgrade(empty_db)
    assert migrate.current_revision(empty_db) == migrate.head_revision()


def test_downgrade_removes_every_table(empty_db: Database) -> None:
    from alembic import command

    empty_db.migrate()
    config = migrate.alembic_config()
    with empty_db.engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "base")
    with empty_db.engine.connect() as conn:
        assert set(inspect(conn).get_table_names()) == {"alembic_version"}
