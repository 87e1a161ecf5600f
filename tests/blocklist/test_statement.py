"""Version statement text (DESIGN.md item 2): exact format, strict parsing, splitting."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import random
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support.mutants import bit_flips, check_mutant, substitutions

from blocklist.errors import DeltaError, FormatError
from blocklist.statement import (
    MAX_CHANGES_PER_VERSION,
    MAX_STATEMENT_BYTES,
    ZERO_HASH,
    Statement,
    split_changes,
)

ORIGIN = "example.org/cleanfeed/main"
T = datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)


def h(name: str) -> bytes:
    return hashlib.sha256(name.encode()).digest()


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


A1, A2, R1 = sorted([h("example.com/a"), h("example.com/b"), h("example.net/")])
PREV = h("previous statement text")
AUDIT = h("audit head")
STATE = h("state digest")


def make(**overrides: object) -> Statement:
    fields: dict[str, object] = {
        "origin": ORIGIN,
        "version": 2,
        "previous": PREV,
        "keyring": 1,
        "audit": AUDIT,
        "state": STATE,
        "count": 7,
        "time": T,
        "adds": (A1, A2),
        "removes": (R1,),
    }
    fields.update(overrides)
    return Statement(**fields)  # type: ignore[arg-type]


def expected_text() -> str:
    return (
        "cleanfeed-version/v1\n"
        f"origin {ORIGIN}\n"
        "version 2\n"
        f"previous {b64(PREV)}\n"
        "keyring 1\n"
        f"audit {b64(AUDIT)}\n"
        f"state {b64(STATE)}\n"
        "count 7\n"
        "time 2024-05-06T07:08:09Z\n"
        f"add {b64(A1)}\n"
        f"add {b64(A2)}\n"
        f"remove {b64(R1)}\n"
    )


TEXT = expected_text()


def lines_of(text: str) -> list[str]:
    return text[:-1].split("\n")


def join(lines: list[str]) -> str:
    return "\n".join(lines) + "\n"


def non_canonical(b64_text: str) -> str:
    """Same bytes, but with a non-zero unused bit in the last character."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    last = b64_text[-2]
    value = alphabet.index(last)
    assert value % 4 == 0
    mutated = b64_text[:-2] + alphabet[value + 1] + "="
    assert base64.b64decode(mutated) == base64.b64decode(b64_text)  # decoders ignore the bits
    return mutated


# --------------------------------------------------------------------------
# The exact text
# --------------------------------------------------------------------------


def test_exact_text_and_hash() -> None:
    s = make()
    assert s.to_text() == TEXT
    assert s.text_hash() == hashlib.sha256(TEXT.encode()).digest()
    assert Statement.parse(TEXT) == s


def test_version_one_has_zero_previous() -> None:
    s = make(version=1, previous=ZERO_HASH)
    assert bytes(32) == ZERO_HASH
    assert f"previous {'A' * 43}=\n" in s.to_text()
    assert Statement.parse(s.to_text()) == s


def test_sorted_by_raw_bytes_not_base64_text() -> None:
    low = b"\x00" + bytes(31)  # "AAAA..." in base64
    high = b"\xd0" + bytes(31)  # "0AAA..." in base64, which sorts before "A" in ASCII
    assert low < high
    assert b64(high) < b64(low)
    s = make(adds=(low, high), removes=(), count=2)
    lines = lines_of(s.to_text())
    assert lines[-2:] == [f"add {b64(low)}", f"add {b64(high)}"]
    swapped = join([*lines[:-2], lines[-1], lines[-2]])
    with pytest.raises(FormatError, match="line 11: add not sorted"):
        Statement.parse(swapped)


def test_only_adds_or_only_removes() -> None:
    for s in (make(removes=()), make(adds=(), count=0)):
        assert Statement.parse(s.to_text()) == s


def test_large_statement_round_trips() -> None:
    rnd = random.Random(7)
    hashes = sorted({rnd.randbytes(32) for _ in range(MAX_CHANGES_PER_VERSION)})
    s = make(adds=tuple(hashes[:6000]), removes=tuple(hashes[6000:]), count=6000)
    text = s.to_text()
    assert Statement.parse(text) == s
    # One flipped character deep inside still names its line.
    lines = lines_of(text)
    lines[9 + 7000] = lines[9 + 7000][:-2] + "!="
    with pytest.raises(FormatError, match="line 7010"):
        Statement.parse(join(lines))


def test_maximal_statement_fits_the_byte_cap() -> None:
    biggest = 2**63 - 1
    rnd = random.Random(3)
    removes = tuple(sorted({rnd.randbytes(32) for _ in range(MAX_CHANGES_PER_VERSION)}))
    s = make(
        origin="o" * 255,
        version=biggest,
        keyring=biggest,
        count=biggest,
        time=datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC),
        adds=(),
        removes=removes,
    )
    text = s.to_text()
    assert len(text) == MAX_STATEMENT_BYTES
    assert Statement.parse(text) == s
    with pytest.raises(FormatError, match="exceeds"):
        Statement.parse(text + "x")


def test_too_many_changes() -> None:
    rnd = random.Random(5)
    hashes = sorted({rnd.randbytes(32) for _ in range(MAX_CHANGES_PER_VERSION + 1)})
    lines = lines_of(make(adds=(), count=0).to_text())[:9]
    text = join(lines + [f"add {b64(x)}" for x in hashes])
    assert len(text) < MAX_STATEMENT_BYTES
    with pytest.raises(FormatError, match="line 10010: more than 10000 changes"):
        Statement.parse(text)
    with pytest.raises(FormatError, match="exceed"):
        make(adds=tuple(hashes), removes=(), count=len(hashes))


# --------------------------------------------------------------------------
# Round trips
# --------------------------------------------------------------------------

_ORIGIN_CHARS = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) != "+")
hashes32 = st.binary(min_size=32, max_size=32)


@st.composite
def statements(draw: st.DrawFn) -> Statement:
    changes = draw(st.lists(hashes32, min_size=1, max_size=25, unique=True))
    n_adds = draw(st.integers(0, len(changes)))
    adds = tuple(sorted(changes[:n_adds]))
    removes = tuple(sorted(changes[n_adds:]))
    version = draw(st.integers(1, 2**63 - 1))
    previous = ZERO_HASH if version == 1 else draw(hashes32.filter(lambda x: x != ZERO_HASH))
    when = draw(
        st.datetimes(min_value=datetime(1970, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59))
    ).replace(microsecond=0, tzinfo=UTC)
    return Statement(
        origin=draw(st.text(_ORIGIN_CHARS, min_size=1, max_size=255)),
        version=version,
        previous=previous,
        keyring=draw(st.integers(1, 2**63 - 1)),
        audit=draw(hashes32),
        state=draw(hashes32),
        count=draw(st.integers(len(adds), 2**63 - 1)),
        time=when,
        adds=adds,
        removes=removes,
    )


@settings(max_examples=300, deadline=None)
@given(statements())
def test_round_trip(s: Statement) -> None:
    text = s.to_text()
    assert text.endswith("\n")
    parsed = Statement.parse(text)
    assert parsed == s
    assert parsed.to_text() == text
    assert parsed.text_hash() == hashlib.sha256(text.encode()).digest()
    assert hash(parsed) == hash(s)


@settings(max_examples=100, deadline=None)
@given(statements(), statements())
def test_distinct_statements_have_distinct_texts(a: Statement, b: Statement) -> None:
    assert (a == b) == (a.to_text() == b.to_text())


# --------------------------------------------------------------------------
# Mutation loops: no two texts map to the same statement
# --------------------------------------------------------------------------


def _check_mutant(mutant: str, original: Statement) -> bool:
    """Reject, or parse into a different statement that re-encodes to the mutant."""
    return check_mutant(Statement.parse, mutant, original)


def test_every_bit_flip_is_rejected_or_a_different_statement() -> None:
    original = make()
    accepted = sum(_check_mutant(mutant, original) for mutant in bit_flips(TEXT))
    # Some flips (inside a hash, a digit) are legitimately other statements.
    assert 0 < accepted < len(TEXT.encode()) * 8


def test_every_byte_substitution_is_rejected_or_a_different_statement() -> None:
    original = make()
    for mutant in substitutions(TEXT):
        _check_mutant(mutant, original)


def test_truncations() -> None:
    original = make()
    boundaries = {len(join(lines_of(TEXT)[:n])) for n in (10, 11)}
    for cut in range(len(TEXT)):
        if cut in boundaries:
            # Dropping whole trailing change lines leaves a shorter, different,
            # valid statement: the note signature covers the whole text.
            assert _check_mutant(TEXT[:cut], original)
        else:
            with pytest.raises(FormatError):
                Statement.parse(TEXT[:cut])


@pytest.mark.parametrize(
    "garbage",
    [
        "\n",
        " ",
        "x",
        "x\n",
        "\x00",
        "\r\n",
        f"origin {ORIGIN}\n",
        f"add {b64(A1)}\n",  # duplicate of an earlier add, and after the removes
        f"remove {b64(R1)}\n",  # duplicate removal
        f"remove {b64(A1)}\n",  # removes an added hash
        f"remove {b64(ZERO_HASH)}\n",  # sorts before R1
        "remove \n",
        f"remove {b64(h('x'))}",  # no final newline
    ],
)
def test_appended_garbage_rejected(garbage: str) -> None:
    with pytest.raises(FormatError):
        Statement.parse(TEXT + garbage)


# --------------------------------------------------------------------------
# Explicit malformations, with the line they name
# --------------------------------------------------------------------------


def _replace_line(n: int, new: str | None) -> str:
    lines = lines_of(TEXT)
    if new is None:
        del lines[n - 1]
    else:
        lines[n - 1] = new
    return join(lines)


def _insert_line(n: int, new: str) -> str:
    lines = lines_of(TEXT)
    lines.insert(n - 1, new)
    return join(lines)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        # Stray padding bits: same bytes to a lenient decoder, another text.
        (_replace_line(4, f"previous {non_canonical(b64(PREV))}"), "line 4 .*non-canonical"),
        (_replace_line(6, f"audit {non_canonical(b64(AUDIT))}"), "line 6 .*non-canonical"),
        (_replace_line(7, f"state {non_canonical(b64(STATE))}"), "line 7 .*non-canonical"),
        (_replace_line(10, f"add {non_canonical(b64(A1))}"), "line 10 .*non-canonical"),
        (_replace_line(12, f"remove {non_canonical(b64(R1))}"), "line 12 .*non-canonical"),
        (_replace_line(10, f"add {b64(A1)[:-1]}"), "line 10 .*base64"),
        (_replace_line(10, f"add {b64(A1 + b'x')}"), "line 10 .*32 bytes"),
        (_replace_line(10, f"add  {b64(A1)}"), "line 10"),
        (_replace_line(10, f"add {b64(A1).replace('=', '')}"), "line 10"),
        # Canonical decimals.
        (_replace_line(3, "version 02"), "line 3 .*canonical decimal"),
        (_replace_line(3, "version +2"), "line 3 .*canonical decimal"),
        (_replace_line(3, "version 0"), "line 3 .*start at 1"),
        (_replace_line(5, "keyring 01"), "line 5 .*canonical decimal"),
        (_replace_line(5, "keyring 0"), "line 5 .*start at 1"),
        (_replace_line(8, "count 007"), "line 8 .*canonical decimal"),
        (_replace_line(8, "count -1"), "line 8 .*canonical decimal"),
        (_replace_line(8, "count 1"), "line 8 .*below the 2 additions"),
        (_replace_line(8, f"count {2**63}"), "line 8 .*exceeds"),
        # Times.
        (_replace_line(9, "time 2024-05-06T07:08:09+00:00"), "line 9"),
        (_replace_line(9, "time 2024-05-06T07:08:09.5Z"), "line 9"),
        (_replace_line(9, "time 2024-05-06t07:08:09z"), "line 9"),
        (_replace_line(9, "time 2024-02-30T07:08:09Z"), "line 9 .*invalid date"),
        (_replace_line(9, "time 1969-12-31T23:59:59Z"), "line 9 .*before 1970"),
        (_replace_line(9, "time 0999-05-06T07:08:09Z"), "line 9"),
        # Previous and the version.
        (_replace_line(4, f"previous {b64(ZERO_HASH)}"), "line 4 .*zero bytes"),
        # Origins.
        (_replace_line(2, "origin example.org/a b"), "line 2"),
        (_replace_line(2, "origin example.org/a+b"), "line 2 .*'\\+'"),
        (_replace_line(2, "origin "), "line 2 .*empty"),
        (_replace_line(2, "origin " + "o" * 256), "line 2 .*longer than 255"),
        (_replace_line(2, "origin exämple.org"), "line 2: non-ASCII"),
        # Unknown, repeated, missing, misplaced and empty lines.
        (_replace_line(1, "cleanfeed-version/v2"), "line 1"),
        (_replace_line(5, "serial 1"), "line 5: unknown line"),
        (_insert_line(3, f"origin {ORIGIN}"), "line 3: repeated 'origin'"),
        (_insert_line(2, "cleanfeed-version/v1"), "line 2: repeated"),
        (_replace_line(6, None), "line 6: 'state' out of order, expected 'audit'"),
        (_replace_line(9, None), "line 9: missing 'time' line before the changes"),
        (_insert_line(11, "time 2024-05-06T07:08:09Z"), "line 11: repeated 'time'"),
        (_insert_line(11, "replace " + b64(A1)), "line 11: unknown line"),
        (_insert_line(4, ""), "line 4: empty line"),
        (_insert_line(11, ""), "line 11: empty line"),
        (TEXT + "\n", "line 13: empty line"),
        (_replace_line(3, "version"), "line 3: 'version' needs a single space"),
        (_replace_line(3, "version  2"), "line 3 .*canonical decimal"),
        # Change ordering.
        (_insert_line(13, f"add {b64(h('zz'))}"), "line 13: add line after remove lines"),
        (_insert_line(11, f"add {b64(A1)}"), "line 11: add duplicate"),
        (
            _replace_line(12, f"remove {b64(A2)}"),
            "line 12: removes the hash added on line 11",
        ),
        (join(lines_of(TEXT)[:9]), "line 10: no changes"),
        (TEXT.replace("\n", "\r\n"), "line 1"),
        (TEXT[:-1], "end in a newline"),
        ("", "end in a newline"),
        (TEXT[:40] + "\n", "line 3: missing, expected 'version'"),
    ],
)
def test_malformed(text: str, message: str) -> None:
    with pytest.raises(FormatError, match=message):
        Statement.parse(text)


def test_unsorted_and_duplicate_removes() -> None:
    r0, r1 = sorted([h("r0"), h("r1")])
    base = lines_of(make(adds=(), removes=(r0, r1), count=0).to_text())
    with pytest.raises(FormatError, match="line 11: remove not sorted"):
        Statement.parse(join([*base[:9], base[10], base[9]]))
    with pytest.raises(FormatError, match="line 11: remove duplicate"):
        Statement.parse(join([*base[:9], base[9], base[9]]))


def test_parse_rejects_non_strings() -> None:
    with pytest.raises(FormatError, match="must be a string"):
        Statement.parse(TEXT.encode())  # type: ignore[arg-type]


# --------------------------------------------------------------------------
# Constructor validation
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"version": 0}, "version"),
        ({"version": True}, "version must be an int"),
        ({"version": 2**63}, "version"),
        ({"version": 1}, "zero bytes"),
        ({"previous": ZERO_HASH}, "zero bytes"),
        ({"previous": b"x" * 31}, "previous must be 32 bytes"),
        ({"keyring": 0}, "keyring"),
        ({"audit": "A" * 32}, "audit must be 32 bytes"),
        ({"state": bytearray(32)}, "state must be 32 bytes"),
        ({"count": -1}, "count"),
        ({"count": 1}, "below the 2 additions"),
        ({"time": datetime(2024, 1, 1)}, "aware"),
        ({"time": T.replace(microsecond=1)}, "whole seconds"),
        ({"time": datetime(1969, 12, 31, 23, 59, 59, tzinfo=UTC)}, "before 1970"),
        ({"time": "2024-05-06T07:08:09Z"}, "aware"),
        ({"adds": (), "removes": ()}, "at least one change"),
        ({"adds": (A2, A1)}, "adds must be strictly increasing"),
        ({"adds": (A1, A1)}, "adds must be strictly increasing"),
        ({"removes": (R1, R1)}, "removes must be strictly increasing"),
        ({"removes": (A1,)}, "both added and removed"),
        ({"adds": (A1[:31],)}, "32 bytes"),
        ({"adds": A1}, "sequence of hashes"),
        ({"origin": ""}, "origin"),
        ({"origin": "a\nb"}, "origin"),
    ],
)
def test_constructor_rejects(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(FormatError, match=message):
        make(**overrides)


def test_constructor_normalises_time_and_sequences() -> None:
    east = timezone(timedelta(hours=2))
    s = make(time=datetime(2024, 5, 6, 9, 8, 9, tzinfo=east), adds=[A1, A2], removes=[R1])
    assert s.time.utcoffset() == timedelta(0)
    assert s.adds == (A1, A2)
    assert s == make()
    assert s.to_text() == TEXT
    with pytest.raises(FormatError, match="out of range"):
        make(time=datetime(9999, 12, 31, 23, 0, tzinfo=timezone(timedelta(hours=-5))))


def test_statements_are_frozen() -> None:
    s = make()
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.version = 3  # type: ignore[misc]


# --------------------------------------------------------------------------
# split_changes
# --------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(
    st.lists(hashes32, max_size=60, unique=True),
    st.integers(0, 60),
    st.integers(1, 25),
)
def test_split_changes_law(pool: list[bytes], n_adds: int, limit: int) -> None:
    adds, removes = pool[:n_adds], pool[n_adds:]
    chunks = split_changes(adds, removes, limit)
    total = len(adds) + len(removes)
    assert len(chunks) == -(-total // limit)
    # Concatenated, the chunks are the sorted additions then the sorted removals.
    assert [x for a, _ in chunks for x in a] == sorted(adds)
    assert [x for _, r in chunks for x in r] == sorted(removes)
    for i, (a, r) in enumerate(chunks):
        size = len(a) + len(r)
        assert 1 <= size <= limit
        if i < len(chunks) - 1:
            assert size == limit
        # Additions first: a chunk with removals follows all additions.
        if r:
            assert all(not ca for ca, _ in chunks[i + 1 :])
    # Applying the chunks in order equals applying the whole change set.
    before = set(removes) | {h("unrelated")}
    state = set(before)
    for a, r in chunks:
        assert not (set(a) & state)
        assert set(r) <= state
        state = (state - set(r)) | set(a)
    assert state == (before - set(removes)) | set(adds)


def test_split_changes_default_limit_makes_valid_statements() -> None:
    rnd = random.Random(11)
    pool = sorted({rnd.randbytes(32) for _ in range(25_001)})
    adds, removes = pool[:12_000], pool[12_000:]
    chunks = split_changes(list(reversed(adds)), removes)
    assert [(len(a), len(r)) for a, r in chunks] == [(10_000, 0), (2_000, 8_000), (0, 5_001)]
    for version, (a, r) in enumerate(chunks, start=2):
        s = make(version=version, adds=tuple(a), removes=tuple(r), count=100_000)
        assert Statement.parse(s.to_text()) == s
    assert split_changes([], []) == []


def test_split_changes_rejects_bad_input() -> None:
    with pytest.raises(DeltaError, match="added twice"):
        split_changes([A1, A1], [])
    with pytest.raises(DeltaError, match="removed twice"):
        split_changes([], [R1, R1])
    with pytest.raises(DeltaError, match="both added and removed"):
        split_changes([A1], [A1])
    with pytest.raises(FormatError, match="32 bytes"):
        split_changes([b"short"], [])
    with pytest.raises(ValueError, match="limit 0"):
        split_changes([A1], [], 0)
    with pytest.raises(ValueError, match="limit 10001"):
        split_changes([A1], [], MAX_CHANGES_PER_VERSION + 1)
