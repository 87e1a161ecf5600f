"""Witness cosignatures: lines served appended to the checkpoint they cosign.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create ``witness_cosignatures``."""
    op.create_table(
        "witness_cosignatures",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("list_id", sa.Integer(), nullable=False),
        sa.Column("key_name", sa.String(length=255), nullable=False),
        sa.Column("key_id", sa.LargeBinary(length=4), nullable=False),
        sa.Column("text_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("timestamp", sa.BigInteger(), nullable=False),
        sa.Column("line", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["list_id"], ["lists.id"], name=op.f("fk_witness_cosignatures_list_id_lists")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_witness_cosignatures")),
        sa.UniqueConstraint(
            "list_id",
            "key_name",
            "key_id",
            name=op.f("uq_witness_cosignatures_list_id_key_name_key_id"),
        ),
    )


def downgrade() -> None:
    """Drop ``witness_cosignatures``."""
    op.drop_table("witness_cosignatures")
