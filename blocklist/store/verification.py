"""Re-verification state in the store (issue 16 item 4; DESIGN.md "Safeguards").

The rules live in :mod:`blocklist.verification` (pure); the checks in
:mod:`signer.reverify`. This module holds every query of the feature:

- :func:`targets`: the active entries to check next (never the canary),
  least recently checked first;
- :func:`record`: store one check's outcome in its own transaction, write
  the ``entry.verify_propose_expiry`` audit record when the entry is newly
  proposed for expiry and, under ``auto_expire_gone``, expire it as the
  system (``entry.expire`` by ``system:reverify``, reason ``gone``, with the
  agreeing vantage points in the record so the auditor can check them);
- :func:`get_state`, :func:`proposals`, :func:`summaries`: what the entry
  JSON, the analysts' queue and the metrics show.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from blocklist.auditlog import Action, Actor
from blocklist.encoding import format_time
from blocklist.store import audit
from blocklist.store.entries import get_entry, sync_publish_flag
from blocklist.store.lists import get_list_by_id
from blocklist.store.models import (
    STATUS_ACTIVE,
    STATUS_EXPIRED,
    STATUS_REMOVED,
    EntryRow,
    ListRow,
    VerificationRow,
    VerificationRunRow,
)
from blocklist.verification import STATUS_GONE, STATUS_UNCHECKED, Outcome, VerificationState

__all__ = [
    "GONE_REASON",
    "KIND_EXPIRY",
    "KIND_REFERRAL",
    "KIND_UNVERIFIED",
    "ListSummary",
    "Proposal",
    "Recorded",
    "Target",
    "entry_state",
    "get_state",
    "home_country",
    "proposals",
    "record",
    "record_run",
    "summaries",
    "targets",
]

#: Removal reason code of a re-verification expiry (shared_names.md).
GONE_REASON = "gone"

#: Kinds of proposal in the analysts' queue.
KIND_EXPIRY = "expiry"
KIND_REFERRAL = "referral"
KIND_UNVERIFIED = "unverified"


@dataclass(frozen=True)
class Target:
    """What the job needs of one entry (plain values: checks run in threads)."""

    entry_id: int
    url: str
    host: str
    created_at: datetime
    state: VerificationState


@dataclass(frozen=True)
class Recorded:
    """What :func:`record` did."""

    stored: bool
    proposed: bool = False
    expired: bool = False


@dataclass(frozen=True)
class Proposal:
    """One re-verification item in the analysts' queue."""

    entry_id: int
    kind: str
    since: datetime
    status: str
    consecutive_gone: int
    checked_at: datetime | None


@dataclass(frozen=True)
class ListSummary:
    """A list's re-verification figures (admin metrics)."""

    list_name: str
    counts: dict[str, int]
    proposals: int
    flagged: int
    last_run_at: datetime | None
    last_run_seconds: float | None


#: A verification row that belongs to its entry's current approval round.
_current_round = and_(
    VerificationRow.entry_id == EntryRow.id,
    VerificationRow.approval_round == EntryRow.approval_round,
)


def _state(row: VerificationRow | None) -> VerificationState:
    if row is None:
        return VerificationState()
    return VerificationState(
        status=row.status,
        checked_at=row.checked_at,
        consecutive_gone=row.consecutive_gone,
        last_live_at=row.last_live_at,
        hosting=tuple(row.hosting),
        vantage_points=tuple(row.vantage_points),
        expiry_proposed_at=row.expiry_proposed_at,
        referral_proposed_at=row.referral_proposed_at,
        flagged_at=row.flagged_at,
    )


def get_state(session: Session, entry_id: int) -> VerificationState:
    """An entry's verification state (``unchecked`` when never checked in its
    current approval round)."""
    row = session.get(VerificationRow, entry_id)
    entry = session.get(EntryRow, entry_id)
    if row is None or entry is None or row.approval_round != entry.approval_round:
        return VerificationState()
    return _state(row)


def entry_state(session: Session, list_id: int, entry_id: int) -> VerificationState | None:
    """An entry's verification state; None for the list's canary (never checked).

    Raises:
        NotFound: no such list.
    """
    if get_list_by_id(session, list_id).canary_entry_id == entry_id:
        return None
    return get_state(session, entry_id)


def home_country(session: Session, list_id: int) -> str | None:
    """The list's home country (for referral proposals).

    Raises:
        NotFound: no such list.
    """
    return get_list_by_id(session, list_id).home_country


def targets(session: Session, list_id: int, *, limit: int) -> list[Target]:
    """Up to ``limit`` active entries to check, never-checked and least recently checked first.

    The canary is never re-verified (DESIGN.md part 2: it is outside all of
    part 2); entries whose plaintext was pruned have no URL to check.

    Raises:
        NotFound: no such list.
    """
    lst = get_list_by_id(session, list_id)
    query = (
        select(EntryRow, VerificationRow)
        .outerjoin(VerificationRow, VerificationRow.entry_id == EntryRow.id)
        .where(
            EntryRow.list_id == list_id,
            EntryRow.status == STATUS_ACTIVE,
            EntryRow.plaintext_pruned_at.is_(None),
        )
        .order_by(VerificationRow.checked_at.is_not(None), VerificationRow.checked_at, EntryRow.id)
        .limit(limit)
    )
    if lst.canary_entry_id is not None:
        query = query.where(EntryRow.id != lst.canary_entry_id)
    return [
        Target(
            entry.id,
            entry.url,
            entry.host,
            entry.created_at,
            # A state of an earlier round (before an expiry and reinstatement)
            # says nothing about the entry as re-approved.
            _state(row if row is not None and row.approval_round == entry.approval_round else None),
        )
        for entry, row in session.execute(query).all()
    ]


def _expire_gone(
    session: Session, list_id: int, entry: EntryRow, outcome: Outcome, now: datetime
) -> None:
    """Take an entry off as the system: reason ``gone``, agreeing vantage points recorded."""
    entry.status = (
        STATUS_EXPIRED if entry.listed or entry.added_version is not None else (STATUS_REMOVED)
    )
    entry.expires_at = now
    sync_publish_flag(entry)
    session.flush()
    audit.append_entry(
        session,
        entry,
        Actor.REVERIFY,
        Action.ENTRY_EXPIRE,
        {
            "reason": GONE_REASON,
            "at": format_time(now),
            "status": entry.status,
            "consecutive_gone": outcome.state.consecutive_gone,
            "vantage_points": [dict(v) for v in outcome.state.vantage_points],
        },
        now,
    )


def record(
    session: Session,
    list_id: int,
    entry_id: int,
    outcome: Outcome,
    *,
    gone_threshold: int,
    auto_expire_gone: bool,
    now: datetime,
) -> Recorded:
    """Store one check's outcome and act on it, in the caller's transaction.

    Nothing is stored when the entry stopped being active (or became the
    canary) while it was being checked: an analyst's decision wins over a
    check that started before it.

    Raises:
        NotFound: no such list or entry.
    """
    now = audit.resolve_now(now)
    audit.lock_list(session, list_id)
    lst = get_list_by_id(session, list_id)
    entry = get_entry(session, list_id, entry_id, lock=True)
    if entry.status != STATUS_ACTIVE or entry.id == lst.canary_entry_id:
        return Recorded(stored=False)
    state = outcome.state
    row = session.get(VerificationRow, entry_id)
    if row is None:
        row = VerificationRow(entry_id=entry_id, list_id=list_id)
        session.add(row)
    row.status = state.status
    row.checked_at = state.checked_at
    row.consecutive_gone = state.consecutive_gone
    row.last_live_at = state.last_live_at
    row.hosting = list(state.hosting)
    row.vantage_points = [dict(v) for v in state.vantage_points]
    row.expiry_proposed_at = state.expiry_proposed_at
    row.referral_proposed_at = state.referral_proposed_at
    row.flagged_at = state.flagged_at
    row.approval_round = entry.approval_round
    session.flush()
    if outcome.propose_expiry:
        audit.append_entry(
            session,
            entry,
            Actor.REVERIFY,
            Action.ENTRY_VERIFY_PROPOSE_EXPIRY,
            {
                "consecutive_gone": state.consecutive_gone,
                "threshold": gone_threshold,
            },
            now,
        )
    expired = auto_expire_gone and outcome.agreed_gone and state.status == STATUS_GONE
    if expired:
        _expire_gone(session, list_id, entry, outcome, now)
    return Recorded(stored=True, proposed=outcome.propose_expiry, expired=expired)


def record_run(
    session: Session, list_id: int, *, started: datetime, finished: datetime, checked: int
) -> None:
    """Remember a list's latest run (metrics: last run and its duration)."""
    row = session.get(VerificationRunRow, list_id)
    if row is None:
        row = VerificationRunRow(list_id=list_id)
        session.add(row)
    row.started_at = started
    row.finished_at = finished
    row.checked = checked
    session.flush()


def proposals(session: Session, list_id: int) -> list[Proposal]:
    """Re-verification items waiting in the list's queue, by entry id then kind.

    Only active entries: once an analyst expired a proposed entry (the normal
    expiry route accepts the proposal) it leaves the queue.
    """
    rows = session.scalars(
        select(VerificationRow)
        .join(EntryRow, EntryRow.id == VerificationRow.entry_id)
        .where(
            VerificationRow.list_id == list_id,
            EntryRow.status == STATUS_ACTIVE,
            VerificationRow.approval_round == EntryRow.approval_round,
            (VerificationRow.expiry_proposed_at.is_not(None))
            | (VerificationRow.referral_proposed_at.is_not(None))
            | (VerificationRow.flagged_at.is_not(None)),
        )
        .order_by(VerificationRow.entry_id)
    ).all()
    out: list[Proposal] = []
    for row in rows:
        for kind, since in (
            (KIND_EXPIRY, row.expiry_proposed_at),
            (KIND_REFERRAL, row.referral_proposed_at),
            (KIND_UNVERIFIED, row.flagged_at),
        ):
            if since is not None:
                out.append(
                    Proposal(
                        row.entry_id, kind, since, row.status, row.consecutive_gone, row.checked_at
                    )
                )
    return out


def summaries(session: Session) -> list[ListSummary]:
    """Per list: active entries by verification status, proposals, flags, last run."""
    out: list[ListSummary] = []
    for lst in session.scalars(select(ListRow).order_by(ListRow.name)).all():
        # Grouped by the nullable column (no row: never checked), mapped in
        # Python: PostgreSQL refuses to group by a parameterised coalesce().
        active = (
            select(VerificationRow.status, func.count())
            .select_from(EntryRow)
            .outerjoin(VerificationRow, _current_round)
            .where(EntryRow.list_id == lst.id, EntryRow.status == STATUS_ACTIVE)
            .group_by(VerificationRow.status)
        )
        if lst.canary_entry_id is not None:
            active = active.where(EntryRow.id != lst.canary_entry_id)
        counts: dict[str, int] = {}
        for status, n in session.execute(active).all():
            key = str(status) if status is not None else STATUS_UNCHECKED
            counts[key] = counts.get(key, 0) + int(n)
        queued = session.execute(
            select(
                func.count(VerificationRow.expiry_proposed_at)
                + func.count(VerificationRow.referral_proposed_at),
                func.count(VerificationRow.flagged_at),
            )
            .join(EntryRow, _current_round)
            .where(VerificationRow.list_id == lst.id, EntryRow.status == STATUS_ACTIVE)
        ).one()
        run = session.get(VerificationRunRow, lst.id)
        out.append(
            ListSummary(
                list_name=lst.name,
                counts=counts,
                proposals=int(queued[0] or 0),
                flagged=int(queued[1] or 0),
                last_run_at=run.finished_at if run is not None else None,
                last_run_seconds=(
                    (run.finished_at - run.started_at).total_seconds() if run is not None else None
                ),
            )
        )
    return out
