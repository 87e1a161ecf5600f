"""A compromised online key after rotation.

The hotline learns that online key K1 leaked and rotates: keyring serial 2
closes K1's range at the last version it signed and opens K2's. From then
on K1 can sign nothing a client accepts: no statement past its closed
range (even under a genuinely signed head), and no checkpoint at all
(checkpoints verify only under an open range). The auditor's side is
``tests/clients/audit/test_verify.py::test_compromised_key_after_rotation_cannot_sign_later_versions``.

What rotation cannot do is reach a client that never fetches keyring
serial 2 (an attacker on its network path hiding it): that client trusts
K1 until its keyring expires. docs/security.md states this limit.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from support.attack_helpers import Forger, World, replacing, sha

from signer.keyring_ops import rotate_online_key
from signer.keys import SecretKey


@pytest.fixture
def rotated(synced: World) -> tuple[World, SecretKey]:
    """Versions 1-2 signed by K1, rotation, version 3 by K2; the client holds 3."""
    w = synced
    stolen = w.online_key()
    rotate_online_key(w.d.data_dir, "main")
    assert w.online_key().vkey != stolen.vkey
    w.add(w.url("after-rotation"))
    assert w.publish() == 3
    outcome = w.sync()
    assert outcome.status == "updated", outcome
    assert outcome.version_after == 3, outcome
    (closed,) = [k for k in w.keyring().keys if k.vkey == stolen.vkey]
    assert (closed.first, closed.last) == (1, 2)
    return w, stolen


def test_statement_by_the_old_key_past_its_range_under_a_valid_head(
    rotated: tuple[World, SecretKey],
) -> None:
    w, stolen = rotated
    before = w.held()
    forger = Forger(w)
    stmt = forger.statement([sha("example.org/censored")], key=stolen)
    # Even the real key's head over it does not make K1's statement 4 valid.
    head = forger.checkpoint([stmt])
    w.proxy.tamper = replacing(checkpoint=head, statements={"statements": [stmt], "next": None})
    w.assert_rejected(w.sync(), "unknown_key", before)


def test_checkpoint_by_the_old_key(rotated: tuple[World, SecretKey]) -> None:
    w, stolen = rotated
    before = w.held()
    forger = Forger(w, key=stolen)
    stmt = forger.statement([sha("example.org/censored")])
    w.proxy.tamper = replacing(
        checkpoint=forger.checkpoint([stmt]), statements={"statements": [stmt], "next": None}
    )
    w.assert_rejected(w.sync(), "unknown_key", before)


def test_fresh_resignature_of_the_current_head_by_the_old_key(
    rotated: tuple[World, SecretKey],
) -> None:
    # K1 cannot even keep the list looking fresh (e.g. to hide a freeze).
    w, stolen = rotated
    before = w.held()
    w.proxy.tamper = replacing(checkpoint=Forger(w, key=stolen).checkpoint(when=datetime.now(UTC)))
    w.assert_rejected(w.sync(), "unknown_key", before)


def test_new_client_after_rotation_refuses_the_old_key(rotated: tuple[World, SecretKey]) -> None:
    w, stolen = rotated
    forger = Forger(w, key=stolen)
    stmt = forger.statement([sha("example.org/censored")])
    fresh_dir = w.tmp / "new-isp"
    config = w.configured(state_dir=fresh_dir)
    w.proxy.tamper = replacing(checkpoint=forger.checkpoint([stmt]), statements_4=stmt)
    outcome = w.sync(config=config)
    assert outcome.status == "rejected", outcome
    assert outcome.reason == "unknown_key", outcome
    w.proxy.tamper = None
    honest = w.sync(config=config)
    assert honest.status == "updated", honest
    assert honest.version_after == 3, honest
