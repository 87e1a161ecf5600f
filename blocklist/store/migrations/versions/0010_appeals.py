"""Appeals and transparency reports (issue 17).

``appeals`` (what an appeal names, never who filed it), ``appeal_links``
(an appeal attached to a matching entry, and its review),
``appeal_private`` (the appellant's message, contact and URL: erasable,
outside the audit chain) and ``transparency_reports`` (one signed note per
list and month, never re-signed).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | Sequence[str] | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create the five appeal and report tables."""
    op.create_table(
        "appeals",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("dedup_key", sa.LargeBinary(length=32), nullable=False),
        sa.Column("ref_prefix", sa.LargeBinary(length=10), nullable=True),
        sa.Column("has_url", sa.Boolean(), nullable=False),
        sa.Column("matched", sa.Boolean(), nullable=False),
        sa.Column("filed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_by", sa.String(length=128), nullable=True),
        sa.Column("duplicates", sa.Integer(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_appeals")),
    )
    op.create_index("ix_appeals_dedup", "appeals", ["dedup_key", "filed_at"])
    op.create_index("ix_appeals_filed", "appeals", ["filed_at"])
    op.create_table(
        "appeal_secrets",
        sa.Column("secret_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("appeal_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["appeal_id"], ["appeals.id"], name=op.f("fk_appeal_secrets_appeal_id_appeals")
        ),
        sa.PrimaryKeyConstraint("secret_hash", name=op.f("pk_appeal_secrets")),
    )
    op.create_index(
        op.f("ix_appeal_secrets_appeal_id"), "appeal_secrets", ["appeal_id"], unique=False
    )
    op.create_table(
        "appeal_links",
        sa.Column("appeal_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("entry_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("list_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attached_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("decided_by", sa.String(length=128), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "status IN ('open', 'suspended', 'upheld', 'removed')",
            name=op.f("ck_appeal_links_status"),
        ),
        sa.ForeignKeyConstraint(
            ["appeal_id"], ["appeals.id"], name=op.f("fk_appeal_links_appeal_id_appeals")
        ),
        sa.ForeignKeyConstraint(
            ["entry_id"], ["entries.id"], name=op.f("fk_appeal_links_entry_id_entries")
        ),
        sa.ForeignKeyConstraint(
            ["list_id"], ["lists.id"], name=op.f("fk_appeal_links_list_id_lists")
        ),
        sa.PrimaryKeyConstraint("appeal_id", "entry_id", name=op.f("pk_appeal_links")),
    )
    op.create_index("ix_appeal_links_list", "appeal_links", ["list_id", "status"])
    op.create_table(
        "appeal_private",
        sa.Column("appeal_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("contact", sa.Text(), nullable=True),
        sa.Column("url", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["appeal_id"], ["appeals.id"], name=op.f("fk_appeal_private_appeal_id_appeals")
        ),
        sa.PrimaryKeyConstraint("appeal_id", name=op.f("pk_appeal_private")),
    )
    op.create_table(
        "transparency_reports",
        sa.Column("list_id", sa.Integer(), nullable=False),
        sa.Column("period", sa.String(length=7), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["list_id"], ["lists.id"], name=op.f("fk_transparency_reports_list_id_lists")
        ),
        sa.PrimaryKeyConstraint("list_id", "period", name=op.f("pk_transparency_reports")),
    )


def downgrade() -> None:
    """Drop the appeal and report tables (reports are re-derivable; appeals are not)."""
    op.drop_table("transparency_reports")
    op.drop_table("appeal_private")
    op.drop_index(op.f("ix_appeal_secrets_appeal_id"), table_name="appeal_secrets")
    op.drop_table("appeal_secrets")
    op.drop_index("ix_appeal_links_list", table_name="appeal_links")
    op.drop_table("appeal_links")
    op.drop_index("ix_appeals_filed", table_name="appeals")
    op.drop_index("ix_appeals_dedup", table_name="appeals")
    op.drop_table("appeals")
