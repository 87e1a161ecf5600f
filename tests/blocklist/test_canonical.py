"""Safe Browsing canonicalisation and lookup expressions (blocklist.canonical).

The published Safe Browsing examples are the golden vectors; the laws
(idempotency, only InvalidURL on any input) are checked with Hypothesis; the
IPv4 notations are cross-checked against the C library's inet_aton, and the
lookup expressions against a naive re-reading of the spec written here.
"""

from __future__ import annotations

import hashlib
import json
import re
import socket
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from blocklist.canonical import (
    MAX_URL_BYTES,
    _parse_general,
    _parse_plain,
    canonicalize,
    expression,
    expression_hash,
    expressions,
    is_ip_host,
    split_expression,
)
from blocklist.errors import InvalidEntry, InvalidURL

VECTOR_NAME = "safebrowsing-canonicalization.json"
REPO = Path(__file__).resolve().parents[2]
LOCAL_VECTORS = REPO / "tests" / "vectors" / VECTOR_NAME
SHARED_VECTORS = Path(__file__).resolve().parents[2].parent / "shared" / "vectors" / VECTOR_NAME


def _load_vectors() -> dict[str, Any]:
    # The repository's copy first, so the suite is self-contained; the shared
    # design folder beside the clone otherwise.
    path = LOCAL_VECTORS if LOCAL_VECTORS.exists() else SHARED_VECTORS
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


VECTORS = _load_vectors()
CANONICALIZE_VECTORS = VECTORS["canonicalize"]
EXPRESSION_VECTORS = VECTORS["expressions"]


# --- golden vectors -----------------------------------------------------------


def test_vector_file_is_complete() -> None:
    # A truncated or emptied vector file must not let the suite pass vacuously.
    assert len(CANONICALIZE_VECTORS) == 33
    assert len(EXPRESSION_VECTORS) == 3


def test_vector_copy_matches_shared_design_folder() -> None:
    if not SHARED_VECTORS.exists():
        pytest.skip("the shared design folder is not beside this clone")
    assert LOCAL_VECTORS.read_bytes() == SHARED_VECTORS.read_bytes()


@pytest.mark.parametrize(
    "vector", CANONICALIZE_VECTORS, ids=[v["input_repr"] for v in CANONICALIZE_VECTORS]
)
def test_published_canonicalization_examples_as_bytes(vector: dict[str, str]) -> None:
    assert canonicalize(bytes.fromhex(vector["input_hex"])) == vector["canonical"]


_TEXT_VECTORS = [v for v in CANONICALIZE_VECTORS if bytes.fromhex(v["input_hex"]).isascii()]


@pytest.mark.parametrize("vector", _TEXT_VECTORS, ids=[v["input_repr"] for v in _TEXT_VECTORS])
def test_published_canonicalization_examples_as_text(vector: dict[str, str]) -> None:
    assert canonicalize(bytes.fromhex(vector["input_hex"]).decode("ascii")) == vector["canonical"]


@pytest.mark.parametrize("vector", EXPRESSION_VECTORS, ids=[v["url"] for v in EXPRESSION_VECTORS])
def test_published_expression_examples(vector: dict[str, Any]) -> None:
    got = expressions(vector["url"])
    assert set(got) == set(vector["expressions"])
    assert len(got) == len(set(got))


def test_canonical_output_is_a_fixpoint_of_every_vector() -> None:
    for vector in CANONICALIZE_VECTORS:
        assert canonicalize(vector["canonical"]) == vector["canonical"]


# --- host -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "host",
    [
        "192.0.2.1",
        "3221225985",  # one decimal integer
        "0xC0000201",  # one hex integer
        "0xc0.0x0.0x2.0x1",  # hex components
        "0300.0.02.01",  # octal components
        "0300.0000.0002.0001",
        "192.0.513",  # three components: the last fills two bytes
        "192.513",  # two components: the last fills three bytes
        "0xc0.0.2.1",
    ],
)
def test_ipv4_notations_become_dotted_decimal(host: str) -> None:
    assert canonicalize(f"http://{host}/a") == "http://192.0.2.1/a"


@pytest.mark.parametrize("host", ["0x100.0.2.1", "192.0.2.256", "192.0.131072", "4294967296"])
def test_ipv4_component_out_of_range_is_refused(host: str) -> None:
    with pytest.raises(InvalidURL, match="IPv4"):
        canonicalize(f"http://{host}/")


def test_number_like_host_that_is_not_ipv4_stays_a_name() -> None:
    # 09 is not octal and a fifth component is not IPv4: inet_aton refuses
    # both, so they are names (lowercased, nothing else).
    assert canonicalize("http://192.0.2.09/") == "http://192.0.2.09/"
    assert canonicalize("http://1.192.0.2.1/") == "http://1.192.0.2.1/"


_RESERVED_V4_NETS = [(192, 0, 2), (198, 51, 100), (203, 0, 113)]


def _notation(value: int) -> st.SearchStrategy[str]:
    return st.one_of(
        st.just(str(value)),
        st.integers(1, 3).map(lambda zeros: "0" * zeros + format(value, "o")),
        st.tuples(st.sampled_from(["0x", "0X"]), st.integers(0, 2), st.booleans()).map(
            lambda t: t[0] + "0" * t[1] + format(value, "X" if t[2] else "x")
        ),
    )


@st.composite
def ipv4_notations(draw: st.DrawFn) -> tuple[str, str]:
    """An address in the documentation ranges, written in 1-4 inet_aton components."""
    octets = [*draw(st.sampled_from(_RESERVED_V4_NETS)), draw(st.integers(0, 255))]
    value = int.from_bytes(bytes(octets), "big")
    count = draw(st.integers(1, 4))
    values = [*octets[: count - 1], value & ((1 << (8 * (5 - count))) - 1)]
    text = ".".join(draw(_notation(v)) for v in values)
    return text, ".".join(map(str, octets))


@given(ipv4_notations())
def test_ipv4_notations_agree_with_inet_aton(case: tuple[str, str]) -> None:
    text, dotted = case
    # The C library's inet_aton is the classic definition of "any legal
    # IP-address encoding"; it and this module must read the text alike.
    assert socket.inet_ntoa(socket.inet_aton(text)) == dotted
    assert canonicalize(f"http://{text}/") == f"http://{dotted}/"


def test_idn_uses_uts46_non_transitional_processing() -> None:
    # Transitional processing would map ß to ss: another, innocent domain.
    assert canonicalize("http://faß.example/") == "http://xn--fa-hia.example/"
    assert expression("http://faß.example/x") == "xn--fa-hia.example/x"
    assert canonicalize("http://FAß.example/") == "http://xn--fa-hia.example/"
    assert canonicalize("http://BÜCHER.example/") == "http://xn--bcher-kva.example/"
    # The ideographic full stop is a label separator under UTS #46.
    assert canonicalize("http://faß\u3002example/") == "http://xn--fa-hia.example/"
    # Percent-escaped UTF-8 is unescaped first, then converted.
    assert canonicalize("http://fa%C3%9F.example/") == "http://xn--fa-hia.example/"


@pytest.mark.parametrize(
    "host",
    [
        "\ufffd.example",  # disallowed code point
        "a\u2028b.example",  # line separator
        "\uff41\uff0fb.example",  # fullwidth solidus would map to '/'
        "\uff41\uff05\uff14\uff11.example",  # fullwidth "%41" would map to an escape
    ],
)
def test_idn_that_uts46_refuses_is_invalid(host: str) -> None:
    with pytest.raises(InvalidURL, match="internationalised host"):
        canonicalize(f"http://{host}/")


def test_host_bytes_that_are_not_utf8_are_refused() -> None:
    with pytest.raises(InvalidURL, match="UTF-8"):
        canonicalize(b"http://\xff\xfe.example/")


@pytest.mark.parametrize(
    ("host", "canonical"),
    [
        ("[2001:0DB8:0000:0000:0000:0000:0000:0001]", "[2001:db8::1]"),
        ("[2001:db8:0:0:1:0:0:1]", "[2001:db8::1:0:0:1]"),  # first longest run
        ("[2001:db8:0:1:1:1:1:1]", "[2001:db8:0:1:1:1:1:1]"),  # no :: for one group
        ("[2001:db8::]", "[2001:db8::]"),
        ("[2001:db8::1]:8443", "[2001:db8::1]"),
        ("user@[2001:db8::1]:", "[2001:db8::1]"),
    ],
)
def test_ipv6_is_compressed_per_rfc5952(host: str, canonical: str) -> None:
    assert canonicalize(f"http://{host}/p") == f"http://{canonical}/p"


@pytest.mark.parametrize(
    "host",
    [
        "[::ffff:192.0.2.1]",
        "[::FFFF:c000:201]",
        "[64:ff9b::c000:201]",
        "[64:ff9b::192.0.2.1]",
        "[0064:ff9b:0:0:0:0:c000:0201]",
    ],
)
def test_ipv4_mapped_and_nat64_become_ipv4(host: str) -> None:
    assert canonicalize(f"http://{host}/") == "http://192.0.2.1/"
    assert expressions(f"http://{host}/a/b") == ["192.0.2.1/a/b", "192.0.2.1/a/", "192.0.2.1/"]


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://[2001:db8::1/", "closing"),
        ("http://[2001:db8::zz]/", "IPv6"),
        ("http://[fe80::1%25eth0]/", "zone"),
        ("http://[2001:db8::1]x/", "after"),
        ("http://2001:db8::1/", "brackets"),
        ("http://..[/", r"'\['"),
    ],
)
def test_malformed_ipv6_is_refused(url: str, message: str) -> None:
    with pytest.raises(InvalidURL, match=message):
        canonicalize(url)


def test_userinfo_and_port_are_dropped() -> None:
    assert canonicalize("http://user:secret@www.example.com:8080/a") == "http://www.example.com/a"
    assert canonicalize("https://user@example.com:/") == "https://example.com/"
    assert canonicalize("example.com:8080/x") == "http://example.com/x"
    assert canonicalize("a@b@example.org/") == "http://example.org/"


def test_port_must_be_a_number() -> None:
    with pytest.raises(InvalidURL, match="port"):
        canonicalize("http://example.com:80a/")


def test_scheme_is_kept_lowercased_and_ignored_by_expressions() -> None:
    assert canonicalize("HTTPS://EXAMPLE.COM/A") == "https://example.com/A"
    assert canonicalize("ftp://example.com/f.txt") == "ftp://example.com/f.txt"
    assert expressions("ftp://example.com/f") == expressions("http://example.com/f")


@pytest.mark.parametrize(
    ("url", "scheme"),
    [
        ("mailto:abuse@example.com", "mailto"),
        ("javascript:alert(1)", "javascript"),
        ("javascript%3Aalert(1)", "javascript"),  # escaped ':' is unescaped first
        ("JavaScript:1", "javascript"),  # would otherwise read as host:port
        ("tel:5550100", "tel"),
        ("data:text/html,hello", "data"),
        ("file:///etc/hosts", "file"),
        ("gopher://example.com/", "gopher"),
        ("ws://example.com/", "ws"),
    ],
)
def test_non_web_schemes_are_refused(url: str, scheme: str) -> None:
    with pytest.raises(InvalidURL, match=f"'{scheme}'.*only http, https and ftp"):
        canonicalize(url)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("", "empty"),
        ("  \t\n ", "empty"),
        ("#fragment-only", "empty"),
        ("http://", "no host"),
        ("http:///path", "no host"),
        ("http://.../", "no host"),
        ("//example.com/", "no host"),
        ("http:example.com", "'//'"),
        ("http:/example.com/", "'//'"),
    ],
)
def test_urls_without_a_host_are_refused(url: str, message: str) -> None:
    with pytest.raises(InvalidURL, match=message):
        canonicalize(url)


# --- path, query, escaping ---------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "canonical"),
    [
        ("/a/b/../c", "/a/c"),
        ("/a/./b", "/a/b"),
        ("/a/b/..", "/a/"),  # a trailing dot segment names a directory (RFC 3986)
        ("/a/.", "/a/"),
        ("/../a", "/a"),
        ("//a//b//", "/a/b/"),
        ("/a//../b", "/b"),  # slashes collapse before '..' is resolved
        ("/%2e%2e/a/%2E/b", "/a/b"),  # escaped dots are dots once unescaped
        ("/.hidden/...", "/.hidden/..."),
        ("", "/"),
    ],
)
def test_path_is_resolved_and_collapsed(path: str, canonical: str) -> None:
    assert canonicalize(f"http://example.com{path}") == f"http://example.com{canonical}"


def test_query_is_kept_as_is_but_escaped() -> None:
    assert canonicalize("http://example.com/p?a/../b//c") == "http://example.com/p?a/../b//c"
    assert canonicalize("http://example.com/p?a%23b#frag") == "http://example.com/p?a%23b"
    assert canonicalize("http://example.com/p?q r") == "http://example.com/p?q%20r"


def test_escapes_use_upper_case_hex_and_keep_escaped_control_characters() -> None:
    # SB v4: remove raw tab/CR/LF, but not their escapes.
    assert canonicalize("http://example.com/a%0ab%09") == "http://example.com/a%0Ab%09"
    assert canonicalize("http://example.com/%7e%7E") == "http://example.com/~~"
    assert canonicalize("http://example.com/é") == "http://example.com/%C3%A9"
    assert canonicalize(b"http://example.com/\xff\x7f") == "http://example.com/%FF%7F"


def test_text_with_a_lone_surrogate_is_refused() -> None:
    with pytest.raises(InvalidURL, match="surrogate"):
        canonicalize("http://example.com/\ud800")


def test_input_at_the_size_limit_is_accepted_and_one_byte_more_refused() -> None:
    prefix = "http://example.com/"
    at_limit = prefix + "a" * (MAX_URL_BYTES - len(prefix))
    assert canonicalize(at_limit) == at_limit
    assert canonicalize(at_limit.encode()) == at_limit
    with pytest.raises(InvalidURL, match=str(MAX_URL_BYTES)):
        canonicalize(at_limit + "a")
    with pytest.raises(InvalidURL, match=str(MAX_URL_BYTES)):
        canonicalize((at_limit + "a").encode())


def test_canonical_form_over_the_size_limit_is_refused() -> None:
    # 3,000 inner control bytes fit the input limit but grow to 9,000 escaped;
    # refusing keeps every canonical URL canonicalisable again.
    with pytest.raises(InvalidURL, match="canonical URL is longer"):
        canonicalize("http://example.com/" + "\x01" * 3000 + "a")


def test_other_types_are_a_programming_error() -> None:
    with pytest.raises(TypeError):
        canonicalize(123)  # type: ignore[arg-type]


# --- laws (Hypothesis) ----------------------------------------------------------------

_URL_PIECES = st.sampled_from(
    [
        *"aZ09.-_~/?#@:[]% ",
        "%2F",
        "%3f",
        "%23",
        "%25",
        "%2e%2e",
        "%41",
        "..",
        "\t",
        "\n",
        "\x01",
        "\x80",
        "ß",
        "é",
        "\u3002",
        "\uff0f",
        "\uff05",
        "0x",
        "08",
        "[2001:db8::1]",
        "::ffff:",
        "192.0.2.1",
        "example.com",
    ]
)
URLISH = st.tuples(
    st.sampled_from(["", "http://", "HTTPS://", "ftp://", "mailto:", "//", "x:", " http://"]),
    st.lists(_URL_PIECES, max_size=24).map("".join),
).map("".join)

ANY_INPUT = st.one_of(URLISH, st.text(), st.binary(), URLISH.map(lambda s: s.encode("utf-8")))

_CANONICAL_RE = re.compile(r"(?:https?|ftp)://[^/?]+/[^?]*(?:\?.*)?", re.DOTALL)


@settings(max_examples=1500)
@given(ANY_INPUT)
def test_canonicalize_only_raises_invalid_url_and_is_idempotent(url: str | bytes) -> None:
    try:
        canonical = canonicalize(url)
    except InvalidURL:
        return
    assert canonicalize(canonical) == canonical
    assert canonicalize(canonical.encode("ascii")) == canonical
    # The canonical form is printable ASCII with well-formed upper-case escapes.
    assert _CANONICAL_RE.fullmatch(canonical)
    assert all(0x20 < ord(c) < 0x7F for c in canonical)
    assert "#" not in canonical
    assert all(re.fullmatch(r"[0-9A-F]{2}", canonical[i + 1 : i + 3]) for i in _percents(canonical))


def _percents(text: str) -> list[int]:
    return [i for i, c in enumerate(text) if c == "%"]


@settings(max_examples=500)
@given(ANY_INPUT, st.sampled_from(["page", "prefix", "host"]))
def test_expression_functions_only_raise_invalid_url(url: str | bytes, scope: str) -> None:
    try:
        expr = expression(url, scope)
        lookups = expressions(url)
    except InvalidURL:
        return
    assert expr.isascii()
    assert 1 <= len(lookups) <= 30
    assert len(lookups) == len(set(lookups))


# --- expressions ------------------------------------------------------------------


def test_expression_per_scope() -> None:
    url = "http://www.example.com/dir/sub/page.html?id=1"
    assert expression(url) == "www.example.com/dir/sub/page.html?id=1"
    assert expression(url, "page") == "www.example.com/dir/sub/page.html?id=1"
    assert expression(url, "prefix") == "www.example.com/dir/sub/"
    assert expression(url, "host") == "www.example.com/"
    assert expression("http://example.com/dir/", "prefix") == "example.com/dir/"
    assert expression("http://example.com/page.html", "prefix") == "example.com/"


def test_page_expression_omits_an_empty_query() -> None:
    # Lookups only try path+query when the query is non-empty, so "x?" would
    # never match anything.
    assert canonicalize("http://example.com/x?") == "http://example.com/x?"
    assert expression("http://example.com/x?") == "example.com/x"
    assert "example.com/x?" not in expressions("http://example.com/x?")


def test_unknown_scope_is_refused() -> None:
    with pytest.raises(InvalidEntry, match="page, prefix, host"):
        expression("http://example.com/", "domain")


def test_lookup_hosts_use_the_last_five_labels_and_skip_the_tld() -> None:
    url = "http://a.b.c.d.e.example.com/"
    hosts = {e.split("/")[0] for e in expressions(url)}
    assert hosts == {
        "a.b.c.d.e.example.com",
        "c.d.e.example.com",
        "d.e.example.com",
        "e.example.com",
        "example.com",
    }
    assert {e.split("/")[0] for e in expressions("http://test/")} == {"test"}


def test_lookup_paths_are_exact_and_the_first_three_directories() -> None:
    got = expressions("http://example.com/a/b/c/d/e/page.html?q=1")
    assert got == [
        "example.com/a/b/c/d/e/page.html?q=1",
        "example.com/a/b/c/d/e/page.html",
        "example.com/a/b/c/",
        "example.com/a/b/",
        "example.com/a/",
        "example.com/",
    ]


def test_lookups_order_most_specific_host_first() -> None:
    got = expressions("http://www.example.com/a")
    assert got == ["www.example.com/a", "www.example.com/", "example.com/a", "example.com/"]


def test_ipv6_host_yields_only_itself() -> None:
    assert set(expressions("http://[2001:db8::1]/a/b.html")) == {
        "[2001:db8::1]/a/b.html",
        "[2001:db8::1]/a/",
        "[2001:db8::1]/",
    }


def naive_lookup_expressions(canonical_url: str) -> set[str]:
    """SB v4 "Suffix/prefix expressions", re-read independently of the module."""
    rest = canonical_url.split("://", 1)[1]
    host, path_query = rest[: rest.index("/")], rest[rest.index("/") :]
    path, _, query = path_query.partition("?")
    hosts = {host}
    if not (host.startswith("[") or re.fullmatch(r"[0-9.]+", host)):
        last_five = host.split(".")[-5:]
        while len(last_five) > 1:  # never the bare top-level label
            hosts.add(".".join(last_five))
            last_five = last_five[1:]
    paths = {path, "/"}
    if query:
        paths.add(f"{path}?{query}")
    directories = path.split("/")[1:-1]  # the last component is never a prefix
    prefix = "/"
    for directory in directories[:3]:
        prefix += directory + "/"
        paths.add(prefix)
    return {h + p for h in hosts for p in paths}


LABELS = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=6)
HOSTS = st.one_of(
    st.tuples(
        st.lists(LABELS, max_size=6), st.sampled_from(["example.com", "example.org", "test"])
    ).map(lambda t: ".".join([*t[0], t[1]])),
    st.integers(0, 255).map(lambda i: f"192.0.2.{i}"),
    st.integers(0, 0xFFFF).map(lambda i: f"[2001:db8::{i:x}]"),
)
SEGMENTS = st.text(alphabet="abcXYZ019-._~!$&'()*+,;=:@%é ", min_size=1, max_size=6)
QUERIES = st.none() | st.text(alphabet="ab=&/?.%19 ", max_size=6)


@st.composite
def web_urls(draw: st.DrawFn) -> str:
    scheme = draw(st.sampled_from(["http://", "https://", "ftp://"]))
    path = "/" + "/".join(draw(st.lists(SEGMENTS, max_size=7)))
    if draw(st.booleans()):
        path += "/"
    query = draw(QUERIES)
    return scheme + draw(HOSTS) + path + ("" if query is None else "?" + query)


@settings(max_examples=500)
@given(web_urls())
def test_expressions_agree_with_a_naive_reading_of_the_spec(url: str) -> None:
    canonical = canonicalize(url)
    got = expressions(url)
    assert set(got) == naive_lookup_expressions(canonical)
    assert len({split_expression(e)[0] for e in got}) <= 5
    assert len({split_expression(e)[1] for e in got}) <= 6
    # The entry expressions of a URL are among its own lookups (except a
    # prefix deeper than the lookups go).
    assert expression(url, "page") in got
    assert expression(url, "host") in got


# --- hashing and splitting ---------------------------------------------------------


def test_expression_hash_is_sha256_of_utf8() -> None:
    # Value from `printf 'example.com/' | sha256sum`.
    assert (
        expression_hash("example.com/").hex()
        == "73d986e009065f182c10bcb6a45db3d6eda9498f8930654af2653f8a938cd801"
    )
    assert (
        expression_hash("xn--fa-hia.example/é")
        == hashlib.sha256("xn--fa-hia.example/é".encode()).digest()
    )
    assert len(expression_hash("")) == 32


def test_split_expression() -> None:
    assert split_expression("example.com/a/b?c=/d") == ("example.com", "/a/b?c=/d")
    assert split_expression("example.com/") == ("example.com", "/")
    assert split_expression("[2001:db8::1]/x") == ("[2001:db8::1]", "/x")
    for bad in ("example.com", "/path", ""):
        with pytest.raises(InvalidEntry, match="host/path"):
            split_expression(bad)


def test_is_ip_host() -> None:
    assert is_ip_host("192.0.2.1")
    assert is_ip_host("[2001:db8::1]")
    assert not is_ip_host("example.com")
    assert not is_ip_host("192.0.2.09")
    assert not is_ip_host("1.192.0.2.1")


# --- the plain-URL fast path ------------------------------------------------------
#
# Most URLs need none of the byte-level steps (no escape, no dot segment, no
# port, a lower-case scheme, a name that is no IPv4 notation), and
# canonical._parse_plain reads them with one regular expression. It must
# answer only where the general path would return the very same parts; the
# strategy below lives on that boundary: every piece is either plain or one
# character away from needing a general step.

_PRINTABLE = "".join(chr(c) for c in range(0x21, 0x7F))
_PLAIN_LABEL = st.text(alphabet="abcxyzABCXYZ0189-_", min_size=1, max_size=6)
_PLAIN_SEGMENT = st.tuples(
    st.text(alphabet=sorted(set(_PRINTABLE) - set("#%?/.")), min_size=1, max_size=1),
    st.text(alphabet=sorted(set(_PRINTABLE) - set("#%?/")), max_size=6),
).map("".join)
_PLAIN_QUERY = st.text(alphabet=sorted(set(_PRINTABLE) - set("#%")), max_size=8)


@st.composite
def plain_urls(draw: st.DrawFn) -> str:
    """URLs the fast path is meant for: nothing for the general steps to do."""
    scheme = draw(st.sampled_from(["http", "https", "ftp"]))
    labels = draw(st.lists(_PLAIN_LABEL, max_size=6))
    last = draw(st.sampled_from("aZ")) + draw(st.text(alphabet="az09-_", max_size=4))
    segments = draw(st.lists(_PLAIN_SEGMENT, max_size=6))
    trailing_slash = draw(st.booleans())
    path = "/" + "/".join(segments) + ("/" if segments and trailing_slash else "")
    if not segments and trailing_slash:
        path = ""  # no path at all: canonically "/"
    query = draw(st.none() | _PLAIN_QUERY)
    return f"{scheme}://{'.'.join([*labels, last])}{path}{'' if query is None else '?' + query}"


#: One edit away from plain: each of these needs (or may need) a general step.
_NEAR_PLAIN_EDITS = st.sampled_from(
    [*"%#?/.:@[]\\ \t\n\x00\x7f\x80éA0", "%41", "%2e", "%2F", "..", "/.", "/..", "//", ":80",
     "0x", "08", "09", "\u3002", "\uff0f", "http:", "HTTP"]
)  # fmt: skip


_SCHEME_VARIANTS = st.sampled_from(
    ["HTTP", "Http", "hTTps", "FTP", "ftps", "httpx", "h", "", "1http"]
)


@st.composite
def near_plain_urls(draw: st.DrawFn) -> str:
    url = draw(plain_urls())
    if draw(st.booleans()):
        url = draw(_SCHEME_VARIANTS) + url[url.index(":") :]
    for _ in range(draw(st.integers(0, 2))):
        at = draw(st.integers(0, len(url)))
        url = url[:at] + draw(_NEAR_PLAIN_EDITS) + url[at + draw(st.integers(0, 1)) :]
    return url


def test_plain_urls_all_take_the_fast_path() -> None:
    # The law below is only as good as the share of URLs that reach the fast
    # path; every URL of this generator must.
    @settings(max_examples=300)
    @given(plain_urls())
    def check(url: str) -> None:
        assert _parse_plain(url) is not None, url

    check()


@settings(max_examples=3000)
@given(st.one_of(plain_urls(), near_plain_urls(), near_plain_urls(), URLISH, web_urls()))
def test_plain_fast_path_equals_the_general_path(url: str) -> None:
    plain = _parse_plain(url)
    if plain is None:
        return  # the general path decides (and raises what it raises)
    assert plain == _parse_general(url)
    # What the public functions build from the parts agrees as well.
    assert canonicalize(url) == canonicalize(url.encode("utf-8"))
    assert expressions(url) == expressions(url.encode("utf-8"))


@pytest.mark.parametrize(
    "url",
    [
        "http://www.example.com/a/b.html?q=1",
        "https://EXAMPLE.org",
        "ftp://h_1.Example.test/x?y?z/../w",
        "http://example.com?q",
        "http://example.com/a/b/c/d/e/",
        "http://1.2.3.example/~u/(x)!*'@:;=,+$&",
    ],
)
def test_plain_fast_path_takes_ordinary_urls(url: str) -> None:
    # Not a performance assertion: it makes sure the law above is exercised
    # on the URLs it exists for.
    plain = _parse_plain(url)
    assert plain is not None
    assert plain == _parse_general(url)


@pytest.mark.parametrize(
    "url",
    [
        "HTTP://example.com/",  # scheme case
        "http://example.com./",  # trailing dot
        "http://Example..com/",  # dot run
        "http://example.com:80/",  # port
        "http://user@example.com/",  # userinfo
        "http://192.0.2.1/",  # IPv4
        "http://example.0x7f/",  # last label an IPv4 component
        "http://faß.example/",  # IDN
        "http://example.com/a/../b",  # dot segment
        "http://example.com/.well-known/x",  # any segment starting with a dot
        "http://example.com/a//b",  # empty segment
        "http://example.com/%41",  # escape
        "http://example.com/a#frag",  # fragment
        "http://example.com/a b",  # space
        "http://example.com/\x7f",  # DEL
        "example.com/",  # no scheme
        "http://example.com/" + "a" * (MAX_URL_BYTES - 19),  # at the size limit
    ],
)
def test_plain_fast_path_leaves_everything_else_to_the_general_path(url: str) -> None:
    assert _parse_plain(url) is None
