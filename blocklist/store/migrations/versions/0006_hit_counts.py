"""Hit counts: per ISP, ISO week and entry, posted by ``cleanfeed isp run`` (opt-in).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create ``hit_counts`` (no address, URL or time finer than the week: by design)."""
    op.create_table(
        "hit_counts",
        sa.Column("list_id", sa.Integer(), nullable=False),
        sa.Column("week", sa.String(length=8), nullable=False),
        sa.Column("token_id", sa.Integer(), nullable=False),
        sa.Column("entry_id", sa.Integer(), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("count > 0", name=op.f("ck_hit_counts_count_positive")),
        sa.ForeignKeyConstraint(
            ["entry_id"], ["entries.id"], name=op.f("fk_hit_counts_entry_id_entries")
        ),
        sa.ForeignKeyConstraint(
            ["list_id"], ["lists.id"], name=op.f("fk_hit_counts_list_id_lists")
        ),
        sa.ForeignKeyConstraint(
            ["token_id"], ["tokens.id"], name=op.f("fk_hit_counts_token_id_tokens")
        ),
        sa.PrimaryKeyConstraint(
            "list_id", "week", "token_id", "entry_id", name=op.f("pk_hit_counts")
        ),
    )


def downgrade() -> None:
    """Drop ``hit_counts`` (the counts are statistics, not history)."""
    op.drop_table("hit_counts")
