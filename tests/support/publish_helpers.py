"""Helpers of the publisher tests: curate entries through the store, read what was published."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import insert

from blocklist.canonical import expression_hash
from blocklist.store import Database
from blocklist.store import audit as store_audit
from blocklist.store import entries as store_entries
from blocklist.store import lists as store_lists
from blocklist.store import versions as store_versions
from blocklist.store.models import EntryRow
from signer.datadir import InitResult, init_data_dir, keys_dir_of
from signer.publisher import MAX_VERSIONS_PER_PUBLISH, Publisher

#: Fixed start time of every test clock.
START = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


class Clock:
    """A test clock that only moves when told to."""

    def __init__(self, now: datetime = START) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


@dataclass
class Deployment:
    """An initialised data directory, its database and a publisher with a test clock."""

    init: InitResult
    db: Database
    clock: Clock
    publisher: Publisher

    @property
    def data_dir(self) -> Path:
        return self.init.data_dir

    @property
    def keys_dir(self) -> Path:
        return keys_dir_of(self.init.data_dir)

    def new_publisher(self, *, max_versions: int = MAX_VERSIONS_PER_PUBLISH) -> Publisher:
        return Publisher(
            self.db, "main", self.keys_dir, clock=self.clock, max_versions=max_versions
        )


def make_deployment(data_dir: Path, database_url: str) -> Deployment:
    """``init_data_dir`` on a fresh database: list ``main``, one approval, keys, mark."""
    clock = Clock()
    init = init_data_dir(
        data_dir,
        database_url=database_url,
        origin="example.org/cleanfeed/main",
        canary_url="http://canary.example.org/canary.html",
        now=clock(),
    )
    db = Database(database_url)
    publisher = Publisher(db, "main", keys_dir_of(init.data_dir), clock=clock)
    return Deployment(init, db, clock, publisher)


def list_id(db: Database, name: str = "main") -> int:
    with db.read() as s:
        return store_lists.get_list(s, name).id


def add_active(
    db: Database, url: str, now: datetime, *, expires_at: datetime | None = None
) -> tuple[int, bytes]:
    """Add a page entry (analyst alice) and approve it (analyst bob): it is then pending publish."""
    lid = list_id(db)
    with db.transaction() as s:
        entry, created = store_entries.add_entry(
            s,
            lid,
            url=url,
            scope="page",
            reason="test entry",
            actor="alice",
            expires_at=expires_at,
            now=now,
        )
        assert created
        eid, h = entry.id, entry.hash
    with db.transaction() as s:
        store_entries.approve(s, lid, eid, actor="bob", actor_role="analyst", now=now)
    return eid, h


def add_pending(db: Database, url: str, now: datetime) -> tuple[int, bytes]:
    """Add a page entry that nobody approved (must not be published)."""
    lid = list_id(db)
    with db.transaction() as s:
        entry, _ = store_entries.add_entry(
            s, lid, url=url, scope="page", reason="test entry", actor="alice", now=now
        )
        return entry.id, entry.hash


def expire_now(db: Database, entry_id: int, now: datetime) -> None:
    with db.transaction() as s:
        store_entries.expire(s, list_id(db), entry_id, actor="carol", reason="wrong block", now=now)


def active_entry_row(
    list_id: int, expression: str, *, host: str, reason: str, now: datetime
) -> dict[str, Any]:
    """The entries-table row of an approved, unpublished page entry (for bulk inserts)."""
    return {
        "list_id": list_id,
        "expression": expression,
        "hash": expression_hash(expression),
        "host": host,
        "url": f"http://{expression}",
        "scope": "page",
        "reason": reason,
        "created_by": "alice",
        "created_at": now,
        "status": "active",
        "listed": False,
        "needs_publish": True,
        "approval_round": 1,
        "submitted_by": "alice",
    }


def insert_active_entries(
    db: Database, count: int, now: datetime, *, start: int = 0
) -> list[bytes]:
    """Insert ``count`` approved, unpublished entries in one statement (fast, for big batches)."""
    lid = list_id(db)
    rows = []
    hashes = []
    for i in range(start, start + count):
        expression = f"bulk{i}.example.com/page.html"
        h = expression_hash(expression)
        hashes.append(h)
        rows.append(
            active_entry_row(
                lid, expression, host=f"bulk{i}.example.com", reason="bulk test", now=now
            )
        )
    with db.transaction() as s:
        s.execute(insert(EntryRow), rows)
    return hashes


@dataclass
class Published:
    """Everything the database serves for a list."""

    keyrings: list[str]
    statements: list[str]
    checkpoint: str
    checkpoint_signed_at: datetime
    snapshot: list[bytes]
    audit_head: bytes
    open_requests: int


def published(db: Database, name: str = "main") -> Published:
    with db.read() as s:
        lid = store_lists.get_list(s, name).id
        keyrings = []
        serial = 1
        while (row := store_versions.get_keyring(s, lid, serial)) is not None:
            keyrings.append(row.note)
            serial += 1
        notes: list[str] = []
        while page := store_versions.statements(s, lid, since=len(notes), limit=1000):
            notes.extend(page)
        checkpoint = store_versions.get_checkpoint(s, lid)
        assert checkpoint is not None
        return Published(
            keyrings=keyrings,
            statements=notes,
            checkpoint=checkpoint.note,
            checkpoint_signed_at=checkpoint.signed_at,
            snapshot=store_versions.snapshot(s, lid, len(notes)),
            audit_head=store_audit.head(s, lid).hash,
            open_requests=len(store_versions.open_publish_requests(s, lid)),
        )
