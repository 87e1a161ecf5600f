"""Entries: add, four-eyes approval, expiry, reinstatement, search, bulk add.

Life of an entry (``status``):

- ``pending``: added or reinstated, waiting for ``approvals_required``
  approvals by analysts other than the one who opened the round;
- ``active``: approved, belongs in the list;
- ``expired``: taken off (by one analyst, at once or at a set time) after
  having been listed, or due to its ``expires_at``;
- ``removed``: withdrawn or expired before it was ever listed.

``listed`` says whether the latest published version contains the entry;
``needs_publish`` flags the entries where that differs from ``status ==
'active'``, so the publisher reads only changes. Every change appends an
audit record in the same transaction; records name entries by id and hash,
never by expression (docs/architecture.md, "Audit log hash chain").
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import ColumnElement, and_, insert, or_, select
from sqlalchemy.orm import Session

from blocklist import foureyes
from blocklist.auditlog import AuditRecord
from blocklist.canonical import (
    MAX_URL_BYTES,
    canonicalize,
    expression_hash,
    expressions,
    split_expression,
)
from blocklist.encoding import b64encode, format_time
from blocklist.entries import PlannedEntry, plan_entry
from blocklist.errors import BlocklistError, InvalidEntry
from blocklist.store import audit
from blocklist.store.errors import (
    AdminCannotApprove,
    BulkRejected,
    DuplicateApproval,
    InvalidField,
    InvalidState,
    LimitExceeded,
    NotFound,
    PermissionDenied,
    SelfApproval,
    StoreError,
)
from blocklist.store.lists import get_list_by_id, normalise_country
from blocklist.store.models import (
    CATEGORY_LENGTH,
    ENTRY_STATUSES,
    HASH_BYTES,
    REFERENCE_LENGTH,
    STATUS_ACTIVE,
    STATUS_EXPIRED,
    STATUS_PENDING,
    STATUS_REMOVED,
    ApprovalRow,
    EntryRow,
    ImportRow,
    ListRow,
)

#: Longest submitted URL stored (characters): canonicalisation refuses more
#: than MAX_URL_BYTES anyway; checked first so oversized input costs nothing.
MAX_URL_CHARS = MAX_URL_BYTES

#: Longest reason (characters): a few paragraphs of analyst justification.
MAX_REASON_CHARS = 2000

#: Longest reference and category: short case numbers and labels.
MAX_REFERENCE_CHARS = REFERENCE_LENGTH
MAX_CATEGORY_CHARS = CATEGORY_LENGTH

#: Longest host accepted by search (DNS names are at most 253 characters;
#: bracketed IPv6 literals are shorter).
MAX_HOST_CHARS = 253

#: Rows per bulk call: bounds one transaction and one response.
MAX_BULK_ROWS = 10_000

#: Entries per bulk approval call (ids, or one page of an import): the same
#: bound as a bulk add, so one import batch is approved in one call.
MAX_APPROVE_ROWS = MAX_BULK_ROWS

#: Entries read per query while streaming every entry of a list.
ENTRY_BATCH = 1000

#: Search page sizes.
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500

#: Hashes per ``IN (...)`` clause: below SQLite's and PostgreSQL's bind
#: parameter limits with room to spare.
_IN_CHUNK = 1000

#: Actor recorded when an entry expires because its ``expires_at`` passed.
SYSTEM_EXPIRY = "system:expiry"

#: Single-line text: no control characters at all.
_LINE_RE = re.compile(r"[\x00-\x1f\x7f]")
#: Multi-line text (reasons): tabs and newlines allowed, other controls not
#: (PostgreSQL cannot store NUL in text at all).
_MULTILINE_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
#: URLs as submitted: canonicalisation strips tab/CR/LF and escapes other
#: control bytes (Safe Browsing's rules), so only NUL, which PostgreSQL
#: cannot store in text, is refused (it can be written as %00).
_URL_RE = re.compile(r"\x00")

BULK_ADDED = "added"
BULK_EXISTING = "existing"
BULK_FAILED = "failed"
#: Valid row not applied because an all-or-nothing batch was rejected.
BULK_SKIPPED = "skipped"

#: Outcomes of one entry of a bulk approval.
APPROVE_APPROVED = "approved"
APPROVE_REFUSED = "refused"


@dataclass(frozen=True)
class EntryPage:
    """One page of search results, ordered by id; ``next_cursor`` is ``None`` at the end."""

    items: list[EntryRow]
    next_cursor: int | None


@dataclass(frozen=True)
class EntryHistory:
    """An entry with its approvals and every audit record naming it."""

    entry: EntryRow
    approvals: list[ApprovalRow]
    records: list[AuditRecord]


@dataclass(frozen=True)
class BulkRow:
    """One row of a bulk add (same fields as :func:`add_entry`)."""

    url: str
    scope: str
    reason: str
    reference: str | None = None
    category: str | None = None
    hosting_country: str | None = None
    expires_at: datetime | None = None


@dataclass(frozen=True)
class BulkResult:
    """Outcome of one bulk row: added, existing, failed (with code and message) or skipped."""

    index: int
    status: str
    entry_id: int | None = None
    hash: bytes | None = None
    code: str | None = None
    message: str | None = None


@dataclass(frozen=True)
class ApproveResult:
    """Outcome of one entry of :func:`approve_many`.

    ``status`` is ``approved`` (the approval was recorded; ``entry_status``
    says whether the entry became active) or ``refused`` with the ``code``
    and ``message`` the single-entry :func:`approve` would have raised.
    """

    entry_id: int
    status: str
    entry_status: str | None = None
    approvals: int | None = None
    required: int | None = None
    code: str | None = None
    message: str | None = None


@dataclass(frozen=True)
class ImportPage:
    """Ids of one page of an import's entries, ordered; ``next_cursor`` None at the end."""

    entry_ids: list[int]
    next_cursor: int | None


def _check_text(
    value: str | None,
    what: str,
    cap: int,
    *,
    required: bool,
    multiline: bool = False,
    forbidden: re.Pattern[str] | None = None,
) -> str | None:
    if value is None:
        if required:
            raise InvalidEntry(f"{what} is required")
        return None
    if not isinstance(value, str):
        raise InvalidEntry(f"{what} must be text")
    if required and not value.strip():
        raise InvalidEntry(f"{what} must not be empty")
    if len(value) > cap:
        raise InvalidEntry(f"{what} is longer than {cap} characters")
    if (forbidden or (_MULTILINE_RE if multiline else _LINE_RE)).search(value):
        raise InvalidEntry(f"{what} contains control characters it may not hold")
    return value


@dataclass(frozen=True)
class _Validated:
    plan: PlannedEntry
    host: str
    url: str
    reason: str
    reference: str | None
    category: str | None
    hosting_country: str | None
    expires_at: datetime | None


def _validate(row: BulkRow, home_country: str | None, now: datetime) -> _Validated:
    """Check every field and plan the entry; raises a BlocklistError."""
    _check_text(row.url, "url", MAX_URL_CHARS, required=True, forbidden=_URL_RE)
    reason = _check_text(row.reason, "reason", MAX_REASON_CHARS, required=True, multiline=True)
    reference = _check_text(row.reference, "reference", MAX_REFERENCE_CHARS, required=False)
    category = _check_text(row.category, "category", MAX_CATEGORY_CHARS, required=False)
    try:
        country = normalise_country(row.hosting_country, "hosting_country")
    except InvalidField as e:
        raise InvalidEntry(str(e)) from e
    if row.expires_at is not None:
        if row.expires_at.tzinfo is None:
            raise InvalidEntry("expires_at must be timezone-aware")
        if row.expires_at <= now:
            raise InvalidEntry("expires_at must be in the future")
    plan = plan_entry(row.url, row.scope, hosting_country=country, home_country=home_country)
    assert reason is not None  # required=True
    return _Validated(
        plan=plan,
        host=split_expression(plan.expression)[0],
        url=row.url,
        reason=reason,
        reference=reference,
        category=category,
        hosting_country=country,
        expires_at=row.expires_at.astimezone(UTC) if row.expires_at else None,
    )


def _new_entry_values(
    list_id: int, v: _Validated, actor: str, now: datetime, import_id: int | None = None
) -> dict[str, object]:
    return {
        "list_id": list_id,
        "expression": v.plan.expression,
        "hash": v.plan.hash,
        "host": v.host,
        "url": v.url,
        "scope": v.plan.scope,
        "reason": v.reason,
        "reference": v.reference,
        "category": v.category,
        "hosting_country": v.hosting_country,
        "created_by": actor,
        "created_at": now,
        "status": STATUS_PENDING,
        "expires_at": v.expires_at,
        "listed": False,
        "needs_publish": False,
        "added_version": None,
        "removed_version": None,
        "approval_round": 1,
        "submitted_by": actor,
        "import_id": import_id,
    }


def _add_event(
    entry_id: int, v: _Validated, actor: str, import_id: int | None = None
) -> audit.AuditEvent:
    # The import id is recorded only when there is one, so entries added one
    # at a time keep exactly the details they always had.
    extra: dict[str, object] = {} if import_id is None else {"import": import_id}
    return audit.AuditEvent(
        actor=actor,
        action="entry.add",
        entry_id=entry_id,
        details={
            **extra,
            "hash": b64encode(v.plan.hash),
            "scope": v.plan.scope,
            "reason": v.reason,
            "reference": v.reference,
            "category": v.category,
            "hosting_country": v.hosting_country,
            "expires_at": format_time(v.expires_at) if v.expires_at else None,
            "status": STATUS_PENDING,
        },
    )


def add_entry(
    session: Session,
    list_id: int,
    *,
    url: str,
    scope: str,
    reason: str,
    actor: str,
    reference: str | None = None,
    category: str | None = None,
    hosting_country: str | None = None,
    expires_at: datetime | None = None,
    now: datetime | None = None,
) -> tuple[EntryRow, bool]:
    """Add a URL to a list as a pending entry; return ``(entry, created)``.

    An expression already on the list returns the existing entry with
    ``created`` False and changes nothing (whatever its status: an expired
    one is brought back with :func:`reinstate`), except that an entry whose
    plaintext retention pruned gets it back from this URL when the scope is
    the same (audited as ``entry.restore_plaintext``).

    Raises:
        NotFound: no such list.
        InvalidURL: the URL cannot be canonicalised.
        InvalidEntry: a bad scope or reach, an empty reason, a field over its
            cap, an ``expires_at`` not in the future.
        DomesticHosting: hosted in the list's home country.
        InvalidField: a bad actor name.
    """
    now = audit.resolve_now(now)
    audit.check_actor(actor)
    lst = get_list_by_id(session, list_id)
    v = _validate(
        BulkRow(url, scope, reason, reference, category, hosting_country, expires_at),
        lst.home_country,
        now,
    )
    audit.lock_list(session, list_id)
    existing = session.scalar(
        select(EntryRow).where(EntryRow.list_id == list_id, EntryRow.hash == v.plan.hash)
    )
    if existing is not None:
        _restore_plaintext(session, list_id, [(existing, v)], actor, now)
        return existing, False
    entry = EntryRow(**_new_entry_values(list_id, v, actor, now))
    session.add(entry)
    session.flush()
    audit.append_many(session, list_id, [_add_event(entry.id, v, actor)], now=now)
    return entry, True


def _restore_plaintext(
    session: Session,
    list_id: int,
    pairs: Sequence[tuple[EntryRow, _Validated]],
    actor: str,
    now: datetime,
) -> None:
    """Give pruned entries their plaintext back from a matching submission.

    The hash is the SHA-256 of the expression, so a submission with the
    entry's hash has its expression; with the same scope its URL
    canonicalises to that expression, as auditors check
    (:mod:`blocklist.store.retention`).
    """
    events = []
    for entry, v in pairs:
        if entry.plaintext_pruned_at is None or v.plan.scope != entry.scope:
            continue
        entry.expression = v.plan.expression
        entry.url = v.url
        entry.host = v.host
        entry.plaintext_pruned_at = None
        events.append(
            audit.AuditEvent(
                actor=actor,
                action="entry.restore_plaintext",
                entry_id=entry.id,
                details={"hash": b64encode(entry.hash)},
            )
        )
    if events:
        session.flush()
        audit.append_many(session, list_id, events, now=now)


def get_entry(session: Session, list_id: int, entry_id: int, *, lock: bool = False) -> EntryRow:
    """Return an entry of a list.

    Raises:
        NotFound: no entry ``entry_id`` on list ``list_id`` (an id from
            another list is not found either).
    """
    query = select(EntryRow).where(EntryRow.id == entry_id, EntryRow.list_id == list_id)
    if lock:
        query = query.with_for_update()
    entry = session.scalar(query)
    if entry is None:
        raise NotFound(f"no entry {entry_id} on this list")
    return entry


def _sync_publish_flag(entry: EntryRow) -> None:
    entry.needs_publish = entry.listed != (entry.status == STATUS_ACTIVE)


def _off_status(entry: EntryRow) -> str:
    """Status of an entry taken off: ``removed`` if it was never published."""
    if entry.listed or entry.added_version is not None:
        return STATUS_EXPIRED
    return STATUS_REMOVED


def check_approver_role(actor_role: str) -> None:
    """Enforce four-eyes rule 1 (:mod:`blocklist.foureyes`): only analysts approve.

    Raises:
        AdminCannotApprove: ``actor_role`` is admin.
        PermissionDenied: any other role that is not analyst.
    """
    refusal = foureyes.role_refusal(actor_role)
    if refusal is foureyes.Refusal.ADMIN:
        raise AdminCannotApprove("administrators cannot approve (four-eyes counts analysts)")
    if refusal is not None:
        raise PermissionDenied("only analysts approve entries")


def approval_refusal(actor: str, entry: EntryRow, approvers: set[str]) -> StoreError | None:
    """The error refusing ``actor``'s approval of the entry's open round, or None.

    Four-eyes rules 2 and 3 (:mod:`blocklist.foureyes`); ``approvers`` are
    the analysts who already approved the round.
    """
    refusal = foureyes.round_refusal(actor, opener=entry.submitted_by, approvers=approvers)
    if refusal is foureyes.Refusal.OWN_ROUND:
        return SelfApproval("an analyst cannot approve an entry they added or reinstated")
    if refusal is foureyes.Refusal.ALREADY_APPROVED:
        return DuplicateApproval(f"{actor} already approved entry {entry.id}")
    return None


def approve(
    session: Session,
    list_id: int,
    entry_id: int,
    *,
    actor: str,
    actor_role: str,
    now: datetime | None = None,
) -> EntryRow:
    """Record an analyst's approval; activate the entry once enough approvals exist.

    Four-eyes (:mod:`blocklist.foureyes`): the list's ``approvals_required``
    counts distinct analysts other than the one who opened the round (the
    creator, or the analyst who reinstated it); administrators cannot approve.

    Raises:
        AdminCannotApprove: ``actor_role`` is admin.
        PermissionDenied: any other role that is not analyst.
        NotFound: no such entry on the list.
        InvalidState: the entry is not pending, or its expiry time passed.
        SelfApproval: the actor opened this round.
        DuplicateApproval: the actor already approved this round.
    """
    now = audit.resolve_now(now)
    audit.check_actor(actor)
    check_approver_role(actor_role)
    audit.lock_list(session, list_id)
    lst = get_list_by_id(session, list_id)
    entry = get_entry(session, list_id, entry_id, lock=True)
    if entry.status != STATUS_PENDING:
        raise InvalidState(f"entry {entry_id} is {entry.status}, not pending approval")
    if entry.expires_at is not None and entry.expires_at <= now:
        raise InvalidState(f"entry {entry_id} passed its expiry time before it was approved")
    approvers = set(
        session.scalars(
            select(ApprovalRow.actor).where(
                ApprovalRow.entry_id == entry_id, ApprovalRow.round == entry.approval_round
            )
        ).all()
    )
    refusal = approval_refusal(actor, entry, approvers)
    if refusal is not None:
        raise refusal
    session.add(ApprovalRow(entry_id=entry_id, round=entry.approval_round, actor=actor, at=now))
    approvers.add(actor)
    if foureyes.is_approved(len(approvers), lst.approvals_required):
        entry.status = STATUS_ACTIVE
        _sync_publish_flag(entry)
    session.flush()
    audit.append(
        session,
        list_id=list_id,
        actor=actor,
        action="entry.approve",
        entry_id=entry_id,
        details={
            "hash": b64encode(entry.hash),
            "round": entry.approval_round,
            "approvals": len(approvers),
            "required": lst.approvals_required,
            "status": entry.status,
        },
        now=now,
    )
    return entry


def expire(
    session: Session,
    list_id: int,
    entry_id: int,
    *,
    actor: str,
    reason: str,
    at: datetime | None = None,
    now: datetime | None = None,
) -> EntryRow:
    """Take an entry off the list now (``at`` None or past) or schedule it for ``at``.

    One analyst suffices: a wrong block must come off fast (DESIGN.md,
    four-eyes). The reason is logged.

    Raises:
        NotFound: no such entry on the list.
        InvalidEntry: an empty or oversized reason, a naive ``at``.
        InvalidState: the entry is already expired or removed, or it is the
            list's canary.
    """
    now = audit.resolve_now(now)
    audit.check_actor(actor)
    _check_text(reason, "reason", MAX_REASON_CHARS, required=True, multiline=True)
    if at is not None and at.tzinfo is None:
        raise InvalidEntry("expiry time must be timezone-aware")
    audit.lock_list(session, list_id)
    lst = get_list_by_id(session, list_id)
    entry = get_entry(session, list_id, entry_id, lock=True)
    if entry.id == lst.canary_entry_id:
        raise InvalidState("the canary entry cannot be expired")
    if entry.status not in (STATUS_ACTIVE, STATUS_PENDING):
        raise InvalidState(f"entry {entry_id} is already {entry.status}")
    if at is None or at <= now:
        effective = now
        entry.status = _off_status(entry)
        entry.expires_at = effective
        _sync_publish_flag(entry)
        action = "entry.expire"
    else:
        effective = at.astimezone(UTC)
        entry.expires_at = effective
        action = "entry.schedule_expiry"
    session.flush()
    audit.append(
        session,
        list_id=list_id,
        actor=actor,
        action=action,
        entry_id=entry_id,
        details={
            "hash": b64encode(entry.hash),
            "reason": reason,
            "at": format_time(effective),
            "status": entry.status,
        },
        now=now,
    )
    return entry


def reinstate(
    session: Session,
    list_id: int,
    entry_id: int,
    *,
    actor: str,
    reason: str,
    now: datetime | None = None,
) -> EntryRow:
    """Put an expired or removed entry back to pending, needing fresh approvals.

    The reinstating analyst opens a new approval round and may not approve
    it (four-eyes governs reinstatements as it governs additions).

    Raises:
        NotFound: no such entry on the list.
        InvalidEntry: an empty or oversized reason.
        InvalidState: the entry is pending or active, or its plaintext was
            pruned (add the URL again first).
    """
    now = audit.resolve_now(now)
    audit.check_actor(actor)
    _check_text(reason, "reason", MAX_REASON_CHARS, required=True, multiline=True)
    audit.lock_list(session, list_id)
    entry = get_entry(session, list_id, entry_id, lock=True)
    if entry.status not in (STATUS_EXPIRED, STATUS_REMOVED):
        raise InvalidState(f"entry {entry_id} is {entry.status}; only expired entries come back")
    if entry.plaintext_pruned_at is not None:
        raise InvalidState(
            f"entry {entry_id}'s plaintext was pruned by retention: add its URL again (same "
            "scope) to restore it, then reinstate"
        )
    entry.status = STATUS_PENDING
    entry.approval_round += 1
    entry.submitted_by = actor
    entry.expires_at = None
    _sync_publish_flag(entry)
    session.flush()
    audit.append(
        session,
        list_id=list_id,
        actor=actor,
        action="entry.reinstate",
        entry_id=entry_id,
        details={
            "hash": b64encode(entry.hash),
            "reason": reason,
            "round": entry.approval_round,
            "status": entry.status,
        },
        now=now,
    )
    return entry


def due_for_expiry(list_id: int, now: datetime) -> tuple[ColumnElement[bool], ...]:
    """The conditions of a pending or active entry whose ``expires_at`` has come."""
    return (
        EntryRow.list_id == list_id,
        EntryRow.status.in_((STATUS_ACTIVE, STATUS_PENDING)),
        EntryRow.expires_at.is_not(None),
        EntryRow.expires_at <= now,
    )


def expire_due(session: Session, list_id: int, *, now: datetime) -> int:
    """Expire every pending or active entry whose ``expires_at`` has come.

    Each gets status expired (or removed, if never published) and an audit
    record by :data:`SYSTEM_EXPIRY`. Returns how many expired.

    Raises:
        InvalidField: a naive ``now``.
    """
    now = audit.resolve_now(now)
    audit.lock_list(session, list_id)
    due = session.scalars(select(EntryRow).where(*due_for_expiry(list_id, now))).all()
    # Sorted here rather than by ORDER BY id, which made the planner walk the
    # whole list in id order instead of using the expiry index.
    due = sorted(due, key=lambda entry: entry.id)
    events = []
    for entry in due:
        entry.status = _off_status(entry)
        _sync_publish_flag(entry)
        assert entry.expires_at is not None
        events.append(
            audit.AuditEvent(
                actor=SYSTEM_EXPIRY,
                action="entry.expire",
                entry_id=entry.id,
                details={
                    "hash": b64encode(entry.hash),
                    "reason": "scheduled expiry",
                    "at": format_time(entry.expires_at),
                    "status": entry.status,
                },
            )
        )
    session.flush()
    audit.append_many(session, list_id, events, now=now)
    return len(due)


def iter_entries(session: Session, list_id: int) -> Iterator[EntryRow]:
    """Every entry of a list, by id, read :data:`ENTRY_BATCH` at a time (full audit bundles).

    Each batch is expunged from the session once the next is read, so
    memory stays bounded by one batch however long the list.
    """
    after = 0
    while True:
        rows = session.scalars(
            select(EntryRow)
            .where(EntryRow.list_id == list_id, EntryRow.id > after)
            .order_by(EntryRow.id)
            .limit(ENTRY_BATCH)
        ).all()
        if not rows:
            return
        yield from rows
        after = rows[-1].id
        session.expunge_all()


def _canonical_host(host: str) -> str:
    if not isinstance(host, str) or not host or len(host) > MAX_HOST_CHARS:
        raise InvalidField(f"host must be 1..{MAX_HOST_CHARS} characters")
    if any(c in host for c in "/?#@ ") or _LINE_RE.search(host):
        raise InvalidField("host must be a bare host name or IP address")
    canonical = canonicalize(f"http://{host}/")
    _, _, rest = canonical.partition("://")
    return split_expression(rest or canonical)[0]


def search(
    session: Session,
    list_id: int,
    *,
    url: str | None = None,
    host: str | None = None,
    hash: bytes | None = None,
    status: str | None = None,
    reference: str | None = None,
    cursor: int | None = None,
    limit: int = DEFAULT_PAGE_SIZE,
) -> EntryPage:
    """Find entries; filters combine with AND. Pages are ordered by id.

    ``url`` matches every entry that would block it (its hash is among the
    Safe Browsing lookup expressions of the URL); ``host`` matches entries on
    that host or its subdomains. ``cursor`` is the previous page's
    ``next_cursor``: ids only grow, so inserts never shift later pages.

    Raises:
        LimitExceeded: ``limit`` outside 1..MAX_PAGE_SIZE.
        InvalidURL: ``url`` cannot be canonicalised.
        InvalidField: a bad host, hash length or status.
    """
    if not 1 <= limit <= MAX_PAGE_SIZE:
        raise LimitExceeded(f"limit must be 1..{MAX_PAGE_SIZE}")
    conditions: list[ColumnElement[bool]] = [EntryRow.list_id == list_id]
    if url is not None:
        hashes = sorted({expression_hash(e) for e in expressions(url)})
        conditions.append(EntryRow.hash.in_(hashes))
    if host is not None:
        canonical = _canonical_host(host)
        conditions.append(
            or_(
                EntryRow.host == canonical, EntryRow.host.endswith("." + canonical, autoescape=True)
            )
        )
    if hash is not None:
        if not isinstance(hash, bytes) or len(hash) != HASH_BYTES:
            raise InvalidField("hash must be 32 bytes")
        conditions.append(EntryRow.hash == hash)
    if status is not None:
        if status not in ENTRY_STATUSES:
            raise InvalidField(f"status must be one of {', '.join(ENTRY_STATUSES)}")
        conditions.append(EntryRow.status == status)
    if reference is not None:
        conditions.append(EntryRow.reference == reference)
    if cursor is not None:
        conditions.append(EntryRow.id > cursor)
    rows = list(
        session.scalars(
            select(EntryRow).where(and_(*conditions)).order_by(EntryRow.id).limit(limit + 1)
        ).all()
    )
    more = len(rows) > limit
    items = rows[:limit]
    return EntryPage(items=items, next_cursor=items[-1].id if more else None)


def get_entry_with_history(session: Session, list_id: int, entry_id: int) -> EntryHistory:
    """Return an entry, its approvals (every round) and its audit records.

    Raises:
        NotFound: no such entry on the list.
    """
    entry = get_entry(session, list_id, entry_id)
    approvals = list(
        session.scalars(
            select(ApprovalRow)
            .where(ApprovalRow.entry_id == entry_id)
            .order_by(ApprovalRow.round, ApprovalRow.id)
        ).all()
    )
    return EntryHistory(
        entry=entry, approvals=approvals, records=audit.entry_records(session, entry_id)
    )


def bulk_add(
    session: Session,
    list_id: int,
    rows: Sequence[BulkRow],
    *,
    actor: str,
    all_or_nothing: bool = False,
    import_id: int | None = None,
    now: datetime | None = None,
) -> list[BulkResult]:
    """Add many URLs at once; return one result per row, in order.

    With ``import_id`` (from :func:`create_import` or an earlier batch) the
    new entries belong to that import, so :func:`import_entries` finds them
    and they can be approved as a group; existing entries keep their import.

    Each row is validated as :func:`add_entry` would. A row whose expression
    is already on the list (or earlier in the same batch) is ``existing``
    (and restores a pruned entry's plaintext as :func:`add_entry` does).
    With ``all_or_nothing`` any failed row rejects the whole batch before
    anything is written. New entries and their audit records are written
    with one multi-row insert each.

    Raises:
        LimitExceeded: more than :data:`MAX_BULK_ROWS` rows.
        BulkRejected: ``all_or_nothing`` and at least one row failed
            (``.results`` says which and why); nothing was written.
        NotFound: no such list, or no import ``import_id`` on it.
        PermissionDenied: the import was started by another analyst.
        InvalidField: a bad actor name.
    """
    if len(rows) > MAX_BULK_ROWS:
        raise LimitExceeded(f"at most {MAX_BULK_ROWS} rows per bulk add")
    now = audit.resolve_now(now)
    audit.check_actor(actor)
    lst: ListRow = get_list_by_id(session, list_id)
    if import_id is not None:
        check_import(session, list_id, import_id, actor=actor)

    results: list[BulkResult | None] = [None] * len(rows)
    valid: list[tuple[int, _Validated]] = []
    for i, row in enumerate(rows):
        try:
            valid.append((i, _validate(row, lst.home_country, now)))
        except BlocklistError as e:
            results[i] = BulkResult(index=i, status=BULK_FAILED, code=e.code, message=str(e))
    if all_or_nothing and len(valid) < len(rows):
        final = [r or BulkResult(index=i, status=BULK_SKIPPED) for i, r in enumerate(results)]
        raise BulkRejected("bulk add rejected: some rows failed, nothing was added", final)

    audit.lock_list(session, list_id)
    wanted = list(dict.fromkeys(v.plan.hash for _, v in valid))
    known: dict[bytes, int] = {}
    known_pruned: set[bytes] = set()
    for start in range(0, len(wanted), _IN_CHUNK):
        chunk = wanted[start : start + _IN_CHUNK]
        for entry_id, digest, pruned_at in session.execute(
            select(EntryRow.id, EntryRow.hash, EntryRow.plaintext_pruned_at).where(
                EntryRow.list_id == list_id, EntryRow.hash.in_(chunk)
            )
        ):
            known[digest] = entry_id
            if pruned_at is not None:
                known_pruned.add(digest)

    pruned = [v for _, v in valid if v.plan.hash in known_pruned]
    if pruned:
        rows_by_id = {
            e.id: e
            for e in session.scalars(
                select(EntryRow).where(EntryRow.id.in_([known[v.plan.hash] for v in pruned]))
            )
        }
        restored: dict[bytes, tuple[EntryRow, _Validated]] = {}
        for v in pruned:
            restored.setdefault(v.plan.hash, (rows_by_id[known[v.plan.hash]], v))
        _restore_plaintext(session, list_id, list(restored.values()), actor, now)

    first_in_batch: dict[bytes, int] = {}
    to_insert: list[tuple[int, _Validated]] = []
    for i, v in valid:
        digest = v.plan.hash
        if digest in known:
            results[i] = BulkResult(
                index=i, status=BULK_EXISTING, entry_id=known[digest], hash=digest
            )
        elif digest in first_in_batch:
            continue  # resolved after the insert, once the first row has an id
        else:
            first_in_batch[digest] = i
            to_insert.append((i, v))

    if to_insert:
        inserted = session.execute(
            insert(EntryRow).returning(EntryRow.id, EntryRow.hash, sort_by_parameter_order=True),
            [_new_entry_values(list_id, v, actor, now, import_id) for _, v in to_insert],
        ).all()
        events = []
        for (i, v), (entry_id, digest) in zip(to_insert, inserted, strict=True):
            results[i] = BulkResult(index=i, status=BULK_ADDED, entry_id=entry_id, hash=digest)
            known[digest] = entry_id
            events.append(_add_event(entry_id, v, actor, import_id))
        audit.append_many(session, list_id, events, now=now)

    for i, v in valid:
        if results[i] is None:  # a repeat of an earlier row of this batch
            digest = v.plan.hash
            results[i] = BulkResult(
                index=i, status=BULK_EXISTING, entry_id=known[digest], hash=digest
            )
    return [r for r in results if r is not None]


# --- bulk imports and bulk approval ------------------------------------------


def create_import(
    session: Session, list_id: int, *, actor: str, now: datetime | None = None
) -> ImportRow:
    """Open a new bulk import on a list; its id groups the batches of one import.

    Raises:
        NotFound: no such list.
        InvalidField: a bad actor name.
    """
    now = audit.resolve_now(now)
    audit.check_actor(actor)
    get_list_by_id(session, list_id)
    row = ImportRow(list_id=list_id, created_by=actor, created_at=now)
    session.add(row)
    session.flush()
    return row


def check_import(session: Session, list_id: int, import_id: int, *, actor: str) -> ImportRow:
    """Return an import of the list that ``actor`` may add batches to.

    Raises:
        NotFound: no import ``import_id`` on this list.
        PermissionDenied: another analyst started it (an import is one
            analyst's submission; four-eyes names its creator).
    """
    row = get_import(session, list_id, import_id)
    if row.created_by != actor:
        raise PermissionDenied(
            f"import {import_id} was started by another analyst; start your own import"
        )
    return row


def get_import(session: Session, list_id: int, import_id: int) -> ImportRow:
    """Return an import of a list.

    Raises:
        NotFound: no import ``import_id`` on this list (one of another list
            is not found either).
    """
    row = session.scalar(
        select(ImportRow).where(ImportRow.id == import_id, ImportRow.list_id == list_id)
    )
    if row is None:
        raise NotFound(f"no import {import_id} on this list")
    return row


def import_entries(
    session: Session,
    list_id: int,
    import_id: int,
    *,
    cursor: int | None = None,
    limit: int = MAX_APPROVE_ROWS,
) -> ImportPage:
    """Ids of the entries an import added, in id order, one page at a time.

    ``cursor`` is the previous page's ``next_cursor``.

    Raises:
        NotFound: no import ``import_id`` on this list.
        LimitExceeded: ``limit`` outside 1..MAX_APPROVE_ROWS.
    """
    if not 1 <= limit <= MAX_APPROVE_ROWS:
        raise LimitExceeded(f"limit must be 1..{MAX_APPROVE_ROWS}")
    get_import(session, list_id, import_id)
    query = select(EntryRow.id).where(EntryRow.import_id == import_id, EntryRow.list_id == list_id)
    if cursor is not None:
        query = query.where(EntryRow.id > cursor)
    ids = list(session.scalars(query.order_by(EntryRow.id).limit(limit + 1)).all())
    more = len(ids) > limit
    ids = ids[:limit]
    return ImportPage(entry_ids=ids, next_cursor=ids[-1] if more else None)


def approve_many(
    session: Session,
    list_id: int,
    entry_ids: Sequence[int],
    *,
    actor: str,
    actor_role: str,
    now: datetime | None = None,
) -> list[ApproveResult]:
    """Approve many entries in one transaction; one result per id, in order.

    Each entry is judged exactly as :func:`approve` judges one (four-eyes per
    entry: an analyst's own entries in the batch are refused with
    ``self_approval``, and so on); a refused entry does not stop the others.
    Approvals and their audit records are written with one insert each.

    Raises:
        AdminCannotApprove: ``actor_role`` is admin.
        PermissionDenied: any other role that is not analyst.
        LimitExceeded: more than :data:`MAX_APPROVE_ROWS` ids.
        NotFound: no such list.
        InvalidField: a bad actor name.
    """
    if len(entry_ids) > MAX_APPROVE_ROWS:
        raise LimitExceeded(f"at most {MAX_APPROVE_ROWS} entries per bulk approval")
    now = audit.resolve_now(now)
    audit.check_actor(actor)
    check_approver_role(actor_role)
    audit.lock_list(session, list_id)
    lst = get_list_by_id(session, list_id)
    wanted = list(dict.fromkeys(entry_ids))
    entries: dict[int, EntryRow] = {}
    approvers: dict[int, set[str]] = {}
    for start in range(0, len(wanted), _IN_CHUNK):
        chunk = wanted[start : start + _IN_CHUNK]
        for entry in session.scalars(
            select(EntryRow)
            .where(EntryRow.list_id == list_id, EntryRow.id.in_(chunk))
            .with_for_update()
        ):
            entries[entry.id] = entry
            approvers[entry.id] = set()
        for entry_id, round_, who in session.execute(
            select(ApprovalRow.entry_id, ApprovalRow.round, ApprovalRow.actor).where(
                ApprovalRow.entry_id.in_(chunk)
            )
        ):
            owner = entries.get(entry_id)
            if owner is not None and round_ == owner.approval_round:
                approvers[entry_id].add(who)

    results: list[ApproveResult] = []
    new_approvals: list[dict[str, object]] = []
    events: list[audit.AuditEvent] = []
    for entry_id in entry_ids:
        found = entries.get(entry_id)
        refusal: BlocklistError | None = None
        if found is None:
            refusal = NotFound(f"no entry {entry_id} on this list")
        elif found.status != STATUS_PENDING:
            refusal = InvalidState(f"entry {entry_id} is {found.status}, not pending approval")
        elif found.expires_at is not None and found.expires_at <= now:
            refusal = InvalidState(
                f"entry {entry_id} passed its expiry time before it was approved"
            )
        else:
            refusal = approval_refusal(actor, found, approvers[entry_id])
        if refusal is not None or found is None:
            results.append(
                ApproveResult(
                    entry_id=entry_id,
                    status=APPROVE_REFUSED,
                    entry_status=found.status if found is not None else None,
                    code=getattr(refusal, "code", "store_error"),
                    message=str(refusal),
                )
            )
            continue
        seen = approvers[entry_id]
        seen.add(actor)
        new_approvals.append(
            {"entry_id": entry_id, "round": found.approval_round, "actor": actor, "at": now}
        )
        if foureyes.is_approved(len(seen), lst.approvals_required):
            found.status = STATUS_ACTIVE
            _sync_publish_flag(found)
        events.append(
            audit.AuditEvent(
                actor=actor,
                action="entry.approve",
                entry_id=entry_id,
                details={
                    "hash": b64encode(found.hash),
                    "round": found.approval_round,
                    "approvals": len(seen),
                    "required": lst.approvals_required,
                    "status": found.status,
                },
            )
        )
        results.append(
            ApproveResult(
                entry_id=entry_id,
                status=APPROVE_APPROVED,
                entry_status=found.status,
                approvals=len(seen),
                required=lst.approvals_required,
            )
        )
    if new_approvals:
        session.execute(insert(ApprovalRow), new_approvals)
        session.flush()
        audit.append_many(session, list_id, events, now=now)
    return results
