"""Contract: registered witnesses, unique token names, global heads (SQLite and PostgreSQL).

Issue 12, items 1 and 13: the store queries of :mod:`blocklist.store.witnesses`,
the ``token_names`` claims of :mod:`blocklist.store.tokens` and
:func:`blocklist.store.audit.record_global_head`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import nacl.signing
import pytest
from support.contract_helpers import NOW, later

from blocklist.auditlog import AUDIT_ZERO, Action, Actor, verify_chain
from blocklist.encoding import b64encode
from blocklist.store import Conflict, Database, InvalidField, LimitExceeded, NotFound
from blocklist.store import audit as store_audit
from blocklist.store import tokens as store_tokens
from blocklist.store import witnesses as store_witnesses
from blocklist.store.errors import TokenNameTaken, WitnessNotRegistered
from blocklist.store.models import TokenNameRow, WitnessCosignatureRow

Unchanged = Callable[[Callable[[], object], type[BaseException]], None]

TEXT_HASH = hashlib.sha256(b"origin\n1\nroot\n").digest()


def _key(name: str) -> dict[str, object]:
    public = bytes(nacl.signing.SigningKey.generate().verify_key)
    key_id = hashlib.sha256(name.encode() + b"\n\x04" + public).digest()[:4]
    return {
        "name": name,
        "key_id": key_id,
        "public_key": public,
        "vkey": f"{name}+{key_id.hex()}+" + b64encode(b"\x04" + public),
    }


def _add(db: Database, list_id: int, name: str) -> int:
    with db.transaction() as s:
        row = store_witnesses.add_witness(s, list_id, actor="admin", now=NOW, **_key(name))  # type: ignore[arg-type]
        return row.id


def _post(db: Database, witness_id: int, line: str, text_hash: bytes = TEXT_HASH) -> None:
    with db.transaction() as s:
        witness = next(
            w
            for w in store_witnesses.list_witnesses(s, _list_of(db, witness_id))
            if w.id == witness_id
        )
        store_witnesses.put_cosignature(
            s, witness, text_hash=text_hash, size=1, timestamp=1, line=line, now=NOW
        )


def _list_of(db: Database, witness_id: int) -> int:
    from blocklist.store.models import WitnessKeyRow

    with db.read() as s:
        row = s.get(WitnessKeyRow, witness_id)
        assert row is not None
        return row.list_id


def _key_id_of(db: Database, witness_id: int) -> bytes:
    from blocklist.store.models import WitnessKeyRow

    with db.read() as s:
        row = s.get(WitnessKeyRow, witness_id)
        assert row is not None
        return row.key_id


def _lines(db: Database, list_id: int, text_hash: bytes = TEXT_HASH) -> list[str]:
    with db.read() as s:
        return store_witnesses.cosignature_lines(s, list_id, text_hash)


def test_registered_witness_needs_the_registered_public_key(
    db: Database, list_id: int, list2_id: int
) -> None:
    key = _key("w.example")
    with db.transaction() as s:
        store_witnesses.add_witness(s, list_id, actor="admin", now=NOW, **key)  # type: ignore[arg-type]
    name, key_id, public = str(key["name"]), key["key_id"], key["public_key"]
    assert isinstance(key_id, bytes)
    assert isinstance(public, bytes)
    with db.read() as s:
        found = store_witnesses.registered_witness(
            s, list_id, name=name, key_id=key_id, public_key=public
        )
        assert (found.name, found.key_id, found.public_key) == (name, key_id, public)
        # Lockout attack: a key whose 4-byte ID collides is not the witness.
        other = bytes(nacl.signing.SigningKey.generate().verify_key)
        for where, args in (
            (list_id, {"name": name, "key_id": key_id, "public_key": other}),
            (list_id, {"name": "v.example", "key_id": key_id, "public_key": public}),
            (list2_id, {"name": name, "key_id": key_id, "public_key": public}),
        ):
            with pytest.raises(WitnessNotRegistered, match="not registered for this list"):
                store_witnesses.registered_witness(s, where, **args)  # type: ignore[arg-type]
    assert store_witnesses.checkpoint_text_hash("origin\n1\nroot\n") == TEXT_HASH


def test_register_post_serve_and_remove(db: Database, list_id: int, list2_id: int) -> None:
    b = _add(db, list_id, "b.example")
    a = _add(db, list_id, "a.example")
    with db.read() as s:
        assert [w.name for w in store_witnesses.list_witnesses(s, list_id)] == [
            "a.example",
            "b.example",
        ]
        assert store_witnesses.list_witnesses(s, list2_id) == []
    with db.read() as s:
        found = store_witnesses.find_witness(s, list_id, "a.example", _key_id_of(db, a))
        assert found is not None
        assert found.id == a
        assert store_witnesses.find_witness(s, list2_id, "a.example", found.key_id) is None
        assert store_witnesses.find_witness(s, list_id, "a.example", b"\x00" * 4) is None
    _post(db, b, "\u2014 b.example one")
    _post(db, a, "\u2014 a.example one")
    _post(db, b, "\u2014 b.example two")  # replaces b's line
    assert _lines(db, list_id) == ["\u2014 a.example one", "\u2014 b.example two"]
    assert _lines(db, list_id, hashlib.sha256(b"other text").digest()) == []
    assert _lines(db, list2_id) == []
    with db.transaction() as s:
        store_witnesses.remove_witness(s, list_id, b, actor="admin", now=later(minutes=1))
    assert _lines(db, list_id) == ["\u2014 a.example one"]
    with db.read() as s:
        assert s.query(WitnessCosignatureRow).count() == 1
        records = store_audit.records(s, list_id)
    actions = [(r.action, r.details.get("name")) for r in records if r.action.startswith("wit")]
    assert actions == [
        (Action.WITNESS_ADD, "b.example"),
        (Action.WITNESS_ADD, "a.example"),
        (Action.WITNESS_REMOVE, "b.example"),
    ]


def test_refusals_change_nothing(
    db: Database, list_id: int, list2_id: int, unchanged: Unchanged
) -> None:
    key = _key("w.example")

    def add(lid: int, k: dict[str, object]) -> None:
        with db.transaction() as s:
            store_witnesses.add_witness(s, lid, actor="admin", now=NOW, **k)  # type: ignore[arg-type]

    add(list_id, key)
    unchanged(lambda: add(list_id, key), Conflict)
    unchanged(lambda: add(list_id, {**key, "key_id": b"\x00"}), InvalidField)
    unchanged(lambda: add(list_id, {**key, "name": ""}), InvalidField)

    def remove(lid: int, wid: int) -> None:
        with db.transaction() as s:
            store_witnesses.remove_witness(s, lid, wid, actor="admin", now=NOW)

    unchanged(lambda: remove(list2_id, 1), NotFound)  # another list's witness
    unchanged(lambda: _post(db, 1, "two\nlines"), InvalidField)
    unchanged(lambda: _post(db, 1, "\u2014 w.example x", text_hash=b"short"), InvalidField)
    unchanged(lambda: remove(list_id, 999), NotFound)
    add(list2_id, key)  # the same key may witness another list


def test_the_cap_counts_registered_witnesses(
    db: Database, list_id: int, unchanged: Unchanged
) -> None:
    ids = [
        _add(db, list_id, f"w{i}.example") for i in range(store_witnesses.MAX_WITNESSES_PER_LIST)
    ]
    unchanged(lambda: _add(db, list_id, "extra.example"), LimitExceeded)
    with db.transaction() as s:
        store_witnesses.remove_witness(s, list_id, ids[0], actor="admin", now=NOW)
    _add(db, list_id, "extra.example")


def _token(db: Database, name: str, role: str, lists: list[str] | None = None) -> int:
    with db.transaction() as s:
        _, row = store_tokens.create_token(s, name=name, role=role, lists=lists or [], now=NOW)
        return row.id


def test_token_names_are_unique_per_role_and_list(
    db: Database, list_id: int, list2_id: int, unchanged: Unchanged
) -> None:
    first = _token(db, "isp-a", "isp", ["main"])
    unchanged(lambda: _token(db, "isp-a", "isp", ["strict", "main"]), TokenNameTaken)
    _token(db, "isp-a", "isp", ["strict"])
    _token(db, "isp-a", "auditor", ["main"])
    everywhere = _token(db, "dana", "analyst")
    unchanged(lambda: _token(db, "dana", "analyst", ["strict"]), TokenNameTaken)
    _token(db, "erin", "analyst", ["strict"])
    unchanged(lambda: _token(db, "erin", "analyst"), TokenNameTaken)
    _token(db, "root", "admin")
    unchanged(lambda: _token(db, "root", "admin", ["main"]), TokenNameTaken)
    with db.transaction() as s:
        store_tokens.revoke_token(s, first, actor="admin", now=NOW)
        store_tokens.revoke_token(s, everywhere, actor="admin", now=NOW)
    _token(db, "isp-a", "isp", ["main"])
    _token(db, "dana", "analyst", ["strict"])
    with db.read() as s:
        claims = {(c.role, c.list_id, c.name) for c in s.query(TokenNameRow).all()}
    assert (("analyst", store_tokens.EVERY_LIST, "dana")) not in claims
    assert ("analyst", list2_id, "dana") in claims
    assert ("isp", list_id, "isp-a") in claims


def test_the_global_head_is_recorded_once_per_change(
    db: Database, list_id: int, list2_id: int
) -> None:
    with db.transaction() as s:
        assert store_audit.record_global_head(s, list_id, now=NOW) is None  # empty chain
    _token(db, "isp-a", "isp", ["main"])
    with db.transaction() as s:
        record = store_audit.record_global_head(s, list_id, now=NOW)
        assert record is not None
        assert record.action == Action.GLOBAL_HEAD
        assert record.actor == Actor.PUBLISHER
        assert record.list_name == "main"
        global_head = store_audit.head(s, None)
        assert record.details == {
            "chain": "global",
            "seq": global_head.seq,
            "hash": b64encode(global_head.hash),
        }
        assert store_audit.last_global_head(s, list_id) == global_head
        assert store_audit.record_global_head(s, list_id, now=NOW) is None  # unchanged
        assert store_audit.last_global_head(s, list2_id) is None  # per list
    _token(db, "isp-b", "isp", ["main"])
    with db.transaction() as s:
        again = store_audit.record_global_head(s, list_id, now=later(seconds=1))
        assert again is not None
        assert again.details["seq"] == store_audit.head(s, None).seq
        # Both chains still verify.
        assert store_audit.verify(s, list_id).hash == store_audit.head(s, list_id).hash
        records = store_audit.records(s, None)
        assert verify_chain(records, prev=AUDIT_ZERO) == store_audit.head(s, None).hash


@pytest.mark.parametrize("details", [{"seq": 0, "hash": ""}, {"seq": 1, "hash": "bad"}, {}])
def test_a_malformed_global_head_is_an_audit_error(details: dict[str, object]) -> None:
    from blocklist.auditlog import AuditChainError

    with pytest.raises(AuditChainError):
        store_audit.parse_global_head(details)
