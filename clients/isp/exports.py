"""Render the verified list into the files ISPs' filters read, and write them.

Formats (:data:`FORMATS`), what each enforces, and its limits:

``hashes``
    One lower-case hex SHA-256 per line, sorted: every entry. The only format
    the hash-only tier can produce; :mod:`clients.isp.lookup` (and so the
    Squid external ACL helper) reads it.
``urls``
    The expressions, one per line, sorted (plaintext tier). Written 0600.
``squid``
    Two files, ``<output>.dstdomain`` and ``<output>.url_regex``, for::

        acl cleanfeed_hosts dstdomain "/etc/squid/cleanfeed.dstdomain"
        acl cleanfeed_urls url_regex "/etc/squid/cleanfeed.url_regex"
        http_access deny cleanfeed_hosts
        http_access deny cleanfeed_urls

    Whole-host entries go to ``dstdomain`` as ``.host`` (the host and all its
    subdomains, as the Safe Browsing host-suffix lookups do), IP hosts as
    they are. Squid warns about (``.a.example`` with ``.b.a.example``) or
    refuses (with ``a.example``) a name under another entry, so names
    covered by another entry are left out (they stay blocked). Page and
    prefix entries go to ``url_regex`` as anchored POSIX extended regexes
    over the URL as Squid's ``url_regex`` sees it: the absolute URI
    ``scheme://host[:port]/path?query`` with the host in lower case, a port
    only when not the default, and the whole URL percent-decoded once
    (Squid ``Acl::UrlCheck::match``). A prefix entry matches every URL
    under its directory; a page entry matches its exact
    path and query (with no query in the entry, any query, as the lookup
    "path without query" does). The regexes are case-sensitive, as lookups
    are on the path, and need no ``-i``: Squid lower-cases the host before
    matching and canonical hosts are lower case. Only ERE metacharacters
    are backslash-escaped (POSIX leaves other escapes undefined); a decoded
    space is written ``[[:blank:]]`` and other control bytes
    ``[[:cntrl:]]``, so no line holds whitespace (a tab in place of a space
    also matches: the one approximation). Limits: the regexes see the raw
    request, not the canonical URL, so spellings that canonicalise to a listed
    expression but differ on the wire (``..`` segments, ``//``, doubly
    escaped bytes) are missed; bytes Squid cannot present (NUL) make an
    entry not enforceable here. The external ACL helper
    (:mod:`clients.isp.squid_helper`) applies the exact ``check`` semantics
    and has none of these limits; HTTPS without TLS interception shows Squid
    only ``host:port``, so only whole-host entries block there.
``rpz``
    A complete DNS RPZ zone (draft-vixie-dnsop-dns-rpz): ``$TTL``, an SOA
    whose serial is the list version (mod 2^32, RFC 1982 arithmetic), an NS
    record, and ``host CNAME .`` plus ``*.host CNAME .`` (NXDOMAIN for the
    host and its subdomains) per whole-host entry, relative to the zone
    origin, so the file loads under whatever zone name the resolver uses
    (``rpz_zone`` is only needed to check name lengths). IP-address hosts
    are not written as ``rpz-ip`` triggers: those fire on the *answer*
    addresses of any name, so they would block every site sharing the
    address, while a URL with an IP literal never reaches the resolver.
``unbound``
    An include file: ``server:`` then ``local-zone: "host." always_nxdomain``
    per whole-host entry (NXDOMAIN for the host and below). Because it opens
    its own ``server:`` clause it may be included anywhere in unbound.conf.
``dnsmasq``
    ``address=/host/`` per whole-host entry: with no address, dnsmasq answers
    NXDOMAIN for the domain and all its subdomains (dnsmasq(8), --address).
``hosts``
    ``0.0.0.0 host`` per whole-host entry. A hosts file cannot name
    subdomains: only the exact host is blocked.

Block page (issue 18 item 3): given ``blockpage`` addresses (the
``cleanfeed isp blockpage`` server's IPv4 and/or IPv6 addresses), the four
DNS formats answer a blocked host, and the names below it that they cover,
with those addresses instead of NXDOMAIN, so a browser asks the block page
and shows its HTTP 451 page: ``rpz`` writes RPZ local data (``host A addr``,
draft-vixie-dnsop-dns-rpz section 3.6), ``unbound`` a ``redirect`` local
zone with ``local-data``, ``dnsmasq`` ``address=/host/addr`` lines plus
``local=/host/`` (so other query types, and AAAA without an IPv6 address,
get NODATA instead of being forwarded upstream: dnsmasq 2.86 and later
forward them otherwise) and ``hosts`` one line per address. Only host
entries are sent there: the block page matches nothing else (an oracle,
see docs/isp.md "Clayton's cautions").

Extended DNS Errors (RFC 8914): the ``ede`` option (15 Blocked or 16
Censored; 17 Filtered is refused, it means the user asked for the
filtering, section 4.18) is a resolver setting, not zone data. Only BIND
9.20 and later have it (``response-policy { zone "..." ede blocked; }``);
for an ``rpz`` export with ``ede`` the client writes that statement to
``<output>.named.conf`` for the operator to include in ``options``. BIND
9.18 (Debian 12) refuses the ``ede`` keyword, Unbound (1.17 and later) and
dnsmasq (2.90) attach no configurable EDE to local-zone or ``address=``
answers, and a hosts file has no DNS answer at all: ``ede`` is refused for
those formats by :func:`check_ede`.

DNS formats can enforce whole-host entries only: page and prefix entries,
IP-address hosts (an IP literal never reaches a resolver), single-label hosts
(which would black-hole a top-level domain) and names that are not valid DNS
names (labels of ``a-z 0-9 - _`` of 1 to 63 octets, at most 255 octets on the
wire) are counted in :attr:`ExportResult.not_enforceable` and explained in
:attr:`ExportResult.notes`, never written: one odd entry must never make a
zone file fail to load, which would drop the ISP's whole filter.

Lookups only try host suffixes built from the last five labels
(DESIGN.md, "Entries"), so a host entry with more than five labels blocks its
exact host only: the RPZ and ``dstdomain`` outputs write it without the
subdomain wildcard; Unbound and dnsmasq cannot express "this name but not
below", and block its subdomains too (noted).

Files carry a comment header with the list origin and version but no
timestamp, so an export of an unchanged list is byte-identical and
:func:`write_export` leaves it alone (the caller's reload hook need not run).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import ClassVar, Final, Literal, get_args
from urllib.parse import unquote_to_bytes

from blocklist.canonical import (
    LOOKUP_HOST_LABELS,
    LOOKUP_PREFIX_DEPTH,
    expression_hash,
    is_ip_host,
    split_expression,
)
from blocklist.errors import BlocklistError
from clients.errors import ClientError, PlaintextMismatch
from clients.isp.atomic import EXPORT_MODE, PLAINTEXT_MODE, write_if_changed

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

_DNS_LABEL_RE = re.compile(rf"[a-z0-9_-]{{1,{MAX_LABEL_OCTETS}}}")
# Characters of a comment header; anything else in an origin is replaced.
_HEADER_SAFE_RE = re.compile(r"[^\x21-\x7e ]")
# POSIX ERE (regcomp REG_EXTENDED) metacharacters outside a bracket
# expression. Only these are backslash-escaped: a backslash before any other
# character is undefined in POSIX and means something else in GNU regex
# (\w, \<, \`...).
_ERE_SPECIAL = frozenset(b".[()*+?{|^$\\")
# Squid presents the scheme in lower case and userinfo only for ftp.
_SQUID_URL_HEAD = "^(https?|ftp)://([^/@]*@)?"
_SQUID_PORT = "(:[0-9]+)?"
# Any run of subdomain labels in front of a listed host.
_SQUID_SUBDOMAINS = "([^/@:]*\\.)?"


# --- errors ------------------------------------------------------------------


class ExportError(ClientError):
    """An export cannot be produced; the previous export stays in place."""

    reason: ClassVar[str] = "export_error"


class UnknownFormat(ExportError, ValueError):
    """The format is not one of :data:`FORMATS`."""

    reason: ClassVar[str] = "export_format"


class MissingPlaintext(ExportError):
    """A plaintext format was asked for without the expression of every hash.

    DESIGN.md, "Plaintext": an entitled client must hold the expression of
    every verified hash before it writes a plaintext export; otherwise it
    keeps the previous export and alerts. The hash-only tier (no expressions
    at all) can produce only ``hashes``.

    Attributes:
        missing: how many verified hashes lack their expression.
        total: how many hashes are listed.
    """

    reason: ClassVar[str] = "missing_plaintext"

    def __init__(self, fmt: str, *, missing: int, total: int) -> None:
        super().__init__(
            f"{fmt} export needs the expression of every listed hash: "
            f"{missing} of {total} missing; the previous export is kept"
        )
        self.missing = missing
        self.total = total


class ExportWriteError(ExportError):
    """Writing an export file failed (disk full, permissions...)."""

    reason: ClassVar[str] = "export_write"


# --- options -------------------------------------------------------------------


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


# --- data ----------------------------------------------------------------------


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


@dataclass(frozen=True, slots=True)
class _Entry:
    expression: str
    host: str
    path: str  # "/path?query"
    scope: Literal["host", "prefix", "page"]
    ip: bool
    labels: int


class _Counter:
    """Counts entries left out, by reason and by scope, and turns them into notes."""

    def __init__(self) -> None:
        self.enforced = 0
        self.skipped: dict[str, int] = {}
        self.by_scope: dict[str, int] = {}

    def skip(self, reason: str, scope: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1
        self.by_scope[scope] = self.by_scope.get(scope, 0) + 1

    def result(
        self, files: dict[str, bytes], notes: list[str] | None = None, *, partial: int = 0
    ) -> ExportResult:
        """The export result with this counter's counts."""
        return ExportResult(
            files,
            self.enforced,
            self.not_enforceable,
            self.notes() if notes is None else notes,
            left_out={scope: n for scope, n in self.by_scope.items() if n},
            partial=partial,
        )

    @property
    def not_enforceable(self) -> int:
        return sum(self.skipped.values())

    def notes(self) -> list[str]:
        return [f"{n} {reason}" for reason, n in sorted(self.skipped.items())]


# --- helpers -------------------------------------------------------------------


def _check_hashes(hashes: Collection[bytes]) -> list[bytes]:
    unique = set(hashes)
    for h in unique:
        if type(h) is not bytes or len(h) != HASH_SIZE:
            raise ExportError(f"listed hashes must be {HASH_SIZE} raw bytes")
    return sorted(unique)


def _expressions_for(fmt: str, data: ExportInput, hashes: list[bytes]) -> list[str]:
    """Every hash's expression, checked against its hash.

    Raises:
        MissingPlaintext: hash-only tier, or some hash lacks its expression.
        PlaintextMismatch: an expression does not hash to its key.
    """
    mapping = data.expressions
    if mapping is None:
        raise MissingPlaintext(fmt, missing=len(hashes), total=len(hashes))
    missing = sum(1 for h in hashes if h not in mapping)
    if missing:
        raise MissingPlaintext(fmt, missing=missing, total=len(hashes))
    out: list[str] = []
    for h in hashes:
        expr = mapping[h]
        # Defence in depth: the store only accepts expressions whose SHA-256
        # is in the verified set; an export never writes one that is not.
        if expression_hash(expr) != h:
            raise PlaintextMismatch(f"expression stored for {h.hex()} does not hash to it")
        out.append(expr)
    return out


def _parse_entry(expr: str) -> _Entry | None:
    """Split an expression and classify its scope as the lookups see it."""
    if not expr or any(not 0x21 <= ord(c) <= 0x7E for c in expr):
        return None  # not canonical: canonical expressions are printable ASCII
    try:
        host, path = split_expression(expr)
    except (BlocklistError, ValueError):
        return None
    if not host or path.endswith("?"):
        # Lookups try a query only when it is non-empty: "p?" is never tried.
        return None
    scope: Literal["host", "prefix", "page"]
    if path == "/":
        scope = "host"
    elif "?" not in path and path.endswith("/") and path.count("/") - 1 <= MAX_PREFIX_DEPTH:
        scope = "prefix"
    else:
        # A page, or a prefix deeper than the lookups reach: exact path only.
        scope = "page"
    ip = is_ip_host(host)
    return _Entry(expr, host, path, scope, ip, 1 if ip else host.count(".") + 1)


def _parse_entries(
    fmt: str, data: ExportInput, hashes: list[bytes], counter: _Counter
) -> list[_Entry]:
    entries: list[_Entry] = []
    for expr in _expressions_for(fmt, data, hashes):
        entry = _parse_entry(expr)
        if entry is None:
            counter.skip("entries are not canonical expressions and were left out", SCOPE_OTHER)
        else:
            entries.append(entry)
    return entries


def _covers_subdomains(entry: _Entry) -> bool:
    """Whether lookups match this entry's host on subdomains too."""
    return not entry.ip and 2 <= entry.labels <= MAX_SUFFIX_LABELS


def _valid_dns_name(host: str) -> bool:
    if len(host) > MAX_NAME_TEXT:
        return False
    return all(_DNS_LABEL_RE.fullmatch(label) for label in host.split("."))


def _covered(name: str, wildcards: set[str]) -> bool:
    """Whether a proper parent domain of ``name`` is in ``wildcards``."""
    rest = name
    while "." in rest:
        rest = rest.split(".", 1)[1]
        if rest in wildcards:
            return True
    return False


def _header(data: ExportInput, comment: str) -> str:
    origin = _HEADER_SAFE_RE.sub("?", data.origin)
    name = _HEADER_SAFE_RE.sub("?", data.list_name)
    return (
        f"{comment} cleanfeed list {name} ({origin}), version {data.version}\n"
        f"{comment} generated by cleanfeed; do not edit: rewritten on every update\n"
    )


def _dns_hosts(
    entries: Iterable[_Entry], counter: _Counter, *, max_text: int = MAX_NAME_TEXT
) -> list[_Entry]:
    """The whole-host entries a DNS format can carry; count the others."""
    out: list[_Entry] = []
    for e in entries:
        if e.scope != "host":
            counter.skip(
                "page/prefix entries cannot be enforced by DNS "
                "(use the squid export or the external ACL helper)",
                e.scope,
            )
        elif e.ip:
            counter.skip("IP-address hosts cannot be enforced by DNS (no name is resolved)", "host")
        elif e.labels < 2:
            counter.skip("single-label hosts were left out (they would block a whole TLD)", "host")
        elif len(e.host) > max_text or not _valid_dns_name(e.host):
            counter.skip("hosts are not valid DNS names (or too long) and were left out", "host")
        else:
            out.append(e)
    return out


def _prune_covered(entries: list[_Entry]) -> tuple[list[_Entry], int]:
    """Drop entries whose name lies under another subdomain-covering entry."""
    wildcards = {e.host for e in entries if _covers_subdomains(e)}
    kept = [e for e in entries if e.ip or not _covered(e.host, wildcards)]
    return kept, len(entries) - len(kept)


# --- renderers -----------------------------------------------------------------


def _render_hashes(data: ExportInput) -> ExportResult:
    hashes = _check_hashes(data.hashes)
    body = "".join(h.hex() + "\n" for h in hashes).encode("ascii")
    return ExportResult({"": body}, len(hashes), 0, [])


def _render_urls(data: ExportInput) -> ExportResult:
    hashes = _check_hashes(data.hashes)
    counter = _Counter()
    lines: list[str] = []
    for expr in _expressions_for("urls", data, hashes):
        if expr and all(0x21 <= ord(c) <= 0x7E for c in expr):
            lines.append(expr)
            counter.enforced += 1
        else:
            # A line break inside an expression would split it in two.
            counter.skip(
                "expressions contain whitespace or non-ASCII and were left out", SCOPE_OTHER
            )
    body = "".join(f"{line}\n" for line in sorted(lines)).encode("ascii")
    return counter.result({"": body})


def _ere_path(path: str) -> bytes | None:
    """POSIX ERE matching ``path`` as Squid presents it (percent-decoded once).

    Canonical expressions percent-escape exactly the bytes that need it
    (<= 0x20, >= 0x7F, ``#``, ``%``); Squid decodes the request URL once
    before matching, so the regex holds the decoded bytes.
    """
    out = bytearray()
    for b in unquote_to_bytes(path):
        if b == 0x00:
            return None  # Squid matches a C string: NUL ends the URL
        if b == 0x20:
            # A literal space could be taken as a token separator when the
            # ACL file is read; [[:blank:]] also admits a tab there.
            out += b"[[:blank:]]"
        elif b < 0x20 or b == 0x7F:
            out += b"[[:cntrl:]]"
        elif b in _ERE_SPECIAL:
            out += b"\\" + bytes((b,))
        else:
            # >= 0x80 too: Squid runs in the C locale, where regcomp compares
            # bytes (it never calls setlocale).
            out.append(b)
    return bytes(out)


def _ere_host(entry: _Entry) -> bytes:
    escaped = bytearray()
    for b in entry.host.encode("ascii"):
        if b in _ERE_SPECIAL:
            escaped += b"\\"
        escaped.append(b)
    prefix = _SQUID_SUBDOMAINS.encode("ascii") if _covers_subdomains(entry) else b""
    return prefix + bytes(escaped)


def squid_url_regex(entry_expression: str) -> bytes | None:
    """The ``url_regex`` line for one page or prefix expression.

    Args:
        entry_expression: a canonical page or prefix expression.

    Returns:
        The regex (without newline), or None when Squid cannot enforce the
        entry with a regex (not canonical, a whole-host entry, an invalid
        host, a NUL byte in the path).
    """
    entry = _parse_entry(entry_expression)
    if entry is None or entry.scope == "host" or not _squid_host_ok(entry):
        return None
    return _regex_for(entry)


def _squid_host_ok(entry: _Entry) -> bool:
    return entry.ip or _valid_dns_name(entry.host)


def _regex_for(entry: _Entry) -> bytes | None:
    path, sep, query = entry.path.partition("?")
    ere_path = _ere_path(path)
    if ere_path is None:
        return None
    head = _SQUID_URL_HEAD.encode("ascii") + _ere_host(entry) + _SQUID_PORT.encode("ascii")
    if entry.scope == "prefix":
        return head + ere_path
    if sep:
        ere_query = _ere_path(query)
        if ere_query is None:
            return None
        return head + ere_path + b"\\?" + ere_query + b"$"
    # Lookups also try the path without its query: any query matches.
    return head + ere_path + b"(\\?.*)?$"


def _render_squid(data: ExportInput) -> ExportResult:
    hashes = _check_hashes(data.hashes)
    counter = _Counter()
    entries = _parse_entries("squid", data, hashes, counter)
    hosts: list[_Entry] = []
    pages: list[_Entry] = []
    for e in entries:
        if not _squid_host_ok(e):
            counter.skip("entries have a host Squid cannot match and were left out", e.scope)
        elif e.scope == "host":
            hosts.append(e)
        else:
            pages.append(e)
    hosts, covered = _prune_covered(hosts)
    counter.enforced += covered
    wildcards = {e.host for e in hosts if _covers_subdomains(e)}
    domains: list[str] = []
    for e in hosts:
        domains.append(f".{e.host}" if _covers_subdomains(e) else e.host)
        counter.enforced += 1
    regexes: set[bytes] = set()
    for e in pages:
        if not e.ip and (e.host in wildcards or _covered(e.host, wildcards)):
            counter.enforced += 1  # the dstdomain entry already blocks it
            continue
        regex = _regex_for(e)
        if regex is None:
            counter.skip("page/prefix entries hold a NUL byte Squid cannot match", e.scope)
            continue
        regexes.add(regex)
        counter.enforced += 1
    header = _header(data, "#").encode("ascii")
    dstdomain = header + "".join(f"{d}\n" for d in sorted(domains)).encode("ascii")
    url_regex = header + b"".join(r + b"\n" for r in sorted(regexes))
    return counter.result({".dstdomain": dstdomain, ".url_regex": url_regex})


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


def render(
    fmt: str,
    data: ExportInput,
    *,
    rpz_zone: str = DEFAULT_RPZ_ZONE,
    blockpage: Sequence[str] = (),
    ede: int | None = None,
) -> ExportResult:
    """Render one export in memory.

    Args:
        fmt: one of :data:`FORMATS`.
        data: the verified list.
        rpz_zone: the RPZ zone name the resolver loads the ``rpz`` file as
            (used to check that owner names fit in 255 octets).
        blockpage: DNS formats: answer blocked hosts with these addresses
            (the block page's) instead of NXDOMAIN; see
            :func:`check_blockpage`.
        ede: RFC 8914 code for the ``rpz`` export's ``response-policy``
            statement (written to ``<output>.named.conf``); see
            :func:`check_ede`.

    Returns:
        The files and the enforcement counts (``written`` empty).

    Raises:
        UnknownFormat: ``fmt`` is not a format.
        MissingPlaintext: a format other than ``hashes`` without the
            expression of every hash.
        PlaintextMismatch: an expression does not hash to its key.
        ExportError: a hash is not 32 bytes, ``rpz_zone`` is invalid, or
            ``blockpage`` or ``ede`` is refused for this format.
    """
    kind = _check_format(fmt)
    addresses = check_blockpage(kind, blockpage) if blockpage else ()
    code = None if ede is None else check_ede(kind, ede)
    if kind == "hashes":
        return _render_hashes(data)
    if kind == "urls":
        return _render_urls(data)
    if kind == "squid":
        return _render_squid(data)
    if kind == "rpz":
        return _render_rpz(data, rpz_zone=rpz_zone, blockpage=addresses, ede=code)
    return _render_dns_list(kind, data, _line_writer(kind, addresses), "#", _PREAMBLES[kind])


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


def _check_format(fmt: str) -> ExportFormat:
    try:
        return _FORMAT_BY_NAME[fmt]
    except KeyError:
        raise UnknownFormat(
            f"unknown export format {fmt!r:.40}; expected one of {', '.join(FORMATS)}"
        ) from None


def output_paths(fmt: str, output: Path) -> dict[str, Path]:
    """The files :func:`write_export` writes for ``fmt`` at ``output``.

    Raises:
        UnknownFormat: ``fmt`` is not a format.
    """
    output = Path(output)
    return {s: output.with_name(output.name + s) for s in FILE_SUFFIXES[_check_format(fmt)]}


def write_export(
    fmt: str,
    data: ExportInput,
    output: Path,
    *,
    mode: int | None = None,
    rpz_zone: str = DEFAULT_RPZ_ZONE,
    blockpage: Sequence[str] = (),
    ede: int | None = None,
) -> ExportResult:
    """Render an export and write its files atomically, skipping unchanged ones.

    Single-file formats write ``output`` itself. ``squid`` writes two files
    next to each other, ``<output>.dstdomain`` and ``<output>.url_regex``
    (``output`` is a base path, never a directory), so one config path
    prefix names both. Nothing is written when rendering fails, so the
    previous export stays in force. Each file is replaced atomically
    (:func:`clients.isp.atomic.write_if_changed`); a file whose content is
    already in place is not touched.

    Args:
        fmt: one of :data:`FORMATS`.
        data: the verified list.
        output: the file (or, for ``squid``, the base path) to write.
        mode: permission bits of the files; default :data:`DEFAULT_MODES`.
        rpz_zone: see :func:`render`.
        blockpage: see :func:`render`.
        ede: see :func:`render`; an ``rpz`` export with a code also writes
            ``<output>.named.conf``.

    Returns:
        The rendered export, with ``written`` telling which files changed:
        run the filter's reload hook only when :attr:`ExportResult.changed`.

    Raises:
        UnknownFormat: ``fmt`` is not a format.
        MissingPlaintext: see :func:`render`.
        PlaintextMismatch: see :func:`render`.
        ExportError: ``output`` is a directory, or see :func:`render`.
        ExportWriteError: a file could not be written.
    """
    paths = output_paths(fmt, output)
    if Path(output).is_dir():
        raise ExportError(f"export output {output} is a directory; give a file path")
    result = render(fmt, data, rpz_zone=rpz_zone, blockpage=blockpage, ede=ede)
    file_mode = DEFAULT_MODES[_check_format(fmt)] if mode is None else mode
    written: dict[Path, bool] = {}
    for suffix, content in result.files.items():
        path = paths.get(suffix) or Path(output).with_name(Path(output).name + suffix)
        try:
            written[path] = write_if_changed(path, content, mode=file_mode)
        except OSError as e:
            raise ExportWriteError(f"cannot write export {path}: {e}") from e
    return replace(result, written=written)
