"""Which hosts the block page answers for: the listed whole-host entries.

:class:`HostIndex` looks a request's ``Host`` up as the lookups do (its
host-suffix expressions, DESIGN.md "Entries") in the committed state
database: each lookup is its own read transaction, so a sync that commits
is in force on the next request.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import Final

from blocklist.canonical import expressions, split_expression
from blocklist.errors import InvalidURL
from clients.errors import NotInitialised
from clients.isp.store import DB_NAME, StateStore

__all__ = [
    "MAX_HOST_CHARS",
    "HostIndex",
    "host_expressions",
]

#: Longest Host name looked up (RFC 1035 section 2.3.4: 253 characters of
#: name, plus a bracketed IPv6 literal and a port fit in 300).
MAX_HOST_CHARS: Final = 300


#: ``Host`` values looked up: a DNS name (letters, digits, ``-``, ``_``,
#: dots) or a bracketed IPv6 literal, with an optional port (RFC 9110
#: section 7.2 and RFC 3986 section 3.2.2). Anything else (``%``, ``@``,
#: ``/``...) cannot be a host a DNS export sent here: 404.
_HOST_RE: Final = re.compile(
    r"(?P<host>[A-Za-z0-9_.\-]{1,253}|\[[0-9A-Fa-f:.]{2,45}\])(?::(?P<port>[0-9]{1,5}))?"
)


def host_expressions(host: str) -> list[str]:
    """The host-entry expressions a ``Host`` name can match, most specific first.

    Only expressions whose path is ``/``: those of host entries. A page or
    prefix entry can never match here, whatever was requested.

    Raises:
        InvalidURL: ``host`` is not a host name.
    """
    m = _HOST_RE.fullmatch(host) if len(host) <= MAX_HOST_CHARS else None
    if m is None:
        raise InvalidURL("not a host name")
    found = []
    for expr in expressions(f"http://{m.group('host')}/"):
        # Belt and braces: the URL has path "/", so every expression should
        # be host/; never probe one that is not.
        name, path = split_expression(expr)
        if path == "/" and name:
            found.append(expr)
    return found


class HostIndex:
    """Host entries of the verified state, read from the committed database.

    Every lookup runs in its own read transaction, so it sees the last
    committed version: a sync that commits needs no reload here. ``watch``
    re-opens the database when its file was replaced (a state directory
    rebuilt from scratch) and reports the version in force.

    Args:
        state_dir: the ISP client's state directory.

    Raises:
        NotInitialised: no state there, or no verified list yet.
        LocalStateError: the database cannot be opened.
    """

    def __init__(self, state_dir: Path) -> None:
        self._dir = state_dir
        self._store, self._file_id = self._open()
        self.version: int | None = None
        self.origin: str = ""
        self._read_meta()
        if self.version is None:
            self._store.close()
            raise NotInitialised(f"no verified list in {state_dir} yet: run a sync first")

    def _open(self) -> tuple[StateStore, tuple[int, int]]:
        store = StateStore(self._dir, create=False)
        st = os.stat(self._dir / DB_NAME)
        return store, (st.st_dev, st.st_ino)

    def _read_meta(self) -> None:
        version = self._store.get_meta("version")
        origin = self._store.get_meta("origin")
        self.version = version if isinstance(version, int) else None
        self.origin = origin if isinstance(origin, str) else ""

    def close(self) -> None:
        """Close the database."""
        self._store.close()

    def lookup(self, host: str) -> bytes | None:
        """The hash of the first listed host expression of ``host``, if any.

        Raises:
            InvalidURL: ``host`` is not a host name (a caller answers 404).
            LocalStateError: the database cannot be read.
        """
        exprs = host_expressions(host)
        table = self._store.hash_table()
        with self._store.reading():
            for expr in exprs:
                h = _sha256(expr)
                if h in table:
                    return h
        return None

    def watch(self) -> bool:
        """Re-open a replaced database and re-read the version in force.

        Returns:
            Whether the version changed.

        Raises:
            ClientError: the state cannot be opened or read.
            OSError: the database file cannot be examined.
        """
        st = os.stat(self._dir / DB_NAME)
        if (st.st_dev, st.st_ino) != self._file_id:
            store, file_id = self._open()
            self._store.close()
            self._store, self._file_id = store, file_id
        before = self.version
        self._read_meta()
        return self.version != before


def _sha256(expr: str) -> bytes:
    return hashlib.sha256(expr.encode("utf-8")).digest()
