"""Entry rules (blocklist.entries): a scope must say what its expression blocks.

The central property: for any entry plan_entry accepts, every URL under its
stated reach has the entry's hash among its Safe Browsing lookups, and URLs
just outside it (a sibling page, a parent directory or domain) do not.
"""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from blocklist.canonical import (
    canonicalize,
    check_entry_host,
    check_entry_url,
    expression,
    expression_hash,
    expressions,
)
from blocklist.entries import (
    MAX_EXPRESSION_BYTES,
    SCOPES,
    PlannedEntry,
    Reach,
    plan_entry,
    reach,
)
from blocklist.errors import AmbiguousHost, DomesticHosting, InvalidEntry, InvalidHost, InvalidURL


def lookup_hashes(url: str) -> set[bytes]:
    return {expression_hash(e) for e in expressions(url)}


def test_scopes() -> None:
    assert SCOPES == ("page", "prefix", "host")


# --- reach -------------------------------------------------------------------------


def test_reach_of_a_host() -> None:
    r = reach("example.com/")
    assert (r.scope, r.host, r.path) == ("host", "example.com", "/")
    assert r.covers_subdomains
    assert r.problem is None
    assert "subdomains" in r.explanation
    assert "http://www.example.com/" in r.matches


def test_reach_of_an_ip_host_matches_only_itself() -> None:
    for expr in ("192.0.2.1/", "[2001:db8::1]/"):
        r = reach(expr)
        assert r.scope == "host"
        assert not r.covers_subdomains
        assert r.problem is None
        assert "only itself" in r.explanation


def test_reach_of_hosts_lookups_cannot_cover() -> None:
    six_labels = reach("a.b.c.d.example.com/")
    assert not six_labels.covers_subdomains
    assert six_labels.problem is not None
    assert "last 5 labels" in six_labels.problem
    assert "http://www.a.b.c.d.example.com/" in six_labels.does_not_match
    single = reach("test/")
    assert not single.covers_subdomains
    assert single.problem is not None
    assert "single-label" in single.problem
    assert reach("b.c.d.example.com/").covers_subdomains  # five labels


def test_reach_of_a_prefix() -> None:
    r = reach("example.com/a/b/c/")
    assert (r.scope, r.path, r.problem) == ("prefix", "/a/b/c/", None)
    assert r.covers_subdomains
    assert "under the directory example.com/a/b/c/" in r.explanation
    deep = reach("example.com/a/b/c/d/")
    assert deep.scope == "prefix"
    assert deep.problem is not None
    assert "4 directories deep" in deep.problem
    assert "first 3" in deep.problem
    assert "http://example.com/a/b/c/d/page.html" in deep.does_not_match


def test_reach_of_pages() -> None:
    r = reach("example.com/a/page.html")
    assert (r.scope, r.path, r.problem) == ("page", "/a/page.html", None)
    assert "with or without any query" in r.explanation
    with_query = reach("example.com/a/?id=1")
    assert (with_query.scope, with_query.path) == ("page", "/a/?id=1")
    assert "that query only" in with_query.explanation
    assert "http://example.com/a/" in with_query.does_not_match


def test_reach_on_a_long_host_says_subdomains_are_not_covered() -> None:
    r = reach("a.b.c.d.example.com/page.html")
    assert r.scope == "page"
    assert r.problem is None  # the exact host is always looked up
    assert not r.covers_subdomains
    assert "subdomains are not covered" in r.explanation


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        ("example.com", "host/path"),
        ("/path", "host/path"),
        ("EXAMPLE.com/", "not canonical"),
        ("example.com/q?", "not canonical"),  # lookups never try an empty query
        ("example.com/a/../b", "not canonical"),
        ("example.com:80/", "not canonical"),
        ("mailto:x@example.com/", "not canonical"),
        ("[2001:db8::zz]/", "not a valid URL"),
        ("example.com/" + "a" * MAX_EXPRESSION_BYTES, str(MAX_EXPRESSION_BYTES)),
    ],
)
def test_reach_refuses_what_is_not_a_canonical_expression(expr: str, message: str) -> None:
    with pytest.raises(InvalidEntry, match=message):
        reach(expr)


# --- plan_entry: accepted -------------------------------------------------------------


def test_plan_entry_returns_expression_hash_scope_and_reach() -> None:
    # Userinfo is refused at entry time (issue 12, item 15); the port and
    # fragment are still dropped.
    planned = plan_entry("HTTP://WWW.Example.COM:8080/Dir/Page.html?x=1#frag", "page")
    assert isinstance(planned, PlannedEntry)
    assert planned.expression == "www.example.com/Dir/Page.html?x=1"
    assert planned.hash == hashlib.sha256(b"www.example.com/Dir/Page.html?x=1").digest()
    assert planned.scope == "page"
    assert planned.reach == reach(planned.expression)


@pytest.mark.parametrize(
    ("url", "scope", "expected"),
    [
        ("http://example.com/a/page.html", "page", "example.com/a/page.html"),
        ("http://example.com/a/?q=1", "page", "example.com/a/?q=1"),
        ("http://example.com/a/b/page.html?q=1", "prefix", "example.com/a/b/"),
        ("http://example.com/a/b/c/", "prefix", "example.com/a/b/c/"),
        ("http://example.com/a/b/c/d/deep/page.html", "page", "example.com/a/b/c/d/deep/page.html"),
        ("https://www.example.org/", "host", "www.example.org/"),
        ("http://b.c.d.example.com/", "host", "b.c.d.example.com/"),
        ("http://192.0.2.1", "host", "192.0.2.1/"),
        ("http://[2001:db8::1]/", "host", "[2001:db8::1]/"),
        ("http://a.b.c.d.example.com/p.html", "page", "a.b.c.d.example.com/p.html"),
    ],
)
def test_plan_entry_accepts(url: str, scope: str, expected: str) -> None:
    planned = plan_entry(url, scope)
    assert planned.expression == expected
    assert planned.scope == scope
    assert planned.hash in lookup_hashes(url)


def test_foreign_hosting_is_accepted() -> None:
    planned = plan_entry("http://example.com/p", "page", hosting_country="us", home_country="CA")
    assert planned.expression == "example.com/p"
    assert plan_entry("http://example.com/p", "page", hosting_country="US").scope == "page"
    assert plan_entry("http://example.com/p", "page", home_country="CA").scope == "page"


# --- plan_entry: refused ---------------------------------------------------------------

SECRET = "marker-7f3a"  # must never be echoed in an error message (logs)


@pytest.mark.parametrize(
    ("url", "scope", "message"),
    [
        (f"http://example.com/{SECRET}/", "page", "use scope 'prefix'"),
        (f"http://{SECRET}.example.com/", "page", "use scope 'host'"),
        (f"http://{SECRET}.example.com/?", "page", "use scope 'host'"),
        (f"http://{SECRET}.example.com/index.html", "prefix", "use scope 'host'"),
        (f"http://example.com/a/b/c/{SECRET}/page.html", "prefix", "4 directories deep"),
        (f"http://a.b.c.{SECRET}.example.com/", "host", "this host has 6"),
        ("http://test/", "host", "single label"),
        (f"http://example.com/{SECRET}", "domain", "use one of page, prefix, host"),
        (f"http://example.com/{SECRET}" + "a" * MAX_EXPRESSION_BYTES, "page", "4096 bytes"),
    ],
)
def test_plan_entry_refuses_with_an_explanation(url: str, scope: str, message: str) -> None:
    with pytest.raises(InvalidEntry, match=message) as caught:
        plan_entry(url, scope)
    assert SECRET not in str(caught.value)


def test_domestic_hosting_is_refused() -> None:
    with pytest.raises(DomesticHosting, match="takedown") as caught:
        plan_entry("http://example.com/p", "page", hosting_country="ca", home_country="CA")
    assert isinstance(caught.value, InvalidEntry)
    assert caught.value.code == "domestic_hosting"


@pytest.mark.parametrize("code", ["CAN", "C", "", "C1", "É1", "ÇA"])
def test_country_codes_must_be_two_letters(code: str) -> None:
    with pytest.raises(InvalidEntry, match="ISO 3166-1 alpha-2"):
        plan_entry("http://example.com/p", "page", hosting_country=code)
    with pytest.raises(InvalidEntry, match="ISO 3166-1 alpha-2"):
        plan_entry("http://example.com/p", "page", home_country=code)


@pytest.mark.parametrize("url", ["mailto:abuse@example.com", "javascript:void(0)", "http://"])
def test_invalid_urls_are_refused_as_invalid_url(url: str) -> None:
    with pytest.raises(InvalidURL):
        plan_entry(url, "page")


# --- properties -------------------------------------------------------------------------

LABELS = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=6)
HOSTS = st.one_of(
    st.tuples(
        st.lists(LABELS, max_size=5), st.sampled_from(["example.com", "example.org", "test"])
    ).map(lambda t: ".".join([*t[0], t[1]])),
    st.integers(0, 255).map(lambda i: f"192.0.2.{i}"),
    st.integers(0, 0xFFFF).map(lambda i: f"[2001:db8::{i:x}]"),
)
# Hosts an entry may have (issue 12, item 16): no label starts or ends with
# '-', and every name has at least two labels.
ENTRY_HOSTS = st.one_of(
    st.tuples(
        st.lists(LABELS.map(lambda label: label.strip("-") or "a"), max_size=5),
        st.sampled_from(["example.com", "example.org", "example.test"]),
    ).map(lambda t: ".".join([*t[0], t[1]])),
    st.integers(0, 255).map(lambda i: f"192.0.2.{i}"),
)


def _is_entry_host(host: str) -> bool:
    """An oracle for item 16 on the hosts HOSTS draws: IPs, or 2+ labels without edge '-'."""
    if host.startswith("[") or host.startswith("192.0.2."):
        return True
    labels = host.split(".")
    return len(labels) >= 2 and not any(x.startswith("-") or x.endswith("-") for x in labels)


# Entry URLs may hold anything a path can; suffixes are plain names.
ENTRY_SEGMENTS = st.text(alphabet="abcXYZ019-._~!$&'()*+,;=:@%é ", min_size=1, max_size=6)
SAFE_SEGMENTS = st.text(alphabet="abcdefxyz0123456789-_", min_size=1, max_size=6)
QUERIES = st.text(alphabet="abxyz=&/?.19", min_size=1, max_size=6)


@st.composite
def entry_urls(draw: st.DrawFn) -> str:
    path = "/" + "/".join(draw(st.lists(ENTRY_SEGMENTS, max_size=6)))
    if draw(st.booleans()):
        path += "/"
    query = draw(st.none() | st.text(alphabet="ab=&/?.%19", max_size=6))
    return "http://" + draw(HOSTS) + path + ("" if query is None else "?" + query)


def _expected_scope(url: str, scope: str) -> str:
    """What the expression of ``url`` at ``scope`` blocks, read off the canonical URL."""
    rest = canonicalize(url).split("://", 1)[1]
    path_query = rest[rest.index("/") :]
    path, _, query = path_query.partition("?")
    if scope == "host" or (scope == "prefix" and path.count("/") == 1):
        return "host"
    if scope == "prefix":
        return "prefix"
    if query:
        return "page"
    if path == "/":
        return "host"
    return "prefix" if path.endswith("/") else "page"


@settings(max_examples=400)
@given(entry_urls(), st.sampled_from(SCOPES))
def test_reach_of_an_expression_agrees_with_its_scope(url: str, scope: str) -> None:
    r = reach(expression(url, scope))
    assert r.scope == _expected_scope(url, scope)
    try:
        planned = plan_entry(url, scope)
    except InvalidHost:
        # Refused for its host only when that host is no entry host.
        assert not _is_entry_host(r.host)
        return
    except InvalidEntry:
        # Refused only for a scope mismatch, a page widened to its host or a
        # reach problem, never otherwise.
        widened = scope == "host" and expression(url, "page") != expression(url, "host")
        assert r.scope != scope or r.problem is not None or widened
        return
    assert _is_entry_host(r.host)
    assert planned.reach == r
    assert planned.scope == r.scope == scope
    assert r.problem is None


@st.composite
def planned_entries(draw: st.DrawFn) -> PlannedEntry:
    url = draw(entry_urls())
    scope = draw(st.sampled_from(SCOPES))
    try:
        return plan_entry(url, scope)
    except InvalidEntry:
        assume(False)
        raise  # unreachable: assume(False) aborts the example


def _suffix_path(data: st.DataObject) -> str:
    suffix = "/".join(data.draw(st.lists(SAFE_SEGMENTS, max_size=7)))
    if suffix and data.draw(st.booleans()):
        suffix += "/"
    query = data.draw(st.none() | QUERIES)
    return suffix + ("" if query is None else "?" + query)


@settings(max_examples=600)
@given(planned_entries(), st.data())
def test_planned_entry_blocks_every_url_under_its_reach(
    planned: PlannedEntry, data: st.DataObject
) -> None:
    r = planned.reach
    scheme = data.draw(st.sampled_from(["http://", "https://", "ftp://"]))
    subdomains = data.draw(st.lists(SAFE_SEGMENTS, max_size=3)) if r.covers_subdomains else []
    host = ".".join([*subdomains, r.host])
    if r.scope == "host":
        url = f"{scheme}{host}/{_suffix_path(data)}"
    elif r.scope == "prefix":
        url = f"{scheme}{host}{r.path}{_suffix_path(data)}"
    elif "?" in r.path:
        url = f"{scheme}{host}{r.path}"
    else:
        query = data.draw(st.none() | QUERIES)
        url = f"{scheme}{host}{r.path}" + ("" if query is None else "?" + query)
    assert planned.hash in lookup_hashes(url)


@st.composite
def page_urls(draw: st.DrawFn) -> str:
    directories = "".join(d + "/" for d in draw(st.lists(ENTRY_SEGMENTS, max_size=5)))
    query = draw(st.none() | QUERIES)
    name = draw(SAFE_SEGMENTS)
    host = draw(ENTRY_HOSTS)
    return f"http://{host}/{directories}{name}" + ("" if query is None else "?" + query)


@settings(max_examples=400)
@given(page_urls(), SAFE_SEGMENTS, QUERIES)
def test_page_entry_does_not_block_a_sibling_page(url: str, other: str, other_query: str) -> None:
    planned = plan_entry(url, "page")
    path, question, query = planned.reach.path.partition("?")
    directory, name = path[: path.rfind("/") + 1], path[path.rfind("/") + 1 :]
    assume(other != name)
    host = planned.reach.host
    assert planned.hash in lookup_hashes(f"http://{host}{planned.reach.path}")
    sibling = f"http://{host}{directory}{other}" + (f"?{query}" if question else "")
    assert planned.hash not in lookup_hashes(sibling)
    assert planned.hash not in lookup_hashes(f"http://{host}{directory}")
    if question:
        assume(other_query != query)
        assert planned.hash not in lookup_hashes(f"http://{host}{path}?{other_query}")
        assert planned.hash not in lookup_hashes(f"http://{host}{path}")


SUBDOMAIN_HOSTS = st.tuples(
    st.lists(LABELS, min_size=1, max_size=4), st.sampled_from(["example.com", "example.org"])
).map(lambda t: ".".join([*t[0], t[1]]))


@settings(max_examples=400)
@given(SUBDOMAIN_HOSTS, entry_urls(), st.sampled_from(SCOPES))
def test_entry_does_not_block_its_parent_domain(host: str, url: str, scope: str) -> None:
    # Host suffixes only ever shorten a URL's host: an entry on a subdomain
    # never reaches up to the parent domain.
    path_query = canonicalize(url).split("://", 1)[1]
    path_query = path_query[path_query.index("/") :]
    r = reach(expression(f"http://{host}{path_query}", scope))
    parent = r.host.partition(".")[2]
    assert expression_hash(r.expression) not in lookup_hashes(f"http://{parent}{path_query}")


@settings(max_examples=400)
@given(entry_urls(), st.sampled_from(SCOPES))
def test_reach_examples_are_true(url: str, scope: str) -> None:
    # The preview shown to analysts must not lie, including for expressions
    # that plan_entry refuses.
    r: Reach = reach(expression(url, scope))
    h = expression_hash(r.expression)
    assert r.matches
    for example in r.matches:
        assert h in lookup_hashes(example), example
    for example in r.does_not_match:
        assert h not in lookup_hashes(example), example


# --- entry-time URL and host checks (issue 12, items 15-16) ----------------------------

# Path and query characters that would be delimiters in an authority.
AUTHORITY_LOOKALIKES = st.text(alphabet="ab/\\@?#:%2F5C40", max_size=12)


@settings(max_examples=300)
@given(ENTRY_HOSTS, st.sampled_from(["", ":8080"]), AUTHORITY_LOOKALIKES)
def test_entry_checks_only_look_at_the_authority(host: str, port: str, tail: str) -> None:
    # '\', '@' and escapes after the first '/' are path, query or fragment
    # to a browser and to Safe Browsing alike: never refused.
    url = f"https://{host}{port}/{tail}"
    check_entry_url(url)
    check_entry_host(expression(url, "host").split("/")[0])


@pytest.mark.parametrize(
    "url",
    [
        "http://user@example.com/",
        "http://user:password@example.com/",
        "http://@example.com/",
        "http://example.com\\/",
        "http://\\example.com/",
        "http://example.com%2f.example.org/",
        "http://example.com%3a80/",
        "http://example.com%2540.example.org/",
    ],
)
def test_check_entry_url_refuses_ambiguous_authorities(url: str) -> None:
    with pytest.raises(AmbiguousHost):
        check_entry_url(url)


@pytest.mark.parametrize(
    ("host", "valid"),
    [
        ("example.com", True),
        ("a_b.example.com", True),
        ("xn--bcher-kva.example", True),
        ("192.0.2.1", True),
        ("[2001:db8::1]", True),
        ("1.example", True),
        ("example", False),
        ("example.123", False),
        ("example.0x1f", False),
        ("a-.example.com", False),
        ("-a.example.com", False),
        ("a*.example.com", False),
        ("a%20b.example.com", False),
        ("xn--.example.com", False),
    ],
)
def test_check_entry_host(host: str, valid: bool) -> None:
    if valid:
        check_entry_host(host)
    else:
        with pytest.raises(InvalidHost):
            check_entry_host(host)
