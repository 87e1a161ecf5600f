"""Erasure: the appellant's data goes; the audit records, which name the appeal by id, stay.

:func:`erase` on request, :func:`erase_expired` by the retention policy.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from blocklist.auditlog import Action, Actor
from blocklist.store import audit
from blocklist.store.appeals._queue import get_appeal_row, private_of
from blocklist.store.models import AppealPrivateRow, AppealRow

__all__ = ["erase", "erase_expired"]


def erase(
    session: Session, appeal_id: int, *, actor: str, why: str, now: datetime | None = None
) -> bool:
    """Erase the appellant's message, contact and URL; the audit records stay.

    Returns:
        Whether there was anything to erase.

    Raises:
        NotFound: no such appeal.
    """
    now = audit.begin_global(session, actor, now)
    get_appeal_row(session, appeal_id)
    row = private_of(session, appeal_id)
    if row is None:
        return False
    session.delete(row)
    session.flush()
    audit.append_global(session, actor, Action.APPEAL_ERASE, {"appeal": appeal_id, "why": why}, now)
    return True


def erase_expired(session: Session, *, days: int, now: datetime | None = None) -> list[int]:
    """Retention: erase the private data of appeals closed more than ``days`` ago.

    Open appeals keep theirs (reviewers need the message). Returns the ids erased.
    """
    now = audit.resolve_now(now)
    cutoff = now - timedelta(days=days)
    ids: Sequence[int] = session.scalars(
        select(AppealRow.id)
        .join(AppealPrivateRow, AppealPrivateRow.appeal_id == AppealRow.id)
        .where(AppealRow.closed_at.is_not(None), AppealRow.closed_at < cutoff)
        .order_by(AppealRow.id)
    ).all()
    done = [i for i in ids if erase(session, i, actor=Actor.RETENTION, why="retention", now=now)]
    return done
