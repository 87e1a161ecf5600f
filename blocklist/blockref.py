"""Block references: ``CF1-XXXX-XXXX-XXXX-XXXX-C``, computed from a hash alone.

DESIGN.md part 2, "Appeals and transparency": a block page shows a
``block_ref`` that lets the hotline find the matched entry without the page
revealing anything the visitor does not already know. It is

- ``CF1-`` (the format's version),
- the first :data:`BLOCK_REF_BYTES` (10) bytes of the matched expression's
  SHA-256 hash (the entry id, :func:`blocklist.canonical.expression_hash`)
  in RFC 4648 section 6 base32: upper case, no padding; 80 bits are exactly
  16 characters, written in four groups of four joined by ``-``,
- ``-`` and one check character: Luhn mod N with N = 32 over those 16
  characters, with the base32 alphabet as the code points (``A`` = 0 …
  ``7`` = 31).

Everything the ISP side needs is the 32-byte hash it already holds, so the
Squid helper, ``isp check`` and the block page compute it without plaintext.

The check character catches every single mistyped character (Luhn mod N
detects all single substitutions) and every swap of two adjacent different
characters except ``A`` with ``7`` (code points 0 and N - 1; the same blind
spot as ``0``/``9`` in decimal Luhn). It is checked before a reference is
submitted, so a typo gives a clear error instead of an appeal that matches
nothing. 80 bits of the hash keep accidental collisions between entries out
of reach (the birthday bound is near 2^40 entries); they are not a secret.

docs/protocol.md section 2.5 holds the worked example and the test vectors
(``tests/vectors/block_ref.json``, written by ``scripts/gen_vectors.py``).
"""

from __future__ import annotations

import base64
import re
from typing import Final

from blocklist.errors import FormatError

#: The version tag every reference starts with; another format gets another tag.
BLOCK_REF_PREFIX: Final = "CF1"
#: Bytes of the expression hash a reference carries (80 bits: 16 base32 characters).
BLOCK_REF_BYTES: Final = 10
#: Size of a full expression hash (SHA-256), the input of :func:`block_ref`.
HASH_SIZE: Final = 32
#: RFC 4648 section 6, Table 3: the base32 alphabet, in code point order.
ALPHABET: Final = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
#: N of Luhn mod N: the size of the alphabet.
LUHN_N: Final = len(ALPHABET)
#: Characters of the encoded hash (10 bytes x 8 bits / 5 bits per character).
BODY_CHARS: Final = BLOCK_REF_BYTES * 8 // 5
#: Characters per group in the printed form.
GROUP: Final = 4
#: Longest text :func:`parse_block_ref` looks at: a pasted reference with
#: generous spacing fits; a pasted document does not (bounds the work).
MAX_INPUT_CHARS: Final = 128
#: Length of the printed form, ``CF1-XXXX-XXXX-XXXX-XXXX-C``.
BLOCK_REF_LENGTH: Final = len(BLOCK_REF_PREFIX) + 1 + BODY_CHARS + BODY_CHARS // GROUP + 1

_CODE_POINT: Final = {c: i for i, c in enumerate(ALPHABET)}
#: Separators a person or a text editor may put in or around a reference:
#: whitespace, ASCII hyphen and the Unicode dashes a word processor
#: substitutes for it (U+2010..U+2015, U+2212 minus sign).
_SEPARATORS_RE: Final = re.compile(r"[\s\-\u2010-\u2015\u2212]+")
#: Characters people type for base32 letters the alphabet left out on
#: purpose (RFC 4648 section 6 omits 0, 1, 8 and 9 to avoid such confusion).
_LOOKALIKES: Final = {"0": "O", "1": "I or L", "8": "B", "9": "g"}


class InvalidBlockRef(FormatError):
    """Text that is not a block reference (wrong prefix, length or alphabet)."""

    code = "invalid_block_ref"


class MistypedBlockRef(InvalidBlockRef):
    """A well-formed block reference whose check character does not match.

    Almost always a typing error: one character changed, or two adjacent
    ones swapped.
    """

    code = "block_ref_mistyped"


def _luhn_sum(code_points: list[int], *, first_factor: int) -> int:
    """Luhn mod N's sum: from the right, factors alternate ``first_factor``, the other.

    A doubled code point is folded back below N by adding its base-N
    digits (``q // N + q % N``), as decimal Luhn adds the digits of a
    doubled digit.
    """
    total = 0
    factor = first_factor
    for cp in reversed(code_points):
        addend = factor * cp
        total += addend // LUHN_N + addend % LUHN_N
        factor = 1 if factor == 2 else 2
    return total


def check_character(body: str) -> str:
    """The Luhn mod 32 check character of base32 characters.

    Args:
        body: characters of :data:`ALPHABET` (upper case).

    Returns:
        The one character that makes ``body + check`` valid.

    Raises:
        InvalidBlockRef: a character is not in the alphabet.
    """
    try:
        points = [_CODE_POINT[c] for c in body]
    except KeyError as e:
        raise InvalidBlockRef(f"{e.args[0]!r} is not a base32 character") from None
    # Generation: the rightmost body character is doubled (it sits next to
    # the check character, which the validation counts with factor 1).
    total = _luhn_sum(points, first_factor=2)
    return ALPHABET[(LUHN_N - total % LUHN_N) % LUHN_N]


def _valid(body_and_check: list[int]) -> bool:
    # Validation: the check character has factor 1, and the whole sum must
    # be a multiple of N.
    return _luhn_sum(body_and_check, first_factor=1) % LUHN_N == 0


def block_ref(h: bytes) -> str:
    """The block reference of an expression hash.

    Args:
        h: the 32-byte SHA-256 of the matched expression (the entry id).

    Returns:
        ``CF1-XXXX-XXXX-XXXX-XXXX-C``.

    Raises:
        ValueError: ``h`` is not a 32-byte hash (a caller bug: a truncated
            or hex-encoded value would give a reference that matches
            nothing).
    """
    if type(h) is not bytes or len(h) != HASH_SIZE:
        raise ValueError(f"a block reference is computed from a {HASH_SIZE}-byte SHA-256 hash")
    body = base64.b32encode(h[:BLOCK_REF_BYTES]).decode("ascii")
    # 80 bits are a whole number of base32 characters: no padding to strip.
    assert len(body) == BODY_CHARS
    groups = [body[i : i + GROUP] for i in range(0, BODY_CHARS, GROUP)]
    return "-".join([BLOCK_REF_PREFIX, *groups, check_character(body)])


def parse_block_ref(text: str) -> bytes:
    """Read a block reference as a person may type or paste it.

    Case does not matter, and dashes and whitespace may be missing,
    doubled or anywhere (``cf1 abcd efgh …``, ``CF1ABCD…``). The check
    character is verified.

    Args:
        text: the reference.

    Returns:
        The :data:`BLOCK_REF_BYTES` bytes of the expression hash it names
        (compare with ``hash[:BLOCK_REF_BYTES]``, see :func:`ref_matches`).

    Raises:
        InvalidBlockRef: the text is not a reference: too long, no ``CF1``
            prefix, not 17 characters after it, or a character outside the
            base32 alphabet.
        MistypedBlockRef: the check character does not match (a mistyped
            or swapped character).
    """
    if not isinstance(text, str):
        raise InvalidBlockRef("a block reference is text")
    if len(text) > MAX_INPUT_CHARS:
        raise InvalidBlockRef(f"a block reference is {BLOCK_REF_LENGTH} characters, not a text")
    compact = _SEPARATORS_RE.sub("", text).upper()
    if not compact:
        raise InvalidBlockRef("the block reference is empty")
    if not compact.startswith(BLOCK_REF_PREFIX):
        raise InvalidBlockRef(
            f"a block reference starts with {BLOCK_REF_PREFIX}- "
            f"(like {BLOCK_REF_PREFIX}-XXXX-XXXX-XXXX-XXXX-X)"
        )
    rest = compact[len(BLOCK_REF_PREFIX) :]
    if len(rest) != BODY_CHARS + 1:
        raise InvalidBlockRef(
            f"a block reference has {BODY_CHARS + 1} letters and digits after "
            f"{BLOCK_REF_PREFIX}-, this one has {len(rest)}"
        )
    points: list[int] = []
    for i, c in enumerate(rest, start=1):
        cp = _CODE_POINT.get(c)
        if cp is None:
            hint = f" (did you mean {_LOOKALIKES[c]}?)" if c in _LOOKALIKES else ""
            raise InvalidBlockRef(
                f"character {i} after {BLOCK_REF_PREFIX}- is {c!r}, which a block reference "
                f"never contains: only A-Z and 2-7{hint}"
            )
        points.append(cp)
    if not _valid(points):
        raise MistypedBlockRef(
            "the block reference's last character does not match the others: "
            "a character was mistyped or two were swapped"
        )
    return base64.b32decode(rest[:BODY_CHARS])


def normalise_block_ref(text: str) -> str:
    """The printed form of a reference typed in any accepted spelling.

    Raises:
        InvalidBlockRef: as :func:`parse_block_ref`.
        MistypedBlockRef: as :func:`parse_block_ref`.
    """
    prefix = parse_block_ref(text)
    return block_ref(prefix + bytes(HASH_SIZE - BLOCK_REF_BYTES))


def ref_matches(prefix: bytes, h: bytes) -> bool:
    """Whether the hash ``h`` is the one a parsed reference names.

    Args:
        prefix: what :func:`parse_block_ref` returned.
        h: a listed 32-byte expression hash.
    """
    return len(prefix) == BLOCK_REF_BYTES and h[:BLOCK_REF_BYTES] == prefix


__all__ = [
    "ALPHABET",
    "BLOCK_REF_BYTES",
    "BLOCK_REF_LENGTH",
    "BLOCK_REF_PREFIX",
    "MAX_INPUT_CHARS",
    "InvalidBlockRef",
    "MistypedBlockRef",
    "block_ref",
    "check_character",
    "normalise_block_ref",
    "parse_block_ref",
    "ref_matches",
]
