"""Atomic file writes: their temporaries, the clean-up of stale ones, durability.

Every atomic write in cleanfeed (ISP exports and state files, the signer's
high-water mark, key files) writes ``.<name>.<random>.tmp`` beside its
target, fsyncs it and renames it over the target. A process killed between
creating and renaming leaves that file behind; nothing else ever reads it.
Left alone such files accumulate, and a leftover export may hold plaintext
the list no longer carries. Each writer therefore removes its target's
temporaries that are old enough to belong to no live write before it
writes.

The write itself is here once too: :func:`write_new_file` (create
exclusively with an exact mode, write, fsync), :func:`fsync_directory`
(make a rename or link durable) and :func:`replace_file` (the whole atomic
replace). The ISP client's exports, the signer's high-water mark and key
files, the account-secrets key and the server's CLI outputs use them;
callers that must never replace a file (key files) link the temporary
into place themselves.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
import time
from pathlib import Path
from typing import Final

__all__ = [
    "STALE_TEMPORARY_SECONDS",
    "fsync_directory",
    "remove_stale_temporaries",
    "replace_file",
    "temporary_path",
    "write_new_file",
]

#: Age after which a temporary belongs to no live write. The longest write
#: (an export of a million entries) takes seconds; an hour leaves room for
#: a very slow disk without ever deleting a file still being written.
STALE_TEMPORARY_SECONDS: Final = 3600.0

#: The random part of a temporary's name: 16 lower-case hex digits.
_RANDOM_HEX_DIGITS: Final = 16


def temporary_path(target: Path) -> Path:
    """A fresh temporary name for an atomic write of ``target``, in its directory."""
    return target.parent / f".{target.name}.{secrets.token_hex(_RANDOM_HEX_DIGITS // 2)}.tmp"


def _pattern(target: Path) -> re.Pattern[str]:
    # Also matches tempfile.mkstemp's names (8 characters of [a-z0-9_]),
    # which clients.common.files used before this module existed.
    return re.compile(rf"\A\.{re.escape(target.name)}\.[a-z0-9_]{{8,{_RANDOM_HEX_DIGITS}}}\.tmp\Z")


def remove_stale_temporaries(
    target: Path, *, older_than: float = STALE_TEMPORARY_SECONDS, now: float | None = None
) -> list[Path]:
    """Delete ``target``'s temporaries last modified more than ``older_than`` seconds ago.

    Only regular files named like this module's temporaries of exactly this
    target are considered; anything else in the directory is left alone, and
    so are errors (a file that vanished or cannot be removed is skipped: the
    clean-up must never stop the write it precedes).

    Returns:
        The paths removed.
    """
    target = Path(target)
    pattern = _pattern(target)
    cutoff = (time.time() if now is None else now) - older_than
    removed: list[Path] = []
    try:
        entries = list(os.scandir(target.parent))
    except OSError:
        return removed
    for entry in entries:
        if not pattern.match(entry.name):
            continue
        with contextlib.suppress(OSError):
            info = entry.stat(follow_symlinks=False)
            if not entry.is_file(follow_symlinks=False) or info.st_mtime >= cutoff:
                continue
            os.unlink(entry.path)
            removed.append(Path(entry.path))
    return removed


def write_new_file(path: Path, data: bytes, *, mode: int) -> None:
    """Create ``path`` with exactly ``mode``, write all of ``data`` and fsync it.

    The file is created exclusively and never through a symbolic link
    (``O_EXCL | O_NOFOLLOW``): an existing name is an error, so nothing a
    local attacker planted is written through. The mode is set before any
    byte is written (the umask can only narrow it; ``fchmod`` makes it
    exact), so a private file is never readable by others, not even while
    it is being written.

    Raises:
        OSError: the name exists (``FileExistsError``), the directory is not
            writable, the disk is full. A partly written file may remain:
            the caller removes its temporary.
    """
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW, mode)
    try:
        os.fchmod(fd, mode)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        # Data on disk before the rename or link can be, else a crash could
        # leave the new name pointing at an empty file.
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_directory(directory: Path) -> None:
    """Make a rename or link in ``directory`` durable (POSIX: fsync the directory).

    File systems that cannot fsync a directory answer EINVAL; the rename is
    atomic there all the same, only its durability is up to the system.

    Raises:
        OSError: the directory cannot be opened, or fsync failed otherwise.
    """
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    except OSError as e:
        if e.errno != errno.EINVAL:
            raise
    finally:
        os.close(fd)


def replace_file(target: Path, data: bytes, *, mode: int) -> None:
    """Replace ``target`` with ``data`` atomically and durably; the file gets exactly ``mode``.

    A temporary beside the target (:func:`temporary_path`) is written with
    :func:`write_new_file`, renamed over the target and the directory
    fsynced: a reader or a crash sees the old file or the new one, never
    half of one. If ``target`` is a symbolic link, the link itself is
    replaced by a regular file.

    Raises:
        OSError: as :func:`write_new_file`, or the rename failed; the
            previous file is left untouched and the temporary removed.
    """
    target = Path(target)
    remove_stale_temporaries(target)  # leftovers of writes killed before their rename
    tmp = temporary_path(target)
    try:
        write_new_file(tmp, data, mode=mode)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_directory(target.parent)
