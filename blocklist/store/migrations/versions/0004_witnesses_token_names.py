"""Registered witnesses, unique token names, an index for the global-head records.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06

Issue 12, items 1 and 13:

- ``witness_keys``: the witness keys an administrator registered per list.
  ``witness_cosignatures`` is recreated with one row per registered
  witness (``witness_id``). **Stored cosignatures are deleted**: no key is
  registered when this migration runs, and a stored row names its key only
  by name and 4-byte key ID, not by public key, so it cannot be tied to a
  key registered later (an attacker's key with a colliding ID would have
  its line served as the real witness's). After upgrading, register the
  witnesses (``cleanfeed witness add``); each one's next ``cleanfeed audit
  witness --post`` run restores its line (docs/operations.md).
- ``token_names``: each token not revoked claims its name for its role and
  each of its lists (0: every list), primary key ``(role, list_id,
  name)``. **Existing duplicates**: the oldest token (lowest id) keeps the
  name; each later token whose claim would clash is renamed
  ``<name>#<id>`` and a ``token.rename`` record (actor
  ``system:migration``) is appended to the deployment audit chain, so the
  change is itself on the record. No token is revoked: ISPs keep working.
- ``ix_audit_log_action``: the publisher finds a list chain's latest
  ``global.head`` record without walking the chain.

Downgrade drops the new tables (registrations and name claims are lost;
renamed tokens keep their new names) and recreates the empty 0002
``witness_cosignatures``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: The deployment (global) audit chain (blocklist.store.audit.DEPLOYMENT_CHAIN).
_GLOBAL_CHAIN = 0
#: Longest token name (blocklist.store.models.TOKEN_NAME_LENGTH).
_NAME_LENGTH = 128
#: blocklist.auditlog: record hash = SHA-256(domain || prev || canonical JSON).
_AUDIT_DOMAIN = b"cleanfeed-audit/v1\n"


def _chain_hash(prev: bytes, record: dict[str, Any]) -> bytes:
    # The record format of blocklist.auditlog (cleanfeed-audit/v1), written
    # out here so this migration keeps working whatever the code becomes.
    text = json.dumps(
        record, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )
    return hashlib.sha256(_AUDIT_DOMAIN + prev + text.encode("utf-8")).digest()


def _scopes(role: str, list_ids: set[int]) -> set[int]:
    # blocklist.store.tokens.claim_scopes: admin tokens and tokens without
    # lists act on every list (0).
    return {0} if role == "admin" or not list_ids else set(list_ids)


def _claim_names(conn: sa.Connection) -> None:
    tokens = sa.table(
        "tokens",
        sa.column("id", sa.Integer),
        sa.column("name", sa.String),
        sa.column("role", sa.String),
        sa.column("revoked_at", sa.DateTime),
    )
    token_lists = sa.table(
        "token_lists", sa.column("token_id", sa.Integer), sa.column("list_id", sa.Integer)
    )
    token_names = sa.table(
        "token_names",
        sa.column("role", sa.String),
        sa.column("list_id", sa.Integer),
        sa.column("name", sa.String),
        sa.column("token_id", sa.Integer),
    )
    audit_log = sa.table(
        "audit_log",
        sa.column("chain", sa.Integer),
        sa.column("seq", sa.BigInteger),
        sa.column("list_id", sa.Integer),
        sa.column("time", sa.DateTime(timezone=True)),
        sa.column("actor", sa.String),
        sa.column("action", sa.String),
        sa.column("entry_id", sa.Integer),
        sa.column("details", sa.JSON),
        sa.column("prev_hash", sa.LargeBinary),
        sa.column("hash", sa.LargeBinary),
    )
    lists_of: dict[int, set[int]] = {}
    for token_id, list_id in conn.execute(sa.select(token_lists.c.token_id, token_lists.c.list_id)):
        lists_of.setdefault(token_id, set()).add(list_id)
    rows = conn.execute(
        sa.select(tokens.c.id, tokens.c.name, tokens.c.role)
        .where(tokens.c.revoked_at.is_(None))
        .order_by(tokens.c.id)
    ).all()
    taken: dict[tuple[str, str], set[int]] = {}

    def clashes(role: str, name: str, scopes: set[int]) -> bool:
        held = taken.get((role, name))
        if not held:
            return False
        return 0 in held or 0 in scopes or bool(held & scopes)

    head = conn.execute(
        sa.select(audit_log.c.seq, audit_log.c.hash)
        .where(audit_log.c.chain == _GLOBAL_CHAIN)
        .order_by(audit_log.c.seq.desc())
        .limit(1)
    ).first()
    seq, prev = (head.seq, bytes(head.hash)) if head is not None else (0, bytes(32))
    when = datetime.now(UTC).replace(microsecond=0)
    for token_id, name, role in rows:
        scopes = _scopes(role, lists_of.get(token_id, set()))
        new_name = name
        attempt = 0
        while clashes(role, new_name, scopes):
            attempt += 1
            suffix = f"#{token_id}" if attempt == 1 else f"#{token_id}-{attempt}"
            new_name = name[: _NAME_LENGTH - len(suffix)] + suffix
        if new_name != name:
            conn.execute(sa.update(tokens).where(tokens.c.id == token_id).values(name=new_name))
            seq += 1
            details = {
                "token": token_id,
                "name": new_name,
                "previous_name": name,
                "reason": "another token of this role and list had the name (migration 0004)",
            }
            record = {
                "seq": seq,
                "time": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "actor": "system:migration",
                "action": "token.rename",
                "list": None,
                "entry": None,
                "details": details,
            }
            digest = _chain_hash(prev, record)
            # SQLite keeps UTC without an offset (blocklist.store.models.UTCDateTime).
            stored_time = when.replace(tzinfo=None) if conn.dialect.name == "sqlite" else when
            conn.execute(
                sa.insert(audit_log).values(
                    chain=_GLOBAL_CHAIN,
                    seq=seq,
                    list_id=None,
                    time=stored_time,
                    actor="system:migration",
                    action="token.rename",
                    entry_id=None,
                    details=details,
                    prev_hash=prev,
                    hash=digest,
                )
            )
            prev = digest
        taken.setdefault((role, new_name), set()).update(scopes)
        for scope in sorted(scopes):
            conn.execute(
                sa.insert(token_names).values(
                    role=role, list_id=scope, name=new_name, token_id=token_id
                )
            )


def upgrade() -> None:
    """Create ``witness_keys`` and ``token_names``; recreate ``witness_cosignatures``."""
    op.create_index("ix_audit_log_action", "audit_log", ["chain", "action", "seq"])
    op.create_table(
        "witness_keys",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("list_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("key_id", sa.LargeBinary(length=4), nullable=False),
        sa.Column("public_key", sa.LargeBinary(length=32), nullable=False),
        sa.Column("vkey", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=False),
        sa.ForeignKeyConstraint(
            ["list_id"], ["lists.id"], name=op.f("fk_witness_keys_list_id_lists")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_witness_keys")),
        sa.UniqueConstraint(
            "list_id", "name", "key_id", name=op.f("uq_witness_keys_list_id_name_key_id")
        ),
    )
    # Stored lines cannot be tied to a registered public key: dropped (see
    # the module docstring).
    op.drop_table("witness_cosignatures")
    op.create_table(
        "witness_cosignatures",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("list_id", sa.Integer(), nullable=False),
        sa.Column("witness_id", sa.Integer(), nullable=False),
        sa.Column("text_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("timestamp", sa.BigInteger(), nullable=False),
        sa.Column("line", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["list_id"], ["lists.id"], name=op.f("fk_witness_cosignatures_list_id_lists")
        ),
        sa.ForeignKeyConstraint(
            ["witness_id"],
            ["witness_keys.id"],
            name=op.f("fk_witness_cosignatures_witness_id_witness_keys"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_witness_cosignatures")),
        sa.UniqueConstraint("witness_id", name=op.f("uq_witness_cosignatures_witness_id")),
    )
    op.create_index(
        "ix_witness_cosignatures_text", "witness_cosignatures", ["list_id", "text_hash"]
    )
    op.create_table(
        "token_names",
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("list_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("token_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["token_id"], ["tokens.id"], name=op.f("fk_token_names_token_id_tokens")
        ),
        sa.PrimaryKeyConstraint("role", "list_id", "name", name=op.f("pk_token_names")),
    )
    op.create_index(op.f("ix_token_names_token_id"), "token_names", ["token_id"])
    _claim_names(op.get_bind())


def downgrade() -> None:
    """Drop the new tables; recreate the (empty) 0002 ``witness_cosignatures``."""
    op.drop_index(op.f("ix_token_names_token_id"), table_name="token_names")
    op.drop_table("token_names")
    op.drop_index("ix_witness_cosignatures_text", table_name="witness_cosignatures")
    op.drop_table("witness_cosignatures")
    op.drop_table("witness_keys")
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
    op.drop_index("ix_audit_log_action", table_name="audit_log")
