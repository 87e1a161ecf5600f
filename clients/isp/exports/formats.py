"""The export formats, their limits and options, errors, input and result.

What every part of :mod:`clients.isp.exports` shares: the format names,
file suffixes and modes, the DNS and RPZ constants, the ``blockpage`` and
``ede`` option checks, the typed errors, and :class:`ExportInput` /
:class:`ExportResult`. No rendering and no I/O.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Final, Literal, get_args

from blocklist.canonical import (
    LOOKUP_HOST_LABELS,
    LOOKUP_PREFIX_DEPTH,
)
from clients.common.files import EXPORT_MODE, PLAINTEXT_MODE
from clients.errors import ClientError

__all__ = [
    "BLOCKPAGE_FORMATS",
    "DEFAULT_MODES",
    "DEFAULT_RPZ_ZONE",
    "EDE_BLOCKED",
    "EDE_CENSORED",
    "EDE_FILTERED",
    "EDE_KEYWORDS",
    "EDE_UNSUPPORTED",
    "FILE_SUFFIXES",
    "FORMATS",
    "HASH_SIZE",
    "INCREMENTAL_FORMATS",
    "MAX_BLOCKPAGE_ADDRESSES",
    "MAX_LABEL_OCTETS",
    "MAX_NAME_TEXT",
    "MAX_PREFIX_DEPTH",
    "MAX_SUFFIX_LABELS",
    "RPZ_EXPIRE",
    "RPZ_NEGATIVE_TTL",
    "RPZ_POLICY_SUFFIX",
    "RPZ_REFRESH",
    "RPZ_RETRY",
    "RPZ_TTL",
    "SCOPES",
    "SCOPE_OTHER",
    "SERIAL_MODULUS",
    "ExportError",
    "ExportFormat",
    "ExportInput",
    "ExportResult",
    "ExportWriteError",
    "MissingPlaintext",
    "UnknownFormat",
    "check_blockpage",
    "check_ede",
]

ExportFormat = Literal["hashes", "urls", "squid", "rpz", "unbound", "dnsmasq", "hosts"]


#: Every export format, in documentation order.
FORMATS: Final[tuple[ExportFormat, ...]] = get_args(ExportFormat)


_FORMAT_BY_NAME: Final[Mapping[str, ExportFormat]] = {f: f for f in FORMATS}


#: Scopes of :attr:`ExportResult.left_out`: the entry scopes of DESIGN.md
#: ("Entries"), plus entries that are not canonical expressions at all.
SCOPE_OTHER: Final = "other"


SCOPES: Final = ("page", "prefix", "host", SCOPE_OTHER)


#: Default RPZ zone name: ``.invalid`` (RFC 6761) can never clash with a
#: real zone. The resolver's ``response-policy`` statement names the zone.
DEFAULT_RPZ_ZONE: Final = "rpz.cleanfeed.invalid."


#: Size of an entry hash (SHA-256).
HASH_SIZE: Final = 32


#: RFC 1035 section 2.3.4: labels are at most 63 octets, names 255 on the
#: wire (the text form without the final dot is then at most 253 characters).
MAX_LABEL_OCTETS: Final = 63


MAX_NAME_TEXT: Final = 253


#: DESIGN.md, "Entries": lookups build host suffixes from the last five
#: labels, so only a host of at most five labels is matched for subdomains.
MAX_SUFFIX_LABELS: Final = LOOKUP_HOST_LABELS


#: DESIGN.md, "Entries": lookups try ``/`` and the first three directory
#: prefixes, so a deeper prefix entry matches only its exact path.
MAX_PREFIX_DEPTH: Final = LOOKUP_PREFIX_DEPTH


#: RPZ record TTL (seconds): how long resolvers may cache a rewritten answer.
#: Short, so a removed (wrongly listed) entry stops blocking quickly.
RPZ_TTL: Final = 300


#: SOA timers for secondaries fed by zone transfer. EXPIRE is long (4 weeks,
#: RFC 1912 section 2.2): a secondary that expires the zone stops filtering.
RPZ_REFRESH: Final = 3600


RPZ_RETRY: Final = 600


RPZ_EXPIRE: Final = 2_419_200


RPZ_NEGATIVE_TTL: Final = 300


#: SOA serials are 32-bit (RFC 1035 3.3.13); versions wrap into them.
SERIAL_MODULUS: Final = 2**32


#: Suffix of each file a format writes, appended to the output path.
FILE_SUFFIXES: Final[Mapping[ExportFormat, tuple[str, ...]]] = {
    "hashes": ("",),
    "urls": ("",),
    "squid": (".dstdomain", ".url_regex"),
    "rpz": ("",),
    "unbound": ("",),
    "dnsmasq": ("",),
    "hosts": ("",),
}


#: Default mode of each format's files: ``urls`` is a plain list of the
#: blocked URLs, for the owner only; the others must be readable by the
#: filter daemon, which usually runs as another user.
DEFAULT_MODES: Final[Mapping[ExportFormat, int]] = {
    "hashes": EXPORT_MODE,
    "urls": PLAINTEXT_MODE,
    "squid": EXPORT_MODE,
    "rpz": EXPORT_MODE,
    "unbound": EXPORT_MODE,
    "dnsmasq": EXPORT_MODE,
    "hosts": EXPORT_MODE,
}


#: Formats that can be written incrementally (``incremental = true``, issue 19
#: item 4): ``hashes`` as a base file plus a change log
#: (:mod:`~clients.isp.exports.hashlog`), the others as a directory of shards
#: (:mod:`~clients.isp.exports.sharded`). ``rpz`` (dns-serve's IXFR journal is
#: its incremental path), ``squid`` (the external ACL helper reads the state
#: itself) and ``urls`` are rewritten whole.
INCREMENTAL_FORMATS: Final[tuple[ExportFormat, ...]] = ("hashes", "unbound", "dnsmasq", "hosts")


#: Formats that can send blocked hosts to the block page (the DNS formats).
BLOCKPAGE_FORMATS: Final[tuple[ExportFormat, ...]] = ("rpz", "unbound", "dnsmasq", "hosts")


#: Most block page addresses one export may name: every blocked host gets one
#: record per address, so the list multiplies the file's size; one address
#: per family, with room for a second server each, is all a page needs.
MAX_BLOCKPAGE_ADDRESSES: Final = 4


#: RFC 8914 section 4.16 and 4.17: the codes an ISP's policy answer may carry.
EDE_BLOCKED: Final = 15


EDE_CENSORED: Final = 16


#: RFC 8914 section 4.18: "Filtered" means the client asked for the filter.
EDE_FILTERED: Final = 17


#: Each code allowed in ``ede``, by BIND's keyword for it.
EDE_KEYWORDS: Final[Mapping[int, str]] = {EDE_BLOCKED: "blocked", EDE_CENSORED: "censored"}


#: Suffix of the BIND ``response-policy`` statement an ``rpz`` export with
#: ``ede`` writes next to the zone.
RPZ_POLICY_SUFFIX: Final = ".named.conf"


#: Why each format cannot carry an Extended DNS Error code: refused there.
EDE_UNSUPPORTED: Final[Mapping[ExportFormat, str]] = {
    "hashes": "not a DNS format",
    "urls": "not a DNS format",
    "squid": "not a DNS format (Squid answers HTTP 451 itself)",
    "unbound": (
        "Unbound (1.17 in Debian 12, and later releases) attaches no "
        "configurable Extended DNS Error to local-zone answers, even with ede: yes"
    ),
    "dnsmasq": "dnsmasq (2.90 in Debian 12) attaches no Extended DNS Error to address= answers",
    "hosts": "a hosts file carries no DNS answer, so no Extended DNS Error",
}


class ExportError(ClientError, reason="export_error"):
    """An export cannot be produced; the previous export stays in place."""


class UnknownFormat(ExportError, ValueError, reason="export_format"):
    """The format is not one of :data:`FORMATS`."""


class MissingPlaintext(ExportError, reason="missing_plaintext"):
    """A plaintext format was asked for without the expression of every hash.

    DESIGN.md, "Plaintext": an entitled client must hold the expression of
    every verified hash before it writes a plaintext export; otherwise it
    keeps the previous export and alerts. The hash-only tier (no expressions
    at all) can produce only ``hashes``.

    Attributes:
        missing: how many verified hashes lack their expression.
        total: how many hashes are listed.
    """

    def __init__(self, fmt: str, *, missing: int, total: int) -> None:
        super().__init__(
            f"{fmt} export needs the expression of every listed hash: "
            f"{missing} of {total} missing; the previous export is kept"
        )
        self.missing = missing
        self.total = total


class ExportWriteError(ExportError, reason="export_write"):
    """Writing an export file failed (disk full, permissions...)."""


def check_blockpage(fmt: str, addresses: Sequence[str]) -> tuple[str, ...]:
    """Check the block page addresses of one export and normalise them.

    Args:
        fmt: the export's format (one of :data:`BLOCKPAGE_FORMATS`).
        addresses: IPv4 and/or IPv6 addresses of ``cleanfeed isp blockpage``.

    Returns:
        The addresses in their compressed text form, in the order given.

    Raises:
        UnknownFormat: ``fmt`` is not a format.
        ExportError: the format is not a DNS format, or an address is not a
            usable unicast address (unspecified, multicast, scoped, IPv4
            mapped), is repeated, or there are none or too many.
    """
    kind = _check_format(fmt)
    if kind not in BLOCKPAGE_FORMATS:
        raise ExportError(
            f"blockpage: {kind} exports cannot send hosts to a block page "
            f"(only {', '.join(BLOCKPAGE_FORMATS)})"
        )
    if not addresses:
        raise ExportError("blockpage: give at least one IPv4 or IPv6 address")
    if len(addresses) > MAX_BLOCKPAGE_ADDRESSES:
        raise ExportError(f"blockpage: at most {MAX_BLOCKPAGE_ADDRESSES} addresses")
    out: list[str] = []
    for value in addresses:
        shown = f"{value!r:.60}"
        if not isinstance(value, str) or "%" in value:
            # A scope ("fe80::1%eth0") means nothing to the clients of a resolver.
            raise ExportError(f"blockpage: {shown} is not an IP address without a scope")
        try:
            address = ipaddress.ip_address(value.strip())
        except ValueError:
            raise ExportError(f"blockpage: {shown} is not an IPv4 or IPv6 address") from None
        if address.is_unspecified or address.is_multicast:
            # 0.0.0.0 / :: is the null route of a plain sinkhole, not a page.
            raise ExportError(
                f"blockpage: {shown} is not a unicast address a browser can connect to"
            )
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            raise ExportError(f"blockpage: {shown} is IPv4-mapped; give the IPv4 address")
        text = address.compressed
        if text in out:
            raise ExportError(f"blockpage: {shown} is listed twice")
        out.append(text)
    return tuple(out)


def check_ede(fmt: str, code: object) -> int:
    """Check an export's Extended DNS Error code (RFC 8914).

    Args:
        fmt: the export's format.
        code: 15 (Blocked) or 16 (Censored), or BIND's keyword for one.

    Returns:
        The code.

    Raises:
        UnknownFormat: ``fmt`` is not a format.
        ExportError: the code is not 15 or 16 (17 Filtered is refused with
            why), or the format cannot carry a code (:data:`EDE_UNSUPPORTED`).
    """
    kind = _check_format(fmt)
    by_name = {name: number for number, name in EDE_KEYWORDS.items()}
    number = by_name.get(code.lower(), code) if isinstance(code, str) else code
    if number == EDE_FILTERED or (isinstance(code, str) and code.lower() == "filtered"):
        raise ExportError(
            "ede: 17 (Filtered) means the user asked for the filtering (RFC 8914 "
            "section 4.18); a list the ISP applies to every subscriber is 15 "
            "(Blocked) or 16 (Censored)"
        )
    if isinstance(number, bool) or not isinstance(number, int) or number not in EDE_KEYWORDS:
        raise ExportError(
            f"ede: expected 15 (Blocked) or 16 (Censored), got {code!r:.40} (RFC 8914 section 4)"
        )
    if kind in EDE_UNSUPPORTED:
        raise ExportError(f"ede: not supported by the {kind} export: {EDE_UNSUPPORTED[kind]}")
    return number


@dataclass(frozen=True)
class ExportInput:
    """What an export is made from: the verified list at one version.

    Attributes:
        version: the list version the hashes are at.
        hashes: the verified listed hashes (32 raw bytes each).
        expressions: plaintext tier: hash -> expression, for every hash;
            None for the hash-only tier.
        list_name: the list's short name (for headers).
        origin: the list origin (for headers).
        generated: when the export was made. Deliberately not written into
            any file, so an unchanged list exports byte-identical files.
    """

    version: int
    hashes: Collection[bytes]
    expressions: Mapping[bytes, str] | None
    list_name: str
    origin: str
    generated: datetime


@dataclass(frozen=True)
class ExportResult:
    """A rendered (and possibly written) export.

    Attributes:
        files: file suffix -> content; the suffix is appended to the output
            path (``""`` for single-file formats, see :data:`FILE_SUFFIXES`).
        enforced: entries the export enforces (entries covered by another
            entry count as enforced; for ``hosts``, host entries count
            although their subdomains are not covered, see ``notes``).
        not_enforceable: entries this format cannot express.
            ``enforced + not_enforceable`` is the number of listed entries.
        notes: human-readable explanations of what was left out and why.
        written: after :func:`write_export`: each path -> whether it was
            rewritten (False: the content was already in place).
        left_out: ``not_enforceable`` split by the entries' scope
            (:data:`SCOPES`): what an operator must enforce elsewhere, for
            instance page and prefix entries a DNS filter never sees.
        partial: entries written but enforced only in part: host entries of
            a ``hosts`` file, which blocks the exact host and none of the
            subdomains the lookups would match.
    """

    files: dict[str, bytes]
    enforced: int
    not_enforceable: int
    notes: list[str]
    written: dict[Path, bool] = field(default_factory=dict)
    left_out: dict[str, int] = field(default_factory=dict)
    partial: int = 0

    @property
    def changed(self) -> bool:
        """Whether :func:`write_export` rewrote any file (run the reload hook)."""
        return any(self.written.values())


def _check_format(fmt: str) -> ExportFormat:
    try:
        return _FORMAT_BY_NAME[fmt]
    except KeyError:
        raise UnknownFormat(
            f"unknown export format {fmt!r:.40}; expected one of {', '.join(FORMATS)}"
        ) from None
