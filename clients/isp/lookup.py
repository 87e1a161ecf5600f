"""Match URLs against the verified set of listed hashes, as Safe Browsing does.

A URL is listed when the SHA-256 of one of its lookup expressions is in the
set (DESIGN.md, "Entries": lookups try the exact path with and without the
query, ``/`` and the first three directory prefixes, on the exact host and
host suffixes built from the last five labels: at most 30 expressions). The
expressions come from :func:`blocklist.canonical.expressions`, the same code
the hotline used to compute each entry's hash, so ``cleanfeed isp check``,
the Squid external ACL helper and the analyst's reach preview can never
disagree about what an entry blocks.

The set is a :class:`frozenset` of 32-byte :class:`bytes`: membership is one
hash-table probe, so the cost of a lookup is dominated by canonicalisation
and the (at most 30) SHA-256 computations, not by the size of the list.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from blocklist.canonical import expressions
from blocklist.errors import FormatError, InvalidURL

#: Size of an entry hash: SHA-256 (DESIGN.md, "Its id on the wire").
HASH_SIZE: Final = 32

#: A whole ``hashes`` export: lines of 64 lower-case hex digits, each ending
#: in ``\n`` (a missing final newline means a truncated file).
_HASHES_FILE_RE = re.compile(rb"(?:[0-9a-f]{64}\n)*")
_HEX_LINE_RE = re.compile(rb"[0-9a-f]{64}")


@dataclass(frozen=True, slots=True)
class MatchResult:
    """The outcome of looking up one URL.

    Attributes:
        listed: whether any lookup expression of the URL is listed.
        expression: the first listed expression, in the order
            :func:`~blocklist.canonical.expressions` yields them (most
            specific host first); None when not listed.
        hash: SHA-256 of ``expression``; None when not listed.
    """

    listed: bool
    expression: str | None
    hash: bytes | None


#: The result for a URL none of whose expressions is listed.
NOT_LISTED = MatchResult(listed=False, expression=None, hash=None)


class Matcher:
    """Looks URLs up in an immutable set of listed 32-byte hashes."""

    __slots__ = ("_hashes",)

    def __init__(self, hashes: Iterable[bytes]) -> None:
        """Build a matcher over ``hashes``.

        Args:
            hashes: the verified listed hashes, each 32 raw bytes.

        Raises:
            ValueError: a hash is not 32 bytes long (a caller bug: a set of
                wrong-sized values would silently match nothing).
        """
        frozen = hashes if isinstance(hashes, frozenset) else frozenset(hashes)
        for h in frozen:
            if type(h) is not bytes or len(h) != HASH_SIZE:
                raise ValueError(f"listed hashes must be {HASH_SIZE} bytes")
        self._hashes: frozenset[bytes] = frozen

    @classmethod
    def from_verified(cls, hashes: frozenset[bytes]) -> Matcher:
        """Build a matcher over a set the caller already knows to be 32-byte hashes.

        The ISP store only ever holds hashes that passed verification, and
        re-checking a million of them was a third of a batch check's cost.
        """
        matcher = cls.__new__(cls)
        matcher._hashes = hashes
        return matcher

    @property
    def hashes(self) -> frozenset[bytes]:
        """The listed hashes."""
        return self._hashes

    def __len__(self) -> int:
        return len(self._hashes)

    def __contains__(self, h: object) -> bool:
        return h in self._hashes

    def match(self, url: str | bytes) -> MatchResult:
        """Look one URL up.

        Args:
            url: a URL as a browser or proxy sees it (raw bytes allowed).

        Returns:
            The first listed expression of the URL, or :data:`NOT_LISTED`.

        Raises:
            InvalidURL: the URL cannot be canonicalised (no host, a scheme
                other than http, https or ftp, oversized...). Such a URL has
                no lookup expressions, so it cannot be listed.
        """
        return self._first_listed(expressions(url))

    def match_many(self, urls: Iterable[str | bytes]) -> list[MatchResult | InvalidURL]:
        """Look many URLs up; an invalid URL yields its error instead of raising.

        Args:
            urls: the URLs, in any order.

        Returns:
            One item per URL, in input order: a :class:`MatchResult`, or the
            :class:`~blocklist.errors.InvalidURL` that URL raised.
        """
        first_listed = self._first_listed
        out: list[MatchResult | InvalidURL] = []
        append = out.append
        for url in urls:
            try:
                exprs = expressions(url)
            except InvalidURL as e:
                append(e)
            else:
                append(first_listed(exprs))
        return out

    def _first_listed(self, exprs: list[str]) -> MatchResult:
        # Hash every expression in one comprehension and test them with one
        # C-level isdisjoint: most URLs are not listed, and this is the
        # cheapest way to say so in CPython.
        sha256 = hashlib.sha256
        digests = [sha256(e.encode("utf-8")).digest() for e in exprs]
        listed = self._hashes
        if listed.isdisjoint(digests):
            return NOT_LISTED
        for expr, h in zip(exprs, digests, strict=True):
            if h in listed:
                return MatchResult(listed=True, expression=expr, hash=h)
        raise AssertionError("unreachable: a digest was found in the set")


def parse_hashes(data: bytes) -> frozenset[bytes]:
    """Parse the content of a ``hashes`` export (64 lower-case hex digits a line).

    Args:
        data: the file content; every line, the last one included, ends in
            ``\\n``; an empty file is the empty list.

    Returns:
        The hashes, as raw 32-byte values.

    Raises:
        FormatError: a line is not exactly 64 lower-case hex digits, or the
            last line lacks its newline (a truncated file must not load as a
            shorter list).
    """
    if not data:
        return frozenset()
    if _HASHES_FILE_RE.fullmatch(data) is None:
        # Name the first bad line so an operator can find it.
        lines = data.split(b"\n")
        for n, line in enumerate(lines[:-1], start=1):
            if _HEX_LINE_RE.fullmatch(line) is None:
                raise FormatError(f"hashes file line {n}: expected 64 lower-case hex digits")
        raise FormatError(f"hashes file line {len(lines)}: no final newline (truncated file?)")
    raw = bytes.fromhex(data.replace(b"\n", b"").decode("ascii"))
    return frozenset(raw[i : i + HASH_SIZE] for i in range(0, len(raw), HASH_SIZE))


def read_hashes_file(path: Path) -> frozenset[bytes]:
    """Read a ``hashes`` export written by :mod:`clients.isp.exports`.

    Raises:
        OSError: the file cannot be read.
        FormatError: its content is malformed (see :func:`parse_hashes`).
    """
    return parse_hashes(Path(path).read_bytes())
