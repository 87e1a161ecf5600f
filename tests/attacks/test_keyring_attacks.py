"""Attacks on the keyring (TUF's root metadata attacks, transposed).

The keyrings below are signed with the list's real root key (the embedded
default keeps it in the data directory; a test tool here, offline in
production) or with keys the attacker made: a skipped serial, an expired
keyring, a root rotation signed by the old roots only, a raised threshold
without its signatures. The client walks serials one at a time (protocol
section 4.3) and keeps the keyring it holds. Two keyrings with the same
serial (equivocation by the roots) are in ``test_equivocation.py``; an older
serial in ``test_rollback.py``; a keyring of another list in
``test_mix_and_match.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import httpx
from support.attack_helpers import World, replacing, text_of

from blocklist.keyring import Keyring
from signer.keyring import sign_keyring
from signer.keys import SecretKey
from signer.note import NoteSigner


def _next(
    w: World,
    serial: int,
    *,
    roots: Sequence[str] | None = None,
    threshold: int | None = None,
    expires: datetime | None = None,
) -> Keyring:
    held = w.keyring()
    return Keyring.create(
        origin=held.origin,
        serial=serial,
        expires=expires or datetime.now(UTC).replace(microsecond=0) + timedelta(days=30),
        threshold=threshold or held.threshold,
        roots=roots if roots is not None else held.roots,
        keys=held.keys,
    )


def _serve(w: World, by_serial: dict[int, str], latest: int) -> None:
    def keyring(request: httpx.Request, response: httpx.Response) -> httpx.Response:
        serial = request.url.params.get("serial")
        wanted = latest if serial is None else int(serial)
        if wanted in by_serial:
            return httpx.Response(200, text=by_serial[wanted])
        return response

    w.proxy.tamper = replacing(keyring=keyring)


def _signed(keyring: Keyring, keys: Sequence[NoteSigner]) -> str:
    return sign_keyring(keyring, list(keys))


def test_skipped_serial(synced: World) -> None:
    w = synced
    before = w.held()
    serial_3 = _signed(_next(w, 3), [w.root_key()])
    # The server says the latest is 3 and has no 2: it answers 3 for ?serial=2.
    _serve(w, {2: serial_3, 3: serial_3}, latest=3)
    outcome = w.sync()
    w.assert_rejected(outcome, "keyring_rejected", before)
    assert "serial_gap" in outcome.message


def test_expired_keyring(synced: World) -> None:
    w = synced
    before = w.held()
    past = datetime.now(UTC).replace(microsecond=0) - timedelta(days=1)
    expired = _signed(_next(w, 2, expires=past), [w.root_key()])
    _serve(w, {2: expired}, latest=2)
    outcome = w.sync()
    w.assert_rejected(outcome, "stale", before)
    assert "expired" in outcome.message


def test_expired_intermediate_keyring_is_walked_through(synced: World) -> None:
    # Control (TUF 5.3.10): only the last keyring of a walk must be unexpired,
    # so a client offline for longer than a keyring's life can catch up.
    w = synced
    past = datetime.now(UTC).replace(microsecond=0) - timedelta(days=1)
    serial_2 = _signed(_next(w, 2, expires=past), [w.root_key()])
    serial_3 = _signed(_next(w, 3), [w.root_key()])
    _serve(w, {2: serial_2, 3: serial_3}, latest=3)
    assert w.sync().status == "current"
    assert [Keyring.parse(text_of(n)).serial for n in w.held().keyrings] == [1, 2, 3]


def test_root_rotation_signed_by_the_old_roots_only(synced: World) -> None:
    w = synced
    before = w.held()
    new_root = SecretKey.generate(w.origin + "/root-2027")
    rotation = _next(w, 2, roots=[new_root.vkey])
    _serve(w, {2: _signed(rotation, [w.root_key()])}, latest=2)
    outcome = w.sync()
    w.assert_rejected(outcome, "keyring_rejected", before)
    assert "rotation_unsigned" in outcome.message


def test_root_rotation_signed_by_the_new_roots_only(synced: World) -> None:
    w = synced
    before = w.held()
    new_root = SecretKey.generate(w.origin + "/root-2027")
    rotation = _next(w, 2, roots=[new_root.vkey])
    _serve(w, {2: _signed(rotation, [new_root])}, latest=2)
    outcome = w.sync()
    w.assert_rejected(outcome, "keyring_rejected", before)
    assert "threshold" in outcome.message


def test_after_a_root_rotation_the_old_root_alone_is_not_trusted(synced: World) -> None:
    w = synced
    old_root = w.root_key()
    new_root = SecretKey.generate(w.origin + "/root-2027")
    rotation = _signed(_next(w, 2, roots=[new_root.vkey]), [old_root, new_root])
    _serve(w, {2: rotation}, latest=2)
    assert w.sync().status == "current"  # both root sets signed: accepted
    before = w.held()
    assert len(before.keyrings) == 2
    # The retired root (perhaps retired because it leaked) signs serial 3.
    serial_3 = _signed(_next(w, 3, roots=[old_root.vkey]), [old_root])
    _serve(w, {2: rotation, 3: serial_3}, latest=3)
    outcome = w.sync()
    w.assert_rejected(outcome, "keyring_rejected", before)
    assert "threshold" in outcome.message


def test_raised_threshold_without_its_signatures(synced: World) -> None:
    w = synced
    before = w.held()
    second = SecretKey.generate(w.origin + "/root-b")
    roots = sorted([w.root_vkey, second.vkey])
    raised = _next(w, 2, roots=roots, threshold=2)
    _serve(w, {2: _signed(raised, [w.root_key()])}, latest=2)
    outcome = w.sync()
    w.assert_rejected(outcome, "keyring_rejected", before)
    assert "rotation_unsigned" in outcome.message
