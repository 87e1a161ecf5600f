"""Equivocation: two signed, inconsistent views are rejected and kept as evidence.

Only a holder of the online key (or of the root keys, for keyrings) can
equivocate: the attacker here stole it. The client must refuse the second
view, keep the list it holds, and store both notes so that an auditor can
prove the log lied; the auditor turns the ISP's evidence into a proof
against the bundle (``clients.audit.verify``, extra checkpoints).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from support.attack_helpers import Forger, World, replacing, sha

from blocklist.keyring import Keyring
from clients.audit.bundle import loads
from clients.audit.verify import verify_bundle
from signer.keyring import sign_keyring


def test_same_size_other_root(synced: World) -> None:
    w = synced
    before = w.held()
    forger = Forger(w)
    fork = forger.checkpoint(root=sha("another history"))
    w.proxy.tamper = replacing(checkpoint=fork)
    w.assert_rejected(w.sync(), "equivocation", before)
    (evidence,) = w.evidence()
    assert evidence.kind == "checkpoint"
    assert evidence.held_note == before.checkpoint_note
    assert evidence.new_note == fork
    # Still rejected on every later poll; the evidence is not duplicated.
    again = w.held()
    w.assert_rejected(w.sync(), "equivocation", again)
    assert len(w.evidence()) == 1


def test_larger_tree_whose_root_the_signed_statements_do_not_give(synced: World) -> None:
    w = synced
    before = w.held()
    forger = Forger(w)
    stmt = forger.statement([sha("example.org/forged")])
    fork = forger.checkpoint([stmt], root=sha("another history"))
    w.proxy.tamper = replacing(checkpoint=fork, statements={"statements": [stmt], "next": None})
    w.assert_rejected(w.sync(), "equivocation", before)
    (evidence,) = w.evidence()
    assert (evidence.held_note, evidence.new_note) == (before.checkpoint_note, fork)


def test_the_isps_evidence_convicts_the_log_in_an_offline_audit(synced: World) -> None:
    w = synced
    fork = Forger(w).checkpoint(root=sha("another history"))
    w.proxy.tamper = replacing(checkpoint=fork)
    assert w.sync().reason == "equivocation"
    (evidence,) = w.evidence()
    r = w.call("GET", "/v1/lists/main/audit/bundle", w.tokens.auditor)
    assert r.status_code == 200, r.text
    report = verify_bundle(loads(r.content), [w.root_vkey], extra_checkpoints=[evidence.new_note])
    # The bundle's own history verifies; the ISP's note contradicts it.
    assert report.failure is not None
    assert report.failure.check == "extra_checkpoint"
    assert "equivocation" in report.failure.reason
    assert [c.status for c in report.checkpoints] == ["ok"] * len(report.checkpoints)
    (proof,) = report.equivocations
    assert proof.conflicting_note == fork
    assert proof.claimed_root == sha("another history")


def test_split_view_fork_then_the_real_history(synced: World) -> None:
    """The log shows this ISP a private version 3, then the real 3 and 4.

    DESIGN.md, "ISP sync, fail closed", step 2: a root inconsistent with the
    held checkpoint is equivocation: rejected, both notes kept as evidence.
    The real statement 4 is validly signed and chains from a statement 3
    other than the one inside the held (validly signed) checkpoint 3.
    """
    w = synced
    forger = Forger(w)
    private = forger.statement([sha("example.org/only-this-isp-sees-it")])
    private_head = forger.checkpoint([private])
    w.proxy.tamper = replacing(
        checkpoint=private_head, statements={"statements": [private], "next": None}
    )
    assert w.sync().version_after == 3  # the fork verifies: it is signed
    w.proxy.tamper = None
    w.add(w.url("real-3"))
    assert w.publish() == 3
    w.add(w.url("real-4"))
    assert w.publish() == 4
    real_head = w.checkpoint_note()
    before = w.held()
    w.assert_rejected(w.sync(), "equivocation", before)
    (evidence,) = w.evidence()
    assert evidence.held_note == private_head
    assert evidence.new_note == real_head


def test_two_keyrings_with_the_same_serial(synced: World) -> None:
    w = synced
    before = w.held()
    held = w.keyring()
    # The (stolen) root key signs a second serial 1 that differs in one line.
    other = Keyring.create(
        origin=held.origin,
        serial=held.serial,
        expires=held.expires + timedelta(days=1),
        threshold=held.threshold,
        roots=held.roots,
        keys=held.keys,
    )
    note = sign_keyring(other, [w.root_key()])
    w.proxy.tamper = replacing(keyring=note)
    w.assert_rejected(w.sync(), "equivocation", before)
    (evidence,) = w.evidence()
    assert evidence.kind == "keyring"
    assert evidence.held_note == before.keyrings[-1]
    assert evidence.new_note == note
    assert datetime.now(UTC) < other.expires
