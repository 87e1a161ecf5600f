"""Bulk imports: an ``imports`` table and ``entries.import_id`` (approve an import as a group).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create ``imports`` and add the nullable ``entries.import_id`` with its index."""
    op.create_table(
        "imports",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("list_id", sa.Integer(), nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["list_id"], ["lists.id"], name=op.f("fk_imports_list_id_lists")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_imports")),
    )
    op.create_index("ix_imports_list_id", "imports", ["list_id", "id"], unique=False)
    # batch_alter_table: SQLite cannot add a foreign key to an existing table
    # in place (it copies the table); PostgreSQL gets plain ALTER TABLE.
    with op.batch_alter_table("entries") as batch:
        batch.add_column(sa.Column("import_id", sa.Integer(), nullable=True))
        batch.create_foreign_key(
            op.f("fk_entries_import_id_imports"), "imports", ["import_id"], ["id"]
        )
        batch.create_index("ix_entries_import", ["import_id", "id"], unique=False)


def downgrade() -> None:
    """Drop ``entries.import_id`` and ``imports`` (entries stay; only the grouping goes)."""
    with op.batch_alter_table("entries") as batch:
        batch.drop_index("ix_entries_import")
        batch.drop_constraint(op.f("fk_entries_import_id_imports"), type_="foreignkey")
        batch.drop_column("import_id")
    op.drop_index("ix_imports_list_id", table_name="imports")
    op.drop_table("imports")
