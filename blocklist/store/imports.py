"""Entries in bulk: bulk add, imports (the batches of one submission), bulk approval.

Each row or entry is judged exactly as its single-entry counterpart in
:mod:`blocklist.store.entries` judges one (:mod:`blocklist.store.submissions`
for rows, :mod:`blocklist.foureyes` for approvals); what differs is that a
batch is read and written with a few set-wise statements, so 10,000 rows
cost a few queries rather than 10,000 round trips.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from blocklist import foureyes
from blocklist.auditlog import Action
from blocklist.encoding import b64encode
from blocklist.errors import BlocklistError
from blocklist.safeguards import HostingEvidence, guard_rule
from blocklist.store import audit
from blocklist.store.entries import (
    approval_refusal,
    check_approver_role,
    restore_plaintext,
)
from blocklist.store.errors import (
    BulkRejected,
    DuplicateApproval,
    LimitExceeded,
    NotFound,
    PermissionDenied,
)
from blocklist.store.guards import guarded_set, record_hosting_many, try_activate
from blocklist.store.lists import get_list_by_id
from blocklist.store.models import (
    ApprovalRow,
    EntryRow,
    ImportRow,
    ListRow,
)
from blocklist.store.submissions import (
    BulkRow,
    Validated,
    add_event,
    new_entry_values,
    validate,
)

__all__ = [
    "APPROVE_APPROVED",
    "APPROVE_REFUSED",
    "BULK_ADDED",
    "BULK_EXISTING",
    "BULK_FAILED",
    "BULK_SKIPPED",
    "MAX_APPROVE_ROWS",
    "MAX_BULK_ROWS",
    "ApproveResult",
    "BulkResult",
    "BulkRow",
    "ImportPage",
    "approve_many",
    "bulk_add",
    "check_import",
    "create_import",
    "get_import",
    "import_entries",
]

#: Rows per bulk call: bounds one transaction and one response.
MAX_BULK_ROWS = 10_000

#: Entries per bulk approval call (ids, or one page of an import): the same
#: bound as a bulk add, so one import batch is approved in one call.
MAX_APPROVE_ROWS = MAX_BULK_ROWS

#: Hashes per ``IN (...)`` clause: below SQLite's and PostgreSQL's bind
#: parameter limits with room to spare.
_IN_CHUNK = 1000

BULK_ADDED = "added"
BULK_EXISTING = "existing"
BULK_FAILED = "failed"
#: Valid row not applied because an all-or-nothing batch was rejected.
BULK_SKIPPED = "skipped"

#: Outcomes of one entry of a bulk approval.
APPROVE_APPROVED = "approved"
APPROVE_REFUSED = "refused"


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


def bulk_add(
    session: Session,
    list_id: int,
    rows: Sequence[BulkRow],
    *,
    actor: str,
    all_or_nothing: bool = False,
    import_id: int | None = None,
    person: int | None = None,
    hosting: Mapping[str, HostingEvidence] | None = None,
    now: datetime | None = None,
) -> list[BulkResult]:
    """Add many URLs at once; return one result per row, in order.

    ``hosting`` maps hosts to the evidence resolved before the transaction
    (issue 16 item 3): new entries on those hosts store and audit it, and
    home-country hosting proposes a referral, as for a single add.

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
    valid: list[tuple[int, Validated]] = []
    for i, row in enumerate(rows):
        try:
            valid.append((i, validate(row, lst.home_country, now)))
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
        restored: dict[bytes, tuple[EntryRow, Validated]] = {}
        for v in pruned:
            restored.setdefault(v.plan.hash, (rows_by_id[known[v.plan.hash]], v))
        restore_plaintext(session, list_id, list(restored.values()), actor, now)

    first_in_batch: dict[bytes, int] = {}
    to_insert: list[tuple[int, Validated]] = []
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

    # Guard rules (issue 16 item 2): the guard list is read once per batch.
    guarded = guarded_set(session) if to_insert else frozenset()
    guards_of = {i: guard_rule(v.host, v.plan.scope, guarded) for i, v in to_insert}
    if to_insert:
        inserted = session.execute(
            insert(EntryRow).returning(EntryRow.id, EntryRow.hash, sort_by_parameter_order=True),
            [
                new_entry_values(list_id, v, actor, now, import_id, person, guard=guards_of[i])
                for i, v in to_insert
            ],
        ).all()
        events = []
        for (i, v), (entry_id, digest) in zip(to_insert, inserted, strict=True):
            results[i] = BulkResult(index=i, status=BULK_ADDED, entry_id=entry_id, hash=digest)
            known[digest] = entry_id
            events.append(add_event(entry_id, v, actor, import_id, person, guard=guards_of[i]))
        audit.append_many(session, list_id, events, now=now)
        # Hosting evidence resolved before the transaction (issue 16 item 3).
        evidence = [
            (entry_id, digest, hosting[v.host])
            for (_, v), (entry_id, digest) in zip(to_insert, inserted, strict=True)
            if hosting is not None and v.host in hosting
        ]
        if evidence:
            record_hosting_many(
                session,
                list_id,
                evidence,
                actor=actor,
                home_country=lst.home_country,
                now=now,
            )

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
    person: int | None = None,
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
    names: dict[int, set[str]] = {}  # actor names, as in approve()
    for start in range(0, len(wanted), _IN_CHUNK):
        chunk = wanted[start : start + _IN_CHUNK]
        for entry in session.scalars(
            select(EntryRow)
            .where(EntryRow.list_id == list_id, EntryRow.id.in_(chunk))
            .with_for_update()
        ):
            entries[entry.id] = entry
            approvers[entry.id] = set()
        for entry_id, round_, who, who_person in session.execute(
            select(
                ApprovalRow.entry_id, ApprovalRow.round, ApprovalRow.actor, ApprovalRow.person
            ).where(ApprovalRow.entry_id.in_(chunk))
        ):
            owner = entries.get(entry_id)
            if owner is not None and round_ == owner.approval_round:
                approvers[entry_id].add(foureyes.identity_of(who, who_person))
                names.setdefault(entry_id, set()).add(who)
    identity = foureyes.identity_of(actor, person)

    results: list[ApproveResult] = []
    new_approvals: list[dict[str, object]] = []
    events: list[audit.AuditEvent] = []
    for entry_id in entry_ids:
        found = entries.get(entry_id)
        refusal: BlocklistError | None = None
        if found is None:
            refusal = NotFound(f"no entry {entry_id} on this list")
        else:
            refusal = approval_refusal(identity, found, approvers[entry_id], now=now, actor=actor)
            if refusal is None and actor in names.get(entry_id, ()):
                refusal = DuplicateApproval(f"{actor} already approved entry {entry_id}")
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
        seen.add(identity)
        new_approvals.append(
            {
                "entry_id": entry_id,
                "round": found.approval_round,
                "actor": actor,
                "at": now,
                "person": person,
            }
        )
        # Four-eyes, then the safeguards (a guard approval, a referral).
        try_activate(found, len(seen), lst.approvals_required)
        events.append(
            audit.AuditEvent(
                actor=actor,
                action=Action.ENTRY_APPROVE,
                entry_id=entry_id,
                details={
                    "hash": b64encode(found.hash),
                    "round": found.approval_round,
                    "approvals": len(seen),
                    "required": lst.approvals_required,
                    "status": found.status,
                    **audit.person_details(person),
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
