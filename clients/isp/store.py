"""The ISP client's local state: SQLite in WAL mode, one transaction per commit.

DESIGN.md "ISP sync, fail closed", step 5: the new set, checkpoint, compact
range and keyring are committed atomically or not at all. Everything lives
in one SQLite database in the state directory, and every change of the list
is one ``BEGIN IMMEDIATE … COMMIT`` with ``synchronous=FULL``, so a
``kill -9`` or a power loss leaves either the old or the new version, never a
mix (SQLite's atomic commit through the write-ahead log).

Layout (``STATE_DIR/state.db``, mode 0600 because it holds plaintext for
entitled ISPs; the directory is 0700)::

    meta        key -> value: the StateRecord fields, ETag, status fields
    hashes      the listed 32-byte hashes (WITHOUT ROWID b-tree)
    plaintext   hash -> expression (entitled tokens only)
    keyrings    serial -> keyring note (the verified chain)
    checkpoints tree size -> latest checkpoint note seen at that size
    evidence    equivocation evidence: both notes, kept for auditors
    counters    sync outcome -> count (metrics, status)

The hashes stay on disk: a sync touches only the rows a version changes, so
its cost is O(changes), and a million entries do not have to sit in memory
(:class:`HashTable` answers membership with an index lookup). The records
it hands out (evidence, export reports, status) are in
:mod:`clients.isp.records`.

A second sync against the same state directory waits for the state
directory's lock (:mod:`clients.isp.statelock`). Readers (``check``, ``export``,
``status``, the Squid helper) need no lock: WAL readers see the last
committed version while a sync writes.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Final

from blocklist.statedigest import StateDigest
from clients.errors import LocalCorruption, LocalStateError, NotInitialised
from clients.isp import steps
from clients.isp.localdb import write_transaction
from clients.isp.records import (
    Evidence,
    ExportReport,
    Status,
)
from clients.isp.statelock import (
    StateLock,
)
from clients.isp.trusted import HashChanges, StateRecord

#: Database file name inside the state directory.
DB_NAME: Final = "state.db"
#: Schema version written to ``meta``; a newer file is refused.
SCHEMA_VERSION: Final = 1
#: Rows written per executemany batch (bounds memory of snapshot imports).
_BATCH: Final = 10_000
#: Hashes read per batch when recomputing the digest from the table.
_DIGEST_BATCH: Final = 4096
#: How long SQLite waits for another connection's write lock (milliseconds).
_BUSY_TIMEOUT_MS: Final = 10_000
#: SQLite page cache per connection, KiB (bounded: part of the RSS budget).
_CACHE_KIB: Final = 65_536
#: Most of the database file mapped into memory while all hashes are read
#: in one scan (:meth:`StateStore.hash_blob`); 1 GiB covers 25 million
#: entries, and SQLite reads any part beyond it as usual.
_SCAN_MMAP_BYTES: Final = 1 << 30
#: Checkpoint notes kept per state (one per tree size seen); older ones are
#: pruned so an auditor's export stays bounded.
MAX_CHECKPOINT_HISTORY: Final = 10_000
#: Meta key of the export reports (:class:`ExportReport`, JSON).
EXPORT_REPORTS_KEY: Final = "export_reports"

#: Rows of ``hash_log`` kept: the hash changes of the latest versions, so a
#: reader that follows the state by difference (``cleanfeed isp dns-serve``,
#: issue 19 item 4) costs O(changes) instead of comparing the whole sets.
#: About 1,000 versions of 1,000 changes; a reader further behind than the
#: log (meta ``hash_log_from``) compares the whole sets instead.
MAX_HASH_LOG: Final = 1_000_000

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS hashes (hash BLOB PRIMARY KEY) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS plaintext (
    hash BLOB PRIMARY KEY, expression TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS keyrings (serial INTEGER PRIMARY KEY, note TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS checkpoints (
    size INTEGER PRIMARY KEY, note TEXT NOT NULL, seen_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS evidence (
    id INTEGER PRIMARY KEY, kind TEXT NOT NULL, held_note TEXT NOT NULL,
    new_note TEXT NOT NULL, detail TEXT NOT NULL, observed_at REAL NOT NULL,
    UNIQUE (kind, held_note, new_note));
CREATE TABLE IF NOT EXISTS counters (reason TEXT PRIMARY KEY, count INTEGER NOT NULL)
    WITHOUT ROWID;
"""
_HASH_LOG_TABLE: Final = """CREATE TABLE IF NOT EXISTS hash_log (
    seq INTEGER PRIMARY KEY, version INTEGER NOT NULL, hash BLOB NOT NULL,
    added INTEGER NOT NULL)"""


class HashTable:
    """The persisted hash set as a read-only container (membership by index).

    Reads see the last committed version (WAL snapshot isolation per query).
    """

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def __contains__(self, h: object) -> bool:
        if not isinstance(h, bytes):
            return False
        row = self._conn.execute("SELECT 1 FROM hashes WHERE hash = ?", (h,)).fetchone()
        return row is not None

    def __iter__(self) -> Iterator[bytes]:
        for (h,) in self._conn.execute("SELECT hash FROM hashes ORDER BY hash"):
            yield bytes(h)

    def __len__(self) -> int:
        row = self._conn.execute("SELECT COUNT(*) FROM hashes").fetchone()
        return int(row[0])


def _create_private_file(path: Path) -> None:
    """Create ``path`` as an empty 0600 file unless it exists; force 0600."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        os.fchmod(fd, 0o600)
    finally:
        os.close(fd)


class StateStore:
    """The state directory's database.

    Args:
        state_dir: the state directory (created 0700 if missing).
        create: create the directory and database when missing; when False a
            missing database raises :class:`NotInitialised` (readers).

    Raises:
        NotInitialised: nothing there and ``create`` is False.
        LocalStateError: the directory or database cannot be opened.
        LocalCorruption: the file is not a usable cleanfeed database.
    """

    def __init__(self, state_dir: Path, *, create: bool = True) -> None:
        self.state_dir = Path(state_dir)
        db = self.state_dir / DB_NAME
        if not create and not db.exists():
            raise NotInitialised(f"no cleanfeed state in {self.state_dir}: run a sync first")
        try:
            if create:
                self.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
                # The database holds plaintext expressions for entitled
                # ISPs: owner-only before SQLite writes a byte (its -wal and
                # -shm files inherit the database file's permissions).
                _create_private_file(db)
            self._conn = sqlite3.connect(db, isolation_level=None, timeout=_BUSY_TIMEOUT_MS / 1000)
        except OSError as e:
            raise LocalStateError(f"cannot open state in {self.state_dir}: {e.strerror}") from e
        except sqlite3.Error as e:
            raise LocalStateError(f"cannot open {db}: {e}") from e
        try:
            self._conn.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
            mode = self._conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise LocalStateError(f"{db}: cannot enable WAL mode (got {mode})")
            # Durability of each commit (WAL + FULL syncs the log on commit).
            self._conn.execute("PRAGMA synchronous = FULL")
            # A snapshot import of a million rows stays in the page cache
            # until its commit instead of spilling (2.5 s instead of 3.5 s).
            self._conn.execute(f"PRAGMA cache_size = -{_CACHE_KIB}")
            if create:
                self._conn.executescript(_SCHEMA)
                self._conn.execute(_HASH_LOG_TABLE)
                self._init_schema_version()
            else:
                self._check_schema_version()
        except sqlite3.DatabaseError as e:
            self._conn.close()
            raise LocalCorruption(f"{db} is not a usable cleanfeed state database: {e}") from e

    def _init_schema_version(self) -> None:
        self._conn.execute(
            "INSERT OR IGNORE INTO meta (key, value) VALUES ('schema', ?)", (SCHEMA_VERSION,)
        )
        self._check_schema_version()

    def _check_schema_version(self) -> None:
        row = self._conn.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
        if row is None or row[0] != SCHEMA_VERSION:
            raise LocalStateError(
                f"{self.state_dir / DB_NAME}: schema {row[0] if row else None}, "
                f"this client reads schema {SCHEMA_VERSION}"
            )

    def close(self) -> None:
        """Close the database."""
        self._conn.close()

    def __enter__(self) -> StateStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def lock(self, timeout: float) -> StateLock:
        """The state directory's exclusive sync lock (a context manager).

        Raises:
            StateLocked: (on enter) another process held it for ``timeout`` s.
        """
        return StateLock(self.state_dir, timeout)

    # --- meta helpers ---------------------------------------------------------

    def _get(self, key: str) -> object:
        row = self._conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    def _set_many(self, values: dict[str, object]) -> None:
        self._conn.executemany(
            "INSERT INTO meta (key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            list(values.items()),
        )

    def get_meta(self, key: str) -> object:
        """One raw meta value (None when absent)."""
        return self._get(key)

    def set_meta(self, values: dict[str, object]) -> None:
        """Set raw meta values in one transaction (status bookkeeping).

        Raises:
            LocalStateError: SQLite failed.
        """
        try:
            with self._transaction():
                self._set_many(values)
        except sqlite3.Error as e:
            raise LocalStateError(f"cannot update state metadata: {e}") from e

    def _transaction(self) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        return write_transaction(self._conn)

    @contextlib.contextmanager
    def reading(self) -> Iterator[None]:
        """A read transaction: every query inside sees one committed version.

        WAL readers never block the writer; a sync committing meanwhile is
        seen only by the next read transaction.
        """
        self._conn.execute("BEGIN")
        try:
            yield
        finally:
            self._conn.execute("COMMIT")

    # --- the verified state ---------------------------------------------------

    def load_record(self) -> StateRecord | None:
        """The persisted trusted state, or None before the first commit.

        Raises:
            LocalCorruption: meta rows are missing or of the wrong type.
        """
        if self._get("version") is None:
            return None
        try:
            rng = _bytes(self._get("range_hashes"))
            if len(rng) % 32:
                raise LocalCorruption("compact range in meta is not whole hashes")
            keyrings = tuple(
                str(n) for (n,) in self._conn.execute("SELECT note FROM keyrings ORDER BY serial")
            )
            return StateRecord(
                origin=_str(self._get("origin")),
                keyring_notes=keyrings,
                checkpoint_note=_str(self._get("checkpoint_note")),
                checkpoint_time=_int(self._get("checkpoint_time")),
                version=_int(self._get("version")),
                range_hashes=tuple(rng[i : i + 32] for i in range(0, len(rng), 32)),
                statement_hash=_bytes(self._get("statement_hash")),
                statement_state=_bytes(self._get("statement_state")),
                state_vector=_bytes(self._get("state_vector")),
                count=_int(self._get("count")),
            )
        except TypeError as e:
            raise LocalCorruption(f"state meta is damaged: {e}") from e

    def hash_table(self) -> HashTable:
        """The persisted hash set as a container."""
        return HashTable(self._conn)

    def etag(self) -> str | None:
        """The ETag of the last checkpoint fetched."""
        value = self._get("etag")
        return None if value is None else str(value)

    def commit(
        self,
        record: StateRecord,
        changes: HashChanges,
        *,
        etag: str | None = None,
        now: float | None = None,
    ) -> None:
        """Persist a verified state in one transaction (DESIGN.md sync step 5).

        Writes the hash changes (or replaces the set), removes plaintext of
        removed hashes, stores the record, new keyring notes and the
        checkpoint; either all of it lands or none.

        Raises:
            LocalStateError: SQLite failed (disk full, read-only...); nothing
                was written.
        """
        seen_at = time.time() if now is None else now
        try:
            with self._transaction() as c:
                steps.reached("commit:begin")
                self._log_changes(c, record.version, changes)
                if changes.replace is not None:
                    c.execute("DELETE FROM hashes")
                    for batch in changes.replace.batches(_BATCH):
                        c.executemany("INSERT INTO hashes (hash) VALUES (?)", [(h,) for h in batch])
                        steps.reached("commit:hashes")
                    # Plaintext of hashes no longer listed goes with them.
                    c.execute(
                        "DELETE FROM plaintext WHERE NOT EXISTS "
                        "(SELECT 1 FROM hashes WHERE hashes.hash = plaintext.hash)"
                    )
                for start in range(0, len(changes.removed), _BATCH):
                    rows = [(h,) for h in changes.removed[start : start + _BATCH]]
                    c.executemany("DELETE FROM hashes WHERE hash = ?", rows)
                    c.executemany("DELETE FROM plaintext WHERE hash = ?", rows)
                for start in range(0, len(changes.added), _BATCH):
                    rows = [(h,) for h in changes.added[start : start + _BATCH]]
                    c.executemany("INSERT INTO hashes (hash) VALUES (?)", rows)
                    steps.reached("commit:hashes")
                for note in record.keyring_notes:
                    serial = _keyring_serial(note)
                    c.execute(
                        "INSERT INTO keyrings (serial, note) VALUES (?, ?) "
                        "ON CONFLICT(serial) DO NOTHING",
                        (serial, note),
                    )
                c.execute(
                    "INSERT INTO checkpoints (size, note, seen_at) VALUES (?, ?, ?) "
                    "ON CONFLICT(size) DO UPDATE SET note = excluded.note, "
                    "seen_at = excluded.seen_at",
                    (record.version, record.checkpoint_note, seen_at),
                )
                c.execute(
                    "DELETE FROM checkpoints WHERE size NOT IN "
                    "(SELECT size FROM checkpoints ORDER BY size DESC LIMIT ?)",
                    (MAX_CHECKPOINT_HISTORY,),
                )
                steps.reached("commit:meta")
                self._set_many(
                    {
                        "origin": record.origin,
                        "checkpoint_note": record.checkpoint_note,
                        "checkpoint_time": record.checkpoint_time,
                        "version": record.version,
                        "range_hashes": b"".join(record.range_hashes),
                        "statement_hash": record.statement_hash,
                        "statement_state": record.statement_state,
                        "state_vector": record.state_vector,
                        "count": record.count,
                        "etag": etag,
                    }
                )
                steps.reached("commit:before-commit")
        except sqlite3.Error as e:
            raise LocalStateError(f"cannot commit the new state: {e}") from e
        steps.reached("commit:after-commit")

    def _log_changes(self, c: sqlite3.Connection, version: int, changes: HashChanges) -> None:
        """Append this commit's hash changes to ``hash_log`` (bounded, same transaction).

        Meta ``hash_log_from``: the log holds every change of every version
        after it. A snapshot (``replace``) restarts the log at its version.
        """
        # A state created before the log existed and opened without
        # create=True has no table yet: made here, in the same transaction.
        c.execute(_HASH_LOG_TABLE)
        if changes.replace is not None:
            c.execute("DELETE FROM hash_log")
            self._set_many({"hash_log_from": version})
            return
        if self._get("hash_log_from") is None:
            held = self._get("version")
            self._set_many({"hash_log_from": 0 if held is None else _int(held)})
        rows = [(version, h, 1) for h in changes.added]
        rows += [(version, h, 0) for h in changes.removed]
        c.executemany("INSERT INTO hash_log (version, hash, added) VALUES (?, ?, ?)", rows)
        top = c.execute("SELECT max(seq) FROM hash_log").fetchone()[0]
        if top is not None and top > MAX_HASH_LOG:
            cut = top - MAX_HASH_LOG
            dropped = c.execute("SELECT max(version) FROM hash_log WHERE seq <= ?", (cut,))
            newest_dropped = dropped.fetchone()[0]
            c.execute("DELETE FROM hash_log WHERE seq <= ?", (cut,))
            if newest_dropped is not None:
                held_from = _int(self._get("hash_log_from"))
                self._set_many({"hash_log_from": max(held_from, int(newest_dropped))})

    def hash_changes_since(self, version: int) -> list[tuple[bytes, bool]] | None:
        """The (hash, added?) changes of every version after ``version``, oldest first.

        None when the log does not reach back to ``version`` (or the state
        predates the log): compare the whole sets instead.
        """
        held_from = self._get("hash_log_from")
        if held_from is None or version < _int(held_from):
            return None
        try:
            rows = self._conn.execute(
                "SELECT hash, added FROM hash_log WHERE version > ? ORDER BY seq", (version,)
            )
            return [(bytes(h), bool(a)) for h, a in rows]
        except sqlite3.OperationalError:
            return None  # a state written before the log existed

    def set_etag(self, etag: str | None) -> None:
        """Remember the ETag of a checkpoint that changed nothing else.

        Raises:
            LocalStateError: SQLite failed.
        """
        try:
            with self._transaction():
                self._set_many({"etag": etag})
        except sqlite3.Error as e:
            raise LocalStateError(f"cannot store the ETag: {e}") from e

    # --- integrity ------------------------------------------------------------

    def recompute_digest(self) -> tuple[bytes, int]:
        """The state digest and count recomputed from the hashes table, O(N).

        Detects local corruption (a lost or foreign row) that the per-sync
        O(changes) checks cannot see.
        """
        digest = StateDigest()
        count = 0
        cur = self._conn.execute("SELECT hash FROM hashes")
        while True:
            rows = cur.fetchmany(_DIGEST_BATCH)
            if not rows:
                break
            batch = [bytes(r[0]) for r in rows]
            if any(len(h) != 32 for h in batch):
                return b"", -1
            digest.update(batch, ())
            count += len(batch)
        return digest.digest(), count

    def verify_local(self, record: StateRecord) -> bool:
        """Whether the hashes table gives the held statement's digest and count."""
        digest, count = self.recompute_digest()
        return digest == record.statement_state and count == record.count

    def mark_full_check(self, now: float) -> None:
        """Remember when the full local check last passed."""
        with self._transaction():
            self._set_many({"last_full_check": now})

    def last_full_check(self) -> float | None:
        """When the full local check last passed (POSIX seconds)."""
        value = self._get("last_full_check")
        return None if value is None else float(_num(value))

    # --- plaintext ------------------------------------------------------------

    def plaintext_since(self) -> int:
        """The version up to which plaintext was fetched (0 = none)."""
        value = self._get("plaintext_since")
        return 0 if value is None else _int(value)

    def save_plaintext(
        self, pairs: Iterable[tuple[bytes, str]], *, since: int, complete: bool, error: str | None
    ) -> None:
        """Store verified (hash, expression) pairs and the plaintext status.

        The caller has checked that SHA-256(expression) == hash and that the
        hash is listed.

        Raises:
            LocalStateError: SQLite failed.
        """
        try:
            with self._transaction() as c:
                c.executemany(
                    "INSERT INTO plaintext (hash, expression) VALUES (?, ?) "
                    "ON CONFLICT(hash) DO UPDATE SET expression = excluded.expression",
                    list(pairs),
                )
                self._set_many(
                    {
                        "plaintext_since": since,
                        "plaintext_complete": int(complete),
                        "plaintext_error": error,
                    }
                )
        except sqlite3.Error as e:
            raise LocalStateError(f"cannot store plaintext: {e}") from e

    def set_plaintext_status(self, *, complete: bool, error: str | None) -> None:
        """Record whether every listed hash has its expression, and why not."""
        with self._transaction():
            self._set_many({"plaintext_complete": int(complete), "plaintext_error": error})

    def missing_plaintext(self) -> int:
        """Listed hashes without an expression."""
        row = self._conn.execute(
            "SELECT COUNT(*) FROM hashes WHERE NOT EXISTS "
            "(SELECT 1 FROM plaintext WHERE plaintext.hash = hashes.hash)"
        ).fetchone()
        return int(row[0])

    def expressions(self) -> Iterator[tuple[bytes, str]]:
        """(hash, expression) of every listed hash that has one, by hash."""
        cur = self._conn.execute(
            "SELECT p.hash, p.expression FROM plaintext p JOIN hashes h ON h.hash = p.hash "
            "ORDER BY p.hash"
        )
        for h, expr in cur:
            yield bytes(h), str(expr)

    def expression_of(self, h: bytes) -> str | None:
        """The expression of a listed hash, if held."""
        row = self._conn.execute("SELECT expression FROM plaintext WHERE hash = ?", (h,)).fetchone()
        return None if row is None else str(row[0])

    # --- evidence, checkpoints, outcomes -------------------------------------

    def record_evidence(
        self, kind: str, held_note: str, new_note: str, detail: str, *, now: float
    ) -> None:
        """Keep two inconsistent signed notes (deduplicated).

        Raises:
            LocalStateError: SQLite failed.
        """
        try:
            with self._transaction() as c:
                c.execute(
                    "INSERT OR IGNORE INTO evidence "
                    "(kind, held_note, new_note, detail, observed_at) VALUES (?, ?, ?, ?, ?)",
                    (kind, held_note, new_note, detail, now),
                )
        except sqlite3.Error as e:
            raise LocalStateError(f"cannot store equivocation evidence: {e}") from e

    def evidence(self) -> list[Evidence]:
        """Every piece of equivocation evidence, oldest first."""
        rows = self._conn.execute(
            "SELECT kind, held_note, new_note, detail, observed_at FROM evidence ORDER BY id"
        )
        return [Evidence(str(k), str(h), str(n), str(d), float(t)) for k, h, n, d, t in rows]

    def checkpoint_notes(self) -> list[tuple[int, str, float]]:
        """(size, note, seen_at) of the checkpoints held, by size."""
        rows = self._conn.execute("SELECT size, note, seen_at FROM checkpoints ORDER BY size")
        return [(int(s), str(n), float(t)) for s, n, t in rows]

    def keyring_notes(self) -> list[str]:
        """The verified keyring notes, by serial."""
        return [str(n) for (n,) in self._conn.execute("SELECT note FROM keyrings ORDER BY serial")]

    def record_outcome(
        self, reason: str, *, success: bool, message: str, now: float, min_wait: float | None
    ) -> None:
        """Count one sync outcome and update the status fields.

        Best effort by design: a failure to record (read-only disk) must not
        hide the sync's own result, so SQLite errors are swallowed here.
        """
        values: dict[str, object] = {"last_attempt": now, "last_outcome": reason}
        if success:
            values["last_success"] = now
        else:
            values.update(
                {"last_error": message[:500], "last_error_reason": reason, "last_error_time": now}
            )
        if min_wait is not None:
            values["min_wait"] = min_wait
        with contextlib.suppress(sqlite3.Error), self._transaction() as c:
            c.execute(
                "INSERT INTO counters (reason, count) VALUES (?, 1) "
                "ON CONFLICT(reason) DO UPDATE SET count = count + 1",
                (reason,),
            )
            self._set_many(values)

    def counters(self) -> dict[str, int]:
        """Sync outcomes by reason."""
        return {
            str(r): int(n)
            for r, n in self._conn.execute("SELECT reason, count FROM counters ORDER BY reason")
        }

    def min_wait(self) -> float | None:
        """The last minimum-wait hint the server sent."""
        value = self._get("min_wait")
        return None if value is None else float(_num(value))

    def status(self) -> Status:
        """Everything ``cleanfeed isp status`` reports."""

        def opt_float(key: str) -> float | None:
            v = self._get(key)
            return None if v is None else float(_num(v))

        def opt_int(key: str) -> int | None:
            v = self._get(key)
            return None if v is None else _int(v)

        def opt_str(key: str) -> str | None:
            v = self._get(key)
            return None if v is None else str(v)

        complete = self._get("plaintext_complete")
        return Status(
            version=opt_int("version"),
            count=opt_int("count"),
            origin=opt_str("origin"),
            checkpoint_time=opt_int("checkpoint_time"),
            last_attempt=opt_float("last_attempt"),
            last_success=opt_float("last_success"),
            last_error=opt_str("last_error"),
            last_error_reason=opt_str("last_error_reason"),
            last_error_time=opt_float("last_error_time"),
            plaintext_complete=None if complete is None else bool(complete),
            plaintext_error=opt_str("plaintext_error"),
            counters=self.counters(),
            exports=self.export_reports(),
        )

    def export_reports(self) -> tuple[ExportReport, ...]:
        """The reports of the exports last written by a sync, in configuration order."""
        raw = self._get(EXPORT_REPORTS_KEY)
        try:
            docs = json.loads(str(raw)) if raw is not None else []
        except ValueError:
            return ()
        if not isinstance(docs, list):
            return ()
        reports = (ExportReport.from_json(doc) for doc in docs)
        return tuple(r for r in reports if r is not None)

    def set_export_reports(self, reports: Sequence[ExportReport]) -> None:
        """Replace the export reports (one transaction).

        Raises:
            LocalStateError: SQLite failed.
        """
        text = json.dumps([r.to_json() for r in reports], sort_keys=True)
        self.set_meta({EXPORT_REPORTS_KEY: text})

    # --- exports --------------------------------------------------------------

    def hash_set(self) -> frozenset[bytes]:
        """Every listed hash, loaded into memory at once (batch lookups)."""
        blob = self.hash_blob()
        if blob is not None:
            return frozenset([blob[i : i + 32] for i in range(0, len(blob), 32)])
        rows = self._conn.execute("SELECT hash FROM hashes")
        return frozenset(row[0] for row in rows)

    def hash_blob(self) -> bytes | None:
        """Every listed hash, concatenated in one ``bytes`` (32 bytes each).

        One SQLite aggregate instead of a Python row per hash: a million
        rows take over half a second as tuples, about 0.12 s as one blob. The
        order is the table's (byte order), though callers must not rely on
        it (SQL leaves ``group_concat``'s order unspecified).

        Returns:
            The blob, or None when it cannot be one: more than SQLite's
            largest string (a billion bytes by default, 31 million hashes),
            or rows that are not 32 bytes long, which would shift every
            hash after them (the store writes only verified 32-byte hashes,
            so this means a damaged file). Callers then read the rows.
        """
        # group_concat copies each blob's bytes as they are (the database is
        # UTF-8, the default, so no text conversion happens), and CAST makes
        # the result a blob again. The file is memory-mapped for this one
        # scan, which then reads the pages in place instead of copying each
        # into SQLite's cache (a third faster for a million hashes).
        self._conn.execute(f"PRAGMA mmap_size = {_SCAN_MMAP_BYTES}")
        try:
            count, blob = self._conn.execute(
                "SELECT count(*), CAST(group_concat(hash, '') AS BLOB) FROM hashes"
            ).fetchone()
        except sqlite3.DataError:  # SQLITE_TOOBIG: the blob exceeds SQLITE_MAX_LENGTH
            return None
        finally:
            # Back to plain reads: with a mapping, an I/O error on the file
            # would be a signal instead of an error SQLite can report.
            self._conn.execute("PRAGMA mmap_size = 0")
        data = b"" if blob is None else bytes(blob)
        if len(data) != 32 * int(count):
            return None
        return data

    def iter_hashes(self) -> Iterator[bytes]:
        """Every listed hash, in byte order (streamed)."""
        return iter(self.hash_table())

    def integrity_check(self) -> bool:
        """SQLite's own ``PRAGMA integrity_check`` (the fault tests use it)."""
        row = self._conn.execute("PRAGMA integrity_check").fetchone()
        return row is not None and row[0] == "ok"

    def fingerprint(self) -> bytes:
        """SHA-256 over the whole list state (version, meta, hashes), for tests.

        Two stores with the same fingerprint hold the same verified list.
        """
        h = hashlib.sha256()
        record = self.load_record()
        if record is not None:
            h.update(repr(record).encode())
        for x in self.iter_hashes():
            h.update(x)
        return h.digest()


def _keyring_serial(note: str) -> int:
    # The note was verified by the trusted state; read the serial line only.
    for line in note.split("\n"):
        if line.startswith("serial "):
            return int(line[len("serial ") :])
    raise LocalCorruption("keyring note without a serial line")


def _bytes(value: object) -> bytes:
    if not isinstance(value, bytes):
        raise TypeError(f"expected bytes, got {type(value).__name__}")
    return value


def _str(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected text, got {type(value).__name__}")
    return value


def _int(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"expected an integer, got {type(value).__name__}")
    return value


def _num(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"expected a number, got {type(value).__name__}")
    return float(value)


__all__: Sequence[str] = (
    "Evidence",
    "HashTable",
    "StateLock",
    "StateStore",
    "Status",
)
