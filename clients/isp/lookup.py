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

Batches (``cleanfeed isp check -``) use :class:`HashIndex` and
:func:`match_batch` instead: the list stays one sorted array (no Python
object per hash, so a million entries load in a fraction of a second and
forked workers share it), and the digests of a whole batch are tested in a
few vectorised passes. The answers are the same as :class:`Matcher`'s.
"""

from __future__ import annotations

import hashlib
import re
from bisect import bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, NamedTuple

import numpy as np
import numpy.typing as npt

from blocklist.canonical import expressions
from blocklist.errors import FormatError, InvalidURL
from clients.isp.exports.hashlog import is_hashes_log, read_hashes_log

__all__ = [
    "HASH_SIZE",
    "NOT_LISTED",
    "PREFILTER_SLOTS_PER_HASH",
    "BatchMatches",
    "HashIndex",
    "MatchResult",
    "Matcher",
    "init_match_worker",
    "match_batch",
    "match_in_worker",
    "parse_hashes",
    "read_hashes_file",
]

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


#: Slots of the prefilter per listed hash (rounded up to a power of two):
#: with 16, about 1 - e^(-1/16) = 6 % of unlisted digests pass it and take
#: the exact binary search; a slot is one bit, so the table costs 2 bytes
#: per hash (2 MiB for a million, small enough to stay in the CPU's cache).
PREFILTER_SLOTS_PER_HASH: Final = 16

#: Smallest prefilter (log2 of its slots), so tiny lists get a table too.
_MIN_PREFILTER_BITS: Final = 10

#: A hash as four big-endian 64-bit words: the first word orders hashes as
#: their bytes do, so it is the sort and search key.
_WORDS: Final = np.dtype(">u8")
_WORDS_PER_HASH: Final = HASH_SIZE // 8


class HashIndex:
    """The listed hashes as one sorted array, for looking up whole batches.

    Membership of a batch of digests is a few numpy passes over it: a
    prefilter indexed by the top bits of each digest (a listed hash sets
    its slot) drops most unlisted digests; the rest are binary-searched by
    their first 8 bytes and compared in full.
    """

    __slots__ = ("_filter", "_keys", "_rows", "_shift")

    def __init__(self, blob: bytes) -> None:
        """Index the concatenated 32-byte hashes of ``blob`` (any order).

        Args:
            blob: the listed hashes, 32 bytes each, back to back
                (:meth:`clients.isp.store.StateStore.hash_blob`).

        Raises:
            ValueError: ``blob`` is not a whole number of 32-byte hashes.
        """
        if len(blob) % HASH_SIZE:
            raise ValueError(f"listed hashes must be {HASH_SIZE} bytes each")
        rows: npt.NDArray[np.uint64] = np.frombuffer(blob, dtype=_WORDS).reshape(
            -1, _WORDS_PER_HASH
        )
        keys: npt.NDArray[np.uint64] = rows[:, 0].astype(np.uint64)
        # The store hands them over in byte order already; sort otherwise.
        if keys.size > 1 and not bool(np.all(keys[1:] >= keys[:-1])):
            order = np.argsort(keys, kind="stable")
            keys, rows = keys[order], rows[order]
        # The prefilter: one bit per slot, a slot per value of a hash's top
        # `bits` bits, set for every listed hash.
        bits = max(_MIN_PREFILTER_BITS, (len(keys) * PREFILTER_SLOTS_PER_HASH).bit_length())
        self._shift = np.uint64(64 - bits)
        slots = keys >> self._shift
        self._filter: npt.NDArray[np.uint8] = np.zeros(1 << (bits - 3), dtype=np.uint8)
        np.bitwise_or.at(
            self._filter, (slots >> 3).astype(np.intp), np.left_shift(1, slots & 7).astype(np.uint8)
        )
        self._keys = keys
        self._rows = rows

    @classmethod
    def from_hashes(cls, hashes: Iterable[bytes]) -> HashIndex:
        """Index individual hashes.

        Raises:
            ValueError: a hash is not 32 bytes long.
        """
        listed = list(hashes)
        if any(type(h) is not bytes or len(h) != HASH_SIZE for h in listed):
            raise ValueError(f"listed hashes must be {HASH_SIZE} bytes")
        return cls(b"".join(listed))

    def __len__(self) -> int:
        return len(self._keys)

    def __contains__(self, h: object) -> bool:
        return type(h) is bytes and len(h) == HASH_SIZE and bool(self.listed_positions(h))

    def listed_positions(self, digests: bytes) -> list[int]:
        """Which of the concatenated 32-byte ``digests`` are listed.

        Args:
            digests: 32-byte digests back to back.

        Returns:
            The positions (0 for the first digest) of the listed ones, in
            ascending order.

        Raises:
            ValueError: ``digests`` is not a whole number of 32-byte values.
        """
        if len(digests) % HASH_SIZE:
            raise ValueError(f"digests must be {HASH_SIZE} bytes each")
        probes: npt.NDArray[np.uint64] = np.frombuffer(digests, dtype=_WORDS).reshape(
            -1, _WORDS_PER_HASH
        )
        probe_keys = probes[:, 0].astype(np.uint64)
        slots = probe_keys >> self._shift
        candidates = np.flatnonzero((self._filter[slots >> 3] >> (slots & 7).astype(np.uint8)) & 1)
        if candidates.size == 0:
            return []
        keys, rows = self._keys, self._rows
        wanted = probe_keys[candidates]
        at = np.searchsorted(keys, wanted)
        np.minimum(at, len(keys) - 1, out=at)
        same_key = keys[at] == wanted
        exact = same_key & (rows[at] == probes[candidates]).all(axis=1)
        hits: list[int] = candidates[exact].tolist()
        # Two listed hashes sharing their first 8 bytes (a 2^-64 chance per
        # pair): the probe may equal a later one of the run.
        rare = same_key & ~exact
        if rare.any():
            for i, first in zip(candidates[rare].tolist(), at[rare].tolist(), strict=True):
                j = first + 1
                while j < len(keys) and keys[j] == probe_keys[i]:
                    if bool((rows[j] == probes[i]).all()):
                        hits.append(i)
                        break
                    j += 1
            hits.sort()
        return hits


class BatchMatches(NamedTuple):
    """What a batch lookup found; every URL not named here is not listed.

    Compact on purpose: it crosses a process boundary in ``check -``, and
    most URLs of a batch are not listed.

    Attributes:
        listed: ``(position in the batch, first listed expression, its
            hash)`` for each listed URL, by position; the expression is the
            one :meth:`Matcher.match` reports.
        errors: ``(position, message)`` for each URL that cannot be
            canonicalised, by position; the message is the
            :class:`~blocklist.errors.InvalidURL` text.
    """

    listed: list[tuple[int, str, bytes]]
    errors: list[tuple[int, str]]


def match_batch(urls: Sequence[str | bytes], listed: HashIndex) -> BatchMatches:
    """Look a batch of URLs up in ``listed``; the same answers as :meth:`Matcher.match`.

    Args:
        urls: the URLs (raw bytes allowed).
        listed: the listed hashes.

    Returns:
        The listed URLs and the invalid ones, by position in ``urls``.
    """
    sha256 = hashlib.sha256
    digests: list[bytes] = []
    extend = digests.extend
    # Per URL: the position of its first digest and its expressions (None
    # for an invalid URL, which has no digest).
    starts: list[int] = []
    lookups: list[list[str] | None] = []
    errors: list[tuple[int, str]] = []
    for i, url in enumerate(urls):
        starts.append(len(digests))
        try:
            exprs = expressions(url)
        except InvalidURL as e:
            lookups.append(None)
            errors.append((i, str(e)))
            continue
        lookups.append(exprs)
        extend([sha256(e.encode("utf-8")).digest() for e in exprs])
    found: list[tuple[int, str, bytes]] = []
    previous = -1
    for p in listed.listed_positions(b"".join(digests)):
        # The owner is the last URL starting at or before p: an invalid URL
        # has no digest, so it shares its start with the next URL.
        k = bisect_right(starts, p) - 1
        if k == previous:
            continue  # positions ascend: a URL's first hit is its first listed expression
        previous = k
        owner = lookups[k]
        assert owner is not None  # an invalid URL owns no digest
        found.append((k, owner[p - starts[k]], digests[p]))
    return BatchMatches(found, errors)


# The worker side of a parallel batch (clients.common.workers: the pool
# passes the loaded hashes once, through the initializer, then URL chunks).
_worker_index: HashIndex | None = None


def init_match_worker(index: HashIndex) -> None:
    """Hold ``index`` in this worker process for :func:`match_in_worker`."""
    global _worker_index
    _worker_index = index


def match_in_worker(urls: Sequence[str | bytes]) -> BatchMatches:
    """:func:`match_batch` against the index given to :func:`init_match_worker`."""
    assert _worker_index is not None, "worker not initialised"
    return match_batch(urls, _worker_index)


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

    Both kinds: a plain export (one hash a line), or the log of an
    incremental one (``incremental = true``), read with its base file as
    :func:`clients.isp.exports.hashlog.read_hashes_log` documents.

    Raises:
        OSError: the file cannot be read.
        FormatError: its content is malformed (see :func:`parse_hashes`), or
            the log or its base is damaged.
    """
    data = Path(path).read_bytes()
    if is_hashes_log(data):
        return read_hashes_log(Path(path)).hashes
    return parse_hashes(data)
