"""Engine, sessions and transactions for SQLite and PostgreSQL.

:class:`Database` wraps one SQLAlchemy engine built from a URL:

- ``sqlite:///path/to/cleanfeed.db`` (the embedded default). Every
  connection gets ``journal_mode=WAL`` (readers never block the writer),
  ``foreign_keys=ON``, a ``busy_timeout`` (writers queue instead of failing
  at once) and ``synchronous=FULL``. FULL rather than NORMAL: in WAL mode
  NORMAL may lose the last commits on power loss, and a lost commit of a
  signed version whose checkpoint already left the building would leave the
  signer's high-water mark ahead of the database: the signer would then
  (rightly) refuse to continue. A few milliseconds per commit buy that.
  Write transactions start with ``BEGIN IMMEDIATE``, so the write lock is
  held from the first statement and concurrent writers are serialised
  before they read anything (no stale read, no lock upgrade failure).
- ``postgresql+psycopg://user:pass@host/db`` (psycopg 3; ``postgresql://``
  and ``postgres://`` are rewritten to it). Writers to one list are
  serialised with a transaction-scoped advisory lock (:func:`lock_list`).

Use :meth:`Database.transaction` for every write: one transaction, committed
on success and rolled back on any exception, so a refused operation changes
nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, Select, create_engine, event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool

from blocklist.store.errors import NotFound, StoreUnavailable
from blocklist.store.models import Base

__all__ = [
    "ADVISORY_LOCK_NAMESPACE",
    "SQLITE_BUSY_TIMEOUT_MS",
    "WRITE_EXECUTION_OPTION",
    "Database",
    "advisory_lock",
    "get_row",
    "is_postgresql",
    "normalise_url",
    "one_row",
]

#: How long a SQLite writer waits for the write lock before failing. Writes
#: are short (one analyst action, one bulk batch, one publish), so a queue of
#: several seconds absorbs bursts without hanging a request forever.
SQLITE_BUSY_TIMEOUT_MS = 10_000

#: Namespace (first key) of cleanfeed's PostgreSQL advisory locks, so they
#: never collide with locks taken by other applications on the same server.
ADVISORY_LOCK_NAMESPACE = 0x63_66_64  # "cfd"

#: Execution option marking the engine used for write transactions
#: (SQLite: BEGIN IMMEDIATE).
WRITE_EXECUTION_OPTION = "cleanfeed_write"


def normalise_url(url: str | URL) -> URL:
    """Parse a database URL, selecting psycopg 3 for PostgreSQL.

    Raises:
        StoreUnavailable: the URL cannot be parsed or names another backend.
    """
    try:
        parsed = make_url(url)
    except Exception as e:  # sqlalchemy raises ArgumentError / ValueError
        raise StoreUnavailable(f"invalid database URL: {e}") from e
    backend = parsed.get_backend_name()
    if backend in ("postgresql", "postgres"):
        if parsed.drivername in ("postgresql", "postgres"):
            parsed = parsed.set(drivername="postgresql+psycopg")
    elif backend != "sqlite":
        raise StoreUnavailable(f"unsupported database backend {backend!r} (sqlite, postgresql)")
    return parsed


def _install_sqlite_hooks(engine: Engine, busy_timeout_ms: int) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, connection_record: Any) -> None:
        # Take BEGIN away from the sqlite3 driver's legacy transaction
        # control, which would not open a transaction before a SELECT (see
        # SQLAlchemy's SQLite dialect docs, "Enabling Non-Legacy SQLite
        # Transactional Modes"); _on_begin emits it instead.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
            cursor.execute("PRAGMA synchronous=FULL")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        if conn.get_execution_options().get(WRITE_EXECUTION_OPTION):
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.exec_driver_sql("BEGIN")


class Database:
    """An engine plus session factories for one database URL."""

    def __init__(
        self,
        url: str | URL,
        *,
        echo: bool = False,
        sqlite_busy_timeout_ms: int = SQLITE_BUSY_TIMEOUT_MS,
    ) -> None:
        """Create the engine (no connection is opened yet).

        Raises:
            StoreUnavailable: the URL is invalid or names an unsupported backend.
        """
        self.url = normalise_url(url)
        # hide_parameters: SQLAlchemy errors would otherwise quote the bound
        # values (URLs, expressions) into exception text and so into logs.
        kwargs: dict[str, Any] = {"echo": echo, "hide_parameters": True}
        if self.backend == "sqlite":
            if self.url.database in (None, "", ":memory:"):
                # One shared connection, or every session would see its own
                # empty in-memory database.
                kwargs["poolclass"] = StaticPool
                kwargs["connect_args"] = {"check_same_thread": False}
        else:
            kwargs["pool_pre_ping"] = True
        self.engine: Engine = create_engine(self.url, **kwargs)
        if self.backend == "sqlite":
            _install_sqlite_hooks(self.engine, sqlite_busy_timeout_ms)
        write_engine = self.engine.execution_options(**{WRITE_EXECUTION_OPTION: True})
        self._write_sessions = sessionmaker(bind=write_engine, expire_on_commit=False)
        self._read_sessions = sessionmaker(bind=self.engine, expire_on_commit=False)

    @property
    def backend(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return self.url.get_backend_name()

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """Open a write transaction: commit on success, roll back on any error.

        On SQLite the write lock is taken at the first statement
        (``BEGIN IMMEDIATE``), serialising writers.

        Raises:
            StoreUnavailable: the database is unreachable, full or read-only
                (an operational fault, not bad input); the transaction was
                rolled back and callers may retry later.
        """
        with _unavailable_on_outage(), self._write_sessions() as session, session.begin():
            yield session

    @contextmanager
    def read(self) -> Iterator[Session]:
        """Open a read session (one snapshot-consistent transaction, never committed).

        Raises:
            StoreUnavailable: as :meth:`transaction`.
        """
        with _unavailable_on_outage(), self._read_sessions() as session:
            yield session

    def create_all(self) -> None:
        """Create every table of the models (tests, throw-away databases).

        Deployments use :meth:`migrate`, which also records the schema
        revision for later upgrades.
        """
        Base.metadata.create_all(self.engine)

    def drop_all(self) -> None:
        """Drop every table of the models."""
        Base.metadata.drop_all(self.engine)

    def migrate(self, revision: str = "head") -> None:
        """Run the Alembic migrations up to ``revision`` on this database."""
        from blocklist.store.migrate import upgrade

        upgrade(self, revision)

    def check(self) -> None:
        """Round-trip one query (readiness probe).

        Raises:
            StoreUnavailable: the database cannot be reached.
        """
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except (OperationalError, DBAPIError) as e:
            raise StoreUnavailable(f"database unreachable: {e.orig or e}") from e

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()


@contextmanager
def _unavailable_on_outage() -> Iterator[None]:
    # Operational faults (server down or restarting, disk full, read-only
    # file system) become StoreUnavailable, which the API answers with 503 and
    # Retry-After. Constraint violations (IntegrityError) are not operational
    # and pass through unchanged. The message names the driver's error class
    # only: SQLAlchemy's text would include the statement's parameters, which
    # may hold a URL (plaintext must never reach logs).
    try:
        yield
    except (OperationalError, InterfaceError) as e:
        orig = e.orig if e.orig is not None else e
        raise StoreUnavailable(
            f"database unavailable ({type(orig).__name__}: {str(orig).splitlines()[0][:200]})"
        ) from e


def is_postgresql(session: Session) -> bool:
    """Whether the session is bound to PostgreSQL."""
    return session.get_bind().dialect.name == "postgresql"


def advisory_lock(session: Session, key: int) -> None:
    """Take cleanfeed's transaction-scoped lock number ``key``.

    PostgreSQL: ``pg_advisory_xact_lock``, released at commit or rollback;
    re-entrant within one transaction. SQLite: nothing to do, the write
    transaction (``BEGIN IMMEDIATE``) already excludes every other writer.
    """
    if is_postgresql(session):
        session.execute(
            text("SELECT pg_advisory_xact_lock(:ns, :key)"),
            {"ns": ADVISORY_LOCK_NAMESPACE, "key": key},
        )


_Row = TypeVar("_Row", bound=Base)


def get_row(session: Session, model: type[_Row], key: object, missing: str) -> _Row:
    """The row of ``model`` with primary key ``key``.

    Raises:
        NotFound: no such row (``missing`` is the message).
    """
    row = session.get(model, key)
    if row is None:
        raise NotFound(missing)
    return row


def one_row(session: Session, query: Select[_Row], missing: str, *, lock: bool = False) -> _Row:
    """The row ``query`` selects; ``lock`` holds it until the transaction ends.

    Raises:
        NotFound: no such row (``missing`` is the message).
    """
    if lock:
        query = query.with_for_update()
    row = session.scalar(query)
    if row is None:
        raise NotFound(missing)
    return row
