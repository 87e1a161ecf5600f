"""``prove``: when a hash or URL was listed, with inclusion proofs a third party can check."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest
from support.audit_helpers import ORIGIN, T0, FullLog, hash_only, page, sha, small_log, story

from blocklist.auditlog import Action
from blocklist.canonical import expression, expressions
from blocklist.checkpoint import Checkpoint
from blocklist.encoding import b64encode, format_time
from blocklist.errors import FormatError, InvalidURL
from blocklist.merkle import leaf_hash, verify_inclusion
from clients.audit.prove import parse_at, prove, targets_for
from clients.errors import NotVerified
from signer.keys import SecretKey
from signer.note import Verifier, verify_note


def history(f: FullLog, url: str) -> list[tuple[int, str]]:
    proof = prove(f.bundle(), sha(expression(url)).hex())
    return [(e.version, e.kind) for e in proof.events]


def test_history_of_an_entry_with_checkable_proofs() -> None:
    f = story()
    bundle = f.bundle()
    target = sha(expression(page(1)))
    proof = prove(bundle, target.hex(), root_vkeys=[f.log.root_vkey], now=f.now)
    assert proof.verified
    # Page 1: listed in version 1, expired in 2, reinstated and re-approved in 3.
    assert [(e.version, e.kind) for e in proof.events] == [
        (1, "added"),
        (2, "removed"),
        (3, "added"),
    ]
    assert proof.listed_now == (target,)
    assert proof.listed
    # A third party holding the signed checkpoint and the signed statement
    # checks each claim with the proof alone.
    online = Verifier.from_vkey(f.log.online_key.vkey)
    checkpoint = Checkpoint.parse(verify_note(proof.checkpoint_note, [online]).text)
    assert (checkpoint.size, checkpoint.root) == (proof.tree_size, proof.root)
    for event in proof.events:
        note = bundle.statements[event.version - 1]
        text = verify_note(note, [online]).text
        line = "add" if event.kind == "added" else "remove"
        assert f"\n{line} {b64encode(target)}\n" in text
        assert f"\ntime {format_time(event.time)}\n" in text
        verify_inclusion(
            leaf_hash(text.encode()),
            event.version - 1,
            checkpoint.size,
            event.proof.hashes,
            checkpoint.root,
        )


def test_full_bundle_proof_carries_the_decisions() -> None:
    f = story()
    proof = prove(f.bundle(), sha(expression(page(1))).hex())
    [target] = proof.targets
    assert target.entry is not None
    assert target.entry.expression == expression(page(1))
    actions = [r.action for r in target.decisions]
    assert actions == [
        Action.ENTRY_ADD,
        Action.ENTRY_APPROVE,
        Action.ENTRY_APPROVE,
        Action.ENTRY_EXPIRE,
        Action.ENTRY_REINSTATE,
        Action.ENTRY_APPROVE,
        Action.ENTRY_APPROVE,
    ]
    text = proof.to_text()
    assert Action.ENTRY_REINSTATE in text
    assert expression(page(1)) in text


@pytest.mark.parametrize(
    ("offset", "version", "listed"),
    [
        (timedelta(seconds=-1), 0, False),  # before version 1
        (timedelta(minutes=1, seconds=30), 1, True),  # version 1 in force
        (timedelta(minutes=3, seconds=30), 2, False),  # removed by version 2
        (timedelta(days=1), 3, True),  # back in version 3
    ],
)
def test_listed_at_an_instant(offset: timedelta, version: int, listed: bool) -> None:
    f = story()
    bundle = f.bundle()
    first = T0 + timedelta(minutes=1)  # story() publishes version 1 one minute in
    proof = prove(bundle, sha(expression(page(1))).hex(), first + offset)
    assert proof.listed_at is not None
    assert proof.listed_at.version == version
    assert bool(proof.listed_at.listed) is listed
    assert proof.listed is listed
    if version:
        assert proof.listed_at.proof is not None
        proof.listed_at.proof.verify()


def test_url_matches_any_of_its_lookup_expressions() -> None:
    f = FullLog(1)
    prefix = f.add("http://example.org/abuse/", scope="prefix")
    f.approve(prefix, "bob")
    f.publish()
    url = "http://example.org/abuse/deep/page.html?x=1"
    proof = prove(f.bundle(), url)
    assert [t.expression for t in proof.targets] == expressions(url)
    hit = sha("example.org/abuse/")
    assert [(e.hash, e.version, e.kind) for e in proof.events] == [(hit, 1, "added")]
    assert proof.listed_now == (hit,)
    assert proof.query == f"url {url}"


def test_never_listed() -> None:
    log = small_log()
    proof = prove(hash_only(log), sha("example.org/never").hex(), T0 + timedelta(days=1))
    assert proof.events == ()
    assert not proof.listed
    assert proof.listed_at is not None
    assert proof.listed_at.listed == ()
    assert "never listed" in proof.to_text()


def test_hash_spellings() -> None:
    h = sha("example.org/p1.html")
    expected = [(h, None)]
    assert targets_for(h)[1] == expected
    assert targets_for(h.hex())[1] == expected
    assert targets_for(h.hex().upper())[1] == expected
    assert targets_for(b64encode(h))[1] == expected
    with pytest.raises(ValueError, match="32 bytes"):
        targets_for(b"short")
    with pytest.raises(InvalidURL):
        targets_for("mailto:abuse@example.org")


def test_parse_at() -> None:
    assert parse_at("2024-01-02") == T0 + timedelta(days=1)
    assert parse_at("2024-01-02T03:04:05Z") == T0 + timedelta(days=1, seconds=3 * 3600 + 245)
    with pytest.raises(FormatError):
        parse_at("2024-01-02T03:04:05+01:00")


def test_refuses_a_bundle_that_does_not_verify() -> None:
    log = small_log()
    bundle = hash_only(log)
    other_root = SecretKey.generate(f"{ORIGIN}/root")
    with pytest.raises(NotVerified, match="keyring"):
        prove(bundle, sha("example.org/p1.html").hex(), root_vkeys=[other_root.vkey])


def test_refuses_statements_that_do_not_match_the_checkpoint() -> None:
    log = small_log()
    bundle = hash_only(log)
    shorter = dataclasses.replace(bundle, statements=bundle.statements[:-1])
    with pytest.raises(NotVerified, match="checkpoint does not match"):
        prove(shorter, sha("example.org/p1.html").hex())


def test_unverified_proof_says_so() -> None:
    log = small_log()
    proof = prove(hash_only(log), sha("example.org/p1.html").hex())
    assert not proof.verified
    assert "NO (run 'cleanfeed audit verify' first)" in proof.to_text()
    doc = proof.to_json()
    assert set(doc) == {
        "list",
        "origin",
        "query",
        "verified",
        "listed",
        "targets",
        "events",
        "listed_now",
        "listed_at",
        "checkpoint",
        "warnings",
    }
    assert doc["events"][0]["proof"]["tree_size"] == 6


def test_history_helper_matches_events() -> None:
    f = story()
    assert history(f, page(2)) == [(1, "added"), (3, "removed")]
    assert history(f, page(5)) == []  # withdrawn before it was listed
