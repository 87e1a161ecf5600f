"""SQLAlchemy 2 models: the server's persistent state.

Conventions:

- Hashes are raw 32-byte values (``BYTEA`` / ``BLOB``), compared and sorted
  bytewise by both backends, which is the order DESIGN.md fixes for
  snapshots and statements.
- Times are timezone-aware UTC (:class:`UTCDateTime`); SQLite has no zone
  type, so UTC is stored without an offset and re-attached on load.
- Nothing that forms the signed history is ever updated in place: versions,
  memberships' ``added_version``, tree hashes, keyrings and the audit log
  are append-only. ``memberships.removed_version`` is set once.
- Constraint names follow :data:`NAMING_CONVENTION` so that migrations name
  them identically on every backend.

The initial Alembic migration (``migrations/versions/0001_initial.py``)
creates exactly this schema; a contract test compares the two.

Why this is one file of more than 800 lines: it is the one idea "the tables
Alembic's migrations must match". It holds declarations (and the one column
type they share), no service logic: one :class:`Base` whose metadata the
contract test ``test_contract_migrations`` compares with the migration head
on both backends, and whose tables reference each other across every area
(approvals and appeal links point at entries; entries, memberships and
versions at lists; tokens and sessions at accounts). The conventions above
(:class:`UTCDateTime`, :data:`NAMING_CONVENTION`, the column lengths) hold
for every table alike. Split by area, the metadata would be complete only
once every part was imported, and a reader checking a migration against the
schema would have to gather it from several files.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

__all__ = [
    "ACCOUNT_ROLES",
    "ACTION_LENGTH",
    "ACTOR_LENGTH",
    "APPEAL_OUTCOMES",
    "APPEAL_SECRET_HASH_BYTES",
    "CATEGORY_LENGTH",
    "ENTRY_STATUSES",
    "GUARD_HOST_LENGTH",
    "HASH_BYTES",
    "NAME_LENGTH",
    "NAMING_CONVENTION",
    "ORIGIN_LENGTH",
    "REFERENCE_LENGTH",
    "REFERRAL_OVERRIDDEN",
    "REFERRAL_PROPOSED",
    "ROLES",
    "SCOPES",
    "STATE_VECTOR_BYTES",
    "STATUS_ACTIVE",
    "STATUS_EXPIRED",
    "STATUS_PENDING",
    "STATUS_REFERRED",
    "STATUS_REMOVED",
    "TOKEN_NAME_LENGTH",
    "TOKEN_PREFIX_LENGTH",
    "WITNESS_NAME_LENGTH",
    "AccountRoleRow",
    "AccountRow",
    "AppealLinkRow",
    "AppealPrivateRow",
    "AppealRow",
    "AppealSecretRow",
    "ApprovalRow",
    "AuditRow",
    "Base",
    "CheckpointHistoryRow",
    "CheckpointRow",
    "EntryRow",
    "GuardedHostRow",
    "HitCountRow",
    "ImportRow",
    "IspSeenRow",
    "KeyringRow",
    "ListRow",
    "LoginFailureRow",
    "MembershipRow",
    "PendingGrantRow",
    "PublishRequestRow",
    "SessionRow",
    "TokenListRow",
    "TokenNameRow",
    "TokenRow",
    "TransparencyReportRow",
    "TreeHashRow",
    "UTCDateTime",
    "VerificationRow",
    "VerificationRunRow",
    "VersionRow",
    "WitnessCosignatureRow",
    "WitnessKeyRow",
]

#: Deterministic constraint names (Alembic "naming conventions").
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

#: Entry status values (see :mod:`blocklist.store.entries`).
STATUS_PENDING = "pending"
STATUS_ACTIVE = "active"
STATUS_EXPIRED = "expired"
STATUS_REMOVED = "removed"
#: Hosted in the list's home country as observed (issue 16 item 3): handed
#: to takedown and the police, never on the list (migration 0008).
STATUS_REFERRED = "referred"
ENTRY_STATUSES = (
    STATUS_PENDING,
    STATUS_ACTIVE,
    STATUS_EXPIRED,
    STATUS_REMOVED,
    STATUS_REFERRED,
)

#: ``entries.referral``: a referral analysts should decide on, and an
#: administrator's override of one (migration 0008).
REFERRAL_PROPOSED = "proposed"
REFERRAL_OVERRIDDEN = "overridden"

#: Longest guarded host name (a DNS name is at most 253 characters).
GUARD_HOST_LENGTH = 253

#: Entry scopes (DESIGN.md, "Entries: canonical expressions").
SCOPES = ("page", "prefix", "host")

#: Token roles (DESIGN.md, "API shape").
ROLES = ("admin", "analyst", "isp", "auditor")

#: Roles a person's account may hold (issue 15); ISPs are organisations.
ACCOUNT_ROLES = ("admin", "analyst", "auditor")

#: Column sizes. Names and actors are short identifiers; the caps in the
#: services are the same numbers so a valid value always fits.
NAME_LENGTH = 64
ORIGIN_LENGTH = 255
ACTOR_LENGTH = 128
ACTION_LENGTH = 64
REFERENCE_LENGTH = 128
CATEGORY_LENGTH = 64
TOKEN_NAME_LENGTH = 128
TOKEN_PREFIX_LENGTH = 32
#: Signed-note key names are at most this long in practice; the column of
#: migration 0002 had the same size.
WITNESS_NAME_LENGTH = 255

HASH_BYTES = 32
STATE_VECTOR_BYTES = 2048


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every backend.

    Refuses naive datetimes on the way in (an unlabelled local time in a
    signed log would be ambiguous) and always returns aware UTC values.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Convert to UTC; SQLite stores it without an offset."""
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: store times must be timezone-aware")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Return an aware UTC datetime."""
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def _hash_column() -> LargeBinary:
    return LargeBinary(HASH_BYTES)


class Base(DeclarativeBase):
    """Declarative base carrying the naming convention."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class ListRow(Base):
    """A blocklist: one signed log with its own origin, keyring and audit chain."""

    __tablename__ = "lists"
    __table_args__ = (CheckConstraint("approvals_required IN (1, 2)", name="approvals_required"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(NAME_LENGTH), unique=True)
    origin: Mapped[str] = mapped_column(String(ORIGIN_LENGTH), unique=True)
    home_country: Mapped[str | None] = mapped_column(String(2))
    canary_url: Mapped[str] = mapped_column(Text)
    # use_alter: lists and entries reference each other; the constraint is
    # added after both tables exist (and dropped first).
    canary_entry_id: Mapped[int | None] = mapped_column(
        Integer, ForeignKey("entries.id", use_alter=True)
    )
    approvals_required: Mapped[int] = mapped_column(SmallInteger)
    public: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # Retention (blocklist.store.retention): snapshots of versions below this
    # one are pruned and answered 410. Only ever raised.
    snapshot_floor: Mapped[int] = mapped_column(BigInteger, server_default="0")


class EntryRow(Base):
    """One expression on a list, with its curation state.

    ``status`` is what analysts decided; ``listed`` is what the latest
    published version contains. ``needs_publish`` is ``listed != (status ==
    'active')``, kept as an indexed flag so the publisher finds its work in
    O(changes).
    """

    __tablename__ = "entries"
    __table_args__ = (
        UniqueConstraint("list_id", "hash"),
        CheckConstraint(
            "status IN ('pending', 'active', 'expired', 'removed', 'referred')", name="status"
        ),
        CheckConstraint("scope IN ('page', 'prefix', 'host')", name="scope"),
        Index("ix_entries_publish", "list_id", "needs_publish", "id"),
        Index("ix_entries_expiry", "list_id", "status", "expires_at"),
        Index("ix_entries_host", "list_id", "host"),
        Index("ix_entries_reference", "list_id", "reference"),
        Index("ix_entries_added", "list_id", "added_version"),
        Index("ix_entries_import", "import_id", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    list_id: Mapped[int] = mapped_column(Integer, ForeignKey("lists.id"))
    expression: Mapped[str] = mapped_column(Text)
    hash: Mapped[bytes] = mapped_column(_hash_column())
    host: Mapped[str] = mapped_column(Text)
    url: Mapped[str] = mapped_column(Text)
    scope: Mapped[str] = mapped_column(String(8))
    reason: Mapped[str] = mapped_column(Text)
    reference: Mapped[str | None] = mapped_column(String(REFERENCE_LENGTH))
    category: Mapped[str | None] = mapped_column(String(CATEGORY_LENGTH))
    hosting_country: Mapped[str | None] = mapped_column(String(2))
    created_by: Mapped[str] = mapped_column(String(ACTOR_LENGTH))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    status: Mapped[str] = mapped_column(String(8))
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    listed: Mapped[bool] = mapped_column(Boolean)
    needs_publish: Mapped[bool] = mapped_column(Boolean)
    added_version: Mapped[int | None] = mapped_column(BigInteger)
    removed_version: Mapped[int | None] = mapped_column(BigInteger)
    # Four-eyes rounds: round 1 is the addition, each reinstatement opens a
    # new round that needs fresh approvals; submitted_by opened the round and
    # may not approve it.
    approval_round: Mapped[int] = mapped_column(Integer)
    submitted_by: Mapped[str] = mapped_column(String(ACTOR_LENGTH))
    # The person (account) who opened the round, when the actor was a
    # person's token or session (migration 0007): four-eyes counts persons.
    submitted_person: Mapped[int | None] = mapped_column(Integer, ForeignKey("accounts.id"))
    # Set when retention erased ``expression``, ``url`` and ``host`` (to "")
    # of an entry long off the list; the hash and the decisions stay.
    plaintext_pruned_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # The bulk import that added the entry (None: added one at a time), so
    # an import can be approved as a group (``entries.approve_many``).
    import_id: Mapped[int | None] = mapped_column(Integer, ForeignKey("imports.id"))
    # Safeguards (migration 0008, issue 16). ``guard``: the guard rule the
    # entry falls under (a guarded host, or "ip-address"), None if none; a
    # guarded entry stays pending until an eligible administrator approves
    # it (``guard_approved_by``, with ``guard_justification``), per round.
    guard: Mapped[str | None] = mapped_column(String(GUARD_HOST_LENGTH))
    guard_approved_by: Mapped[str | None] = mapped_column(String(ACTOR_LENGTH))
    guard_approved_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    guard_justification: Mapped[str | None] = mapped_column(Text)
    # The latest hosting evidence (blocklist.safeguards.HostingEvidence JSON).
    hosting: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # REFERRAL_PROPOSED: observed home-country hosting, held off the list
    # until analysts refer it or an administrator overrides; then
    # REFERRAL_OVERRIDDEN (or status 'referred').
    referral: Mapped[str | None] = mapped_column(String(16))


class GuardedHostRow(Base):
    """A high-collateral host an administrator guards (migration 0008).

    Host and prefix entries on it or its subdomains need a guard approval
    (:mod:`blocklist.store.guards`). Deployment-wide, like tokens.
    """

    __tablename__ = "guarded_hosts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    host: Mapped[str] = mapped_column(String(GUARD_HOST_LENGTH), unique=True)
    note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    created_by: Mapped[str] = mapped_column(String(ACTOR_LENGTH))


class ImportRow(Base):
    """One bulk import: the batches of bulk adds an analyst grouped under one id.

    Only its creator may add batches to it; anyone may approve its entries
    (four-eyes still applies per entry).
    """

    __tablename__ = "imports"
    __table_args__ = (Index("ix_imports_list_id", "list_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    list_id: Mapped[int] = mapped_column(Integer, ForeignKey("lists.id"))
    created_by: Mapped[str] = mapped_column(String(ACTOR_LENGTH))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ApprovalRow(Base):
    """One analyst's approval of one round of an entry."""

    __tablename__ = "approvals"
    __table_args__ = (UniqueConstraint("entry_id", "round", "actor"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    entry_id: Mapped[int] = mapped_column(Integer, ForeignKey("entries.id"))
    round: Mapped[int] = mapped_column(Integer)
    actor: Mapped[str] = mapped_column(String(ACTOR_LENGTH))
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    #: The approving person (migration 0007); None for a token of no person.
    person: Mapped[int | None] = mapped_column(Integer, ForeignKey("accounts.id"))


class MembershipRow(Base):
    """A hash's presence in a list from ``added_version`` until ``removed_version``.

    The snapshot at version N is every hash with ``added_version <= N`` and
    (``removed_version`` NULL or ``> N``). A hash removed and added again
    gets a second row.
    """

    __tablename__ = "memberships"
    __table_args__ = (
        Index("ix_memberships_added", "list_id", "added_version"),
        Index("ix_memberships_removed", "list_id", "removed_version"),
    )

    list_id: Mapped[int] = mapped_column(Integer, ForeignKey("lists.id"), primary_key=True)
    hash: Mapped[bytes] = mapped_column(_hash_column(), primary_key=True)
    added_version: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    removed_version: Mapped[int | None] = mapped_column(BigInteger)


class VersionRow(Base):
    """A published version: its signed statement and the state after it."""

    __tablename__ = "versions"

    list_id: Mapped[int] = mapped_column(Integer, ForeignKey("lists.id"), primary_key=True)
    version: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    note: Mapped[str] = mapped_column(Text)
    text_hash: Mapped[bytes] = mapped_column(_hash_column())
    leaf_hash: Mapped[bytes] = mapped_column(_hash_column())
    time: Mapped[datetime] = mapped_column(UTCDateTime())
    keyring_serial: Mapped[int] = mapped_column(BigInteger)
    count: Mapped[int] = mapped_column(BigInteger)
    # LtHash16 vector after this version, so the next publish is O(changes).
    state_vector: Mapped[bytes] = mapped_column(LargeBinary(STATE_VECTOR_BYTES))
    audit_head: Mapped[bytes] = mapped_column(_hash_column())


class TreeHashRow(Base):
    """One stored Merkle hash, indexed by :func:`blocklist.merkle.stored_hash_index`."""

    __tablename__ = "tree_hashes"

    list_id: Mapped[int] = mapped_column(Integer, ForeignKey("lists.id"), primary_key=True)
    idx: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    hash: Mapped[bytes] = mapped_column(_hash_column())


class CheckpointRow(Base):
    """The latest signed checkpoint of a list (re-signed to stay fresh)."""

    __tablename__ = "checkpoints"

    list_id: Mapped[int] = mapped_column(Integer, ForeignKey("lists.id"), primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger)
    root: Mapped[bytes] = mapped_column(_hash_column())
    note: Mapped[str] = mapped_column(Text)
    signed_at: Mapped[datetime] = mapped_column(UTCDateTime())


class CheckpointHistoryRow(Base):
    """The first signed checkpoint note of every distinct (size, root) of a list.

    Kept for auditors: a second root for one size would be equivocation, and
    the unique constraint makes the store refuse to record one.
    """

    __tablename__ = "checkpoint_history"
    __table_args__ = (UniqueConstraint("list_id", "size"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    list_id: Mapped[int] = mapped_column(Integer, ForeignKey("lists.id"))
    size: Mapped[int] = mapped_column(BigInteger)
    root: Mapped[bytes] = mapped_column(_hash_column())
    note: Mapped[str] = mapped_column(Text)
    signed_at: Mapped[datetime] = mapped_column(UTCDateTime())


class KeyringRow(Base):
    """A signed keyring note; serials are consecutive per list."""

    __tablename__ = "keyrings"

    list_id: Mapped[int] = mapped_column(Integer, ForeignKey("lists.id"), primary_key=True)
    serial: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    note: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class AuditRow(Base):
    """One record of a hash-chained audit log.

    ``chain`` is the list id for list records, 0 for the deployment chain
    (token management). ``seq`` counts from 1 within a chain; the primary
    key makes a fork (two records with one seq) impossible to commit.
    ``ix_audit_log_action`` finds a chain's latest record of one action
    (the publisher's last ``global.head``) without walking the chain.
    """

    __tablename__ = "audit_log"
    __table_args__ = (
        Index("ix_audit_log_entry", "entry_id"),
        Index("ix_audit_log_action", "chain", "action", "seq"),
    )

    chain: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    list_id: Mapped[int | None] = mapped_column(Integer, ForeignKey("lists.id"))
    time: Mapped[datetime] = mapped_column(UTCDateTime())
    actor: Mapped[str] = mapped_column(String(ACTOR_LENGTH))
    action: Mapped[str] = mapped_column(String(ACTION_LENGTH))
    entry_id: Mapped[int | None] = mapped_column(Integer, ForeignKey("entries.id"))
    details: Mapped[dict[str, Any]] = mapped_column(JSON)
    prev_hash: Mapped[bytes] = mapped_column(_hash_column())
    hash: Mapped[bytes] = mapped_column(_hash_column())


class TokenListRow(Base):
    """Association: a token may read a list."""

    __tablename__ = "token_lists"

    token_id: Mapped[int] = mapped_column(Integer, ForeignKey("tokens.id"), primary_key=True)
    list_id: Mapped[int] = mapped_column(Integer, ForeignKey("lists.id"), primary_key=True)


class TokenRow(Base):
    """An API bearer token. Only the SHA-256 of the secret is stored."""

    __tablename__ = "tokens"
    __table_args__ = (
        CheckConstraint("role IN ('admin', 'analyst', 'isp', 'auditor')", name="role"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(TOKEN_NAME_LENGTH))
    role: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[bytes] = mapped_column(_hash_column(), unique=True)
    prefix: Mapped[str] = mapped_column(String(TOKEN_PREFIX_LENGTH))
    plaintext: Mapped[bool] = mapped_column(Boolean)
    full_audit: Mapped[bool] = mapped_column(Boolean)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    created_by: Mapped[str] = mapped_column(String(ACTOR_LENGTH))
    #: The person the token belongs to (migration 0007); None: an
    #: organisation's token (ISP, auditor) or one not attached yet.
    account_id: Mapped[int | None] = mapped_column(Integer, ForeignKey("accounts.id"), index=True)

    lists: Mapped[list[ListRow]] = relationship(
        secondary="token_lists", lazy="selectin", order_by="ListRow.name"
    )


class TokenNameRow(Base):
    """A token's claim on its name for one role and list (migration 0004).

    Token names are unique per role and list among tokens not revoked, so
    an actor name in the audit chains and an ISP in the uptake view mean
    one token. ``list_id`` 0 is the claim of a token valid for every list
    (admin tokens, analyst tokens without lists): there is no such list
    row, hence no foreign key on it. The primary key is the constraint;
    the store also refuses a name an every-list token of the same role
    holds (checked under the deployment chain's lock). A revoked token's
    claims are deleted, so its name may be issued again.
    """

    __tablename__ = "token_names"

    role: Mapped[str] = mapped_column(String(16), primary_key=True)
    list_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    name: Mapped[str] = mapped_column(String(TOKEN_NAME_LENGTH), primary_key=True)
    token_id: Mapped[int] = mapped_column(Integer, ForeignKey("tokens.id"), index=True)


class PublishRequestRow(Base):
    """A publish-now request left for a separate signer process (``--no-signer``)."""

    __tablename__ = "publish_requests"
    __table_args__ = (Index("ix_publish_requests_open", "list_id", "done_version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    list_id: Mapped[int] = mapped_column(Integer, ForeignKey("lists.id"))
    requested_by: Mapped[str] = mapped_column(String(ACTOR_LENGTH))
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime())
    done_version: Mapped[int | None] = mapped_column(BigInteger)
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class IspSeenRow(Base):
    """The last version each ISP token fetched of each list."""

    __tablename__ = "isp_seen"

    token_id: Mapped[int] = mapped_column(Integer, ForeignKey("tokens.id"), primary_key=True)
    list_id: Mapped[int] = mapped_column(Integer, ForeignKey("lists.id"), primary_key=True)
    version: Mapped[int] = mapped_column(BigInteger)
    at: Mapped[datetime] = mapped_column(UTCDateTime())


class WitnessKeyRow(Base):
    """A witness key an administrator registered for a list (migration 0004).

    Only registered witnesses may post cosignatures, and a served
    checkpoint carries at most one line per registered witness. ``name``
    and ``key_id`` identify the key in signed-note lines (the 0x04 key
    ID); ``public_key`` is what lines are verified with, so a key whose
    4-byte ID collides with a registered one is still refused.
    """

    __tablename__ = "witness_keys"
    __table_args__ = (UniqueConstraint("list_id", "name", "key_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    list_id: Mapped[int] = mapped_column(Integer, ForeignKey("lists.id"))
    name: Mapped[str] = mapped_column(String(WITNESS_NAME_LENGTH))
    key_id: Mapped[bytes] = mapped_column(LargeBinary(4))
    public_key: Mapped[bytes] = mapped_column(LargeBinary(32))
    vkey: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    created_by: Mapped[str] = mapped_column(String(ACTOR_LENGTH))


class WitnessCosignatureRow(Base):
    """A registered witness's timestamped cosignature line (c2sp.org/tlog-cosignature)
    for one checkpoint text; served appended to that checkpoint.

    One row per witness (unique ``witness_id``): a new line replaces the
    witness's previous one. Removing the witness deletes its row.
    """

    __tablename__ = "witness_cosignatures"
    __table_args__ = (Index("ix_witness_cosignatures_text", "list_id", "text_hash"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    list_id: Mapped[int] = mapped_column(Integer, ForeignKey("lists.id"))
    witness_id: Mapped[int] = mapped_column(Integer, ForeignKey("witness_keys.id"), unique=True)
    text_hash: Mapped[bytes] = mapped_column(_hash_column())
    size: Mapped[int] = mapped_column(BigInteger)
    timestamp: Mapped[int] = mapped_column(BigInteger)
    line: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class HitCountRow(Base):
    """One ISP's count of block-page hits of one entry in one ISO week.

    DESIGN.md part 2, "Hit counts": opt-in, posted by ``cleanfeed isp run``
    (:mod:`blocklist.store.hits`). The row holds what the ISP sent and
    nothing finer: no address, no URL, no time but the week. ``token_id``
    only makes a re-post of the same week replace the earlier one; the
    hotline reads totals across ISPs, never a row.
    """

    __tablename__ = "hit_counts"
    __table_args__ = (CheckConstraint("count > 0", name="count_positive"),)

    list_id: Mapped[int] = mapped_column(Integer, ForeignKey("lists.id"), primary_key=True)
    #: ISO 8601 week, ``YYYY-Www``.
    week: Mapped[str] = mapped_column(String(8), primary_key=True)
    token_id: Mapped[int] = mapped_column(Integer, ForeignKey("tokens.id"), primary_key=True)
    entry_id: Mapped[int] = mapped_column(Integer, ForeignKey("entries.id"), primary_key=True)
    count: Mapped[int] = mapped_column(BigInteger)


# --- re-verification (issue 16 item 4; migration 0009) ---------------------------


class VerificationRow(Base):
    """An entry's re-verification state (:mod:`blocklist.store.verification`).

    Its own table rather than columns on ``entries``: the job writes it on
    its own cadence, and nothing in it forms the signed history (decisions
    it leads to are audit records). ``hosting`` and ``vantage_points`` hold
    addresses and per-vantage-point verdicts, never a URL or a body.
    """

    __tablename__ = "entry_verification"
    __table_args__ = (
        CheckConstraint(
            "status IN ('live', 'gone', 'unreachable', 'moved', 'unchecked')", name="status"
        ),
        Index("ix_entry_verification_list", "list_id", "status"),
    )

    entry_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("entries.id"), primary_key=True, autoincrement=False
    )
    list_id: Mapped[int] = mapped_column(Integer, ForeignKey("lists.id"))
    status: Mapped[str] = mapped_column(String(12))
    checked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    consecutive_gone: Mapped[int] = mapped_column(Integer)
    last_live_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    hosting: Mapped[list[str]] = mapped_column(JSON)
    vantage_points: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    expiry_proposed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    referral_proposed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    flagged_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    #: The entry's ``approval_round`` the state belongs to: a reinstated
    #: entry starts afresh (no stale proposal from before its expiry).
    approval_round: Mapped[int] = mapped_column(Integer)


class VerificationRunRow(Base):
    """The latest re-verification run of a list (metrics: last run, duration, counts)."""

    __tablename__ = "verification_runs"

    list_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("lists.id"), primary_key=True, autoincrement=False
    )
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime] = mapped_column(UTCDateTime())
    checked: Mapped[int] = mapped_column(Integer)


# --- persons' accounts (migration 0007, issue 15) ----------------------------


class AccountRow(Base):
    """A person: the identity four-eyes counts (:mod:`blocklist.store.accounts`).

    ``password_hash`` is an argon2id PHC string; ``totp_secret`` is the RFC
    6238 secret sealed with the deployment's account-secrets key (never in
    clear in the database); ``totp_last_step`` is the last accepted TOTP
    time-step (RFC 6238 section 5.2: a code is accepted once). Both factors
    are unset until the person enrols through the one-time link whose
    SHA-256 is ``enrol_token_hash``.
    """

    __tablename__ = "accounts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(NAME_LENGTH), unique=True)
    disabled: Mapped[bool] = mapped_column(Boolean)
    password_hash: Mapped[str | None] = mapped_column(Text)
    totp_secret: Mapped[bytes | None] = mapped_column(LargeBinary)
    totp_last_step: Mapped[int | None] = mapped_column(BigInteger)
    enrol_token_hash: Mapped[bytes | None] = mapped_column(_hash_column(), unique=True)
    enrol_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    enrolled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    created_by: Mapped[str] = mapped_column(String(ACTOR_LENGTH))


class AccountRoleRow(Base):
    """A role a person holds on one list, or on every list (``list_id`` 0)."""

    __tablename__ = "account_roles"
    __table_args__ = (CheckConstraint("role IN ('admin', 'analyst', 'auditor')", name="role"),)

    account_id: Mapped[int] = mapped_column(Integer, ForeignKey("accounts.id"), primary_key=True)
    #: 0 = every list (no list has id 0, hence no foreign key).
    list_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    role: Mapped[str] = mapped_column(String(16), primary_key=True)
    granted_at: Mapped[datetime] = mapped_column(UTCDateTime())
    granted_by: Mapped[str] = mapped_column(String(ACTOR_LENGTH))


class PendingGrantRow(Base):
    """A grant of analyst or admin waiting for a second admin's confirmation."""

    __tablename__ = "account_pending_grants"
    __table_args__ = (
        UniqueConstraint("account_id", "list_id", "role"),
        CheckConstraint("role IN ('admin', 'analyst', 'auditor')", name="role"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(Integer, ForeignKey("accounts.id"))
    list_id: Mapped[int] = mapped_column(Integer)
    role: Mapped[str] = mapped_column(String(16))
    requested_by: Mapped[str] = mapped_column(String(ACTOR_LENGTH))
    #: The requesting admin person (None: the command line, an admin token).
    requested_by_person: Mapped[int | None] = mapped_column(Integer, ForeignKey("accounts.id"))
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime())


class SessionRow(Base):
    """A console session; only the SHA-256 of the cookie value is stored."""

    __tablename__ = "account_sessions"

    id_hash: Mapped[bytes] = mapped_column(_hash_column(), primary_key=True)
    public_id: Mapped[str] = mapped_column(String(32), unique=True)
    account_id: Mapped[int] = mapped_column(Integer, ForeignKey("accounts.id"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime())


class LoginFailureRow(Base):
    """Failed logins of one account name or one client address (back-off state).

    ``key`` is a keyed hash (HMAC-SHA-256 under the account-secrets key) of
    the name or address: the address is never stored, and its hash cannot
    be reversed by trying the few billion IPv4 addresses without the key.
    """

    __tablename__ = "login_failures"
    __table_args__ = (Index("ix_login_failures_last", "last_failure_at"),)

    key: Mapped[bytes] = mapped_column(_hash_column(), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer)
    last_failure_at: Mapped[datetime] = mapped_column(UTCDateTime())
    blocked_until: Mapped[datetime] = mapped_column(UTCDateTime())


# --- appeals and transparency (issue 17; migration 0010) ---------------------

#: Outcomes of a review (DESIGN.md part 2, "Appeals and transparency").
APPEAL_OUTCOMES = ("upheld", "removed", "suspended")

#: Size of the stored hash of an appeal's status secret (SHA-256).
APPEAL_SECRET_HASH_BYTES = 32

#: Bytes of an expression hash a block reference names (blocklist.blockref).
_BLOCK_REF_BYTES = 10


class AppealRow(Base):
    """One appeal as filed: what it names, never who filed it or what they wrote.

    Its status secrets are in :class:`AppealSecretRow`. ``dedup_key`` is a
    SHA-256 over the normalised reference or URL and message, so a repeat
    within the window collapses onto this appeal. ``closed_at`` is set
    once no attachment is open (or an admin closed an unmatched appeal).
    """

    __tablename__ = "appeals"
    __table_args__ = (
        Index("ix_appeals_dedup", "dedup_key", "filed_at"),
        Index("ix_appeals_filed", "filed_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dedup_key: Mapped[bytes] = mapped_column(_hash_column())
    ref_prefix: Mapped[bytes | None] = mapped_column(LargeBinary(_BLOCK_REF_BYTES))
    has_url: Mapped[bool] = mapped_column(Boolean)
    matched: Mapped[bool] = mapped_column(Boolean)
    filed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    closed_by: Mapped[str | None] = mapped_column(String(ACTOR_LENGTH))
    duplicates: Mapped[int] = mapped_column(Integer, server_default="0")


class AppealSecretRow(Base):
    """The SHA-256 of one status-page secret of an appeal.

    The secret itself is only in the status URL handed to whoever filed
    it. A duplicate that collapsed onto an appeal gets its own secret, so
    a second appellant never receives the first one's URL.
    """

    __tablename__ = "appeal_secrets"

    secret_hash: Mapped[bytes] = mapped_column(
        LargeBinary(APPEAL_SECRET_HASH_BYTES), primary_key=True
    )
    appeal_id: Mapped[int] = mapped_column(Integer, ForeignKey("appeals.id"), index=True)


class AppealLinkRow(Base):
    """An appeal attached to one matching entry of one list, and its review.

    ``status`` is ``open`` until decided, ``suspended`` while the entry is
    off the list pending the review, then ``upheld`` or ``removed``.
    """

    __tablename__ = "appeal_links"
    __table_args__ = (
        CheckConstraint("status IN ('open', 'suspended', 'upheld', 'removed')", name="status"),
        Index("ix_appeal_links_list", "list_id", "status"),
    )

    appeal_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("appeals.id"), primary_key=True, autoincrement=False
    )
    entry_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("entries.id"), primary_key=True, autoincrement=False
    )
    list_id: Mapped[int] = mapped_column(Integer, ForeignKey("lists.id"))
    status: Mapped[str] = mapped_column(String(16))
    attached_at: Mapped[datetime] = mapped_column(UTCDateTime())
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    decided_by: Mapped[str | None] = mapped_column(String(ACTOR_LENGTH))
    reason: Mapped[str | None] = mapped_column(Text)


class AppealPrivateRow(Base):
    """The appellant's own words: message, contact and URL (erasable, outside the chain).

    Deleted by ``cleanfeed appeals erase`` and by the retention job; the
    audit records of the appeal name it by id only, so the chain verifies
    after the row is gone.
    """

    __tablename__ = "appeal_private"

    appeal_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("appeals.id"), primary_key=True, autoincrement=False
    )
    message: Mapped[str] = mapped_column(Text)
    contact: Mapped[str | None] = mapped_column(Text)
    url: Mapped[str | None] = mapped_column(Text)


class TransparencyReportRow(Base):
    """A signed transparency report note, issued once per list and month."""

    __tablename__ = "transparency_reports"

    list_id: Mapped[int] = mapped_column(Integer, ForeignKey("lists.id"), primary_key=True)
    #: ``YYYY-MM``.
    period: Mapped[str] = mapped_column(String(7), primary_key=True)
    note: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
