"""Safeguards in the store: the guard list, guard approvals, hosting evidence, referrals.

DESIGN.md, "Safeguards on what an entry may block"; issue 16 items 2, 3, 5.
The pure rules are :mod:`blocklist.safeguards`; here they are enforced
inside the write transaction, each decision with its audit record:

- **Guard list** (deployment-wide, like tokens; ``guard.add`` /
  ``guard.remove`` in the global chain). Migration 0008 seeds it from the
  shipped ``blocklist/data/guarded_hosts.txt``.
- **Guard approval** (``entry.guard_approve``): a host or prefix entry on a
  guarded host or an IP address stays pending after four-eyes until an
  administrator who neither created it, opened its round nor approved it
  approves it with a written justification. Each round (a reinstatement)
  needs its own.
- **Hosting evidence** (``entry.hosting``): stored with the entry; observed
  home-country hosting without a CDN proposes a referral
  (``entry.refer_propose``), which holds the entry off the list until
  analysts refer it (``entry.refer``: status ``referred``, never listed) or
  an administrator overrides with a reason (``entry.refer_override``).

Who is "the same person" is :func:`blocklist.foureyes.identity_of`, the one
function every separation-of-duties rule calls. The canary is exempt.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from importlib import resources
from typing import Final

from sqlalchemy import delete, or_, select, update
from sqlalchemy.orm import Session

from blocklist import canonical, foureyes, safeguards
from blocklist.auditlog import Action
from blocklist.encoding import b64encode, format_time
from blocklist.errors import BlocklistError, InvalidEntry
from blocklist.safeguards import HostingEvidence
from blocklist.store import audit
from blocklist.store.db import one_row
from blocklist.store.errors import (
    AwaitingSafeguard,
    Conflict,
    GuardIneligible,
    InvalidField,
    InvalidState,
    NotFound,
    PermissionDenied,
)
from blocklist.store.lists import get_list_by_id
from blocklist.store.models import (
    GUARD_HOST_LENGTH,
    REFERRAL_OVERRIDDEN,
    REFERRAL_PROPOSED,
    STATUS_ACTIVE,
    STATUS_PENDING,
    STATUS_REFERRED,
    ApprovalRow,
    EntryRow,
    GuardedHostRow,
)
from blocklist.store.submissions import MAX_REASON_CHARS, check_text

__all__ = [
    "DEFAULT_GUARDS_RESOURCE",
    "MAX_GUARD_NOTE_CHARS",
    "MAX_JUSTIFICATION_CHARS",
    "MAX_SUBSUMED_SCAN",
    "add_guard",
    "blockers",
    "count_subsumed",
    "default_guards",
    "guard_approve",
    "guard_for",
    "guarded_set",
    "list_guards",
    "normalise_guard_host",
    "override_referral",
    "propose_referral",
    "record_hosting",
    "record_hosting_many",
    "refer",
    "referrals",
    "remove_guard",
    "round_approvals",
    "round_approvers",
    "try_activate",
]

#: The shipped default guard list (package data).
DEFAULT_GUARDS_RESOURCE: Final = "guarded_hosts.txt"

#: Longest written justification of a guard approval: a few paragraphs.
MAX_JUSTIFICATION_CHARS: Final = MAX_REASON_CHARS

#: Longest note on a guarded host (why it is guarded).
MAX_GUARD_NOTE_CHARS: Final = 500

#: Most listed entries on one site read to count a new entry's blast radius:
#: the preview answers at once even for a site with a huge list; beyond it
#: the count is reported as "at least" this many.
MAX_SUBSUMED_SCAN: Final = 10_000

_ADMIN: Final = foureyes.ADMIN_ROLE
_ANALYST: Final = foureyes.APPROVER_ROLE

#: Who decides a referral proposal: the role, and the refusal of anyone else.
_REFERRER: Final = (_ANALYST, "only analysts refer entries")
_OVERRIDER: Final = (_ADMIN, "only an administrator overrides a referral proposal")


# --- the guard list ----------------------------------------------------------


def default_guards() -> list[str]:
    """The hosts of the shipped default guard list, in file order."""
    text = resources.files("blocklist.data").joinpath(DEFAULT_GUARDS_RESOURCE).read_text("utf-8")
    hosts = []
    for line in text.splitlines():
        host = line.split("#", 1)[0].strip()
        if host:
            hosts.append(host)
    return hosts


def normalise_guard_host(host: object) -> str:
    """The canonical form of a host to guard.

    Raises:
        InvalidField: not a host name of at least two valid labels, an IP
            address (every address is guarded already) or a public suffix
            (entries on it are refused outright).
    """
    if not isinstance(host, str) or not host.strip() or len(host) > GUARD_HOST_LENGTH:
        raise InvalidField(f"host must be a host name of 1..{GUARD_HOST_LENGTH} characters")
    try:
        name = canonical.expression("http://" + host.strip() + "/", "host")[:-1]
        canonical.check_entry_host(name)
    except BlocklistError as e:
        raise InvalidField(f"host is not a valid host name: {e}") from e
    if name + "/" != canonical.expression("http://" + name + "/", "host"):
        raise InvalidField("host must be a bare host name (no scheme, port or path)")
    if canonical.is_ip_host(name):
        raise InvalidField("every IP-address host is guarded already; guard host names only")
    if safeguards.is_public_suffix(name):
        raise InvalidField(
            "the host is a public suffix: entries on it are refused outright, so a guard on it "
            "would do nothing (guard a host registered under it instead)"
        )
    return name


def guarded_set(session: Session) -> frozenset[str]:
    """Every guarded host (a few hundred at most), for a batch of entries."""
    return frozenset(session.scalars(select(GuardedHostRow.host)).all())


def guard_for(session: Session, host: str, scope: str) -> str | None:
    """The guard rule a host or prefix entry on ``host`` falls under, or None."""
    if scope not in ("host", "prefix"):
        return None
    if canonical.is_ip_host(host):
        return safeguards.GUARD_IP
    labels = host.split(".")
    candidates = [".".join(labels[i:]) for i in range(len(labels) - 1)]
    found = set(
        session.scalars(select(GuardedHostRow.host).where(GuardedHostRow.host.in_(candidates)))
    )
    return safeguards.guard_rule(host, scope, found)


def list_guards(session: Session) -> list[GuardedHostRow]:
    """The guard list, by host."""
    return list(session.scalars(select(GuardedHostRow).order_by(GuardedHostRow.host)))


def add_guard(
    session: Session,
    host: str,
    *,
    actor: str,
    note: str | None = None,
    now: datetime | None = None,
) -> GuardedHostRow:
    """Guard a host (audited as ``guard.add`` in the global chain).

    Raises:
        InvalidField: a bad host (see :func:`normalise_guard_host`) or note.
        Conflict: the host is guarded already.
    """
    now = audit.resolve_now(now)
    audit.check_actor(actor)
    name = normalise_guard_host(host)
    try:
        check_text(note, "note", MAX_GUARD_NOTE_CHARS, required=False)
    except InvalidEntry as e:
        raise InvalidField(str(e)) from e
    audit.lock_list(session, None)
    if session.scalar(select(GuardedHostRow.id).where(GuardedHostRow.host == name)) is not None:
        raise Conflict(f"{name} is guarded already")
    row = GuardedHostRow(host=name, note=note, created_at=now, created_by=actor)
    session.add(row)
    session.flush()
    audit.append_global(session, actor, Action.GUARD_ADD, {"host": name, "note": note}, now)
    return row


def remove_guard(
    session: Session, host: str, *, actor: str, reason: str, now: datetime | None = None
) -> None:
    """Lift the guard on a host (audited as ``guard.remove`` with the reason).

    Entries already pending keep the guard rule they were added under.

    Raises:
        InvalidField: a bad host or an empty reason.
        NotFound: the host is not guarded.
    """
    now = audit.resolve_now(now)
    audit.check_actor(actor)
    name = normalise_guard_host(host)
    try:
        check_text(reason, "reason", MAX_REASON_CHARS, required=True, multiline=True)
    except InvalidEntry as e:
        raise InvalidField(str(e)) from e
    audit.lock_list(session, None)
    removed = session.execute(delete(GuardedHostRow).where(GuardedHostRow.host == name))
    if getattr(removed, "rowcount", 0) != 1:
        raise NotFound(f"{name} is not guarded")
    audit.append_global(session, actor, Action.GUARD_REMOVE, {"host": name, "reason": reason}, now)


# --- blast radius ------------------------------------------------------------


def count_subsumed(session: Session, list_id: int, expression: str) -> tuple[int, bool]:
    """How many listed entries the expression would subsume: ``(count, capped)``.

    Only entries on the same host or its subdomains can be subsumed; at most
    :data:`MAX_SUBSUMED_SCAN` of them are read (``capped`` True beyond).
    """
    host, _ = canonical.split_expression(expression)
    escaped = host.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    rows = session.scalars(
        select(EntryRow.expression)
        .where(
            EntryRow.list_id == list_id,
            EntryRow.listed.is_(True),
            or_(EntryRow.host == host, EntryRow.host.like("%." + escaped, escape="\\")),
        )
        .limit(MAX_SUBSUMED_SCAN + 1)
    ).all()
    capped = len(rows) > MAX_SUBSUMED_SCAN
    count = sum(
        1 for other in rows[:MAX_SUBSUMED_SCAN] if other and safeguards.subsumes(expression, other)
    )
    return count, capped


# --- activation --------------------------------------------------------------


def round_approvals(session: Session, entry: EntryRow) -> list[tuple[str, int | None]]:
    """``(actor, person)`` of each approval of the entry's open round."""
    rows = session.execute(
        select(ApprovalRow.actor, ApprovalRow.person).where(
            ApprovalRow.entry_id == entry.id, ApprovalRow.round == entry.approval_round
        )
    ).all()
    return [(who, who_person) for who, who_person in rows]


def round_approvers(session: Session, entry: EntryRow) -> set[str]:
    """The identities (:func:`blocklist.foureyes.identity_of`) that approved the open round."""
    return {
        foureyes.identity_of(who, who_person) for who, who_person in round_approvals(session, entry)
    }


def blockers(entry: EntryRow) -> list[str]:
    """What besides four-eyes holds a pending entry off the list.

    ``guard``: a guarded entry without a guard approval for its round;
    ``referral``: a referral proposal nobody decided yet.
    """
    waiting = []
    if entry.guard is not None and entry.guard_approved_by is None:
        waiting.append("guard")
    if entry.referral == REFERRAL_PROPOSED:
        waiting.append("referral")
    return waiting


def try_activate(entry: EntryRow, approvals: int, required: int) -> bool:
    """Make a pending entry active when four-eyes and every safeguard allow it."""
    if entry.status != STATUS_PENDING:
        return False
    if not foureyes.is_approved(approvals, required) or blockers(entry):
        return False
    entry.status = STATUS_ACTIVE
    entry.needs_publish = not entry.listed
    return True


# --- guard approval ----------------------------------------------------------


@dataclass(frozen=True)
class _Locked:
    entry: EntryRow
    required: int
    canary: bool


def _lock_entry(session: Session, list_id: int, entry_id: int) -> _Locked:
    audit.lock_list(session, list_id)
    lst = get_list_by_id(session, list_id)
    query = select(EntryRow).where(EntryRow.id == entry_id, EntryRow.list_id == list_id)
    entry = one_row(session, query, f"no entry {entry_id} on this list", lock=True)
    return _Locked(entry, lst.approvals_required, entry.id == lst.canary_entry_id)


def guard_approve(
    session: Session,
    list_id: int,
    entry_id: int,
    *,
    actor: str,
    actor_role: str,
    justification: str,
    person: int | None = None,
    now: datetime | None = None,
) -> EntryRow:
    """An administrator's approval of a guarded entry, with a written justification.

    The entry must be pending, guarded, not yet guard-approved in this round
    and approved by four-eyes (so "neither creator nor approver" is final).
    Activates it unless a referral is still undecided.

    Raises:
        GuardIneligible: the actor is not an administrator, or is (as
            :func:`blocklist.foureyes.identity_of` sees it) the entry's
            creator, the opener of its round or one of its approvers.
        InvalidEntry: an empty or oversized justification.
        NotFound: no such entry on the list.
        InvalidState: the entry is not pending, not guarded, or already
            guard-approved in this round.
        AwaitingSafeguard: four-eyes is not complete yet.
    """
    now = audit.resolve_now(now)
    audit.check_actor(actor)
    if actor_role != _ADMIN:
        raise GuardIneligible("only an administrator approves a guarded entry")
    text = check_text(
        justification,
        "justification",
        MAX_JUSTIFICATION_CHARS,
        required=True,
        multiline=True,
    )
    locked = _lock_entry(session, list_id, entry_id)
    entry = locked.entry
    if entry.status != STATUS_PENDING:
        raise InvalidState(f"entry {entry_id} is {entry.status}, not pending")
    if entry.guard is None:
        raise InvalidState(f"entry {entry_id} is not guarded; four-eyes alone approves it")
    if entry.guard_approved_by is not None:
        raise InvalidState(f"entry {entry_id} is guard-approved already in this round")
    approvers = round_approvers(session, entry)
    # By person (issue 15): an admin token of the entry's creator or of an
    # approver is the same person, whatever its name.
    who = foureyes.identity_of(actor, person)
    involved = {
        foureyes.identity_of(entry.created_by, None),
        foureyes.identity_of(entry.submitted_by, entry.submitted_person),
        *approvers,
    }
    if who in involved:
        raise GuardIneligible(
            "the guard approval must come from an administrator who neither added, "
            "reinstated nor approved the entry"
        )
    if not foureyes.is_approved(len(approvers), locked.required):
        raise AwaitingSafeguard(
            f"entry {entry_id} has {len(approvers)} of {locked.required} four-eyes approval(s): "
            "the guard approval comes after them"
        )
    entry.guard_approved_by = actor
    entry.guard_approved_at = now
    entry.guard_justification = text
    try_activate(entry, len(approvers), locked.required)
    session.flush()
    audit.append_entry(
        session,
        entry,
        actor,
        Action.ENTRY_GUARD_APPROVE,
        {
            "guard": entry.guard,
            "round": entry.approval_round,
            "justification": text,
            "status": entry.status,
            **audit.person_details(person),
        },
        now,
    )
    return entry


# --- hosting evidence and referrals ------------------------------------------


def record_hosting(
    session: Session,
    list_id: int,
    entry: EntryRow,
    evidence: HostingEvidence,
    *,
    actor: str,
    home_country: str | None,
    now: datetime,
) -> bool:
    """Store hosting evidence with the entry (``entry.hosting``); propose a
    referral when it shows home-country hosting without a CDN.

    Returns:
        Whether a referral was proposed.
    """
    entry.hosting = evidence.to_json()
    session.flush()
    audit.append_entry(session, entry, actor, Action.ENTRY_HOSTING, evidence.to_json(), now)
    if (
        evidence.verified
        and entry.status in (STATUS_PENDING, STATUS_ACTIVE)
        and entry.referral is None
        and safeguards.observed_home(evidence.addresses, home_country)
    ):
        propose_referral(session, list_id, entry, actor=actor, home_country=home_country, now=now)
        return True
    return False


def record_hosting_many(
    session: Session,
    list_id: int,
    items: Sequence[tuple[int, bytes, HostingEvidence]],
    *,
    actor: str,
    home_country: str | None,
    now: datetime,
) -> int:
    """:func:`record_hosting` for new pending entries of a bulk add, batched.

    ``items`` are ``(entry id, hash, evidence)``. Returns how many referrals
    were proposed.
    """
    events: list[audit.AuditEvent] = []
    proposed: list[int] = []
    for entry_id, digest, evidence in items:
        values: dict[str, object] = {"hosting": evidence.to_json()}
        events.append(
            audit.AuditEvent(
                actor=actor,
                action=Action.ENTRY_HOSTING,
                entry_id=entry_id,
                details={"hash": b64encode(digest), **evidence.to_json()},
            )
        )
        if evidence.verified and safeguards.observed_home(evidence.addresses, home_country):
            values["referral"] = REFERRAL_PROPOSED
            proposed.append(entry_id)
            events.append(
                audit.AuditEvent(
                    actor=actor,
                    action=Action.ENTRY_REFER_PROPOSE,
                    entry_id=entry_id,
                    details={
                        "hash": b64encode(digest),
                        "home_country": home_country,
                        "at": format_time(now),
                        "status": STATUS_PENDING,
                    },
                )
            )
        session.execute(update(EntryRow).where(EntryRow.id == entry_id).values(**values))
    if events:
        audit.append_many(session, list_id, events, now=now)
    return len(proposed)


def propose_referral(
    session: Session,
    list_id: int,
    entry: EntryRow,
    *,
    actor: str,
    home_country: str | None,
    now: datetime,
) -> None:
    """Put the entry in the analysts' referral queue (``entry.refer_propose``).

    A pending entry is held off the list until the proposal is decided; an
    active one stays listed until analysts refer it (re-verification
    proposes these). The list's canary is never proposed (nothing happens).
    """
    if get_list_by_id(session, list_id).canary_entry_id == entry.id:
        return
    entry.referral = REFERRAL_PROPOSED
    session.flush()
    audit.append_entry(
        session,
        entry,
        actor,
        Action.ENTRY_REFER_PROPOSE,
        {
            "home_country": home_country,
            "at": format_time(now),
            "status": entry.status,
        },
        now,
    )


def referrals(session: Session, list_id: int) -> Sequence[EntryRow]:
    """The open referral proposals of a list (the analysts' queue), by id."""
    return session.scalars(
        select(EntryRow)
        .where(
            EntryRow.list_id == list_id,
            EntryRow.referral == REFERRAL_PROPOSED,
            EntryRow.status.in_((STATUS_PENDING, STATUS_ACTIVE)),
        )
        .order_by(EntryRow.id)
    ).all()


def _decide_referral(
    session: Session,
    list_id: int,
    entry_id: int,
    actor: str,
    actor_role: str,
    decider: tuple[str, str],
    reason: str,
    now: datetime | None,
) -> tuple[_Locked, datetime]:
    """The common start of a referral decision: who may decide, the reason, the entry locked.

    Raises:
        PermissionDenied: ``actor_role`` is not ``decider``'s role (its message says why).
        InvalidEntry: an empty or oversized reason.
        NotFound: no such entry on the list.
    """
    now = audit.resolve_now(now)
    audit.check_actor(actor)
    role, refused = decider
    if actor_role != role:
        raise PermissionDenied(refused)
    check_text(reason, "reason", MAX_REASON_CHARS, required=True, multiline=True)
    return _lock_entry(session, list_id, entry_id), now


def _record_referral_decision(
    session: Session, entry: EntryRow, actor: str, action: str, reason: str, now: datetime
) -> EntryRow:
    session.flush()
    audit.append_entry(
        session, entry, actor, action, {"reason": reason, "status": entry.status}, now
    )
    return entry


def refer(
    session: Session,
    list_id: int,
    entry_id: int,
    *,
    actor: str,
    actor_role: str,
    reason: str,
    now: datetime | None = None,
) -> EntryRow:
    """Refer an entry to takedown and the police: status ``referred``, never listed.

    One analyst suffices, as for an expiry: referring only ever keeps
    material off the list (a listed entry comes off at the next publish).
    Referred is final: the entry cannot be reinstated.

    Raises:
        PermissionDenied: the actor is not an analyst.
        InvalidEntry: an empty or oversized reason.
        NotFound: no such entry on the list.
        InvalidState: the entry is not pending or active, or is the canary.
    """
    locked, now = _decide_referral(
        session, list_id, entry_id, actor, actor_role, _REFERRER, reason, now
    )
    entry = locked.entry
    if locked.canary:
        raise InvalidState("the canary entry is never referred")
    if entry.status not in (STATUS_PENDING, STATUS_ACTIVE):
        raise InvalidState(f"entry {entry_id} is {entry.status}; only pending or active entries")
    entry.status = STATUS_REFERRED
    entry.needs_publish = entry.listed
    return _record_referral_decision(session, entry, actor, Action.ENTRY_REFER, reason, now)


def override_referral(
    session: Session,
    list_id: int,
    entry_id: int,
    *,
    actor: str,
    actor_role: str,
    reason: str,
    now: datetime | None = None,
) -> EntryRow:
    """An administrator's override of a referral proposal, with a reason.

    The entry goes on through four-eyes (and its guard approval) as usual;
    if both are complete it becomes active.

    Raises:
        PermissionDenied: the actor is not an administrator.
        InvalidEntry: an empty or oversized reason.
        NotFound: no such entry on the list.
        InvalidState: no open referral proposal on the entry.
    """
    locked, now = _decide_referral(
        session, list_id, entry_id, actor, actor_role, _OVERRIDER, reason, now
    )
    entry = locked.entry
    if entry.referral != REFERRAL_PROPOSED or entry.status not in (STATUS_PENDING, STATUS_ACTIVE):
        raise InvalidState(f"entry {entry_id} has no open referral proposal")
    entry.referral = REFERRAL_OVERRIDDEN
    try_activate(entry, len(round_approvers(session, entry)), locked.required)
    return _record_referral_decision(
        session, entry, actor, Action.ENTRY_REFER_OVERRIDE, reason, now
    )
