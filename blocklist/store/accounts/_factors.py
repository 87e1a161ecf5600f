"""The two factors of a login: argon2id password hashes and TOTP codes.

Passwords are argon2id (RFC 9106) PHC strings from argon2-cffi; TOTP
secrets (RFC 6238, pyotp) are sealed with NaCl's SecretBox under a key kept
outside the database (:class:`AccountSecrets`), so a database dump alone
yields neither factor.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import re
import secrets
from datetime import datetime
from typing import Final

import nacl.exceptions
import nacl.secret
import nacl.utils
import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from blocklist.store.errors import InvalidField, InvalidState, WeakPassword
from blocklist.store.models import AccountRow

__all__ = [
    "MAX_PASSWORD_CHARS",
    "MIN_PASSWORD_CHARS",
    "SECRETS_KEY_BYTES",
    "TOTP_DIGITS",
    "TOTP_ISSUER",
    "TOTP_STEP_SECONDS",
    "TOTP_WINDOW",
    "AccountSecrets",
    "check_new_password",
    "check_password",
    "hash_password",
    "match_totp",
]

#: Password length bounds. NIST SP 800-63B section 5.1.1.2: at least 8
#: characters, no composition rules; 12 because these accounts approve
#: what ISPs block. The upper bound only keeps a megabyte "password" from
#: becoming work for the hasher.
MIN_PASSWORD_CHARS: Final = 12
MAX_PASSWORD_CHARS: Final = 1024

#: RFC 6238 parameters every authenticator app supports: 30-second steps,
#: 6 digits, HMAC-SHA-1 (section 4; pyotp's defaults).
TOTP_STEP_SECONDS: Final = 30
TOTP_DIGITS: Final = 6

#: Steps either side of now that are accepted (RFC 6238 section 5.2 advises
#: at most one step of network delay and clock drift).
TOTP_WINDOW: Final = 1

#: Issuer shown by authenticator apps (``otpauth://`` URI).
TOTP_ISSUER: Final = "cleanfeed"

#: Length of the account-secrets key (NaCl SecretBox key).
SECRETS_KEY_BYTES: Final = nacl.secret.SecretBox.KEY_SIZE

_TOTP_CODE_RE = re.compile(rf"\A[0-9]{{{TOTP_DIGITS}}}\Z")

#: argon2id with argon2-cffi's defaults (RFC 9106 section 4, second
#: recommended option: t=3, 64 MiB, p=4).
_HASHER = PasswordHasher()


class AccountSecrets:
    """The deployment's account-secrets key: seals TOTP secrets, keys hashes.

    TOTP secrets are sealed with XSalsa20-Poly1305 (NaCl SecretBox), so the
    database alone does not give the second factor. The same key (through
    a derived subkey) keys the HMAC that names back-off rows, so a stored
    row cannot be matched to a client address without it.
    """

    def __init__(self, key: bytes) -> None:
        """Wrap a 32-byte key.

        Raises:
            InvalidField: a key of another length.
        """
        if len(key) != SECRETS_KEY_BYTES:
            raise InvalidField(f"the account-secrets key must be {SECRETS_KEY_BYTES} bytes")
        self._box = nacl.secret.SecretBox(key)
        self._mac_key = hashlib.sha256(b"cleanfeed-account-mac/v1\n" + key).digest()

    def seal(self, plaintext: str) -> bytes:
        """Encrypt a TOTP secret (a fresh random nonce each time)."""
        return bytes(self._box.encrypt(plaintext.encode("ascii")))

    def open(self, sealed: bytes) -> str:
        """Decrypt a sealed TOTP secret.

        Raises:
            InvalidState: sealed under another key or altered (the key file
                was replaced: the account must be reset).
        """
        try:
            return bytes(self._box.decrypt(sealed)).decode("ascii")
        except nacl.exceptions.CryptoError as e:
            raise InvalidState(
                "a TOTP secret does not open with this deployment's account-secrets key "
                "(was the key file replaced?): reset the account"
            ) from e

    def mac(self, purpose: str, value: str) -> bytes:
        """HMAC-SHA-256 of ``value`` for ``purpose`` (back-off row keys)."""
        message = purpose.encode("ascii") + b"\x00" + value.encode("utf-8", "surrogatepass")
        return hmac.new(self._mac_key, message, hashlib.sha256).digest()

    @staticmethod
    def generate() -> bytes:
        """A fresh random key."""
        return nacl.utils.random(SECRETS_KEY_BYTES)


def check_new_password(password: object) -> str:
    """Validate a password being set.

    Raises:
        WeakPassword: shorter than :data:`MIN_PASSWORD_CHARS` or longer
            than :data:`MAX_PASSWORD_CHARS`.
    """
    if not isinstance(password, str) or not (
        MIN_PASSWORD_CHARS <= len(password) <= MAX_PASSWORD_CHARS
    ):
        raise WeakPassword(
            f"a password has {MIN_PASSWORD_CHARS} to {MAX_PASSWORD_CHARS} characters "
            "(a passphrase of several words is easiest)"
        )
    return password


def hash_password(password: str) -> str:
    """The argon2id PHC string stored for a password (checked first)."""
    return _HASHER.hash(password)


def match_totp(secret: str, code: str, at: datetime) -> int | None:
    """The time-step whose code is ``code`` within :data:`TOTP_WINDOW` of ``at``, or None.

    RFC 6238 section 4: ``T = floor(unix time / 30)``; section 5.2: accept
    at most one step either side for drift. Codes are compared in constant
    time.
    """
    if not isinstance(code, str) or not _TOTP_CODE_RE.match(code):
        return None
    totp = pyotp.TOTP(secret, digits=TOTP_DIGITS, interval=TOTP_STEP_SECONDS)
    now_step = int(at.timestamp()) // TOTP_STEP_SECONDS
    found: int | None = None
    for step in range(now_step - TOTP_WINDOW, now_step + TOTP_WINDOW + 1):
        if hmac.compare_digest(totp.generate_otp(step), code) and found is None:
            found = step
    return found


_DUMMY_HASH: list[str] = []


def check_password(row: AccountRow | None, password: str) -> bool:
    """Whether ``password`` is the account's; ``row`` None still costs one hash.

    Verifying against a dummy hash for unknown or unenrolled accounts keeps
    the answer's timing from telling which names exist. A hash made with
    weaker parameters than today's is upgraded in place.
    """
    if not isinstance(password, str) or len(password) > MAX_PASSWORD_CHARS:
        return False
    if row is None or row.password_hash is None:
        if not _DUMMY_HASH:
            _DUMMY_HASH.append(_HASHER.hash(secrets.token_hex(16)))
        with contextlib.suppress(VerificationError):
            _HASHER.verify(_DUMMY_HASH[0], password)
        return False
    try:
        _HASHER.verify(row.password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False
    if _HASHER.check_needs_rehash(row.password_hash):
        row.password_hash = _HASHER.hash(password)
    return True
