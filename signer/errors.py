"""Error tree of the signer package.

Every error :mod:`signer` raises on purpose derives from :class:`SignerError`.
Each class carries a stable ``code`` (the API maps it to problem+json, the
CLI prints it). Library errors (PyNaCl, ``OSError``) are re-raised ``from``
the original so the cause stays visible in tracebacks without leaking secret
material into messages.
"""

from __future__ import annotations

from typing import Final, Literal, get_args

__all__ = [
    "KEYRING_REASONS",
    "AlreadyInitialised",
    "BadSignature",
    "ForkRefused",
    "HighWaterError",
    "HighWaterMissing",
    "InsecureKeyFile",
    "KeyFileError",
    "KeyringError",
    "KeyringReason",
    "MalformedNote",
    "NoKeyring",
    "NotInitialised",
    "NoteError",
    "OnlineKeyMissing",
    "PassphraseRequired",
    "RootKeyOffline",
    "SignerError",
    "UnknownKey",
]


class SignerError(Exception):
    """Root of every error the signer package raises on purpose."""

    #: A stable, machine-readable code.
    code = "signer_error"


# --- signed notes (c2sp.org/signed-note) -----------------------------------


class NoteError(SignerError):
    """A signed note cannot be accepted."""

    code = "note_error"


class MalformedNote(NoteError):
    """The note breaks the signed-note syntax or a size limit."""

    code = "malformed_note"


class UnknownKey(NoteError):
    """No signature line is by a trusted key (name and key ID both known)."""

    code = "unknown_key"


class BadSignature(NoteError):
    """A signature line by a trusted key does not verify.

    c2sp.org/signed-note, "Signatures": if a signature from a known key fails
    to verify, the whole note is rejected, even when another known key's
    signature verifies.
    """

    code = "bad_signature"


# --- secret key files -------------------------------------------------------


class KeyFileError(SignerError):
    """A secret key file cannot be read, written, parsed or decrypted."""

    code = "key_file_error"


class PassphraseRequired(KeyFileError):
    """The key file is encrypted and no passphrase was given."""

    code = "passphrase_required"


class InsecureKeyFile(KeyFileError):
    """A secret key file other users could read or replace.

    The message says how to fix it (``chmod 600 PATH`` / ``chown``).
    """

    code = "insecure_key_file"


# --- keyrings (DESIGN.md, "Versions, the log and what is signed", item 1) ---

KeyringReason = Literal[
    "format",
    "signature",
    "threshold",
    "rotation_unsigned",
    "root_mismatch",
    "serial_gap",
    "equivocation",
    "origin_mismatch",
    "expired",
]

#: Every reason a keyring update can be refused for; stable, used as codes.
KEYRING_REASONS: Final[frozenset[str]] = frozenset(get_args(KeyringReason))


class KeyringError(SignerError):
    """A keyring (or keyring update) is refused; ``reason`` says why.

    Reasons:
        format: the text is not a canonical keyring, or a vkey does not parse.
        signature: the note is malformed or a root's signature is invalid.
        threshold: fewer than ``threshold`` valid signatures of the roots of
            the held keyring (for serial 1: of the pinned roots).
        rotation_unsigned: the new keyring lacks ``threshold`` signatures of
            its own roots (TUF root rotation: both old and new roots sign).
        root_mismatch: a serial-1 keyring whose roots are not the pinned ones.
        serial_gap: the serial is not exactly one above the held one
            (rollback, replay or a skipped serial).
        equivocation: a validly signed keyring with the held serial but other
            content: evidence that the root keys signed two histories.
        origin_mismatch: the origin differs from the held or pinned origin.
        expired: ``expires`` is not in the future (freeze protection).
    """

    code = "keyring_error"

    def __init__(self, reason: KeyringReason, message: str) -> None:
        if reason not in KEYRING_REASONS:  # pragma: no cover - typing guards this
            raise ValueError(f"unknown keyring error reason {reason!r}")
        super().__init__(f"{reason}: {message}")
        self.reason: KeyringReason = reason


# --- the high-water mark (DESIGN.md, "Versions, the log and what is signed") --


class HighWaterError(SignerError):
    """The high-water mark file is unreadable or malformed."""

    code = "highwater_error"


class HighWaterMissing(HighWaterError):
    """No high-water mark file: the signer does not know what it signed before."""

    code = "highwater_missing"


class ForkRefused(SignerError):
    """Signing would fork the log: the database is not an extension of the mark."""

    code = "fork_refused"


# --- publishing -------------------------------------------------------------


class NoKeyring(SignerError):
    """The list has no keyring yet (production: import the signed serial 1 first)."""

    code = "no_keyring"


class OnlineKeyMissing(SignerError):
    """The keyring's open online key is not among this signer's key files."""

    code = "online_key_missing"


# --- the data directory -----------------------------------------------------


class AlreadyInitialised(SignerError):
    """The data directory (or list) is initialised already; nothing was changed."""

    code = "already_initialised"


class NotInitialised(SignerError):
    """The data directory has not been initialised (run ``cleanfeed init``)."""

    code = "not_initialised"


class RootKeyOffline(SignerError):
    """The operation needs the root key, which this deployment keeps offline."""

    code = "root_key_offline"
