"""The zone ``cleanfeed isp dns-serve`` serves: the verified state's RPZ.

The records are exactly those of the ``rpz`` export
(:func:`clients.isp.exports.output.render`, with the blockpage addresses of the
ISP configuration's ``rpz`` export): this module renders that text and
reads its records back as ``owner TYPE rdata`` lines relative to the zone
origin, so the rendering lives in one place. Only the SOA differs: its
serial is dns-serve's zone generation (:mod:`clients.isp.dnsserve.journal`),
not the list version, because a configuration change re-renders the zone
without a new list version (DESIGN.md "Enforcement at the ISP").

Serial comparison follows RFC 1982 (32-bit sequence space arithmetic).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Final

import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import dns.zone
import dns.zonetypes

from clients.errors import ClientError
from clients.isp.exports.entries import _parse_entry
from clients.isp.exports.formats import RPZ_TTL, SERIAL_MODULUS, ExportInput
from clients.isp.exports.output import render
from clients.isp.store import StateStore

__all__ = [
    "HALF_SERIAL_SPACE",
    "Rendered",
    "StateKey",
    "ZoneNotReady",
    "ZoneSnapshot",
    "entry_group",
    "group_of",
    "next_serial",
    "read_rendered",
    "render_records",
    "serial_gt",
    "state_key",
    "zonemd_record",
]

#: RFC 1982 section 3.2: ``s1 < s2`` iff their distance is below 2^31 the
#: right way round; at exactly 2^31 the comparison is undefined.
HALF_SERIAL_SPACE: Final = 2**31

#: The cheap value :func:`state_key` reads: the verified version and the
#: plaintext progress, the only state the RPZ rendering depends on.
StateKey = tuple[object, ...]


class ZoneNotReady(ClientError, reason="zone_not_ready"):
    """The state cannot be rendered yet (no sync, or plaintext still missing)."""


def serial_gt(a: int, b: int) -> bool:
    """RFC 1982 section 3.2: is serial ``a`` greater than ``b``?"""
    return (a < b and b - a > HALF_SERIAL_SPACE) or (a > b and a - b < HALF_SERIAL_SPACE)


def next_serial(serial: int) -> int:
    """RFC 1982 section 3.1: serial + 1 in the 32-bit space (0 skipped: some
    secondaries treat 0 as "no serial")."""
    nxt = (serial + 1) % SERIAL_MODULUS
    return nxt or 1


@dataclass(frozen=True)
class Rendered:
    """The RPZ export of the state, read back as records.

    Attributes:
        version: the list version it renders.
        soa_fields: the SOA rdata after the serial (refresh, retry, expire,
            minimum) and its names, from the rendered text.
        records: ``owner TYPE rdata`` lines relative to the origin, SOA
            excluded, sorted.
        digest: SHA-256 of the records (tells a re-render from a change).
        groups: (hash, group) of every listed hash (None: no DNS record),
            the journal's index for the next incremental generation; None
            when not known (the next generation renders everything).
    """

    version: int
    mname: str
    rname: str
    timers: tuple[int, int, int, int]
    records: tuple[str, ...]
    digest: bytes
    groups: tuple[tuple[bytes, str | None], ...] | None = None


def state_key(store: StateStore) -> StateKey:
    """What changes when a sync commits something the zone depends on.

    A handful of indexed reads of the state's ``meta`` table: cheap enough
    to poll every second (:mod:`clients.isp.dnsserve.server`).
    """
    return (
        store.get_meta("version"),
        store.get_meta("plaintext_since"),
        store.get_meta("plaintext_complete"),
    )


def _records_of(text: str) -> tuple[str, str, tuple[int, int, int, int], list[str]]:
    """Split the ``rpz`` export text into its SOA fields and other records.

    The export writes one record per line: ``@ IN SOA m r serial t t t t``,
    ``@ IN NS localhost.``, then ``owner TYPE rdata`` (see
    :func:`clients.isp.exports.dns._render_rpz`).
    """
    soa: list[str] | None = None
    records: list[str] = []
    for line in text.splitlines():
        if not line or line[0] in ";$":
            continue
        fields = line.split()
        if len(fields) >= 3 and fields[1] == "IN":
            del fields[1]
        if fields[1] == "SOA":
            soa = fields
            continue
        records.append(" ".join(fields))
    if soa is None or len(soa) != 9:
        raise ZoneNotReady("the rpz rendering has no SOA record")
    timers = (int(soa[5]), int(soa[6]), int(soa[7]), int(soa[8]))
    return soa[2], soa[3], timers, records


def read_rendered(
    store: StateStore, *, zone: str, blockpage: Sequence[str], list_name: str
) -> Rendered:
    """Render the verified, committed state as the ``rpz`` export would.

    Reads one consistent snapshot of the state (a WAL read transaction).

    Raises:
        ZoneNotReady: no verified list yet, or an expression is missing
            (the plaintext of a new version arrives just after its commit;
            the previous zone stays served meanwhile: fail closed).
        ExportError: the zone name or blockpage addresses are refused.
        LocalStateError: the state cannot be read.
    """
    with store.reading():
        status = store.status()
        if status.version is None:
            raise ZoneNotReady("no verified list yet: run `cleanfeed isp sync` first")
        data = ExportInput(
            version=status.version,
            hashes=list(store.iter_hashes()),
            expressions=dict(store.expressions()),
            list_name=list_name,
            origin=status.origin or "",
            generated=datetime.now(UTC),
        )
    mname, rname, timers, records = render_records(data, zone=zone, blockpage=blockpage)
    records.sort()
    digest = hashlib.sha256("\n".join(records).encode("ascii")).digest()
    assert data.expressions is not None
    groups = tuple((h, entry_group(expr)) for h, expr in data.expressions.items())
    return Rendered(data.version, mname, rname, timers, tuple(records), digest, groups)


def entry_group(expression: str) -> str | None:
    """The group (:func:`group_of`) of a listed expression; None: it has no DNS record."""
    entry = _parse_entry(expression)
    if entry is None or entry.scope != "host" or entry.ip:
        return None
    return group_of(entry.host)


def render_records(
    data: ExportInput, *, zone: str, blockpage: Sequence[str]
) -> tuple[str, str, tuple[int, int, int, int], list[str]]:
    """The ``rpz`` export of ``data`` as (mname, rname, timers, records), unsorted.

    Raises:
        ZoneNotReady: an expression is missing.
        ExportError: the zone name or blockpage addresses are refused.
    """
    from clients.isp.exports.formats import MissingPlaintext

    try:
        result = render("rpz", data, rpz_zone=zone, blockpage=tuple(blockpage))
    except MissingPlaintext as e:
        raise ZoneNotReady(f"plaintext incomplete, keeping the previous zone: {e}") from e
    return _records_of(result.files[""].decode("ascii"))


def group_of(owner: str) -> str:
    """The group of a record's owner (relative) or of a listed host.

    A host's last two labels, exactly as the incremental exports shard
    (:func:`clients.isp.exports.sharded.shard_of`): a host and every listed
    name below it share them, so the pruning of covered names never crosses
    groups and a group renders alone as it does inside the whole zone. The
    apex (``@``: NS, ZONEMD) is its own group.
    """
    if owner == "@":
        return "@"
    host = owner[2:] if owner.startswith("*.") else owner
    return ".".join(host.rsplit(".", 2)[-2:])


@dataclass(frozen=True)
class ZoneSnapshot:
    """One generation of the served zone.

    Attributes:
        origin: the zone's name (absolute).
        serial: the SOA serial (the zone generation).
        soa: the SOA rrset at this serial.
        version: the list version it renders.
        count: how many records besides the SOA.
        read: every other record, ``owner TYPE rdata`` relative to the
            origin, sorted (a ZONEMD record included when enabled), read
            from the journal's store (its newest generation).
    """

    origin: dns.name.Name
    serial: int
    soa: dns.rrset.RRset
    version: int
    count: int
    read: Callable[[], Iterator[str]] = field(compare=False, repr=False)

    @property
    def records(self) -> tuple[str, ...]:
        """Every record but the SOA, sorted (O(zone): transfers stream :attr:`read`)."""
        return tuple(self.read())

    @staticmethod
    def soa_rrset(
        origin: dns.name.Name, mname: str, rname: str, serial: int, timers: Iterable[int]
    ) -> dns.rrset.RRset:
        """The zone's SOA RRset at ``serial`` (TTL: the export's record TTL)."""
        refresh, retry, expire, minimum = timers
        rdata = dns.rdata.from_text(
            dns.rdataclass.IN,
            dns.rdatatype.SOA,
            f"{mname} {rname} {serial} {refresh} {retry} {expire} {minimum}",
        )
        return dns.rrset.from_rdata(origin, RPZ_TTL, rdata)


def zonemd_record(origin: dns.name.Name, soa: dns.rrset.RRset, records: Sequence[str]) -> str:
    """RFC 8976 ZONEMD (scheme 1 SIMPLE, hash 2 SHA-384) over the zone, as a record line.

    Computed by dnspython (:meth:`dns.zone.Zone.compute_digest`) over the SOA
    and ``records``; the ZONEMD record itself is excluded as section 3.3.1
    requires (it is not in ``records`` yet).
    """
    zone = dns.zone.Zone(origin, relativize=False)
    with zone.writer() as txn:
        txn.add(soa)
        for line in records:
            owner, rdtype, rdata = line.split(" ", 2)
            rd = dns.rdata.from_text(dns.rdataclass.IN, rdtype, rdata, origin=origin)
            txn.add(dns.name.from_text(owner, origin), RPZ_TTL, rd)
    digest = zone.compute_digest(dns.zonetypes.DigestHashAlgorithm.SHA384)
    return f"@ ZONEMD {digest.to_text()}"
