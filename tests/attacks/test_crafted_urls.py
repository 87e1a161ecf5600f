"""Crafted URLs at entry time (issue 12, items 15-17).

A hotline takes URLs from public reports, so a reporter controls the text an
analyst pastes. Safe Browsing canonicalisation is lenient by design (it must
give every visited URL some expression), so before these checks a crafted
report could make an entry name another host than the one a browser visits
(``http://abuse.test\\@example.com/`` became ``example.com/``), or list a
host that is no host name at all (``*.com/``, ``localhost/``), signed and
exported to every ISP. An analyst could also widen a page to its whole host
without noticing (a page URL with scope ``host``).

Each attack goes through the API as an analyst would (add, preview, bulk
JSON, bulk CSV) and through the domain function :func:`plan_entry`; each
refusal must change nothing in the database. Lookups of visited URLs stay
as lenient as Safe Browsing: the ISP's matcher still answers for them.
"""

from __future__ import annotations

from typing import Any

import pytest
from support.api_testing import MAIN, db_state
from support.attack_helpers import World

from blocklist.canonical import expression_hash, expressions
from blocklist.entries import plan_entry
from blocklist.errors import AmbiguousHost, InvalidEntry, InvalidHost, InvalidURL
from clients.isp.lookup import Matcher

ENTRIES = f"/v1/lists/{MAIN}/entries"

#: Item 15: the host a browser visits (WHATWG URL) is not the host Safe
#: Browsing canonicalisation reads. Each value is the host SB reads (and the
#: old code put in the entry); a browser visits abuse.test or nothing.
AMBIGUOUS = {
    # '\' ends the authority in special URLs (WHATWG "authority state"): the
    # browser visits abuse.test; SB kept '\' and took the host after '@'.
    "http://abuse.test\\@example.com/": "example.com",
    # The last '@' splits userinfo off (WHATWG): the browser visits
    # abuse.test; SB unescaped %2F first and split the host at it.
    "http://example.com%2F@abuse.test/": "example.com",
    # Plain userinfo: a classic disguise of the real host.
    "https://example.com@abuse.test/page.html": "abuse.test",
    # Percent-escaped delimiters in the host: a browser refuses the host
    # (forbidden domain code point after percent-decoding), SB reads example.com.
    "http://example.com%2F.abuse.test/page.html": "example.com",
    "http://example.com%3F.abuse.test/": "example.com",
    "http://example.com%5C.abuse.test/": "example.com\\.abuse.test",
    "http://abuse.test%40example.com/": "example.com",
    # A double escape: a browser decodes once (and refuses '%'), SB decodes
    # until nothing is left.
    "http://example.com%252F.abuse.test/page.html": "example.com",
}

#: Item 16: hosts that are no host name (nor an IP address).
INVALID_HOSTS = [
    ("http://*.com/", "host"),
    ("http://*.example.com/", "host"),
    ('http://ex"ample.com/', "host"),
    ("http://-dash.example.test/", "host"),
    ("http://dash-.example.test/page.html", "page"),
    ("http://not%20a%20url.test/", "host"),
    ("http://ex$ample.test/page.html", "page"),
    ("http://localhost/", "host"),
    ("http://localhost/page.html", "page"),
    ("http://example.1/page.html", "page"),
    ("http://xn--zz.example.test/", "host"),
]


def _post(w: World, path: str, body: Any, **kwargs: Any) -> Any:
    return w.call("POST", f"{ENTRIES}{path}", w.tokens.alice, json=body, **kwargs)


def _refused_everywhere(w: World, url: str, scope: str, code: str) -> list[str]:
    """Submit ``url`` by every entry route; return the details; assert nothing was stored."""
    before = db_state(w.d.db)
    details = []

    r = _post(w, "", {"url": url, "scope": scope, "reason": "crafted report"})
    assert r.status_code == 422, (url, r.status_code, r.text)
    assert r.json()["code"] == code, (url, r.text)
    details.append(r.json()["detail"])

    preview = _post(w, "/preview", {"url": url, "scope": scope})
    assert preview.status_code == 200, preview.text
    body = preview.json()
    assert body["accepted"] is False, (url, body)
    assert body["refusal"]["code"] == code, (url, body)
    details.append(body["refusal"]["detail"])

    bulk = _post(w, "/bulk", [{"url": url, "scope": scope, "reason": "crafted report"}])
    assert bulk.status_code == 200, bulk.text
    row = bulk.json()["results"][0]
    assert (row["status"], row["code"]) == ("failed", code), (url, row)

    csv_text = 'url,scope,reason\n"' + url.replace('"', '""') + f'",{scope},crafted report\n'
    csv = w.call(
        "POST",
        f"{ENTRIES}/bulk.csv",
        w.tokens.alice,
        content=csv_text.encode(),
        headers={"Content-Type": "text/csv"},
    )
    assert csv.status_code == 200, csv.text
    row = csv.json()["results"][0]
    assert (row["status"], row["code"]) == ("failed", code), (url, row)

    assert db_state(w.d.db) == before, url
    return details


# --- item 15: the host a browser visits ---------------------------------------------


def test_crafted_authority_cannot_get_an_innocent_host_listed(world: World) -> None:
    for url, sb_host in AMBIGUOUS.items():
        # The premise: Safe Browsing's lenient reading names another host.
        assert expressions(url)[0].split("/")[0] == sb_host, url
        # The scope the old code accepted it with: a whole host for "host/".
        scope = "host" if url.endswith(".test/") or url.endswith(".com/") else "page"
        details = _refused_everywhere(world, url, scope, "ambiguous_host")
        # Refusals never echo the URL (they may reach logs).
        assert all("example.com" not in d and "abuse.test" not in d for d in details)
        # The preview shows no reach: the expression would name the wrong host.
        preview = _post(world, "/preview", {"url": url, "scope": scope}).json()
        assert preview["reach"] is None, (url, preview)


@pytest.mark.parametrize("url", sorted(AMBIGUOUS))
def test_crafted_authority_refused_by_the_domain_at_every_scope(url: str) -> None:
    for scope in ("page", "prefix", "host"):
        with pytest.raises(AmbiguousHost) as caught:
            plan_entry(url, scope)
        assert caught.value.code == "ambiguous_host"
        assert isinstance(caught.value, InvalidURL)


def test_what_a_browser_reads_is_still_accepted(world: World) -> None:
    # The same characters outside the authority are data of the path or query.
    cases = {
        "http://abuse.test/@example.com/page.html": "abuse.test/@example.com/page.html",
        "http://abuse.test/a%2Fb.html": "abuse.test/a/b.html",
        "http://abuse.test/page.html?next=http://x@example.com": (
            "abuse.test/page.html?next=http://x@example.com"
        ),
        "http://abuse.test:8080/page.html#user@example.com": "abuse.test/page.html",
        "http://ex%61mple.test/page.html": "example.test/page.html",
    }
    for url, expected in cases.items():
        assert plan_entry(url, "page").expression == expected
        r = _post(world, "", {"url": url, "scope": "page", "reason": "report"})
        assert r.status_code == 201, (url, r.text)
        assert r.json()["expression"] == expected


def test_lookups_of_crafted_urls_stay_lenient() -> None:
    # An ISP still looks such URLs up the Safe Browsing way: a host entry of
    # example.com matches the URL SB reads as example.com, as Google's would.
    matcher = Matcher({expression_hash("example.com/")})
    assert matcher.match("http://abuse.test\\@example.com/").listed
    assert matcher.match("http://example.com%2F@abuse.test/").listed
    assert "example.com/" in expressions("http://user@example.com/page.html")


# --- item 16: valid host names or IP addresses only -----------------------------------


def test_hosts_that_are_no_host_names_are_refused(world: World) -> None:
    for url, scope in INVALID_HOSTS:
        _refused_everywhere(world, url, scope, "invalid_host")
        preview = _post(world, "/preview", {"url": url, "scope": scope}).json()
        assert preview["reach"] is None, (url, preview)
        with pytest.raises(InvalidHost) as caught:
            plan_entry(url, scope)
        assert isinstance(caught.value, InvalidEntry)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://*.com/", "'\\*'"),
        ('http://ex"ample.com/', "'\"'"),
        ("http://-dash.example.test/", "starts or ends with '-'"),
        ("http://not%20a%20url.test/", "escapes as %XX"),
        ("http://localhost/", "single label"),
        ("http://example.1/", "is a number"),
        ("http://xn--zz.example.test/", "not valid punycode"),
    ],
)
def test_invalid_host_messages_say_what_is_wrong(url: str, message: str) -> None:
    with pytest.raises(InvalidHost, match=message):
        plan_entry(url, "host")


def test_valid_hosts_and_addresses_are_accepted(world: World) -> None:
    cases = {
        "http://abuse-host.example.test/": "abuse-host.example.test/",
        "http://_dmarc.abuse.example.test/": "_dmarc.abuse.example.test/",
        "http://bücher.example/": "xn--bcher-kva.example/",
        "http://192.0.2.1/": "192.0.2.1/",
        "http://3221225986/": "192.0.2.2/",
        "http://[2001:db8::1]/": "[2001:db8::1]/",
    }
    for url, expected in cases.items():
        assert plan_entry(url, "host").expression == expected
        r = _post(world, "", {"url": url, "scope": "host", "reason": "report"})
        assert r.status_code == 201, (url, r.text)
        assert r.json()["expression"] == expected


def test_lookups_on_single_label_hosts_stay_lenient() -> None:
    # Visited URLs are never held to the entry rules (Squid helper, isp check).
    assert expressions("http://localhost/a.html") == ["localhost/a.html", "localhost/"]
    assert Matcher({expression_hash("localhost/")}).match("http://localhost/a.html").listed
    assert expressions("http://*.example.com/")[0] == "*.example.com/"


# --- item 17: entry-time errors say what is wrong ------------------------------------


def test_not_a_url_is_called_not_an_absolute_url(world: World) -> None:
    for text in (
        "not a url",
        "example.com/page.html",
        "example.com:8080/page.html",
        "http:example.com/page.html",
        "http:///example.com/page.html",
    ):
        details = _refused_everywhere(world, text, "page", "invalid_url")
        for detail in details:
            assert "not an absolute http(s) URL" in detail, (text, detail)
            assert "path" not in detail, (text, detail)
        with pytest.raises(InvalidURL, match=r"not an absolute http\(s\) URL"):
            plan_entry(text, "page")


def test_page_url_with_scope_host_is_refused_not_widened(world: World) -> None:
    url = "http://abuse-host.example.test/gallery/1.html"
    details = _refused_everywhere(world, url, "host", "invalid_entry")
    for detail in details:
        assert "would become the host entry abuse-host.example.test/" in detail, detail
        # It names the host entry, never the page it was given.
        assert "gallery" not in detail, detail
    preview = _post(world, "/preview", {"url": url, "scope": "host"}).json()
    assert preview["accepted"] is False
    assert preview["reach"]["expression"] == "abuse-host.example.test/"
    assert preview["reach"]["scope"] == "host"
    for page_url in (
        url,
        "http://abuse-host.example.test/?q=1",
        "http://abuse-host.example.test/d/",
    ):
        with pytest.raises(InvalidEntry, match="would become the host entry"):
            plan_entry(page_url, "host")
    # The host's own root URL is still a host entry.
    assert plan_entry("http://abuse-host.example.test", "host").expression == (
        "abuse-host.example.test/"
    )
    assert plan_entry(url, "page").expression == "abuse-host.example.test/gallery/1.html"
