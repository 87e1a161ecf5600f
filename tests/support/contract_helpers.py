"""Helpers shared by the store contract tests (imported by conftest and tests)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, func, select
from sqlalchemy.orm import Session

from blocklist.merkle import leaf_hash, stored_hashes_for_leaf
from blocklist.statedigest import StateDigest
from blocklist.statement import ZERO_HASH, Statement
from blocklist.store import Database
from blocklist.store import audit as store_audit
from blocklist.store import entries as store_entries
from blocklist.store import imports as store_imports
from blocklist.store import versions as store_versions
from blocklist.store.lists import get_list_by_id
from blocklist.store.models import Base, ListRow

#: A fixed "now" for every test: no test depends on the wall clock.
NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


def insert_list_row(conn: Connection | Session, name: str = "main") -> None:
    """List ``name`` as raw row 1: a migration test's data at an older schema.

    A plain INSERT rather than the store's functions, which follow the
    newest schema; its columns are the ones every revision since 0003 has.
    """
    conn.execute(
        ListRow.__table__.insert().values(
            id=1,
            name=name,
            origin=f"example.org/{name}",
            canary_url=f"http://canary.example.org/{name}",
            approvals_required=1,
            public=False,
            created_at=NOW,
            snapshot_floor=0,
        )
    )


def later(**kwargs: float) -> datetime:
    """NOW plus a timedelta."""
    return NOW + timedelta(**kwargs)


def table_counts(db: Database) -> dict[str, int]:
    """Row count of every table: the fingerprint 'nothing changed' compares."""
    with db.read() as s:
        return {
            name: int(s.scalar(select(func.count()).select_from(table)) or 0)
            for name, table in Base.metadata.tables.items()
        }


@dataclass
class StoreState:
    """Row counts plus the head of every audit chain."""

    counts: dict[str, int]
    heads: dict[int | None, bytes]


def state_of(db: Database) -> StoreState:
    """Counts and audit heads of every chain."""
    with db.read() as s:
        ids: list[int | None] = [None, *s.scalars(select(ListRow.id)).all()]
        heads = {i: store_audit.head(s, i).hash for i in ids}
    return StoreState(counts=table_counts(db), heads=heads)


def sign_stub(text: str) -> str:
    """A signed-note shape around ``text`` (the store never verifies signatures)."""
    return text + "\n\u2014 test-key AAAAAA==\n"


def publish(
    db: Database, list_id: int, *, now: datetime = NOW, limit: int = 10_000
) -> tuple[int, list[bytes], list[bytes]]:
    """Cut one version in its own transaction (see :func:`publish_in`)."""
    with db.transaction() as s:
        return publish_in(s, list_id, now=now, limit=limit)


def publish_pages(db: Database, list_id: int, n: int, host: str) -> list[int]:
    """Add ``n`` pages on ``host`` (alice), approve each (bob) and publish; their ids."""
    rows = [store_imports.BulkRow(f"http://{host}/{i}.html", "page", "r") for i in range(n)]
    with db.transaction() as s:
        results = store_imports.bulk_add(s, list_id, rows, actor="alice", now=NOW)
    ids = [r.entry_id for r in results if r.entry_id is not None]
    for entry_id in ids:
        with db.transaction() as s:
            store_entries.approve(s, list_id, entry_id, actor="bob", actor_role="analyst", now=NOW)
    publish(db, list_id)
    return ids


def publish_in(
    s: Session, list_id: int, *, now: datetime = NOW, limit: int = 10_000
) -> tuple[int, list[bytes], list[bytes]]:
    """A minimal publisher: cut one version from the pending changes.

    Uses the store exactly as signer/publisher.py will (pending changes,
    the previous state vector, tree hashes through TreeHashReader,
    record_version) with a real statement text and a stub signature.
    Returns ``(version, adds, removes)``; version 0 when nothing was pending.
    """
    store_versions.lock_list(s, list_id)
    changes = store_versions.pending_changes(s, list_id, now=now, limit=limit)
    adds = sorted(h for _, h in changes.adds)
    removes = sorted(h for _, h in changes.removes)
    if not adds and not removes:
        return 0, [], []
    origin = get_list_by_id(s, list_id).origin
    previous = store_versions.latest_version(s, list_id)
    version = (previous.version if previous else 0) + 1
    digest = StateDigest.from_bytes(previous.state_vector) if previous else StateDigest()
    digest.update(adds, removes)
    statement = Statement(
        origin=origin,
        version=version,
        previous=previous.text_hash if previous else ZERO_HASH,
        keyring=1,
        audit=store_audit.head(s, list_id).hash,
        state=digest.digest(),
        count=(previous.count if previous else 0) + len(adds) - len(removes),
        time=now.replace(microsecond=0),
        adds=tuple(adds),
        removes=tuple(removes),
    )
    text = statement.to_text()
    leaf = leaf_hash(text.encode())
    reader = store_versions.TreeHashReader(s, list_id)
    store_versions.record_version(
        s,
        list_id,
        version=version,
        note=sign_stub(text),
        text_hash=statement.text_hash(),
        leaf_hash=leaf,
        time=statement.time,
        keyring_serial=1,
        count=statement.count,
        state_vector=digest.to_bytes(),
        audit_head=statement.audit,
        adds=adds,
        removes=removes,
        tree_hashes=stored_hashes_for_leaf(version - 1, leaf, reader),
    )
    return version, adds, removes
