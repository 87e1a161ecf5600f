"""Safeguards (issue 16): the guard list, guard approvals, hosting evidence, referrals.

Creates ``guarded_hosts`` seeded from the shipped default list
(``blocklist/data/guarded_hosts.txt``, read once here); adds to ``entries``
the guard rule and its approval, the latest hosting evidence and the
referral state, and allows the status ``referred``.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from importlib import resources

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: The seed's creator (blocklist.auditlog.Actor.MIGRATION, frozen here).
_SEEDED_BY = "system:migration"

_OLD_STATUSES = "status IN ('pending', 'active', 'expired', 'removed')"
_NEW_STATUSES = "status IN ('pending', 'active', 'expired', 'removed', 'referred')"


def _seed_hosts() -> list[str]:
    text = resources.files("blocklist.data").joinpath("guarded_hosts.txt").read_text("utf-8")
    hosts: list[str] = []
    for line in text.splitlines():
        host = line.split("#", 1)[0].strip().lower()
        if host and host not in hosts:
            hosts.append(host)
    return hosts


def upgrade() -> None:
    """Create and seed ``guarded_hosts``; add the safeguard columns of ``entries``."""
    table = op.create_table(
        "guarded_hosts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("host", sa.String(length=253), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_guarded_hosts")),
        sa.UniqueConstraint("host", name=op.f("uq_guarded_hosts_host")),
    )
    # SQLite stores UTC without an offset (blocklist.store.models.UTCDateTime).
    now = datetime.now(UTC).replace(microsecond=0)
    if op.get_bind().dialect.name == "sqlite":
        now = now.replace(tzinfo=None)
    op.bulk_insert(
        table,
        [
            {"host": host, "note": "default", "created_at": now, "created_by": _SEEDED_BY}
            for host in _seed_hosts()
        ],
    )
    # batch_alter_table: SQLite rewrites the table to change a CHECK.
    with op.batch_alter_table("entries") as batch:
        batch.add_column(sa.Column("guard", sa.String(length=253), nullable=True))
        batch.add_column(sa.Column("guard_approved_by", sa.String(length=128), nullable=True))
        batch.add_column(sa.Column("guard_approved_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("guard_justification", sa.Text(), nullable=True))
        batch.add_column(sa.Column("hosting", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("referral", sa.String(length=16), nullable=True))
        batch.drop_constraint(op.f("ck_entries_status"), type_="check")
        batch.create_check_constraint(op.f("ck_entries_status"), _NEW_STATUSES)


def downgrade() -> None:
    """Drop the safeguard columns and ``guarded_hosts``.

    Referred entries become ``removed`` (never listed), so the old status
    constraint holds.
    """
    op.execute("UPDATE entries SET status = 'removed' WHERE status = 'referred'")
    with op.batch_alter_table("entries") as batch:
        batch.drop_constraint(op.f("ck_entries_status"), type_="check")
        batch.create_check_constraint(op.f("ck_entries_status"), _OLD_STATUSES)
        batch.drop_column("referral")
        batch.drop_column("hosting")
        batch.drop_column("guard_justification")
        batch.drop_column("guard_approved_at")
        batch.drop_column("guard_approved_by")
        batch.drop_column("guard")
    op.drop_table("guarded_hosts")
