"""The entry decisions of the audit log, replayed record by record.

:class:`Decisions` is the state machine behind the ``audit.addition``,
``audit.removal``, ``audit.safeguards`` and ``audit.appeal`` checks of
:class:`clients.audit.replay.AuditReplay`: it applies the list's records in
``seq`` order up to a position and says whether an addition or a removal of
a hash is backed by them (:class:`EntryState` is one entry's state).

Accountability. Records are replayed in ``seq`` order up to
each statement's audit head. ``entry.add`` opens approval round 1 with its
actor as opener; ``entry.reinstate`` opens the next round with its actor as
opener; ``entry.approve`` counts when its ``round`` is the open round, its
actor is neither the opener nor a ``system:`` actor nor already counted;
the entry becomes approved once the count reaches ``approvals_required``
(DESIGN.md, four-eyes). ``entry.expire`` takes it off; an expiry by a
``system:`` actor counts only when it carries the ``at`` an analyst set
(``expires_at`` of ``entry.add`` or an ``entry.schedule_expiry``) and is
not earlier than it, or, by ``system:reverify`` (re-verification's
``auto_expire_gone``), when it gives reason ``gone`` and at least two
distinct vantage points that all saw the entry gone. An addition of hash
h in version V needs h's entry to be approved at V's head; a removal
needs an expiry record after the head of the version that listed it. The
list's canary, created with the list by ``system:canary`` in the record
right after ``list.create``, is the one entry approved without analysts
(reported).

The action and actor names are :class:`blocklist.auditlog.Action` and
:class:`blocklist.auditlog.Actor`, the names the store writes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Final, NoReturn

from blocklist import foureyes
from blocklist.auditlog import Action, Actor, AuditRecord
from blocklist.encoding import b64decode, b64encode, parse_time
from blocklist.errors import FormatError
from blocklist.verification import vantage_agreement
from clients.audit.report import (
    CHECK_ADDITION,
    CHECK_APPEAL,
    CHECK_AUDIT_RECORDS,
    CHECK_REMOVAL,
    CHECK_SAFEGUARDS,
    fail,
)

__all__ = ["Decisions", "EntryState"]

_PENDING: Final = "pending"
_ACTIVE: Final = "approved"
_OFF: Final = "off"

# --- safeguards (issue 16) ---
#: The entry decisions of the safeguards, replayed by ``Decisions._safeguard``.
_SAFEGUARD_ACTIONS: Final = frozenset(
    {
        Action.ENTRY_GUARD_APPROVE,
        Action.ENTRY_HOSTING,
        Action.ENTRY_REFER_PROPOSE,
        Action.ENTRY_REFER,
        Action.ENTRY_REFER_OVERRIDE,
    }
)


def _text(value: object) -> bool:
    return isinstance(value, str) and bool(value.strip())


@dataclass(slots=True)
class EntryState:
    entry_id: int
    hash: bytes
    record: AuditRecord
    canary: bool
    opener: str
    round: int = 1
    approvers: set[str] = field(default_factory=set)
    status: str = _PENDING
    scheduled_at: str | None = None
    expire_seq: int | None = None
    expire_backed: bool = False
    expire_actor: str | None = None
    listed_pos: int | None = None
    claimed_status: object = None
    pruned_seq: int | None = None
    # --- safeguards (issue 16) ---
    #: The guard rule of the open round (``entry.add`` / ``entry.reinstate``).
    guard: str | None = None
    #: An eligible ``entry.guard_approve`` for the open round was recorded.
    guard_approved: bool = False
    #: An ``entry.refer_propose`` nobody decided yet.
    referral_open: bool = False
    #: ``entry.refer``: never listed again.
    referred: bool = False
    # Issue 17: everyone who ever opened a round of the entry (added or
    # reinstated it) or approved one: none of them may review its appeals.
    openers_all: set[str] = field(default_factory=set)
    approvers_all: set[str] = field(default_factory=set)


def _details_hash(record: AuditRecord) -> bytes:
    value = record.details.get("hash")
    if not isinstance(value, str):
        fail(
            CHECK_AUDIT_RECORDS,
            f"{record.action} record has no base64 'hash'",
            audit_seq=record.seq,
        )
    try:
        return b64decode(value, length=32, what="hash")
    except FormatError as e:
        fail(CHECK_AUDIT_RECORDS, f"{record.action} record: {e}", audit_seq=record.seq)


class Decisions:
    """Replays the audit log's entry decisions up to a record position."""

    def __init__(
        self, records: Sequence[AuditRecord], required: int, create_seq: int | None
    ) -> None:
        self.records = records
        self.required = required
        self.create_seq = create_seq
        self.position = 0
        self.entries: dict[int, EntryState] = {}
        self.by_hash: dict[bytes, EntryState] = {}
        self.canary: bytes | None = None
        #: Names of administrator tokens per the verified global chain
        #: (None: the bundle has no global log, so roles cannot be checked).
        self.admins: frozenset[str] | None = None
        #: (appeal, entry) -> [(outcome, reviewer, seq)] of eligible decisions.
        self.appeal_decisions: dict[tuple[int, int], list[tuple[str, str, int]]] = {}

    def advance(self, position: int) -> None:
        """Apply records ``position + 1 ..`` up to ``position`` (seq == index + 1)."""
        for record in self.records[self.position : position]:
            self._apply(record)
        self.position = max(self.position, position)

    def _apply(self, r: AuditRecord) -> None:
        if r.action == Action.APPEAL_DECIDE:
            self._appeal_decide(r)
            return
        if not r.action.startswith(Action.ENTRY_PREFIX):
            return
        if r.entry_id is None:
            fail(CHECK_AUDIT_RECORDS, f"{r.action} record names no entry", audit_seq=r.seq)
        state = self.entries.get(r.entry_id)
        if r.action == Action.ENTRY_ADD:
            self._add(r, r.entry_id, state)
            return
        if state is None:
            fail(
                CHECK_AUDIT_RECORDS,
                f"{r.action} record for entry {r.entry_id} precedes its entry.add record",
                audit_seq=r.seq,
            )
        if _details_hash(r) != state.hash:
            fail(
                CHECK_AUDIT_RECORDS,
                f"{r.action} record gives entry {r.entry_id} another hash than its entry.add",
                audit_seq=r.seq,
            )
        if "status" in r.details:
            state.claimed_status = r.details["status"]
        if r.action == Action.ENTRY_APPROVE:
            counted = (
                state.status == _PENDING
                and r.details.get("round") == state.round
                and foureyes.round_refusal(r.actor, opener=state.opener, approvers=state.approvers)
                is None
                and not Actor.is_system(r.actor)
            )
            state.approvers_all.add(r.actor)
            if counted:
                state.approvers.add(r.actor)
                self._activate(state)
        elif r.action == Action.ENTRY_REINSTATE:
            # A new approval round opened by the reinstating analyst
            # (blocklist.store.entries.reinstate): four-eyes again.
            if state.referred:
                fail(
                    CHECK_SAFEGUARDS,
                    f"entry.reinstate record for entry {r.entry_id}, which was referred "
                    "(a referred entry never comes back to the list)",
                    audit_seq=r.seq,
                    entry_id=r.entry_id,
                )
            state.round += 1
            state.opener = r.actor
            state.openers_all.add(r.actor)
            state.approvers = set()
            state.status = _PENDING
            state.scheduled_at = None
            guard = r.details.get("guard")
            state.guard = guard if isinstance(guard, str) else None
            state.guard_approved = False
        elif r.action == Action.ENTRY_SCHEDULE_EXPIRY:
            at = r.details.get("at")
            state.scheduled_at = at if isinstance(at, str) else None
        elif r.action == Action.ENTRY_EXPIRE:
            if "appeal" in r.details:
                self._appeal_backing(r, "removed")
                state.status = _OFF
                state.expire_seq = r.seq
                state.expire_backed = True
                return
            state.status = _OFF
            state.expire_seq = r.seq
            state.expire_actor = r.actor
            state.expire_backed = self._expiry_backed(r, state)
        elif r.action in _SAFEGUARD_ACTIONS:
            self._safeguard(r, state)
        elif r.action == Action.ENTRY_SUSPEND:
            # Off the list at once on a reviewer's decision (issue 17).
            self._appeal_backing(r, "suspended")
            state.status = _OFF
            state.expire_seq = r.seq
            state.expire_backed = True
        elif r.action == Action.ENTRY_PRUNE_PLAINTEXT:
            # Retention erases plaintext only of entries taken off the list.
            if state.status != _OFF or state.pruned_seq is not None:
                fail(
                    CHECK_AUDIT_RECORDS,
                    f"entry.prune_plaintext record for entry {r.entry_id}, which is "
                    + ("not off the list" if state.status != _OFF else "already pruned"),
                    audit_seq=r.seq,
                    entry_id=r.entry_id,
                )
            state.pruned_seq = r.seq
        elif r.action == Action.ENTRY_RESTORE_PLAINTEXT:
            if state.pruned_seq is None:
                fail(
                    CHECK_AUDIT_RECORDS,
                    f"entry.restore_plaintext record for entry {r.entry_id}, whose plaintext "
                    "was not pruned",
                    audit_seq=r.seq,
                    entry_id=r.entry_id,
                )
            state.pruned_seq = None

    def _appeal_decide(self, r: AuditRecord) -> None:
        """An ``appeal.decide`` on an entry: by an eligible reviewer, on a known entry."""
        appeal = r.details.get("appeal")
        outcome = r.details.get("outcome")
        if r.entry_id is None:
            # An admin closing an appeal that matched nothing names no entry
            # and decides nothing about the list.
            return
        if not isinstance(appeal, int) or isinstance(appeal, bool):
            fail(CHECK_APPEAL, "appeal.decide record names no appeal id", audit_seq=r.seq)
        if outcome not in ("upheld", "removed", "suspended"):
            fail(CHECK_APPEAL, f"appeal.decide with outcome {outcome!r}", audit_seq=r.seq)
        state = self.entries.get(r.entry_id)
        if state is None:
            fail(
                CHECK_APPEAL,
                f"appeal.decide for entry {r.entry_id}, which no earlier entry.add names",
                audit_seq=r.seq,
            )
        if _details_hash(r) != state.hash:
            fail(CHECK_APPEAL, "appeal.decide gives the entry another hash", audit_seq=r.seq)
        if state.canary:
            fail(CHECK_APPEAL, "an appeal was decided on the canary", audit_seq=r.seq)
        refusal = foureyes.reviewer_refusal(r.actor, state.openers_all, state.approvers_all)
        if refusal is not None or Actor.is_system(r.actor):
            fail(
                CHECK_APPEAL,
                f"appeal {appeal} on entry {r.entry_id} was decided by {r.actor}, who "
                f"{refusal or 'is not a person'}",
                audit_seq=r.seq,
                entry_id=r.entry_id,
            )
        self.appeal_decisions.setdefault((appeal, r.entry_id), []).append(
            (str(outcome), r.actor, r.seq)
        )

    def _appeal_backing(self, r: AuditRecord, outcome: str) -> None:
        """A suspension or an appeal removal needs that decision, by that reviewer, first."""
        appeal = r.details.get("appeal")
        assert r.entry_id is not None
        decisions = (
            self.appeal_decisions.get((appeal, r.entry_id), [])
            if isinstance(appeal, int) and not isinstance(appeal, bool)
            else []
        )
        if not any(o == outcome and actor == r.actor for o, actor, _ in decisions):
            fail(
                CHECK_APPEAL,
                f"{r.action} of entry {r.entry_id} citing appeal {appeal!r} follows no "
                f"'{outcome}' decision of that appeal by {r.actor}",
                audit_seq=r.seq,
                entry_id=r.entry_id,
            )

    def _add(self, r: AuditRecord, entry_id: int, state: EntryState | None) -> None:
        if state is not None:
            fail(CHECK_AUDIT_RECORDS, f"entry {entry_id} is added twice", audit_seq=r.seq)
        h = _details_hash(r)
        if h in self.by_hash:
            other = self.by_hash[h].entry_id
            fail(
                CHECK_AUDIT_RECORDS,
                f"entry {entry_id} has the hash of entry {other} ({b64encode(h)})",
                audit_seq=r.seq,
            )
        canary = (
            r.actor == Actor.CANARY
            and r.details.get("canary") is True
            and self.canary is None
            and self.create_seq is not None
            and r.seq == self.create_seq + 1
        )
        at = r.details.get("expires_at")
        guard = r.details.get("guard")
        state = EntryState(
            entry_id=entry_id,
            hash=h,
            record=r,
            canary=canary,
            opener=r.actor,
            scheduled_at=at if isinstance(at, str) else None,
            claimed_status=r.details.get("status"),
            guard=guard if isinstance(guard, str) else None,
            openers_all={r.actor},
        )
        if canary:
            # blocklist.store.lists.create_list: the canary is approved by
            # the system in the list's creation transaction.
            state.status = _ACTIVE
            self.canary = h
        self.entries[entry_id] = state
        self.by_hash[h] = state

    # --- safeguards (issue 16) ---

    def _activate(self, state: EntryState) -> None:
        """Approved once four-eyes, the guard approval and any referral allow it."""
        if state.status != _PENDING or len(state.approvers) < self.required:
            return
        if state.guard is not None and not state.guard_approved:
            return
        if state.referral_open:
            return
        state.status = _ACTIVE

    def _safeguard(self, r: AuditRecord, state: EntryState) -> None:
        def forged(reason: str) -> NoReturn:
            fail(CHECK_SAFEGUARDS, reason, audit_seq=r.seq, entry_id=r.entry_id)

        if r.action == Action.ENTRY_HOSTING:
            return  # evidence only; the referral it may cause is its own record
        if Actor.is_system(r.actor) and r.action != Action.ENTRY_REFER_PROPOSE:
            forged(f"{r.action} record by the system actor {r.actor}: only people decide this")
        if r.action == Action.ENTRY_GUARD_APPROVE:
            self._guard_approve(r, state, forged)
        elif r.action == Action.ENTRY_REFER_PROPOSE:
            if state.status in (_PENDING, _ACTIVE):
                state.referral_open = True
        elif r.action == Action.ENTRY_REFER:
            if not _text(r.details.get("reason")):
                forged("entry.refer record without a reason")
            if state.canary:
                forged("entry.refer record for the canary")
            state.status = _OFF
            state.referred = True
            state.referral_open = False
            state.expire_seq = r.seq
            state.expire_backed = True  # an analyst's decision, with its reason
        elif r.action == Action.ENTRY_REFER_OVERRIDE:
            if not _text(r.details.get("reason")):
                forged("entry.refer_override record without a reason")
            if not state.referral_open:
                forged("entry.refer_override record with no open referral proposal")
            if self.admins is not None and r.actor not in self.admins:
                forged(f"entry.refer_override by {r.actor}, who holds no administrator token")
            state.referral_open = False
            self._activate(state)

    def _guard_approve(
        self, r: AuditRecord, state: EntryState, forged: Callable[[str], NoReturn]
    ) -> None:
        if state.guard is None:
            forged("entry.guard_approve record for an entry that is not guarded")
        if r.details.get("round") != state.round:
            forged(
                f"entry.guard_approve record for round {r.details.get('round')!r}, "
                f"not the open round {state.round}"
            )
        if not _text(r.details.get("justification")):
            forged("entry.guard_approve record without a written justification")
        if state.guard_approved:
            forged("a second entry.guard_approve record for the same round")
        # By actor name: the store compares persons (issue 15); the persons
        # check (clients.audit.persons) re-counts approvals by person.
        who = r.actor
        involved = {state.record.actor, state.opener, *state.approvers}
        if who in involved:
            forged(
                f"entry.guard_approve by {r.actor}, who added, reinstated or approved the entry "
                "(the guard approval must come from someone else)"
            )
        if len(state.approvers) < self.required:
            forged("entry.guard_approve record before the entry had its four-eyes approvals")
        if self.admins is not None and r.actor not in self.admins:
            forged(f"entry.guard_approve by {r.actor}, who holds no administrator token")
        state.guard_approved = True
        self._activate(state)

    @staticmethod
    def _expiry_backed(r: AuditRecord, state: EntryState) -> bool:
        if not Actor.is_system(r.actor):
            return True  # an analyst's own decision, logged with its reason
        # --- re-verification (issue 16 item 4) ---
        if r.actor == Actor.REVERIFY:
            # auto_expire_gone: a system decision only with reason "gone"
            # and at least two distinct vantage points that all saw it gone
            # (blocklist.verification.vantage_agreement); never the canary.
            points = r.details.get("vantage_points")
            return (
                not state.canary
                and r.details.get("reason") == "gone"
                and isinstance(points, list)
                and vantage_agreement(points)
            )
        # --- end re-verification ---
        if r.actor != Actor.EXPIRY:
            return False  # no other system actor may take an entry off
        at = r.details.get("at")
        if state.scheduled_at is None or at != state.scheduled_at:
            return False
        try:
            due = parse_time(state.scheduled_at)
        except FormatError:
            return False
        return r.time >= due

    def check_addition(self, version: int, h: bytes, position: int) -> None:
        state = self.by_hash.get(h)
        if state is None:
            fail(
                CHECK_ADDITION,
                f"adds {b64encode(h)}, but no entry.add record for it precedes the version's "
                f"audit head (record {position})",
                version=version,
            )
        if state.referred:
            fail(
                CHECK_ADDITION,
                f"adds {b64encode(h)} (entry {state.entry_id}), which analysts referred "
                "(a referred entry is never listed)",
                version=version,
                entry_id=state.entry_id,
            )
        if state.status == _PENDING and state.guard is not None and not state.guard_approved:
            fail(
                CHECK_ADDITION,
                f"adds {b64encode(h)} (entry {state.entry_id}), guarded by {state.guard!r}, "
                "without an administrator's guard approval at the version's audit head",
                version=version,
                entry_id=state.entry_id,
            )
        if state.status == _PENDING and state.referral_open:
            fail(
                CHECK_ADDITION,
                f"adds {b64encode(h)} (entry {state.entry_id}) while its referral proposal "
                "was undecided (no entry.refer_override)",
                version=version,
                entry_id=state.entry_id,
            )
        if state.status == _PENDING:
            fail(
                CHECK_ADDITION,
                f"adds {b64encode(h)} (entry {state.entry_id}), which had "
                f"{len(state.approvers)} of "
                f"{self.required} required approval(s) by analysts other than {state.opener} "
                f"(round {state.round}) at the version's audit head (record {position})",
                version=version,
                entry_id=state.entry_id,
            )
        if state.status == _OFF:
            fail(
                CHECK_ADDITION,
                f"adds {b64encode(h)} (entry {state.entry_id}), which record {state.expire_seq} "
                "took off and nothing re-approved",
                version=version,
                entry_id=state.entry_id,
            )
        state.listed_pos = position

    def check_removal(self, version: int, h: bytes, position: int) -> None:
        state = self.by_hash.get(h)
        if state is None:
            fail(
                CHECK_REMOVAL,
                f"removes {b64encode(h)}, which no entry.add record names",
                version=version,
            )
        listed = state.listed_pos if state.listed_pos is not None else 0
        if state.status == _ACTIVE or state.expire_seq is None or state.expire_seq <= listed:
            fail(
                CHECK_REMOVAL,
                f"removes {b64encode(h)} (entry {state.entry_id}) with no expiry record after it "
                f"was listed (audit record {listed}) up to the version's head (record {position})",
                version=version,
                entry_id=state.entry_id,
            )
        if not state.expire_backed:
            fail(
                CHECK_REMOVAL,
                f"removes {b64encode(h)} (entry {state.entry_id}) on the strength of record "
                f"{state.expire_seq}, "
                + (
                    "a system:reverify expiry without reason 'gone' agreed by at least two "
                    "vantage points"
                    if state.expire_actor == Actor.REVERIFY
                    else "a system expiry that no analyst scheduled"
                ),
                version=version,
                entry_id=state.entry_id,
            )
        state.listed_pos = None
