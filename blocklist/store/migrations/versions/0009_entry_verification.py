"""Re-verification state per entry and the latest run per list (issue 16 item 4).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create ``entry_verification`` and ``verification_runs`` (no URL, no body: by design)."""
    op.create_table(
        "entry_verification",
        sa.Column("entry_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("list_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("checked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("consecutive_gone", sa.Integer(), nullable=False),
        sa.Column("last_live_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("hosting", sa.JSON(), nullable=False),
        sa.Column("vantage_points", sa.JSON(), nullable=False),
        sa.Column("expiry_proposed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("referral_proposed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("flagged_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("approval_round", sa.Integer(), nullable=False),
        sa.CheckConstraint(
            "status IN ('live', 'gone', 'unreachable', 'moved', 'unchecked')",
            name=op.f("ck_entry_verification_status"),
        ),
        sa.ForeignKeyConstraint(
            ["entry_id"], ["entries.id"], name=op.f("fk_entry_verification_entry_id_entries")
        ),
        sa.ForeignKeyConstraint(
            ["list_id"], ["lists.id"], name=op.f("fk_entry_verification_list_id_lists")
        ),
        sa.PrimaryKeyConstraint("entry_id", name=op.f("pk_entry_verification")),
    )
    op.create_index(
        "ix_entry_verification_list", "entry_verification", ["list_id", "status"], unique=False
    )
    op.create_table(
        "verification_runs",
        sa.Column("list_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("checked", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["list_id"], ["lists.id"], name=op.f("fk_verification_runs_list_id_lists")
        ),
        sa.PrimaryKeyConstraint("list_id", name=op.f("pk_verification_runs")),
    )


def downgrade() -> None:
    """Drop both tables (the state is re-derived by the next checks)."""
    op.drop_table("verification_runs")
    op.drop_index("ix_entry_verification_list", table_name="entry_verification")
    op.drop_table("entry_verification")
