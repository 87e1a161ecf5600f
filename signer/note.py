"""Signed notes (c2sp.org/signed-note) and timestamped cosignatures (c2sp.org/tlog-cosignature).

This is the verify side of signing: it parses and checks notes with public
keys only. Signing goes through the :class:`NoteSigner` protocol, which
:class:`signer.keys.SecretKey` implements; no signing key is touched here.

A signed note is a text ending in a newline, a blank line, then one or more
signature lines ``— <key name> <base64(4-byte key ID || signature)>``. Two
signature types are used (DESIGN.md, "Versions, the log and what is signed"):

* 0x01, plain Ed25519 over the note text (statements, checkpoints, keyrings);
* 0x04, a timestamped Ed25519 cosignature over ``cosignature/v1\\ntime
  <seconds>\\n`` followed by the note text, which the online key adds to each
  checkpoint to state its freshness (DESIGN.md item 4).

Behaviour compared with Go's golang.org/x/mod/sumdb/note ``Open``:

* Same: UTF-8 and control-character rules, split at the last blank line,
  key names without Unicode spaces or ``+``, at most 100 signature lines,
  signatures by unknown keys ignored, a failing signature by a known key
  rejects the whole note, repeated identical lines dropped.
* Stricter (a note we accept is always accepted by Go, never the reverse):
  base64 must be canonical (DESIGN.md, canonical encodings); notes over
  :data:`MAX_NOTE_BYTES` are refused; key names with ASCII control
  characters or over 255 bytes are refused; *every* line of a known key is
  verified, where Go verifies the first and skips later lines of the same
  key unverified; and a note whose text starts with ``cosignature/`` is
  refused, because such a text is the signed message of a 0x04 cosignature
  and the online key signs both types (see :data:`COSIGNATURE_PREFIX`).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import ClassVar, Final, Protocol, Self

import nacl.exceptions
import nacl.signing

from blocklist.encoding import b64decode, b64encode, fits_utf8
from blocklist.errors import FormatError
from blocklist.keyring import (
    ED25519_PUBLIC_KEY_SIZE,
    KEY_ID_SIZE,
    MAX_NAME_BYTES,
    SIG_TYPE_COSIGNATURE_V1,
    SIG_TYPE_ED25519,
    format_vkey,
    is_valid_key_name,
    key_id,
    parse_vkey,
)
from signer.errors import BadSignature, MalformedNote, NoteError, UnknownKey

__all__ = [
    "COSIGNATURE_SIZE",
    "MAX_NAME_BYTES",
    "MAX_NOTE_BYTES",
    "MAX_SIGNATURES",
    "SIGNATURE_PREFIX",
    "CosignatureVerifier",
    "Note",
    "NoteSignature",
    "NoteSigner",
    "VerifiedNote",
    "Verifier",
    "cosignature_key_id",
    "cosignature_message",
    "cosigner_key_id",
    "ed25519_key_id",
    "parse_note",
    "sign_note",
    "verify_cosignature",
    "verify_note",
    "verify_timestamped",
]

#: Largest note accepted or produced, in bytes. A version statement carries
#: at most 10,000 changes of about 50 bytes (about 500 KB, DESIGN.md item 2);
#: 1 MiB leaves room and bounds memory per note (endless-data protection).
MAX_NOTE_BYTES: Final = 1024 * 1024

#: Most signature lines per note, counting repeats: Go's note.Open limit
#: ("avoid spending forever parsing a note with many signatures"), above the
#: 16 that c2sp.org/signed-note requires verifiers to accept.
MAX_SIGNATURES: Final = 100

#: Bytes of an Ed25519 signature (RFC 8032).
ED25519_SIGNATURE_SIZE: Final = 64

#: Bytes of a decoded 0x04 signature: key ID (4) || timestamp (8) || Ed25519
#: signature (64), c2sp.org/tlog-cosignature "Format".
COSIGNATURE_SIZE: Final = KEY_ID_SIZE + 8 + ED25519_SIGNATURE_SIZE

#: Largest cosignature timestamp (c2sp.org/tlog-cosignature: "MUST NOT
#: exceed 2^63 - 1").
MAX_TIMESTAMP: Final = 2**63 - 1

#: Every Ed25519 cosigned message starts with this line
#: (c2sp.org/tlog-cosignature, "Ed25519 signed message").
COSIGNATURE_HEADER: Final = "cosignature/v1\n"

#: Domain separation between the two signature types one key makes. The
#: 0x04 signed message is ``cosignature/v1\ntime N\n`` + text, which is itself
#: a valid note text; a plain 0x01 signature over such a text would double as
#: a cosignature stating freshness of a checkpoint it never saw, and a 0x04
#: signature could be replayed as a plain signature over that text. So texts
#: with this prefix are never signed with 0x01 and never accepted.
COSIGNATURE_PREFIX: Final = "cosignature/"

#: Signature lines start with an em dash (U+2014) and a space.
SIGNATURE_PREFIX: Final = "\u2014 "


def ed25519_key_id(name: str, public_key: bytes) -> bytes:
    """Key ID of a plain Ed25519 note key: ``SHA-256(name || 0x0A || 0x01 || key)[:4]``."""
    return key_id(name, SIG_TYPE_ED25519, public_key)


def cosigner_key_id(name: str, public_key: bytes) -> bytes:
    """Key ID of a timestamped Ed25519 cosigner: ``SHA-256(name || 0x0A || 0x04 || key)[:4]``.

    c2sp.org/tlog-cosignature, "Format".
    """
    return key_id(name, SIG_TYPE_COSIGNATURE_V1, public_key)


#: The spelling used in docs/architecture.md.
cosignature_key_id = cosigner_key_id


def cosignature_message(text: str, timestamp: int) -> bytes:
    """The message a 0x04 cosignature signs: header, time line, then the note text.

    Raises:
        ValueError: the timestamp is outside 0..2^63-1.
    """
    if isinstance(timestamp, bool) or not 0 <= timestamp <= MAX_TIMESTAMP:
        raise ValueError(f"cosignature timestamp out of range: {timestamp!r}")
    # c2sp.org/tlog-cosignature: "time", one space, ASCII decimal, no leading zeros.
    return f"{COSIGNATURE_HEADER}time {timestamp}\n".encode("ascii") + text.encode("utf-8")


def _check_public_key(name: str, public_key: bytes) -> None:
    if not is_valid_key_name(name):
        raise FormatError(f"invalid key name {name[:60]!r}")
    if not isinstance(public_key, bytes) or len(public_key) != ED25519_PUBLIC_KEY_SIZE:
        raise FormatError(f"an Ed25519 public key is {ED25519_PUBLIC_KEY_SIZE} bytes")


def _verify_ed25519(verify_key: nacl.signing.VerifyKey, message: bytes, signature: bytes) -> bool:
    if len(signature) != ED25519_SIGNATURE_SIZE:
        return False
    try:
        # libsodium: strict RFC 8032 verification (canonical S, no small-order keys).
        verify_key.verify(message, signature)
    except nacl.exceptions.BadSignatureError:
        return False
    return True


@dataclass(frozen=True, slots=True)
class _NamedEd25519Key:
    """A named Ed25519 public key of one signature type (c2sp.org/signed-note, "Verifier keys").

    The one home of what :class:`Verifier` (type 0x01) and
    :class:`CosignatureVerifier` (type 0x04) share: construction checks that
    ``key_id`` is the one ``name``, ``public_key`` and the type imply.
    """

    #: The signature type byte of the vkey.
    _SIG_TYPE: ClassVar[int]
    #: How a mismatching key ID is described in errors.
    _KIND: ClassVar[str]

    name: str
    key_id: bytes
    public_key: bytes
    _verify_key: nacl.signing.VerifyKey = field(init=False, repr=False, compare=False)

    @staticmethod
    def _key_id_of(name: str, public_key: bytes) -> bytes:
        raise NotImplementedError  # pragma: no cover - each type defines its key ID

    def __post_init__(self) -> None:
        _check_public_key(self.name, self.public_key)
        if self.key_id != self._key_id_of(self.name, self.public_key):
            raise FormatError(f"{self._KIND}key ID does not match the key name and public key")
        object.__setattr__(self, "_verify_key", nacl.signing.VerifyKey(self.public_key))

    @classmethod
    def from_vkey(cls, vkey: str) -> Self:
        """Parse a vkey ``<name>+<8 hex key ID>+<base64(type || public key)>``.

        Raises:
            FormatError: the vkey is malformed, not of this type (0x01 for a
                :class:`Verifier`, 0x04 for a :class:`CosignatureVerifier`),
                or its key ID does not match.
        """
        parts = parse_vkey(vkey, sig_types=(cls._SIG_TYPE,))
        return cls(parts.name, parts.key_id, parts.public_key)

    @classmethod
    def from_public_key(cls, name: str, public_key: bytes) -> Self:
        """Build the key of this type of a named Ed25519 public key.

        Raises:
            FormatError: invalid name or key size.
        """
        _check_public_key(name, public_key)
        return cls(name, cls._key_id_of(name, public_key), public_key)

    @property
    def vkey(self) -> str:
        """The vkey text of this key (of its type)."""
        return format_vkey(self.name, self._SIG_TYPE, self.public_key)


class Verifier(_NamedEd25519Key):
    """A trusted Ed25519 note key (signature type 0x01).

    Construction checks that ``key_id`` is the one ``name`` and
    ``public_key`` imply; use :meth:`from_vkey` or :meth:`from_public_key`.
    """

    __slots__ = ()
    _SIG_TYPE = SIG_TYPE_ED25519
    _KIND = ""
    _key_id_of = staticmethod(ed25519_key_id)

    @property
    def cosigner(self) -> CosignatureVerifier:
        """The same key as a 0x04 cosigner (the online key signs both types)."""
        return CosignatureVerifier.from_public_key(self.name, self.public_key)

    def verify(self, message: bytes, signature: bytes) -> bool:
        """Whether ``signature`` is this key's Ed25519 signature of ``message``."""
        return _verify_ed25519(self._verify_key, message, signature)


class CosignatureVerifier(_NamedEd25519Key):
    """A trusted timestamped Ed25519 cosigner (signature type 0x04).

    Witnesses publish such keys as vkeys of type 0x04
    (c2sp.org/tlog-cosignature); the online key's own cosigner is
    :attr:`Verifier.cosigner`.
    """

    __slots__ = ()
    _SIG_TYPE = SIG_TYPE_COSIGNATURE_V1
    _KIND = "cosigner "
    _key_id_of = staticmethod(cosigner_key_id)

    def verify_timestamped(self, text: str, signature: bytes) -> int | None:
        """Check a decoded 0x04 signature (without its key ID) over ``text``.

        Returns:
            The timestamp when the signature is valid, else None.
        """
        if len(signature) != COSIGNATURE_SIZE - KEY_ID_SIZE:
            return None
        timestamp = int.from_bytes(signature[:8], "big")
        if timestamp > MAX_TIMESTAMP:
            return None
        message = cosignature_message(text, timestamp)
        return timestamp if _verify_ed25519(self._verify_key, message, signature[8:]) else None


@dataclass(frozen=True, slots=True)
class NoteSignature:
    """One signature line: key name, 4-byte key ID and the bytes after the ID."""

    name: str
    key_id: bytes
    signature: bytes

    @property
    def line(self) -> str:
        """The signature line, newline included."""
        return f"{SIGNATURE_PREFIX}{self.name} {b64encode(self.key_id + self.signature)}\n"


@dataclass(frozen=True, slots=True)
class Note:
    """A parsed (not yet verified) note: its text and every signature line in order."""

    text: str
    signatures: tuple[NoteSignature, ...]


@dataclass(frozen=True, slots=True)
class VerifiedNote:
    """A note text and the trusted keys whose signatures on it verified."""

    text: str
    verifiers: tuple[Verifier, ...]


class NoteSigner(Protocol):
    """Something that signs with an Ed25519 key (implemented by ``signer.keys.SecretKey``)."""

    @property
    def name(self) -> str:
        """The key name written on signature lines."""
        ...

    @property
    def public_key(self) -> bytes:
        """The 32-byte Ed25519 public key."""
        ...

    def sign(self, message: bytes) -> bytes:
        """Return the 64-byte Ed25519 signature of ``message``."""
        ...


def _decode(data: str | bytes) -> str:
    if isinstance(data, bytes):
        if len(data) > MAX_NOTE_BYTES:
            raise MalformedNote(f"note larger than {MAX_NOTE_BYTES} bytes")
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as e:
            raise MalformedNote("note is not valid UTF-8") from e
    if not isinstance(data, str):
        raise TypeError("a note is str or bytes")
    # A str may hold lone surrogates, which are not UTF-8.
    try:
        fits = fits_utf8(data, MAX_NOTE_BYTES)
    except UnicodeEncodeError as e:
        raise MalformedNote("note is not valid UTF-8") from e
    if not fits:
        raise MalformedNote(f"note larger than {MAX_NOTE_BYTES} bytes")
    return data


#: c2sp.org/signed-note, "Format": no ASCII control characters but newline.
_CONTROL_RE = re.compile("[\x00-\x09\x0b-\x1f]")


def _has_control(text: str) -> bool:
    # One regex scan instead of a Python loop: statements are up to ~500 KB.
    return _CONTROL_RE.search(text) is not None


def parse_note(data: str | bytes) -> Note:
    """Parse a signed note without verifying any signature.

    Every signature line is syntax-checked (prefix, key name, canonical
    base64 of at least a key ID and one byte), whether or not its key is
    known. Lines are returned in order, repeats included.

    Raises:
        MalformedNote: invalid UTF-8, control characters, no blank line
            before the signatures, a bad signature line, more than
            :data:`MAX_SIGNATURES` lines, or more than :data:`MAX_NOTE_BYTES`.
    """
    message = _decode(data)
    if _has_control(message):
        raise MalformedNote("note contains control characters other than newline")
    # c2sp.org/signed-note: the text is separated from the signatures by the
    # last empty line; the text keeps its final newline.
    split = message.rfind("\n\n")
    if split < 0:
        raise MalformedNote("note has no blank line before its signatures")
    text, block = message[: split + 1], message[split + 2 :]
    if not block or not block.endswith("\n"):
        raise MalformedNote("note has no signature lines, or they do not end in a newline")
    lines = block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise MalformedNote(f"note has more than {MAX_SIGNATURES} signature lines")
    signatures = tuple(_parse_signature_line(line, i) for i, line in enumerate(lines, 1))
    return Note(text, signatures)


def _parse_signature_line(line: str, number: int) -> NoteSignature:
    if not line.startswith(SIGNATURE_PREFIX):
        raise MalformedNote(f"signature line {number} does not start with an em dash and a space")
    name, sep, sig_b64 = line[len(SIGNATURE_PREFIX) :].partition(" ")
    if not sep or not is_valid_key_name(name):
        raise MalformedNote(f"signature line {number}: invalid key name")
    try:
        raw = b64decode(sig_b64, what=f"signature line {number}")
    except FormatError as e:
        raise MalformedNote(str(e)) from e
    if len(raw) < KEY_ID_SIZE + 1:
        raise MalformedNote(f"signature line {number}: signature too short")
    return NoteSignature(name, raw[:KEY_ID_SIZE], raw[KEY_ID_SIZE:])


def _index_verifiers(verifiers: Iterable[Verifier]) -> dict[tuple[str, bytes], Verifier]:
    known: dict[tuple[str, bytes], Verifier] = {}
    for v in verifiers:
        if not isinstance(v, Verifier):
            raise TypeError(f"expected a Verifier, got {type(v).__name__}")
        other = known.setdefault((v.name, v.key_id), v)
        if other.public_key != v.public_key:
            # Go: ambiguousVerifierError. Only a misconfigured trust list can
            # hold two keys with one name and key ID; refuse to guess.
            raise NoteError(f"two trusted keys share name {v.name!r} and key ID {v.key_id.hex()}")
    return known


def verify_note(data: str | bytes, verifiers: Iterable[Verifier]) -> VerifiedNote:
    """Verify a signed note against trusted Ed25519 (0x01) keys.

    Signature lines whose (name, key ID) is not a trusted key are ignored
    (c2sp.org/signed-note: "Verifiers MUST ignore signatures from unknown
    keys"); that includes the 0x04 cosignature line, whose key ID differs.

    Returns:
        The note text and the trusted keys that signed it, each once, in the
        order of their first line.

    Raises:
        MalformedNote: see :func:`parse_note`; also a text starting with
            ``cosignature/`` (domain separation, :data:`COSIGNATURE_PREFIX`).
        BadSignature: a line by a trusted key does not verify.
        UnknownKey: no line is by a trusted key.
        NoteError: two trusted keys share a name and key ID.
    """
    known = _index_verifiers(verifiers)
    note = parse_note(data)
    if note.text.startswith(COSIGNATURE_PREFIX):
        raise MalformedNote("note text is a cosignature message, not a signable text")
    message = note.text.encode("utf-8")
    signed: dict[tuple[str, bytes], Verifier] = {}
    checked: set[NoteSignature] = set()
    for sig in note.signatures:
        verifier = known.get((sig.name, sig.key_id))
        if verifier is None or sig in checked:
            continue  # unknown key, or a repeated identical line (Go drops it)
        checked.add(sig)
        if not verifier.verify(message, sig.signature):
            raise BadSignature(f"invalid signature by {sig.name}+{sig.key_id.hex()}")
        signed.setdefault((sig.name, sig.key_id), verifier)
    if not signed:
        raise UnknownKey("note has no signature by a trusted key")
    return VerifiedNote(note.text, tuple(signed.values()))


def verify_cosignature(data: str | bytes, verifier: Verifier | CosignatureVerifier) -> int:
    """Verify the timestamped 0x04 cosignature of a key on a note and return its time.

    ``verifier`` is either a 0x04 cosigner (a witness) or the online key's
    0x01 verifier, whose cosigner key ID is derived (DESIGN.md item 4: the
    online key signs both a 0x01 and a 0x04 line on each checkpoint). This
    only checks the cosignature; call :func:`verify_note` for the plain one.

    Returns:
        The cosignature's timestamp, POSIX seconds.

    Raises:
        MalformedNote: see :func:`parse_note`; or two valid cosignatures by
            the key with different timestamps (ambiguous freshness).
        BadSignature: a 0x04 line by this key does not verify (wrong size,
            timestamp over 2^63-1, or invalid signature).
        UnknownKey: the note has no 0x04 line by this key.
    """
    cosigner = verifier.cosigner if isinstance(verifier, Verifier) else verifier
    note = parse_note(data)
    timestamps: set[int] = set()
    for sig in note.signatures:
        if (sig.name, sig.key_id) != (cosigner.name, cosigner.key_id):
            continue
        timestamp = cosigner.verify_timestamped(note.text, sig.signature)
        if timestamp is None:
            raise BadSignature(f"invalid cosignature by {sig.name}+{sig.key_id.hex()}")
        timestamps.add(timestamp)
    if not timestamps:
        raise UnknownKey(f"note has no cosignature by {cosigner.name}+{cosigner.key_id.hex()}")
    if len(timestamps) > 1:
        raise MalformedNote("note has several cosignatures by one key with different times")
    return timestamps.pop()


#: The spelling used in docs/architecture.md.
verify_timestamped = verify_cosignature


def sign_note(
    text: str,
    signers: Sequence[NoteSigner],
    *,
    cosigners: Sequence[NoteSigner] = (),
    timestamp: int | None = None,
    existing: Sequence[NoteSignature] = (),
) -> str:
    """Sign a text and return the signed note.

    Lines are written in this order: ``existing`` signatures (minus any by a
    key that signs again here, as Go's ``note.Sign`` elides them), one 0x01
    line per signer, one 0x04 line per cosigner. A checkpoint is signed with
    the online key as both signer and cosigner (DESIGN.md item 4).

    Args:
        text: the note text; must end in a newline and contain no control
            characters but newlines.
        signers: keys making plain Ed25519 (0x01) signatures.
        cosigners: keys making timestamped (0x04) cosignatures.
        timestamp: POSIX seconds for the cosignatures; now when None.
        existing: signature lines already on the text (e.g. other root
            holders' signatures on a keyring), kept unverified.

    Raises:
        MalformedNote: the text or a key name is not signable, the text starts
            with ``cosignature/`` and would be 0x01-signed, a key signs twice,
            no signature at all, or the note would exceed the size limits.
        ValueError: a signer returned something that is not an Ed25519
            signature, or the timestamp is out of range.
    """
    if not isinstance(text, str) or not text.endswith("\n"):
        raise MalformedNote("note text must end in a newline")
    if _has_control(text):
        raise MalformedNote("note text contains control characters other than newline")
    if signers and text.startswith(COSIGNATURE_PREFIX):
        raise MalformedNote("refusing to sign a cosignature message as a plain note")
    message = _decode(text).encode("utf-8")
    if cosigners and timestamp is None:
        timestamp = int(time.time())

    new_lines: list[NoteSignature] = []
    for s in signers:
        _check_signer(s)
        sig = s.sign(message)
        _check_signature(s, sig)
        new_lines.append(NoteSignature(s.name, ed25519_key_id(s.name, s.public_key), sig))
    for c in cosigners:
        _check_signer(c)
        assert timestamp is not None  # set above whenever there are cosigners
        sig = c.sign(cosignature_message(text, timestamp))
        _check_signature(c, sig)
        new_lines.append(
            NoteSignature(
                c.name, cosigner_key_id(c.name, c.public_key), timestamp.to_bytes(8, "big") + sig
            )
        )
    ids = [(n.name, n.key_id) for n in new_lines]
    if len(set(ids)) != len(ids):
        raise MalformedNote("a key appears twice among the signers or cosigners")
    kept = [e for e in existing if (e.name, e.key_id) not in set(ids)]
    for e in kept:
        if not is_valid_key_name(e.name) or len(e.key_id) != KEY_ID_SIZE or not e.signature:
            raise MalformedNote("an existing signature line is malformed")
    lines = [*kept, *new_lines]
    if not lines:
        raise MalformedNote("a signed note needs at least one signature")
    if len(lines) > MAX_SIGNATURES:
        raise MalformedNote(f"more than {MAX_SIGNATURES} signature lines")
    note = text + "\n" + "".join(line.line for line in lines)
    if len(note.encode("utf-8")) > MAX_NOTE_BYTES:
        raise MalformedNote(f"signed note would exceed {MAX_NOTE_BYTES} bytes")
    return note


def _check_signer(s: NoteSigner) -> None:
    if not is_valid_key_name(s.name):
        raise MalformedNote(f"invalid key name {s.name[:60]!r}")
    if len(s.public_key) != ED25519_PUBLIC_KEY_SIZE:
        raise ValueError("signer public key is not an Ed25519 key")


def _check_signature(s: NoteSigner, sig: bytes) -> None:
    if not isinstance(sig, bytes) or len(sig) != ED25519_SIGNATURE_SIZE:
        raise ValueError(f"signer {s.name!r} returned a {len(sig)}-byte signature, not Ed25519")
