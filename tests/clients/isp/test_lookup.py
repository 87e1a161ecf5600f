"""URL lookups at the ISP (clients.isp.lookup).

A URL is listed when one of its Safe Browsing lookup expressions is. The
scope examples below (host, prefix, page, IP, canary) pin what ``check``
answers; a naive matcher written here from the spec's wording (DESIGN.md,
"Entries") is cross-checked against the real one with Hypothesis. The
hashes-file parser is tested against the ``hashes`` export that feeds it.
"""

from __future__ import annotations

import hashlib
import random
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from blocklist.canonical import canonicalize, expression_hash, expressions, split_expression
from blocklist.errors import FormatError, InvalidURL
from clients.isp.exports.formats import ExportInput
from clients.isp.exports.output import render
from clients.isp.lookup import (
    NOT_LISTED,
    BatchMatches,
    HashIndex,
    Matcher,
    MatchResult,
    match_batch,
    parse_hashes,
    read_hashes_file,
)

# Entries as a hotline would list them (reserved names only).
HOST_ENTRY = "example.com/"
PREFIX_ENTRY = "example.org/dir/"
PAGE_ENTRY = "example.net/page.html"
QUERY_ENTRY = "example.net/p?id=1"
IP_ENTRY = "192.0.2.1/"
DEEP_HOST_ENTRY = "a.b.c.d.e.example/"  # six labels: exact host only
CANARY_ENTRY = "canary.cleanfeed.test/blocked.html"
LISTED = (
    HOST_ENTRY,
    PREFIX_ENTRY,
    PAGE_ENTRY,
    QUERY_ENTRY,
    IP_ENTRY,
    DEEP_HOST_ENTRY,
    CANARY_ENTRY,
)


@pytest.fixture(scope="module")
def matcher() -> Matcher:
    return Matcher(expression_hash(e) for e in LISTED)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        # whole host: the host and every subdomain
        ("http://example.com/", HOST_ENTRY),
        ("https://www.example.com/any/path?q=1", HOST_ENTRY),
        ("http://a.b.c.d.example.com/deep", HOST_ENTRY),
        ("http://EXAMPLE.com:8080/x#frag", HOST_ENTRY),
        # prefix: everything under the directory, on subdomains too
        ("http://example.org/dir/", PREFIX_ENTRY),
        ("http://example.org/dir/page.html", PREFIX_ENTRY),
        ("http://example.org/dir/sub/deeper/x?y=2", PREFIX_ENTRY),
        ("http://www.example.org/dir/x", PREFIX_ENTRY),
        ("http://example.org/other/../dir/x", PREFIX_ENTRY),
        # page: the page, with or without a query
        ("http://example.net/page.html", PAGE_ENTRY),
        ("http://example.net/page.html?session=9", PAGE_ENTRY),
        ("http://www.example.net/page.html", PAGE_ENTRY),
        # page with query: exactly that query
        ("http://example.net/p?id=1", QUERY_ENTRY),
        # IP host, in any IPv4 notation
        ("http://192.0.2.1/anything", IP_ENTRY),
        ("http://3221225985/", IP_ENTRY),
        ("http://0xc0.0.2.1/x", IP_ENTRY),
        # a host of six labels: itself only
        ("http://a.b.c.d.e.example/x", DEEP_HOST_ENTRY),
        # the canary is an ordinary listed page
        ("http://canary.cleanfeed.test/blocked.html", CANARY_ENTRY),
        ("https://canary.cleanfeed.test/blocked.html?nocache=1", CANARY_ENTRY),
    ],
)
def test_listed_urls_match_their_entry(matcher: Matcher, url: str, expected: str) -> None:
    result = matcher.match(url)
    assert result == MatchResult(listed=True, expression=expected, hash=expression_hash(expected))


@pytest.mark.parametrize(
    "url",
    [
        "http://notexample.com/",  # not a subdomain
        "http://example.com.evil.test/",  # the listed name is not a suffix
        "http://example.org/dir",  # the directory without its slash
        "http://example.org/dirx/",  # a sibling directory
        "http://example.org/other/dir/",  # the same name elsewhere
        "http://example.net/page.htm",
        "http://example.net/page.html/x",
        "http://example.net/other.html",  # a sibling page
        "http://example.net/p?id=2",  # another query
        "http://example.net/p",  # the page without the listed query
        "http://192.0.2.10/",
        "http://x.192.0.2.1.test/",
        "http://x.a.b.c.d.e.example/",  # beyond the five-label suffix window
        "http://canary.cleanfeed.test/other.html",
    ],
)
def test_unlisted_urls_do_not_match(matcher: Matcher, url: str) -> None:
    assert matcher.match(url) is NOT_LISTED


def test_the_most_specific_listed_expression_is_reported() -> None:
    specific = "www.example.com/dir/"
    m = Matcher([expression_hash(HOST_ENTRY), expression_hash(specific)])
    assert m.match("http://www.example.com/dir/x").expression == specific
    assert m.match("http://www.example.com/x").expression == HOST_ENTRY


def test_invalid_urls_raise_invalid_url(matcher: Matcher) -> None:
    for url in ("mailto:someone@example.com", "javascript:alert(1)", "http:///nohost", ""):
        with pytest.raises(InvalidURL):
            matcher.match(url)


def test_match_many_keeps_order_and_returns_errors(matcher: Matcher) -> None:
    urls = [
        "http://example.com/",
        "mailto:x@example.com",
        "http://example.test/",
        b"http://example.org/dir/",
    ]
    results = matcher.match_many(urls)
    assert len(results) == 4
    assert isinstance(results[1], InvalidURL)
    assert results[0] == matcher.match(urls[0])
    assert results[2] is NOT_LISTED
    assert results[3] == matcher.match(urls[3])
    assert isinstance(results[3], MatchResult)
    assert results[3].expression == PREFIX_ENTRY


def test_matcher_refuses_hashes_of_the_wrong_size() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        Matcher([b"\x00" * 31])
    with pytest.raises(ValueError, match="32 bytes"):
        Matcher(["00" * 32])  # type: ignore[list-item]


def test_matcher_exposes_its_set() -> None:
    h = expression_hash(HOST_ENTRY)
    m = Matcher({h})
    assert len(m) == 1
    assert h in m
    assert m.hashes == frozenset({h})
    assert Matcher([]).match("http://example.com/") is NOT_LISTED


# --- cross-check with a naive matcher --------------------------------------------


def _naive_listed(url: str, listed: set[str]) -> bool:
    """DESIGN.md, "Entries", read literally: which listed expressions apply."""
    canonical = canonicalize(url)
    rest = canonical.split("://", 1)[1]
    host, path_query = split_expression(rest)
    path, has_query, query = path_query.partition("?")
    labels = host.split(".")
    is_ip = host.startswith("[") or (len(labels) == 4 and all(x.isdigit() for x in labels))
    for entry in listed:
        entry_host, entry_path = split_expression(entry)
        entry_labels = entry_host.split(".")
        host_ok = entry_host == host or (
            not is_ip and 2 <= len(entry_labels) <= 5 and host.endswith("." + entry_host)
        )
        if not host_ok:
            continue
        if has_query and query and entry_path == f"{path}?{query}":
            return True
        if entry_path == path or entry_path == "/":
            return True
        parts = [p for p in path.split("/") if p]
        # directories of the path, not the last component, at most three deep
        for depth in range(1, min(len(parts) - 1, 3) + 1):
            if entry_path == "/" + "/".join(parts[:depth]) + "/":
                return True
    return False


_LABEL = st.sampled_from(["a", "b", "www", "example", "test", "x-y"])
_HOSTS = st.lists(_LABEL, min_size=1, max_size=7).map(".".join) | st.sampled_from(
    ["192.0.2.1", "198.51.100.7", "[2001:db8::1]"]
)
_SEGMENT = st.sampled_from(["d", "e", "f.html", "g", "index.html"])
_PATHS = st.lists(_SEGMENT, max_size=6).map(lambda s: "/" + "/".join(s)) | st.lists(
    _SEGMENT, min_size=1, max_size=6
).map(lambda s: "/" + "/".join(s) + "/")
_QUERIES = st.sampled_from(["", "?", "?q=1", "?q=2&r"])
_URLS = st.builds(lambda h, p, q: f"http://{h}{p}{q}", _HOSTS, _PATHS, _QUERIES)


@settings(max_examples=400, deadline=None)
@given(listed_urls=st.lists(_URLS, min_size=1, max_size=8), probes=st.lists(_URLS, max_size=8))
def test_matcher_agrees_with_a_naive_reading_of_the_spec(
    listed_urls: list[str], probes: list[str]
) -> None:
    # Listed expressions derived from URLs: each URL's expressions are the
    # forms an analyst's entry can take (page, path, prefixes, host).
    listed: set[str] = set()
    for i, u in enumerate(listed_urls):
        exprs = expressions(u)
        listed.add(exprs[i % len(exprs)])
    matcher = Matcher(expression_hash(e) for e in listed)
    # Near misses and near hits: subdomains and children of listed URLs.
    variants = [u.replace("://", "://www.", 1) for u in listed_urls if "[" not in u]
    variants += [u.split("?")[0].rstrip("/") + "/x/y.html" for u in listed_urls]
    for url in [*listed_urls, *variants, *probes]:
        result = matcher.match(url)
        assert result.listed == _naive_listed(url, listed), url
        if result.listed:
            assert result.expression in listed
            assert result.expression in expressions(url)
            assert result.hash == hashlib.sha256(result.expression.encode()).digest()


# --- batches: HashIndex and match_batch ---------------------------------------


def _expected_batch(matcher: Matcher, urls: list[str | bytes]) -> BatchMatches:
    """What ``match_batch`` must answer, from ``Matcher.match`` one URL at a time."""
    expected = BatchMatches([], [])
    for i, url in enumerate(urls):
        try:
            result = matcher.match(url)
        except InvalidURL as e:
            expected.errors.append((i, str(e)))
            continue
        if result.listed:
            assert result.expression is not None
            assert result.hash is not None
            expected.listed.append((i, result.expression, result.hash))
    return expected


_INVALID = st.sampled_from(
    ["", "mailto:x@example.com", "javascript:alert(1)", "http://", "http://[::1"]
)


@settings(max_examples=300, deadline=None)
@given(
    listed_urls=st.lists(_URLS, min_size=1, max_size=8),
    probes=st.lists(_URLS | _INVALID | _URLS.map(str.encode), max_size=12),
)
def test_batch_lookup_answers_as_the_matcher(
    listed_urls: list[str], probes: list[str | bytes]
) -> None:
    listed: set[str] = set()
    for i, u in enumerate(listed_urls):
        exprs = expressions(u)
        listed.add(exprs[i % len(exprs)])
    hashes = [expression_hash(e) for e in listed]
    matcher = Matcher(hashes)
    variants = [u.replace("://", "://www.", 1) for u in listed_urls if "[" not in u]
    urls: list[str | bytes] = [*listed_urls, *probes, *variants]
    assert match_batch(urls, HashIndex.from_hashes(hashes)) == _expected_batch(matcher, urls)


def test_batch_lookup_reports_the_most_specific_expression_and_errors() -> None:
    specific = "www.example.com/dir/"
    hashes = [expression_hash(e) for e in (*LISTED, specific)]
    urls: list[str | bytes] = [
        "http://www.example.com/dir/x",
        "mailto:x@example.com",
        "http://example.test/",
        b"http://example.org/dir/a",
        "http://www.example.com/x",
    ]
    got = match_batch(urls, HashIndex.from_hashes(hashes))
    assert got.listed == [
        (0, specific, expression_hash(specific)),
        (3, PREFIX_ENTRY, expression_hash(PREFIX_ENTRY)),
        (4, HOST_ENTRY, expression_hash(HOST_ENTRY)),
    ]
    assert [i for i, _ in got.errors] == [1]
    assert "mailto" in got.errors[0][1]
    assert match_batch([], HashIndex(b"")) == BatchMatches([], [])


# Hashes drawn from few 8-byte prefixes, so that listed hashes share the
# search key and the exact comparison has to walk the run.
_PREFIXES = st.sampled_from([b"\x00" * 8, b"\xff" * 8, b"\x80" + b"\x00" * 7, b"\x12" * 8])
_CLASHING = st.builds(lambda p, rest: p + rest, _PREFIXES, st.binary(min_size=24, max_size=24))
_HASH = _CLASHING | st.binary(min_size=32, max_size=32)


@settings(max_examples=300)
@given(
    listed=st.lists(_HASH, unique=True, max_size=40),
    others=st.lists(_HASH, max_size=40),
    seed=st.randoms(),
)
def test_sorted_hashes_membership_is_set_membership(
    listed: list[bytes], others: list[bytes], seed: random.Random
) -> None:
    blob_order = listed[:]
    seed.shuffle(blob_order)  # any order in, the index sorts
    index = HashIndex(b"".join(blob_order))
    probes = [*others, *listed]
    seed.shuffle(probes)
    expected = [i for i, p in enumerate(probes) if p in set(listed)]
    assert index.listed_positions(b"".join(probes)) == expected
    assert len(index) == len(listed)
    assert all(p in index for p in listed)
    assert [p in index for p in others] == [p in set(listed) for p in others]


def test_sorted_hashes_refuse_what_is_not_whole_hashes() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        HashIndex(b"\x00" * 33)
    with pytest.raises(ValueError, match="32 bytes"):
        HashIndex.from_hashes([b"\x00" * 31])
    with pytest.raises(ValueError, match="32 bytes"):
        HashIndex(b"").listed_positions(b"\x00" * 31)
    assert b"\x00" * 31 not in HashIndex(b"\x00" * 32)
    assert "00" * 32 not in HashIndex(b"\x00" * 32)
    assert HashIndex(b"").listed_positions(b"\x00" * 64) == []


# --- the hashes file -------------------------------------------------------------


def _hashes_export(hashes: list[bytes]) -> bytes:
    data = ExportInput(
        version=1,
        hashes=hashes,
        expressions=None,
        list_name="main",
        origin="hotline.example/main",
        generated=datetime(2026, 1, 1, tzinfo=UTC),
    )
    return render("hashes", data).files[""]


@settings(max_examples=100)
@given(st.sets(st.binary(min_size=32, max_size=32), max_size=50))
def test_parse_hashes_reads_the_hashes_export(hashes: set[bytes]) -> None:
    assert parse_hashes(_hashes_export(list(hashes))) == hashes


def test_read_hashes_file(tmp_path: Path) -> None:
    path = tmp_path / "hashes.txt"
    h = expression_hash(HOST_ENTRY)
    path.write_bytes(_hashes_export([h]))
    assert read_hashes_file(path) == {h}


@pytest.mark.parametrize(
    ("content", "line"),
    [
        (b"AB" * 32 + b"\n", 1),  # upper case
        (b"ab" * 32 + b"\n" + b"ab" * 31 + b"\n", 2),  # short line
        (b"ab" * 32 + b"\n\n", 2),  # blank line
        (b"ab" * 32 + b"\n" + b"cd" * 32, 2),  # truncated: no final newline
        (b"ab" * 32 + b"\r\n", 1),  # CRLF
        (b" " + b"ab" * 32 + b"\n", 1),
        (b"zz" * 32 + b"\n", 1),
    ],
)
def test_parse_hashes_rejects_malformed_files(content: bytes, line: int) -> None:
    with pytest.raises(FormatError, match=f"line {line}:"):
        parse_hashes(content)


def test_parse_hashes_of_an_empty_file_is_the_empty_list() -> None:
    assert parse_hashes(b"") == frozenset()
