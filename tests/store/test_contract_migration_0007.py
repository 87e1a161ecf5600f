"""Contract: a deployment at 0006 upgrades through migration 0007 with its tokens working.

Issue 15 item 5: a database of the previous release (revision 0006), with
tokens and entries written as that release wrote them (raw rows: the ORM
models are at head), is upgraded; every token not revoked still
authenticates with its old role and lists, entries and approvals are
intact, the audit chains still verify, and four-eyes keeps today's rule
(token names) until a token is attached to a person.
"""

from __future__ import annotations

import secrets
from typing import Any

import pytest
import sqlalchemy as sa
from support.contract_helpers import NOW, insert_list_row

from blocklist.store import Database, migrate
from blocklist.store import accounts as store_accounts
from blocklist.store import audit as store_audit
from blocklist.store import entries as store_entries
from blocklist.store import tokens as store_tokens
from blocklist.store.errors import SelfApproval


def _naive(conn: sa.Connection, value: Any) -> Any:
    # SQLite keeps UTC without an offset (blocklist.store.models.UTCDateTime).
    return value.replace(tzinfo=None) if conn.dialect.name == "sqlite" else value


def _token(conn: sa.Connection, role: str, name: str, lists: list[int], revoked: bool) -> str:
    meta = sa.MetaData()
    tokens = sa.Table("tokens", meta, autoload_with=conn)
    token_lists = sa.Table("token_lists", meta, autoload_with=conn)
    token = f"cf_{role}_" + secrets.token_urlsafe(32)
    result = conn.execute(
        sa.insert(tokens).values(
            name=name,
            role=role,
            token_hash=store_tokens.token_hash(token),
            prefix=token[: len(role) + 8],
            plaintext=False,
            full_audit=False,
            expires_at=None,
            revoked_at=_naive(conn, NOW) if revoked else None,
            last_used_at=None,
            created_at=_naive(conn, NOW),
            created_by="test",
        )
    )
    token_id = int(result.inserted_primary_key[0])
    for list_id in lists:
        conn.execute(sa.insert(token_lists).values(token_id=token_id, list_id=list_id))
    return token


def _entry(conn: sa.Connection, list_id: int, n: int, by: str) -> int:
    entries = sa.Table("entries", sa.MetaData(), autoload_with=conn)
    result = conn.execute(
        sa.insert(entries).values(
            list_id=list_id,
            expression=f"example.org/{n}.html",
            hash=bytes([n]) * 32,
            host="example.org",
            url=f"http://example.org/{n}.html",
            scope="page",
            reason="report",
            reference=None,
            category=None,
            hosting_country=None,
            created_by=by,
            created_at=_naive(conn, NOW),
            status="pending",
            expires_at=None,
            listed=False,
            needs_publish=False,
            added_version=None,
            removed_version=None,
            approval_round=1,
            submitted_by=by,
            plaintext_pruned_at=None,
            import_id=None,
        )
    )
    return int(result.inserted_primary_key[0])


def test_upgrade_from_0006_keeps_tokens_entries_and_the_name_rule(empty_db: Database) -> None:
    db = empty_db
    migrate.upgrade(db, "0006")
    with db.engine.begin() as conn:
        insert_list_row(conn)
    with db.transaction() as s:
        store_audit.append(s, list_id=None, actor="test", action="token.create", now=NOW)
        store_audit.append(s, list_id=1, actor="alice", action="entry.add", entry_id=None, now=NOW)
    with db.engine.begin() as conn:
        live = {
            "admin": _token(conn, "admin", "admin", [], False),
            "alice": _token(conn, "analyst", "alice", [], False),
            "bob": _token(conn, "analyst", "bob", [1], False),
            "isp": _token(conn, "isp", "isp-a", [1], False),
            "auditor": _token(conn, "auditor", "aud", [1], False),
        }
        revoked = _token(conn, "analyst", "gone", [], True)
        entry_ids = [_entry(conn, 1, n, "alice") for n in range(1, 4)]
        approvals = sa.Table("approvals", sa.MetaData(), autoload_with=conn)
        conn.execute(
            sa.insert(approvals).values(
                entry_id=entry_ids[0], round=1, actor="bob", at=_naive(conn, NOW)
            )
        )
    with db.read() as s:
        heads_before = (store_audit.head(s, None), store_audit.head(s, 1))

    migrate.upgrade(db)
    assert migrate.current_revision(db) == migrate.head_revision()

    with db.read() as s:
        for name, token in live.items():
            p = store_tokens.lookup_token(s, token)
            assert p is not None, name
            assert p.account_id is None  # unattached until an admin attaches it
        assert store_tokens.lookup_token(s, live["bob"]).lists == {"main"}  # type: ignore[union-attr]
        assert store_tokens.lookup_token(s, live["isp"]).role == "isp"  # type: ignore[union-attr]
        assert store_tokens.lookup_token(s, revoked) is None
        rows = s.execute(
            sa.text("SELECT id, status, submitted_by, url FROM entries ORDER BY id")
        ).all()
        assert [(r[0], r[1], r[2], r[3]) for r in rows] == [
            (i, "pending", "alice", f"http://example.org/{n}.html")
            for i, n in zip(entry_ids, range(1, 4), strict=True)
        ]
        assert s.execute(sa.text("SELECT actor FROM approvals")).scalars().all() == ["bob"]
        # The upgrade itself writes no audit record: chains are as they were.
        assert (store_audit.head(s, None), store_audit.head(s, 1)) == heads_before
        assert store_audit.verify(s, None) == heads_before[0]

    # Today's rule holds for unattached tokens: alice cannot approve her own entry.
    with pytest.raises(SelfApproval), db.transaction() as s:
        store_entries.approve(s, 1, entry_ids[1], actor="alice", actor_role="analyst", now=NOW)
    # After attaching her token to her person, the entries she added with it
    # before are hers: another token of hers cannot approve them either.
    with db.transaction() as s:
        _, account, _ = store_accounts.create_account(
            s, name="alice", grants=[store_accounts.RoleGrant("analyst", "*")], actor="t", now=NOW
        )
        p = store_tokens.lookup_token(s, live["alice"])
        assert p is not None
        store_accounts.attach_token(s, p.token_id, "alice", actor="t", now=NOW)
        second, _ = store_accounts.mint_person_token(
            s, account.id, role="analyst", list_name=None, name="alice-2", now=NOW
        )
        second_p = store_tokens.lookup_token(s, second)
        assert second_p is not None
    with db.read() as s:
        attached = store_tokens.lookup_token(s, live["alice"])
        assert attached is not None
        assert attached.account_id == account.id
    with pytest.raises(SelfApproval), db.transaction() as s:
        store_entries.approve(
            s,
            1,
            entry_ids[1],
            actor=second_p.name,
            actor_role="analyst",
            person=second_p.account_id,
            now=NOW,
        )
    with db.transaction() as s:
        row = store_entries.approve(s, 1, entry_ids[2], actor="bob", actor_role="analyst", now=NOW)
        assert row.status == "active"


def test_downgrade_from_head_to_0006_and_back(empty_db: Database) -> None:
    from alembic import command

    empty_db.migrate()
    config = migrate.alembic_config()
    with empty_db.engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "0006")
    with empty_db.engine.connect() as conn:
        inspector = sa.inspect(conn)
        assert "accounts" not in set(inspector.get_table_names())
        assert "account_id" not in {c["name"] for c in inspector.get_columns("tokens")}
    migrate.upgrade(empty_db)
    assert migrate.current_revision(empty_db) == migrate.head_revision()
