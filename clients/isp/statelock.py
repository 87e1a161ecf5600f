"""The state directory's lock: one sync at a time.

A second sync against the same state directory waits for an exclusive
``fcntl.flock`` on ``STATE_DIR/lock`` (which holds the holder's pid, for the
error message) up to a timeout, then fails with
:class:`~clients.errors.StateLocked`. Readers need no lock (SQLite's WAL,
see :mod:`clients.isp.store`). Taken through
:meth:`clients.isp.store.StateStore.lock`.
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path
from types import TracebackType
from typing import Final

from clients.errors import StateLocked

__all__ = [
    "LOCK_NAME",
    "StateLock",
]

#: Lock file name inside the state directory.
LOCK_NAME: Final = "lock"
#: Poll period while waiting for the state directory's lock.
_LOCK_POLL: Final = 0.1


class StateLock:
    """Exclusive ``fcntl.flock`` on the state directory (one sync at a time)."""

    def __init__(self, state_dir: Path, timeout: float) -> None:
        self._path = state_dir / LOCK_NAME
        self._timeout = timeout
        self._fd: int | None = None

    def __enter__(self) -> StateLock:
        fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
        deadline = time.monotonic() + self._timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = _read_small(fd)
                    os.close(fd)
                    who = f" (pid {holder})" if holder else ""
                    raise StateLocked(
                        f"another cleanfeed sync holds {self._path}{who}; "
                        f"gave up after {self._timeout:g} s"
                    ) from None
                time.sleep(_LOCK_POLL)
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._fd = fd
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def _read_small(fd: int) -> str:
    try:
        return os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return ""
