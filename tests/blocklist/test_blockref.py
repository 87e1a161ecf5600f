"""Block references: format, parsing, and what the check character catches."""

from __future__ import annotations

import hashlib
import itertools
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from blocklist.blockref import (
    ALPHABET,
    BLOCK_REF_LENGTH,
    InvalidBlockRef,
    MistypedBlockRef,
    block_ref,
    check_character,
    normalise_block_ref,
    parse_block_ref,
    ref_matches,
)
from blocklist.errors import BlocklistError, FormatError

HOST_HASH = hashlib.sha256(b"abuse-only.example.net/").digest()
REF = "CF1-34TZ-2R37-FOAL-HWL2-E"  # tests/vectors/block_ref.json


def _samples() -> list[str]:
    rng = random.Random(18)
    refs = [block_ref(rng.randbytes(32)) for _ in range(20)]
    return [REF, block_ref(bytes(32)), block_ref(b"\xff" * 32), *refs]


def test_format_of_a_reference() -> None:
    ref = block_ref(HOST_HASH)
    assert ref == REF
    assert len(ref) == BLOCK_REF_LENGTH == 25
    prefix, *groups, check = ref.split("-")
    assert prefix == "CF1"
    assert [len(g) for g in groups] == [4, 4, 4, 4]
    assert len(check) == 1
    assert set("".join(groups) + check) <= set(ALPHABET)


@given(st.binary(min_size=32, max_size=32))
def test_round_trip(h: bytes) -> None:
    ref = block_ref(h)
    assert parse_block_ref(ref) == h[:10]
    assert ref_matches(parse_block_ref(ref), h)
    assert normalise_block_ref(ref.lower().replace("-", " ")) == ref


@pytest.mark.parametrize(
    "text",
    [
        REF.lower(),
        REF.replace("-", ""),
        " ".join(REF.split("-")),
        f"\t{REF}\n",
        "cf1 34tz2r37 foalhwl2e",
        REF.replace("-", "\u2013"),
        "CF1--34TZ--2R37-FOAL-HWL2-E",
    ],
)
def test_tolerated_spellings(text: str) -> None:
    assert parse_block_ref(text) == HOST_HASH[:10]


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("", "empty"),
        ("   -  ", "empty"),
        ("34TZ-2R37-FOAL-HWL2-E", "starts with CF1-"),
        ("CF2-34TZ-2R37-FOAL-HWL2-E", "starts with CF1-"),
        ("CF1-34TZ-2R37-FOAL-HWL2", "this one has 16"),
        ("CF1-34TZ-2R37-FOAL-HWL2-EE", "this one has 18"),
        ("CF1-30TZ-2R37-FOAL-HWL2-E", "did you mean O"),
        ("CF1-34TZ-2R37-F8AL-HWL2-E", "did you mean B"),
        ("CF1-34TZ-2R37-FOAL-HWL2-*", "only A-Z and 2-7"),
        ("CF1-" + "A" * 200, "not a text"),
    ],
)
def test_not_a_reference(text: str, words: str) -> None:
    with pytest.raises(InvalidBlockRef, match=words) as info:
        parse_block_ref(text)
    assert type(info.value) is InvalidBlockRef
    assert info.value.code == "invalid_block_ref"
    assert isinstance(info.value, FormatError | BlocklistError | ValueError)


def test_every_single_substitution_is_caught() -> None:
    # Luhn mod N detects every single-character substitution: each position's
    # weight maps the alphabet one-to-one onto the residues mod N.
    for ref in _samples():
        chars = ref.replace("-", "")[3:]
        for pos, other in itertools.product(range(17), ALPHABET):
            if other == chars[pos]:
                continue
            typo = "CF1" + chars[:pos] + other + chars[pos + 1 :]
            with pytest.raises(MistypedBlockRef) as info:
                parse_block_ref(typo)
            assert info.value.code == "block_ref_mistyped"


def test_adjacent_transpositions_are_caught_except_a_with_7() -> None:
    # Luhn mod N misses exactly one adjacent swap: the code points 0 and
    # N - 1 ("A" and "7" in base32), as decimal Luhn misses 09 <-> 90. Every
    # pair of distinct characters is tried at both weightings (even and odd
    # positions), with the check character recomputed so the original is valid.
    rng = random.Random(17)
    missed: set[frozenset[str]] = set()
    for pos in (0, 3, 4, 13, 14):
        for a, b in itertools.permutations(ALPHABET, 2):
            body = [rng.choice(ALPHABET) for _ in range(16)]
            body[pos], body[pos + 1] = a, b
            chars = "".join(body)
            chars += check_character(chars)
            swapped = chars[:pos] + b + a + chars[pos + 2 :]
            try:
                parse_block_ref("CF1" + swapped)
            except MistypedBlockRef:
                continue
            missed.add(frozenset((a, b)))
    assert missed == {frozenset("A7")}


def test_swaps_with_the_check_character_are_caught() -> None:
    for ref in _samples():
        chars = ref.replace("-", "")[3:]
        if chars[15] == chars[16] or {chars[15], chars[16]} == {"A", "7"}:
            continue
        with pytest.raises(MistypedBlockRef):
            parse_block_ref("CF1" + chars[:15] + chars[16] + chars[15])


@pytest.mark.parametrize("bad", [b"", b"\x00" * 10, b"\x00" * 31, b"\x00" * 33, "00" * 32])
def test_block_ref_needs_a_whole_hash(bad: object) -> None:
    with pytest.raises(ValueError, match="32-byte"):
        block_ref(bad)  # type: ignore[arg-type]


def test_ref_matches_only_its_hash() -> None:
    prefix = parse_block_ref(REF)
    assert ref_matches(prefix, HOST_HASH)
    assert not ref_matches(prefix, hashlib.sha256(b"example.com/").digest())
    assert not ref_matches(prefix[:9], HOST_HASH)
