"""Contract: an existing deployment upgrades through migration 0008 (both backends).

Migration 0008 (issue 16) seeds the guard list from the shipped default,
adds the safeguard columns of ``entries`` (NULL for existing entries: no
guard, no evidence, no referral) and allows the status ``referred``; its
downgrade turns referred entries into ``removed`` (never listed) so the old
status constraint holds.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import command
from support.contract_helpers import NOW, insert_list_row

from blocklist.store import Database, migrate
from blocklist.store.guards import default_guards
from blocklist.store.models import EntryRow, GuardedHostRow


def test_upgrade_through_0008_seeds_guards_and_keeps_entries(empty_db: Database) -> None:
    db = empty_db
    migrate.upgrade(db, "0006")
    with db.engine.begin() as conn:
        insert_list_row(conn)
        entries = sa.Table("entries", sa.MetaData(), autoload_with=conn)
        conn.execute(
            entries.insert().values(
                id=1, list_id=1, expression="bad.example.com/a.html", hash=bytes(32),
                host="bad.example.com", url="http://bad.example.com/a.html", scope="page",
                reason="r", created_by="alice", created_at=NOW.replace(tzinfo=None),
                status="pending", listed=False, needs_publish=False, approval_round=1,
                submitted_by="alice",
            )
        )  # fmt: skip
    migrate.upgrade(db, "0008")
    with db.read() as s:
        hosts = set(s.scalars(sa.select(GuardedHostRow.host)))
        entry = s.get(EntryRow, 1)
        assert entry is not None
        assert (entry.guard, entry.hosting, entry.referral) == (None, None, None)
    assert hosts == set(default_guards())
    with db.engine.begin() as conn:
        conn.execute(sa.update(EntryRow.__table__).values(status="referred"))

    config = migrate.alembic_config()
    with db.engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "0006")
    with db.engine.connect() as conn:
        assert conn.scalar(sa.text("SELECT status FROM entries WHERE id = 1")) == "removed"
        assert "guarded_hosts" not in sa.inspect(conn).get_table_names()
