"""Persons' accounts: accounts, roles, pending grants, sessions, login back-off.

Issue 15, items 1-5. Adds the tables of :mod:`blocklist.store.accounts` and
three nullable columns: ``tokens.account_id`` (the person a token belongs
to), ``entries.submitted_person`` and ``approvals.person`` (the person who
opened a round and who approved it, so four-eyes counts persons).

Existing rows are untouched: every token keeps working, unattached (its
name stays its four-eyes identity, today's rule) until an administrator
attaches it to a person (``cleanfeed account attach-token``).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create the account tables and the three person columns."""
    op.create_table(
        "accounts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.Column("password_hash", sa.Text(), nullable=True),
        sa.Column("totp_secret", sa.LargeBinary(), nullable=True),
        sa.Column("totp_last_step", sa.BigInteger(), nullable=True),
        sa.Column("enrol_token_hash", sa.LargeBinary(length=32), nullable=True),
        sa.Column("enrol_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("enrolled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_accounts")),
        sa.UniqueConstraint("name", name=op.f("uq_accounts_name")),
        sa.UniqueConstraint("enrol_token_hash", name=op.f("uq_accounts_enrol_token_hash")),
    )
    op.create_table(
        "account_roles",
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("list_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("granted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("granted_by", sa.String(length=128), nullable=False),
        sa.CheckConstraint(
            "role IN ('admin', 'analyst', 'auditor')", name=op.f("ck_account_roles_role")
        ),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_account_roles_account_id_accounts")
        ),
        sa.PrimaryKeyConstraint("account_id", "list_id", "role", name=op.f("pk_account_roles")),
    )
    op.create_table(
        "account_pending_grants",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("list_id", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("requested_by", sa.String(length=128), nullable=False),
        sa.Column("requested_by_person", sa.Integer(), nullable=True),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "role IN ('admin', 'analyst', 'auditor')",
            name=op.f("ck_account_pending_grants_role"),
        ),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_account_pending_grants_account_id_accounts"),
        ),
        sa.ForeignKeyConstraint(
            ["requested_by_person"],
            ["accounts.id"],
            name=op.f("fk_account_pending_grants_requested_by_person_accounts"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_account_pending_grants")),
        sa.UniqueConstraint(
            "account_id",
            "list_id",
            "role",
            name=op.f("uq_account_pending_grants_account_id_list_id_role"),
        ),
    )
    op.create_table(
        "account_sessions",
        sa.Column("id_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("public_id", sa.String(length=32), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("csrf_token", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_account_sessions_account_id_accounts")
        ),
        sa.PrimaryKeyConstraint("id_hash", name=op.f("pk_account_sessions")),
        sa.UniqueConstraint("public_id", name=op.f("uq_account_sessions_public_id")),
    )
    op.create_index(
        op.f("ix_account_sessions_account_id"), "account_sessions", ["account_id"], unique=False
    )
    op.create_table(
        "login_failures",
        sa.Column("key", sa.LargeBinary(length=32), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("last_failure_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("blocked_until", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_login_failures")),
    )
    op.create_index("ix_login_failures_last", "login_failures", ["last_failure_at"], unique=False)
    for table, column in (
        ("tokens", "account_id"),
        ("entries", "submitted_person"),
        ("approvals", "person"),
    ):
        _add_person_column(table, column)
    op.create_index(op.f("ix_tokens_account_id"), "tokens", ["account_id"], unique=False)


def _add_person_column(table: str, column: str) -> None:
    """Add a nullable column referencing ``accounts.id``.

    SQLite: ``ALTER TABLE … ADD COLUMN … REFERENCES`` in place (allowed for
    a NULL default), not batch mode's copy-and-move: dropping the old
    ``tokens`` or ``entries`` table would violate the foreign keys of the
    rows that point at them (``foreign_keys=ON``). PostgreSQL: a named
    constraint, as the naming convention gives it.
    """
    name = f"fk_{table}_{column}_accounts"
    if op.get_bind().dialect.name == "sqlite":
        # Alembic refuses constraints outside batch mode on SQLite; the
        # statement is SQLite's own (sqlite.org/lang_altertable.html).
        op.execute(
            f"ALTER TABLE {table} ADD COLUMN {column} INTEGER "
            f"CONSTRAINT {name} REFERENCES accounts (id)"
        )
        return
    op.add_column(table, sa.Column(column, sa.Integer(), nullable=True))
    op.create_foreign_key(op.f(name), table, "accounts", [column], ["id"])


def downgrade() -> None:
    """Drop the person columns and the account tables (tokens keep working)."""
    sqlite = op.get_bind().dialect.name == "sqlite"
    op.drop_index(op.f("ix_tokens_account_id"), table_name="tokens")
    for table, column in (
        ("approvals", "person"),
        ("entries", "submitted_person"),
        ("tokens", "account_id"),
    ):
        # SQLite: batch mode's copy leaves the column (and its unnamed
        # reflected constraint) out; PostgreSQL drops the named constraint.
        with op.batch_alter_table(table) as batch:
            if not sqlite:
                batch.drop_constraint(op.f(f"fk_{table}_{column}_accounts"), type_="foreignkey")
            batch.drop_column(column)
    op.drop_index("ix_login_failures_last", table_name="login_failures")
    op.drop_table("login_failures")
    op.drop_index(op.f("ix_account_sessions_account_id"), table_name="account_sessions")
    op.drop_table("account_sessions")
    op.drop_table("account_pending_grants")
    op.drop_table("account_roles")
    op.drop_table("accounts")
