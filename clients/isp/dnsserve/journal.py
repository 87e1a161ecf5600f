"""The IXFR journal of ``cleanfeed isp dns-serve`` (RFC 1995).

One SQLite database in the state directory, :data:`JOURNAL_FILE` (mode
0600: it holds the listed host names, as ``state.db`` does; WAL; one
transaction per zone generation, so a crash leaves the previous generation
whole), holds:

- ``meta``: the zone generation (the SOA serial), the list version and the
  configuration it renders, the SOA names and timers;
- ``records``: the zone's records at that generation (the last good zone:
  served at start before the state is read again, streamed by AXFR, and
  the base of the next difference), each with its *group*: the host's last
  two labels (:func:`clients.isp.dnsserve.zone.group_of`);
- ``entries``: each listed hash with its group, so a version's changes
  name the groups to re-render (issue 19 item 4: a generation costs
  O(changes), not O(zone));
- ``deltas``: the differences between successive generations (records
  removed and added), oldest first, bounded by :data:`MAX_JOURNAL_RECORDS`
  and :data:`MAX_JOURNAL_DELTAS`. A secondary whose serial is older than
  the oldest delta, or not comparable, gets the whole zone (RFC 1995
  section 4).

A new generation (:meth:`Journal.follow`): the state's hash changes since
the journal's version (``hash_log``, :meth:`StateStore.hash_changes_since`)
update ``entries``; every group they touch is rendered again by the ``rpz``
export's own code (all of them in one call: groups are independent), and
its old and new records are compared. The whole zone is rendered instead
(:meth:`Journal.advance`) for the first generation, after a configuration
change (zone, blockpage addresses, list name), when the state's log does
not reach back to the journal's version, or with ZONEMD on (RFC 8976's
digest covers the whole zone, so that generation reads every record).

The first generation's serial is the current Unix time (mod 2^32), not 1:
if the journal file is ever lost, the new zone's serial is still greater
(RFC 1982) than whatever the secondaries hold, so they transfer it instead
of keeping a zone they believe newer.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

import dns.name
import dns.rrset

from blocklist.canonical import expression_hash
from clients.errors import LocalCorruption, LocalStateError, PlaintextMismatch
from clients.isp.dnsserve.zone import (
    Rendered,
    ZoneNotReady,
    ZoneSnapshot,
    entry_group,
    group_of,
    next_serial,
    read_rendered,
    render_records,
    zonemd_record,
)
from clients.isp.exports.formats import SERIAL_MODULUS, ExportInput
from clients.isp.localdb import write_transaction
from clients.isp.store import StateStore

__all__ = [
    "JOURNAL_FILE",
    "JOURNAL_FORMAT",
    "MAX_JOURNAL_DELTAS",
    "MAX_JOURNAL_RECORDS",
    "Delta",
    "Journal",
]

#: File name inside the state directory.
JOURNAL_FILE: Final = "dns-serve.journal.db"
#: The journal file of earlier releases (one JSON document), removed at start.
LEGACY_JOURNAL_FILE: Final = "dns-serve.journal.json"
#: Format tag kept in ``meta``; another value is refused.
JOURNAL_FORMAT: Final = "cleanfeed-dns-serve-journal/2"
#: Removed plus added records kept over all deltas. A secondary further
#: behind than this gets an AXFR, which at that point costs about as much
#: as replaying the deltas (a 1,000,000-entry zone is about 2,000,000
#: records), while the journal and its memory stay bounded.
MAX_JOURNAL_RECORDS: Final = 1_000_000
#: Deltas kept: at one list version a minute, about 16 hours of history,
#: longer than a secondary's SOA retry cycle (RPZ_RETRY) many times over.
MAX_JOURNAL_DELTAS: Final = 1000
#: File mode: the records name listed hosts (as ``state.db`` does).
JOURNAL_MODE: Final = 0o600
#: Page cache of the journal's connection, KiB (SQLite's default is 2 MiB).
_CACHE_KIB: Final = 65536
#: Rows fetched at a time when streaming the zone (AXFR, ZONEMD).
_FETCH: Final = 2000
#: Owner of the RFC 8976 ZONEMD record (the apex), as a record line prefix.
_ZONEMD_PREFIX: Final = "@ ZONEMD "

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS records (rec TEXT PRIMARY KEY, grp TEXT NOT NULL) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS records_grp ON records (grp);
CREATE TABLE IF NOT EXISTS entries (hash BLOB PRIMARY KEY, grp TEXT) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS entries_grp ON entries (grp);
CREATE TABLE IF NOT EXISTS deltas (
    seq INTEGER PRIMARY KEY, from_serial INTEGER NOT NULL, to_serial INTEGER NOT NULL,
    removed TEXT NOT NULL, added TEXT NOT NULL);
"""


@dataclass(frozen=True)
class Delta:
    """The difference between two successive generations (RFC 1995 section 4).

    Attributes:
        from_serial: the older generation.
        to_serial: the newer one (``next_serial(from_serial)``).
        removed: records in the older zone only, sorted.
        added: records in the newer zone only, sorted.
    """

    from_serial: int
    to_serial: int
    removed: tuple[str, ...]
    added: tuple[str, ...]

    @property
    def size(self) -> int:
        return len(self.removed) + len(self.added)


def _lines(text: str) -> tuple[str, ...]:
    return tuple(text.split("\n")) if text else ()


class Journal:
    """The persisted generations of the served zone.

    Attributes:
        path: the journal database.
        origin: the zone name.
        zonemd: whether the zone carries an RFC 8976 ZONEMD record.
        current: the zone at the latest generation, or None before the
            first successful rendering.
        deltas: the kept differences, oldest first, ending at ``current``.
        last_groups: groups rendered by the latest incremental generation
            (None: the latest one rendered the whole zone).
    """

    def __init__(self, state_dir: Path, origin: dns.name.Name, *, zonemd: bool) -> None:
        """Open the journal of ``state_dir`` (or start an empty one).

        A journal of another zone name is not reused: its serials and
        records describe a different zone.

        Raises:
            LocalCorruption: the file exists but is not a journal.
            LocalStateError: the file cannot be opened.
        """
        self.path = Path(state_dir) / JOURNAL_FILE
        # The whole-zone JSON journal of earlier releases: never read (its
        # serials restart as a new generation), removed so the listed
        # hosts it names do not linger.
        with contextlib.suppress(FileNotFoundError):
            (Path(state_dir) / LEGACY_JOURNAL_FILE).unlink()
        self.origin = origin
        self.zonemd = zonemd
        self.current: ZoneSnapshot | None = None
        self.deltas: list[Delta] = []
        self.last_groups: frozenset[str] | None = None
        self._soa: tuple[str, str, tuple[int, int, int, int]] | None = None
        # What a generation being written will make current once committed.
        self._pending_current: ZoneSnapshot | None = None
        self._pending_deltas: list[Delta] = []
        self._pending_soa: tuple[str, str, tuple[int, int, int, int]] | None = None
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, JOURNAL_MODE)
            os.close(fd)
            # Used by the rendering thread, never by two threads at once;
            # transfers read through connections of their own (read()).
            self._conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        except OSError as e:
            raise LocalStateError(f"cannot open {self.path}: {e.strerror}") from e
        except sqlite3.Error as e:
            raise LocalStateError(f"cannot open {self.path}: {e}") from e
        try:
            self._conn.execute("PRAGMA journal_mode = WAL")
            self._conn.execute("PRAGMA synchronous = FULL")
            # The pages a generation touches (a few per changed record, spread
            # over the records and entries B-trees) stay cached between
            # generations instead of being read again: bounded, 64 MiB.
            self._conn.execute(f"PRAGMA cache_size = -{_CACHE_KIB}")
            self._conn.executescript(_SCHEMA)
            self._load()
        except sqlite3.DatabaseError as e:
            self._conn.close()
            raise LocalCorruption(
                f"{self.path} is not a dns-serve journal ({e}); remove it to start a new "
                "zone generation (secondaries then transfer the whole zone once)"
            ) from e

    def close(self) -> None:
        """Close the database."""
        self._conn.close()

    def _meta(self, key: str) -> object:
        row = self._conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    def _set_meta(self, values: dict[str, object]) -> None:
        self._conn.executemany(
            "INSERT INTO meta (key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            list(values.items()),
        )

    def _transaction(self) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        return write_transaction(self._conn)

    def _load(self) -> None:
        fmt = self._meta("format")
        if fmt is None:
            with self._transaction():
                self._set_meta({"format": JOURNAL_FORMAT, "origin": self.origin.to_text()})
            return
        try:
            if fmt != JOURNAL_FORMAT:
                raise ValueError(f"format is not {JOURNAL_FORMAT}")
            if self._meta("origin") != self.origin.to_text():
                # Another zone's journal: start this zone afresh.
                with self._transaction() as c:
                    for table in ("meta", "records", "entries", "deltas"):
                        c.execute(f"DELETE FROM {table}")  # noqa: S608 - constant names
                    self._set_meta({"format": JOURNAL_FORMAT, "origin": self.origin.to_text()})
                return
            if self._meta("serial") is None:
                return
            serial = int(str(self._meta("serial")))
            if not 0 <= serial < SERIAL_MODULUS:
                raise ValueError("serial out of range")
            mname, rname = str(self._meta("mname")), str(self._meta("rname"))
            t = [int(x) for x in json.loads(str(self._meta("timers")))]
            timers = (t[0], t[1], t[2], t[3])
            version = int(str(self._meta("version")))
            count = int(str(self._meta("count")))
            deltas = [
                Delta(int(f), int(to), _lines(str(r)), _lines(str(a)))
                for f, to, r, a in self._conn.execute(
                    "SELECT from_serial, to_serial, removed, added FROM deltas ORDER BY seq"
                )
            ]
        except (ValueError, KeyError, TypeError, IndexError) as e:
            raise LocalCorruption(
                f"{self.path} is not a dns-serve journal ({e}); remove it to start a new "
                "zone generation (secondaries then transfer the whole zone once)"
            ) from e
        soa = ZoneSnapshot.soa_rrset(self.origin, mname, rname, serial, timers)
        self.current = ZoneSnapshot(self.origin, serial, soa, version, count, self.read)
        self.deltas = deltas
        self._soa = (mname, rname, timers)

    # --- reading ----------------------------------------------------------------

    def read(self) -> Iterator[str]:
        """Every record of the newest committed generation, sorted, streamed.

        A connection of its own in one read transaction (WAL snapshot): a
        generation committed meanwhile is not seen half-way.
        """
        _, records = self.snapshot()
        yield from records

    def snapshot(self) -> tuple[int | None, Iterator[str]]:
        """(serial, records) of the newest committed generation, one consistent read.

        Raises:
            LocalStateError: the journal cannot be read.
        """
        try:
            conn = sqlite3.connect(self.path, isolation_level=None)
            conn.execute("BEGIN")
            row = conn.execute("SELECT value FROM meta WHERE key = 'serial'").fetchone()
            cur = conn.execute("SELECT rec FROM records ORDER BY rec")
        except sqlite3.Error as e:
            raise LocalStateError(f"cannot read {self.path}: {e}") from e

        def rows() -> Iterator[str]:
            try:
                while batch := cur.fetchmany(_FETCH):
                    for (rec,) in batch:
                        yield str(rec)
            finally:
                conn.close()

        return (None if row is None else int(row[0])), rows()

    # --- new generations ------------------------------------------------------

    def follow(
        self, store: StateStore, *, zone: str, blockpage: Sequence[str], list_name: str
    ) -> Delta | None:
        """Bring the journal to the state's version, re-rendering only touched groups.

        Falls back to :meth:`advance` with the whole rendering when the
        difference cannot be had from the state's log (see the module
        docstring).

        Returns:
            The new delta, or None when the zone did not change.

        Raises:
            ZoneNotReady: no verified list yet, or an expression is missing.
            PlaintextMismatch: a stored expression does not hash to its key.
            ExportError: the zone name or blockpage addresses are refused.
            LocalStateError: the state or the journal cannot be used.
        """
        fingerprint = json.dumps([zone, list(blockpage), list_name])
        held = self._meta("entries_version")
        if (
            self.current is None
            or held is None
            or self.zonemd
            or self._meta("fingerprint") != fingerprint
            or bool(self._meta("zonemd")) != self.zonemd
        ):
            return self._full(store, zone, blockpage, list_name, fingerprint)
        try:
            with store.reading(), self._transaction() as c:
                status = store.status()
                if status.version is None:
                    raise ZoneNotReady("no verified list yet: run `cleanfeed isp sync` first")
                changes = store.hash_changes_since(int(str(held)))
                if changes is None:
                    raise _NeedFull
                # Net effect per hash (the last change wins): an entry added
                # and removed again since the journal's version has no
                # plaintext any more (removed with it) and no record.
                net = dict(changes)
                groups: set[str] = set()
                for h, added in net.items():
                    row = c.execute("SELECT grp FROM entries WHERE hash = ?", (h,)).fetchone()
                    if added and row is None:
                        expr = store.expression_of(h)
                        if expr is None:
                            raise ZoneNotReady(
                                "plaintext incomplete, keeping the previous zone: "
                                "a new entry has no expression yet"
                            )
                        grp = entry_group(expr)
                        c.execute("INSERT INTO entries (hash, grp) VALUES (?, ?)", (h, grp))
                    elif not added and row is not None:
                        c.execute("DELETE FROM entries WHERE hash = ?", (h,))
                        grp = row[0]
                    else:
                        continue
                    if grp is not None:
                        groups.add(str(grp))
                expressions: dict[bytes, str] = {}
                for grp in sorted(groups):
                    for (h,) in c.execute("SELECT hash FROM entries WHERE grp = ?", (grp,)):
                        h = bytes(h)
                        expr = store.expression_of(h)
                        if expr is None:
                            raise ZoneNotReady(
                                "plaintext incomplete, keeping the previous zone: "
                                "an entry has no expression yet"
                            )
                        if expression_hash(expr) != h:
                            raise PlaintextMismatch(
                                f"expression stored for {h.hex()} does not hash to it"
                            )
                        expressions[h] = expr
                data = ExportInput(
                    version=status.version,
                    hashes=list(expressions),
                    expressions=expressions,
                    list_name=list_name,
                    origin=status.origin or "",
                    generated=datetime.now(UTC),
                )
                mname, rname, timers, rendered = (
                    render_records(data, zone=zone, blockpage=blockpage)
                    if groups
                    else (*self._soa_or_fail(), [])
                )
                new = {r for r in rendered if not r.startswith("@ ")}
                old: set[str] = set()
                for grp in groups:
                    old.update(
                        str(r)
                        for (r,) in c.execute("SELECT rec FROM records WHERE grp = ?", (grp,))
                    )
                delta = self._generation(
                    c,
                    sorted(old - new),
                    sorted(new - old),
                    status.version,
                    (mname, rname, timers),
                    force=False,
                )
                self._set_meta({"entries_version": status.version})
                self.last_groups = frozenset(groups)
        except _NeedFull:
            return self._full(store, zone, blockpage, list_name, fingerprint)
        except sqlite3.Error as e:
            raise LocalStateError(f"cannot update {self.path}: {e}") from e
        return self._published(delta)

    def _soa_or_fail(self) -> tuple[str, str, tuple[int, int, int, int]]:
        if self._soa is None:
            raise _NeedFull
        return self._soa

    def _full(
        self,
        store: StateStore,
        zone: str,
        blockpage: Sequence[str],
        list_name: str,
        fingerprint: str,
    ) -> Delta | None:
        rendered = read_rendered(store, zone=zone, blockpage=blockpage, list_name=list_name)
        return self.advance(rendered, fingerprint=fingerprint)

    def advance(self, rendered: Rendered, *, fingerprint: str | None = None) -> Delta | None:
        """Make the whole rendering ``rendered`` the zone, as a new generation if it changed.

        The difference is computed from the two sorted record lists (a merge
        of the stored zone, streamed, with the new one); the stored zone and
        index are replaced. O(zone): the first generation and configuration
        changes only (:meth:`follow` is O(changes)).

        Returns:
            The new delta, or None when the rendering equals the current zone
            (the serial stays).

        Raises:
            LocalStateError: the journal cannot be written (nothing changes).
        """
        records = [r for r in rendered.records if not r.startswith(_ZONEMD_PREFIX)]
        try:
            with self._transaction() as c:
                old = (
                    str(r)
                    for (r,) in c.execute(
                        "SELECT rec FROM records WHERE rec NOT LIKE '@ ZONEMD %' ORDER BY rec"
                    )
                )
                removed, added = _diff(list(old), records)
                force = self.current is not None and bool(self._meta("zonemd")) != self.zonemd
                delta = self._generation(
                    c,
                    list(removed),
                    list(added),
                    rendered.version,
                    (rendered.mname, rendered.rname, rendered.timers),
                    force=force,
                )
                c.execute("DELETE FROM entries")
                if rendered.groups is not None:
                    c.executemany("INSERT INTO entries (hash, grp) VALUES (?, ?)", rendered.groups)
                self._set_meta(
                    {
                        "entries_version": None if rendered.groups is None else rendered.version,
                        "fingerprint": fingerprint,
                    }
                )
                self.last_groups = None
        except sqlite3.Error as e:
            raise LocalStateError(f"cannot write {self.path}: {e}") from e
        return self._published(delta)

    def _published(self, delta: Delta | None) -> Delta | None:
        """After a commit: the in-memory view follows the database."""
        self.current = self._pending_current
        self.deltas = self._pending_deltas
        self._soa = self._pending_soa
        return delta

    def _generation(
        self,
        c: sqlite3.Connection,
        removed: list[str],
        added: list[str],
        version: int,
        soa_fields: tuple[str, str, tuple[int, int, int, int]],
        *,
        force: bool,
    ) -> Delta | None:
        """Inside the transaction: apply a difference as the next generation (or not).

        ``removed`` and ``added`` are sorted and never hold the ZONEMD
        record, recomputed here when enabled.
        """
        old = self.current
        self._pending_current, self._pending_deltas = old, self.deltas
        self._pending_soa = self._soa
        if old is not None and not removed and not added and not force and soa_fields == self._soa:
            self._set_meta({"version": version})
            if old.version != version:
                self._pending_current = ZoneSnapshot(
                    old.origin, old.serial, old.soa, version, old.count, self.read
                )
            return None
        mname, rname, timers = soa_fields
        serial = next_serial(old.serial) if old is not None else _initial_serial()
        soa = ZoneSnapshot.soa_rrset(self.origin, mname, rname, serial, timers)
        c.executemany("DELETE FROM records WHERE rec = ?", [(r,) for r in removed])
        c.executemany(
            "INSERT INTO records (rec, grp) VALUES (?, ?)",
            [(r, group_of(r.split(" ", 1)[0])) for r in added],
        )
        # The ZONEMD record (RFC 8976) digests the whole zone with its SOA:
        # recomputed at every generation when enabled, dropped when not.
        # Found through the apex group (indexed): LIKE cannot use the
        # BINARY primary key and would scan the whole zone.
        stale = [
            str(r)
            for (r,) in c.execute("SELECT rec FROM records WHERE grp = '@'")
            if str(r).startswith(_ZONEMD_PREFIX)
        ]
        c.executemany("DELETE FROM records WHERE rec = ?", [(r,) for r in stale])
        removed = sorted({*removed, *stale})
        if self.zonemd:
            every = [str(r) for (r,) in c.execute("SELECT rec FROM records ORDER BY rec")]
            md = zonemd_record(self.origin, soa, every)
            c.execute("INSERT INTO records (rec, grp) VALUES (?, '@')", (md,))
            added = sorted({*added, md})
        count = (
            int(c.execute("SELECT count(*) FROM records").fetchone()[0])
            if old is None
            else (old.count + len(added) - len(removed))
        )
        delta: Delta | None = None
        deltas = list(self.deltas)
        if old is not None:
            delta = Delta(old.serial, serial, tuple(removed), tuple(added))
            deltas.append(delta)
            c.execute(
                "INSERT INTO deltas (from_serial, to_serial, removed, added) VALUES (?, ?, ?, ?)",
                (old.serial, serial, "\n".join(removed), "\n".join(added)),
            )
        kept = _trim(deltas)
        if len(kept) < len(deltas):
            dropped = len(deltas) - len(kept)
            c.execute(
                "DELETE FROM deltas WHERE seq IN (SELECT seq FROM deltas ORDER BY seq LIMIT ?)",
                (dropped,),
            )
        self._set_meta(
            {
                "serial": serial,
                "version": version,
                "count": count,
                "zonemd": int(self.zonemd),
                "mname": mname,
                "rname": rname,
                "timers": json.dumps(list(timers)),
            }
        )
        self._pending_current = ZoneSnapshot(self.origin, serial, soa, version, count, self.read)
        self._pending_deltas = kept
        self._pending_soa = soa_fields
        return delta

    def path_from(self, serial: int, until: int) -> list[Delta] | None:
        """The deltas from ``serial`` to generation ``until``, or None.

        None means incremental transfer is not available from ``serial``:
        older than the journal keeps, or not a serial this zone ever had
        (RFC 1995 section 4: answer with the whole zone).
        """
        deltas = self.deltas  # one read: a new generation replaces the list
        for i, d in enumerate(deltas):
            if d.from_serial == serial:
                for j in range(i, len(deltas)):
                    if deltas[j].to_serial == until:
                        return deltas[i : j + 1]
                return None
        return None

    def soa_at(self, serial: int) -> dns.rrset.RRset:
        """The SOA rrset of an older generation (its names and timers are the current ones)."""
        assert self._soa is not None
        mname, rname, timers = self._soa
        return ZoneSnapshot.soa_rrset(self.origin, mname, rname, serial, timers)


class _NeedFull(Exception):
    """The state's log does not reach the journal's version: render everything."""


def _initial_serial() -> int:
    return int(time.time()) % SERIAL_MODULUS or 1


def _diff(old: Sequence[str], new: Sequence[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Records only in ``old`` and only in ``new`` (both sorted): one merge pass."""
    removed: list[str] = []
    added: list[str] = []
    i = j = 0
    while i < len(old) and j < len(new):
        a, b = old[i], new[j]
        if a == b:
            i += 1
            j += 1
        elif a < b:
            removed.append(a)
            i += 1
        else:
            added.append(b)
            j += 1
    removed.extend(old[i:])
    added.extend(new[j:])
    return tuple(removed), tuple(added)


def _trim(deltas: list[Delta]) -> list[Delta]:
    """Drop the oldest deltas beyond :data:`MAX_JOURNAL_DELTAS` / :data:`MAX_JOURNAL_RECORDS`."""
    total = sum(d.size for d in deltas)
    start = 0
    while start < len(deltas) and (
        len(deltas) - start > MAX_JOURNAL_DELTAS or total > MAX_JOURNAL_RECORDS
    ):
        total -= deltas[start].size
        start += 1
    return deltas[start:]
