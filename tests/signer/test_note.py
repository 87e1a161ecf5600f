"""Signed notes (c2sp.org/signed-note) and timestamped cosignatures (c2sp.org/tlog-cosignature).

Signature lines are cross-checked against a naive construction written here
from the specs with hashlib and PyNaCl directly, and against the vector
published in the golang.org/x/mod/sumdb/note documentation.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator

import nacl.signing
import pytest
from hypothesis import given
from hypothesis import strategies as st

from blocklist.errors import FormatError
from signer.errors import BadSignature, MalformedNote, NoteError, UnknownKey
from signer.keys import SecretKey
from signer.note import (
    MAX_NOTE_BYTES,
    MAX_SIGNATURES,
    CosignatureVerifier,
    NoteSignature,
    Verifier,
    cosignature_message,
    cosigner_key_id,
    ed25519_key_id,
    parse_note,
    sign_note,
    verify_cosignature,
    verify_note,
)

# The example of the golang.org/x/mod/sumdb/note package documentation.
GO_SKEY_SEED = base64.b64decode("AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz")[1:]
GO_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_TEXT = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
)
GO_NOTE = (
    GO_TEXT + "\n"
    "— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSN"
    "XgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
)

CHECKPOINT_TEXT = (
    "example.org/cleanfeed/main\n3\n" + base64.b64encode(bytes(range(32))).decode() + "\n"
)


def key(n: int, name: str = "example.org/log") -> SecretKey:
    return SecretKey.from_seed(name, hashlib.sha256(b"seed %d" % n).digest())


ONLINE = key(1)
OTHER = key(2, "example.com/other")
STRANGER = key(3, "example.net/stranger")


def naive_line(name: str, sig_type: int, seed: bytes, message: bytes, prefix: bytes = b"") -> str:
    """A signature line built from the specs with hashlib and PyNaCl only."""
    sk = nacl.signing.SigningKey(seed)
    pk = bytes(sk.verify_key)
    kid = hashlib.sha256(name.encode() + b"\n" + bytes([sig_type]) + pk).digest()[:4]
    sig = sk.sign(message).signature
    return f"— {name} {base64.b64encode(kid + prefix + sig).decode()}\n"


# --------------------------------------------------------------------------
# Known answers and the independent construction
# --------------------------------------------------------------------------


def test_go_documentation_vector() -> None:
    k = SecretKey.from_seed("PeterNeumann", GO_SKEY_SEED)
    assert k.vkey == GO_VKEY
    assert sign_note(GO_TEXT, [k]) == GO_NOTE
    verified = verify_note(GO_NOTE, [Verifier.from_vkey(GO_VKEY)])
    assert verified.text == GO_TEXT
    assert [v.vkey for v in verified.verifiers] == [GO_VKEY]


def test_plain_signature_matches_naive_construction() -> None:
    seed = hashlib.sha256(b"seed 1").digest()
    expected = (
        CHECKPOINT_TEXT + "\n" + naive_line("example.org/log", 0x01, seed, CHECKPOINT_TEXT.encode())
    )
    assert sign_note(CHECKPOINT_TEXT, [ONLINE]) == expected


def test_checkpoint_cosignature_matches_naive_construction() -> None:
    seed = hashlib.sha256(b"seed 1").digest()
    ts = 1_700_000_000
    message = f"cosignature/v1\ntime {ts}\n".encode() + CHECKPOINT_TEXT.encode()
    expected = (
        CHECKPOINT_TEXT
        + "\n"
        + naive_line("example.org/log", 0x01, seed, CHECKPOINT_TEXT.encode())
        + naive_line("example.org/log", 0x04, seed, message, prefix=ts.to_bytes(8, "big"))
    )
    note = sign_note(CHECKPOINT_TEXT, [ONLINE], cosigners=[ONLINE], timestamp=ts)
    assert note == expected
    # 76 bytes before base64 (DESIGN.md item 4).
    assert len(base64.b64decode(note.splitlines()[-1].split(" ")[2])) == 76
    assert verify_note(note, [ONLINE.verifier]).text == CHECKPOINT_TEXT
    assert verify_cosignature(note, ONLINE.verifier) == ts
    assert verify_cosignature(note, ONLINE.cosignature_verifier) == ts
    assert cosignature_message(CHECKPOINT_TEXT, ts) == message


def test_key_ids_follow_the_spec_formula() -> None:
    pk = ONLINE.public_key
    assert (
        ed25519_key_id("example.org/log", pk)
        == hashlib.sha256(b"example.org/log\n\x01" + pk).digest()[:4]
    )
    assert (
        cosigner_key_id("example.org/log", pk)
        == hashlib.sha256(b"example.org/log\n\x04" + pk).digest()[:4]
    )
    assert ONLINE.verifier.key_id == ONLINE.key_id
    assert ONLINE.verifier.cosigner.key_id == ONLINE.cosigner_key_id


def test_cosignature_uses_current_time_by_default() -> None:
    import time

    before = int(time.time())
    ts = verify_cosignature(sign_note(CHECKPOINT_TEXT, [], cosigners=[ONLINE]), ONLINE.verifier)
    assert before <= ts <= int(time.time())


# --------------------------------------------------------------------------
# vkeys
# --------------------------------------------------------------------------


def test_vkey_round_trips() -> None:
    v = Verifier.from_vkey(ONLINE.vkey)
    assert (v.name, v.key_id, v.public_key) == (ONLINE.name, ONLINE.key_id, ONLINE.public_key)
    assert v.vkey == ONLINE.vkey
    c = CosignatureVerifier.from_vkey(ONLINE.cosignature_verifier.vkey)
    assert c == ONLINE.cosignature_verifier
    assert c.vkey.split("+")[1] == ONLINE.cosigner_key_id.hex()


@pytest.mark.parametrize(
    "vkey",
    [
        "",
        GO_VKEY.replace("c74f20a3", "C74F20A3"),
        GO_VKEY.replace("c74f20a3", "c74f20a4"),
        GO_VKEY.replace("PeterNeumann", "Peter Neumann"),
        GO_VKEY.replace("PeterNeumann", "Peter+Neumann"),
        GO_VKEY[:-1],
        GO_VKEY + "=",
        "PeterNeumann+c74f20a3",
    ],
)
def test_bad_vkeys_rejected(vkey: str) -> None:
    with pytest.raises(FormatError):
        Verifier.from_vkey(vkey)


def test_vkey_types_are_not_interchangeable() -> None:
    with pytest.raises(FormatError):
        Verifier.from_vkey(ONLINE.cosignature_verifier.vkey)
    with pytest.raises(FormatError):
        CosignatureVerifier.from_vkey(ONLINE.vkey)
    with pytest.raises(FormatError):
        Verifier("example.org/log", ONLINE.cosigner_key_id, ONLINE.public_key)


# --------------------------------------------------------------------------
# Parsing
# --------------------------------------------------------------------------


def _line(name: str, raw: bytes) -> str:
    return f"— {name} {base64.b64encode(raw).decode()}\n"


GOOD_LINE = _line("example.com/k", b"\x01\x02\x03\x04" + b"\x00" * 64)


@pytest.mark.parametrize(
    ("why", "note"),
    [
        ("no blank line", "text\n" + GOOD_LINE),
        ("no signature", "text\n\n"),
        ("signature without newline", "text\n\n" + GOOD_LINE[:-1]),
        ("no newline at all", "text"),
        ("hyphen instead of em dash", "text\n\n" + GOOD_LINE.replace("—", "-")),
        ("en dash", "text\n\n" + GOOD_LINE.replace("—", "–")),
        ("no space after dash", "text\n\n" + GOOD_LINE.replace("— ", "—")),
        ("empty name", "text\n\n" + _line("", b"\x01" * 70)),
        ("name with plus", "text\n\n" + _line("a+b", b"\x01" * 70)),
        ("name with NBSP", "text\n\n" + _line("a\u00a0b", b"\x01" * 70)),
        ("no signature field", "text\n\n— example.com/k\n"),
        ("empty signature", "text\n\n— example.com/k \n"),
        ("four-byte signature", "text\n\n" + _line("example.com/k", b"\x01" * 4)),
        ("unpadded base64", "text\n\n" + GOOD_LINE.replace("=\n", "\n")),
        ("stray padding bits", "text\n\n— example.com/k AAAAAAB=\n"),
        ("url-safe base64", "text\n\n— example.com/k ____AA==\n"),
        ("carriage return", "text\r\n\n" + GOOD_LINE),
        ("tab in text", "te\txt\n\n" + GOOD_LINE),
        ("NUL in text", "te\x00xt\n\n" + GOOD_LINE),
        ("escape in signature", "text\n\n" + GOOD_LINE.replace("\n", "\x1b\n")),
        ("lone surrogate", "te\ud800xt\n\n" + GOOD_LINE),
        ("too many signatures", "text\n\n" + GOOD_LINE * (MAX_SIGNATURES + 1)),
        ("oversize", "x" * MAX_NOTE_BYTES + "\n\n" + GOOD_LINE),
    ],
)
def test_malformed_notes_rejected(why: str, note: str) -> None:
    with pytest.raises(MalformedNote):
        parse_note(note)
    with pytest.raises(MalformedNote):
        verify_note(note, [ONLINE.verifier])


@pytest.mark.parametrize("raw", [b"\xff", b"text\xc3\n\n", b"\xed\xa0\x80\n\n", b"\xc0\xaf\n\n"])
def test_invalid_utf8_rejected(raw: bytes) -> None:
    with pytest.raises(MalformedNote):
        parse_note(raw + GOOD_LINE.encode())


def test_parse_splits_at_the_last_blank_line() -> None:
    text = "a\n\n— example.com/k not a signature\n\nb\n"
    note = sign_note(text, [ONLINE])
    parsed = parse_note(note)
    assert parsed.text == text
    assert [s.name for s in parsed.signatures] == [ONLINE.name]
    assert verify_note(note.encode(), [ONLINE.verifier]).text == text


def test_signature_limit_is_inclusive() -> None:
    note = sign_note(CHECKPOINT_TEXT, [ONLINE])
    filler = _line("example.com/k", b"\x01\x02\x03\x04" + b"\x00" * 64)
    ok = note + filler * (MAX_SIGNATURES - 1)
    assert len(parse_note(ok).signatures) == MAX_SIGNATURES
    assert verify_note(ok, [ONLINE.verifier]).text == CHECKPOINT_TEXT
    with pytest.raises(MalformedNote):
        parse_note(ok + filler)


# --------------------------------------------------------------------------
# Verification rules (c2sp.org/signed-note, "Signatures")
# --------------------------------------------------------------------------


def test_only_unknown_keys_is_unknown_key() -> None:
    note = sign_note(CHECKPOINT_TEXT, [STRANGER])
    with pytest.raises(UnknownKey):
        verify_note(note, [ONLINE.verifier])
    with pytest.raises(UnknownKey):
        verify_note(note, [])


def test_unknown_signatures_are_ignored_and_verifiers_reported_once() -> None:
    note = sign_note(CHECKPOINT_TEXT, [STRANGER, ONLINE, OTHER])
    verified = verify_note(note, [OTHER.verifier, ONLINE.verifier])
    assert verified.text == CHECKPOINT_TEXT
    assert verified.verifiers == (ONLINE.verifier, OTHER.verifier)


def test_bad_signature_by_a_known_key_rejects_the_whole_note() -> None:
    good = sign_note(CHECKPOINT_TEXT, [ONLINE])
    forged = _line(OTHER.name, OTHER.key_id + b"\x00" * 64)
    with pytest.raises(BadSignature):
        verify_note(good + forged, [ONLINE.verifier, OTHER.verifier])
    # The same line is ignored by a verifier that does not know OTHER.
    assert verify_note(good + forged, [ONLINE.verifier]).text == CHECKPOINT_TEXT
    # A wrong-length signature by a known key is a bad signature, not a parse error.
    short = _line(OTHER.name, OTHER.key_id + b"\x00" * 63)
    with pytest.raises(BadSignature):
        verify_note(good + short, [ONLINE.verifier, OTHER.verifier])


def test_name_and_key_id_must_both_match() -> None:
    sig = ONLINE.sign(CHECKPOINT_TEXT.encode())
    renamed = CHECKPOINT_TEXT + "\n" + _line("example.org/renamed", ONLINE.key_id + sig)
    with pytest.raises(UnknownKey):
        verify_note(renamed, [ONLINE.verifier])
    wrong_id = CHECKPOINT_TEXT + "\n" + _line(ONLINE.name, OTHER.key_id + sig)
    with pytest.raises(UnknownKey):
        verify_note(wrong_id, [ONLINE.verifier])


def test_identical_repeated_lines_are_dropped_like_go() -> None:
    note = sign_note(CHECKPOINT_TEXT, [ONLINE])
    repeated = note + note.split("\n\n", 1)[1]
    verified = verify_note(repeated, [ONLINE.verifier])
    assert verified.verifiers == (ONLINE.verifier,)
    # Unlike Go, a second, different line by the same key is verified too.
    bad_repeat = note + _line(ONLINE.name, ONLINE.key_id + b"\x01" * 64)
    with pytest.raises(BadSignature):
        verify_note(bad_repeat, [ONLINE.verifier])


def test_ambiguous_verifiers_refused() -> None:
    # Two public keys under one name whose 4-byte key IDs collide: a birthday
    # search over about 2^16 keys finds one quickly.
    seen: dict[bytes, bytes] = {}
    for i in range(1_000_000):
        pk = hashlib.sha256(b"pk %d" % i).digest()
        kid = ed25519_key_id("example.com/k", pk)
        if kid in seen:
            first, second = seen[kid], pk
            break
        seen[kid] = pk
    else:  # pragma: no cover - probability about e^-116
        pytest.fail("no key ID collision found")
    a = Verifier.from_public_key("example.com/k", first)
    b = Verifier.from_public_key("example.com/k", second)
    with pytest.raises(NoteError, match="share name"):
        verify_note(sign_note(CHECKPOINT_TEXT, [ONLINE]), [a, b])


# --------------------------------------------------------------------------
# Cosignatures
# --------------------------------------------------------------------------


def test_cosignature_errors() -> None:
    plain = sign_note(CHECKPOINT_TEXT, [ONLINE])
    with pytest.raises(UnknownKey):
        verify_cosignature(plain, ONLINE.verifier)
    cos = sign_note(CHECKPOINT_TEXT, [ONLINE], cosigners=[ONLINE], timestamp=5)
    with pytest.raises(UnknownKey):
        verify_cosignature(cos, OTHER.verifier)
    # A cosignature over another timestamp than the one it carries.
    forged_ts = base64.b64encode(
        ONLINE.cosigner_key_id
        + (6).to_bytes(8, "big")
        + ONLINE.sign(cosignature_message(CHECKPOINT_TEXT, 5))
    ).decode()
    with pytest.raises(BadSignature):
        verify_cosignature(plain + f"— {ONLINE.name} {forged_ts}\n", ONLINE.verifier)
    # A timestamp above 2^63 - 1 is invalid even when the signature covers it.
    huge = 2**63
    msg = f"cosignature/v1\ntime {huge}\n".encode() + CHECKPOINT_TEXT.encode()
    raw = ONLINE.cosigner_key_id + huge.to_bytes(8, "big") + ONLINE.sign(msg)
    with pytest.raises(BadSignature):
        verify_cosignature(plain + _line(ONLINE.name, raw), ONLINE.verifier)
    with pytest.raises(ValueError, match="timestamp"):
        sign_note(CHECKPOINT_TEXT, [], cosigners=[ONLINE], timestamp=huge)


def test_two_cosignatures_with_different_times_are_ambiguous() -> None:
    a = sign_note(CHECKPOINT_TEXT, [ONLINE], cosigners=[ONLINE], timestamp=100)
    b = sign_note(CHECKPOINT_TEXT, [], cosigners=[ONLINE], timestamp=200)
    with pytest.raises(MalformedNote):
        verify_cosignature(a + b.split("\n\n", 1)[1], ONLINE.verifier)


def test_cosignature_is_not_replayable_as_a_plain_signature() -> None:
    # The Ed25519 signature inside a 0x04 line is a valid plain signature of
    # the cosigned message; a note built from it must still be refused.
    ts = 1_700_000_000
    cos = sign_note(CHECKPOINT_TEXT, [], cosigners=[ONLINE], timestamp=ts)
    raw = base64.b64decode(cos.split("\n\n", 1)[1].split(" ")[2])
    sig = raw[12:]
    message = cosignature_message(CHECKPOINT_TEXT, ts)
    assert ONLINE.verifier.verify(message, sig)
    replay = message.decode() + "\n" + _line(ONLINE.name, ONLINE.key_id + sig)
    with pytest.raises(MalformedNote, match="cosignature"):
        verify_note(replay, [ONLINE.verifier])
    with pytest.raises(MalformedNote, match="cosignature"):
        sign_note(message.decode(), [ONLINE])


# --------------------------------------------------------------------------
# Signing
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text", ["", "no newline", "a\r\n", "tab\there\n", "cosignature/v1\ntime 1\nx\n"]
)
def test_unsignable_texts_refused(text: str) -> None:
    with pytest.raises(MalformedNote):
        sign_note(text, [ONLINE])


def test_signing_refusals() -> None:
    with pytest.raises(MalformedNote):
        sign_note(CHECKPOINT_TEXT, [])
    with pytest.raises(MalformedNote):
        sign_note(CHECKPOINT_TEXT, [ONLINE, key(1)])
    with pytest.raises(MalformedNote):
        sign_note("x" * MAX_NOTE_BYTES + "\n", [ONLINE])


def test_existing_signatures_are_kept_or_replaced() -> None:
    first = parse_note(sign_note(CHECKPOINT_TEXT, [OTHER]))
    both = sign_note(CHECKPOINT_TEXT, [ONLINE], existing=first.signatures)
    assert both == sign_note(CHECKPOINT_TEXT, [OTHER, ONLINE])
    stale = NoteSignature(ONLINE.name, ONLINE.key_id, b"\x00" * 64)
    resigned = sign_note(CHECKPOINT_TEXT, [ONLINE], existing=[stale])
    assert resigned == sign_note(CHECKPOINT_TEXT, [ONLINE])


# Lines of any Unicode text, plus blank lines and lines that look like
# signature lines: the text must survive whatever it contains.
note_texts = st.lists(
    st.text(st.characters(codec="utf-8", exclude_categories=("Cc", "Cs")), max_size=30)
    | st.just("")
    | st.just(GOOD_LINE[:-1]),
    min_size=1,
    max_size=6,
).map(lambda lines: "\n".join(lines) + "\n")


@given(text=note_texts.filter(lambda t: not t.startswith("cosignature/")))
def test_sign_verify_round_trip(text: str) -> None:
    note = sign_note(text, [OTHER, ONLINE], cosigners=[ONLINE], timestamp=42)
    verified = verify_note(note, [ONLINE.verifier])
    assert verified.text == text
    assert verified.verifiers == (ONLINE.verifier,)
    assert verify_cosignature(note, ONLINE.verifier) == 42
    assert parse_note(note).text == text


# --------------------------------------------------------------------------
# Mutation loops: every mutation is rejected or verifies to the same text
# --------------------------------------------------------------------------


def _flips(data: bytes) -> Iterator[tuple[int, bytes]]:
    for i in range(len(data)):
        for bit in range(8):
            mutated = bytearray(data)
            mutated[i] ^= 1 << bit
            yield i, bytes(mutated)


def _outcome(data: bytes, verifiers: list[Verifier]) -> str | None:
    try:
        return verify_note(data, verifiers).text
    except NoteError:
        return None


def test_every_bit_flip_is_rejected_or_harmless() -> None:
    text = "example.org/cleanfeed/main\n7\nc29tZQ==\n"
    unknown_line = sign_note(text, [STRANGER]).split("\n\n", 1)[1]
    note = (sign_note(text, [ONLINE]) + unknown_line).encode()
    known_end = note.index(unknown_line.encode())
    accepted_in_unknown = 0
    for i, mutated in _flips(note):
        result = _outcome(mutated, [ONLINE.verifier])
        assert result is None or result == text, (i, mutated)
        if i < known_end:
            # Text, separator and the trusted line: every flip must be caught.
            assert result is None, (i, mutated)
        elif result is not None:
            accepted_in_unknown += 1
    # Some flips of the ignored line keep it well formed and are ignored.
    assert accepted_in_unknown > 0


def test_every_truncation_is_rejected_or_harmless() -> None:
    note = sign_note(CHECKPOINT_TEXT, [ONLINE, OTHER], cosigners=[ONLINE], timestamp=9).encode()
    after_first_line = note.index(b"\n", len(CHECKPOINT_TEXT) + 1) + 1
    for n in range(len(note)):
        result = _outcome(note[:n], [ONLINE.verifier])
        # Only cutting after a whole signature line leaves a valid note, and
        # only once the trusted line is complete.
        if n >= after_first_line and note[n - 1 : n] == b"\n":
            assert result == CHECKPOINT_TEXT, n
        else:
            assert result is None, n
    # Cutting off the cosignature line removes the freshness statement.
    two_lines = note[: note.rindex(b"\n", 0, len(note) - 1) + 1]
    assert _outcome(two_lines, [ONLINE.verifier]) == CHECKPOINT_TEXT
    with pytest.raises(UnknownKey):
        verify_cosignature(two_lines, ONLINE.verifier)


@pytest.mark.parametrize(
    "suffix",
    # Fixed bytes (not os.urandom) so parallel workers collect the same tests.
    [b"x", b"\n", b" ", b"\x00", b"\xff", "— ".encode(), b"\n\n", hashlib.sha256(b"g").digest()],
)
def test_appended_garbage_is_rejected(suffix: bytes) -> None:
    note = sign_note(CHECKPOINT_TEXT, [ONLINE]).encode()
    assert _outcome(note + suffix, [ONLINE.verifier]) is None


def test_appended_unknown_line_is_ignored_and_forged_known_line_rejected() -> None:
    note = sign_note(CHECKPOINT_TEXT, [ONLINE])
    extra = _line("example.net/extra", b"\x09" * 68)
    assert _outcome((note + extra).encode(), [ONLINE.verifier]) == CHECKPOINT_TEXT
    forged = _line(ONLINE.name, ONLINE.key_id + b"\x09" * 64)
    assert _outcome((note + forged).encode(), [ONLINE.verifier]) is None


def test_every_bit_flip_of_a_cosigned_checkpoint() -> None:
    ts = 1_700_000_000
    note = sign_note(CHECKPOINT_TEXT, [ONLINE], cosigners=[ONLINE], timestamp=ts).encode()
    cos_start = note.rindex("— ".encode())
    for i, mutated in _flips(note):
        try:
            got = verify_cosignature(mutated, ONLINE.verifier)
        except NoteError:
            continue
        # Accepted: the text and the cosignature line were untouched (the
        # flip hit the plain line, which verify_note checks separately).
        assert len(CHECKPOINT_TEXT) < i < cos_start, i
        assert got == ts
        assert parse_note(mutated).text == CHECKPOINT_TEXT
