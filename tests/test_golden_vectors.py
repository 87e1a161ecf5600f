"""The golden vectors verify under an independent reading of the specs.

Nothing here calls the project's signing or parsing code: key IDs, signed
notes (C2SP signed-note, tlog-cosignature), Merkle hashing (RFC 9162) and the
LtHash16 digest are recomputed from the spec text with hashlib and PyNaCl's
VerifyKey, so a vector that drifted from the specification fails here even
if the project's code drifted with it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import struct
from pathlib import Path

import nacl.exceptions
import nacl.signing
import pytest

VECTORS = json.loads((Path(__file__).parent / "vectors" / "golden.json").read_text("utf-8"))


def _vkey(vkey: str) -> tuple[str, bytes, bytes]:
    name, key_id_hex, key_b64 = vkey.split("+", 2)  # names never contain "+"
    raw = base64.b64decode(key_b64)
    assert raw[0] == 0x01
    return name, bytes.fromhex(key_id_hex), raw[1:]


def _key_id(name: str, kind: int, pub: bytes) -> bytes:
    return hashlib.sha256(name.encode() + b"\n" + bytes([kind]) + pub).digest()[:4]


def _signatures(note: str) -> tuple[str, list[tuple[str, bytes]]]:
    text, _, sigs = note.rpartition("\n\n")
    text += "\n"
    out = []
    for line in sigs.splitlines():
        assert line.startswith("\u2014 ")
        name, b64 = line[2:].split(" ")
        out.append((name, base64.b64decode(b64)))
    return text, out


def _verify_plain(note: str, vkey: str) -> str:
    name, key_id, pub = _vkey(vkey)
    assert _key_id(name, 0x01, pub) == key_id
    text, sigs = _signatures(note)
    matching = [s for n, s in sigs if n == name and s[:4] == key_id]
    assert len(matching) == 1
    nacl.signing.VerifyKey(pub).verify(text.encode(), matching[0][4:])
    return text


def _verify_timestamped(note: str, vkey: str) -> int:
    name, _, pub = _vkey(vkey)
    text, sigs = _signatures(note)
    cosign_id = _key_id(name, 0x04, pub)
    matching = [s for n, s in sigs if n == name and s[:4] == cosign_id]
    assert len(matching) == 1
    sig = matching[0]
    assert len(sig) == 76
    (ts,) = struct.unpack(">Q", sig[4:12])
    message = f"cosignature/v1\ntime {ts}\n".encode() + text.encode()
    nacl.signing.VerifyKey(pub).verify(message, sig[12:])
    return int(ts)


def _mth(leaves: list[bytes]) -> bytes:
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return hashlib.sha256(b"\x00" + leaves[0]).digest()
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return hashlib.sha256(b"\x01" + _mth(leaves[:k]) + _mth(leaves[k:])).digest()


def _lthash(hashes: list[bytes]) -> bytes:
    lanes = [0] * 1024
    for h in hashes:
        expanded = struct.unpack("<1024H", hashlib.shake_128(h).digest(2048))
        lanes = [(a + b) & 0xFFFF for a, b in zip(lanes, expanded, strict=True)]
    return hashlib.sha256(struct.pack("<1024H", *lanes)).digest()


def test_keyring_signed_by_root() -> None:
    text = _verify_plain(VECTORS["keyring"]["note"], VECTORS["keys"]["root"]["vkey"])
    assert text == VECTORS["keyring"]["text"]
    assert f"key {VECTORS['keys']['online']['vkey']} 1 -\n" in text


def test_statements_signed_chained_and_digested() -> None:
    online = VECTORS["keys"]["online"]["vkey"]
    previous = bytes(32)
    present: set[bytes] = set()
    for number, st in enumerate(VECTORS["statements"], start=1):
        text = _verify_plain(st["note"], online)
        assert text == st["text"]
        fields = dict(line.split(" ", 1) for line in text.splitlines()[1:9])
        assert int(fields["version"]) == number
        assert base64.b64decode(fields["previous"]) == previous
        for line in text.splitlines()[9:]:
            op, value = line.split(" ")
            h = base64.b64decode(value)
            if op == "add":
                assert h not in present
                present.add(h)
            else:
                assert op == "remove"
                assert h in present
                present.remove(h)
        assert base64.b64decode(fields["state"]) == _lthash(sorted(present))
        assert int(fields["count"]) == len(present)
        previous = hashlib.sha256(text.encode()).digest()
        assert base64.b64decode(st["text_hash"]) == previous


def test_checkpoints_root_and_both_signatures() -> None:
    online = VECTORS["keys"]["online"]["vkey"]
    leaves = [st["text"].encode() for st in VECTORS["statements"]]
    for key, size in (("size_0", 0), ("latest", len(leaves))):
        cp = VECTORS["checkpoints"][key]
        text = _verify_plain(cp["note"], online)
        assert _verify_timestamped(cp["note"], online) == cp["timestamp"]
        origin, n, root = text.splitlines()
        assert origin == VECTORS["keys"]["online"]["name"]
        assert int(n) == size
        assert base64.b64decode(root) == _mth(leaves[:size])


@pytest.mark.parametrize("bit", [0, 7, 100])
def test_flipped_statement_signature_fails(bit: int) -> None:
    note = VECTORS["statements"][0]["note"]
    _, sigs = _signatures(note)
    _name, _, pub = _vkey(VECTORS["keys"]["online"]["vkey"])
    sig = bytearray(sigs[0][1][4:])
    sig[bit // 8] ^= 1 << (bit % 8)
    with pytest.raises(nacl.exceptions.BadSignatureError):
        nacl.signing.VerifyKey(pub).verify(VECTORS["statements"][0]["text"].encode(), bytes(sig))


def test_proofs_match_rfc9162_definitions() -> None:
    leaves = [st["text"].encode() for st in VECTORS["statements"]]
    proofs = VECTORS["proofs"]
    assert base64.b64decode(proofs["root"]) == _mth(leaves)
    for case in proofs["consistency"]:
        assert base64.b64decode(case["root_from"]) == _mth(leaves[: case["from"]])
    for case in proofs["range"]:
        # the compact range = roots of the maximal perfect subtrees, left to right
        n, start, expected = case["size"], 0, []
        for bit in reversed(range(n.bit_length())):
            if n & (1 << bit):
                expected.append(_mth(leaves[start : start + (1 << bit)]))
                start += 1 << bit
        assert [base64.b64decode(h) for h in case["hashes"]] == expected
    for case in proofs["inclusion"]:
        # recompute the root from the leaf and its audit path (RFC 9162 2.1.3.2)
        fn, sn = case["leaf_index"], case["tree_size"] - 1
        r = hashlib.sha256(b"\x00" + leaves[fn]).digest()
        for p in (base64.b64decode(h) for h in case["hashes"]):
            if fn & 1 or fn == sn:
                r = hashlib.sha256(b"\x01" + p + r).digest()
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
            else:
                r = hashlib.sha256(b"\x01" + r + p).digest()
            fn >>= 1
            sn >>= 1
        assert sn == 0
        assert r == _mth(leaves)


def test_expression_hashes() -> None:
    for case in VECTORS["expressions"]:
        digest = hashlib.sha256(case["expression"].encode()).digest()
        assert digest.hex() == case["sha256"]
        assert base64.b64encode(digest).decode() == case["base64"]


def test_state_digest_vectors() -> None:
    sd = VECTORS["state_digest"]
    assert bytes.fromhex(sd["empty"]) == hashlib.sha256(bytes(2048)).digest()
    assert bytes.fromhex(sd["single"]["digest"]) == _lthash([bytes.fromhex(sd["single"]["hash"])])


def test_audit_chain() -> None:
    head = bytes(32)
    for record in VECTORS["audit_log"]:
        head = hashlib.sha256(b"cleanfeed-audit/v1\n" + head + record["json"].encode()).digest()
        assert base64.b64encode(head).decode() == record["hash"]
    audit_line = VECTORS["statements"][0]["text"].split("\naudit ")[1].split("\n")[0]
    assert base64.b64decode(audit_line) == head
