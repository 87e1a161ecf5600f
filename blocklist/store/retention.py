"""Retention: prune old snapshots and the plaintext of entries long off a list.

What stays forever (the audit trail; docs/operations.md, "Retention"):
statements, the Merkle tree, checkpoints, keyrings, the audit log and every
entry's hash and decisions. Pruning any of it would break verification for
ISPs and auditors. What can go, by configuration:

- **Snapshots of old versions.** A snapshot is computed from the membership
  rows (``added_version``, ``removed_version``). Raising the list's
  ``snapshot_floor`` to F deletes the rows removed at or before F: they
  belong to no snapshot of a version >= F (a hash removed at version r is
  in snapshots below r only). Snapshots below F are then answered with
  :class:`~blocklist.store.errors.Pruned`, never with a wrong set. The floor
  is the version that was current at the cutoff time (the newest version
  published at or before it), so the latest version and every version
  superseded within the retention window keep their snapshots.
- **Plaintext of entries off the list.** An entry that is expired or
  removed, whose removal is published, and that came off (its
  ``expires_at``) at or before the cutoff has its ``expression``, ``url``
  and ``host`` erased and ``plaintext_pruned_at`` set. Each erasure appends
  an ``entry.prune_plaintext`` audit record naming the entry by id and hash,
  so a full audit bundle shows which entries have no plaintext and why.
  Adding the same URL again restores the plaintext
  (:func:`blocklist.store.entries.add_entry`).

Every call runs in the caller's transaction under the list lock, and
prunes at most ``limit`` entries, so a first run over years of history is
a series of bounded transactions (:attr:`PruneResult.more`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Final, cast

from sqlalchemy import CursorResult, Select, delete, func, select, update
from sqlalchemy.orm import Session

from blocklist.auditlog import Action, Actor
from blocklist.encoding import b64encode, format_time
from blocklist.store import audit
from blocklist.store.errors import InvalidField
from blocklist.store.lists import get_list, get_list_by_id, list_lists
from blocklist.store.models import (
    STATUS_EXPIRED,
    STATUS_REMOVED,
    EntryRow,
    MembershipRow,
    VersionRow,
)

if TYPE_CHECKING:
    from blocklist.store.db import Database

__all__ = [
    "MAX_RETENTION_DAYS",
    "PRUNE_BATCH",
    "SYSTEM_RETENTION",
    "PruneResult",
    "RetentionPolicy",
    "floor_at",
    "prune_database",
    "prune_list",
]

#: Actor of the audit records retention appends.
SYSTEM_RETENTION: Final = Actor.RETENTION

#: Longest retention period accepted (a century: a typo, not a policy, beyond).
MAX_RETENTION_DAYS: Final = 36_500

#: Entries whose plaintext one call prunes at most (one bounded transaction).
PRUNE_BATCH: Final = 5_000

#: Entry ids per ``IN (...)`` clause, below every backend's bind limit.
_IN_CHUNK: Final = 1_000


@dataclass(frozen=True)
class RetentionPolicy:
    """How long to keep old snapshots and off-list plaintext; ``None`` keeps them forever."""

    snapshot_days: int | None = None
    plaintext_days: int | None = None

    def __post_init__(self) -> None:
        """Validate the periods.

        Raises:
            InvalidField: a period outside 1..MAX_RETENTION_DAYS days.
        """
        for name in ("snapshot_days", "plaintext_days"):
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int):
                raise InvalidField(f"{name} must be a whole number of days")
            if not 1 <= value <= MAX_RETENTION_DAYS:
                raise InvalidField(f"{name} must be 1..{MAX_RETENTION_DAYS} days, not {value}")

    @property
    def enabled(self) -> bool:
        """Whether anything is ever pruned under this policy."""
        return self.snapshot_days is not None or self.plaintext_days is not None


@dataclass(frozen=True)
class PruneResult:
    """What one :func:`prune_list` call pruned (or would prune, for a dry run)."""

    list_id: int
    previous_floor: int
    snapshot_floor: int
    memberships_deleted: int
    plaintext_pruned: int
    more: bool
    dry_run: bool

    def summary(self, list_name: str) -> dict[str, object]:
        """The result as one flat record (the CLI's JSON line, the signers' log fields)."""
        return {
            "event": "retention",
            "list": list_name,
            "dry_run": self.dry_run,
            "previous_floor": self.previous_floor,
            "snapshot_floor": self.snapshot_floor,
            "memberships_deleted": self.memberships_deleted,
            "plaintext_pruned": self.plaintext_pruned,
            "more": self.more,
        }

    @property
    def changed(self) -> bool:
        """Whether anything was (or would be) pruned."""
        return (
            self.snapshot_floor != self.previous_floor
            or self.memberships_deleted > 0
            or self.plaintext_pruned > 0
        )


def floor_at(session: Session, list_id: int, cutoff: datetime) -> int:
    """The version current at ``cutoff``: the newest published at or before it (0: none)."""
    value = session.scalar(
        select(func.max(VersionRow.version)).where(
            VersionRow.list_id == list_id, VersionRow.time <= cutoff
        )
    )
    return int(value or 0)


def _prunable_plaintext(list_id: int, canary: int | None, cutoff: datetime) -> Select[EntryRow]:
    query = select(EntryRow).where(
        EntryRow.list_id == list_id,
        EntryRow.status.in_((STATUS_EXPIRED, STATUS_REMOVED)),
        EntryRow.expires_at.is_not(None),
        EntryRow.expires_at <= cutoff,
        EntryRow.listed.is_(False),
        EntryRow.needs_publish.is_(False),
        EntryRow.plaintext_pruned_at.is_(None),
    )
    if canary is not None:
        query = query.where(EntryRow.id != canary)
    return query


def prune_list(
    session: Session,
    list_id: int,
    policy: RetentionPolicy,
    *,
    now: datetime | None = None,
    dry_run: bool = False,
    limit: int = PRUNE_BATCH,
) -> PruneResult:
    """Apply ``policy`` to one list (see module doc); return what was pruned.

    A dry run counts what would be pruned (up to ``limit`` entries) and
    changes nothing.

    Raises:
        NotFound: no such list.
        InvalidField: a naive ``now`` or a ``limit`` below 1.
    """
    now = audit.resolve_now(now)
    if limit < 1:
        raise InvalidField("limit must be at least 1")
    audit.lock_list(session, list_id)
    lst = get_list_by_id(session, list_id)
    previous = lst.snapshot_floor
    floor = previous
    deleted = 0
    if policy.snapshot_days is not None:
        cutoff = now - timedelta(days=policy.snapshot_days)
        floor = max(previous, floor_at(session, list_id, cutoff))
        gone = (
            MembershipRow.list_id == list_id,
            MembershipRow.removed_version.is_not(None),
            MembershipRow.removed_version <= floor,
        )
        if dry_run:
            deleted = int(
                session.scalar(select(func.count()).select_from(MembershipRow).where(*gone)) or 0
            )
        elif floor != previous:
            result = session.execute(delete(MembershipRow).where(*gone))
            deleted = int(cast("CursorResult[Any]", result).rowcount)
            lst.snapshot_floor = floor
            session.flush()
            audit.append(
                session,
                list_id=list_id,
                actor=SYSTEM_RETENTION,
                action=Action.RETENTION_SNAPSHOTS,
                details={
                    "floor": floor,
                    "previous_floor": previous,
                    "memberships_deleted": deleted,
                    "days": policy.snapshot_days,
                },
                now=now,
            )

    pruned = 0
    more = False
    if policy.plaintext_days is not None:
        cutoff = now - timedelta(days=policy.plaintext_days)
        query = _prunable_plaintext(list_id, lst.canary_entry_id, cutoff)
        entries: list[EntryRow] = list(
            session.scalars(query.order_by(EntryRow.id).limit(limit + 1)).all()
        )
        more = len(entries) > limit
        entries = entries[:limit]
        pruned = len(entries)
        if not dry_run and entries:
            ids = [e.id for e in entries]
            for start in range(0, len(ids), _IN_CHUNK):
                session.execute(
                    update(EntryRow)
                    .where(EntryRow.id.in_(ids[start : start + _IN_CHUNK]))
                    .values(expression="", url="", host="", plaintext_pruned_at=now)
                )
            audit.append_many(
                session,
                list_id,
                [
                    audit.AuditEvent(
                        actor=SYSTEM_RETENTION,
                        action=Action.ENTRY_PRUNE_PLAINTEXT,
                        entry_id=e.id,
                        details={
                            "hash": b64encode(e.hash),
                            "off_since": format_time(e.expires_at) if e.expires_at else None,
                            "days": policy.plaintext_days,
                        },
                    )
                    for e in entries
                ],
                now=now,
            )
    return PruneResult(
        list_id=list_id,
        previous_floor=previous,
        snapshot_floor=floor,
        memberships_deleted=deleted,
        plaintext_pruned=pruned,
        more=more,
        dry_run=dry_run,
    )


def prune_database(
    db: Database,
    policy: RetentionPolicy,
    *,
    lists: Sequence[str] | None = None,
    now: datetime | None = None,
    dry_run: bool = False,
    progress: Callable[[str, PruneResult], None] | None = None,
) -> dict[str, PruneResult]:
    """Apply ``policy`` to every list (or to ``lists``), one bounded transaction at a time.

    Returns, per list name, the totals of its transactions. ``progress`` is
    called after each transaction (long first runs report as they go). A
    failure leaves earlier transactions committed and later ones undone:
    each is complete on its own, so the next run carries on.

    Raises:
        NotFound: a name in ``lists`` that is no list.
        StoreUnavailable: the database cannot be reached.
    """
    now = audit.resolve_now(now)
    with db.read() as session:
        if lists is None:
            targets = [(row.id, row.name) for row in list_lists(session)]
        else:
            targets = [(get_list(session, name).id, name) for name in dict.fromkeys(lists)]
    totals: dict[str, PruneResult] = {}
    for list_id, name in targets:
        total: PruneResult | None = None
        while True:
            with db.transaction() as session:
                step = prune_list(session, list_id, policy, now=now, dry_run=dry_run)
            total = step if total is None else _add(total, step)
            if progress is not None:
                progress(name, total)
            # A dry run counts one batch of plaintext only: it changes nothing,
            # so another round would count the same entries again.
            if dry_run or not step.more:
                break
        totals[name] = total
    return totals


def _add(total: PruneResult, step: PruneResult) -> PruneResult:
    return PruneResult(
        list_id=total.list_id,
        previous_floor=total.previous_floor,
        snapshot_floor=step.snapshot_floor,
        memberships_deleted=total.memberships_deleted + step.memberships_deleted,
        plaintext_pruned=total.plaintext_pruned + step.plaintext_pruned,
        more=step.more,
        dry_run=total.dry_run,
    )
