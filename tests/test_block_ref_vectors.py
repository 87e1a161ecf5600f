"""The block reference vectors hold under an independent reading of the spec.

Nothing here calls :mod:`blocklist.blockref`: each reference is rebuilt
from DESIGN.md / docs/protocol.md section 2.5 with hashlib and the standard
library's RFC 4648 base32, and the check character is found the other way
round from the generator: by trying all 32 characters and keeping the one
whose Luhn mod 32 validation sum (check character weighted 1, then
alternately 2, from the right) is a multiple of 32. A vector that drifted
from the specification fails here even if the code drifted with it.
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import pytest

VECTORS = json.loads((Path(__file__).parent / "vectors" / "block_ref.json").read_text("utf-8"))
ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"  # RFC 4648 section 6, Table 3


def _validation_sum(chars: str) -> int:
    # Luhn mod N, validation: walk from the right; the rightmost character
    # (the check character) keeps its code point, the next one is doubled
    # and its base-N digits added (2c >= N gives 1 + (2c - N)), and so on.
    total = 0
    for i, c in enumerate(reversed(chars)):
        cp = ALPHABET.index(c)
        if i % 2:
            cp *= 2
            cp = cp - 32 + 1 if cp >= 32 else cp
        total += cp
    return total


def _expected_ref(digest: bytes) -> str:
    body = base64.b32encode(digest[:10]).decode()
    assert len(body) == 16
    assert "=" not in body
    checks = [c for c in ALPHABET if _validation_sum(body + c) % 32 == 0]
    assert len(checks) == 1  # exactly one character completes a valid sum
    groups = "-".join(body[i : i + 4] for i in range(0, 16, 4))
    return f"CF1-{groups}-{checks[0]}"


def test_alphabet_is_rfc4648_base32() -> None:
    assert VECTORS["alphabet"] == ALPHABET
    # RFC 4648 section 10's test vector: the stdlib encoder is the RFC's.
    assert base64.b32encode(b"foobar") == b"MZXW6YTBOI======"


@pytest.mark.parametrize("item", VECTORS["references"], ids=lambda i: i["block_ref"])
def test_reference_recomputed_from_the_spec(item: dict[str, str]) -> None:
    digest = bytes.fromhex(item["sha256"])
    if "expression" in item:
        assert hashlib.sha256(item["expression"].encode()).digest() == digest
    assert item["first_10_bytes"] == digest[:10].hex()
    assert item["base32"] == base64.b32encode(digest[:10]).decode()
    assert item["block_ref"] == _expected_ref(digest)
    assert len(item["block_ref"]) == 25


def test_accepted_spellings_name_the_reference() -> None:
    for item in VECTORS["accepted"]:
        compact = "".join(c for c in item["text"].upper() if c in ALPHABET or c.isdigit())
        assert compact == item["block_ref"].replace("-", "")
        assert base64.b32decode(compact[3:19]).hex() == item["first_10_bytes"]


def test_rejected_texts_fail_the_spec_for_the_stated_reason() -> None:
    for item in VECTORS["rejected"]:
        text = item["text"]
        if item["code"] == "block_ref_mistyped":
            body = text.replace("-", "")[3:]
            assert text.startswith("CF1-")
            assert len(body) == 17
            assert all(c in ALPHABET for c in body)
            assert _validation_sum(body) % 32 != 0, text
        else:
            assert item["code"] == "invalid_block_ref"
            body = text.replace("-", "")
            assert (
                not body.startswith("CF1")
                or len(body) != 20
                or any(c not in ALPHABET for c in body[3:])
            ), text
