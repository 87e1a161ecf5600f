"""Reading bearer tokens and verification keys, for both clients.

A token or key given as a file is read with a size cap (a wrong path to a
large file is a mistake, not a credential) and never echoed into an error
message: only the path is.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from blocklist.errors import FormatError
from blocklist.keyring import SIG_TYPE_COSIGNATURE_V1, SIG_TYPE_ED25519, parse_vkey
from clients.errors import ConfigError

__all__ = [
    "MAX_TOKEN_FILE_BYTES",
    "MAX_VKEY_FILE_BYTES",
    "TOKEN_ENV",
    "read_token_file",
    "read_vkey",
]

#: Environment variable holding the bearer token (DESIGN.md: CLI commands take
#: tokens from a file or the environment as well as a flag).
TOKEN_ENV: Final = "CLEANFEED_TOKEN"  # noqa: S105 - a variable name, not a secret
#: Token files larger than this are a mistake (wrong file), not a token.
MAX_TOKEN_FILE_BYTES: Final = 4096
#: A vkey file (``@file``) larger than this is not a vkey.
MAX_VKEY_FILE_BYTES: Final = 4096


def read_vkey(value: str, *, witness: bool = False) -> str:
    """Resolve a ``VKEY`` or ``@file`` argument to a checked vkey.

    Args:
        value: the vkey text, or ``@`` followed by a path to a file holding it.
        witness: accept witness cosignature keys (type 0x04) instead of
            plain Ed25519 signing keys (type 0x01).

    Raises:
        ConfigError: unreadable file or malformed vkey.
    """
    text = value
    if value.startswith("@"):
        path = Path(value[1:])
        try:
            with path.open("rb") as f:
                raw = f.read(MAX_VKEY_FILE_BYTES + 1)
        except OSError as e:
            raise ConfigError(f"cannot read vkey file {path}: {e.strerror}") from e
        if len(raw) > MAX_VKEY_FILE_BYTES:
            raise ConfigError(f"vkey file {path} is too large to hold a vkey")
        try:
            text = raw.decode("utf-8").strip()
        except UnicodeDecodeError as e:
            raise ConfigError(f"vkey file {path} is not UTF-8") from e
    types = (SIG_TYPE_COSIGNATURE_V1, SIG_TYPE_ED25519) if witness else (SIG_TYPE_ED25519,)
    try:
        parse_vkey(text, sig_types=types)
    except FormatError as e:
        raise ConfigError(f"invalid {'witness' if witness else 'root'} key: {e}") from e
    return text


def read_token_file(path: Path) -> str:
    """Read a bearer token from a file (first line, stripped).

    Raises:
        ConfigError: unreadable, empty or oversized file.
    """
    try:
        with path.open("rb") as f:
            raw = f.read(MAX_TOKEN_FILE_BYTES + 1)
    except OSError as e:
        raise ConfigError(f"cannot read token file {path}: {e.strerror}") from e
    if len(raw) > MAX_TOKEN_FILE_BYTES:
        raise ConfigError(f"token file {path} is too large to hold a token")
    lines = raw.decode("utf-8", errors="replace").strip().splitlines()
    token = lines[0].strip() if lines else ""
    if not token:
        raise ConfigError(f"token file {path} is empty")
    return token
