"""Alembic environment for cleanfeed's store.

Run programmatically by :func:`blocklist.store.migrate.upgrade`, which hands
over an open connection (``config.attributes["connection"]``) so migrations
run with the same engine settings as the application (SQLite pragmas,
PostgreSQL search path). From the command line, with the alembic.ini beside
this package::

    alembic -c blocklist/store/alembic.ini -x url=sqlite:///cleanfeed.db upgrade head
    alembic -c blocklist/store/alembic.ini -x url=... revision --autogenerate -m "..."

SQLite changes tables by copy-and-move (``render_as_batch``), since it
cannot ALTER most constraints.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from blocklist.store.db import Database
from blocklist.store.models import Base

config = context.config
target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Migrate through the given connection, or one opened from ``-x url=``."""
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option(
        "sqlalchemy.url"
    )
    if not url:
        raise SystemExit("pass the database URL: alembic -x url=... (or sqlalchemy.url)")
    database = Database(url)
    try:
        with database.engine.connect() as conn:
            _run(conn)
            conn.commit()
    finally:
        database.dispose()


if context.is_offline_mode():
    raise SystemExit("offline (--sql) mode is not supported; migrate a database directly")
run_migrations_online()
