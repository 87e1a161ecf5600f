"""Deltas that break set semantics, or do not give the signed state.

The state digest (LtHash16) is a multiset sum: adding a hash that is
already listed, or removing one that is not, changes the vector exactly as
the signer would compute it, so a forged statement can carry a matching
``state`` (protocol section 8.1). Only the delta rules catch it: an
addition must be absent, a removal present. These statements are signed by
the real online key (a buggy or compromised signer), their ``state`` and
``count`` are what the multiset arithmetic gives, and the checkpoint's root
covers them, so nothing else would reject them.

A rejected delta is bad server data, never local corruption: the client
must not take the snapshot path to "repair" it (DESIGN.md step 6).
"""

from __future__ import annotations

from support.attack_helpers import Forger, World, replacing, sha


def _serve(w: World, forger: Forger, statement: str) -> None:
    w.proxy.tamper = replacing(
        checkpoint=forger.checkpoint([statement]),
        statements={"statements": [statement], "next": None},
    )
    w.proxy.requests.clear()


def _no_repair(w: World) -> None:
    fetched = {r.url.path.rsplit("/", 1)[-1] for r in w.proxy.requests}
    assert "snapshot" not in fetched, fetched


def test_delta_adding_a_hash_already_listed(synced: World) -> None:
    w = synced
    before = w.held()
    forger = Forger(w)
    listed = sha(f"{w.url('first').removeprefix('http://')}")
    assert listed in forger.members
    # state = old vector + E(listed) and count + 1: the multiset arithmetic.
    _serve(w, forger, forger.statement([listed]))
    w.assert_rejected(w.sync(), "delta_invalid", before)
    _no_repair(w)


def test_delta_removing_a_hash_not_listed(synced: World) -> None:
    w = synced
    before = w.held()
    forger = Forger(w)
    absent = sha("example.org/never-listed")
    assert absent not in forger.members
    # state = old vector - E(absent) and count - 1.
    _serve(w, forger, forger.statement(removes=[absent]))
    w.assert_rejected(w.sync(), "delta_invalid", before)
    _no_repair(w)


def test_delta_whose_state_is_not_the_signed_one(synced: World) -> None:
    w = synced
    before = w.held()
    forger = Forger(w)
    _serve(w, forger, forger.statement([sha("example.org/new")], state=sha("not the digest")))
    w.assert_rejected(w.sync(), "state_mismatch", before)
    _no_repair(w)


def test_delta_whose_count_is_not_the_signed_one(synced: World) -> None:
    w = synced
    before = w.held()
    forger = Forger(w)
    _serve(w, forger, forger.statement([sha("example.org/new")], count=forger.tip.count + 2))
    w.assert_rejected(w.sync(), "state_mismatch", before)
    _no_repair(w)


def test_valid_forged_delta_is_applied_so_the_rejections_above_are_about_the_delta(
    synced: World,
) -> None:
    # Control: the same construction with a set-valid delta verifies, which
    # shows that only the delta rule rejected the statements above.
    w = synced
    forger = Forger(w)
    new = sha("example.org/new")
    _serve(w, forger, forger.statement([new]))
    outcome = w.sync()
    assert outcome.status == "updated", outcome
    assert outcome.version_after == 3, outcome
    assert new in w.hashes()
