"""Names of the temporary files behind atomic writes, and clean-up of stale ones.

Every atomic write in cleanfeed (ISP exports and state files, the signer's
high-water mark, key files) writes ``.<name>.<random>.tmp`` beside its
target, fsyncs it and renames it over the target. A process killed between
creating and renaming leaves that file behind; nothing else ever reads it.
Left alone such files accumulate, and a leftover export may hold plaintext
the list no longer carries. Each writer therefore removes its target's
temporaries that are old enough to belong to no live write before it
writes.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import time
from pathlib import Path
from typing import Final

__all__ = [
    "STALE_TEMPORARY_SECONDS",
    "remove_stale_temporaries",
    "temporary_path",
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
