#!/usr/bin/env python3
"""Generate the golden test vectors of docs/protocol.md.

Writes ``tests/vectors/golden.json``: keys derived from fixed seeds, a
keyring, three version statements, checkpoints, state digests, Merkle
proofs and an audit-log chain, every value produced by the project's own
code from fixed inputs; and ``tests/vectors/block_ref.json``: the block
references of docs/protocol.md section 2.5 (their own file, so a change to
one format never rewrites the other's vectors). Ed25519 signatures are deterministic (RFC 8032), so
the output is byte-for-byte reproducible.

``--check`` regenerates in memory and fails with a diff when the committed
file differs: a change to any signed format then shows up in review instead
of silently changing what third-party verifiers must accept.

Usage::

    python scripts/gen_vectors.py          # rewrite the vectors files
    python scripts/gen_vectors.py --check  # CI: fail if one would change
"""

from __future__ import annotations

import argparse
import base64
import difflib
import hashlib
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from blocklist.auditlog import AUDIT_ZERO, AuditRecord, chain_hash  # noqa: E402
from blocklist.blockref import (  # noqa: E402
    BLOCK_REF_BYTES,
    InvalidBlockRef,
    block_ref,
    parse_block_ref,
)
from blocklist.canonical import expression, expression_hash  # noqa: E402
from blocklist.checkpoint import Checkpoint  # noqa: E402
from blocklist.encoding import b64encode  # noqa: E402
from blocklist.keyring import KeyRange, Keyring  # noqa: E402
from blocklist.merkle import (  # noqa: E402
    EMPTY_ROOT,
    MemoryHashStore,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    range_hashes,
)
from blocklist.statedigest import StateDigest  # noqa: E402
from blocklist.statement import ZERO_HASH, Statement  # noqa: E402
from signer.keyring import sign_keyring  # noqa: E402
from signer.keys import SecretKey  # noqa: E402
from signer.note import sign_note  # noqa: E402

OUTPUT = ROOT / "tests" / "vectors" / "golden.json"
BLOCK_REF_OUTPUT = ROOT / "tests" / "vectors" / "block_ref.json"

ORIGIN = "hotline.example/cleanfeed/main"
#: 2027-01-15T08:00:00Z: a fixed clock so every timestamp is reproducible.
T0 = 1_800_000_000


def _seed(label: str) -> bytes:
    return hashlib.sha256(f"cleanfeed golden vector seed: {label}".encode()).digest()


def _time(offset: int) -> datetime:
    return datetime.fromtimestamp(T0 + offset, tz=UTC)


def build() -> dict[str, object]:
    """Return the vectors as a JSON-ready dictionary."""
    root = SecretKey.from_seed(f"{ORIGIN}/root", _seed("root"))
    online = SecretKey.from_seed(ORIGIN, _seed("online"))

    keyring = Keyring.create(
        origin=ORIGIN,
        serial=1,
        expires=_time(365 * 86400),
        threshold=1,
        roots=[root.vkey],
        keys=[KeyRange(online.vkey, 1, None)],
    )
    keyring_note = sign_keyring(keyring, [root])

    urls = [
        ("http://blocked.example.com/gallery/1.html", "page"),
        ("http://Blocked.Example.COM/gallery/2.html?id=7", "page"),
        ("http://files.example.org/dump/", "prefix"),
        ("http://abuse-only.example.net/", "host"),
    ]
    exprs = [expression(u, s) for u, s in urls]
    hashes = [expression_hash(e) for e in exprs]

    audit: list[dict[str, object]] = []
    head = AUDIT_ZERO
    # Audit log: entry 1 added by one analyst and approved by another, then
    # entry 2 added; enough to show the chain (not a whole history).
    for seq, (entry_id, h, action, actor) in enumerate(
        [
            (1, hashes[0], "entry.add", "analyst:alice"),
            (1, hashes[0], "entry.approve", "analyst:bob"),
            (2, hashes[1], "entry.add", "analyst:alice"),
        ],
        start=1,
    ):
        record = AuditRecord(
            seq=seq,
            time=_time(seq),
            actor=actor,
            action=action,
            list_name="main",
            entry_id=entry_id,
            details={"hash": b64encode(h)},
        )
        head = chain_hash(head, record)
        audit.append(
            {
                "json": record.to_json().decode(),
                "hash": b64encode(head),
            }
        )

    changes = [
        (sorted(hashes[:3]), []),
        ([hashes[3]], [hashes[1]]),
        ([hashes[1]], [hashes[0]]),
    ]
    digest = StateDigest()
    present: set[bytes] = set()
    previous = ZERO_HASH
    store = MemoryHashStore()
    statements: list[dict[str, object]] = []
    for number, (adds, removes) in enumerate(changes, start=1):
        digest.update(adds, removes)
        present |= set(adds)
        present -= set(removes)
        st = Statement(
            origin=ORIGIN,
            version=number,
            previous=previous,
            keyring=1,
            audit=head,
            state=digest.digest(),
            count=len(present),
            time=_time(3600 * number),
            adds=tuple(sorted(adds)),
            removes=tuple(sorted(removes)),
        )
        text = st.to_text()
        note = sign_note(text, [online])
        store.append(text.encode())
        statements.append(
            {
                "text": text,
                "note": note,
                "text_hash": b64encode(st.text_hash()),
                "leaf_hash": b64encode(leaf_hash(text.encode())),
            }
        )
        previous = st.text_hash()

    size = store.size
    cp0_text = Checkpoint(ORIGIN, 0, EMPTY_ROOT).to_text()
    cp_text = Checkpoint(ORIGIN, size, store.root()).to_text()
    ts = T0 + 4 * 3600

    return {
        "description": (
            "Golden vectors of docs/protocol.md, generated by scripts/gen_vectors.py from "
            "fixed seeds; private keys here are test-only and derived from public labels."
        ),
        "keys": {
            "root": {
                "name": root.name,
                "seed_label": "root",
                "seed": _seed("root").hex(),
                "vkey": root.vkey,
                "key_id": root.key_id.hex(),
            },
            "online": {
                "name": online.name,
                "seed_label": "online",
                "seed": _seed("online").hex(),
                "vkey": online.vkey,
                "key_id": online.key_id.hex(),
                "cosigner_key_id": online.cosigner_key_id.hex(),
            },
        },
        "expressions": [
            {"url": u, "scope": s, "expression": e, "sha256": h.hex(), "base64": b64encode(h)}
            for (u, s), e, h in zip(urls, exprs, hashes, strict=True)
        ],
        "state_digest": {
            "empty": StateDigest().digest().hex(),
            "single": {
                "hash": hashes[0].hex(),
                "digest": StateDigest.from_hashes([hashes[0]]).digest().hex(),
                "vector_first_16_bytes": StateDigest.from_hashes([hashes[0]]).to_bytes()[:16].hex(),
            },
            "after_each_version": [
                json.loads(json.dumps(s["text"])).split("\nstate ")[1].split("\n")[0]
                for s in statements
            ],
        },
        "keyring": {"text": keyring.to_text(), "note": keyring_note},
        "audit_log": audit,
        "statements": statements,
        "checkpoints": {
            "size_0": {
                "text": cp0_text,
                "note": sign_note(cp0_text, [online], cosigners=[online], timestamp=T0),
                "timestamp": T0,
            },
            "latest": {
                "text": cp_text,
                "note": sign_note(cp_text, [online], cosigners=[online], timestamp=ts),
                "timestamp": ts,
            },
        },
        "proofs": {
            "tree_size": size,
            "root": b64encode(store.root()),
            "inclusion": [
                {
                    "leaf_index": i,
                    "tree_size": size,
                    "hashes": [b64encode(h) for h in inclusion_proof(i, size, store)],
                }
                for i in range(size)
            ],
            "consistency": [
                {
                    "from": m,
                    "to": size,
                    "root_from": b64encode(_root_at(store, m)),
                    "hashes": [b64encode(h) for h in consistency_proof(m, size, store)],
                }
                for m in range(1, size)
            ],
            "range": [
                {"size": n, "hashes": [b64encode(h) for h in range_hashes(n, store)]}
                for n in range(size + 1)
            ],
        },
    }


def _root_at(store: MemoryHashStore, size: int) -> bytes:
    from blocklist.merkle import tree_root

    return tree_root(size, store)


def render() -> str:
    """Return the vectors file's exact text."""
    return json.dumps(build(), indent=1, ensure_ascii=False, sort_keys=False) + "\n"


#: The golden expressions (same URLs as :func:`build`) whose references the
#: block_ref vectors show, plus hashes at the edges of the alphabet.
BLOCK_REF_EXPRESSIONS = (
    "blocked.example.com/gallery/1.html",
    "blocked.example.com/gallery/2.html?id=7",
    "files.example.org/dump/",
    "abuse-only.example.net/",
)


def _rejection(text: str) -> dict[str, str]:
    try:
        parse_block_ref(text)
    except InvalidBlockRef as e:
        return {"text": text, "code": e.code}
    raise AssertionError(f"{text!r} was accepted")


def build_block_refs() -> dict[str, object]:
    """Return the block reference vectors (docs/protocol.md section 2.5)."""
    cases: list[tuple[str | None, bytes]] = [(e, expression_hash(e)) for e in BLOCK_REF_EXPRESSIONS]
    cases += [(None, bytes(32)), (None, b"\xff" * 32), (None, bytes(range(32)))]
    refs = []
    for expr, h in cases:
        item: dict[str, object] = {} if expr is None else {"expression": expr}
        item.update(
            {
                "sha256": h.hex(),
                "first_10_bytes": h[:BLOCK_REF_BYTES].hex(),
                "base32": base64.b32encode(h[:BLOCK_REF_BYTES]).decode("ascii"),
                "block_ref": block_ref(h),
            }
        )
        refs.append(item)
    good = block_ref(expression_hash(BLOCK_REF_EXPRESSIONS[3]))
    body = good[4:-2].replace("-", "")
    check = good[-1]
    spellings = [
        good.lower(),
        good.replace("-", ""),
        " ".join(good.split("-")),
        f"  {good}\n",
        good.replace("-", "\u2013"),
    ]
    # One substituted character, two adjacent ones swapped, the check
    # character changed; then texts that are not references at all.
    substituted = "CF1-" + ("B" if body[0] != "B" else "C") + good[5:]
    i = next(
        k
        for k in range(len(body) - 1)
        if body[k] != body[k + 1] and {body[k], body[k + 1]} != {"A", "7"}
    )
    swapped_body = body[:i] + body[i + 1] + body[i] + body[i + 2 :]
    swapped = "CF1-" + "-".join(swapped_body[k : k + 4] for k in range(0, 16, 4)) + "-" + check
    other_check = good[:-1] + ("A" if check != "A" else "B")
    rejected = [
        _rejection(substituted),
        _rejection(swapped),
        _rejection(other_check),
        _rejection(good[:-2]),
        _rejection(good[4:]),
        _rejection(good[:5] + "0" + good[6:]),
        _rejection("CF2" + good[3:]),
    ]
    for r in rejected[:3]:
        assert r["code"] == "block_ref_mistyped", r
    return {
        "description": (
            "Block references of docs/protocol.md section 2.5, generated by "
            "scripts/gen_vectors.py: CF1-, the first 10 bytes of the SHA-256 in RFC 4648 "
            "base32 in groups of four, and a Luhn mod 32 check character."
        ),
        "alphabet": "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567",
        "references": refs,
        "accepted": [
            {"text": t, "first_10_bytes": parse_block_ref(t).hex(), "block_ref": good}
            for t in spellings
        ],
        "rejected": rejected,
    }


def render_block_refs() -> str:
    """Return the block reference vectors file's exact text."""
    return json.dumps(build_block_refs(), indent=1, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="fail if a file would change")
    args = parser.parse_args(argv)
    status = 0
    for output, text in ((OUTPUT, render()), (BLOCK_REF_OUTPUT, render_block_refs())):
        if args.check:
            current = output.read_text(encoding="utf-8") if output.exists() else ""
            if current != text:
                diff = difflib.unified_diff(
                    current.splitlines(True), text.splitlines(True), "committed", "regenerated"
                )
                sys.stderr.writelines(list(diff)[:200])
                print(f"{output.relative_to(ROOT)} is out of date: run scripts/gen_vectors.py")
                status = 1
            else:
                print(f"{output.relative_to(ROOT)} is up to date")
            continue
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(text, encoding="utf-8")
        print(f"wrote {output.relative_to(ROOT)}")
    return status


if __name__ == "__main__":
    sys.exit(main())
