"""LtHash16 state digest against a naive pure-Python transcription of DESIGN.md item 5."""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from blocklist.errors import FormatError
from blocklist.statedigest import BATCH, EMPTY_DIGEST, StateDigest


def naive_vector(adds: Iterable[bytes], removes: Iterable[bytes] = ()) -> list[int]:
    """Lane-wise sum mod 2^16 of SHAKE-128(h)[:2048] read as 1024 LE uint16."""
    lanes = [0] * 1024
    for sign, hashes in ((1, adds), (-1, removes)):
        for h in hashes:
            expanded = hashlib.shake_128(h).digest(2048)
            for i, x in enumerate(struct.unpack("<1024H", expanded)):
                lanes[i] = (lanes[i] + sign * x) % 65536
    return lanes


def naive_digest(adds: Iterable[bytes], removes: Iterable[bytes] = ()) -> bytes:
    return hashlib.sha256(struct.pack("<1024H", *naive_vector(adds, removes))).digest()


def h(i: int) -> bytes:
    return hashlib.sha256(b"example.com/%d" % i).digest()


hashes32 = st.binary(min_size=32, max_size=32)


def test_empty_set() -> None:
    assert hashlib.sha256(bytes(2048)).digest() == EMPTY_DIGEST
    empty = StateDigest()
    assert empty.to_bytes() == bytes(2048)
    assert empty.digest() == EMPTY_DIGEST
    assert StateDigest.from_hashes([]).digest() == EMPTY_DIGEST


def test_single_entry_is_its_expansion() -> None:
    entry = hashlib.sha256(b"example.com/").digest()
    state = StateDigest.from_hashes([entry])
    # One member: the vector is exactly the 2048 SHAKE-128 bytes.
    assert state.to_bytes() == hashlib.shake_128(entry).digest(2048)
    assert state.digest() == hashlib.sha256(hashlib.shake_128(entry).digest(2048)).digest()


def test_pinned_vector() -> None:
    # Pinned so any change to the construction is noticed; docs/protocol.md
    # should carry the same vector.
    members = [hashlib.sha256(e).digest() for e in (b"example.com/", b"example.org/a/")]
    expected = "fb5b6b9644bb032d3aa858afe61f605abb1b1f9467f621d34f4b65af62835bf5"
    assert naive_digest(members).hex() == expected
    assert StateDigest.from_hashes(members).digest().hex() == expected


@settings(max_examples=60, deadline=None)
@given(st.lists(hashes32, max_size=40, unique=True))
def test_agrees_with_naive(members: list[bytes]) -> None:
    state = StateDigest.from_hashes(members)
    assert state.to_bytes() == struct.pack("<1024H", *naive_vector(members))
    assert state.digest() == naive_digest(members)


def test_agrees_with_naive_across_batches() -> None:
    members = [h(i) for i in range(BATCH + 3)]
    removed = members[: BATCH + 1]
    state = StateDigest.from_hashes(members)
    assert state.digest() == naive_digest(members)
    state.update([], removed)
    assert state.digest() == naive_digest(members[BATCH + 1 :])


def test_lanes_wrap_around() -> None:
    # The same member twice (a multiset): each lane doubles mod 2^16, and
    # with 1024 random lanes some certainly exceed 2^15 and wrap.
    entry = h(1)
    lanes = struct.unpack("<1024H", hashlib.shake_128(entry).digest(2048))
    assert any(x >= 32768 for x in lanes)
    state = StateDigest()
    state.update([entry, entry], [])
    assert state.to_bytes() == struct.pack("<1024H", *[(2 * x) % 65536 for x in lanes])
    # Removing from the empty set wraps the other way.
    state = StateDigest()
    state.remove(entry)
    assert state.to_bytes() == struct.pack("<1024H", *[(-x) % 65536 for x in lanes])
    state.add(entry)
    assert state.digest() == EMPTY_DIGEST


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.integers(0, 30)), max_size=60))
def test_incremental_equals_from_scratch(ops: list[tuple[bool, int]]) -> None:
    state = StateDigest()
    members: set[bytes] = set()
    for add, i in ops:
        x = h(i)
        if add and x not in members:
            state.add(x)
            members.add(x)
        elif not add and x in members:
            state.remove(x)
            members.discard(x)
    assert state == StateDigest.from_hashes(members)
    assert state.digest() == StateDigest.from_hashes(sorted(members)).digest()


@settings(max_examples=40, deadline=None)
@given(st.lists(hashes32, max_size=30, unique=True), st.data())
def test_batched_update_equals_single_steps(members: list[bytes], data: st.DataObject) -> None:
    removes = data.draw(st.lists(st.sampled_from(members), unique=True)) if members else []
    adds = data.draw(st.lists(hashes32, max_size=10, unique=True))
    adds = [a for a in adds if a not in members]
    batched = StateDigest.from_hashes(members)
    batched.update(adds, removes)
    single = StateDigest.from_hashes(members)
    for a in adds:
        single.add(a)
    for r in removes:
        single.remove(r)
    assert batched == single
    expected = (set(members) - set(removes)) | set(adds)
    assert batched.digest() == StateDigest.from_hashes(expected).digest()


@settings(max_examples=40, deadline=None)
@given(st.lists(hashes32, min_size=1, max_size=30, unique=True), st.randoms())
def test_order_independent_and_add_remove_returns(members: list[bytes], rnd: object) -> None:
    shuffled = list(members)
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]
    assert StateDigest.from_hashes(members) == StateDigest.from_hashes(shuffled)
    state = StateDigest()
    state.update(members, [])
    state.update([], shuffled)
    assert state.digest() == EMPTY_DIGEST


def test_different_sets_differ() -> None:
    a = StateDigest.from_hashes([h(1), h(2)])
    b = StateDigest.from_hashes([h(1), h(3)])
    assert a != b
    assert a.digest() != b.digest()
    assert a.digest() != EMPTY_DIGEST


def test_bytes_round_trip_and_copy() -> None:
    state = StateDigest.from_hashes([h(i) for i in range(5)])
    again = StateDigest.from_bytes(state.to_bytes())
    assert again == state
    assert again.digest() == state.digest()
    clone = state.copy()
    clone.add(h(99))
    assert clone != state
    assert state.digest() == naive_digest([h(i) for i in range(5)])
    assert state != "not a digest"


@pytest.mark.parametrize("size", [0, 2047, 2049, 4096])
def test_from_bytes_checks_length(size: int) -> None:
    with pytest.raises(FormatError, match="2048 bytes"):
        StateDigest.from_bytes(bytes(size))


@pytest.mark.parametrize("bad", [b"", b"x" * 31, b"x" * 33, "x" * 32, bytearray(32)])
def test_rejects_non_32_byte_hashes(bad: object) -> None:
    state = StateDigest.from_hashes([h(1)])
    before = state.to_bytes()
    with pytest.raises(ValueError, match="32 bytes"):
        state.add(bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="32 bytes"):
        state.remove(bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="32 bytes"):
        state.update([h(2), bad], [])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="32 bytes"):
        StateDigest.from_hashes([bad])  # type: ignore[list-item]
    # A rejected update changes nothing, even when valid hashes came first.
    assert state.to_bytes() == before


def test_merge_of_disjoint_parts_is_the_whole() -> None:
    # DESIGN.md item 5, step 3: the vector of a disjoint union is the lane-wise
    # sum of the parts' vectors (what a parallel snapshot digest relies on).
    part = StateDigest.from_hashes([h(1), h(2)])
    part.merge(StateDigest.from_hashes([h(3)]))
    assert part.digest() == naive_digest([h(1), h(2), h(3)])
    # Merging a removal-only delta subtracts, wrapping mod 2^16.
    delta = StateDigest()
    delta.update((), (h(2),))
    part.merge(delta)
    assert part.digest() == naive_digest([h(1), h(3)])
