"""The account-secrets key file: ``DATA_DIR/account-secrets.key``, mode 0600.

Created at first need (32 random bytes, written to a temporary file of mode
0600 and hard-linked into place, so two API workers starting at once agree
on one key: the loser of the race reads the winner's). Refused when group
or others may read it, the same rule ``serve`` applies to the deployment's
other secrets (issue 12, item 11). Keeping the key outside the database
means a database dump alone does not reveal anyone's second factor.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path
from typing import Final

from blocklist.store.accounts import SECRETS_KEY_BYTES, AccountSecrets
from blocklist.store.errors import AccountSecretsUnavailable
from blocklist.tempfiles import fsync_directory, temporary_path, write_new_file

__all__ = ["GROUP_OTHER_BITS", "load_or_create"]

#: Permission bits that let group or others read, write or enter a path.
GROUP_OTHER_BITS: Final = 0o077


def _read(path: Path) -> AccountSecrets:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise AccountSecretsUnavailable(f"{path} is not a regular file")
        if mode & GROUP_OTHER_BITS:
            raise AccountSecretsUnavailable(
                f"{path} is readable or writable by group or others: run chmod 600 {path}"
            )
        data = os.read(fd, SECRETS_KEY_BYTES + 1)
    finally:
        os.close(fd)
    if len(data) != SECRETS_KEY_BYTES:
        raise AccountSecretsUnavailable(
            f"{path} does not hold a {SECRETS_KEY_BYTES}-byte key (damaged or replaced)"
        )
    return AccountSecrets(data)


def load_or_create(path: Path) -> AccountSecrets:
    """Load the key, creating it (mode 0600) when it does not exist.

    Raises:
        AccountSecretsUnavailable: the file is readable by group or others,
            not a regular file, of the wrong size, or cannot be written.
    """
    try:
        return _read(path)
    except FileNotFoundError:
        pass
    except OSError as e:
        raise AccountSecretsUnavailable(f"cannot read {path}: {e.strerror or e}") from e
    tmp = temporary_path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_new_file(tmp, AccountSecrets.generate(), mode=0o600)
        # link() fails if another worker installed its key first: keep theirs.
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)
        fsync_directory(path.parent)  # the link survives a crash
    except OSError as e:
        raise AccountSecretsUnavailable(f"cannot create {path}: {e.strerror or e}") from e
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    try:
        return _read(path)
    except OSError as e:
        raise AccountSecretsUnavailable(f"cannot read {path}: {e.strerror or e}") from e
