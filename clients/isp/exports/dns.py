"""The DNS exports: an RPZ zone, and Unbound, dnsmasq and hosts files.

See :mod:`clients.isp.exports` for what each format enforces: whole-host
entries only, answered NXDOMAIN or with the block page's addresses.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Final

from clients.isp.exports.entries import (
    _check_hashes,
    _Counter,
    _covers_subdomains,
    _dns_hosts,
    _header,
    _parse_entries,
    _prune_covered,
    _valid_dns_name,
)
from clients.isp.exports.formats import (
    EDE_KEYWORDS,
    MAX_NAME_TEXT,
    MAX_SUFFIX_LABELS,
    RPZ_EXPIRE,
    RPZ_NEGATIVE_TTL,
    RPZ_POLICY_SUFFIX,
    RPZ_REFRESH,
    RPZ_RETRY,
    RPZ_TTL,
    SERIAL_MODULUS,
    ExportError,
    ExportFormat,
    ExportInput,
    ExportResult,
)

__all__: list[str] = []


def _normalise_zone(zone: str) -> str:
    name = zone.lower().rstrip(".")
    if not name or not _valid_dns_name(name):
        raise ExportError(f"RPZ zone name is not a valid DNS name: {zone!r}")
    return name


def _address_type(address: str) -> str:
    return "AAAA" if ":" in address else "A"


def _render_rpz(
    data: ExportInput, *, rpz_zone: str, blockpage: tuple[str, ...] = (), ede: int | None = None
) -> ExportResult:
    zone = _normalise_zone(rpz_zone)
    hashes = _check_hashes(data.hashes)
    counter = _Counter()
    entries = _parse_entries("rpz", data, hashes, counter)
    # Owner names are relative to the zone: "*.host.<zone>" must fit in 255
    # octets on the wire.
    hosts = _dns_hosts(entries, counter, max_text=MAX_NAME_TEXT - len(zone) - 3)
    hosts, covered = _prune_covered(hosts)
    counter.enforced += covered + len(hosts)
    notes = counter.notes()
    serial = data.version % SERIAL_MODULUS
    if serial != data.version:
        notes.append(
            f"SOA serial is the version modulo 2^32 ({data.version} -> {serial}); "
            "RFC 1982 serial arithmetic keeps secondaries updating across the wrap"
        )
    lines = [
        _header(data, ";"),
        f"; zone {zone}.\n",
        f"$TTL {RPZ_TTL}\n",
        f"@ IN SOA localhost. hostmaster.localhost. "
        f"{serial} {RPZ_REFRESH} {RPZ_RETRY} {RPZ_EXPIRE} {RPZ_NEGATIVE_TTL}\n",
        "@ IN NS localhost.\n",
    ]
    # CNAME to the root = NXDOMAIN policy (draft-vixie-dnsop-dns-rpz 3.1);
    # address records = Local Data policy (3.6): the resolver answers them
    # for A/AAAA queries and NODATA for other types.
    policy = [f"{_address_type(a)} {a}" for a in blockpage] or ["CNAME ."]
    for e in sorted(hosts, key=lambda e: e.host):
        owners = [e.host, f"*.{e.host}"] if _covers_subdomains(e) else [e.host]
        lines += [f"{owner} {rdata}\n" for owner in owners for rdata in policy]
    files = {"": "".join(lines).encode("ascii")}
    if ede is not None:
        # The code is a resolver setting (BIND 9.20+), not zone data.
        files[RPZ_POLICY_SUFFIX] = (
            _header(data, "#")
            + "# BIND 9.20 or later: include inside options { } (or a view); BIND 9.18\n"
            + "# refuses the ede keyword. Already have a response-policy statement?\n"
            + "# Add the ede clause to its zone there instead.\n"
            + f'response-policy {{ zone "{zone}" ede {EDE_KEYWORDS[ede]}; }};\n'
        ).encode("ascii")
        notes.append(
            f"ede {ede}: include {RPZ_POLICY_SUFFIX} in named.conf options (BIND 9.20 "
            "or later); BIND 9.18 has no RPZ Extended DNS Errors"
        )
    return counter.result(files, notes)


def _render_dns_list(
    fmt: ExportFormat, data: ExportInput, line: Callable[[str], str], comment: str, preamble: str
) -> ExportResult:
    hashes = _check_hashes(data.hashes)
    counter = _Counter()
    entries = _parse_entries(fmt, data, hashes, counter)
    hosts = _dns_hosts(entries, counter)
    notes: list[str] = []
    partial = 0
    if fmt == "hosts":
        # No subdomain semantics: every host is written as itself.
        counter.enforced += len(hosts)
        partial = sum(1 for e in hosts if _covers_subdomains(e))
        if partial:
            notes.append(
                f"{partial} host entries block their exact host only: "
                "a hosts file cannot name subdomains"
            )
    else:
        hosts, covered = _prune_covered(hosts)
        counter.enforced += covered + len(hosts)
        deep = sum(1 for e in hosts if e.labels > MAX_SUFFIX_LABELS)
        if deep:
            notes.append(
                f"{deep} host entries have more than {MAX_SUFFIX_LABELS} labels: "
                f"{fmt} also blocks their subdomains, which lookups do not"
            )
    names = sorted(e.host for e in hosts)
    body = _header(data, comment) + preamble + "".join(line(name) for name in names)
    return counter.result({"": body.encode("ascii")}, counter.notes() + notes, partial=partial)


_PREAMBLES: Final[Mapping[ExportFormat, str]] = {
    "unbound": "server:\n",
    "dnsmasq": "",
    "hosts": "",
}


def _line_writer(kind: ExportFormat, addresses: tuple[str, ...]) -> Callable[[str], str]:
    """The lines of one blocked host in the ``unbound``, ``dnsmasq`` or ``hosts`` file."""
    if kind == "unbound":
        if not addresses:
            return lambda h: f'local-zone: "{h}." always_nxdomain\n'
        # unbound.conf(5): a redirect zone answers its local-data for the
        # zone name and every name below it; other types get NODATA.
        return lambda h: (
            f'local-zone: "{h}." redirect\n'
            + "".join(f'local-data: "{h}. {_address_type(a)} {a}"\n' for a in addresses)
        )
    if kind == "dnsmasq":
        if not addresses:
            return lambda h: f"address=/{h}/\n"
        # dnsmasq(8) --address: since 2.86 a type without an address line is
        # forwarded upstream, which would resolve the blocked host's real
        # address; --local answers it NODATA instead.
        return lambda h: "".join(f"address=/{h}/{a}\n" for a in addresses) + f"local=/{h}/\n"
    if not addresses:
        return lambda h: f"0.0.0.0 {h}\n"
    return lambda h: "".join(f"{a} {h}\n" for a in addresses)
