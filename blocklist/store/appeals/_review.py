"""Review: a reviewer decides an attached appeal; an admin closes an unmatched one.

:func:`decide` (an analyst who neither created nor approved the entry,
compared with :func:`blocklist.foureyes.identity_of`): ``upheld`` (the
entry stays; after a suspension it is reinstated, which opens a four-eyes
round), ``removed`` (expired, reason code :data:`REASON_CODE_APPEAL`),
``suspended`` (off the list at once; the caller publishes urgently).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Final

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from blocklist import foureyes
from blocklist.auditlog import Action
from blocklist.encoding import b64encode, format_time
from blocklist.store import audit
from blocklist.store.appeals._queue import (
    LINK_SUSPENDED,
    OUTCOME_REMOVED,
    OUTCOME_SUSPENDED,
    UNDECIDED,
    AppealView,
    LinkView,
    appeal_view,
    get_appeal_row,
    link_view,
)
from blocklist.store.entries import get_entry, sync_publish_flag
from blocklist.store.errors import InvalidField, InvalidState, NotFound, PermissionDenied
from blocklist.store.models import (
    APPEAL_OUTCOMES,
    STATUS_ACTIVE,
    STATUS_EXPIRED,
    STATUS_PENDING,
    STATUS_REMOVED,
    AppealLinkRow,
    AppealRow,
    AuditRow,
    EntryRow,
    ListRow,
)
from blocklist.store.submissions import MAX_REASON_CHARS, check_text

__all__ = [
    "REASON_CODE_APPEAL",
    "Decided",
    "IneligibleReviewer",
    "close_unmatched",
    "decide",
]

#: The removal reason code of an expiry decided by an appeal (shared_names.md).
REASON_CODE_APPEAL: Final = "appeal"

#: Entry statuses an appeal's removal takes off the list.
_ON_LIST: Final = (STATUS_ACTIVE, STATUS_PENDING)


class IneligibleReviewer(PermissionDenied):
    """The reviewer created, reinstated or approved the entry under appeal."""

    code = "appeal_reviewer_ineligible"


@dataclass(frozen=True)
class Decided:
    """The result of :func:`decide`."""

    link: LinkView
    #: The entry went off the list now: publish at once.
    publish_now: bool


def close_unmatched(
    session: Session, appeal_id: int, *, actor: str, reason: str, now: datetime | None = None
) -> AppealView:
    """An admin closes an appeal that matched no list (the public reads "no change").

    Raises:
        NotFound: no such appeal.
        InvalidState: it matched a list (reviewers of that list decide it),
            or it is closed already.
        InvalidEntry: an empty or oversized reason.
    """
    now = audit.resolve_now(now)
    audit.check_actor(actor)
    check_text(reason, "reason", MAX_REASON_CHARS, required=True, multiline=True)
    audit.lock_list(session, None)
    appeal = get_appeal_row(session, appeal_id)
    if appeal.matched:
        raise InvalidState(f"appeal {appeal_id} matched a list: its reviewers decide it")
    if appeal.closed_at is not None:
        raise InvalidState(f"appeal {appeal_id} is closed already")
    appeal.closed_at = now
    appeal.closed_by = actor
    session.flush()
    closed = {"appeal": appeal_id, "outcome": "closed_unmatched"}
    audit.append_global(session, actor, Action.APPEAL_DECIDE, closed, now)
    return appeal_view(session, appeal)


def _involved(session: Session, entry_id: int) -> tuple[set[str], set[str]]:
    """Who opened a round of the entry (created, reinstated) and who approved it.

    Read from the entry's audit records, exactly as the offline auditor
    reads them (clients.audit.decisions), so both apply one rule. Each is
    given twice: as its :func:`blocklist.foureyes.identity_of` (the person
    named in the record's details, issue 15, else the token name) and as
    its bare actor name, so neither a second token of the same person nor
    a token sharing a person's actor name passes for someone else.
    """
    rows = session.execute(
        select(AuditRow.action, AuditRow.actor, AuditRow.details).where(
            AuditRow.entry_id == entry_id,
            AuditRow.action.in_((Action.ENTRY_ADD, Action.ENTRY_REINSTATE, Action.ENTRY_APPROVE)),
        )
    ).all()
    openers: set[str] = set()
    approvers: set[str] = set()
    for action, actor, details in rows:
        person = details.get("person") if isinstance(details, dict) else None
        target = approvers if action == Action.ENTRY_APPROVE else openers
        target.add(actor)
        target.add(foureyes.identity_of(actor, person if isinstance(person, int) else None))
    return openers, approvers


def _off_status(entry: EntryRow) -> str:
    return STATUS_EXPIRED if entry.listed or entry.added_version is not None else STATUS_REMOVED


def _take_off(entry: EntryRow, now: datetime) -> None:
    """Take the entry off the list now (expired if it was ever published)."""
    entry.status = _off_status(entry)
    entry.expires_at = now
    sync_publish_flag(entry)


def _attached_link(
    session: Session, list_id: int, appeal_id: int, entry_id: int | None
) -> AppealLinkRow:
    """The undecided attachment of the appeal to one entry of the list, locked.

    Raises:
        NotFound: the appeal is not attached to this list (or to ``entry_id``).
        InvalidField: several entries matched and ``entry_id`` names none of them.
        InvalidState: decided already.
    """
    links = session.scalars(
        select(AppealLinkRow)
        .where(AppealLinkRow.list_id == list_id, AppealLinkRow.appeal_id == appeal_id)
        .order_by(AppealLinkRow.entry_id)
        .with_for_update()
    ).all()
    if entry_id is not None:
        links = [link for link in links if link.entry_id == entry_id]
    if not links:
        raise NotFound(f"no appeal {appeal_id} on this list")
    if len(links) > 1:
        ids = ", ".join(str(link.entry_id) for link in links)
        raise InvalidField(f"appeal {appeal_id} matched entries {ids}: name one as 'entry'")
    link = links[0]
    if link.status not in UNDECIDED:
        raise InvalidState(f"appeal {appeal_id} was decided already ({link.status})")
    return link


def _check_reviewer(session: Session, entry: EntryRow, actor: str, person: int | None) -> None:
    """Refuse a reviewer who opened a round of the entry or approved it.

    Raises:
        IneligibleReviewer: as the person or as the bare actor name.
    """
    openers, approvers = _involved(session, entry.id)
    refusal = foureyes.reviewer_refusal(
        foureyes.identity_of(actor, person), openers, approvers
    ) or foureyes.reviewer_refusal(actor, openers, approvers)
    if refusal is not None:
        raise IneligibleReviewer(
            f"{actor} {refusal}: the reviewer must be someone who neither created nor approved it"
        )


def _apply_outcome(
    entry: EntryRow,
    link: AppealLinkRow,
    *,
    appeal_id: int,
    actor: str,
    outcome: str,
    reason: str,
    person: int | None,
    now: datetime,
) -> tuple[list[audit.AuditEvent], bool]:
    """Change the entry as the outcome says; return its records and whether to publish now.

    Raises:
        InvalidState: ``suspended`` twice or on an entry not active; an
            upheld suspension of an entry whose plaintext was pruned.
    """
    h = b64encode(entry.hash)

    def event(action: str, details: dict[str, object]) -> audit.AuditEvent:
        return audit.AuditEvent(actor=actor, action=action, entry_id=entry.id, details=details)

    decision = {"appeal": appeal_id, "hash": h, "outcome": outcome, "reason": reason}
    events = [event(Action.APPEAL_DECIDE, {**decision, **audit.person_details(person)})]
    if outcome == OUTCOME_SUSPENDED:
        if link.status == LINK_SUSPENDED:
            raise InvalidState(f"appeal {appeal_id} has the entry suspended already")
        if entry.status != STATUS_ACTIVE:
            raise InvalidState(
                f"entry {entry.id} is {entry.status}: only an active entry is suspended"
            )
        _take_off(entry, now)
        suspension = {"hash": h, "appeal": appeal_id, "status": entry.status}
        events.append(event(Action.ENTRY_SUSPEND, suspension))
        return events, True
    if outcome == OUTCOME_REMOVED:
        if entry.status in _ON_LIST or link.status == LINK_SUSPENDED:
            if entry.status in _ON_LIST:
                _take_off(entry, now)
            expiry = {
                "hash": h,
                "reason": REASON_CODE_APPEAL,
                "appeal": appeal_id,
                "at": format_time(now),
                "status": entry.status,
            }
            events.append(event(Action.ENTRY_EXPIRE, expiry))
    elif link.status == LINK_SUSPENDED and entry.status in (STATUS_EXPIRED, STATUS_REMOVED):
        # Upheld after a suspension: back through four-eyes. The reviewer
        # opens the round and may not approve it (blocklist.foureyes rule 2).
        if entry.plaintext_pruned_at is not None:
            raise InvalidState(f"entry {entry.id}'s plaintext was pruned: add its URL again first")
        entry.status = STATUS_PENDING
        entry.approval_round += 1
        entry.submitted_by = actor
        entry.submitted_person = person
        entry.expires_at = None
        sync_publish_flag(entry)
        reinstatement = {
            "hash": h,
            "reason": reason,
            "round": entry.approval_round,
            "status": entry.status,
            "appeal": appeal_id,
            **audit.person_details(person),
        }
        events.append(event(Action.ENTRY_REINSTATE, reinstatement))
    return events, False


def decide(
    session: Session,
    list_id: int,
    appeal_id: int,
    *,
    actor: str,
    outcome: str,
    reason: str,
    entry_id: int | None = None,
    person: int | None = None,
    now: datetime | None = None,
) -> Decided:
    """Record a reviewer's decision on an appeal attached to an entry of the list.

    ``person`` is the reviewer's account (issue 15), compared with everyone
    who created, reinstated or approved the entry.

    Raises:
        NotFound: the appeal is not attached to this list (or to ``entry_id``).
        InvalidField: a bad outcome; several entries matched and ``entry_id``
            names none of them.
        InvalidEntry: an empty or oversized reason.
        IneligibleReviewer: the actor created, reinstated or approved the entry.
        InvalidState: decided already; ``suspended`` twice or on an entry not
            active; the entry is the canary.
    """
    now = audit.resolve_now(now)
    audit.check_actor(actor)
    if outcome not in APPEAL_OUTCOMES:
        raise InvalidField(f"outcome is one of {', '.join(APPEAL_OUTCOMES)}")
    check_text(reason, "reason", MAX_REASON_CHARS, required=True, multiline=True)
    audit.lock_list(session, list_id)
    link = _attached_link(session, list_id, appeal_id, entry_id)
    entry = get_entry(session, list_id, link.entry_id, lock=True)
    lst = session.get(ListRow, list_id)
    if lst is not None and lst.canary_entry_id == entry.id:
        raise InvalidState("the canary entry is never appealable")
    _check_reviewer(session, entry, actor, person)
    events, publish_now = _apply_outcome(
        entry,
        link,
        appeal_id=appeal_id,
        actor=actor,
        outcome=outcome,
        reason=reason,
        person=person,
        now=now,
    )
    link.status = outcome
    link.decided_at = now
    link.decided_by = actor
    link.reason = reason
    session.flush()
    audit.append_many(session, list_id, events, now=now)
    open_left = session.scalar(
        select(func.count())
        .select_from(AppealLinkRow)
        .where(AppealLinkRow.appeal_id == appeal_id, AppealLinkRow.status.in_(UNDECIDED))
    )
    appeal = session.get(AppealRow, appeal_id)
    if appeal is not None and not open_left:
        appeal.closed_at = now
        appeal.closed_by = actor
    session.flush()
    return Decided(link_view(session, link, entry), publish_now)
