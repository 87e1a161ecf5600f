"""Interoperability with Go's golang.org/x/mod/sumdb/note and sumdb/tlog.

An independent implementation must be able to check every plain signature
the service makes (DESIGN.md, "Versions, the log and what is signed"). The
Go program in ``tests/interop/go/verify.go`` is built here, offline, against
Debian's golang-golang-x-mod-dev sources, and fed notes signed by
:mod:`signer.note`: plain notes, checkpoints with their 0x01 and 0x04 lines,
keyrings signed by several roots. It also recomputes the Merkle tree of
:mod:`blocklist.merkle` with ``tlog`` and checks our proofs with
``tlog.CheckRecord`` / ``tlog.CheckTree``.

Run: ``.venv/bin/pytest -m tools tests/interop/test_go_note.py``. Needs ``go``
and ``/usr/share/gocode/src/golang.org/x/mod`` (apt-get install golang-go
golang-golang-x-mod-dev); skipped without them, except under ``CI=true``
where their absence fails the test.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from blocklist.checkpoint import Checkpoint
from blocklist.keyring import KeyRange, Keyring
from blocklist.merkle import (
    MemoryHashStore,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    stored_hash_count,
    tree_root,
)
from signer.errors import NoteError
from signer.keyring import sign_keyring, verify_keyring_update
from signer.keys import SecretKey
from signer.note import sign_note, verify_cosignature, verify_note

pytestmark = pytest.mark.tools

GO_SOURCE = Path(__file__).parent / "go" / "verify.go"
GOPATH = Path("/usr/share/gocode")
XMOD = GOPATH / "src" / "golang.org" / "x" / "mod" / "sumdb"


def _unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true: the Go interop test must run)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def go_verify(tmp_path_factory: pytest.TempPathFactory) -> Path:
    go = shutil.which("go") or (
        "/usr/lib/go/bin/go" if Path("/usr/lib/go/bin/go").exists() else None
    )
    if go is None:
        _unavailable("the go toolchain is not installed (apt-get install golang-go)")
    if not (XMOD / "note" / "note.go").exists() or not (XMOD / "tlog" / "tlog.go").exists():
        _unavailable(f"golang.org/x/mod sources missing under {XMOD} (golang-golang-x-mod-dev)")
    assert go is not None
    work = tmp_path_factory.mktemp("go")
    binary = work / "verify"
    env = {
        **os.environ,
        # GOPATH mode against Debian's source tree; nothing may be downloaded.
        "GOPATH": str(GOPATH),
        "GO111MODULE": "off",
        "GOPROXY": "off",
        "GOFLAGS": "",
        "GOTOOLCHAIN": "local",
        "GOCACHE": str(work / "cache"),
        "HOME": str(work),
        "CGO_ENABLED": "0",
    }
    build = subprocess.run(
        [go, "build", "-o", str(binary), str(GO_SOURCE)],
        cwd=GO_SOURCE.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert build.returncode == 0, f"go build failed:\n{build.stderr}"
    return binary


def run(binary: Path, request: dict[str, Any]) -> dict[str, Any]:
    proc = subprocess.run(
        [str(binary)], input=json.dumps(request), capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    answer: dict[str, Any] = json.loads(proc.stdout)
    return answer


def b64(data: bytes | str) -> str:
    return base64.b64encode(data.encode() if isinstance(data, str) else data).decode()


def key(label: str) -> SecretKey:
    return SecretKey.from_seed(f"example.org/{label}", hashlib.sha256(label.encode()).digest())


ONLINE = key("online")
ROOTS = [key(f"root-{i}") for i in range(3)]
STRANGER = key("stranger")

TEXTS = [
    "hello\n",
    "\n",
    "a\n\nb\n",
    "line with — em dash\n— example.com/k looks like a signature\n\nend\n",
    "ünïcödé ✓ 𝄞\n",
    "x" * 5000 + "\n",
]


def go_open(binary: Path, notes: list[bytes], vkeys: list[str]) -> list[dict[str, Any]]:
    answer = run(binary, {"mode": "open", "vkeys": vkeys, "notes_b64": [b64(n) for n in notes]})
    results: list[dict[str, Any]] = answer["results"]
    return results


def test_go_accepts_our_plain_notes(go_verify: Path) -> None:
    notes = [sign_note(t, [ONLINE, STRANGER]).encode() for t in TEXTS]
    for text, result in zip(TEXTS, go_open(go_verify, notes, [ONLINE.vkey]), strict=True):
        assert result["ok"], result
        assert result["text"] == text
        assert result["sigs"] == [{"name": ONLINE.name, "hash": ONLINE.key_id.hex()}]
        assert result["unverified"] == [{"name": STRANGER.name, "hash": STRANGER.key_id.hex()}]


def test_go_signs_byte_for_byte_like_us(go_verify: Path) -> None:
    seed = hashlib.sha256(b"online").digest()
    # Go's signer key encoding: PRIVATE+KEY+<name>+<key ID>+base64(0x01 || seed).
    encoded_seed = b64(bytes([1]) + seed)
    skey = f"PRIVATE+KEY+{ONLINE.name}+{ONLINE.key_id.hex()}+{encoded_seed}"
    for text in TEXTS:
        go_note = run(go_verify, {"mode": "sign", "skey": skey, "text": text})["note"]
        assert go_note == sign_note(text, [ONLINE])
        assert verify_note(go_note, [ONLINE.verifier]).text == text
    vkey = run(
        go_verify, {"mode": "vkey", "name": ONLINE.name, "public_key_b64": b64(ONLINE.public_key)}
    )["vkey"]
    assert vkey == ONLINE.vkey


def test_go_verifies_checkpoint_signature_and_cosignature(go_verify: Path) -> None:
    text = Checkpoint("example.org/cleanfeed/main", 12, bytes(range(32))).to_text()
    ts = 1_750_000_000
    note = sign_note(text, [ONLINE], cosigners=[ONLINE], timestamp=ts).encode()
    [plain] = go_open(go_verify, [note], [ONLINE.vkey])
    assert plain["ok"]
    assert plain["text"] == text
    # The 0x04 line is another key ID for Go's plain verifier: unverified.
    assert plain["unverified"] == [{"name": ONLINE.name, "hash": ONLINE.cosigner_key_id.hex()}]
    for vkey in (ONLINE.vkey, ONLINE.cosignature_verifier.vkey):
        [cos] = run(go_verify, {"mode": "cosig", "vkey": vkey, "notes_b64": [b64(note)]})["results"]
        assert cos == {"ok": True, "timestamp": ts, "text": text}
    assert verify_cosignature(note, ONLINE.verifier) == ts
    # A cosignature over another checkpoint is refused by Go as well.
    other = Checkpoint("example.org/cleanfeed/main", 13, bytes(range(32))).to_text()
    spliced = text.encode() + b"\n" + note.split(b"\n\n")[1].split(b"\n")[1] + b"\n"
    [bad] = run(go_verify, {"mode": "cosig", "vkey": ONLINE.vkey, "notes_b64": [b64(spliced)]})[
        "results"
    ]
    assert bad["ok"]
    assert bad["timestamp"] == ts
    forged = other.encode() + b"\n" + note.split(b"\n\n")[1].split(b"\n")[1] + b"\n"
    [bad] = run(go_verify, {"mode": "cosig", "vkey": ONLINE.vkey, "notes_b64": [b64(forged)]})[
        "results"
    ]
    assert not bad["ok"]
    with pytest.raises(NoteError):
        verify_cosignature(forged, ONLINE.verifier)


def test_go_verifies_keyrings_signed_by_several_roots(go_verify: Path) -> None:
    kr = Keyring.create(
        origin="example.org/cleanfeed/main",
        serial=1,
        expires=datetime(2031, 1, 1, tzinfo=UTC),
        threshold=2,
        roots=[r.vkey for r in ROOTS],
        keys=[KeyRange(ONLINE.vkey, 1, None)],
    )
    note = sign_keyring(kr, ROOTS[:2])
    now = datetime(2030, 1, 1, tzinfo=UTC)
    assert verify_keyring_update(note, held=None, pinned_roots=kr.roots, now=now) == kr
    [result] = go_open(go_verify, [note.encode()], [r.vkey for r in ROOTS])
    assert result["ok"]
    assert result["text"] == kr.to_text()
    assert sorted(s["hash"] for s in result["sigs"]) == sorted(r.key_id.hex() for r in ROOTS[:2])


def _flips(data: bytes) -> list[bytes]:
    out = []
    for i in range(len(data)):
        for bit in range(8):
            m = bytearray(data)
            m[i] ^= 1 << bit
            out.append(bytes(m))
    return out


def test_we_are_never_more_lenient_than_go(go_verify: Path) -> None:
    # Differential mutation loop: every bit flip and truncation of a small
    # checkpoint note. Whatever we accept, Go accepts with the same text; we
    # may reject more (canonical base64, control characters in names).
    text = "example.org/cleanfeed/main\n2\n" + b64(bytes(32)) + "\n"
    note = sign_note(text, [ONLINE, STRANGER], cosigners=[ONLINE], timestamp=7).encode()
    mutations = _flips(note) + [note[:n] for n in range(len(note))]
    results = go_open(go_verify, mutations, [ONLINE.vkey])
    stricter = 0
    for mutated, go in zip(mutations, results, strict=True):
        try:
            ours: str | None = verify_note(mutated, [ONLINE.verifier]).text
        except NoteError:
            ours = None
        if ours is not None:
            assert go["ok"], mutated
            assert go["text"] == ours == text, mutated
        elif go["ok"]:
            stricter += 1
            assert go["text"] == text  # even Go's extra acceptances keep the text
    assert stricter < len(mutations) // 10


def test_go_tlog_agrees_with_our_merkle_tree(go_verify: Path) -> None:
    leaves = [f"cleanfeed-version/v1\nversion {i + 1}\n".encode() for i in range(40)]
    store = MemoryHashStore()
    for leaf in leaves:
        store.append(leaf)
    n = len(leaves)
    inclusion = [
        {
            "index": i,
            "size": size,
            "proof_b64": [b64(h) for h in inclusion_proof(i, size, store)],
            "root_b64": b64(tree_root(size, store)),
            "leaf_hash_b64": b64(leaf_hash(leaves[i])),
        }
        for size in range(1, n + 1)
        for i in range(size)
    ]
    consistency = [
        {
            "from": m,
            "to": size,
            "proof_b64": [b64(h) for h in consistency_proof(m, size, store)],
            "old_root_b64": b64(tree_root(m, store)),
            "new_root_b64": b64(tree_root(size, store)),
        }
        for size in range(1, n + 1)
        for m in range(1, size + 1)
    ]
    answer = run(
        go_verify,
        {
            "mode": "tree",
            "leaves_b64": [b64(leaf) for leaf in leaves],
            "inclusion": inclusion,
            "consistency": consistency,
        },
    )
    # Same stored-hash layout (tlog's StoredHashIndex) and same roots.
    ours = store.read_hashes(list(range(stored_hash_count(n))))
    assert answer["stored_hashes_b64"] == [b64(h) for h in ours]
    assert answer["roots_b64"] == [b64(tree_root(s, store)) for s in range(1, n + 1)]
    # Our proofs pass tlog.CheckRecord / CheckTree and equal tlog's proofs.
    for ask, got in zip(inclusion, answer["inclusion"], strict=True):
        assert got["ok"], (ask["index"], ask["size"], got)
        assert got["go_proof_b64"] == ask["proof_b64"]
    for ask, got in zip(consistency, answer["consistency"], strict=True):
        assert got["ok"], (ask["from"], ask["to"], got)
        assert got["go_proof_b64"] == ask["proof_b64"]


def test_go_rejects_tampered_proofs(go_verify: Path) -> None:
    # The checks above would be empty if Go accepted anything.
    leaves = [b"leaf %d" % i for i in range(9)]
    store = MemoryHashStore()
    for leaf in leaves:
        store.append(leaf)
    proof = inclusion_proof(3, 9, store)
    bad_hash = bytes([proof[0][0] ^ 1]) + proof[0][1:]
    cproof = consistency_proof(5, 9, store)
    answer = run(
        go_verify,
        {
            "mode": "tree",
            "leaves_b64": [b64(leaf) for leaf in leaves],
            "inclusion": [
                {
                    "index": 3,
                    "size": 9,
                    "proof_b64": [b64(bad_hash)] + [b64(h) for h in proof[1:]],
                    "root_b64": b64(tree_root(9, store)),
                    "leaf_hash_b64": b64(leaf_hash(leaves[3])),
                },
                {
                    "index": 4,
                    "size": 9,
                    "proof_b64": [b64(h) for h in proof],
                    "root_b64": b64(tree_root(9, store)),
                    "leaf_hash_b64": b64(leaf_hash(leaves[3])),
                },
            ],
            "consistency": [
                {
                    "from": 5,
                    "to": 9,
                    "proof_b64": [b64(h) for h in cproof[:-1]],
                    "old_root_b64": b64(tree_root(5, store)),
                    "new_root_b64": b64(tree_root(9, store)),
                },
                {
                    "from": 5,
                    "to": 9,
                    "proof_b64": [b64(h) for h in cproof],
                    "old_root_b64": b64(tree_root(6, store)),
                    "new_root_b64": b64(tree_root(9, store)),
                },
            ],
        },
    )
    assert [r["ok"] for r in answer["inclusion"]] == [False, False]
    assert [r["ok"] for r in answer["consistency"]] == [False, False]
