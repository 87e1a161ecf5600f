"""Atomic, durable file replacement for both clients (exports, state, bundles).

A filter daemon (Squid, BIND, Unbound, dnsmasq) may re-read an export at any
moment, and the machine may lose power at any moment. Either way it must see
the previous complete file or the new complete file, never a truncated one:
a half-written blocklist silently drops the ISP's filter.

The recipe is the classic one: write a temporary file in the *same directory*
(so :func:`os.replace` is a rename within one file system, which POSIX makes
atomic), flush and ``fsync`` it so its data is on disk before the rename can
be, rename it over the target, then ``fsync`` the directory so the rename
itself survives a crash. The recipe is written once, for the clients and the
server alike, in :func:`blocklist.tempfiles.replace_file`; this module gives
it the clients' modes.

:func:`write_if_changed` adds the check the exporter needs: when the new
content is byte-identical to the file already in place (same SHA-256), nothing
is written and the caller learns that no reload of the filter is needed.
"""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

from blocklist.tempfiles import replace_file

__all__ = [
    "EXPORT_MODE",
    "PLAINTEXT_MODE",
    "file_digest",
    "write_atomic",
    "write_if_changed",
]

#: Mode of published exports: readable by the filter daemon's own user.
EXPORT_MODE = 0o644

#: Mode of files holding plaintext expressions: owner only.
PLAINTEXT_MODE = 0o600

#: Read size when hashing an existing file (bounded memory for big lists).
_READ_CHUNK = 1 << 20


def write_atomic(path: Path, data: bytes, *, mode: int = EXPORT_MODE) -> None:
    """Replace ``path`` with ``data`` atomically and durably, with ``mode``.

    The file gets exactly ``mode`` (the umask does not apply), set on the
    temporary file before any data is written, so plaintext never sits in a
    file more readable than intended, not even for a moment. If ``path`` is a
    symbolic link, the link itself is replaced by a regular file.

    Args:
        path: the file to create or replace; its directory must exist.
        data: the complete new content.
        mode: permission bits of the new file, e.g. :data:`EXPORT_MODE` or
            :data:`PLAINTEXT_MODE`.

    Raises:
        OSError: the directory is missing or not writable, the disk is full,
            or another I/O error happened. The previous file, if any, is left
            untouched and the temporary file is removed.
    """
    replace_file(Path(path), data, mode=stat.S_IMODE(mode))


def file_digest(path: Path) -> bytes | None:
    """SHA-256 of the file at ``path``, or None when there is no such file.

    Raises:
        OSError: the file exists but cannot be read.
    """
    try:
        with open(path, "rb") as f:
            return hashlib.file_digest(f, "sha256").digest()
    except FileNotFoundError:
        return None


def write_if_changed(path: Path, data: bytes, *, mode: int = EXPORT_MODE) -> bool:
    """Write ``data`` to ``path`` atomically unless it already holds exactly it.

    The comparison is by SHA-256 of the content. When the content is already
    in place but its permission bits differ from ``mode``, they are corrected
    (this does not count as a change: the filter need not reload).

    Args:
        path: the file to create or replace.
        data: the complete new content.
        mode: permission bits the file must have.

    Returns:
        True when the file was (re)written, False when it was already current.

    Raises:
        OSError: reading the existing file or writing the new one failed.
    """
    path = Path(path)
    if file_digest(path) == hashlib.sha256(data).digest() and not path.is_symlink():
        wanted = stat.S_IMODE(mode)
        if stat.S_IMODE(path.stat().st_mode) != wanted:
            os.chmod(path, wanted)
        return False
    write_atomic(path, data, mode=mode)
    return True
