"""Benchmark deployments: data directories with a list of any size, built quickly.

Small lists are curated through the real store services and published by
the real :class:`~signer.publisher.Publisher`. Large lists (up to a million
entries) would take minutes that way, so :func:`generate_listed` cuts the
versions with the publisher's own core (:func:`signer.log.cut_versions`,
the same code that signs every version the server publishes) and writes
their rows with plain ``executemany`` into the tables the publisher would
have written: entries (approved and listed), memberships, versions, Merkle
tree hashes; then it signs and stores the checkpoint with the store's
:func:`~blocklist.store.versions.put_checkpoint` and advances the signer's
high-water mark. The resulting log is valid: ISP clients verify it from a
snapshot and then incrementally (bench/isp_sync.py does exactly that).

What is left out for large lists: the per-entry audit records and approval
rows (the statements' ``audit`` line commits to the audit head at
generation time). Nothing on the publish or ISP paths reads those tables
beyond their head, so their size does not change the figures.

URLs use reserved names only: ``http://h{i}.example.com/p/{j}.html``.
"""

from __future__ import annotations

import hashlib
import sqlite3
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from blocklist.keyring import Keyring
from blocklist.statedigest import StateDigest
from blocklist.statement import MAX_CHANGES_PER_VERSION
from blocklist.store import Database
from blocklist.store import audit as store_audit
from blocklist.store import entries as store_entries
from blocklist.store import imports as store_imports
from blocklist.store import lists as store_lists
from blocklist.store import tokens as store_tokens
from blocklist.store import versions as store_versions
from blocklist.store.models import EntryRow
from signer.datadir import init_data_dir, keys_dir_of
from signer.highwater import HighWater, HighWaterMark
from signer.log import LogTip, cut_versions, sign_checkpoint
from signer.note import parse_note
from signer.publisher import Publisher

LIST = "main"
ORIGIN = "bench.example.org/cleanfeed/main"
CANARY = "http://canary.example.org/canary.html"
#: Pages per host in generated URLs (entry i is page i % PAGES of host i // PAGES).
PAGES = 10

#: Analysts of the curated path: one adds, another approves (four-eyes), a
#: third expires.
ADDER, APPROVER, EXPIRER = "analyst-alice", "analyst-bob", "analyst-carol"


def url_of(i: int) -> str:
    """The ``i``-th generated URL (reserved names only)."""
    return f"http://h{i // PAGES}.example.com/p/{i % PAGES}.html"


def expression_of(i: int) -> str:
    """The page expression of :func:`url_of` (already canonical)."""
    return f"h{i // PAGES}.example.com/p/{i % PAGES}.html"


def hash_of(i: int) -> bytes:
    """SHA-256 of :func:`expression_of` (the entry's id on the wire)."""
    return hashlib.sha256(expression_of(i).encode("ascii")).digest()


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


@dataclass
class Deployment:
    """An initialised data directory with its database and publisher."""

    data_dir: Path
    db: Database
    list_id: int
    root_vkey: str
    admin_token: str
    publisher: Publisher
    #: Next unused generated-URL index.
    next_index: int = 0
    #: Entry ids of listed entries added by :func:`curate` or generated (for expiries).
    listed_ids: list[int] = field(default_factory=list)

    @property
    def db_file(self) -> Path:
        """The SQLite database file."""
        return self.data_dir / "cleanfeed.db"

    def version(self) -> int:
        """The latest published version."""
        with self.db.read() as s:
            return store_versions.current_version(s, self.list_id)

    def count(self) -> int:
        """Entries in the latest version."""
        with self.db.read() as s:
            row = store_versions.latest_version(s, self.list_id)
            return row.count if row is not None else 0

    def token(self, role: str, name: str, *, lists: tuple[str, ...] = (LIST,)) -> str:
        """Issue a token through the store (what ``cleanfeed token create`` does)."""
        with self.db.transaction() as s:
            token, _ = store_tokens.create_token(
                s, name=name, role=role, lists=list(lists), actor="cli:bench"
            )
        return token

    def tokens(self, role: str, prefix: str, count: int) -> list[str]:
        """Issue ``count`` tokens in one transaction."""
        out = []
        with self.db.transaction() as s:
            for n in range(count):
                token, _ = store_tokens.create_token(
                    s, name=f"{prefix}-{n}", role=role, lists=[LIST], actor="cli:bench"
                )
                out.append(token)
        return out

    def close(self) -> None:
        """Dispose of the engine (the files stay)."""
        self.db.dispose()


def create(data_dir: Path, *, approvals_required: int = 1) -> Deployment:
    """``cleanfeed init`` equivalent, then publish version 1 (the canary) for real.

    Raises:
        AlreadyInitialised: ``data_dir`` is in use.
    """
    init = init_data_dir(
        data_dir,
        list_name=LIST,
        origin=ORIGIN,
        canary_url=CANARY,
        approvals_required=approvals_required,
        now=_now(),
    )
    db = Database(init.database_url)
    with db.read() as s:
        list_id = store_lists.get_list(s, LIST).id
    publisher = Publisher(db, LIST, keys_dir_of(data_dir))
    publisher.publish_once()
    return Deployment(
        data_dir=data_dir,
        db=db,
        list_id=list_id,
        root_vkey=init.root_vkey,
        admin_token=init.admin_token,
        publisher=publisher,
    )


def curate(dep: Deployment, adds: int, expires: int = 0) -> None:
    """Stage a change set through the real store services (not published).

    ``adds`` new URLs are bulk-added by one analyst and approved by another;
    ``expires`` listed entries are expired by a third.

    Raises:
        ValueError: fewer listed entries than ``expires``.
    """
    if expires > len(dep.listed_ids):
        raise ValueError("not enough listed entries to expire")
    now = _now()
    rows = [
        store_imports.BulkRow(url=url_of(i), scope="page", reason="benchmark entry")
        for i in range(dep.next_index, dep.next_index + adds)
    ]
    dep.next_index += adds
    with dep.db.transaction() as s:
        results = store_imports.bulk_add(s, dep.list_id, rows, actor=ADDER, now=now)
    ids = [r.entry_id for r in results if r.status == store_imports.BULK_ADDED]
    if len(ids) != adds:
        raise RuntimeError(f"bulk add stored {len(ids)} of {adds} rows: {results[:3]}")
    with dep.db.transaction() as s:
        for entry_id in ids:
            assert entry_id is not None
            store_entries.approve(
                s, dep.list_id, entry_id, actor=APPROVER, actor_role="analyst", now=now
            )
        # Expire the oldest listed entries (swap-free: deterministic).
        for entry_id in dep.listed_ids[:expires]:
            store_entries.expire(
                s, dep.list_id, entry_id, actor=EXPIRER, reason="benchmark expiry", now=now
            )
    del dep.listed_ids[:expires]
    dep.listed_ids.extend(i for i in ids if i is not None)


def publish(dep: Deployment) -> list[int]:
    """Publish everything staged with the real publisher; return the versions cut."""
    return dep.publisher.publish_once().versions


def _bind_time(db: Database, when: datetime) -> Any:
    """``when`` as the store's UTCDateTime column stores it on this backend."""
    dialect = db.engine.dialect
    column_type = EntryRow.__table__.c.created_at.type
    processor = column_type.bind_processor(dialect)
    return processor(when) if processor else when


def generate_listed(dep: Deployment, count: int, log: Any = None) -> None:
    """Add ``count`` listed entries as published versions of 10,000 changes (see module doc).

    Raises:
        RuntimeError: not a SQLite deployment, or the stored tree does not
            match the generated root afterwards.
    """
    if dep.db.backend != "sqlite":
        raise RuntimeError("generation writes SQLite files directly")
    now = _now()
    first = dep.next_index
    indexes = range(first, first + count)
    hashes = [hash_of(i) for i in indexes]
    with dep.db.read() as s:
        lst = store_lists.get_list_by_id(s, dep.list_id)
        keyring_row = store_versions.get_keyring(s, dep.list_id)
        assert keyring_row is not None
        keyring = Keyring.parse(parse_note(keyring_row.note).text)
        key = dep.publisher.online_key_for(keyring)
        latest = store_versions.latest_version(s, dep.list_id)
        assert latest is not None
        tip = LogTip(
            origin=lst.origin,
            version=latest.version,
            text_hash=latest.text_hash,
            state=StateDigest.from_bytes(latest.state_vector),
            count=latest.count,
            keyring_serial=keyring.serial,
            audit_head=store_audit.head(s, dep.list_id).hash,
        )
        members = set(store_versions.snapshot(s, dep.list_id, latest.version))
        reader = store_versions.TreeHashReader(s, dep.list_id)
        # The publisher's core: statements, signatures, state digests, tree hashes.
        result = cut_versions(
            tip, reader, hashes, [], members, key, now, limit=MAX_CHANGES_PER_VERSION
        )
    if log:
        log(f"cut {len(result.versions)} versions of up to {MAX_CHANGES_PER_VERSION} changes")

    when = _bind_time(dep.db, now)
    version_of: dict[bytes, int] = {}
    for signed in result.versions:
        for h in signed.statement.adds:
            version_of[h] = signed.version
    conn = sqlite3.connect(dep.db_file)
    try:
        conn.execute("PRAGMA synchronous=OFF")  # set-up only; the figures use FULL
        conn.execute("PRAGMA cache_size=-1000000")  # 1 GB: random-order index inserts
        # Secondary indexes are dropped and re-created with their own SQL
        # around the bulk insert (one sort instead of a million random
        # b-tree inserts); the schema ends up exactly as the migration made it.
        secondary = conn.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
            " AND tbl_name IN ('entries', 'memberships')"
        ).fetchall()
        conn.isolation_level = None  # explicit BEGIN/COMMIT: the DDL is in the transaction
        conn.execute("BEGIN")
        try:
            for name, _ in secondary:
                conn.execute(f'DROP INDEX "{name}"')
            cur = conn.execute("SELECT COALESCE(MAX(id), 0) FROM entries")
            next_id = int(cur.fetchone()[0]) + 1
            conn.executemany(
                "INSERT INTO entries (id, list_id, expression, hash, host, url, scope, reason,"
                " created_by, created_at, status, listed, needs_publish, added_version,"
                " approval_round, submitted_by) VALUES"
                " (?, ?, ?, ?, ?, ?, 'page', 'benchmark entry', ?, ?, 'active', 1, 0, ?, 1, ?)",
                (
                    (
                        next_id + k,
                        dep.list_id,
                        expression_of(i),
                        h,
                        f"h{i // PAGES}.example.com",
                        url_of(i),
                        ADDER,
                        when,
                        version_of[h],
                        ADDER,
                    )
                    for k, (i, h) in enumerate(zip(indexes, hashes, strict=True))
                ),
            )
            conn.executemany(
                "INSERT INTO memberships (list_id, hash, added_version) VALUES (?, ?, ?)",
                ((dep.list_id, h, version_of[h]) for h in hashes),
            )
            conn.executemany(
                "INSERT INTO versions (list_id, version, note, text_hash, leaf_hash, time,"
                " keyring_serial, count, state_vector, audit_head)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    (
                        dep.list_id,
                        v.version,
                        v.note,
                        v.text_hash,
                        v.leaf_hash,
                        when,
                        v.statement.keyring,
                        v.statement.count,
                        v.state_vector,
                        v.statement.audit,
                    )
                    for v in result.versions
                ),
            )
            conn.executemany(
                "INSERT INTO tree_hashes (list_id, idx, hash) VALUES (?, ?, ?)",
                (
                    (dep.list_id, result.first_hash_index + k, h)
                    for k, h in enumerate(result.new_hashes)
                ),
            )
            for _, sql in secondary:
                conn.execute(sql)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    finally:
        conn.close()
    dep.listed_ids.extend(range(next_id, next_id + count))
    dep.next_index += count

    size = result.tip.version
    note = sign_checkpoint(lst.origin, size, result.root, key, now)
    with dep.db.transaction() as s:
        store_versions.lock_list(s, dep.list_id)
        from blocklist.merkle import tree_root

        if tree_root(size, store_versions.TreeHashReader(s, dep.list_id)) != result.root:
            raise RuntimeError("generated tree does not match its root")
        store_versions.put_checkpoint(
            s, dep.list_id, size=size, root=result.root, note=note, signed_at=now
        )
    HighWater.for_list(keys_dir_of(dep.data_dir), LIST).advance(
        HighWaterMark(lst.origin, size, result.root)
    )


def build(data_dir: Path, entries: int, log: Any = None) -> Deployment:
    """A deployment whose list holds the canary plus ``entries`` generated entries."""
    dep = create(data_dir)
    if entries:
        generate_listed(dep, entries, log)
    return dep


def sizes(quick: bool) -> tuple[int, int]:
    """The small and large list sizes of the O(changes) comparisons (issue 8: 10k, 1M)."""
    return (10_000, 100_000) if quick else (10_000, 1_000_000)


def shared(ctx: Any, entries: int) -> Deployment:
    """One deployment of ``entries`` generated entries per run, shared by the benchmarks.

    Benchmarks that use it add versions to it in turn (publish, then ISP
    sync), which only grows the list by a fraction of a percent.
    """

    def make() -> Deployment:
        ctx.log(f"building a deployment with {entries:,} entries")
        started = time.perf_counter()
        dep = build(ctx.work / f"list-{entries}", entries, ctx.log)
        ctx.log(f"built {entries:,} entries in {time.perf_counter() - started:.0f} s")
        ctx.shared.setdefault("build_seconds", {})[entries] = time.perf_counter() - started
        return dep

    dep: Deployment = ctx.memo(f"deployment-{entries}", make)
    return dep
