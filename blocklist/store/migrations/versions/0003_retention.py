"""Retention: a per-list snapshot floor and a mark on entries whose plaintext was pruned.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add ``lists.snapshot_floor`` (0: nothing pruned) and ``entries.plaintext_pruned_at``."""
    # batch_alter_table: SQLite cannot ALTER a column's constraints in place;
    # on PostgreSQL it issues plain ALTER TABLE statements.
    with op.batch_alter_table("lists") as batch:
        batch.add_column(
            sa.Column("snapshot_floor", sa.BigInteger(), nullable=False, server_default="0")
        )
    with op.batch_alter_table("entries") as batch:
        batch.add_column(
            sa.Column("plaintext_pruned_at", sa.DateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    """Drop the two columns (pruned data does not come back)."""
    with op.batch_alter_table("entries") as batch:
        batch.drop_column("plaintext_pruned_at")
    with op.batch_alter_table("lists") as batch:
        batch.drop_column("snapshot_floor")
