"""The one way the ISP client writes its SQLite files: an immediate transaction.

The state store (:mod:`clients.isp.store`), the hit counts
(:mod:`clients.isp.hits`) and the DNS journal
(:mod:`clients.isp.dnsserve.journal`) each change their file only inside
:func:`write_transaction`: ``BEGIN IMMEDIATE`` takes SQLite's write lock
before the first read (https://sqlite.org/lang_transaction.html), so two
processes never both read and then fail to upgrade their lock half-way; any
exception, including an interrupt, rolls back everything and goes on, so a
file holds either the whole change or none of it.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator

__all__ = ["write_transaction"]


@contextlib.contextmanager
def write_transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """Run the block in one ``BEGIN IMMEDIATE … COMMIT`` on ``conn``.

    Args:
        conn: a connection opened with ``isolation_level=None`` (the caller
            controls transactions).

    Raises:
        sqlite3.Error: the lock, the rollback or the commit failed; any
            exception of the block is re-raised after the rollback.
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
