"""Contract: an existing deployment upgrades through migration 0004 (both backends).

Migration 0004 (issue 12, items 1 and 13) recreates ``witness_cosignatures``
(stored lines are dropped: none can be tied to a registered key) and claims
token names per role and list; existing duplicates are renamed
``<name>#<id>`` (the oldest keeps the name) with a ``token.rename`` record
in the global audit chain, which must still verify.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from support.contract_helpers import NOW

from blocklist.auditlog import Action, Actor
from blocklist.store import Database, migrate
from blocklist.store import audit as store_audit
from blocklist.store.models import ListRow, TokenNameRow, TokenRow


def _tokens_0003(conn: sa.Connection, rows: list[tuple[str, str, list[int], bool]]) -> list[int]:
    meta = sa.MetaData()
    tokens = sa.Table("tokens", meta, autoload_with=conn)
    token_lists = sa.Table("token_lists", meta, autoload_with=conn)
    ids = []
    for i, (name, role, lists, revoked) in enumerate(rows):
        stamp: datetime | None = NOW if revoked else None
        result = conn.execute(
            sa.insert(tokens).values(
                name=name,
                role=role,
                token_hash=bytes([i + 1]) * 32,
                prefix=f"cf_{role}_x{i}",
                plaintext=False,
                full_audit=False,
                expires_at=None,
                revoked_at=stamp.replace(tzinfo=None) if stamp else None,
                last_used_at=None,
                created_at=NOW.replace(tzinfo=None),
                created_by="test",
            )
        )
        token_id = int(result.inserted_primary_key[0])
        for list_id in lists:
            conn.execute(sa.insert(token_lists).values(token_id=token_id, list_id=list_id))
        ids.append(token_id)
    return ids


def test_upgrade_from_0003_renames_duplicates_and_drops_stored_lines(empty_db: Database) -> None:
    db = empty_db
    migrate.upgrade(db, "0003")
    # Lists as 0003 stores them (raw rows: the ORM models are at head, and
    # later migrations add columns, such as entries.import_id in 0005).
    lists = ListRow.__table__
    with db.engine.begin() as conn:
        for list_id, name in ((1, "main"), (2, "other")):
            conn.execute(
                lists.insert().values(
                    id=list_id,
                    name=name,
                    origin=f"example.org/{name}",
                    canary_url=f"http://canary.example.org/{name}",
                    approvals_required=1,
                    public=False,
                    created_at=NOW,
                    snapshot_floor=0,
                )
            )
    main, other = 1, 2
    with db.transaction() as s:
        store_audit.append(s, list_id=None, actor="test", action=Action.TOKEN_CREATE, now=NOW)
    with db.engine.begin() as conn:
        ids = _tokens_0003(
            conn,
            [
                ("isp-a", "isp", [main], False),  # keeps its name
                ("isp-a", "isp", [main, other], False),  # clashes on main: renamed
                ("isp-a", "isp", [other], False),  # the first holds it on main only: free here
                ("isp-a", "auditor", [main], False),  # another role: fine
                ("alice", "analyst", [], False),  # every list
                ("alice", "analyst", [other], False),  # clashes with every list: renamed
                ("alice", "analyst", [main], True),  # revoked: left alone
            ],
        )
        witness = sa.Table("witness_cosignatures", sa.MetaData(), autoload_with=conn)
        conn.execute(
            sa.insert(witness).values(
                list_id=main,
                key_name="sock.example",
                key_id=b"\x00\x01\x02\x03",
                text_hash=bytes(32),
                size=1,
                timestamp=1,
                line="\u2014 sock.example AAAA",
                created_at=NOW.replace(tzinfo=None),
            )
        )
    migrate.upgrade(db, "0004")
    assert migrate.current_revision(db) == "0004"
    with db.read() as s:
        # Columns, not the ORM row: later migrations add token columns (0007).
        names = {i: n for i, n in s.execute(sa.select(TokenRow.id, TokenRow.name)).all()}
        assert [names[i] for i in ids] == [
            "isp-a",
            f"isp-a#{ids[1]}",
            "isp-a",
            "isp-a",
            "alice",
            f"alice#{ids[5]}",
            "alice",
        ]
        claims = {
            (c.role, c.list_id, c.name, c.token_id) for c in s.scalars(sa.select(TokenNameRow))
        }
        assert ("isp", main, "isp-a", ids[0]) in claims
        assert ("isp", other, "isp-a", ids[2]) in claims
        assert ("isp", main, f"isp-a#{ids[1]}", ids[1]) in claims
        assert ("analyst", 0, "alice", ids[4]) in claims
        assert not any(c[3] == ids[6] for c in claims)  # revoked tokens claim nothing
        global_records = store_audit.records(s, None)
        renames = [r for r in global_records if r.action == Action.TOKEN_RENAME]
        assert [(r.actor, r.details["token"], r.details["previous_name"]) for r in renames] == [
            (Actor.MIGRATION, ids[1], "isp-a"),
            (Actor.MIGRATION, ids[5], "alice"),
        ]
        assert store_audit.verify(s, None).seq == len(global_records) == 3
        assert s.execute(sa.text("SELECT count(*) FROM witness_cosignatures")).scalar() == 0
        assert s.execute(sa.text("SELECT count(*) FROM witness_keys")).scalar() == 0


def test_downgrade_to_0003_restores_the_old_witness_table(empty_db: Database) -> None:
    from alembic import command

    empty_db.migrate()
    config = migrate.alembic_config()
    with empty_db.engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "0003")
    with empty_db.engine.connect() as conn:
        inspector = sa.inspect(conn)
        tables = set(inspector.get_table_names())
        columns = {c["name"] for c in inspector.get_columns("witness_cosignatures")}
    assert "witness_keys" not in tables
    assert "token_names" not in tables
    assert {"key_name", "key_id"} <= columns
    migrate.upgrade(empty_db)
    assert migrate.current_revision(empty_db) == migrate.head_revision()
