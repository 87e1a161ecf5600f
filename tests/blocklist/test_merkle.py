"""Merkle tree math against the RFC 9162 definitions and the CT reference vectors.

The naive implementation below transcribes RFC 9162 sections 2.1.1 (MTH),
2.1.3.1 (PATH) and 2.1.4.1 (PROOF / SUBPROOF) directly, with its own hashing,
so a shared mistake in ``blocklist.merkle`` cannot hide.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from blocklist.errors import ProofError
from blocklist.merkle import (
    EMPTY_ROOT,
    CompactRange,
    MemoryHashStore,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    range_hashes,
    split_stored_hash_index,
    stored_hash_count,
    stored_hash_index,
    stored_hashes_for_leaf,
    tree_root,
    verify_consistency,
    verify_inclusion,
)

# --------------------------------------------------------------------------
# Naive RFC 9162 reference
# --------------------------------------------------------------------------


def _sha(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def _k(n: int) -> int:
    """Largest power of two strictly smaller than n (n > 1), by counting."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


SMALL = 70
BIG = (1 << 12) + 77
DATA = [b"leaf-%d" % i for i in range(BIG)]


@functools.cache
def mth(lo: int, hi: int) -> bytes:
    """MTH(D[lo:hi]), RFC 9162 2.1.1."""
    n = hi - lo
    if n == 0:
        return _sha(b"")
    if n == 1:
        return _sha(b"\x00" + DATA[lo])
    k = _k(n)
    return _sha(b"\x01" + mth(lo, lo + k) + mth(lo + k, hi))


def naive_path(m: int, lo: int, hi: int) -> list[bytes]:
    """PATH(m, D[lo:hi]) with m relative to lo, RFC 9162 2.1.3.1."""
    n = hi - lo
    if n == 1:
        return []
    k = _k(n)
    if m < k:
        return [*naive_path(m, lo, lo + k), mth(lo + k, hi)]
    return [*naive_path(m - k, lo + k, hi), mth(lo, lo + k)]


def naive_subproof(m: int, lo: int, hi: int, b: bool) -> list[bytes]:
    """SUBPROOF(m, D[lo:hi], b), RFC 9162 2.1.4.1."""
    n = hi - lo
    if m == n:
        return [] if b else [mth(lo, hi)]
    k = _k(n)
    if m <= k:
        return [*naive_subproof(m, lo, lo + k, b), mth(lo + k, hi)]
    return [*naive_subproof(m - k, lo + k, hi, False), mth(lo, lo + k)]


def naive_proof(m: int, n: int) -> list[bytes]:
    """PROOF(m, D[n]) for 0 < m < n."""
    return naive_subproof(m, 0, n, True)


def leaf(i: int) -> bytes:
    return _sha(b"\x00" + DATA[i])


class CountingReader:
    """Wraps a store to count batched reads (the store itself is not faked)."""

    def __init__(self, inner: MemoryHashStore) -> None:
        self.inner = inner
        self.calls: list[int] = []

    def read_hashes(self, indexes: Sequence[int]) -> list[bytes]:
        self.calls.append(len(indexes))
        return self.inner.read_hashes(indexes)


@pytest.fixture(scope="module")
def store() -> MemoryHashStore:
    s = MemoryHashStore()
    for d in DATA:
        s.append(d)
    return s


# --------------------------------------------------------------------------
# Hashing and the CT reference vectors (RFC 6962 test data)
# --------------------------------------------------------------------------

CT_LEAVES = [
    bytes.fromhex(h)
    for h in (
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    )
]
CT_ROOTS = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]


def test_hash_prefixes_and_empty_root() -> None:
    assert leaf_hash(b"abc") == _sha(b"\x00abc")
    a, b = _sha(b"a"), _sha(b"b")
    assert node_hash(a, b) == _sha(b"\x01" + a + b)
    assert node_hash(a, b) != node_hash(b, a)
    assert EMPTY_ROOT.hex() == CT_ROOTS[0]


def test_ct_reference_roots_and_proofs() -> None:
    s = MemoryHashStore()
    assert tree_root(0, s).hex() == CT_ROOTS[0]
    for d in CT_LEAVES:
        s.append(d)
    for n in range(len(CT_LEAVES) + 1):
        assert tree_root(n, s).hex() == CT_ROOTS[n], n
    assert [h.hex() for h in inclusion_proof(0, 8, s)] == [
        "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    ]
    assert [h.hex() for h in inclusion_proof(5, 8, s)] == [
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    ]
    assert [h.hex() for h in consistency_proof(2, 8, s)] == [
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    ]
    assert [h.hex() for h in consistency_proof(6, 8, s)] == [
        "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
        "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    ]
    assert [h.hex() for h in consistency_proof(2, 5, s)] == [
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
    ]


# --------------------------------------------------------------------------
# Stored hash layout
# --------------------------------------------------------------------------


def _go_stored_hash_index(level: int, n: int) -> int:
    """The loop form of sumdb/tlog's StoredHashIndex, written out naively."""
    for _ in range(level):
        n = 2 * n + 1
    i = 0
    while n > 0:
        i += n
        n >>= 1
    return i + level


def test_stored_hash_index_known_values() -> None:
    # Leaf 0, leaf 1, their parent, leaf 2, leaf 3, parent (1,1), root (2,0).
    expected = [(0, 0), (0, 1), (1, 0), (0, 2), (0, 3), (1, 1), (2, 0), (0, 4)]
    for index, (level, n) in enumerate(expected):
        assert stored_hash_index(level, n) == index
        assert split_stored_hash_index(index) == (level, n)


def test_stored_hash_index_matches_loop_form_and_inverts() -> None:
    for level in range(12):
        for n in range(300):
            index = stored_hash_index(level, n)
            assert index == _go_stored_hash_index(level, n)
            assert split_stored_hash_index(index) == (level, n)
    # Dense: every index below the count is some (level, n).
    for index in range(stored_hash_count(1000)):
        level, n = split_stored_hash_index(index)
        assert stored_hash_index(level, n) == index


@given(st.integers(0, 20), st.integers(0, 2**40))
def test_stored_hash_index_inverts_large(level: int, n: int) -> None:
    index = stored_hash_index(level, n)
    assert index == _go_stored_hash_index(level, n)
    assert split_stored_hash_index(index) == (level, n)


def test_stored_hash_index_bounds() -> None:
    # The last leaf of the largest tree (size 2^63 - 1) and its hashes.
    last = 2**63 - 2
    assert split_stored_hash_index(stored_hash_index(0, last)) == (0, last)
    assert stored_hash_index(0, last) < stored_hash_count(2**63 - 1)
    with pytest.raises(ValueError, match="beyond the largest tree"):
        stored_hash_index(0, last + 1)
    with pytest.raises(ValueError, match="beyond the largest tree"):
        stored_hash_index(1, 2**62)
    with pytest.raises(ValueError, match="is outside"):
        split_stored_hash_index(stored_hash_count(2**63 - 1))
    with pytest.raises(ValueError, match="is outside"):
        split_stored_hash_index(-1)


def test_stored_hashes_are_the_perfect_subtrees(store: MemoryHashStore) -> None:
    # Build the array by hand from stored_hashes_for_leaf and check every
    # entry is the MTH of the perfect subtree its index names.
    stored: list[bytes] = []

    class ListReader:
        def read_hashes(self, indexes: Sequence[int]) -> list[bytes]:
            return [stored[i] for i in indexes]

    for n in range(200):
        assert len(stored) == stored_hash_count(n)
        new = stored_hashes_for_leaf(n, leaf(n), ListReader())
        assert len(new) == 1 + ((n ^ (n + 1)).bit_length() - 1)
        assert len(stored) == stored_hash_index(0, n)
        stored.extend(new)
    for index, h in enumerate(stored):
        level, n = split_stored_hash_index(index)
        assert h == mth(n << level, (n + 1) << level), (level, n)


def test_stored_hashes_for_leaf_reads_once() -> None:
    s = MemoryHashStore()
    for i in range(63):
        s.append(DATA[i])
    reader = CountingReader(s)
    hashes = stored_hashes_for_leaf(63, leaf(63), reader)
    assert reader.calls == [6]
    assert hashes[-1] == mth(0, 64)


# --------------------------------------------------------------------------
# Roots, ranges and proofs against the naive definitions
# --------------------------------------------------------------------------


def test_roots_and_ranges_all_small_sizes(store: MemoryHashStore) -> None:
    for n in range(SMALL + 1):
        assert tree_root(n, store) == mth(0, n)
        hashes = range_hashes(n, store)
        assert len(hashes) == n.bit_count()
        assert CompactRange(n, hashes).root() == mth(0, n)


def test_inclusion_proofs_all_small_pairs(store: MemoryHashStore) -> None:
    for n in range(1, SMALL + 1):
        root = mth(0, n)
        for i in range(n):
            proof = inclusion_proof(i, n, store)
            assert proof == naive_path(i, 0, n), (i, n)
            verify_inclusion(leaf(i), i, n, proof, root)


def test_consistency_proofs_all_small_pairs(store: MemoryHashStore) -> None:
    for n in range(SMALL + 1):
        for m in range(n + 1):
            proof = consistency_proof(m, n, store)
            expected = naive_proof(m, n) if 0 < m < n else []
            assert proof == expected, (m, n)
            verify_consistency(m, n, mth(0, m), mth(0, n), proof)


def test_proof_generation_is_one_batched_logarithmic_read(store: MemoryHashStore) -> None:
    n = BIG
    bound = 2 * n.bit_length()
    for i in (0, 1, n // 2, n - 2, n - 1):
        reader = CountingReader(store)
        inclusion_proof(i, n, reader)
        assert len(reader.calls) == 1
        assert reader.calls[0] <= bound
    for m in (1, 2, 3, n // 3, n - 1):
        reader = CountingReader(store)
        consistency_proof(m, n, reader)
        assert len(reader.calls) == 1
        assert reader.calls[0] <= bound
    reader = CountingReader(store)
    tree_root(n, reader)
    assert reader.calls == [n.bit_count()]


def test_generation_rejects_bad_arguments(store: MemoryHashStore) -> None:
    with pytest.raises(ValueError, match="not below tree size"):
        inclusion_proof(5, 5, store)
    with pytest.raises(ValueError, match="exceeds new tree size"):
        consistency_proof(6, 5, store)
    with pytest.raises(ValueError, match="index -1 is outside"):
        inclusion_proof(-1, 5, store)
    with pytest.raises(ProofError, match="not in a tree"):
        tree_root(BIG + 1, store)


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_inclusion_large_random(store: MemoryHashStore, data: st.DataObject) -> None:
    n = data.draw(st.integers(1, BIG))
    i = data.draw(st.integers(0, n - 1))
    proof = inclusion_proof(i, n, store)
    assert proof == naive_path(i, 0, n)
    verify_inclusion(leaf(i), i, n, proof, mth(0, n))


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_consistency_large_random(store: MemoryHashStore, data: st.DataObject) -> None:
    n = data.draw(st.integers(1, BIG))
    m = data.draw(st.integers(1, n))
    proof = consistency_proof(m, n, store)
    assert proof == (naive_proof(m, n) if m < n else [])
    verify_consistency(m, n, mth(0, m), mth(0, n), proof)


# --------------------------------------------------------------------------
# Mutation loops: every corruption is rejected
# --------------------------------------------------------------------------


def _bit_flips(h: bytes) -> list[bytes]:
    out = []
    for byte in range(len(h)):
        for bit in range(8):
            b = bytearray(h)
            b[byte] ^= 1 << bit
            out.append(bytes(b))
    return out


def _cheap_flips(h: bytes) -> list[bytes]:
    """One flip in the first and one in the last byte."""
    return [bytes([h[0] ^ 0x01]) + h[1:], h[:-1] + bytes([h[-1] ^ 0x80])]


def _inclusion_mutations(
    i: int, n: int, proof: list[bytes], root: bytes, every_bit: bool
) -> list[tuple[bytes, int, int, list[bytes], bytes]]:
    flips = _bit_flips if every_bit else _cheap_flips
    lh = leaf(i)
    out: list[tuple[bytes, int, int, list[bytes], bytes]] = []
    for j, h in enumerate(proof):
        for bad in flips(h):
            out.append((lh, i, n, [*proof[:j], bad, *proof[j + 1 :]], root))
    for bad in flips(lh):
        out.append((bad, i, n, proof, root))
    for bad in flips(root):
        out.append((lh, i, n, proof, bad))
    if proof:
        out.append((lh, i, n, proof[:-1], root))
        out.append((lh, i, n, proof[1:], root))
        out.append((lh, i, n, proof[::-1], root) if len(proof) > 1 else (lh, i, n, [], root))
    out.append((lh, i, n, [*proof, proof[-1] if proof else lh], root))
    out.append((lh, i, n, [lh, *proof], root))
    # Wrong index, against the same root.
    for other in range(n):
        if other != i:
            out.append((lh, other, n, proof, root))
    # Wrong size, against that size's real root (the signed checkpoint's).
    for other_n in range(1, n + 3):
        if other_n != n and i < other_n:
            out.append((lh, i, other_n, proof, mth(0, other_n)))
    # Another leaf's hash at this index.
    if n > 1:
        out.append((leaf((i + 1) % n), i, n, proof, root))
    return out


def test_inclusion_mutations_rejected(store: MemoryHashStore) -> None:
    checked = 0
    for n in range(1, 40):
        root = mth(0, n)
        for i in range(n):
            proof = inclusion_proof(i, n, store)
            for lh, idx, size, bad_proof, bad_root in _inclusion_mutations(
                i, n, proof, root, every_bit=n <= 12
            ):
                with pytest.raises(ProofError):
                    verify_inclusion(lh, idx, size, bad_proof, bad_root)
                checked += 1
    assert checked > 50_000


def test_inclusion_out_of_range_and_malformed() -> None:
    root = mth(0, 4)
    with pytest.raises(ProofError, match="not below tree size"):
        verify_inclusion(leaf(4), 4, 4, [], root)
    with pytest.raises(ProofError, match="not below tree size"):
        verify_inclusion(leaf(0), 0, 0, [], EMPTY_ROOT)
    with pytest.raises(ProofError, match="has 1 hashes, expected 2"):
        verify_inclusion(leaf(0), 0, 4, [leaf(1)], root)
    with pytest.raises(ProofError, match="must be 32 bytes"):
        verify_inclusion(leaf(0), 0, 2, [leaf(1)[:31]], mth(0, 2))
    with pytest.raises(ProofError, match="root must be 32 bytes"):
        verify_inclusion(leaf(0), 0, 2, [leaf(1)], mth(0, 2) + b"\x00")
    with pytest.raises(ProofError):
        verify_inclusion(leaf(0), -1, 2, [leaf(1)], mth(0, 2))
    with pytest.raises(ProofError):
        verify_inclusion(leaf(0), 0, 2**64, [leaf(1)], mth(0, 2))


def _consistency_mutations(
    m: int, n: int, proof: list[bytes], every_bit: bool
) -> list[tuple[int, int, bytes, bytes, list[bytes]]]:
    flips = _bit_flips if every_bit else _cheap_flips
    r1, r2 = mth(0, m), mth(0, n)
    out: list[tuple[int, int, bytes, bytes, list[bytes]]] = []
    for j, h in enumerate(proof):
        for bad in flips(h):
            out.append((m, n, r1, r2, [*proof[:j], bad, *proof[j + 1 :]]))
    for bad in flips(r1):
        out.append((m, n, bad, r2, proof))
    for bad in flips(r2):
        out.append((m, n, r1, bad, proof))
    if proof:
        out.append((m, n, r1, r2, proof[:-1]))
        out.append((m, n, r1, r2, proof[1:]))
        if len(proof) > 1:
            out.append((m, n, r1, r2, proof[::-1]))
    out.append((m, n, r1, r2, [*proof, r1]))
    out.append((m, n, r1, r2, [r1, *proof]))
    # Wrong sizes, against those sizes' real roots.
    for other_m in range(0, n + 1):
        if other_m != m:
            out.append((other_m, n, mth(0, other_m), r2, proof))
    for other_n in range(m, n + 3):
        if other_n != n:
            out.append((m, other_n, r1, mth(0, other_n), proof))
    # Swapped sizes and roots.
    out.append((n, m, r2, r1, proof))
    return out


def test_consistency_mutations_rejected(store: MemoryHashStore) -> None:
    checked = 0
    for n in range(1, 34):
        for m in range(1, n):
            proof = consistency_proof(m, n, store)
            for a, b, r1, r2, bad in _consistency_mutations(m, n, proof, every_bit=n <= 12):
                with pytest.raises(ProofError):
                    verify_consistency(a, b, r1, r2, bad)
                checked += 1
    assert checked > 50_000


def test_consistency_edge_cases(store: MemoryHashStore) -> None:
    r5 = mth(0, 5)
    # Empty tree: consistent with anything, with an empty proof and the
    # canonical empty root only.
    verify_consistency(0, 5, EMPTY_ROOT, r5, [])
    verify_consistency(0, 0, EMPTY_ROOT, EMPTY_ROOT, [])
    with pytest.raises(ProofError, match="empty tree"):
        verify_consistency(0, 5, bytes(32), r5, [])
    with pytest.raises(ProofError, match="from size 0"):
        verify_consistency(0, 5, EMPTY_ROOT, r5, [r5])
    # Same size: same root, empty proof.
    verify_consistency(5, 5, r5, r5, [])
    with pytest.raises(ProofError, match="different roots"):
        verify_consistency(5, 5, r5, mth(0, 4), [])
    with pytest.raises(ProofError, match="expected 0"):
        verify_consistency(5, 5, r5, r5, [r5])
    # m > n.
    with pytest.raises(ProofError, match="exceeds new tree size"):
        verify_consistency(6, 5, mth(0, 6), r5, consistency_proof(5, 6, store))
    # 0 < m < n with an empty proof (RFC 9162 2.1.4.2 step 1).
    with pytest.raises(ProofError, match="has 0 hashes"):
        verify_consistency(4, 5, mth(0, 4), r5, [])


# --------------------------------------------------------------------------
# CompactRange and the memory store
# --------------------------------------------------------------------------


def test_compact_range_append_matches_mth_and_range_hashes(store: MemoryHashStore) -> None:
    cr = CompactRange()
    assert cr.root() == EMPTY_ROOT
    for n in range(1, 300):
        cr.append(leaf(n - 1))
        assert cr.size == n
        assert cr.root() == mth(0, n)
        assert list(cr.hashes) == range_hashes(n, store)
        cr.verify(mth(0, n))


def test_compact_range_extend_from_the_middle(store: MemoryHashStore) -> None:
    for m in range(SMALL):
        for n in (m, m + 1, m + 7, SMALL):
            cr = CompactRange(m, range_hashes(m, store))
            cr.extend(leaf(i) for i in range(m, n))
            assert cr == CompactRange(n, range_hashes(n, store))
            cr.verify(mth(0, n))


def test_compact_range_validation() -> None:
    with pytest.raises(ProofError, match="needs 2 hashes, got 1"):
        CompactRange(3, [leaf(0)])
    with pytest.raises(ProofError, match="needs 0 hashes"):
        CompactRange(0, [leaf(0)])
    with pytest.raises(ProofError, match="32 bytes"):
        CompactRange(1, [b"short"])
    with pytest.raises(ProofError):
        CompactRange(-1, [])
    cr = CompactRange(1, [leaf(0)])
    with pytest.raises(ProofError, match="does not match"):
        cr.verify(mth(0, 2))
    with pytest.raises(ValueError, match="32 bytes"):
        cr.append(b"x")
    assert cr.size == 1  # a rejected append changes nothing


def test_compact_range_copy_is_independent() -> None:
    cr = CompactRange(2, [mth(0, 2)])
    other = cr.copy()
    other.append(leaf(2))
    assert cr.size == 2
    assert cr.root() == mth(0, 2)
    assert other.root() == mth(0, 3)
    assert cr != other


def test_compact_range_flipped_hash_gives_other_root() -> None:
    cr = CompactRange(7, [mth(0, 4), mth(4, 6), mth(6, 7)])
    assert cr.root() == mth(0, 7)
    for j, h in enumerate(cr.hashes):
        for bad in _cheap_flips(h):
            hashes = list(cr.hashes)
            hashes[j] = bad
            with pytest.raises(ProofError):
                CompactRange(7, hashes).verify(mth(0, 7))


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 3000), st.integers(0, 600))
def test_compact_range_large_random(store: MemoryHashStore, m: int, extra: int) -> None:
    n = m + extra
    cr = CompactRange(m, range_hashes(m, store))
    cr.extend(leaf(i) for i in range(m, n))
    assert cr.root() == mth(0, n) == tree_root(n, store)


def test_memory_store_append_and_read() -> None:
    s = MemoryHashStore()
    assert s.size == 0
    assert s.root() == EMPTY_ROOT
    assert s.append(b"a") == 0
    assert s.append_leaf_hash(leaf_hash(b"b")) == 1
    assert s.size == 2
    assert s.root() == node_hash(leaf_hash(b"a"), leaf_hash(b"b"))
    assert s.read_hashes([2, 0]) == [s.root(), leaf_hash(b"a")]
    with pytest.raises(ProofError):
        s.read_hashes([3])
    with pytest.raises(ValueError, match="32 bytes"):
        s.append_leaf_hash(b"short")
    assert s.size == 2


def test_reader_contract_violations_are_reported() -> None:
    class Short:
        def read_hashes(self, indexes: Sequence[int]) -> list[bytes]:
            return [bytes(32)] * (len(indexes) - 1)

    class Malformed:
        def read_hashes(self, indexes: Sequence[int]) -> list[bytes]:
            return [b"x"] * len(indexes)

    with pytest.raises(ProofError, match="returned 2 hashes for 3 indexes"):
        tree_root(7, Short())
    with pytest.raises(ProofError, match="32 bytes"):
        inclusion_proof(0, 7, Malformed())
