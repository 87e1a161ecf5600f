"""Render the verified list into the files ISPs' filters read, and write them.

Formats (``FORMATS`` of :mod:`~clients.isp.exports.formats`), what each
enforces, and its limits:

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
those formats by ``check_ede``.

DNS formats can enforce whole-host entries only: page and prefix entries,
IP-address hosts (an IP literal never reaches a resolver), single-label hosts
(which would black-hole a top-level domain) and names that are not valid DNS
names (labels of ``a-z 0-9 - _`` of 1 to 63 octets, at most 255 octets on the
wire) are counted in ``ExportResult.not_enforceable`` and explained in
``ExportResult.notes``, never written: one odd entry must never make a
zone file fail to load, which would drop the ISP's whole filter.

Lookups only try host suffixes built from the last five labels
(DESIGN.md, "Entries"), so a host entry with more than five labels blocks its
exact host only: the RPZ and ``dstdomain`` outputs write it without the
subdomain wildcard; Unbound and dnsmasq cannot express "this name but not
below", and block its subdomains too (noted).

Files carry a comment header with the list origin and version but no
timestamp, so an export of an unchanged list is byte-identical and
``write_export`` leaves it alone (the caller's reload hook need not run).

Incremental exports (issue 19 item 4, ``INCREMENTAL_FORMATS``): with
``incremental = true`` the syncer writes only each version's changes:
``hashes`` as a base file plus an append-only change log
(:mod:`~clients.isp.exports.hashlog`: ``apply_hashes_log``,
``read_hashes_log``), ``unbound``, ``dnsmasq`` and ``hosts`` as a
directory of shards of which a version rewrites only those it touches
(:mod:`~clients.isp.exports.sharded`: ``apply_sharded``). Their content
is, line for line, that of ``render`` at the same version.

Layout (import each name from its module; this package re-exports
nothing): :mod:`~clients.isp.exports.formats` (format names, limits,
options and their checks, errors, input and result),
:mod:`~clients.isp.exports.entries` (the listed expressions parsed and
counted for exports), :mod:`~clients.isp.exports.squid` and
:mod:`~clients.isp.exports.dns` (the renderers),
:mod:`~clients.isp.exports.output` (``render``, ``output_paths`` and
``write_export``), :mod:`~clients.isp.exports.hashlog` and
:mod:`~clients.isp.exports.sharded` (the incremental exports).
"""

from __future__ import annotations

__all__: list[str] = []
