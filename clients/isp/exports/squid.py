"""The ``squid`` export: ``dstdomain`` hosts and ``url_regex`` POSIX EREs.

See :mod:`clients.isp.exports` for what the two files enforce and their
limits; this module turns a page or prefix entry into an anchored extended
regular expression over the URL as Squid's ``url_regex`` sees it.
"""

from __future__ import annotations

from urllib.parse import unquote_to_bytes

from clients.isp.exports.entries import (
    _check_hashes,
    _Counter,
    _covered,
    _covers_subdomains,
    _Entry,
    _header,
    _parse_entries,
    _parse_entry,
    _prune_covered,
    _valid_dns_name,
)
from clients.isp.exports.formats import (
    ExportInput,
    ExportResult,
)

__all__ = [
    "squid_url_regex",
]

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
