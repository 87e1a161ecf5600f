"""Read queries the API needs beyond :mod:`blocklist.store` (additive, read-only).

Kept out of the routes (no SQL in a route) and out of the store package
(owned by its own module contract). Each is a candidate to move into the
store; none writes.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from blocklist.store.db import Database
from blocklist.store.errors import NotFound
from blocklist.store.models import (
    CheckpointRow,
    EntryRow,
    ListRow,
    PublishRequestRow,
    VersionRow,
)

#: Rows per plaintext page before it is cut back to a version boundary.
PLAINTEXT_PAGE_ROWS: Final = 5000

#: Rows fetched per query while streaming a bundle.
BUNDLE_BATCH: Final = 1000


def plaintext_page(
    db: Database, list_id: int, since: int
) -> tuple[list[tuple[bytes, str]], int | None]:
    """Expressions of entries added after version ``since`` and still listed.

    A page ends on a version boundary so that ``next`` can be the ``since``
    of the following page (as for statements): it holds whole versions
    ``since + 1 .. next`` and at least one version, so a page can exceed
    :data:`PLAINTEXT_PAGE_ROWS` only by one version's additions (at most
    10,000, DESIGN.md).

    Returns:
        ``([(hash, expression), ...], next)``, ``next`` None on the last page.
    """
    listed = (
        EntryRow.list_id == list_id,
        EntryRow.listed.is_(True),
        EntryRow.added_version > since,
    )
    columns = (EntryRow.added_version, EntryRow.hash, EntryRow.expression)
    with db.read() as session:
        rows = session.execute(
            select(*columns)
            .where(*listed)
            .order_by(EntryRow.added_version, EntryRow.id)
            .limit(PLAINTEXT_PAGE_ROWS + 1)
        ).all()
        if len(rows) <= PLAINTEXT_PAGE_ROWS:
            return [(r.hash, r.expression) for r in rows], None
        last_version = rows[-1].added_version
        first_version = rows[0].added_version
        if first_version == last_version:
            # One version larger than a page: serve it whole.
            rows = session.execute(
                select(*columns)
                .where(*listed, EntryRow.added_version == first_version)
                .order_by(EntryRow.id)
            ).all()
            end = first_version
        else:
            rows = [r for r in rows if r.added_version < last_version]
            end = rows[-1].added_version
        more = session.scalar(
            select(EntryRow.id).where(*listed, EntryRow.added_version > end).limit(1)
        )
    return [(r.hash, r.expression) for r in rows], end if more is not None else None


def iter_entries(session: Session, list_id: int) -> Iterator[EntryRow]:
    """Every entry of a list, by id, in batches (full audit bundles)."""
    after = 0
    while True:
        rows = session.scalars(
            select(EntryRow)
            .where(EntryRow.list_id == list_id, EntryRow.id > after)
            .order_by(EntryRow.id)
            .limit(BUNDLE_BATCH)
        ).all()
        if not rows:
            return
        yield from rows
        after = rows[-1].id
        session.expunge_all()


def iter_statement_notes(session: Session, list_id: int, upto: int) -> Iterator[str]:
    """Statement notes 1..upto, in order, in batches."""
    after = 0
    while after < upto:
        notes = session.execute(
            select(VersionRow.version, VersionRow.note)
            .where(
                VersionRow.list_id == list_id,
                VersionRow.version > after,
                VersionRow.version <= upto,
            )
            .order_by(VersionRow.version)
            .limit(BUNDLE_BATCH)
        ).all()
        if not notes:
            return
        for row in notes:
            yield row.note
        after = notes[-1].version


@dataclass(frozen=True)
class ListState:
    """Publish state of one list, for metrics and readiness."""

    list_id: int
    name: str
    version: int
    checkpoint_signed_at: datetime | None
    pending_changes: int


def list_states(db: Database) -> list[ListState]:
    """Publish state of every list (a few aggregate queries, no per-entry work)."""
    with db.read() as session:
        lists = session.execute(select(ListRow.id, ListRow.name).order_by(ListRow.name)).all()
        # (Result objects have .keys(), so dict(result) would treat them as
        # mappings; build the dicts from the rows explicitly.)
        versions = {
            list_id: top
            for list_id, top in session.execute(
                select(VersionRow.list_id, func.max(VersionRow.version)).group_by(
                    VersionRow.list_id
                )
            )
        }
        signed = {
            list_id: at
            for list_id, at in session.execute(
                select(CheckpointRow.list_id, CheckpointRow.signed_at)
            )
        }
        pending = {
            list_id: n
            for list_id, n in session.execute(
                select(EntryRow.list_id, func.count())
                .where(EntryRow.needs_publish.is_(True))
                .group_by(EntryRow.list_id)
            )
        }
    return [
        ListState(
            list_id=row.id,
            name=row.name,
            version=int(versions.get(row.id) or 0),
            checkpoint_signed_at=signed.get(row.id),
            pending_changes=int(pending.get(row.id) or 0),
        )
        for row in lists
    ]


def checkpoint_age_seconds(state: ListState, now: datetime | None = None) -> float | None:
    """Seconds since the list's checkpoint was signed, or None without one."""
    if state.checkpoint_signed_at is None:
        return None
    return ((now or datetime.now(UTC)) - state.checkpoint_signed_at).total_seconds()


def publish_request_version(db: Database, list_id: int, request_id: int) -> int | None:
    """The version that served a publish request, or None while it is open.

    Raises:
        NotFound: no such request on this list.
    """
    with db.read() as session:
        row = session.scalar(
            select(PublishRequestRow).where(
                PublishRequestRow.id == request_id, PublishRequestRow.list_id == list_id
            )
        )
        if row is None:
            raise NotFound(f"no publish request {request_id} on this list")
        return row.done_version
