"""The ``audit.persons`` check: approvals come from distinct, enabled persons.

Issue 15 item 6. From the global chain's ``accounts.start`` record on (the
point from which the server counts persons in four-eyes), every
``entry.approve`` record of the list's chain is checked against the
account records of the global chain, replayed up to the approval's time:

- an approval naming a person (``details.person``) must come from an
  account that exists, is enabled, and holds the ``analyst`` role on this
  list (or on every list) at that time; the person must not be the one who
  opened the round (added or reinstated the entry), nor have approved the
  round already;
- an approval naming no person must not come from a token attached to a
  person at that time (the server would have named the person: a record
  that hides one is forged).

A round's opener is a person if its record names one, or if the token
name that opened it was attached to a person by the time of the approval
(the store attributes a token's earlier rounds to the person it is
attached to, :func:`blocklist.store.accounts.attach_token`).

Times: the two chains are ordered separately, so a global record and a
list record of the same second are not ordered. The check is lenient
inside that second (a grant of that second counts, a revocation or
disablement of that second does not yet), and strict outside it.

This module is pure: it reads :class:`blocklist.auditlog.AuditRecord` and
stops at the first failure with :func:`clients.audit.report.fail`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final

from blocklist.auditlog import Action, AuditRecord
from clients.audit.report import CHECK_PERSONS, fail

__all__ = ["ALL_LISTS", "PersonsCheck", "check_persons"]

#: How the global records write "every list" (blocklist.store.accounts.ALL_LISTS).
ALL_LISTS: Final = "*"

#: The role whose approvals count (blocklist.foureyes.APPROVER_ROLE).
_ANALYST: Final = "analyst"


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _str(value: object) -> str | None:
    return value if isinstance(value, str) else None


@dataclass(slots=True)
class _Event:
    """One account fact from the global chain: when, whose, what."""

    time: datetime
    seq: int
    kind: str  # "create", "grant", "ungrant", "disable", "token", "untoken"
    account: int | None = None
    role: str | None = None
    list_name: str | None = None
    token_name: str | None = None


@dataclass(slots=True)
class _Round:
    opener_actor: str
    opener_person: int | None
    round: int
    approvers: set[int] = field(default_factory=set)


class PersonsCheck:
    """The account history of a global chain, asked about at points in time."""

    def __init__(self, global_log: Sequence[AuditRecord]) -> None:
        """Read the account records of ``global_log`` (after ``accounts.start``)."""
        self.start: AuditRecord | None = None
        self.events: list[_Event] = []
        for r in global_log:
            if r.action == Action.ACCOUNTS_START and self.start is None:
                self.start = r
            if self.start is not None:
                self._read(r)

    def _read(self, r: AuditRecord) -> None:
        d = r.details
        account = _int(d.get("account"))
        add = self.events.append
        if r.action == Action.ACCOUNT_CREATE and account is not None:
            add(_Event(r.time, r.seq, "create", account))
        elif (
            r.action == Action.ACCOUNT_GRANT and d.get("status") == "granted"
        ) or r.action == Action.ACCOUNT_GRANT_CONFIRM:
            add(_Event(r.time, r.seq, "grant", account, _str(d.get("role")), _str(d.get("list"))))
        elif r.action == Action.ACCOUNT_REVOKE_ROLE and d.get("was") != "pending":
            add(_Event(r.time, r.seq, "ungrant", account, _str(d.get("role")), _str(d.get("list"))))
        elif r.action == Action.ACCOUNT_DISABLE:
            add(_Event(r.time, r.seq, "disable", account))
        elif r.action == Action.TOKEN_ATTACH or (
            r.action == Action.TOKEN_CREATE and account is not None
        ):
            add(
                _Event(
                    r.time,
                    r.seq,
                    "token",
                    account,
                    _str(d.get("role")),
                    token_name=_str(d.get("name")),
                )
            )
        elif r.action == Action.TOKEN_REVOKE and account is not None:
            add(_Event(r.time, r.seq, "untoken", account, token_name=_str(d.get("name"))))

    def _applies(self, e: _Event, at: datetime) -> bool:
        # Lenient inside one second (module docstring): additions of that
        # second apply, removals of that second do not yet.
        if e.kind in ("create", "grant", "token"):
            return e.time <= at
        return e.time < at

    def enabled(self, account: int, at: datetime) -> bool | None:
        """Whether the account exists and is enabled at ``at`` (None: never created)."""
        created = disabled = False
        for e in self.events:
            if e.account != account or not self._applies(e, at):
                continue
            if e.kind == "create":
                created = True
            elif e.kind == "disable":
                disabled = True
        return (not disabled) if created else None

    def holds(self, account: int, role: str, list_name: str | None, at: datetime) -> bool:
        """Whether the account holds ``role`` on ``list_name`` (or every list) at ``at``."""
        held: set[tuple[str | None, str | None]] = set()
        for e in self.events:
            if e.account != account or not self._applies(e, at):
                continue
            if e.kind == "grant":
                held.add((e.role, e.list_name))
            elif e.kind == "ungrant":
                held.discard((e.role, e.list_name))
        return (role, ALL_LISTS) in held or (role, list_name) in held

    def person_of_token(self, name: str, at: datetime) -> int | None:
        """The person an analyst token of this name belongs to at ``at``, if any."""
        owner: int | None = None
        for e in self.events:
            if e.token_name != name or not self._applies(e, at):
                continue
            if e.kind == "token" and e.role == _ANALYST:
                owner = e.account
            elif e.kind == "untoken" and owner == e.account:
                owner = None
        return owner


def check_persons(records: Sequence[AuditRecord], global_log: Sequence[AuditRecord]) -> int:
    """Check every approval after ``accounts.start``; return how many were checked.

    Raises:
        CheckFailed: the first approval that breaks a rule (check
            ``audit.persons``), with its record.
    """
    persons = PersonsCheck(global_log)
    if persons.start is None:
        return 0
    since = persons.start.time
    rounds: dict[int, _Round] = {}
    checked = 0
    for r in records:
        if r.entry_id is None:
            continue
        person = _int(r.details.get("person"))
        if r.action in (Action.ENTRY_ADD, Action.ENTRY_REINSTATE):
            number = _int(r.details.get("round")) or 1
            rounds[r.entry_id] = _Round(r.actor, person, number)
            continue
        if r.action != Action.ENTRY_APPROVE or r.time < since:
            continue
        state = rounds.get(r.entry_id)
        if state is None:
            continue  # audit.records reports an approval without its entry
        at = r.time
        if person is None:
            owner = persons.person_of_token(r.actor, at)
            if owner is not None:
                fail(
                    CHECK_PERSONS,
                    f"approval by {r.actor!r}, a token of person {owner} at that time, names no "
                    "person: four-eyes could not have counted it",
                    audit_seq=r.seq,
                    entry_id=r.entry_id,
                )
            continue
        checked += 1
        enabled = persons.enabled(person, at)
        if enabled is None:
            fail(
                CHECK_PERSONS,
                f"approval by person {person}, of whom the global log has no account.create",
                audit_seq=r.seq,
                entry_id=r.entry_id,
            )
        if not enabled:
            fail(
                CHECK_PERSONS,
                f"approval by person {person}, whose account was disabled at that time",
                audit_seq=r.seq,
                entry_id=r.entry_id,
            )
        if not persons.holds(person, _ANALYST, r.list_name, at):
            fail(
                CHECK_PERSONS,
                f"approval by person {person}, who did not hold the analyst role on list "
                f"{r.list_name!r} at that time",
                audit_seq=r.seq,
                entry_id=r.entry_id,
            )
        opener = state.opener_person
        if opener is None:
            opener = persons.person_of_token(state.opener_actor, at)
        if person == opener:
            fail(
                CHECK_PERSONS,
                f"person {person} approved round {state.round} of entry {r.entry_id}, "
                "which they opened",
                audit_seq=r.seq,
                entry_id=r.entry_id,
            )
        if r.details.get("round") == state.round:
            if person in state.approvers:
                fail(
                    CHECK_PERSONS,
                    f"person {person} approved round {state.round} of entry {r.entry_id} twice",
                    audit_seq=r.seq,
                    entry_id=r.entry_id,
                )
            state.approvers.add(person)
    return checked
