"""The keyring text format (DESIGN.md, "Versions, the log and what is signed", item 1).

A keyring names a list's root keys (offline, they sign keyrings) and its
online keys (they sign statements and checkpoints), each online key with the
range of versions it may sign::

    cleanfeed-keyring/v1
    origin <list origin>
    serial <n>
    expires <UTC RFC 3339, seconds, Z>
    threshold <k>
    root <root vkey>                          (one line per root key)
    key <online vkey> <first version> <last version or ->

This module is pure: it parses and writes the text and checks its syntax,
including that every vkey is well formed and carries the key ID its name and
public key imply (SHA-256 is pure). It never touches PyNaCl; the
cryptographic verification of signatures lives in :mod:`signer.note` and
:mod:`signer.keyring`.

Rules beyond the line syntax, each chosen to leave one reading per text:

* The origin follows :func:`blocklist.checkpoint.validate_origin`, the one
  rule shared by keyrings, statements and checkpoints.
* Lines appear in the order above; an unknown, repeated (for the singular
  fields) or misplaced line is an error (DESIGN.md, canonical encodings).
* ``serial`` >= 1; ``threshold`` between 1 and the number of roots.
* At least one root and one key line. ``root`` lines are in strictly
  ascending order of their text (so two spellings of one root set cannot
  exist, and no root repeats).
* ``key`` lines are in ascending order of their first version and their
  ranges do not overlap, so every version is signable by at most one key and
  at most one range is open (``-``): two open ranges would overlap. Gaps are
  allowed (they only make versions unsignable). ``first`` >= 1 because
  statements start at version 1, and ``first <= last``: a key rotated out
  before it signed anything is dropped from the next keyring, not listed
  with an empty range.
* No public key appears twice, whether as two roots, two online keys or a
  root reused as an online key: root keys stay offline, and a verifier must
  never have to choose between two lines for one key.
* Keys are Ed25519 (signature type 0x01) vkeys only.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Final, NamedTuple

from blocklist.checkpoint import validate_origin
from blocklist.encoding import (
    MAX_DECIMAL,
    b64decode,
    b64encode,
    format_time,
    parse_decimal,
    parse_time,
)
from blocklist.errors import FormatError

__all__ = [
    "ED25519_PUBLIC_KEY_SIZE",
    "KEYRING_HEADER",
    "KEY_ID_SIZE",
    "MAX_KEYRING_BYTES",
    "MAX_KEYS",
    "MAX_NAME_BYTES",
    "MAX_ROOTS",
    "SIG_TYPE_COSIGNATURE_V1",
    "SIG_TYPE_ED25519",
    "KeyRange",
    "Keyring",
    "VkeyParts",
    "format_vkey",
    "is_valid_key_name",
    "key_id",
    "parse_vkey",
]

#: First line of every keyring text; a new format gets a new version line.
KEYRING_HEADER: Final = "cleanfeed-keyring/v1"

#: Signature type byte of plain Ed25519 note signatures (c2sp.org/signed-note).
SIG_TYPE_ED25519: Final = 0x01
#: Signature type byte of timestamped Ed25519 cosignatures (c2sp.org/tlog-cosignature).
SIG_TYPE_COSIGNATURE_V1: Final = 0x04

#: Bytes of an Ed25519 public key (RFC 8032).
ED25519_PUBLIC_KEY_SIZE: Final = 32
#: Bytes of a key ID (c2sp.org/signed-note: a big-endian uint32).
KEY_ID_SIZE: Final = 4

#: Longest key name in UTF-8 bytes. The ML-DSA cosigned message of
#: c2sp.org/tlog-cosignature stores names as opaque<1..2^8-1>, so nothing
#: longer can be interoperable; it also bounds every line we parse.
MAX_NAME_BYTES: Final = 255

#: Most root keys per keyring. Root ceremonies use a handful (TUF deployments
#: use 3-of-5 or so); the cap bounds signature checks per keyring (DoS).
MAX_ROOTS: Final = 32

#: Most ``key`` lines per keyring. Closed ranges stay listed so old statements
#: keep verifying; 512 allows a monthly rotation for 40 years while bounding
#: what a client parses (DoS).
MAX_KEYS: Final = 512

#: Largest keyring text accepted: MAX_ROOTS + MAX_KEYS lines of at most a few
#: hundred bytes each fit comfortably; anything larger is refused before
#: parsing (endless-data protection).
MAX_KEYRING_BYTES: Final = 256 * 1024

# Unicode White_Space (PropList.txt), the set Go's unicode.IsSpace tests, which
# c2sp.org/signed-note forbids in key names ("Unicode spaces"). Spelled out
# rather than using str.isspace(), which differs (it also matches U+001C..1F).
_WHITE_SPACE: Final = frozenset(
    "\t\n\v\f\r \x85\xa0\u1680"
    "\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
    "\u2028\u2029\u202f\u205f\u3000"
)


def _has_control_or_space(text: str) -> bool:
    return any(c in _WHITE_SPACE or c < " " or c == "\x7f" for c in text)


def _utf8_length(text: str) -> int | None:
    try:
        return len(text.encode("utf-8"))
    except UnicodeEncodeError:  # lone surrogates: not valid UTF-8
        return None


def is_valid_key_name(name: str) -> bool:
    """Tell whether ``name`` is a valid signed-note key name.

    c2sp.org/signed-note: non-empty, valid UTF-8, no Unicode spaces and no
    ``+`` (the vkey field separator). Stricter than the spec, also refused:
    ASCII control characters (they can never appear in a note) and names
    longer than :data:`MAX_NAME_BYTES`.
    """
    size = _utf8_length(name)
    return (
        size is not None
        and 0 < size <= MAX_NAME_BYTES
        and "+" not in name
        and not _has_control_or_space(name)
    )


def key_id(name: str, sig_type: int, public_key: bytes) -> bytes:
    """Compute a signed-note key ID.

    c2sp.org/signed-note, "Signatures":
    ``SHA-256(key name || 0x0A || signature type || public key)[:4]``.
    """
    digest = hashlib.sha256(name.encode("utf-8") + b"\n" + bytes([sig_type]) + public_key).digest()
    return digest[:KEY_ID_SIZE]


class VkeyParts(NamedTuple):
    """The fields of a verifier key ``<name>+<hex key ID>+<base64(type || key)>``."""

    name: str
    key_id: bytes
    sig_type: int
    public_key: bytes


def parse_vkey(vkey: str, *, sig_types: Iterable[int] = (SIG_TYPE_ED25519,)) -> VkeyParts:
    """Parse and syntax-check a verifier key (vkey).

    The vkey must be exactly ``<name>+<8 lower-case hex digits>+<canonical
    base64 of one type byte and a 32-byte Ed25519 key>`` and its key ID must
    be the one the name, type and key imply. Lower-case hex only, and
    canonical base64 only, so one key has one spelling (Go's
    ``note.NewVerifierKey`` writes this form).

    Args:
        vkey: the verifier key text.
        sig_types: accepted signature type bytes (0x01 and/or 0x04; both are
            Ed25519 keys whose key ID follows the recommended formula).

    Raises:
        FormatError: any deviation from the form above.
    """
    allowed = frozenset(sig_types)
    if not allowed <= {SIG_TYPE_ED25519, SIG_TYPE_COSIGNATURE_V1}:
        raise ValueError(f"unsupported vkey signature types {sorted(allowed)}")
    # The name cannot contain '+', the hex ID neither; base64 may.
    parts = vkey.split("+", 2)
    if len(parts) != 3:
        raise FormatError(f"vkey: expected <name>+<key id>+<key>: {vkey[:60]!r}")
    name, id_hex, key_b64 = parts
    if not is_valid_key_name(name):
        raise FormatError(f"vkey: invalid key name {name[:60]!r}")
    if len(id_hex) != 2 * KEY_ID_SIZE or any(c not in "0123456789abcdef" for c in id_hex):
        raise FormatError(f"vkey: key ID must be 8 lower-case hex digits: {id_hex[:16]!r}")
    raw = b64decode(key_b64, length=1 + ED25519_PUBLIC_KEY_SIZE, what="vkey key")
    sig_type, public_key = raw[0], raw[1:]
    if sig_type not in allowed:
        raise FormatError(f"vkey: signature type 0x{sig_type:02x} not accepted here")
    expected = key_id(name, sig_type, public_key)
    if bytes.fromhex(id_hex) != expected:
        raise FormatError(f"vkey: key ID {id_hex} does not match name and key ({expected.hex()})")
    return VkeyParts(name, expected, sig_type, public_key)


def format_vkey(name: str, sig_type: int, public_key: bytes) -> str:
    """Write a vkey for a name, signature type and 32-byte Ed25519 public key.

    Raises:
        FormatError: invalid name, type or key size.
    """
    if not is_valid_key_name(name):
        raise FormatError(f"vkey: invalid key name {name[:60]!r}")
    if sig_type not in (SIG_TYPE_ED25519, SIG_TYPE_COSIGNATURE_V1):
        raise FormatError(f"vkey: unsupported signature type 0x{sig_type:02x}")
    if len(public_key) != ED25519_PUBLIC_KEY_SIZE:
        raise FormatError(f"vkey: public key must be {ED25519_PUBLIC_KEY_SIZE} bytes")
    key_b64 = b64encode(bytes([sig_type]) + public_key)
    return f"{name}+{key_id(name, sig_type, public_key).hex()}+{key_b64}"


@dataclass(frozen=True, slots=True)
class KeyRange:
    """An online key and the versions it may sign (``last`` None: open, ``-``)."""

    vkey: str
    first: int
    last: int | None

    def __post_init__(self) -> None:
        parse_vkey(self.vkey)
        _check_int("key first version", self.first, minimum=1)
        if self.last is not None:
            _check_int("key last version", self.last, minimum=1)
            if self.last < self.first:
                raise FormatError(f"key: last version {self.last} is below first {self.first}")

    @property
    def is_open(self) -> bool:
        """Whether the range is open (``-``): only such a key signs checkpoints."""
        return self.last is None

    def contains(self, version: int) -> bool:
        """Whether statement ``version`` falls in this range."""
        return self.first <= version and (self.last is None or version <= self.last)

    def to_line(self) -> str:
        """The ``key`` line, without its newline."""
        last = "-" if self.last is None else str(self.last)
        return f"key {self.vkey} {self.first} {last}"


def _public_key_of(vkey: str) -> bytes:
    return parse_vkey(vkey).public_key


@dataclass(frozen=True, slots=True)
class Keyring:
    """A parsed, validated keyring (see the module docstring for the rules).

    Construction validates every rule :meth:`parse` enforces, so
    :meth:`to_text` always produces a text that parses back to an equal
    keyring. Use :meth:`create` to have roots and key lines sorted for you.
    """

    origin: str
    serial: int
    expires: datetime
    threshold: int
    roots: tuple[str, ...]
    keys: tuple[KeyRange, ...]

    def __post_init__(self) -> None:
        validate_origin(self.origin)
        _check_int("serial", self.serial, minimum=1)
        if self.expires.tzinfo is None:
            raise FormatError("expires: needs an aware UTC datetime")
        if self.expires.microsecond:
            raise FormatError("expires: whole seconds only (RFC 3339 with seconds)")
        if not isinstance(self.roots, tuple) or not isinstance(self.keys, tuple):
            raise FormatError("roots and keys must be tuples")
        if not 1 <= len(self.roots) <= MAX_ROOTS:
            raise FormatError(f"root: between 1 and {MAX_ROOTS} root keys, got {len(self.roots)}")
        if not 1 <= len(self.keys) <= MAX_KEYS:
            raise FormatError(f"key: between 1 and {MAX_KEYS} key lines, got {len(self.keys)}")
        _check_int("threshold", self.threshold, minimum=1)
        if self.threshold > len(self.roots):
            raise FormatError(
                f"threshold: {self.threshold} exceeds the number of roots ({len(self.roots)})"
            )
        for earlier, later in zip(self.roots, self.roots[1:], strict=False):
            if not earlier < later:
                raise FormatError("root: lines must be in strictly ascending order (no repeats)")
        seen: set[bytes] = set()
        for vkey in self.roots:
            _claim_public_key(seen, _public_key_of(vkey), vkey)
        for rng in self.keys:
            if not isinstance(rng, KeyRange):
                raise FormatError("keys must be KeyRange values")
            _claim_public_key(seen, _public_key_of(rng.vkey), rng.vkey)
        for earlier_range, later_range in zip(self.keys, self.keys[1:], strict=False):
            # Ascending and non-overlapping: the earlier range must be closed
            # and end before the later one starts.
            if earlier_range.last is None or earlier_range.last >= later_range.first:
                raise FormatError(
                    "key: ranges must be in ascending order and must not overlap "
                    f"({earlier_range.to_line()!r} then {later_range.to_line()!r})"
                )

    @classmethod
    def create(
        cls,
        *,
        origin: str,
        serial: int,
        expires: datetime,
        threshold: int,
        roots: Iterable[str],
        keys: Iterable[KeyRange],
    ) -> Keyring:
        """Build a keyring with roots and key lines put in canonical order.

        Raises:
            FormatError: the keyring breaks a rule (see the module docstring).
        """
        return cls(
            origin=origin,
            serial=serial,
            expires=expires,
            threshold=threshold,
            roots=tuple(sorted(roots)),
            keys=tuple(sorted(keys, key=lambda r: r.first)),
        )

    def to_text(self) -> str:
        """Write the canonical keyring text (ends in a newline)."""
        lines = [
            KEYRING_HEADER,
            f"origin {self.origin}",
            f"serial {self.serial}",
            f"expires {format_time(self.expires)}",
            f"threshold {self.threshold}",
            *(f"root {vkey}" for vkey in self.roots),
            *(rng.to_line() for rng in self.keys),
        ]
        return "\n".join(lines) + "\n"

    @classmethod
    def parse(cls, text: str) -> Keyring:
        """Parse a keyring text strictly.

        Raises:
            FormatError: the text is not a canonical keyring (unknown, repeated
                or misordered lines, bad numbers, bad vkeys, overlapping
                ranges, oversize...).
        """
        # endless-data protection: refuse before splitting (chars <= bytes).
        size = _utf8_length(text) if len(text) <= MAX_KEYRING_BYTES else None
        if size is None or size > MAX_KEYRING_BYTES:
            raise FormatError(f"keyring: larger than {MAX_KEYRING_BYTES} bytes or not UTF-8")
        if not text.endswith("\n"):
            raise FormatError("keyring: text must end in a newline")
        if any(c < " " and c != "\n" for c in text):
            raise FormatError("keyring: control characters (other than newline) are not allowed")
        lines = text[:-1].split("\n")
        if lines[0] != KEYRING_HEADER:
            raise FormatError(f"keyring: first line must be {KEYRING_HEADER!r}")

        singular = ("origin", "serial", "expires", "threshold")
        values: dict[str, str] = {}
        pos = 1
        for field in singular:
            if pos >= len(lines):
                raise FormatError(f"keyring: missing {field!r} line")
            keyword, value = _split_line(lines[pos], pos)
            if keyword != field:
                raise _misplaced(keyword, field, pos)
            values[field] = value
            pos += 1
        roots: list[str] = []
        while pos < len(lines) and lines[pos].startswith("root "):
            roots.append(_split_line(lines[pos], pos)[1])
            pos += 1
        keys: list[KeyRange] = []
        while pos < len(lines) and lines[pos].startswith("key "):
            keys.append(_parse_key_line(_split_line(lines[pos], pos)[1], pos))
            pos += 1
        if pos < len(lines):
            keyword = lines[pos].split(" ", 1)[0]
            raise _misplaced(keyword, "root" if not keys else "key", pos)

        if len(roots) > MAX_ROOTS or len(keys) > MAX_KEYS:
            raise FormatError("keyring: too many root or key lines")
        return cls(
            origin=values["origin"],
            serial=parse_decimal(values["serial"], what="serial"),
            expires=parse_time(values["expires"], what="expires"),
            threshold=parse_decimal(values["threshold"], what="threshold"),
            roots=tuple(roots),
            keys=tuple(keys),
        )

    def keys_for_version(self, version: int) -> list[str]:
        """The vkeys allowed to sign statement ``version`` (at most one)."""
        return [rng.vkey for rng in self.keys if rng.contains(version)]

    def open_keys(self) -> list[str]:
        """The vkeys with an open range: the only ones that sign checkpoints."""
        return [rng.vkey for rng in self.keys if rng.is_open]

    @property
    def root_set(self) -> frozenset[str]:
        """The root vkeys as a set (for comparing root sets across serials)."""
        return frozenset(self.roots)


_KNOWN_KEYWORDS: Final = frozenset({"origin", "serial", "expires", "threshold", "root", "key"})


def _misplaced(keyword: str, expected: str, pos: int) -> FormatError:
    if not keyword:
        return FormatError(f"keyring line {pos + 1}: empty line")
    if keyword not in _KNOWN_KEYWORDS:
        return FormatError(f"keyring line {pos + 1}: unknown line {keyword[:24]!r}")
    return FormatError(
        f"keyring line {pos + 1}: {keyword!r} line is repeated or out of order "
        f"(expected {expected!r})"
    )


def _split_line(line: str, pos: int) -> tuple[str, str]:
    keyword, sep, value = line.partition(" ")
    if not sep or not value:
        if not keyword:
            raise FormatError(f"keyring line {pos + 1}: empty line")
        if keyword in _KNOWN_KEYWORDS:
            raise FormatError(f"keyring line {pos + 1}: {keyword!r} needs a value")
        raise FormatError(f"keyring line {pos + 1}: unknown line {keyword[:24]!r}")
    return keyword, value


def _parse_key_line(value: str, pos: int) -> KeyRange:
    fields = value.split(" ")
    if len(fields) != 3:
        raise FormatError(f"keyring line {pos + 1}: expected 'key <vkey> <first> <last or ->'")
    vkey, first_text, last_text = fields
    first = parse_decimal(first_text, what="key first version")
    last = None if last_text == "-" else parse_decimal(last_text, what="key last version")
    return KeyRange(vkey, first, last)


def _check_int(what: str, value: object, *, minimum: int) -> None:
    # Same bounds as parse_decimal, so whatever is built also parses back.
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= MAX_DECIMAL:
        raise FormatError(f"{what}: must be an integer in {minimum}..{MAX_DECIMAL}, got {value!r}")


def _claim_public_key(seen: set[bytes], public_key: bytes, vkey: str) -> None:
    if public_key in seen:
        raise FormatError(f"keyring: public key listed twice ({vkey.split('+', 1)[0]!r})")
    seen.add(public_key)
