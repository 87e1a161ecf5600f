"""Entry rules: an entry's scope must say what its expression really blocks.

DESIGN.md, "Entries: canonical expressions, not raw URLs". An entry is one
expression; Safe Browsing lookups (:func:`blocklist.canonical.expressions`)
decide what it blocks, whatever the analyst meant:

* ``page`` (``host/path?query``) blocks that page. Without a query it also
  blocks the page with any query, since lookups try each URL's path without
  its query;
* ``prefix`` (``host/dir/``) blocks everything under a directory, but only
  when it is at most three directories deep, because lookups only try the
  first three directory prefixes of a path;
* ``host`` (``host/``) blocks the host and its subdomains, but only when the
  host has two to five labels, because lookups only form host suffixes from
  the last five labels and never try a bare top-level label. An IP address
  matches only itself, which is what its host entry promises.

Because lookups also try host suffixes, a page or prefix entry on a host of
two to five labels blocks the same page or directory on its subdomains too;
:class:`Reach` says so. :func:`reach` describes any canonical expression
truthfully, and :func:`plan_entry` refuses an entry whose scope would
promise more (or other) than its expression delivers.

Error messages never repeat the URL or expression: they may end up in logs,
which must not hold plaintext (DESIGN.md, "Plaintext"). The one exception
is a page URL submitted with scope ``host``: its refusal names the host
entry it would become (issue 12, item 17), never the page itself.

Entries are held to stricter rules than lookups (issue 12, items 15-17):
the URL must be absolute, its host must be the one a browser visits
(:func:`blocklist.canonical.check_entry_url`) and a valid host name or IP
address (:func:`blocklist.canonical.check_entry_host`). Lookups of visited
URLs stay as lenient as Safe Browsing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

from blocklist import canonical, safeguards
from blocklist.errors import DomesticHosting, InvalidEntry, InvalidURL

__all__ = [
    "MAX_EXPRESSION_BYTES",
    "SCOPES",
    "PlannedEntry",
    "Reach",
    "Scope",
    "plan_entry",
    "reach",
]

#: What an entry blocks (DESIGN.md): one page, a directory, or a whole host.
Scope = Literal["page", "prefix", "host"]

#: Every scope, in order of growing reach.
SCOPES: Final[tuple[Scope, ...]] = ("page", "prefix", "host")

#: Longest expression an entry may have, in bytes. Expressions are stored,
#: served in plaintext pages and written one per line into ISP filter files
#: (Squid, RPZ, hosts...); 4 KiB keeps each line well inside Squid's 8 KiB
#: MAX_URL and bounds the size of plaintext pages, while real listed URLs
#: are far shorter.
MAX_EXPRESSION_BYTES: Final = 4096

#: Fewest labels a host needs for lookups to try it as a suffix of its
#: subdomains: SB v4 never tries the bare top-level label.
_MIN_SUFFIX_LABELS: Final = 2

_SCHEMES_NOTE: Final = "over http, https and ftp alike"


@dataclass(frozen=True, slots=True)
class Reach:
    """What one expression blocks, as lookups will really match it.

    Attributes:
        expression: the canonical expression (``host/path?query``).
        scope: the scope the expression has: ``host`` for ``host/``,
            ``prefix`` for a path ending in ``/`` without a query, ``page``
            otherwise.
        host: the expression's host.
        path: the expression's path and query (starts with ``/``).
        covers_subdomains: whether the same lookups also match on every
            subdomain of ``host`` (true for hosts of two to five labels;
            false for IP addresses, single-label hosts and hosts of more
            than five labels).
        explanation: a sentence for the analyst: what is blocked and what
            is not.
        problem: why the expression blocks less than its scope promises
            (a prefix deeper than three directories, a host entry that
            cannot cover its subdomains); None when it keeps the promise.
            Written without the expression, so it may be logged.
        matches: example URLs whose lookups match the expression.
        does_not_match: example URLs, close to it, whose lookups do not.
    """

    expression: str
    scope: Scope
    host: str
    path: str
    covers_subdomains: bool
    explanation: str
    problem: str | None
    matches: tuple[str, ...]
    does_not_match: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class PlannedEntry:
    """An entry that passed every rule, ready to be stored.

    Attributes:
        expression: the canonical expression.
        hash: its id, SHA-256 of the expression's UTF-8 bytes (32 bytes).
        scope: the requested scope, which the expression really has.
        reach: what the expression blocks, for the analyst's preview.
    """

    expression: str
    hash: bytes
    scope: Scope
    reach: Reach


def reach(expression: str) -> Reach:
    """Describe what a canonical expression blocks.

    The scope is derived from the expression itself: ``host/`` is a host
    entry, a path ending in ``/`` (without a query) a prefix, anything else
    a page.

    Raises:
        InvalidEntry: the expression is longer than
            :data:`MAX_EXPRESSION_BYTES`, has no ``host/`` form, or is not
            canonical (canonicalising ``http://`` + expression would give
            another expression, so its hash would never be looked up).
    """
    if len(expression.encode("utf-8", "surrogatepass")) > MAX_EXPRESSION_BYTES:
        raise InvalidEntry(f"the expression is longer than {MAX_EXPRESSION_BYTES} bytes")
    host, path = canonical.split_expression(expression)
    try:
        recanonicalised = canonical.expression("http://" + expression, "page")
    except InvalidURL as e:
        raise InvalidEntry(f"the expression is not a valid URL without its scheme: {e}") from e
    if recanonicalised != expression:
        raise InvalidEntry(
            "the expression is not canonical, so lookups would never produce it: "
            "canonicalise the URL first"
        )
    is_ip = canonical.is_ip_host(host)
    labels = host.split(".")
    covers_subdomains = not is_ip and _MIN_SUFFIX_LABELS <= len(labels) <= (
        canonical.LOOKUP_HOST_LABELS
    )
    where = _host_reach_phrase(host, is_ip=is_ip, labels=len(labels), covers=covers_subdomains)
    www = f"http://www.{host}" if covers_subdomains else None

    if path == "/":
        return _host_reach(expression, host, is_ip, len(labels), covers_subdomains, www)
    if path.endswith("/") and "?" not in path:
        return _prefix_reach(expression, host, path, covers_subdomains, where, www)
    return _page_reach(expression, host, path, covers_subdomains, where, www)


def plan_entry(
    url: str,
    scope: str,
    *,
    hosting_country: str | None = None,
    home_country: str | None = None,
    canary: bool = False,
) -> PlannedEntry:
    """Turn an analyst's URL and scope into an entry, or refuse with a reason.

    Args:
        url: the URL as the analyst gives it (canonicalised here).
        scope: ``page``, ``prefix`` or ``host``.
        hosting_country: where the material is hosted (ISO 3166-1 alpha-2).
        home_country: the list's home country (ISO 3166-1 alpha-2), if set.
        canary: the entry is a list's canary, exempt from the safeguards
            (:mod:`blocklist.safeguards`): the operator's reserved test URL.

    Raises:
        InvalidURL: the URL is not an absolute http, https or ftp URL, or
            it cannot be canonicalised.
        AmbiguousHost: the URL's authority holds userinfo, a backslash or a
            percent-escaped delimiter, so a browser could visit another host
            than the one the expression would name.
        InvalidHost: the host is neither a host name of at least two valid
            labels nor an IP address.
        PublicSuffix: the host is a public suffix (``co.uk``, ``github.io``).
        DomesticHosting: the material is hosted in the list's home country;
            domestic material goes to takedown, not to the blocklist.
        InvalidEntry: the scope is unknown; a country is not two letters;
            the expression is too long; the URL's expression has another
            scope than the one requested (a ``page`` URL ending in ``/``
            needs ``prefix``, one that is just ``host/`` needs ``host``, a
            page or directory URL with scope ``host`` is refused rather than
            widened to its host); a prefix is deeper than three directories; a host entry has one
            label or more than five, so it could not block its subdomains.
    """
    if scope not in SCOPES:
        raise InvalidEntry(f"unknown scope {scope!r:.20}: use one of page, prefix, host")
    hosting = _country_code(hosting_country, "hosting_country")
    home = _country_code(home_country, "home_country")
    if hosting is not None and hosting == home:
        raise DomesticHosting(
            f"the material is declared as hosted in {home}, the list's home country: "
            "domestic material goes to takedown (notice to the host and the police), "
            "not to the blocklist"
        )
    # Entry-time strictness (issue 12, items 15-17); lookups stay lenient.
    canonical.check_entry_url(url)
    expr = canonical.expression(url, scope)
    host, _ = canonical.split_expression(expr)
    canonical.check_entry_host(host)
    if not canary:
        safeguards.check_public_suffix(host)
    if scope == "host":
        page = canonical.expression(url, "page")
        if page != expr:
            # Never widen a page or directory to its whole host silently.
            raise InvalidEntry(_host_widening(expr))
    if len(expr.encode("utf-8")) > MAX_EXPRESSION_BYTES:
        raise InvalidEntry(
            f"the canonical expression is longer than {MAX_EXPRESSION_BYTES} bytes; "
            "list a shorter page URL or a prefix"
        )
    planned_reach = reach(expr)
    if planned_reach.scope != scope:
        raise InvalidEntry(_scope_mismatch(scope, planned_reach.scope))
    if planned_reach.problem is not None:
        raise InvalidEntry(planned_reach.problem)
    return PlannedEntry(
        expression=expr,
        hash=canonical.expression_hash(expr),
        scope=planned_reach.scope,
        reach=planned_reach,
    )


# --- helpers ---------------------------------------------------------------


def _country_code(code: str | None, field: str) -> str | None:
    if code is None:
        return None
    if len(code) != 2 or not code.isascii() or not code.isalpha():
        raise InvalidEntry(
            f"{field} must be an ISO 3166-1 alpha-2 code (two letters), not {code!r:.12}"
        )
    return code.upper()


def _scope_mismatch(requested: str, actual: Scope) -> str:
    if requested == "page" and actual == "prefix":
        return (
            "the URL's path ends in '/', so its expression is a directory and blocks every "
            "page under it: use scope 'prefix', or give the URL of one page"
        )
    if actual == "host":
        return (
            f"the URL has no path below '/', so as a {requested} its expression would block "
            "the whole host and its subdomains: use scope 'host' (only when the whole site is "
            "dedicated to abuse material), or give the URL of a page or directory"
        )
    return f"the URL's expression has scope {actual!r}, not {requested!r}"


def _host_widening(host_expression: str) -> str:
    # The one message that names an expression: the analyst must see what the
    # entry would have become. It is the host only (never the page), and
    # the API answers it to the analyst who typed the URL without logging it.
    return (
        "the URL names a page or directory, not a whole host: with scope 'host' it would "
        f"become the host entry {host_expression}, which blocks every page on that host and "
        "its subdomains; use scope 'page' or 'prefix', or submit the host's root URL "
        "(ending in '/') if the whole site is dedicated to abuse material"
    )


def _host_reach_phrase(host: str, *, is_ip: bool, labels: int, covers: bool) -> str:
    if covers:
        return f"and the same on every subdomain of {host} (such as www.{host})"
    if is_ip:
        return "on this IP address only (an address matches only itself)"
    if labels < _MIN_SUFFIX_LABELS:
        return "on this single-label host only (lookups never try a bare top-level label)"
    return (
        f"on this exact host only: its {labels} labels are more than the last "
        f"{canonical.LOOKUP_HOST_LABELS} that lookups build host suffixes from, "
        "so its subdomains are not covered"
    )


def _host_reach(
    expression: str, host: str, is_ip: bool, labels: int, covers: bool, www: str | None
) -> Reach:
    matches = [f"http://{host}/", f"https://{host}/any/page.html?q=1"]
    does_not_match: list[str] = []
    problem = None
    if covers:
        explanation = (
            f"Blocks every URL on {host} and on all of its subdomains (such as www.{host}): "
            f"any path, any query, {_SCHEMES_NOTE}."
        )
        matches.append(f"{www}/")
        if labels > _MIN_SUFFIX_LABELS:
            does_not_match.append(f"http://{host.partition('.')[2]}/")
    elif is_ip:
        explanation = (
            f"Blocks every URL on the IP address {host}: any path, any query, "
            f"{_SCHEMES_NOTE}. An IP address matches only itself."
        )
    else:
        does_not_match.append(f"http://www.{host}/")
        if labels < _MIN_SUFFIX_LABELS:
            reason = "lookups never try a single-label host (a bare top-level label) as a suffix"
            advice = "list the registered domain instead"
        else:
            reason = (
                f"lookups only build host suffixes from the last {canonical.LOOKUP_HOST_LABELS} "
                f"labels of a URL's host and this host has {labels}"
            )
            advice = (
                f"list a parent domain of at most {canonical.LOOKUP_HOST_LABELS} labels, "
                "or pages or prefixes on this exact host"
            )
        problem = (
            f"a host entry blocks the host and its subdomains, but {reason}, so this one would "
            f"block the host itself and none of its subdomains; {advice}"
        )
        explanation = (
            f"Blocks every URL on {host} itself, {_SCHEMES_NOTE}, but none of its subdomains: "
            f"{reason}."
        )
    return Reach(
        expression=expression,
        scope="host",
        host=host,
        path="/",
        covers_subdomains=covers,
        explanation=explanation,
        problem=problem,
        matches=tuple(matches),
        does_not_match=tuple(does_not_match),
    )


def _prefix_reach(
    expression: str, host: str, path: str, covers: bool, where: str, www: str | None
) -> Reach:
    depth = path.count("/") - 1
    parent = path[: path.rfind("/", 0, -1) + 1]
    if depth <= canonical.LOOKUP_PREFIX_DEPTH:
        explanation = (
            f"Blocks every URL under the directory {host}{path}: the directory itself and every "
            f"file and subdirectory below it, with any query, {_SCHEMES_NOTE}, {where}. "
            "The rest of the host is not blocked."
        )
        problem = None
        matches = [
            f"http://{host}{path}",
            f"https://{host}{path}page.html?q=1",
            f"http://{host}{path}a/b/c/d/page.html",
        ]
        if www is not None:
            matches.append(f"{www}{path}page.html")
        does_not_match = [f"http://{host}{parent}", f"http://{host}{path[:-1]}-other/"]
    else:
        explanation = (
            f"Blocks only the directory URL {host}{path} itself (with any query), "
            f"{_SCHEMES_NOTE}, {where}; not the pages under it, because lookups only try the "
            f"first {canonical.LOOKUP_PREFIX_DEPTH} directory prefixes of a URL's path."
        )
        problem = (
            f"the prefix is {depth} directories deep, but lookups only try the first "
            f"{canonical.LOOKUP_PREFIX_DEPTH} directory prefixes of a URL's path, so it would "
            "block only the directory URL itself and none of the pages under it; list a "
            f"prefix at most {canonical.LOOKUP_PREFIX_DEPTH} directories deep, or the pages"
        )
        matches = [f"http://{host}{path}", f"http://{host}{path}?q=1"]
        does_not_match = [f"http://{host}{path}page.html"]
    return Reach(
        expression=expression,
        scope="prefix",
        host=host,
        path=path,
        covers_subdomains=covers,
        explanation=explanation,
        problem=problem,
        matches=tuple(matches),
        does_not_match=tuple(does_not_match),
    )


def _page_reach(
    expression: str, host: str, path: str, covers: bool, where: str, www: str | None
) -> Reach:
    bare_path, question, query = path.partition("?")
    directory = bare_path[: bare_path.rfind("/") + 1]
    if question:
        explanation = (
            f"Blocks exactly {host}{path}: that page with that query only, {_SCHEMES_NOTE}, "
            f"{where}. The same page with another query or none is not blocked."
        )
        matches = [f"http://{host}{path}", f"https://{host}{path}"]
        does_not_match = [f"http://{host}{bare_path}", f"http://{host}{bare_path}?{query}&x=1"]
    else:
        name = bare_path[len(directory) :]
        explanation = (
            f"Blocks the page {host}{path} with or without any query string (lookups also "
            f"try each URL's path without its query), {_SCHEMES_NOTE}, {where}. Other pages, "
            "in the same directory or elsewhere, are not blocked."
        )
        matches = [f"http://{host}{path}", f"https://{host}{path}?q=1"]
        does_not_match = [f"http://{host}{directory}", f"http://{host}{directory}other-{name}"]
    if www is not None:
        matches.append(f"{www}{path}")
    return Reach(
        expression=expression,
        scope="page",
        host=host,
        path=path,
        covers_subdomains=covers,
        explanation=explanation,
        problem=None,
        matches=tuple(matches),
        does_not_match=tuple(does_not_match),
    )
