"""Entries one at a time: add, four-eyes approval, expiry, reinstatement.

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

Related modules: :mod:`blocklist.store.submissions` (what a submitted entry
must be), :mod:`blocklist.store.search` (finding entries, an entry's
history), :mod:`blocklist.store.imports` (bulk add, imports, bulk approval);
the four-eyes rules themselves are stated in :mod:`blocklist.foureyes`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime

from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session

from blocklist import foureyes
from blocklist.auditlog import Action, Actor
from blocklist.encoding import b64encode, format_time
from blocklist.errors import InvalidEntry
from blocklist.safeguards import HostingEvidence
from blocklist.store import audit, guards
from blocklist.store.db import one_row
from blocklist.store.errors import (
    AdminCannotApprove,
    DuplicateApproval,
    InvalidState,
    PermissionDenied,
    SelfApproval,
    StoreError,
)
from blocklist.store.lists import get_list_by_id
from blocklist.store.models import (
    STATUS_ACTIVE,
    STATUS_EXPIRED,
    STATUS_PENDING,
    STATUS_REMOVED,
    ApprovalRow,
    EntryRow,
)
from blocklist.store.submissions import (
    MAX_REASON_CHARS,
    BulkRow,
    Validated,
    add_event,
    check_text,
    new_entry_values,
    validate,
)

__all__ = [
    "ENTRY_BATCH",
    "SYSTEM_EXPIRY",
    "add_entry",
    "approval_refusal",
    "approve",
    "check_approver_role",
    "due_for_expiry",
    "expire",
    "expire_due",
    "get_entry",
    "iter_entries",
    "reinstate",
    "restore_plaintext",
    "sync_publish_flag",
]

#: Entries read per query while streaming every entry of a list.
ENTRY_BATCH = 1000

#: Actor recorded when an entry expires because its ``expires_at`` passed.
SYSTEM_EXPIRY = Actor.EXPIRY


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
    person: int | None = None,
    hosting: HostingEvidence | None = None,
    now: datetime | None = None,
) -> tuple[EntryRow, bool]:
    """Add a URL to a list as a pending entry; return ``(entry, created)``.

    Safeguards (:mod:`blocklist.store.guards`): a host or prefix entry on a
    guarded host or an IP address records its guard rule (it will need a
    guard approval); ``hosting``, the evidence resolved before the
    transaction (DNS is slow, locks are not held for it), is stored and
    audited, and home-country hosting without a CDN proposes a referral.

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
        PublicSuffix: the host is a public suffix.
        InvalidField: a bad actor name.
    """
    now = audit.resolve_now(now)
    audit.check_actor(actor)
    lst = get_list_by_id(session, list_id)
    v = validate(
        BulkRow(url, scope, reason, reference, category, hosting_country, expires_at),
        lst.home_country,
        now,
    )
    audit.lock_list(session, list_id)
    existing = session.scalar(
        select(EntryRow).where(EntryRow.list_id == list_id, EntryRow.hash == v.plan.hash)
    )
    if existing is not None:
        restore_plaintext(session, list_id, [(existing, v)], actor, now)
        return existing, False
    guard = guards.guard_for(session, v.host, v.plan.scope)
    entry = EntryRow(**new_entry_values(list_id, v, actor, now, person=person, guard=guard))
    session.add(entry)
    session.flush()
    audit.append_many(
        session, list_id, [add_event(entry.id, v, actor, person=person, guard=guard)], now=now
    )
    if hosting is not None:
        guards.record_hosting(
            session,
            list_id,
            entry,
            hosting,
            actor=actor,
            home_country=lst.home_country,
            now=now,
        )
    return entry, True


def restore_plaintext(
    session: Session,
    list_id: int,
    pairs: Sequence[tuple[EntryRow, Validated]],
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
                action=Action.ENTRY_RESTORE_PLAINTEXT,
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
    return one_row(session, query, f"no entry {entry_id} on this list", lock=lock)


def sync_publish_flag(entry: EntryRow) -> None:
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


def approval_refusal(
    identity: str,
    entry: EntryRow,
    approvers: set[str],
    *,
    now: datetime,
    actor: str | None = None,
) -> StoreError | None:
    """The error refusing an approval of the entry's open round, or None.

    The entry must be pending and not past its expiry time; then four-eyes
    rules 2 and 3 (:mod:`blocklist.foureyes`) apply to identities
    (:func:`blocklist.foureyes.identity_of`: the person, else the token
    name): ``identity`` is the approver's, ``approvers`` those of the
    analysts who already approved the round. :func:`approve` raises this
    error; :func:`blocklist.store.imports.approve_many` reports it per entry.
    """
    if entry.status != STATUS_PENDING:
        return InvalidState(f"entry {entry.id} is {entry.status}, not pending approval")
    if entry.expires_at is not None and entry.expires_at <= now:
        return InvalidState(f"entry {entry.id} passed its expiry time before it was approved")
    opener = foureyes.identity_of(entry.submitted_by, entry.submitted_person)
    refusal = foureyes.round_refusal(identity, opener=opener, approvers=approvers)
    if refusal is None and actor is not None and actor == entry.submitted_by:
        # The same actor name as the opener: the audit chain could not tell
        # the two apart, so it is the same analyst (a person and a token of
        # no person that share a name).
        refusal = foureyes.Refusal.OWN_ROUND
    if refusal is foureyes.Refusal.OWN_ROUND:
        return SelfApproval("an analyst cannot approve an entry they added or reinstated")
    if refusal is foureyes.Refusal.ALREADY_APPROVED:
        who = identity.removeprefix("token:")
        return DuplicateApproval(f"{who} already approved entry {entry.id}")
    return None


def approve(
    session: Session,
    list_id: int,
    entry_id: int,
    *,
    actor: str,
    actor_role: str,
    person: int | None = None,
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
    rows = guards.round_approvals(session, entry)
    approvers = {foureyes.identity_of(who, who_person) for who, who_person in rows}
    identity = foureyes.identity_of(actor, person)
    refusal = approval_refusal(identity, entry, approvers, now=now, actor=actor)
    if refusal is None and actor in {who for who, _ in rows}:
        # A person and an unattached token of the same name: the actor name
        # in the audit chain would not tell them apart, so one approval only.
        refusal = DuplicateApproval(f"{actor} already approved entry {entry.id}")
    if refusal is not None:
        raise refusal
    session.add(
        ApprovalRow(
            entry_id=entry_id, round=entry.approval_round, actor=actor, at=now, person=person
        )
    )
    approvers.add(identity)
    # Four-eyes (counted by person, issue 15), then the safeguards: a guarded
    # entry waits for its guard approval, a proposed referral for its
    # decision (blocklist.store.guards).
    guards.try_activate(entry, len(approvers), lst.approvals_required)
    waiting = guards.blockers(entry) if entry.status == STATUS_PENDING else []
    session.flush()
    audit.append_entry(
        session,
        entry,
        actor,
        Action.ENTRY_APPROVE,
        {
            "round": entry.approval_round,
            "approvals": len(approvers),
            "required": lst.approvals_required,
            "status": entry.status,
            **audit.person_details(person),
            # Only when a safeguard holds it, so other records keep their form.
            **({"awaiting": waiting} if waiting else {}),
        },
        now,
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
    person: int | None = None,
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
    check_text(reason, "reason", MAX_REASON_CHARS, required=True, multiline=True)
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
        sync_publish_flag(entry)
        action = Action.ENTRY_EXPIRE
    else:
        effective = at.astimezone(UTC)
        entry.expires_at = effective
        action = Action.ENTRY_SCHEDULE_EXPIRY
    session.flush()
    audit.append_entry(
        session,
        entry,
        actor,
        action,
        {
            "reason": reason,
            "at": format_time(effective),
            "status": entry.status,
            **audit.person_details(person),
        },
        now,
    )
    return entry


def reinstate(
    session: Session,
    list_id: int,
    entry_id: int,
    *,
    actor: str,
    reason: str,
    person: int | None = None,
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
    check_text(reason, "reason", MAX_REASON_CHARS, required=True, multiline=True)
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
    entry.submitted_person = person
    entry.expires_at = None
    # A new round needs its own guard approval, under today's guard list.
    entry.guard = guards.guard_for(session, entry.host, entry.scope)
    entry.guard_approved_by = None
    entry.guard_approved_at = None
    entry.guard_justification = None
    sync_publish_flag(entry)
    session.flush()
    audit.append_entry(
        session,
        entry,
        actor,
        Action.ENTRY_REINSTATE,
        {
            "reason": reason,
            "round": entry.approval_round,
            "status": entry.status,
            **audit.person_details(person),
            **({"guard": entry.guard} if entry.guard is not None else {}),
        },
        now,
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
        sync_publish_flag(entry)
        assert entry.expires_at is not None
        events.append(
            audit.AuditEvent(
                actor=SYSTEM_EXPIRY,
                action=Action.ENTRY_EXPIRE,
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
