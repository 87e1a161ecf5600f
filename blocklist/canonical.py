"""Canonical URLs and lookup expressions, as Google Safe Browsing computes them.

DESIGN.md, "Entries: canonical expressions, not raw URLs": an entry is one
expression (``host/path?query``, ``host/dir/`` or ``host/``) and its id is
the SHA-256 of that expression's UTF-8 bytes. Canonicalisation and
expression generation follow the Safe Browsing Update API v4 page "URLs and
Hashing" (cited below as *SB v4*), with the IPv6 rules of the v5 page; the
hash of ``example.com/`` therefore means the same here as there.

Where SB v4 leaves a detail open, this module follows Google's reference Go
client (``github.com/google/safebrowsing``, ``urls.go``) and otherwise the
WHATWG URL Standard / RFC 3986, and says so at the step. Every choice keeps
two laws, which the tests check with Hypothesis: :func:`canonicalize` is
idempotent, and on any ``str`` or ``bytes`` input it either returns or
raises :class:`~blocklist.errors.InvalidURL` (never anything else).

The whole URL is worked on as raw bytes (``str`` input is UTF-8 encoded
first), so bytes that are not text, such as ``0x01`` or ``0x80`` in a host,
are escaped rather than rejected, as SB v4's published examples require.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from typing import Final

import idna

from blocklist.errors import AmbiguousHost, InvalidEntry, InvalidHost, InvalidURL

__all__ = [
    "ALLOWED_SCHEMES",
    "LOOKUP_HOST_LABELS",
    "LOOKUP_PREFIX_DEPTH",
    "MAX_URL_BYTES",
    "MIN_ENTRY_HOST_LABELS",
    "canonicalize",
    "check_entry_host",
    "check_entry_url",
    "expression",
    "expression_hash",
    "expressions",
    "is_ip_host",
    "split_expression",
]

#: Largest URL accepted, in bytes, both as input and as canonical output.
#: 8 KiB is what common servers and proxies accept in a request line (Squid's
#: MAX_URL, nginx's and Apache's default header buffers); a longer "URL" is
#: not something a browser can fetch through them. The cap also bounds the
#: repeated unescaping (at most one pass per three bytes). The output is
#: capped too, so every canonical URL can be canonicalised again.
MAX_URL_BYTES: Final = 8192

#: Schemes a list entry may come from (DESIGN.md: "schemes other than http,
#: https and ftp such as mailto: or javascript: ... rejected"). The scheme is
#: not part of an expression: one entry blocks a page over all three.
ALLOWED_SCHEMES: Final = frozenset({"http", "https", "ftp"})

#: SB v4, suffix/prefix expressions: host suffixes are formed from the last
#: five components of the host name (plus the exact host itself).
LOOKUP_HOST_LABELS: Final = 5

#: SB v4: "the 4 paths formed by starting at the root (/) and successively
#: appending path components": ``/`` and the first three directory prefixes.
LOOKUP_PREFIX_DEPTH: Final = 3

#: Schemes that are never web pages. They are named so that a value like
#: ``tel:5550100`` is refused as a scheme instead of being read as the host
#: ``tel`` with port 5550100 (the reference client's ``host:port`` rule).
_NON_WEB_SCHEMES: Final = frozenset(
    {"about", "blob", "data", "file", "javascript", "mailto", "sms", "tel", "urn", "vbscript"}
)

#: Bytes the leading/trailing trim removes: C0 controls and space, as the
#: WHATWG URL parser strips them (SB v4's examples trim surrounding spaces).
_C0_AND_SPACE: Final = bytes(range(0x21))

_PERCENT_ESCAPE_RE: Final = re.compile(rb"%([0-9A-Fa-f]{2})")
_SCHEME_RE: Final = re.compile(rb"([A-Za-z][A-Za-z0-9+.\-]*):")
# The reference client reads "host:1234/" as a host and port, not a scheme.
_PORT_AFTER_COLON_RE: Final = re.compile(rb"[0-9]+(?:[/?]|\Z)")
_DIGITS_RE: Final = re.compile(rb"[0-9]*")
_DOTS_RE: Final = re.compile(rb"\.{2,}")
# One component of an inet_aton-style IPv4 address: hex, octal or decimal.
_IPV4_PART_RE: Final = re.compile(rb"0[xX][0-9A-Fa-f]+|0[0-7]*|[1-9][0-9]*")
# A byte above 0x80 makes a host Unicode (see _canonical_host).
_ABOVE_0X80_RE: Final = re.compile(rb"[\x81-\xff]")
# What an internationalised host may look like once converted to punycode.
_IDN_RESULT_RE: Final = re.compile(rb"[a-z0-9_\-]+(?:\.[a-z0-9_\-]+)*")
# SB v5: NAT64 addresses of the well-known prefix 64:ff9b::/96 (RFC 6052).
_NAT64_WELL_KNOWN: Final = ipaddress.IPv6Network("64:ff9b::/96")

# SB v4, last step: percent-escape bytes <= 0x20, >= 0x7F, '#' and '%' with
# upper-case hex; every other byte is written as itself.
_ESCAPE_TABLE: Final = tuple(
    chr(b) if 0x20 < b < 0x7F and b not in b"#%" else f"%{b:02X}" for b in range(256)
)

_SCOPE_NAMES: Final = ("page", "prefix", "host")


#: A canonical URL taken apart: ``(scheme, host, is_ip, path, query)``, every
#: field already escaped, ``query`` None when the URL has no '?'. A plain
#: tuple: one is built per URL in the lookup hot loop, where a dataclass or
#: a named tuple costs several times more to create.
_CanonicalParts = tuple[str, str, bool, str, str | None]


def _url_of(parts: _CanonicalParts) -> str:
    scheme, host, _, path, query = parts
    return f"{scheme}://{host}{path}{'' if query is None else '?' + query}"


def canonicalize(url: str | bytes) -> str:
    """Return the Safe Browsing canonical form ``scheme://host/path[?query]``.

    ``str`` input is encoded as UTF-8; ``bytes`` input is taken as raw bytes.
    A URL without a scheme (``www.example.com/``) is read as ``http``.
    Userinfo, port and fragment are dropped.

    Raises:
        InvalidURL: the URL is empty or has no host, its scheme is not http,
            https or ftp, it (or its canonical form) is longer than
            :data:`MAX_URL_BYTES`, or its host cannot be processed (an
            internationalised name that UTS #46 refuses, an IPv4 number out
            of range, a malformed IPv6 literal, a bad port).
        TypeError: ``url`` is neither ``str`` nor ``bytes``.
    """
    return _url_of(_parse(url))


def expression(url: str | bytes, scope: str = "page") -> str:
    """Return the one list expression that blocks ``url`` at ``scope``.

    * ``page``: ``host/path?query`` (``host/path`` when the query is empty,
      because lookups only try the path with a query when it is non-empty);
    * ``prefix``: ``host/dir/``, the path up to and including its last ``/``
      (the directory of a file, the directory itself for a path ending in
      ``/``); the query is dropped;
    * ``host``: ``host/``.

    This function does not judge whether the expression blocks what the
    scope promises; :func:`blocklist.entries.plan_entry` does.

    Raises:
        InvalidURL: as :func:`canonicalize`.
        InvalidEntry: ``scope`` is not ``page``, ``prefix`` or ``host``.
    """
    if scope not in _SCOPE_NAMES:
        raise InvalidEntry(f"unknown scope {scope!r:.20}: use one of page, prefix, host")
    _, host, _, path, query = _parse(url)
    if scope == "host":
        return host + "/"
    if scope == "prefix":
        return host + path[: path.rfind("/") + 1]
    return host + path + ("?" + query if query else "")


def expressions(url: str | bytes) -> list[str]:
    """Return the Safe Browsing lookup expressions of ``url``.

    SB v4, "Suffix/prefix expressions": every combination of at most five
    hosts (the exact host, then up to four suffixes formed from the last five
    components, never the bare top-level label; an IP address only itself)
    and at most six paths (the exact path with its query, the exact path,
    and the four paths formed from the root by appending successive
    directory components). The list has no duplicates and a fixed order:
    the exact host first, then longer suffixes before shorter ones; for each
    host the most specific path first.

    Raises:
        InvalidURL: as :func:`canonicalize`.
    """
    _, host, is_ip, path, query = _parse(url)
    paths = _lookup_paths(path, query)
    # Hosts and paths are each free of duplicates, and a host never holds a
    # '/' while a path starts with one, so every pair gives a distinct
    # expression: no de-duplication pass is needed.
    return [h + p for h in _lookup_hosts(host, is_ip) for p in paths]


def expression_hash(expr: str) -> bytes:
    """Return the entry id of an expression: SHA-256 of its UTF-8 bytes (32 bytes).

    DESIGN.md: "SHA-256 of the expression's UTF-8 bytes, 32 bytes, as in Safe
    Browsing". Canonical expressions are ASCII, so UTF-8 changes nothing.

    Raises:
        UnicodeEncodeError: ``expr`` holds a lone surrogate (never true of
            an expression this module produced).
    """
    return hashlib.sha256(expr.encode("utf-8")).digest()


def split_expression(expr: str) -> tuple[str, str]:
    """Split an expression into ``(host, "/path?query")`` at its first ``/``.

    Raises:
        InvalidEntry: ``expr`` has no ``/`` or nothing before it.
    """
    host, slash, rest = expr.partition("/")
    if not slash or not host:
        raise InvalidEntry("an expression is host/path[?query]: it needs a host and a '/'")
    return host, slash + rest


def is_ip_host(host: str) -> bool:
    """Return whether a canonical host is an IP address (IPv4, or IPv6 in brackets).

    Only meaningful for hosts taken from canonical URLs or expressions:
    canonicalisation turns every IPv4 notation into dotted decimal, so a
    canonical non-IP host is never four decimal numbers.
    """
    if host.startswith("[") and host.endswith("]"):
        return True
    try:
        ipaddress.IPv4Address(host)
    except ValueError:
        return False
    return True


# --- entry-time checks -----------------------------------------------------
#
# Safe Browsing canonicalisation is deliberately lenient: it must produce
# *some* expression for whatever URL a proxy sees. An entry is the other way
# round: its expression must name the host a browser would really visit, or
# a crafted report ("http://abuse.test\@example.com/") gets an innocent host
# listed (issue 12, items 15-17). Browsers parse URLs by the WHATWG URL
# Standard (https://url.spec.whatwg.org/, cited as *WHATWG* below), so the
# checks here compare its reading of the authority with SB v4's and refuse
# a URL wherever the two could disagree. Lookups never run these checks.

#: An absolute URL with a scheme (WHATWG "scheme state": an ASCII letter,
#: then letters, digits, '+', '-' and '.', ended by ':').
_ENTRY_SCHEME_RE: Final = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*):")

#: WHATWG "authority state": in a special URL (http, https and ftp all are)
#: the authority ends at the first '/', '?', '#' or '\' ("url is special and
#: c is U+005C (\)"); SB v4 and the reference client know no '\' rule.
_WHATWG_AUTHORITY_END_RE: Final = re.compile(r"[/?#\\]")
#: SB v4 splits the authority off at '/', '?' (and drops '#' first).
_SB_AUTHORITY_END_RE: Final = re.compile(r"[/?#]")

#: Bytes that must never come out of a percent-escape in a host. WHATWG
#: "host parser" percent-decodes the host once and then fails on a
#: "forbidden domain code point" ('/', '\', '@', '?', '#', ':', '%', ...),
#: while SB v4 unescapes the whole URL repeatedly before splitting it, so
#: "example.com%2F.abuse.test" is no host to a browser but "example.com"
#: with path "/.abuse.test" to Safe Browsing. '%' covers double escapes
#: ("%252F"), which a browser decodes only once.
_AMBIGUOUS_ESCAPED_BYTES: Final = frozenset(b"/\\@?#:%[]")
_HOST_ESCAPE_RE: Final = re.compile(r"%([0-9A-Fa-f]{2})")

#: One label of an entry's host after IDNA: letters, digits, '-' and '_'
#: (browsers resolve '_' though RFC 952 forbids it in host names), never a
#: '-' at either end (RFC 952, RFC 1123 2.1). Canonical hosts are lower case.
_ENTRY_LABEL_RE: Final = re.compile(r"[a-z0-9_](?:[a-z0-9_\-]*[a-z0-9_])?")
#: WHATWG "ends in a number checker": a host whose last label is decimal
#: digits or "0x" hex is parsed as an IPv4 address (and refused by browsers
#: when that fails, as canonicalisation already turned every valid one into
#: dotted decimal).
_NUMERIC_LABEL_RE: Final = re.compile(r"[0-9]+|0[xX][0-9A-Fa-f]*")

#: Fewest labels an entry's host name needs: a bare top-level label or an
#: intranet name such as "localhost" is no public web host, and lookups
#: never try a single label as a suffix (SB v4).
MIN_ENTRY_HOST_LABELS: Final = 2


def check_entry_url(url: str | bytes) -> None:
    """Refuse an entry URL that is not absolute or whose host is ambiguous.

    Entry time only (issue 12, items 15 and 17): the URL must be an absolute
    URL with a scheme (``https://example.com/page.html``), and its authority
    must hold no userinfo, no backslash and no percent-escape of a
    delimiter, so that the host Safe Browsing canonicalisation reads is the
    host a browser visits (WHATWG "authority state" and "host parser").

    Raises:
        InvalidURL: the URL has no scheme or no ``//`` after it (a scheme
            other than http, https or ftp is left to :func:`canonicalize`,
            which names it).
        AmbiguousHost: the authority holds userinfo, a backslash, or a
            percent-escape of a delimiter.
        TypeError: ``url`` is neither ``str`` nor ``bytes``.
    """
    if isinstance(url, bytes | bytearray):
        # The API and CLI give text; raw bytes are read as UTF-8 (WHATWG
        # works on code points), anything else is no URL an analyst typed.
        try:
            url = bytes(url).decode("utf-8")
        except UnicodeDecodeError as e:
            raise InvalidURL("not an absolute http(s) URL: the bytes are not UTF-8 text") from e
    elif not isinstance(url, str):
        raise TypeError(f"a URL is str or bytes, not {type(url).__name__}")
    # WHATWG "basic URL parser", steps 1-3: strip leading and trailing C0
    # controls and spaces, remove every ASCII tab and newline (SB v4 does too).
    text = url.strip(_C0_AND_SPACE_TEXT).translate(_TAB_NEWLINE)
    match = _ENTRY_SCHEME_RE.match(text)
    if match is None:
        raise InvalidURL(
            "not an absolute http(s) URL: give the whole URL with its scheme, "
            "such as https://example.com/page.html"
        )
    scheme = match.group(1).lower()
    rest = text[match.end() :]
    if scheme not in ALLOWED_SCHEMES:
        # "example.com:8080/page" is a host and port without a scheme to SB
        # (the reference client's rule), so it is no absolute URL either.
        if scheme not in _NON_WEB_SCHEMES and rest[:1].isdigit():
            raise InvalidURL(
                "not an absolute http(s) URL: give the whole URL with its scheme, "
                "such as https://example.com/page.html"
            )
        return  # canonicalize() refuses it, naming the scheme
    # WHATWG "special authority ignore slashes state" skips any run of '/'
    # and '\' after "http:", so "http:/\host" and "http:host" are the host
    # to a browser; SB v4 needs exactly "//". Entries take only "//" + host.
    if not rest.startswith("//") or rest[2:3] == "/":
        raise InvalidURL(
            f"not an absolute http(s) URL: '{scheme}:' must be followed by '//' and the host, "
            "such as https://example.com/page.html"
        )
    rest = rest[2:]
    whatwg_end = _WHATWG_AUTHORITY_END_RE.search(rest)
    whatwg_authority = rest if whatwg_end is None else rest[: whatwg_end.start()]
    sb_end = _SB_AUTHORITY_END_RE.search(rest)
    sb_authority = rest if sb_end is None else rest[: sb_end.start()]
    if "\\" in sb_authority:
        raise AmbiguousHost(
            "the host part holds a backslash: a browser reads '\\' as '/' and visits the host "
            "before it, while the list would name what follows; submit the URL as the "
            "browser's address bar shows it"
        )
    if "@" in whatwg_authority:
        # WHATWG "authority state": everything up to the last '@' is userinfo.
        raise AmbiguousHost(
            "the URL holds userinfo ('name@' before the host): it is a classic disguise "
            "(the host is what follows the last '@'); submit the URL without it"
        )
    for escape in _HOST_ESCAPE_RE.finditer(whatwg_authority):
        if int(escape.group(1), 16) in _AMBIGUOUS_ESCAPED_BYTES:
            raise AmbiguousHost(
                f"the host part holds the percent-escape %{escape.group(1).upper()} of a "
                "delimiter ('/', '\\', '@', '?', '#', ':', '%', '[' or ']'): a browser "
                "refuses such a host while Safe Browsing would read another one; submit "
                "the URL as the browser's address bar shows it"
            )


def check_entry_host(host: str) -> None:
    """Refuse an entry host that is neither a valid host name nor an IP address.

    ``host`` is a canonical host (lower case, punycode). Entry time only
    (issue 12, item 16): at least :data:`MIN_ENTRY_HOST_LABELS` labels of
    letters, digits, '-' and '_' without a '-' at either end, a last label
    that is not a number, ``xn--`` labels that are valid IDNA; or an IPv4
    address or bracketed IPv6 address.

    Raises:
        InvalidHost: the host breaks one of these rules. The message names
            the rule (and at most one offending character), not the host.
    """
    if is_ip_host(host):
        return
    labels = host.split(".")
    for label in labels:
        if _ENTRY_LABEL_RE.fullmatch(label) is not None:
            continue
        if not label:
            raise InvalidHost("the host has an empty label (two dots in a row)")
        bad = next((c for c in label if not (c.isascii() and (c.isalnum() or c in "-_"))), None)
        if bad == "%":
            raise InvalidHost(
                "the host holds a space, control character or other byte that canonicalisation "
                "escapes as %XX: a host name has only letters, digits, '-' and '_' between dots"
            )
        if bad is not None:
            raise InvalidHost(
                f"the host holds {bad!r}: a host name has only letters, digits, '-' and '_' "
                "between dots (no wildcards: a host entry already covers its subdomains)"
            )
        raise InvalidHost(
            "a label of the host starts or ends with '-', which a host name may not "
            "(RFC 952, RFC 1123 section 2.1)"
        )
    if len(labels) < MIN_ENTRY_HOST_LABELS:
        raise InvalidHost(
            "the host has a single label: an entry needs a domain name of at least two labels "
            "(such as example.com) or an IP address"
        )
    if _NUMERIC_LABEL_RE.fullmatch(labels[-1]):
        raise InvalidHost(
            "the host's last label is a number, so browsers parse it as an IPv4 address "
            "(WHATWG URL, 'ends in a number'), and it is not a valid one"
        )
    for label in labels:
        if label.startswith("xn--"):
            try:
                idna.ulabel(label)
            except (idna.IDNAError, UnicodeError, ValueError) as e:
                raise InvalidHost(
                    f"a label of the host starts with 'xn--' but is not valid punycode "
                    f"(IDNA 2008 refuses it: {type(e).__name__})"
                ) from e


_TAB_NEWLINE: Final = str.maketrans("", "", "\t\n\r")
_C0_AND_SPACE_TEXT: Final = _C0_AND_SPACE.decode("ascii")


# --- parsing ---------------------------------------------------------------


#: A URL whose canonical form is itself, up to the case of its host: an
#: http, https or ftp scheme in lower case, a host name of ASCII letters,
#: digits, '-' and '_' whose last label starts with a letter (so it is no
#: IPv4 notation), no userinfo or port, and a path and query of printable
#: ASCII without '%' or '#' (nothing to unescape, drop or escape). Most URLs
#: a proxy sees look like this, and :func:`_parse_plain` skips the general
#: byte-level work for them.
_PLAIN_URL_RE: Final = re.compile(
    r"(https?|ftp)://"
    r"((?:[A-Za-z0-9_\-]+\.)*[A-Za-z][A-Za-z0-9_\-]*)"
    # path: 0x21-0x7E except '#' (0x23), '%' (0x25) and '?' (0x3F)
    r"(/[!\"$&-\x3e@-~]*)?"
    # query: 0x21-0x7E except '#' and '%'
    r"(?:\?([!\"$&-~]*))?"
)


def _parse(url: str | bytes) -> _CanonicalParts:
    # Plain URLs (most of them) skip the byte-level steps; see _parse_plain.
    if type(url) is str:
        parts = _parse_plain(url)
        if parts is not None:
            return parts
    return _parse_general(url)


def _parse_plain(url: str) -> _CanonicalParts | None:
    """The fast path of :func:`_parse` for plain ASCII URLs; None for any other.

    It only answers when :func:`_parse_general` would return the same parts
    (a Hypothesis test compares the two): every SB v4 step is then the
    identity, except lower-casing the host and writing an empty path as
    ``/``. Anything it is unsure of (a dot segment, ``//`` in the path, a
    URL near the size limit) goes to the general path, which raises the
    errors.
    """
    # Near the limit the general path decides (the canonical form may be
    # one byte longer than the input: the '/' of an empty path).
    if len(url) >= MAX_URL_BYTES:
        return None
    match = _PLAIN_URL_RE.fullmatch(url)
    if match is None:
        return None
    scheme, host, path, query = match.groups()
    if path is None:
        path = "/"
    # SB v4 path steps: "//" collapses and "." / ".." segments resolve, so
    # such paths (and, conservatively, any segment starting with a dot) are
    # left to the general path.
    elif "//" in path or "/." in path:
        return None
    return scheme, host.lower(), False, path, query


def _parse_general(url: str | bytes) -> _CanonicalParts:
    data = _to_bytes(url)
    # SB v4, first: remove tab (0x09), CR (0x0d) and LF (0x0a) characters;
    # their escapes (%09, %0d, %0a) stay.
    data = data.translate(None, b"\t\r\n")
    # SB v4, second: drop the fragment. Done before unescaping, so an escaped
    # '#' (%23) is data, as in SB v4's "http://host%23.com/..." example.
    data = data.partition(b"#")[0]
    # Surrounding spaces are trimmed (SB v4 example "  http://www.google.com/  ").
    data = data.strip(_C0_AND_SPACE)
    if not data:
        raise InvalidURL("empty URL")
    # SB v4, third: "repeatedly percent-unescape the URL until it has no more
    # percent-escapes". The reference client unescapes the whole URL before
    # splitting it, so %2F and %3F act as '/' and '?'.
    data = _unescape_fully(data)

    scheme, rest = _split_scheme(data)
    rest, question, raw_query = rest.partition(b"?")
    authority, slash, raw_path = rest.partition(b"/")
    host, is_ip = _canonical_host(authority)
    path = _canonical_path(slash + raw_path)
    query = _escape(raw_query) if question else None
    parts = (scheme, _escape(host), is_ip, _escape(path), query)
    if len(_url_of(parts)) > MAX_URL_BYTES:
        raise InvalidURL(
            f"the canonical URL is longer than {MAX_URL_BYTES} bytes "
            "(escaping grows unprintable bytes threefold)"
        )
    return parts


def _to_bytes(url: str | bytes) -> bytes:
    if isinstance(url, str):
        # Cheap early refusal before encoding: a character is at least a byte.
        if len(url) > MAX_URL_BYTES:
            raise InvalidURL(f"URL longer than {MAX_URL_BYTES} bytes")
        try:
            data = url.encode("utf-8")
        except UnicodeEncodeError as e:
            raise InvalidURL("URL text is not valid Unicode (it holds a lone surrogate)") from e
    elif isinstance(url, bytes | bytearray):
        data = bytes(url)
    else:
        raise TypeError(f"a URL is str or bytes, not {type(url).__name__}")
    if len(data) > MAX_URL_BYTES:
        raise InvalidURL(f"URL longer than {MAX_URL_BYTES} bytes")
    return data


def _unescape_fully(data: bytes) -> bytes:
    # Each pass that changes anything shortens the data by at least two
    # bytes, so this ends after at most len(data) / 3 passes.
    if b"%" not in data:  # fast path: most URLs carry no escape at all
        return data
    while True:
        unescaped = _PERCENT_ESCAPE_RE.sub(_unescape_match, data)
        if unescaped == data:
            return data
        data = unescaped


def _unescape_match(match: re.Match[bytes]) -> bytes:
    return bytes((int(match.group(1), 16),))


#: Bytes that SB v4 re-escapes: <= 0x20, >= 0x7F, '#' and '%'.
_NEEDS_ESCAPE_RE = re.compile(rb"[\x00-\x20\x7f-\xff#%]")


def _escape(data: bytes) -> str:
    # Fast path (lookups hot loop): nothing to escape, so the bytes are ASCII.
    if _NEEDS_ESCAPE_RE.search(data) is None:
        return data.decode("ascii")
    return "".join([_ESCAPE_TABLE[b] for b in data])


def _split_scheme(data: bytes) -> tuple[str, bytes]:
    """Return ``(scheme, rest after "//")``; ``http`` when there is no scheme."""
    match = _SCHEME_RE.match(data)
    # As the reference client: "host:1234/..." is a host with a port, not a
    # scheme, unless the name is a known non-web scheme.
    if match is None or (
        _PORT_AFTER_COLON_RE.match(data, match.end())
        and match.group(1).lower().decode("ascii") not in _NON_WEB_SCHEMES
    ):
        return "http", data
    scheme = match.group(1).decode("ascii").lower()
    if scheme not in ALLOWED_SCHEMES:
        raise InvalidURL(
            f"scheme {scheme!r:.40} is not allowed: only http, https and ftp URLs can be listed"
        )
    rest = data[match.end() :]
    if not rest.startswith(b"//"):
        raise InvalidURL(f"expected '//' and a host after '{scheme}:'")
    return scheme, rest[2:]


def _canonical_host(authority: bytes) -> tuple[bytes, bool]:
    """Return the canonical host (unescaped bytes) and whether it is an IP address."""
    # Userinfo is dropped: the host starts after the last '@'.
    host = authority.rpartition(b"@")[2]
    if host.startswith(b"["):
        inner, bracket, after = host[1:].partition(b"]")
        if not bracket:
            raise InvalidURL("IPv6 address without its closing ']'")
        if after and not (after.startswith(b":") and _DIGITS_RE.fullmatch(after, 1)):
            raise InvalidURL("unexpected characters after the ']' of an IPv6 address")
        return _canonical_ipv6(inner), True
    # The port is dropped (SB v4: "The scheme, username, password, and port
    # are disregarded").
    if b":" in host:
        host, _, port = host.rpartition(b":")
        if not _DIGITS_RE.fullmatch(port):
            raise InvalidURL("the port is not a number")
        if b":" in host:
            raise InvalidURL("host contains ':' (an IPv6 address must be in brackets)")
    # SB v4, host steps 1-2: strip leading and trailing dots, collapse runs.
    host = _DOTS_RE.sub(b".", host).strip(b".")
    # SB v4: an IDN is converted to its ASCII punycode form. As the reference
    # client, only bytes above 0x80 make a host Unicode (0x80 itself is kept
    # and escaped, for the published "http://\x01\x80.com/" example).
    if _ABOVE_0X80_RE.search(host) is not None:
        host = _idn_to_ascii(host)
    if not host:
        raise InvalidURL("URL has no host")
    # Brackets only delimit IPv6 literals; left in a name (say after its dots
    # were stripped) they would make the canonical URL re-parse differently.
    if b"[" in host or b"]" in host:
        raise InvalidURL("host contains '[' or ']' outside an IPv6 address in brackets")
    # SB v4, host step 3: any legal IPv4 encoding becomes dotted decimal.
    ipv4 = _parse_ipv4(host)
    if ipv4 is not None:
        return ipv4, True
    # SB v4, host step 5: lowercase (bytes.lower() only touches ASCII).
    return host.lower(), False


def _idn_to_ascii(host: bytes) -> bytes:
    """Convert an internationalised host by UTS #46 non-transitional processing.

    ``faß.example`` becomes ``xn--fa-hia.example`` (non-transitional keeps
    ß; transitional processing would have made it ``fass.example``, another
    domain). ASCII labels are kept as they are; each non-ASCII label must be
    a valid IDNA 2008 label.
    """
    try:
        text = host.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InvalidURL("host is neither ASCII nor valid UTF-8") from e
    try:
        # idna >= 3.11 always maps non-transitionally (UTS #46 15.1 removed
        # transitional processing); std3_rules=False keeps '_' and friends.
        mapped = idna.uts46_remap(text, std3_rules=False)
        labels = [label for label in mapped.split(".") if label]
        encoded = [
            label.encode("ascii") if label.isascii() else idna.alabel(label) for label in labels
        ]
    except (idna.IDNAError, UnicodeError, ValueError) as e:
        raise InvalidURL(
            "internationalised host cannot be converted to punycode "
            f"(UTS #46 / IDNA 2008 refuse it: {type(e).__name__})"
        ) from e
    result = b".".join(encoded)
    # UTS #46 maps some characters to ASCII punctuation (U+FF0F to '/', U+FF05
    # to '%'); such a host would re-parse differently, so it is refused.
    if not _IDN_RESULT_RE.fullmatch(result):
        raise InvalidURL(
            "internationalised host maps to characters a domain name cannot hold "
            "(only letters, digits, '-' and '_' are allowed next to Unicode labels)"
        )
    return result


def _parse_ipv4(host: bytes) -> bytes | None:
    """Return dotted decimal for a host in any inet_aton notation, else None.

    SB v4: "The client should handle any legal IP-address encoding, including
    octal, hex, and fewer than four components": one to four components,
    each decimal, octal (leading 0) or hex (0x); the last one fills all the
    remaining bytes (``192.0.513`` is 192.0.2.1). A host that looks like an
    IPv4 address but overflows is refused (browsers refuse it too) rather
    than read as a name.

    Raises:
        InvalidURL: a component is out of range.
    """
    parts = host.split(b".")
    if len(parts) > 4 or not all(_IPV4_PART_RE.fullmatch(p) for p in parts):
        return None
    values = [_ipv4_component(p) for p in parts]
    last_bits = 8 * (5 - len(values))
    if any(v > 0xFF for v in values[:-1]) or values[-1] >= 1 << last_bits:
        raise InvalidURL("host looks like an IPv4 address but a component is out of range")
    address = values[-1]
    for i, value in enumerate(values[:-1]):
        address |= value << (24 - 8 * i)
    return str(ipaddress.IPv4Address(address)).encode("ascii")


def _ipv4_component(part: bytes) -> int:
    # Leading zeros are stripped first and the digit count checked, so no
    # huge decimal string reaches int() (which refuses > 4300 digits).
    if part[:2].lower() == b"0x":
        digits, base, max_digits = part[2:].lstrip(b"0"), 16, 8
    elif part.startswith(b"0"):
        digits, base, max_digits = part.lstrip(b"0"), 8, 11
    else:
        digits, base, max_digits = part, 10, 10
    if len(digits) > max_digits:
        return 1 << 32  # out of range whatever the position
    return int(digits, base) if digits else 0


def _canonical_ipv6(inner: bytes) -> bytes:
    """Canonicalise a bracketed IPv6 literal (SB v5 host step 4).

    Leading zeros are removed and the longest run of zero groups is written
    ``::`` (RFC 5952, which ``ipaddress`` implements); IPv4-mapped addresses
    (``::ffff:a.b.c.d``) and NAT64 addresses of 64:ff9b::/96 become the
    IPv4 address they carry.
    """
    try:
        address = ipaddress.IPv6Address(inner.decode("ascii"))
    except (UnicodeDecodeError, ValueError) as e:
        raise InvalidURL("the host in brackets is not a valid IPv6 address") from e
    if address.scope_id is not None:
        raise InvalidURL("IPv6 zone identifiers are local to one machine and cannot be listed")
    ipv4 = address.ipv4_mapped
    if ipv4 is None and address in _NAT64_WELL_KNOWN:
        ipv4 = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if ipv4 is not None:
        return str(ipv4).encode("ascii")
    return b"[" + address.compressed.encode("ascii") + b"]"


def _canonical_path(raw: bytes) -> bytes:
    """Collapse ``//`` and resolve ``.``/``..`` segments (SB v4 path steps).

    Runs of slashes are collapsed first (as the reference client's
    ``path.Clean``); a path ending in a dot segment is a directory and keeps
    a trailing slash (RFC 3986 5.2.4: ``/a/b/..`` is ``/a/``), which is also
    what a browser requests.
    """
    segments = raw.split(b"/")[1:]
    is_directory = raw.endswith(b"/") or (bool(segments) and segments[-1] in (b".", b".."))
    kept: list[bytes] = []
    for segment in segments:
        if segment in (b"", b"."):
            continue
        if segment == b"..":
            if kept:
                kept.pop()
            continue
        kept.append(segment)
    if not kept:
        return b"/"
    return b"/" + b"/".join(kept) + (b"/" if is_directory else b"")


# --- lookups ---------------------------------------------------------------


def _lookup_hosts(host: str, is_ip: bool) -> list[str]:
    # SB v4: "The exact hostname in the URL" and "Up to 4 hostnames formed by
    # starting with the last 5 components and successively removing the
    # leading component. The top-level domain can be skipped." An IP address
    # yields only itself.
    if is_ip:
        return [host]
    # The suffixes start after a dot: the last dot would leave the bare
    # top-level label (skipped), each dot before it adds one label, up to
    # five. No suffix is the host itself and each is shorter than the one
    # before, so the list has no duplicate.
    suffixes: list[str] = []
    dot = host.rfind(".")
    for _ in range(LOOKUP_HOST_LABELS - 1):
        dot = host.rfind(".", 0, dot)
        if dot < 0:
            break
        suffixes.append(host[dot + 1 :])
    suffixes.append(host)
    suffixes.reverse()
    return suffixes


def _lookup_paths(path: str, query: str | None) -> list[str]:
    # SB v4: "The exact path of the URL, including query parameters", "The
    # exact path of the URL, without query parameters", and "The 4 paths
    # formed by starting at the root (/) and successively appending path
    # components, including a trailing slash". As the reference client, the
    # last component of the path is not appended (it is the exact path), and
    # a query is only tried when it is non-empty.
    # A canonical path is "/" or "/" and non-empty segments (an optional
    # trailing "/"); it never holds '?'. So the list below has a duplicate
    # only when the path is "/" itself: each prefix has fewer segments than
    # the exact path, and more than "/".
    paths = [path + "?" + query, path] if query else [path]
    if path == "/":
        return paths
    # The directory prefixes end at the second, third and fourth '/' (the
    # first is the root), except a '/' that ends the path: that prefix is
    # the exact path itself.
    prefixes: list[str] = []
    last = len(path) - 1
    slash = path.find("/", 1)
    while 0 < slash < last and len(prefixes) < LOOKUP_PREFIX_DEPTH:
        prefixes.append(path[: slash + 1])
        slash = path.find("/", slash + 1)
    prefixes.reverse()
    paths += prefixes
    paths.append("/")
    return paths
