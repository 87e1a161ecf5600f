"""Documents signed by a key the client does not trust are rejected.

The attacker controls the network (or the server) but holds no key of the
list: whatever it signs with its own keys, named like the real ones, must
not move the ISP's list. The auditor's side is covered in
``tests/clients/audit/test_verify.py`` (``test_statement_signed_by_an_unknown_key``,
``test_forged_keyring``, ``test_replaced_checkpoint_signed_by_an_unknown_key``).
"""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime, timedelta

from support.attack_helpers import Forger, World, checkpoint_of, replacing, sha, text_of

from blocklist.keyring import KeyRange, Keyring
from signer.keyring import sign_keyring
from signer.keys import SecretKey
from signer.note import sign_note


def test_checkpoint_signed_by_an_unknown_key(synced: World) -> None:
    w = synced
    before = w.held()
    impostor = SecretKey.generate(w.origin)  # same name as the real log key
    forger = Forger(w, key=impostor)
    stmt = forger.statement([sha("example.org/forged")])
    w.proxy.tamper = replacing(
        checkpoint=forger.checkpoint([stmt]),
        statements={"statements": [stmt], "next": None},
    )
    w.assert_rejected(w.sync(), "unknown_key", before)


def test_statement_signed_by_an_unknown_key(synced: World) -> None:
    w = synced
    before = w.held()
    impostor = SecretKey.generate(w.origin)
    forger = Forger(w)
    # The checkpoint is genuinely signed; the statement under it is not.
    stmt = forger.statement([sha("example.org/forged")], key=impostor)
    w.proxy.tamper = replacing(
        checkpoint=forger.checkpoint([stmt]),
        statements={"statements": [stmt], "next": None},
    )
    w.assert_rejected(w.sync(), "unknown_key", before)


def test_statement_signed_by_an_unknown_key_on_the_snapshot_path(world: World) -> None:
    w = world
    w.add(w.url("a"))
    w.publish()
    before = w.held()
    impostor = SecretKey.generate(w.origin)
    genuine = text_of(w.statement_note(1))
    forged = sign_note(genuine, [impostor])
    w.proxy.tamper = replacing(statements_1=forged)
    w.assert_rejected(w.sync(), "unknown_key", before)
    assert w.held().version is None


def test_keyring_signed_by_an_unknown_root(synced: World) -> None:
    w = synced
    before = w.held()
    held = w.keyring()
    impostor_root = SecretKey.generate(w.origin + "/root")
    attacker_online = SecretKey.generate(w.origin)
    (open_range,) = [k for k in held.keys if k.last is None]
    version = checkpoint_of(w.checkpoint_note()).size
    # Serial 2 hands the log to the attacker's online key, signed by its root.
    forged = Keyring.create(
        origin=w.origin,
        serial=held.serial + 1,
        expires=datetime.now(UTC).replace(microsecond=0) + timedelta(days=30),
        threshold=1,
        roots=held.roots,
        keys=[
            KeyRange(open_range.vkey, open_range.first, version),
            KeyRange(attacker_online.vkey, version + 1, None),
        ],
    )
    note = sign_keyring(forged, [impostor_root])
    w.proxy.tamper = replacing(keyring=note)
    outcome = w.sync()
    w.assert_rejected(outcome, "keyring_rejected", before)
    assert "threshold" in outcome.message


def test_first_sync_under_another_pinned_root_trusts_nothing(world: World) -> None:
    w = world
    w.add(w.url("a"))
    w.publish()
    before = w.held()
    # The ISP pinned a root the list was never signed with (a mistyped pin or
    # a server impersonating the hotline with its own keys).
    stranger = SecretKey.generate(w.origin + "/root")
    outcome = w.sync(config=w.configured(root_keys=(stranger.vkey,)))
    w.assert_rejected(outcome, "keyring_rejected", before)
    assert w.held().version is None


def test_forged_line_by_a_trusted_key_rejects_even_beside_a_valid_one(synced: World) -> None:
    w = synced
    w.add(w.url("later"))
    w.publish()
    before = w.held()
    genuine = w.checkpoint_note()
    # A second 0x01 line under the real key's name and key ID, with garbage
    # signature bytes: every line of a trusted key must verify (protocol 3.2).
    lines = genuine.split("\n")
    first_sig = next(i for i, line in enumerate(lines) if line.startswith("\u2014 "))
    name, b64 = lines[first_sig][2:].rsplit(" ", 1)
    raw = base64.b64decode(b64)
    bogus = raw[:4] + hashlib.sha512(b"bogus").digest()
    lines.insert(first_sig + 1, f"\u2014 {name} {base64.b64encode(bogus).decode()}")
    w.proxy.tamper = replacing(checkpoint="\n".join(lines))
    w.assert_rejected(w.sync(), "signature_error", before)
