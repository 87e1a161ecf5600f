"""The IXFR journal of ``cleanfeed isp dns-serve`` (RFC 1995).

One file in the state directory, :data:`JOURNAL_FILE` (mode 0600: it holds
the listed host names, as ``state.db`` does), replaced atomically on every
new zone generation, holds:

- the zone generation (the SOA serial) and the digest of the rendering it
  was made from, so a restart or a re-render that changes nothing keeps
  the serial, and one that changes anything (a new list version, or a
  configuration change such as blockpage addresses) takes the next one;
- the zone's records at that generation (the last good zone: served at
  start before the state is read again, and the base of the next diff);
- the differences between successive generations (records removed and
  added), newest last, bounded by :data:`MAX_JOURNAL_RECORDS` and
  :data:`MAX_JOURNAL_DELTAS`. A secondary whose serial is older than the
  oldest delta, or not comparable, gets the whole zone (RFC 1995 section 4).

The first generation's serial is the current Unix time (mod 2^32), not 1:
if the journal file is ever lost, the new zone's serial is still greater
(RFC 1982) than whatever the secondaries hold, so they transfer it instead
of keeping a zone they believe newer.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import dns.name
import dns.rrset

from clients.common.files import write_atomic
from clients.errors import LocalCorruption, LocalStateError
from clients.isp.dnsserve.zone import (
    Rendered,
    ZoneSnapshot,
    next_serial,
    zonemd_record,
)
from clients.isp.exports import SERIAL_MODULUS

__all__ = [
    "JOURNAL_FILE",
    "JOURNAL_FORMAT",
    "MAX_JOURNAL_DELTAS",
    "MAX_JOURNAL_RECORDS",
    "Delta",
    "Journal",
]

#: File name inside the state directory.
JOURNAL_FILE: Final = "dns-serve.journal.json"
#: Format tag written into the file; another value is refused.
JOURNAL_FORMAT: Final = "cleanfeed-dns-serve-journal/1"
#: Removed plus added records kept over all deltas. A secondary further
#: behind than this gets an AXFR, which at that point costs about as much
#: as replaying the deltas (a 1,000,000-entry zone is about 2,000,000
#: records), while the journal file and its memory stay bounded.
MAX_JOURNAL_RECORDS: Final = 1_000_000
#: Deltas kept: at one list version a minute, about 16 hours of history,
#: longer than a secondary's SOA retry cycle (RPZ_RETRY) many times over.
MAX_JOURNAL_DELTAS: Final = 1000
#: File mode: the records name listed hosts (as ``state.db`` does).
JOURNAL_MODE: Final = 0o600


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


class Journal:
    """The persisted generations of the served zone.

    Attributes:
        path: the journal file.
        origin: the zone name.
        zonemd: whether the zone carries an RFC 8976 ZONEMD record.
        current: the zone at the latest generation, or None before the
            first successful rendering.
        deltas: the kept differences, oldest first, ending at ``current``.
    """

    def __init__(self, state_dir: Path, origin: dns.name.Name, *, zonemd: bool) -> None:
        """Load the journal of ``state_dir`` (or start an empty one).

        A journal of another zone name is not reused: its serials and
        records describe a different zone.

        Raises:
            LocalCorruption: the file exists but is not a journal.
            LocalStateError: the file cannot be read.
        """
        self.path = Path(state_dir) / JOURNAL_FILE
        self.origin = origin
        self.zonemd = zonemd
        self.current: ZoneSnapshot | None = None
        self.deltas: list[Delta] = []
        self._digest: str | None = None
        self._soa: tuple[str, str, tuple[int, int, int, int]] | None = None
        self._load()

    def _load(self) -> None:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return
        except OSError as e:
            raise LocalStateError(f"cannot read {self.path}: {e.strerror}") from e
        try:
            doc = json.loads(raw)
            if doc.get("format") != JOURNAL_FORMAT:
                raise ValueError(f"format is not {JOURNAL_FORMAT}")
            if doc["origin"] != self.origin.to_text():
                return
            serial = int(doc["serial"])
            if not 0 <= serial < SERIAL_MODULUS:
                raise ValueError("serial out of range")
            mname, rname = str(doc["mname"]), str(doc["rname"])
            t = [int(x) for x in doc["timers"]]
            timers = (t[0], t[1], t[2], t[3])
            records = tuple(str(r) for r in doc["records"])
            deltas = [
                Delta(int(d["from"]), int(d["to"]), tuple(d["removed"]), tuple(d["added"]))
                for d in doc["deltas"]
            ]
            version = int(doc["version"])
            digest = str(doc["digest"])
            zonemd = bool(doc["zonemd"])
        except (ValueError, KeyError, TypeError, IndexError) as e:
            raise LocalCorruption(
                f"{self.path} is not a dns-serve journal ({e}); remove it to start a new "
                "zone generation (secondaries then transfer the whole zone once)"
            ) from e
        soa = ZoneSnapshot.soa_rrset(self.origin, mname, rname, serial, timers)
        self.current = ZoneSnapshot(self.origin, serial, soa, records, version)
        self.deltas = deltas
        # A ZONEMD setting that changed forces a new generation at the next
        # rendering even if the list did not change.
        self._digest = digest if zonemd == self.zonemd else None
        self._soa = (mname, rname, timers)

    def advance(self, rendered: Rendered) -> Delta | None:
        """Make ``rendered`` the current zone, as a new generation if it changed.

        The difference is computed from the two sorted record lists (a merge,
        no copy of either zone). Persisted atomically before the new zone is
        served, so a crash never serves a serial the journal does not know.

        Returns:
            The new delta, or None when the rendering equals the current zone
            (the serial stays).

        Raises:
            LocalStateError: the journal cannot be written (nothing changes).
        """
        digest = rendered.digest.hex()
        if self.current is not None and digest == self._digest:
            return None
        old = self.current
        serial = next_serial(old.serial) if old is not None else _initial_serial()
        soa = ZoneSnapshot.soa_rrset(
            self.origin, rendered.mname, rendered.rname, serial, rendered.timers
        )
        records = rendered.records
        if self.zonemd:
            records = tuple(sorted((*records, zonemd_record(self.origin, soa, records))))
        new = ZoneSnapshot(self.origin, serial, soa, records, rendered.version)
        deltas = list(self.deltas)
        delta: Delta | None = None
        if old is not None:
            removed, added = _diff(old.records, records)
            delta = Delta(old.serial, serial, removed, added)
            deltas.append(delta)
        deltas = _trim(deltas)
        self._write(new, deltas, digest, rendered)
        self.current, self.deltas, self._digest = new, deltas, digest
        self._soa = (rendered.mname, rendered.rname, rendered.timers)
        return delta

    def _write(
        self, new: ZoneSnapshot, deltas: Sequence[Delta], digest: str, rendered: Rendered
    ) -> None:
        doc = {
            "format": JOURNAL_FORMAT,
            "origin": self.origin.to_text(),
            "serial": new.serial,
            "version": new.version,
            "digest": digest,
            "zonemd": self.zonemd,
            "mname": rendered.mname,
            "rname": rendered.rname,
            "timers": list(rendered.timers),
            "records": list(new.records),
            "deltas": [
                {"from": d.from_serial, "to": d.to_serial, "removed": d.removed, "added": d.added}
                for d in deltas
            ],
        }
        try:
            write_atomic(self.path, json.dumps(doc).encode("ascii"), mode=JOURNAL_MODE)
        except OSError as e:
            raise LocalStateError(f"cannot write {self.path}: {e.strerror or e}") from e

    def path_from(self, serial: int, until: int) -> list[Delta] | None:
        """The deltas from ``serial`` to generation ``until``, or None.

        None means incremental transfer is not available from ``serial``:
        older than the journal keeps, or not a serial this zone ever had
        (RFC 1995 section 4: answer with the whole zone).
        """
        deltas = self.deltas  # one read: advance() replaces the list
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
