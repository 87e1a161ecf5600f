"""Exports for ISPs' filters (clients.isp.exports, clients.common.files).

Content and accounting of every format, the plaintext rules (DESIGN.md,
"Plaintext"), odd hosts that must never break a DNS file, and the atomic,
change-aware writes. The Squid regexes are cross-checked with Hypothesis
against the lookups (``check``) through Python's ``re``; the real consumers
(named-checkzone, squid, unbound-checkconf, dnsmasq, glibc regex) are in
test_exports_tools.py.
"""

from __future__ import annotations

import os
import re
import stat
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import unquote_to_bytes

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.export_inputs import DNS_MIX, WEIRD_HOSTS, WHEN, make_input

from blocklist.canonical import canonicalize, expression_hash, expressions, is_ip_host
from clients.common.files import write_atomic, write_if_changed
from clients.errors import ClientError, PlaintextMismatch
from clients.isp.exports.formats import (
    FORMATS,
    ExportError,
    ExportInput,
    MissingPlaintext,
    UnknownFormat,
)
from clients.isp.exports.output import output_paths, render, write_export
from clients.isp.exports.squid import squid_url_regex
from clients.isp.lookup import Matcher


def body_lines(content: bytes, comment: bytes = b"#") -> list[bytes]:
    return [line for line in content.splitlines() if line and not line.startswith(comment)]


def test_weird_hosts_are_what_canonicalisation_produces() -> None:
    for expr, url in WEIRD_HOSTS.items():
        assert expressions(url)[0] == expr


# --- hashes and urls ----------------------------------------------------------------


def test_hashes_export_is_sorted_lower_hex_and_works_hash_only() -> None:
    exprs = ["example.com/", "example.org/dir/", "example.net/page.html"]
    result = render("hashes", make_input(exprs, plaintext=False))
    expected = sorted(expression_hash(e).hex() for e in exprs)
    assert result.files == {"": "".join(f"{h}\n" for h in expected).encode()}
    assert (result.enforced, result.not_enforceable, result.notes) == (3, 0, [])


def test_hashes_export_deduplicates_and_checks_hash_sizes() -> None:
    h = expression_hash("example.com/")
    data = ExportInput(1, [h, h], None, "main", "o", WHEN)
    assert render("hashes", data).files[""] == h.hex().encode() + b"\n"
    with pytest.raises(ExportError, match="32 raw bytes"):
        render("hashes", ExportInput(1, [b"short"], None, "main", "o", WHEN))


def test_urls_export_lists_expressions_sorted() -> None:
    exprs = ["example.org/dir/", "example.com/", "example.net/page.html?x=1"]
    result = render("urls", make_input(exprs))
    assert result.files[""] == "".join(f"{e}\n" for e in sorted(exprs)).encode()
    assert (result.enforced, result.not_enforceable) == (3, 0)


@pytest.mark.parametrize("fmt", [f for f in FORMATS if f != "hashes"])
def test_hash_only_tier_produces_only_hashes(fmt: str) -> None:
    with pytest.raises(MissingPlaintext) as info:
        render(fmt, make_input(["example.com/", "example.org/"], plaintext=False))
    assert (info.value.missing, info.value.total) == (2, 2)
    assert "2 of 2 missing" in str(info.value)
    assert isinstance(info.value, ClientError)


@pytest.mark.parametrize("fmt", [f for f in FORMATS if f != "hashes"])
def test_plaintext_export_needs_every_expression(fmt: str) -> None:
    data = make_input(["example.com/", "example.org/", "example.net/"])
    assert data.expressions is not None
    partial = dict(data.expressions)
    del partial[expression_hash("example.org/")]
    incomplete = ExportInput(data.version, data.hashes, partial, "main", "o", WHEN)
    with pytest.raises(MissingPlaintext) as info:
        render(fmt, incomplete)
    assert (info.value.missing, info.value.total) == (1, 3)


def test_an_expression_must_hash_to_its_key() -> None:
    h = expression_hash("example.com/")
    data = ExportInput(1, [h], {h: "example.org/"}, "main", "o", WHEN)
    with pytest.raises(PlaintextMismatch):
        render("urls", data)


def test_unknown_format() -> None:
    with pytest.raises(UnknownFormat, match="csv"):
        render("csv", make_input(["example.com/"]))
    with pytest.raises(UnknownFormat):
        output_paths("csv", Path("x"))


def test_no_timestamp_in_files_so_unchanged_lists_export_identically() -> None:
    exprs = ["example.com/", "example.org/dir/", "example.net/p.html"]
    for fmt in FORMATS:
        a = render(fmt, make_input(exprs, generated=WHEN))
        b = render(fmt, make_input(exprs, generated=datetime(2030, 6, 1, tzinfo=UTC)))
        assert a.files == b.files, fmt


def test_headers_carry_origin_and_version_sanitised() -> None:
    data = make_input(["example.com/"], version=42)
    odd = ExportInput(42, data.hashes, data.expressions, "main\nx", "evil\n$TTL 0", WHEN)
    zone = render("rpz", odd).files[""].decode()
    assert "version 42" in zone
    # an origin cannot inject a directive: it stays inside the comment line
    assert [line for line in zone.splitlines() if line.startswith("$")] == ["$TTL 300"]


# --- squid ------------------------------------------------------------------------------


def test_squid_dstdomain_and_url_regex() -> None:
    exprs = [
        "example.com/",
        "192.0.2.1/",
        "[2001:db8::1]/",
        "a.b.c.d.e.example/",  # six labels: the exact host only
        "example.org/dir/",
        "example.net/page.html",
        "example.net/p?id=1",
        "localhost/",  # one label: the exact host only
    ]
    result = render("squid", make_input(exprs))
    assert set(result.files) == {".dstdomain", ".url_regex"}
    assert body_lines(result.files[".dstdomain"]) == sorted(
        [b".example.com", b"192.0.2.1", b"[2001:db8::1]", b"a.b.c.d.e.example", b"localhost"]
    )
    assert body_lines(result.files[".url_regex"]) == sorted(
        [
            rb"^(https?|ftp)://([^/@]*@)?([^/@:]*\.)?example\.org(:[0-9]+)?/dir/",
            rb"^(https?|ftp)://([^/@]*@)?([^/@:]*\.)?example\.net(:[0-9]+)?/page\.html(\?.*)?$",
            rb"^(https?|ftp)://([^/@]*@)?([^/@:]*\.)?example\.net(:[0-9]+)?/p\?id=1$",
        ]
    )
    assert (result.enforced, result.not_enforceable) == (8, 0)


def test_squid_drops_names_covered_by_a_parent_entry() -> None:
    exprs = [
        "a.example/",
        "b.a.example/",  # Squid refuses .b.a.example next to .a.example
        "c.d.e.f.g.a.example/",  # exact-only, still under .a.example
        "x.b.a.example/page.html",  # page on a blocked host: dstdomain blocks it
        "a.example/dir/",
    ]
    result = render("squid", make_input(exprs))
    assert body_lines(result.files[".dstdomain"]) == [b".a.example"]
    assert body_lines(result.files[".url_regex"]) == []
    assert (result.enforced, result.not_enforceable) == (5, 0)


def test_squid_regexes_escape_every_metacharacter() -> None:
    expr = canonicalize("http://example.com/a.b/c+d(e)*f?g=[h]{1}|^$%5C%23%25").split("://")[1]
    regex = squid_url_regex(expr)
    assert regex is not None
    path = regex.split(b"(:[0-9]+)?", 1)[1]
    assert path == rb"/a\.b/c\+d\(e\)\*f\?g=\[h]\{1}\|\^\$\\#%$"


def test_squid_regexes_hold_bytes_squid_decodes() -> None:
    # Squid percent-decodes the URL once before url_regex: the regex holds
    # the decoded bytes; whitespace and controls become classes so a line
    # never holds a space or a control byte.
    regex = squid_url_regex(canonicalize(b"http://example.com/a%20b%09c\xc3\xa9").split("://")[1])
    assert regex is not None
    assert regex.endswith(b"/a[[:blank:]]b[[:cntrl:]]c\xc3\xa9(\\?.*)?$")
    assert squid_url_regex("example.com/a%00b") is None  # NUL ends Squid's C string
    assert squid_url_regex("example.com/") is None  # whole hosts go to dstdomain
    assert squid_url_regex("%01%80.com/x") is None  # no such host on the wire


def test_squid_counts_what_it_cannot_enforce() -> None:
    exprs = ["example.com/a%00b", "%01%80.com/", "host%23.com/x", "example.com/ok.html"]
    result = render("squid", make_input(exprs))
    assert (result.enforced, result.not_enforceable) == (1, 3)
    assert any("NUL" in n for n in result.notes)
    assert body_lines(result.files[".dstdomain"]) == []


def test_squid_deep_prefix_is_an_exact_path() -> None:
    # Lookups try only three directory prefixes: a deeper "prefix" entry
    # matches its own path (and query variants), nothing below it.
    regex = squid_url_regex("example.com/a/b/c/d/")
    assert regex is not None
    assert regex.endswith(rb"/a/b/c/d/(\?.*)?$")
    shallow = squid_url_regex("example.com/a/b/c/")
    assert shallow is not None
    assert shallow.endswith(rb"/a/b/c/")


def _squid_blocks(files: dict[str, bytes], presented: bytes, host: str) -> bool:
    """Squid's dstdomain (suffix with a leading dot) or url_regex match."""
    for name in body_lines(files[".dstdomain"]):
        d = name.decode()
        if (d.startswith(".") and (host == d[1:] or host.endswith(d))) or host == d:
            return True
    return any(re.search(rx, presented) for rx in body_lines(files[".url_regex"]))


_LABEL = st.sampled_from(["a", "www", "example", "test", "x-y", "c_d"])
_HOSTS = st.lists(_LABEL, min_size=1, max_size=7).map(".".join) | st.sampled_from(
    ["192.0.2.1", "[2001:db8::1]"]
)
_SEGMENT = st.sampled_from(
    ["d", "f.html", "a+b", "c(1)", "x*y", "%23h", "%25", "q$", "^z", "{2}", "p|q", "[x]", "b%5Cs"]
)
_PATHS = st.lists(_SEGMENT, max_size=5).map(lambda s: "/" + "/".join(s)) | st.lists(
    _SEGMENT, min_size=1, max_size=5
).map(lambda s: "/" + "/".join(s) + "/")
_QUERIES = st.sampled_from(["", "?q=1", "?q=.*", "?a=b?c"])
_PORTS = st.sampled_from(["", ":8080"])
_URLS = st.builds(
    lambda sc, h, port, p, q: f"{sc}://{h}{port}{p}{q}",
    st.sampled_from(["http", "https", "ftp"]),
    _HOSTS,
    _PORTS,
    _PATHS,
    _QUERIES,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(listed_urls=st.lists(_URLS, min_size=1, max_size=6), probes=st.lists(_URLS, max_size=6))
def test_squid_export_blocks_what_check_blocks(listed_urls: list[str], probes: list[str]) -> None:
    exprs: set[str] = set()
    for i, u in enumerate(listed_urls):
        candidates = expressions(u)
        exprs.add(candidates[i % len(candidates)])
    result = render("squid", make_input(sorted(exprs)))
    assert result.not_enforceable == 0
    matcher = Matcher(expression_hash(e) for e in exprs)
    variants = [u.replace("://", "://www.", 1) for u in listed_urls if "[" not in u]
    variants += [u.split("?")[0].rstrip("/") + "/x/y.html" for u in listed_urls]
    for url in [*listed_urls, *variants, *probes]:
        canonical = canonicalize(url)
        scheme = url.split("://")[0]
        host = canonical.split("://")[1].split("/")[0]
        if host.rsplit(".", 1)[-1].isdigit() and not is_ip_host(host):
            # "www.192.0.2.1": lookups see the suffix "192.0.2.1", but no
            # such name resolves (there is no numeric TLD): Squid never sees it.
            continue
        port = ":8080" if ":8080" in url.split("/")[2] else ""
        # What Squid's url_regex sees for a request spelled canonically: the
        # absolute URI, decoded once.
        path = canonical.split("://", 1)[1][len(host) :]
        presented = unquote_to_bytes(f"{scheme}://{host}{port}{path}")
        assert _squid_blocks(result.files, presented, host) == matcher.match(url).listed, url


# --- DNS formats -----------------------------------------------------------------------


def test_rpz_zone() -> None:
    result = render("rpz", make_input(DNS_MIX, version=12))
    text = result.files[""].decode()
    records = [line for line in text.splitlines() if line and not line.startswith(";")]
    assert records[:3] == [
        "$TTL 300",
        "@ IN SOA localhost. hostmaster.localhost. 12 3600 600 2419200 300",
        "@ IN NS localhost.",
    ]
    assert records[3:] == [
        "-x.example CNAME .",
        "*.-x.example CNAME .",
        "a.b.c.d.e.example CNAME .",  # no wildcard: lookups match the exact host only
        "a_b.example.net CNAME .",
        "*.a_b.example.net CNAME .",
        "example.com CNAME .",
        "*.example.com CNAME .",
        "www.example.org CNAME .",
        "*.www.example.org CNAME .",
    ]
    # 5 hosts; 2 page/prefix, 2 IP, 1 single label, 5 weird names not enforceable
    assert (result.enforced, result.not_enforceable) == (5, 10)
    notes = " | ".join(result.notes)
    for word in ("page/prefix", "IP-address", "single-label", "not valid DNS names"):
        assert word in notes


def test_rpz_serial_wraps_modulo_2_32_with_a_note() -> None:
    result = render("rpz", make_input(["example.com/"], version=2**32 + 5))
    assert " 5 3600 600 " in result.files[""].decode()
    assert any("modulo 2^32" in n for n in result.notes)
    assert not render("rpz", make_input(["example.com/"], version=2**32 - 1)).notes


def test_rpz_owner_names_fit_in_255_octets() -> None:
    # "*." + host + "." + "rpz.cleanfeed.invalid" must be at most 253
    # characters (255 octets on the wire): host at most 229.
    fits = ".".join(["c" * 60] * 3) + "." + "d" * 46
    assert len(fits) == 229
    too_long = "e" + fits
    result = render("rpz", make_input([f"{fits}/", f"{too_long}/"]))
    text = result.files[""].decode()
    assert f"*.{fits} CNAME ." in text
    assert too_long not in text
    assert (result.enforced, result.not_enforceable) == (1, 1)
    # A shorter zone name leaves room for the longer host.
    short_zone = render("rpz", make_input([f"{too_long}/"]), rpz_zone="rpz.")
    assert f"*.{too_long} CNAME ." in short_zone.files[""].decode()


def test_rpz_zone_name_is_validated() -> None:
    with pytest.raises(ExportError, match="zone name"):
        render("rpz", make_input(["example.com/"]), rpz_zone="bad zone!")


def test_rpz_prunes_names_under_a_wildcard() -> None:
    result = render("rpz", make_input(["a.example/", "b.a.example/", "c.b.a.example/"]))
    text = result.files[""].decode()
    assert "b.a.example" not in text
    assert (result.enforced, result.not_enforceable) == (3, 0)


def test_unbound_include() -> None:
    result = render("unbound", make_input(DNS_MIX))
    lines = body_lines(result.files[""])
    assert lines[0] == b"server:"
    assert lines[1:] == [
        b'local-zone: "-x.example." always_nxdomain',
        b'local-zone: "a.b.c.d.e.example." always_nxdomain',
        b'local-zone: "a_b.example.net." always_nxdomain',
        b'local-zone: "example.com." always_nxdomain',
        b'local-zone: "www.example.org." always_nxdomain',
    ]
    assert (result.enforced, result.not_enforceable) == (5, 10)
    assert any("more than 5 labels" in n for n in result.notes)


def test_dnsmasq_lines() -> None:
    result = render("dnsmasq", make_input(DNS_MIX))
    assert body_lines(result.files[""]) == [
        b"address=/-x.example/",
        b"address=/a.b.c.d.e.example/",
        b"address=/a_b.example.net/",
        b"address=/example.com/",
        b"address=/www.example.org/",
    ]
    assert (result.enforced, result.not_enforceable) == (5, 10)


def test_hosts_lines_cannot_cover_subdomains() -> None:
    result = render("hosts", make_input([*DNS_MIX, "sub.example.com/"]))
    assert body_lines(result.files[""]) == [
        b"0.0.0.0 -x.example",
        b"0.0.0.0 a.b.c.d.e.example",
        b"0.0.0.0 a_b.example.net",
        b"0.0.0.0 example.com",
        b"0.0.0.0 sub.example.com",  # not pruned: a hosts file has no subdomains
        b"0.0.0.0 www.example.org",
    ]
    assert (result.enforced, result.not_enforceable) == (6, 10)
    assert any("exact host only" in n for n in result.notes)


_ANY_EXPR = st.builds(
    lambda u, i: (e := expressions(u))[i % len(e)], _URLS, st.integers(0, 30)
) | st.sampled_from(DNS_MIX)


@settings(max_examples=150, deadline=None)
@given(st.sets(_ANY_EXPR, max_size=12), st.sampled_from(FORMATS))
def test_every_entry_is_counted_once(exprs: set[str], fmt: str) -> None:
    result = render(fmt, make_input(sorted(exprs)))
    assert result.enforced + result.not_enforceable == len(exprs)
    for content in result.files.values():
        # One entry per line: no stray line breaks, no carriage returns.
        assert b"\r" not in content


# --- writing -----------------------------------------------------------------------------


def test_write_export_writes_atomically_and_skips_unchanged(tmp_path: Path) -> None:
    out = tmp_path / "cleanfeed.zone"
    first = write_export("rpz", make_input(["example.com/"], version=1), out)
    assert first.changed
    assert first.written == {out: True}
    inode = out.stat().st_ino
    again = write_export("rpz", make_input(["example.com/"], version=1), out)
    assert not again.changed
    assert again.written == {out: False}
    assert out.stat().st_ino == inode  # not even rewritten
    changed = write_export("rpz", make_input(["example.com/", "example.org/"], version=2), out)
    assert changed.changed
    assert out.read_bytes() == changed.files[""]
    assert out.stat().st_ino != inode  # replaced by rename, not rewritten in place
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cleanfeed.zone"]  # no temp files


def test_squid_writes_two_files_next_to_the_base_path(tmp_path: Path) -> None:
    out = tmp_path / "cleanfeed"
    result = write_export("squid", make_input(["example.com/", "example.org/d/"]), out)
    paths = output_paths("squid", out)
    assert paths == {
        ".dstdomain": tmp_path / "cleanfeed.dstdomain",
        ".url_regex": tmp_path / "cleanfeed.url_regex",
    }
    assert result.written == {paths[".dstdomain"]: True, paths[".url_regex"]: True}
    for suffix, path in paths.items():
        assert path.read_bytes() == result.files[suffix]


def test_only_changed_squid_files_are_rewritten(tmp_path: Path) -> None:
    out = tmp_path / "cleanfeed"
    write_export("squid", make_input(["example.com/", "example.org/d/"], version=3), out)
    more = write_export(
        "squid", make_input(["example.com/", "example.org/d/", "example.net/x"], version=3), out
    )
    paths = output_paths("squid", out)
    assert more.written == {paths[".dstdomain"]: False, paths[".url_regex"]: True}


def test_write_export_refuses_a_directory(tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="directory"):
        write_export("hashes", make_input(["example.com/"]), tmp_path)


def test_missing_plaintext_keeps_the_previous_export(tmp_path: Path) -> None:
    out = tmp_path / "urls.txt"
    write_export("urls", make_input(["example.com/"]), out)
    before = out.read_bytes()
    with pytest.raises(MissingPlaintext):
        write_export("urls", make_input(["example.com/", "example.org/"], plaintext=False), out)
    assert out.read_bytes() == before


@pytest.mark.parametrize(("fmt", "mode"), [("urls", 0o600), ("hashes", 0o644), ("hosts", 0o644)])
def test_modes_are_exact_whatever_the_umask(tmp_path: Path, fmt: str, mode: int) -> None:
    old = os.umask(0o077 if mode == 0o644 else 0o000)
    try:
        out = tmp_path / "export"
        write_export(fmt, make_input(["example.com/"]), out)
        assert stat.S_IMODE(out.stat().st_mode) == mode
        write_export(fmt, make_input(["example.com/"]), out, mode=0o640)
        assert stat.S_IMODE(out.stat().st_mode) == 0o640  # fixed although unchanged
    finally:
        os.umask(old)


def test_write_atomic_leaves_the_old_file_when_writing_fails(tmp_path: Path) -> None:
    path = tmp_path / "f"
    write_atomic(path, b"old")
    with pytest.raises(TypeError):
        write_atomic(path, "not bytes")  # type: ignore[arg-type]
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["f"]


def test_write_if_changed_replaces_a_symlink_with_a_file(tmp_path: Path) -> None:
    target = tmp_path / "target"
    target.write_bytes(b"same")
    link = tmp_path / "link"
    link.symlink_to(target)
    assert write_if_changed(link, b"same") is True
    assert not link.is_symlink()
    assert target.read_bytes() == b"same"


def test_write_errors_are_export_errors(tmp_path: Path) -> None:
    missing_dir = tmp_path / "nope" / "out"
    with pytest.raises(ExportError, match="cannot write"):
        write_export("hashes", make_input(["example.com/"]), missing_dir)


# --- what each format cannot enforce, by scope (issue 13 item 5) -----------------------


def test_left_out_entries_are_counted_by_scope() -> None:
    exprs = [
        "example.com/",  # host
        "203.0.113.7/",  # host, IP literal: no DNS name
        "example.org/a/page.html",  # page
        "example.net/dir/",  # prefix
        "example.net/dir/x.html?q=1",  # page with a query
    ]
    data = make_input(exprs)
    for fmt in ("rpz", "unbound", "dnsmasq", "hosts"):
        result = render(fmt, data)
        assert result.left_out == {"page": 2, "prefix": 1, "host": 1}, fmt
        assert sum(result.left_out.values()) == result.not_enforceable == 4
    assert render("hosts", data).partial == 1  # example.com without its subdomains
    assert render("rpz", data).partial == 0
    for fmt in ("hashes", "urls", "squid"):
        result = render(fmt, data)
        assert (result.left_out, result.partial, result.not_enforceable) == ({}, 0, 0), fmt


def test_left_out_by_scope_for_squid_and_written_exports(tmp_path: Path) -> None:
    squid = render("squid", make_input(["example.com/a%00b", "%01%80.com/", "example.com/ok/"]))
    assert squid.left_out == {"page": 1, "host": 1}
    # write_export returns the written files with the same counts.
    written = write_export(
        "hosts", make_input(["example.com/", "example.org/p/"]), tmp_path / "hosts"
    )
    assert written.changed
    assert (written.left_out, written.partial) == ({"prefix": 1}, 1)


# --- block page addresses instead of NXDOMAIN (issue 18 item 3) --------------------

BLOCKPAGE = ("192.0.2.10", "2001:db8::10")
BLOCKPAGE_LIST = ["a.example/", "b.example/page.html", "c.d.example/", "x.c.d.example/"]


def _records(body: bytes) -> list[str]:
    return [
        line
        for line in body.decode().splitlines()
        if line and not line.startswith(("#", ";", "$", "@"))
    ]


def test_rpz_blockpage_writes_local_data_for_the_host_and_below() -> None:
    result = render("rpz", make_input(BLOCKPAGE_LIST), blockpage=BLOCKPAGE)
    assert _records(result.files[""]) == [
        "a.example A 192.0.2.10",
        "a.example AAAA 2001:db8::10",
        "*.a.example A 192.0.2.10",
        "*.a.example AAAA 2001:db8::10",
        "c.d.example A 192.0.2.10",
        "c.d.example AAAA 2001:db8::10",
        "*.c.d.example A 192.0.2.10",
        "*.c.d.example AAAA 2001:db8::10",
    ]
    assert "CNAME" not in result.files[""].decode()
    # same counts as the NXDOMAIN zone: only the answer changes
    plain = render("rpz", make_input(BLOCKPAGE_LIST))
    assert (result.enforced, result.not_enforceable) == (plain.enforced, plain.not_enforceable)


def test_unbound_blockpage_writes_redirect_zones() -> None:
    result = render("unbound", make_input(BLOCKPAGE_LIST), blockpage=["192.0.2.10"])
    assert _records(result.files[""]) == [
        "server:",
        'local-zone: "a.example." redirect',
        'local-data: "a.example. A 192.0.2.10"',
        'local-zone: "c.d.example." redirect',
        'local-data: "c.d.example. A 192.0.2.10"',
    ]


def test_dnsmasq_blockpage_answers_addresses_and_keeps_other_types_local() -> None:
    result = render("dnsmasq", make_input(BLOCKPAGE_LIST), blockpage=BLOCKPAGE)
    assert _records(result.files[""]) == [
        "address=/a.example/192.0.2.10",
        "address=/a.example/2001:db8::10",
        "local=/a.example/",
        "address=/c.d.example/192.0.2.10",
        "address=/c.d.example/2001:db8::10",
        "local=/c.d.example/",
    ]


def test_hosts_blockpage_maps_each_host_to_each_address() -> None:
    result = render("hosts", make_input(BLOCKPAGE_LIST), blockpage=BLOCKPAGE)
    assert _records(result.files[""]) == [
        "192.0.2.10 a.example",
        "2001:db8::10 a.example",
        "192.0.2.10 c.d.example",
        "2001:db8::10 c.d.example",
        "192.0.2.10 x.c.d.example",
        "2001:db8::10 x.c.d.example",
    ]
    assert "0.0.0.0" not in result.files[""].decode()


@pytest.mark.parametrize("fmt", ["hashes", "urls", "squid"])
def test_blockpage_refused_for_non_dns_formats(fmt: str) -> None:
    with pytest.raises(ExportError, match="cannot send hosts to a block page"):
        render(fmt, make_input(BLOCKPAGE_LIST), blockpage=BLOCKPAGE)


def test_rpz_ede_writes_the_bind_statement_next_to_the_zone(tmp_path: Path) -> None:
    out = tmp_path / "cleanfeed.rpz"
    result = write_export("rpz", make_input(BLOCKPAGE_LIST), out, ede=16)
    statement = tmp_path / "cleanfeed.rpz.named.conf"
    assert result.written == {out: True, statement: True}
    lines = statement.read_text().splitlines()
    assert lines[-1] == 'response-policy { zone "rpz.cleanfeed.invalid" ede censored; };'
    assert any("BIND 9.18" in line for line in lines)
    assert any("BIND 9.18 has no RPZ Extended DNS Errors" in n for n in result.notes)
    # the zone itself is the same as without the option
    assert result.files[""] == render("rpz", make_input(BLOCKPAGE_LIST)).files[""]
    assert "" in write_export("rpz", make_input(BLOCKPAGE_LIST), out).files


@pytest.mark.parametrize("code", [17, 4, 0, "filtered"])
def test_ede_codes_other_than_blocked_and_censored_refused(code: object) -> None:
    with pytest.raises(ExportError, match="ede: "):
        render("rpz", make_input(BLOCKPAGE_LIST), ede=code)  # type: ignore[arg-type]
