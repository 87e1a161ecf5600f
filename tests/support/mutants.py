"""Mutation loops for the text formats: no two texts parse to the same value.

Used by tests/blocklist/test_checkpoint.py and tests/blocklist/test_statement.py:
every single-bit flip and every single-character substitution of a valid
text is either refused with :class:`~blocklist.errors.FormatError` or parses
into a *different* value that re-encodes to exactly the mutant (so a
signature over the text covers the value, byte for byte).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from typing import Any

from blocklist.errors import FormatError

__all__ = ["bit_flips", "check_mutant", "substitutions"]

#: Replacement characters tried at each position: printable ASCII, line
#: breaks, a tab, NUL and one non-ASCII letter.
SUBSTITUTES = [chr(c) for c in range(0x20, 0x7F)] + ["\n", "\r", "\t", "\x00", "\xe9"]


def check_mutant(parse: Callable[[str], Any], mutant: str, original: object) -> bool:
    """Reject, or parse into a different value that re-encodes to the mutant.

    Returns whether ``parse`` accepted ``mutant``.
    """
    try:
        parsed = parse(mutant)
    except FormatError:
        return False
    assert parsed != original
    assert parsed.to_text() == mutant
    # parse() never yields a value the checking constructor would refuse.
    assert dataclasses.replace(parsed) == parsed
    return True


def bit_flips(text: str) -> Iterator[str]:
    """``text`` (UTF-8) with one bit flipped, for every bit, decoded as latin-1.

    latin-1 turns every byte into a character, so even the non-ASCII
    mutants reach the parser.
    """
    data = text.encode()
    for i in range(len(data)):
        for bit in range(8):
            mutated = bytearray(data)
            mutated[i] ^= 1 << bit
            yield mutated.decode("latin-1")


def substitutions(text: str) -> Iterator[str]:
    """``text`` with one character replaced by each of :data:`SUBSTITUTES`, everywhere."""
    for i in range(len(text)):
        for c in SUBSTITUTES:
            if c != text[i]:
                yield text[:i] + c + text[i + 1 :]
