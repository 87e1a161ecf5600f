"""Checkpoint note text (c2sp.org/tlog-checkpoint) and the shared origin rules."""

from __future__ import annotations

import base64
import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support.mutants import bit_flips, check_mutant, substitutions

from blocklist.checkpoint import (
    MAX_CHECKPOINT_BYTES,
    MAX_ORIGIN_LENGTH,
    Checkpoint,
    validate_origin,
)
from blocklist.errors import FormatError

ORIGIN = "example.org/cleanfeed/main"
ROOT = hashlib.sha256(b"some root").digest()
EMPTY_ROOT = hashlib.sha256(b"").digest()
TEXT = f"{ORIGIN}\n5\n{base64.b64encode(ROOT).decode()}\n"


def non_canonical(b64_text: str) -> str:
    """Same bytes to a lenient decoder, but a non-zero unused bit at the end."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    value = alphabet.index(b64_text[-2])
    mutated = b64_text[:-2] + alphabet[value + 1] + "="
    assert base64.b64decode(mutated) == base64.b64decode(b64_text)
    return mutated


def test_exact_text() -> None:
    cp = Checkpoint(ORIGIN, 5, ROOT)
    assert cp.to_text() == TEXT
    assert Checkpoint.parse(TEXT) == cp
    assert cp.extensions == ()


def test_c2sp_example() -> None:
    # The example of c2sp.org/tlog-checkpoint (its note text only).
    text = "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
    cp = Checkpoint.parse(text)
    assert cp.origin == "example.com/behind-the-sofa"
    assert cp.size == 20852163
    assert cp.root == base64.b64decode("CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=")
    assert cp.to_text() == text


def test_empty_tree() -> None:
    cp = Checkpoint(ORIGIN, 0, EMPTY_ROOT)
    text = f"{ORIGIN}\n0\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n"
    assert cp.to_text() == text
    assert Checkpoint.parse(text) == cp


def test_extension_lines_round_trip() -> None:
    text = TEXT + "first extension\nsecond: ünïcode\n"
    cp = Checkpoint.parse(text)
    assert cp.extensions == ("first extension", "second: ünïcode")
    assert cp.to_text() == text
    assert cp != Checkpoint(ORIGIN, 5, ROOT)
    assert Checkpoint(ORIGIN, 5, ROOT, ["a", "b"]).extensions == ("a", "b")


_ORIGIN_CHARS = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) != "+")
_extension = st.text(
    st.characters(exclude_categories=("Cc", "Cs")), min_size=1, max_size=40
).filter(lambda s: "\n" not in s)


@settings(max_examples=300, deadline=None)
@given(
    st.text(_ORIGIN_CHARS, min_size=1, max_size=MAX_ORIGIN_LENGTH),
    st.integers(0, 2**63 - 1),
    st.binary(min_size=32, max_size=32),
    st.lists(_extension, max_size=4),
)
def test_round_trip(origin: str, size: int, root: bytes, extensions: list[str]) -> None:
    cp = Checkpoint(origin, size, root, tuple(extensions))
    text = cp.to_text()
    assert Checkpoint.parse(text) == cp
    assert Checkpoint.parse(text).to_text() == text


def _check_mutant(mutant: str, original: Checkpoint) -> bool:
    return check_mutant(Checkpoint.parse, mutant, original)


@pytest.mark.parametrize("text", [TEXT, TEXT + "ext one\n"])
def test_every_bit_flip_is_rejected_or_a_different_checkpoint(text: str) -> None:
    original = Checkpoint.parse(text)
    accepted = sum(_check_mutant(mutant, original) for mutant in bit_flips(text))
    assert 0 < accepted < len(text.encode()) * 8


def test_every_byte_substitution_is_rejected_or_a_different_checkpoint() -> None:
    original = Checkpoint.parse(TEXT)
    for mutant in substitutions(TEXT):
        _check_mutant(mutant, original)


def test_truncations_rejected() -> None:
    for cut in range(len(TEXT)):
        with pytest.raises(FormatError):
            Checkpoint.parse(TEXT[:cut])


@pytest.mark.parametrize("garbage", ["\n", "x", " ", "\x00\n", "\r\n", "a\x7fb\n", "\ud800\n"])
def test_appended_garbage_rejected(garbage: str) -> None:
    with pytest.raises(FormatError):
        Checkpoint.parse(TEXT + garbage)


def test_appended_line_is_an_extension_not_the_same_checkpoint() -> None:
    # c2sp allows extension lines: an appended line is kept, so the result
    # is a different checkpoint and re-encodes to the appended text.
    assert _check_mutant(TEXT + "x\n", Checkpoint.parse(TEXT))


ROOT_B64 = base64.b64encode(ROOT).decode()
URLSAFE_B64 = base64.urlsafe_b64encode(
    b"\xff" * 32
).decode()  # "_" and "-" are not RFC 4648 section 4


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (f"{ORIGIN}\n5\n{non_canonical(ROOT_B64)}\n", "line 3 .*non-canonical"),
        (f"{ORIGIN}\n5\n{ROOT_B64[:-1]}\n", "line 3 .*44 base64 characters"),
        (f"{ORIGIN}\n5\n{ROOT_B64[:-1]}A\n", "line 3 .*(32 bytes|base64)"),
        (f"{ORIGIN}\n5\n{base64.b64encode(ROOT[:30]).decode()}\n", "line 3"),
        (f"{ORIGIN}\n5\n{URLSAFE_B64}\n", "line 3"),
        (f"{ORIGIN}\n05\n{ROOT_B64}\n", "line 2 .*canonical decimal"),
        (f"{ORIGIN}\n+5\n{ROOT_B64}\n", "line 2 .*canonical decimal"),
        (f"{ORIGIN}\n-0\n{ROOT_B64}\n", "line 2 .*canonical decimal"),
        (f"{ORIGIN}\n 5\n{ROOT_B64}\n", "line 2 .*canonical decimal"),
        (f"{ORIGIN}\n{2**63}\n{ROOT_B64}\n", "line 2 .*exceeds"),
        (f"{ORIGIN}\n\n5\n{ROOT_B64}\n", "line 2: empty line"),
        (f"\n{ORIGIN}\n5\n{ROOT_B64}\n", "line 1: empty line"),
        (f"{ORIGIN}\n5\n{ROOT_B64}\n\next\n", "line 4: empty line"),
        (f"{ORIGIN}\n5\n", "needs origin, tree size and root hash"),
        (f"{ORIGIN}\n5\n{ROOT_B64}", "end in a newline"),
        (TEXT.replace("\n", "\r\n"), "line 1"),
        (f"example.org/a b\n5\n{ROOT_B64}\n", "line 1 .*not allowed"),
        (f"example.org/a+b\n5\n{ROOT_B64}\n", "line 1 .*not allowed"),
        (f"exämple.org\n5\n{ROOT_B64}\n", "line 1 .*not allowed"),
        (f"{'o' * 256}\n5\n{ROOT_B64}\n", "line 1 .*longer than 255"),
        (TEXT + "x" * MAX_CHECKPOINT_BYTES + "\n", "exceeds"),
        (TEXT + "é" * (MAX_CHECKPOINT_BYTES // 2) + "\n", "exceeds"),
        (TEXT + "a\tb\n", "line 4 .*U\\+0009"),
        (TEXT + "a\x85b\n", "line 4 .*U\\+0085"),
    ],
)
def test_malformed(text: str, message: str) -> None:
    with pytest.raises(FormatError, match=message):
        Checkpoint.parse(text)


def test_parse_rejects_non_strings() -> None:
    with pytest.raises(FormatError, match="must be a string"):
        Checkpoint.parse(TEXT.encode())  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((ORIGIN, -1, ROOT), "tree size"),
        ((ORIGIN, 2**63, ROOT), "tree size"),
        ((ORIGIN, True, ROOT), "tree size must be an int"),
        ((ORIGIN, 5, ROOT[:31]), "32 bytes"),
        ((ORIGIN, 5, ROOT_B64), "32 bytes"),
        ((ORIGIN, 5, ROOT, ("",)), "empty line"),
        ((ORIGIN, 5, ROOT, ("a\nb",)), "U\\+000A"),
        ((ORIGIN, 5, ROOT, "ext"), "not a string"),
        ((ORIGIN, 5, ROOT, ("x" * MAX_CHECKPOINT_BYTES,)), "exceeds"),
        (("", 5, ROOT), "origin: must not be empty"),
    ],
)
def test_constructor_rejects(args: tuple[object, ...], message: str) -> None:
    with pytest.raises(FormatError, match=message):
        Checkpoint(*args)  # type: ignore[arg-type]


def test_validate_origin() -> None:
    for good in ("example.org", "example.org/cleanfeed/main", "a", "o" * MAX_ORIGIN_LENGTH, "~!"):
        validate_origin(good)
    for bad in ("", " ", "a b", "a+b", "a\tb", "é", "o" * (MAX_ORIGIN_LENGTH + 1), "a\x7f"):
        with pytest.raises(FormatError):
            validate_origin(bad)
    with pytest.raises(FormatError, match="keyring origin: must be a string"):
        validate_origin(b"example.org", what="keyring origin")  # type: ignore[arg-type]
