"""The keyring text format (DESIGN.md item 1) and vkey syntax, without cryptography.

Public keys here are arbitrary 32-byte strings: the format only checks the
vkey syntax and its key ID (SHA-256), never that a key is a curve point.
"""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from blocklist.errors import FormatError
from blocklist.keyring import (
    KEYRING_HEADER,
    MAX_KEYRING_BYTES,
    MAX_NAME_BYTES,
    MAX_ROOTS,
    SIG_TYPE_COSIGNATURE_V1,
    SIG_TYPE_ED25519,
    KeyRange,
    Keyring,
    format_vkey,
    is_valid_key_name,
    key_id,
    parse_vkey,
)

EXPIRES = datetime(2031, 1, 2, 3, 4, 5, tzinfo=UTC)
ORIGIN = "example.org/cleanfeed/main"


def naive_vkey(name: str, public_key: bytes, sig_type: int = 0x01) -> str:
    """vkey written from c2sp.org/signed-note by hand, independent of the module."""
    kid = hashlib.sha256(name.encode() + b"\n" + bytes([sig_type]) + public_key).digest()[:4]
    return f"{name}+{kid.hex()}+{base64.b64encode(bytes([sig_type]) + public_key).decode()}"


def vk(i: int, name: str = "example.org/key") -> str:
    return naive_vkey(f"{name}-{i}", hashlib.sha256(b"%d" % i).digest())


ROOTS = tuple(sorted([vk(1, "example.org/root"), vk(2, "example.org/root")]))
KEY_A, KEY_B = vk(10), vk(11)


def sample() -> Keyring:
    return Keyring(
        origin=ORIGIN,
        serial=3,
        expires=EXPIRES,
        threshold=2,
        roots=ROOTS,
        keys=(KeyRange(KEY_A, 1, 57), KeyRange(KEY_B, 58, None)),
    )


def sample_text() -> str:
    return (
        "cleanfeed-keyring/v1\n"
        f"origin {ORIGIN}\n"
        "serial 3\n"
        "expires 2031-01-02T03:04:05Z\n"
        "threshold 2\n"
        f"root {ROOTS[0]}\n"
        f"root {ROOTS[1]}\n"
        f"key {KEY_A} 1 57\n"
        f"key {KEY_B} 58 -\n"
    )


# --------------------------------------------------------------------------
# vkeys and key names
# --------------------------------------------------------------------------


def test_key_id_matches_the_spec_formula() -> None:
    pk = bytes(range(32))
    expected = hashlib.sha256(b"example.com/k\n\x01" + pk).digest()[:4]
    assert key_id("example.com/k", SIG_TYPE_ED25519, pk) == expected
    assert key_id("example.com/k", SIG_TYPE_COSIGNATURE_V1, pk) != expected


def test_go_documented_vkey_parses() -> None:
    # Verifier key from the golang.org/x/mod/sumdb/note package documentation.
    vkey = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
    parts = parse_vkey(vkey)
    assert parts.name == "PeterNeumann"
    assert parts.key_id == bytes.fromhex("c74f20a3")
    assert parts.sig_type == 1
    assert format_vkey(parts.name, parts.sig_type, parts.public_key) == vkey


@given(
    name=st.text(
        st.characters(codec="utf-8", exclude_categories=("Cc", "Zs", "Zl", "Zp", "Cs")),
        min_size=1,
        max_size=40,
    ).filter(lambda n: "+" not in n and "\x85" not in n),
    pk=st.binary(min_size=32, max_size=32),
    sig_type=st.sampled_from([SIG_TYPE_ED25519, SIG_TYPE_COSIGNATURE_V1]),
)
def test_vkey_round_trip(name: str, pk: bytes, sig_type: int) -> None:
    vkey = format_vkey(name, sig_type, pk)
    assert vkey == naive_vkey(name, pk, sig_type)
    assert parse_vkey(vkey, sig_types=(sig_type,)) == (
        name,
        key_id(name, sig_type, pk),
        sig_type,
        pk,
    )


def _bad_vkeys() -> list[tuple[str, str]]:
    pk = bytes(range(32))
    good = naive_vkey("example.com/k", pk)
    name, kid, b64 = good.split("+", 2)
    other_id = naive_vkey("example.com/other", pk).split("+")[1]
    short_padded = b64[:-2] + "A="  # 32 bytes, padded
    s_name, s_kid, s_b64 = naive_vkey("example.com/k", b"\xff" * 32).split("+", 2)
    assert "/" in s_b64
    return [
        ("empty", ""),
        ("no separators", "example.com/k"),
        ("two fields", f"{name}+{kid}"),
        ("empty name", f"+{kid}+{b64}"),
        ("upper-case hex", f"{name}+{kid.upper()}+{b64}"),
        ("short hex", f"{name}+{kid[:7]}+{b64}"),
        ("wrong key ID", f"{name}+{other_id}+{b64}"),
        ("name with space", naive_vkey("example.com/k x", pk)),
        ("name with NBSP", naive_vkey("example.com/k\u00a0x", pk)),
        ("name with ideographic space", naive_vkey("example.com/\u3000", pk)),
        ("name with control char", naive_vkey("example.com/\x01", pk)),
        ("name too long", naive_vkey("e" * (MAX_NAME_BYTES + 1), pk)),
        ("base64 with extra padding", f"{name}+{kid}+{b64}="),
        ("short padded base64", f"{name}+{kid}+{short_padded}"),
        ("url-safe base64", f"{s_name}+{s_kid}+{s_b64.replace('/', '_')}"),
        ("short key", naive_vkey("example.com/k", pk[:31])),
        ("long key", naive_vkey("example.com/k", pk + b"\0")),
        ("type 0x04 where 0x01 expected", naive_vkey("example.com/k", pk, 0x04)),
        ("unknown type 0x02", naive_vkey("example.com/k", pk, 0x02)),
        ("trailing newline", good + "\n"),
        ("leading space", " " + good),
    ]


@pytest.mark.parametrize(("why", "vkey"), _bad_vkeys(), ids=[w for w, _ in _bad_vkeys()])
def test_bad_vkeys_rejected(why: str, vkey: str) -> None:
    with pytest.raises(FormatError):
        parse_vkey(vkey)


def test_name_rules() -> None:
    assert is_valid_key_name("example.com/log")
    assert is_valid_key_name("é.example/ключ")  # non-ASCII letters are fine
    assert is_valid_key_name("e" * MAX_NAME_BYTES)
    for bad in ["", "a+b", "a b", "a\tb", "a\u2028b", "a\u205fb", "a\x7fb", "\ud800", "é" * 128]:
        assert not is_valid_key_name(bad), bad


# --------------------------------------------------------------------------
# Keyring text
# --------------------------------------------------------------------------


def test_to_text_is_the_documented_format() -> None:
    assert sample().to_text() == sample_text()
    assert Keyring.parse(sample_text()) == sample()


def test_keys_for_version_and_open_keys() -> None:
    kr = sample()
    assert kr.keys_for_version(1) == [KEY_A]
    assert kr.keys_for_version(57) == [KEY_A]
    assert kr.keys_for_version(58) == [KEY_B]
    assert kr.keys_for_version(10**12) == [KEY_B]
    assert kr.keys_for_version(0) == []
    assert kr.open_keys() == [KEY_B]


def test_create_sorts_roots_and_ranges() -> None:
    kr = Keyring.create(
        origin=ORIGIN,
        serial=3,
        expires=EXPIRES,
        threshold=2,
        roots=reversed(ROOTS),
        keys=[KeyRange(KEY_B, 58, None), KeyRange(KEY_A, 1, 57)],
    )
    assert kr == sample()


@st.composite
def keyrings(draw: st.DrawFn) -> Keyring:
    n_roots = draw(st.integers(1, 5))
    roots = [vk(i, "example.org/root") for i in range(n_roots)]
    bounds = sorted(draw(st.sets(st.integers(1, 10**6), min_size=1, max_size=12)))
    keys: list[KeyRange] = []
    # Pair consecutive bounds into disjoint closed ranges; maybe leave the
    # last one open.
    for i in range(0, len(bounds) - 1, 2):
        keys.append(KeyRange(vk(100 + i), bounds[i], bounds[i + 1]))
    if draw(st.booleans()) or not keys:
        start = (keys[-1].last or 0) + draw(st.integers(1, 3)) if keys else bounds[0]
        keys.append(KeyRange(vk(99), start, None))
    seconds = draw(st.integers(0, 4 * 10**9))
    return Keyring.create(
        origin=draw(st.sampled_from([ORIGIN, "example.com/x", "a.test/~list_1"])),
        serial=draw(st.integers(1, 2**63 - 1)),
        expires=datetime.fromtimestamp(seconds, UTC),
        threshold=draw(st.integers(1, n_roots)),
        roots=roots,
        keys=keys,
    )


@given(kr=keyrings(), version=st.integers(0, 10**6 + 10))
def test_round_trip_and_range_lookup_match_naive(kr: Keyring, version: int) -> None:
    assert Keyring.parse(kr.to_text()) == kr
    naive = [
        r.vkey for r in kr.keys if r.first <= version and (r.last is None or version <= r.last)
    ]
    assert kr.keys_for_version(version) == naive
    assert len(naive) <= 1
    assert kr.open_keys() == [r.vkey for r in kr.keys if r.last is None]


@given(kr=keyrings(), data=st.data())
def test_every_line_swap_or_duplication_is_rejected(kr: Keyring, data: st.DataObject) -> None:
    # Canonical form: one text per keyring, so reordering or repeating any
    # line of a valid keyring must never parse.
    lines = kr.to_text().splitlines(keepends=True)
    i = data.draw(st.integers(0, len(lines) - 2))
    swapped = lines.copy()
    swapped[i], swapped[i + 1] = swapped[i + 1], swapped[i]
    with pytest.raises(FormatError):
        Keyring.parse("".join(swapped))
    j = data.draw(st.integers(0, len(lines) - 1))
    with pytest.raises(FormatError):
        Keyring.parse("".join(lines[: j + 1] + lines[j:]))


def _replace(old: str, new: str) -> str:
    text = sample_text()
    assert old in text
    return text.replace(old, new, 1)


BAD_TEXTS = {
    "empty": "",
    "no final newline": sample_text()[:-1],
    "wrong header": _replace("cleanfeed-keyring/v1", "cleanfeed-keyring/v2"),
    "missing header": sample_text().split("\n", 1)[1],
    "crlf": sample_text().replace("\n", "\r\n"),
    "blank line": _replace("serial 3\n", "serial 3\n\n"),
    "unknown line": _replace("threshold 2\n", "threshold 2\ncomment hi\n"),
    "repeated origin": _replace("serial 3\n", f"serial 3\norigin {ORIGIN}\n"),
    "misordered serial/origin": _replace(
        f"origin {ORIGIN}\nserial 3\n", f"serial 3\norigin {ORIGIN}\n"
    ),
    "root after key": sample_text() + f"root {vk(7, 'example.org/root')}\n",
    "trailing space": _replace("serial 3\n", "serial 3 \n"),
    "double space": _replace("serial 3\n", "serial  3\n"),
    "serial zero": _replace("serial 3\n", "serial 0\n"),
    "serial leading zero": _replace("serial 3\n", "serial 03\n"),
    "serial signed": _replace("serial 3\n", "serial +3\n"),
    "serial too large": _replace("serial 3\n", f"serial {2**63}\n"),
    "expires offset": _replace("2031-01-02T03:04:05Z", "2031-01-02T03:04:05+00:00"),
    "expires fraction": _replace("2031-01-02T03:04:05Z", "2031-01-02T03:04:05.0Z"),
    "threshold zero": _replace("threshold 2\n", "threshold 0\n"),
    "threshold above roots": _replace("threshold 2\n", "threshold 3\n"),
    "no roots": "".join(line for line in sample_text().splitlines(True) if "root " not in line),
    "no keys": "".join(line for line in sample_text().splitlines(True) if "key " not in line),
    "duplicate root": _replace(f"root {ROOTS[1]}\n", f"root {ROOTS[0]}\n").replace(
        "threshold 2", "threshold 1"
    ),
    "roots unsorted": _replace(
        f"root {ROOTS[0]}\nroot {ROOTS[1]}\n", f"root {ROOTS[1]}\nroot {ROOTS[0]}\n"
    ),
    "root reused as online key": _replace(f"key {KEY_A} 1 57", f"key {ROOTS[0]} 1 57"),
    "same key twice": _replace(f"key {KEY_B} 58 -", f"key {KEY_A} 58 -"),
    "overlapping ranges": _replace(f"key {KEY_B} 58 -", f"key {KEY_B} 57 -"),
    "two open ranges": _replace(f"key {KEY_A} 1 57", f"key {KEY_A} 1 -"),
    "ranges unsorted": _replace(
        f"key {KEY_A} 1 57\nkey {KEY_B} 58 -\n", f"key {KEY_B} 58 -\nkey {KEY_A} 1 57\n"
    ),
    "first above last": _replace(f"key {KEY_A} 1 57", f"key {KEY_A} 9 8"),
    "first zero": _replace(f"key {KEY_A} 1 57", f"key {KEY_A} 0 57"),
    "key line missing last": _replace(f"key {KEY_A} 1 57", f"key {KEY_A} 1"),
    "key line extra field": _replace(f"key {KEY_A} 1 57", f"key {KEY_A} 1 57 x"),
    "open written as dash-dash": _replace(f"key {KEY_B} 58 -", f"key {KEY_B} 58 --"),
    "bad root vkey": _replace(f"root {ROOTS[0]}", f"root {ROOTS[0][:-2]}A="),
    "cosigner vkey as root": _replace(
        f"root {ROOTS[0]}", "root " + naive_vkey("example.org/root-1", b"\x01" * 32, 0x04)
    ),
    "origin with space": _replace(f"origin {ORIGIN}", "origin example.org/a b"),
    "origin empty": _replace(f"origin {ORIGIN}\n", "origin \n"),
    "nul byte": _replace("serial 3", "serial 3\x00"),
}


@pytest.mark.parametrize("why", sorted(BAD_TEXTS))
def test_bad_texts_rejected(why: str) -> None:
    with pytest.raises(FormatError):
        Keyring.parse(BAD_TEXTS[why])


def test_size_and_count_limits() -> None:
    roots = tuple(sorted(vk(i, "example.org/root") for i in range(MAX_ROOTS + 1)))
    text = sample_text().replace(
        f"root {ROOTS[0]}\nroot {ROOTS[1]}\n", "".join(f"root {r}\n" for r in roots)
    )
    with pytest.raises(FormatError, match="root"):
        Keyring.parse(text)
    with pytest.raises(FormatError, match="larger"):
        Keyring.parse(KEYRING_HEADER + "\n" + "x" * MAX_KEYRING_BYTES + "\n")


def test_constructor_enforces_the_parse_rules() -> None:
    base = sample()
    with pytest.raises(FormatError):
        Keyring(base.origin, 0, base.expires, 2, base.roots, base.keys)
    with pytest.raises(FormatError):
        Keyring(base.origin, 3, base.expires.replace(tzinfo=None), 2, base.roots, base.keys)
    with pytest.raises(FormatError):
        Keyring(base.origin, 3, base.expires.replace(microsecond=5), 2, base.roots, base.keys)
    with pytest.raises(FormatError):
        Keyring(base.origin, 3, base.expires, 3, base.roots, base.keys)
    with pytest.raises(FormatError):
        Keyring(base.origin, 3, base.expires, True, base.roots, base.keys)
    with pytest.raises(FormatError):
        Keyring(base.origin, 3, base.expires, 2, base.roots[::-1], base.keys)
    with pytest.raises(FormatError):
        KeyRange(KEY_A, 5, 4)
    with pytest.raises(FormatError):
        KeyRange(KEY_A, 0, None)
    with pytest.raises(FormatError):
        KeyRange("not-a-vkey", 1, None)
