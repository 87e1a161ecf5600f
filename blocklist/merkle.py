"""RFC 6962 / RFC 9162 Merkle tree math for the version log.

DESIGN.md, "Versions, the log and what is signed", item 3: statement N's note
text is leaf N-1 of an RFC 9162 Merkle tree; tree size N == version N.

Hashing (RFC 9162 section 2.1.1):

* leaf hash ``SHA-256(0x00 || data)``,
* node hash ``SHA-256(0x01 || left || right)``,
* the empty tree's root ``SHA-256(b"")``.

Storage follows the "stored hash" layout of Go's ``golang.org/x/mod/sumdb/tlog``
(after Crosby and Wallach, "Efficient Data Structures for Tamper-Evident
Logging", section 3.3): the hash of every *perfect* subtree, at tree level
``level`` (0 = leaves) and position ``n`` within that level, lives at the
integer index :func:`stored_hash_index`. Appending leaf ``n`` stores exactly
the hashes :func:`stored_hashes_for_leaf` returns, in order, starting at
``stored_hash_index(0, n)``; a tree of ``n`` leaves holds
:func:`stored_hash_count` hashes. Roots, proofs and compact ranges of any
size are assembled from O(log n) stored hashes, fetched in one batched
:meth:`HashReader.read_hashes` call.

Proof verification implements the algorithms of RFC 9162 sections 2.1.3.2
(inclusion) and 2.1.4.2 (consistency) step by step; a failure raises
:class:`~blocklist.errors.ProofError` saying what was wrong.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from typing import Protocol

from blocklist.errors import ProofError

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "MAX_TREE_SIZE",
    "CompactRange",
    "HashReader",
    "MemoryHashStore",
    "consistency_proof",
    "inclusion_proof",
    "leaf_hash",
    "node_hash",
    "range_hashes",
    "split_stored_hash_index",
    "stored_hash_count",
    "stored_hash_index",
    "stored_hashes_for_leaf",
    "tree_root",
    "verify_consistency",
    "verify_inclusion",
]

#: Size of every hash in the tree (SHA-256).
HASH_SIZE = 32

#: Largest tree size or leaf index accepted: 2^63 - 1, what a signed 64-bit
#: database column holds and what checkpoints may carry
#: (``blocklist.encoding.MAX_DECIMAL``). Bounds the loops below.
MAX_TREE_SIZE = 2**63 - 1

_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"


def leaf_hash(data: bytes) -> bytes:
    """Hash a leaf: ``SHA-256(0x00 || data)`` (RFC 9162 section 2.1.1)."""
    return hashlib.sha256(_LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """Hash an interior node: ``SHA-256(0x01 || left || right)`` (RFC 9162 2.1.1)."""
    return hashlib.sha256(_NODE_PREFIX + left + right).digest()


#: Root of the empty tree: SHA-256 of the empty string (RFC 9162 section 2.1.1).
EMPTY_ROOT = hashlib.sha256(b"").digest()


class HashReader(Protocol):
    """Reads stored hashes by their :func:`stored_hash_index`.

    The database-backed store and :class:`MemoryHashStore` implement it.
    """

    def read_hashes(self, indexes: Sequence[int]) -> list[bytes]:
        """Return the stored hashes at ``indexes``, in the same order.

        Must return exactly one 32-byte hash per index, or raise.
        """
        ...


# --------------------------------------------------------------------------
# Stored hash layout
# --------------------------------------------------------------------------


#: Stored hashes of the largest tree: 2 * MAX_TREE_SIZE - popcount(MAX_TREE_SIZE).
_MAX_STORED_HASH_COUNT = 2 * MAX_TREE_SIZE - MAX_TREE_SIZE.bit_count()


def _check_count(value: int, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be an int")
    if value < 0 or value > MAX_TREE_SIZE:
        raise ValueError(f"{what} {value} is outside 0..{MAX_TREE_SIZE}")


def _trailing_ones(n: int) -> int:
    return ((n ^ (n + 1)) >> 1).bit_length()


def _largest_power_of_two_below(n: int) -> int:
    """The largest power of two strictly below ``n`` (n >= 2): RFC 9162 ``k``."""
    return 1 << ((n - 1).bit_length() - 1)


def stored_hash_index(level: int, n: int) -> int:
    """Map tree coordinates to the dense index where that hash is stored.

    ``(level, n)`` names the perfect subtree covering leaves
    ``n * 2**level .. (n + 1) * 2**level - 1``. The hash of ``(level, n)`` is
    stored right after the hash of ``(level - 1, 2n + 1)``, the last piece
    that completes it; leaf ``m`` itself sits at ``m + m//2 + m//4 + ...``.

    Raises:
        ValueError: a negative or oversized coordinate.
    """
    _check_count(level, "level")
    _check_count(n, "n")
    if level > 63:
        raise ValueError(f"level {level} exceeds 63")
    # Descend to the last leaf of the subtree: the subtree's hash is stored
    # right after that leaf's chain of completed subtrees.
    last_leaf = ((n + 1) << level) - 1
    if last_leaf >= MAX_TREE_SIZE:
        raise ValueError(f"subtree ({level}, {n}) lies beyond the largest tree")
    # last_leaf + last_leaf//2 + last_leaf//4 + ... == 2*x - popcount(x).
    return 2 * last_leaf - last_leaf.bit_count() + level


def split_stored_hash_index(index: int) -> tuple[int, int]:
    """Invert :func:`stored_hash_index`: return ``(level, n)``.

    Raises:
        ValueError: a negative or oversized index.
    """
    if isinstance(index, bool) or not isinstance(index, int):
        raise TypeError("index must be an int")
    if index < 0 or index >= _MAX_STORED_HASH_COUNT:
        raise ValueError(f"stored hash index {index} is outside 0..{_MAX_STORED_HASH_COUNT - 1}")
    # stored_hash_index(0, m) <= 2m, so the leaf whose append stored this
    # hash lies in [index // 2, index // 2 + log2(index)].
    leaf = index // 2
    leaf_index = stored_hash_index(0, leaf)
    while True:
        # Appending leaf m stores 1 + trailing_ones(m) hashes, so leaf m + 1
        # starts that far after leaf m; advance while it starts <= index.
        nxt = leaf_index + 1 + _trailing_ones(leaf)
        if nxt > index:
            break
        leaf += 1
        leaf_index = nxt
    level = index - leaf_index
    return level, leaf >> level


def stored_hash_count(n: int) -> int:
    """Number of hashes stored for a tree of ``n`` leaves.

    Equals ``stored_hash_index(0, n - 1) + 1`` plus one hash per subtree
    completed by leaf ``n - 1``, which sums to ``2n - popcount(n)``.

    Raises:
        ValueError: a negative or oversized ``n``.
    """
    _check_count(n, "n")
    return 2 * n - n.bit_count()


def _check_hash(value: bytes, what: str, error: type[Exception] = ValueError) -> None:
    if not isinstance(value, bytes) or len(value) != HASH_SIZE:
        raise error(f"{what} must be {HASH_SIZE} bytes")


def _read(reader: HashReader, indexes: Sequence[int]) -> list[bytes]:
    """One batched read, checking the reader kept its contract."""
    if not indexes:
        return []
    hashes = reader.read_hashes(indexes)
    if len(hashes) != len(indexes):
        raise ProofError(f"hash reader returned {len(hashes)} hashes for {len(indexes)} indexes")
    for i, h in enumerate(hashes):
        _check_hash(h, f"stored hash {indexes[i]}", ProofError)
    return hashes


def stored_hashes_for_leaf(n: int, leaf_hash: bytes, reader: HashReader) -> list[bytes]:
    """Return the hashes to store when appending leaf ``n`` with ``leaf_hash``.

    They belong at ``stored_hash_index(0, n)`` onwards, in order: the leaf
    hash, then the hash of each perfect subtree leaf ``n`` completes (one per
    trailing 1 bit of ``n``). Reads the left siblings of those subtrees in one
    batched call.

    Raises:
        ValueError: bad ``n`` or a leaf hash that is not 32 bytes.
        ProofError: the reader broke its contract.
    """
    _check_count(n, "n")
    _check_hash(leaf_hash, "leaf hash")
    completed = _trailing_ones(n)
    # The left sibling of the level-i subtree ending at leaf n is subtree
    # (i, (n >> i) - 1); read them in increasing index order (deepest last).
    indexes = [stored_hash_index(i, (n >> i) - 1) for i in reversed(range(completed))]
    siblings = _read(reader, indexes)
    hashes = [leaf_hash]
    h = leaf_hash
    for i in range(completed):
        h = node_hash(siblings[completed - 1 - i], h)
        hashes.append(h)
    return hashes


# --------------------------------------------------------------------------
# Roots, ranges and proofs from stored hashes
# --------------------------------------------------------------------------


def _perfect_subtrees(lo: int, hi: int) -> list[int]:
    """Stored indexes of the perfect subtrees composing MTH(D[lo:hi]).

    RFC 9162 2.1.1 splits D[lo:hi] at the largest power of two k < hi - lo;
    the left part is perfect, the right part recurses. Unrolled, this is the
    greedy split into the largest aligned powers of two, left to right. The
    callers only pass ranges whose ``lo`` is aligned to that split.
    """
    indexes: list[int] = []
    while lo < hi:
        level = (hi - lo).bit_length() - 1
        indexes.append(stored_hash_index(level, lo >> level))
        lo += 1 << level
    return indexes


def _fold(hashes: Sequence[bytes]) -> bytes:
    """Combine the perfect subtree hashes of a range, right to left."""
    h = hashes[-1]
    for left in reversed(hashes[:-1]):
        h = node_hash(left, h)
    return h


def _read_segments(segments: Sequence[tuple[int, int]], reader: HashReader) -> list[bytes]:
    """MTH of each ``[lo, hi)`` segment, with one batched read for all of them."""
    plans = [_perfect_subtrees(lo, hi) for lo, hi in segments]
    flat = [i for plan in plans for i in plan]
    hashes = _read(reader, flat)
    result = []
    at = 0
    for plan in plans:
        result.append(_fold(hashes[at : at + len(plan)]))
        at += len(plan)
    return result


def range_hashes(size: int, reader: HashReader) -> list[bytes]:
    """Roots of the maximal perfect subtrees of leaves 0..size-1, left to right.

    This is the compact range ``[0, size)``; its count is ``popcount(size)``.

    Raises:
        ValueError: a negative or oversized size.
        ProofError: the reader broke its contract.
    """
    _check_count(size, "size")
    return _read(reader, _perfect_subtrees(0, size))


def tree_root(size: int, reader: HashReader) -> bytes:
    """Root hash MTH(D[0:size]); :data:`EMPTY_ROOT` for size 0.

    Raises:
        ValueError: a negative or oversized size.
        ProofError: the reader broke its contract.
    """
    hashes = range_hashes(size, reader)
    if not hashes:
        return EMPTY_ROOT
    return _fold(hashes)


def _inclusion_segments(index: int, size: int) -> list[tuple[int, int]]:
    """The subtrees whose roots form PATH(index, D[0:size]), leaf side first."""
    # RFC 9162 2.1.3.1: PATH(m, D[n]) = PATH(m, D[0:k]) : MTH(D[k:n]) for
    # m < k, else PATH(m - k, D[k:n]) : MTH(D[0:k]); PATH(0, {d}) = {}.
    segments: list[tuple[int, int]] = []
    lo, hi = 0, size
    while hi - lo > 1:
        k = _largest_power_of_two_below(hi - lo)
        if index < lo + k:
            segments.append((lo + k, hi))
            hi = lo + k
        else:
            segments.append((lo, lo + k))
            lo += k
    segments.reverse()
    return segments


def _consistency_segments(m: int, n: int) -> list[tuple[int, int]]:
    """The subtrees whose roots form PROOF(m, D[0:n]) for 0 < m < n."""
    # RFC 9162 2.1.4.1: SUBPROOF(m, D[n], b) = {} if m == n and b, {MTH(D[n])}
    # if m == n and not b; for m < n with k the largest power of two < n:
    # SUBPROOF(m, D[0:k], b) : MTH(D[k:n]) if m <= k,
    # SUBPROOF(m - k, D[k:n], false) : MTH(D[0:k]) otherwise.
    segments: list[tuple[int, int]] = []
    lo, hi, whole_old_tree = 0, n, True
    while m != hi:
        k = _largest_power_of_two_below(hi - lo)
        if m <= lo + k:
            segments.append((lo + k, hi))
            hi = lo + k
        else:
            segments.append((lo, lo + k))
            lo += k
            whole_old_tree = False
    if not whole_old_tree:
        segments.append((lo, hi))
    segments.reverse()
    return segments


def inclusion_proof(index: int, size: int, reader: HashReader) -> list[bytes]:
    """RFC 9162 inclusion proof (PATH) of leaf ``index`` in the tree of ``size``.

    Raises:
        ValueError: ``index >= size`` or a negative or oversized argument.
        ProofError: the reader broke its contract.
    """
    _check_count(index, "index")
    _check_count(size, "size")
    if index >= size:
        raise ValueError(f"leaf index {index} is not below tree size {size}")
    return _read_segments(_inclusion_segments(index, size), reader)


def consistency_proof(m: int, n: int, reader: HashReader) -> list[bytes]:
    """RFC 9162 consistency proof (PROOF) from tree size ``m`` to ``n``.

    Empty when ``m == 0`` or ``m == n``: the empty tree is a prefix of every
    tree and a tree is consistent with itself, so there is nothing to prove.

    Raises:
        ValueError: ``m > n`` or a negative or oversized argument.
        ProofError: the reader broke its contract.
    """
    _check_count(m, "m")
    _check_count(n, "n")
    if m > n:
        raise ValueError(f"old tree size {m} exceeds new tree size {n}")
    if m in (0, n):
        return []
    return _read_segments(_consistency_segments(m, n), reader)


# --------------------------------------------------------------------------
# Verification (untrusted proofs from the network)
# --------------------------------------------------------------------------


def _check_proof_inputs(proof: Sequence[bytes], *roots: tuple[str, bytes]) -> None:
    for what, value in roots:
        _check_hash(value, what, ProofError)
    for i, h in enumerate(proof):
        _check_hash(h, f"proof hash {i}", ProofError)


def _check_size(value: int, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ProofError(f"{what} must be an int")
    if value < 0 or value > MAX_TREE_SIZE:
        raise ProofError(f"{what} {value} is outside 0..{MAX_TREE_SIZE}")


def verify_inclusion(
    leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """Verify that ``leaf_hash`` is leaf ``index`` of the tree ``(size, root)``.

    Implements RFC 9162 section 2.1.3.2.

    Raises:
        ProofError: ``index >= size``, wrong proof length, malformed hashes,
            or the proof does not lead to ``root``.
    """
    _check_size(index, "leaf index")
    _check_size(size, "tree size")
    _check_proof_inputs(proof, ("leaf hash", leaf_hash), ("root", root))
    # RFC 9162 2.1.3.2 step 1: leaf_index must be below tree_size.
    if index >= size:
        raise ProofError(f"leaf index {index} is not below tree size {size}")
    # The algorithm below also fails on a wrong length; checking it first
    # names the problem precisely.
    expected = len(_inclusion_segments(index, size))
    if len(proof) != expected:
        raise ProofError(
            f"inclusion proof for leaf {index} in tree {size} has {len(proof)} "
            f"hashes, expected {expected}"
        )
    # Step 2: fn = leaf_index, sn = tree_size - 1. Step 3: r = leaf hash.
    fn, sn = index, size - 1
    r = leaf_hash
    # Step 4: for each p in inclusion_path ...
    for p in proof:
        # 4a: a proof longer than the path fails.
        if sn == 0:
            raise ProofError("inclusion proof is longer than the path to the root")
        # 4b: p is a left sibling when fn is a right child or the last node.
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            # 4b.ii: skip levels where this node has no right sibling.
            if not fn & 1:
                while fn != 0 and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        # 4c
        fn >>= 1
        sn >>= 1
    # Step 5: sn must be 0 and r must equal root.
    if sn != 0:
        raise ProofError("inclusion proof is shorter than the path to the root")
    if r != root:
        raise ProofError(
            f"inclusion proof for leaf {index} does not lead to the root of tree {size}"
        )


def verify_consistency(
    m: int, n: int, root_m: bytes, root_n: bytes, proof: Sequence[bytes]
) -> None:
    """Verify that tree ``(m, root_m)`` is a prefix of tree ``(n, root_n)``.

    Implements RFC 9162 section 2.1.4.2. For ``m == 0`` the proof must be
    empty and ``root_m`` must be :data:`EMPTY_ROOT`; for ``m == n`` the proof
    must be empty and the roots equal.

    Raises:
        ProofError: ``m > n``, wrong proof length, malformed hashes, or the
            proof does not lead to both roots.
    """
    _check_size(m, "old tree size")
    _check_size(n, "new tree size")
    _check_proof_inputs(proof, ("old root", root_m), ("new root", root_n))
    if m > n:
        raise ProofError(f"old tree size {m} exceeds new tree size {n}")
    if m == 0:
        # The empty tree has exactly one root and is a prefix of every tree.
        if proof:
            raise ProofError(f"consistency proof from size 0 has {len(proof)} hashes, expected 0")
        if root_m != EMPTY_ROOT:
            raise ProofError("old root is not the root of the empty tree")
        return
    if m == n:
        if proof:
            raise ProofError(
                f"consistency proof between equal sizes has {len(proof)} hashes, expected 0"
            )
        if root_m != root_n:
            raise ProofError(f"different roots for the same tree size {m}")
        return
    expected = len(_consistency_segments(m, n))
    if len(proof) != expected:
        raise ProofError(
            f"consistency proof from {m} to {n} has {len(proof)} hashes, expected {expected}"
        )
    # RFC 9162 2.1.4.2 step 1: an empty path fails (0 < m < n needs hashes).
    # Step 2: when first is an exact power of 2, prepend first_hash.
    path = list(proof)
    if m & (m - 1) == 0:
        path.insert(0, root_m)
    # Step 3: fn = first - 1, sn = second - 1.
    fn, sn = m - 1, n - 1
    # Step 4: shift out the levels where the old tree's last node is a right child.
    while fn & 1:
        fn >>= 1
        sn >>= 1
    # Step 5
    fr = sr = path[0]
    # Step 6
    for c in path[1:]:
        # 6a: too many hashes.
        if sn == 0:
            raise ProofError("consistency proof is longer than the path to the root")
        # 6b
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            # 6b.iii
            if not fn & 1:
                while fn != 0 and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            # 6b, otherwise: c only extends the new tree.
            sr = node_hash(sr, c)
        # 6c
        fn >>= 1
        sn >>= 1
    # Step 7
    if sn != 0:
        raise ProofError("consistency proof is shorter than the path to the root")
    if fr != root_m:
        raise ProofError(f"consistency proof does not lead to the old root of tree {m}")
    if sr != root_n:
        raise ProofError(f"consistency proof does not lead to the new root of tree {n}")


# --------------------------------------------------------------------------
# Compact range and an in-memory store
# --------------------------------------------------------------------------


class CompactRange:
    """The roots of the maximal perfect subtrees of leaves ``0..size-1``.

    What an ISP client keeps instead of the whole tree (DESIGN.md, ISP sync
    step 3): appending the new leaves and comparing :meth:`root` with the
    checkpoint's root proves the new tree extends the held one.
    """

    __slots__ = ("_hashes", "_size")

    def __init__(self, size: int = 0, hashes: Iterable[bytes] = ()) -> None:
        """Create a compact range, checking it has ``popcount(size)`` hashes.

        Raises:
            ProofError: a wrong number of hashes, a hash that is not 32
                bytes, or a bad size.
        """
        _check_size(size, "tree size")
        stack = list(hashes)
        if len(stack) != size.bit_count():
            raise ProofError(
                f"compact range of size {size} needs {size.bit_count()} hashes, got {len(stack)}"
            )
        for i, h in enumerate(stack):
            _check_hash(h, f"compact range hash {i}", ProofError)
        self._size = size
        self._hashes = stack

    @property
    def size(self) -> int:
        """Number of leaves covered."""
        return self._size

    @property
    def hashes(self) -> tuple[bytes, ...]:
        """Perfect subtree roots, left (largest) to right (smallest)."""
        return tuple(self._hashes)

    def append(self, leaf_hash: bytes) -> None:
        """Append the leaf hash of leaf ``size``.

        Raises:
            ValueError: the hash is not 32 bytes or the tree is full.
        """
        _check_hash(leaf_hash, "leaf hash")
        if self._size >= MAX_TREE_SIZE:
            raise ValueError("tree size limit reached")
        h = leaf_hash
        s = self._size
        # Each trailing 1 bit of the old size is a perfect subtree that the
        # new leaf's subtree now completes (same merge as stored_hashes_for_leaf).
        while s & 1:
            h = node_hash(self._hashes.pop(), h)
            s >>= 1
        self._hashes.append(h)
        self._size += 1

    def extend(self, leaf_hashes: Iterable[bytes]) -> None:
        """Append several leaf hashes in order.

        Raises:
            ValueError: a hash is not 32 bytes.
        """
        for h in leaf_hashes:
            self.append(h)

    def root(self) -> bytes:
        """MTH of the leaves covered; :data:`EMPTY_ROOT` when empty."""
        if not self._hashes:
            return EMPTY_ROOT
        return _fold(self._hashes)

    def verify(self, root: bytes) -> None:
        """Check that this range's root equals ``root``.

        Raises:
            ProofError: the roots differ.
        """
        if self.root() != root:
            raise ProofError(f"compact range root does not match the root of tree {self._size}")

    def copy(self) -> CompactRange:
        """An independent copy."""
        return CompactRange(self._size, self._hashes)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CompactRange):
            return NotImplemented
        return self._size == other._size and self._hashes == other._hashes

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        return f"CompactRange(size={self._size}, root={self.root().hex()})"


class MemoryHashStore:
    """A list-backed :class:`HashReader`: the whole stored-hash array in memory.

    Used by tests, the auditor's replay and anywhere a full tree is rebuilt.
    """

    __slots__ = ("_hashes", "_size")

    def __init__(self) -> None:
        """Create an empty tree."""
        self._hashes: list[bytes] = []
        self._size = 0

    @property
    def size(self) -> int:
        """Number of leaves."""
        return self._size

    def read_hashes(self, indexes: Sequence[int]) -> list[bytes]:
        """Return the stored hashes at ``indexes``.

        Raises:
            ProofError: an index that is not stored (yet).
        """
        out = []
        count = len(self._hashes)
        for i in indexes:
            if not 0 <= i < count:
                raise ProofError(f"stored hash {i} is not in a tree of {self._size} leaves")
            out.append(self._hashes[i])
        return out

    def append_leaf_hash(self, leaf_hash: bytes) -> int:
        """Append a leaf by its leaf hash; return its index.

        Raises:
            ValueError: the hash is not 32 bytes.
        """
        n = self._size
        self._hashes.extend(stored_hashes_for_leaf(n, leaf_hash, self))
        self._size += 1
        return n

    def append(self, leaf_data: bytes) -> int:
        """Append a leaf by its data (hashed with :func:`leaf_hash`); return its index."""
        return self.append_leaf_hash(leaf_hash(leaf_data))

    def root(self) -> bytes:
        """Root of the current tree."""
        return tree_root(self._size, self)
