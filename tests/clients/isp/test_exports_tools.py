"""The exports, read by the programs ISPs feed them to.

``named-checkzone`` (BIND 9) loads the RPZ zone, ``squid -k parse`` the
dstdomain and url_regex ACL files (and the external ACL helper line),
``unbound-checkconf`` a configuration including the Unbound file, and
``dnsmasq --test`` the dnsmasq file; glibc's ``regcomp``/``regexec`` (what
Squid's url_regex calls, in the C locale) runs the regexes against the URLs
Squid would present. Every list holds odd entries on purpose: one bad line
would make a filter drop the whole file. Each tool check has a negative
control showing the tool does reject what the exporter filters out.

Marked ``tools``. A missing program skips its test with a reason, except
under ``CI=true``, where it fails: CI must never silently skip a consumer.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import locale
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote_to_bytes

import pytest
from support.ci import in_ci, require_program
from support.export_inputs import DNS_MIX, WEIRD_HOSTS, make_input
from support.processes import free_port
from support.resolvers import a_query, dnsmasq_argv, resolver_running, write_unbound_conf

from blocklist.canonical import canonicalize, expression_hash, expressions, is_ip_host
from blocklist.errors import InvalidURL
from clients.isp.exports.formats import ExportInput
from clients.isp.exports.output import output_paths, write_export
from clients.isp.lookup import Matcher

pytestmark = pytest.mark.tools

REPO = Path(__file__).resolve().parents[3]

ZONE = "rpz.cleanfeed.invalid."
TOOL_TIMEOUT = 120  # seconds


def require(program: str) -> str:
    return require_program(program, "bind9-utils, squid, unbound, dnsmasq-base")


def run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(argv), capture_output=True, text=True, timeout=TOOL_TIMEOUT, check=False
    )


# Beyond DNS_MIX (hosts, pages, IPs, weird names): pages and prefixes whose
# regexes need every escape, decoded bytes, deep and shallow prefixes, and
# hosts nested under one another.
RICH_LIST = [
    *DNS_MIX,
    "b.example.com/",  # under example.com
    "x.y.www.example.org/",
    "c.d.e.f.g.example.com/",  # exact-only, under example.com
    "example.net/a%20b/",
    "example.net/x%01y?q=%C3%A9",
    "example.net/%23frag%25pct/page.html",
    "example.net/a.b/c+d(e)*f?g=[h]{1}|^$\\",
    "example.net/a/b/c/d/",
    "sub.example.net/p?id=1",
    "198.51.100.7/admin/",
    "[2001:db8::7]/x.html",
    "a_b.example.net/deep/path.html",
]


def rich_input(version: int = 9) -> ExportInput:
    # Every RICH_LIST entry is a canonical expression (what an entry can be).
    for expr in RICH_LIST:
        assert expressions("http://" + expr)[0] == expr, expr
    return make_input(RICH_LIST, version=version)


# --- BIND: named-checkzone ------------------------------------------------------


def test_rpz_zone_loads_in_named_checkzone(tmp_path: Path) -> None:
    checkzone = require("named-checkzone")
    out = tmp_path / "cleanfeed.rpz"
    result = write_export("rpz", rich_input(version=9), out)
    assert result.enforced > 0
    proc = run(checkzone, ZONE, str(out))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"zone {ZONE.rstrip('.')}/IN: loaded serial 9" in proc.stdout
    assert "OK" in proc.stdout.split()
    assert "warning" not in (proc.stdout + proc.stderr).lower()


def test_rpz_zone_with_long_names_under_another_zone_name(tmp_path: Path) -> None:
    checkzone = require("named-checkzone")
    zone = "blocked.policy.example.net."
    longest = ".".join(["c" * 60] * 3) + "." + "d" * (253 - len(zone.rstrip(".")) - 3 - 183)
    out = tmp_path / "zone"
    result = write_export(
        "rpz",
        make_input([f"{longest}/", f"e{longest}/", "example.com/"], version=2**32 + 1),
        out,
        rpz_zone=zone,
    )
    assert (result.enforced, result.not_enforceable) == (2, 1)
    proc = run(checkzone, zone, str(out))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "loaded serial 1" in proc.stdout


def test_named_checkzone_rejects_what_the_exporter_leaves_out(tmp_path: Path) -> None:
    # Negative control: the 64-octet label the exporter skips would make the
    # whole zone fail to load.
    checkzone = require("named-checkzone")
    good = write_export("rpz", make_input(["example.com/"]), tmp_path / "zone").files[""]
    bad = tmp_path / "bad"
    bad.write_bytes(good + ("a" * 64 + ".example CNAME .\n").encode())
    proc = run(checkzone, ZONE, str(bad))
    assert proc.returncode != 0


# --- Squid: squid -k parse -------------------------------------------------------------


def squid_parse(squid: str, tmp_path: Path, acl_lines: str) -> subprocess.CompletedProcess[str]:
    conf = tmp_path / "squid.conf"
    conf.write_text(
        "http_port 127.0.0.1:3128\n"
        "pid_filename none\n"
        "cache_log stdio:/dev/stderr\n"
        f"{acl_lines}"
        "http_access deny all\n"
    )
    return run(squid, "-k", "parse", "-f", str(conf))


def squid_problems(proc: subprocess.CompletedProcess[str]) -> list[str]:
    # squid -k parse exits 0 even when it skips a bad ACL entry: read the log.
    return [
        line
        for line in (proc.stdout + proc.stderr).splitlines()
        if any(word in line for word in ("ERROR", "WARNING", "FATAL", "Bungled"))
    ]


def test_squid_parses_the_acl_files(tmp_path: Path) -> None:
    squid = require("squid")
    out = tmp_path / "cleanfeed"
    result = write_export("squid", rich_input(), out)
    paths = output_paths("squid", out)
    proc = squid_parse(
        squid,
        tmp_path,
        f'acl cleanfeed_hosts dstdomain "{paths[".dstdomain"]}"\n'
        f'acl cleanfeed_urls url_regex "{paths[".url_regex"]}"\n'
        "http_access deny cleanfeed_hosts\n"
        "http_access deny cleanfeed_urls\n",
    )
    assert proc.returncode == 0, proc.stderr
    assert squid_problems(proc) == []
    # overlapping names were in the list; none reached the file
    dstdomain = paths[".dstdomain"].read_text()
    assert ".example.com\n" in dstdomain
    assert "b.example.com" not in dstdomain
    assert result.not_enforceable == 5  # the weird hosts


def test_squid_warns_about_overlapping_names(tmp_path: Path) -> None:
    # Negative control: the check above would see Squid's complaint.
    squid = require("squid")
    acl = tmp_path / "raw.dstdomain"
    acl.write_text(".a.example\n.b.a.example\n")
    proc = squid_parse(squid, tmp_path, f'acl hosts dstdomain "{acl}"\nhttp_access deny hosts\n')
    assert any("b.a.example" in line for line in squid_problems(proc))


def test_squid_reports_a_broken_regex(tmp_path: Path) -> None:
    # Negative control: an unescaped metacharacter is reported, not silent.
    squid = require("squid")
    acl = tmp_path / "raw.url_regex"
    acl.write_text("^http://example\\.com/a(b\n")
    proc = squid_parse(squid, tmp_path, f'acl urls url_regex "{acl}"\nhttp_access deny urls\n')
    assert squid_problems(proc)


def test_squid_parses_the_external_acl_helper_line(tmp_path: Path) -> None:
    squid = require("squid")
    hashes = tmp_path / "hashes.txt"
    write_export("hashes", rich_input(), hashes)
    proc = squid_parse(
        squid,
        tmp_path,
        # docs/isp.md's form (tests/e2e/test_squid_helper_e2e.py runs it under Squid).
        "external_acl_type cleanfeed ttl=300 negative_ttl=60 children-max=4 children-startup=1 "
        f"concurrency=100 %URI {Path(sys.executable).with_name('cleanfeed')} isp squid-helper "
        f"--hashes-file {hashes}\n"
        "acl cleanfeed_listed external cleanfeed\n"
        "http_access deny cleanfeed_listed\n",
    )
    assert proc.returncode == 0, proc.stderr
    assert squid_problems(proc) == []


# --- Squid's regex engine: glibc regcomp/regexec in the C locale -----------------

REG_EXTENDED = 1
REG_NOSUB = 8
REGEX_T_SIZE = 1024  # larger than glibc's regex_t (64 bytes on x86-64)


@pytest.fixture
def c_locale_regex() -> Iterator[ctypes.CDLL]:
    name = ctypes.util.find_library("c")
    libc = ctypes.CDLL(name) if name else None
    if libc is None or not hasattr(libc, "regcomp") or not sys.platform.startswith("linux"):
        if in_ci():
            pytest.fail("CI=true but glibc regcomp is not available")
        pytest.skip("glibc regcomp/regexec not available")
    # Squid never calls setlocale: its regexes run in the C locale.
    saved = locale.setlocale(locale.LC_ALL)
    locale.setlocale(locale.LC_ALL, "C")
    try:
        yield libc
    finally:
        locale.setlocale(locale.LC_ALL, saved)


class PosixRegex:
    def __init__(self, libc: ctypes.CDLL, pattern: bytes) -> None:
        self.libc = libc
        self.buf = ctypes.create_string_buffer(REGEX_T_SIZE)
        code = libc.regcomp(self.buf, pattern, REG_EXTENDED | REG_NOSUB)
        assert code == 0, f"regcomp failed ({code}) on {pattern!r}"

    def search(self, subject: bytes) -> bool:
        return bool(self.libc.regexec(self.buf, subject, 0, None, 0) == 0)

    def free(self) -> None:
        self.libc.regfree(self.buf)


def squid_presented(url: str) -> tuple[bytes, str]:
    """The URL as url_regex sees it for a canonically spelled request, and its host."""
    canonical = canonicalize(url)
    scheme, rest = canonical.split("://", 1)
    host = rest.split("/", 1)[0]
    authority = url.split("://", 1)[1].split("/", 1)[0]
    port = authority.rsplit(":", 1)[1] if authority.rsplit(":", 1)[-1].isdigit() else ""
    # Squid lower-cases the host, shows a port only when it is not the
    # default one, and decodes the whole URL once.
    shown = f"{host}:{port}" if port else host
    return unquote_to_bytes(f"{scheme}://{shown}{rest[len(host) :]}"), host


def with_port(url: str, port: int) -> str:
    scheme, rest = url.split("://", 1)
    host, slash, path = rest.partition("/")
    return f"{scheme}://{host}:{port}{slash}{path}"


def test_url_regex_in_glibc_blocks_what_check_blocks(
    c_locale_regex: ctypes.CDLL, tmp_path: Path
) -> None:
    data = rich_input()
    out = tmp_path / "cleanfeed"
    write_export("squid", data, out)
    paths = output_paths("squid", out)
    regex_lines = [
        line
        for line in paths[".url_regex"].read_bytes().splitlines()
        if line and not line.startswith(b"#")
    ]
    domains = [
        line.decode()
        for line in paths[".dstdomain"].read_bytes().splitlines()
        if line and not line.startswith(b"#")
    ]
    regexes = [PosixRegex(c_locale_regex, line) for line in regex_lines]
    matcher = Matcher(data.hashes)
    probes: list[str] = []
    for expr in RICH_LIST:
        if expr in WEIRD_HOSTS:
            continue  # hosts no request can carry (not DNS names)
        base = "http://" + expr
        probes += [
            base,
            # (no "www." before an IP: "www.192.0.2.1" cannot resolve)
            base if is_ip_host(expr.split("/")[0]) else base.replace("://", "s://www.", 1),
            with_port(base, 8080),
            base.split("?")[0].rstrip("/") + "/child.html",
            base.split("?")[0] + "?other=1",
            base.rstrip("/") + "x",
            base.replace("%20", "x"),  # not a space: must not match
        ]
    checked = 0
    try:
        for url in probes:
            try:
                presented, host = squid_presented(url)
            except InvalidURL:
                continue  # e.g. "http://[2001:db8::1]x": no such request
            checked += 1
            by_domain = any(
                host == d or (d.startswith(".") and (host == d[1:] or host.endswith(d)))
                for d in domains
            )
            by_regex = any(r.search(presented) for r in regexes)
            assert (by_domain or by_regex) == matcher.match(url).listed, url
        # Documented approximation: [[:blank:]] stands for a space, so a tab
        # there matches too (lookups would not), never another character.
        assert checked > 5 * len(RICH_LIST)
        tab, _ = squid_presented("http://example.net/a%09b/x")
        assert any(r.search(tab) for r in regexes)
    finally:
        for r in regexes:
            r.free()


def test_every_regex_line_compiles_in_glibc(c_locale_regex: ctypes.CDLL, tmp_path: Path) -> None:
    out = tmp_path / "cleanfeed"
    write_export("squid", rich_input(), out)
    for line in output_paths("squid", out)[".url_regex"].read_bytes().splitlines():
        if line and not line.startswith(b"#"):
            PosixRegex(c_locale_regex, line).free()


# --- Unbound: unbound-checkconf -----------------------------------------------------


def unbound_conf(tmp_path: Path, body: str) -> Path:
    return write_unbound_conf(tmp_path, "", body)


def test_unbound_include_inside_server(tmp_path: Path) -> None:
    checkconf = require("unbound-checkconf")
    export = tmp_path / "cleanfeed.conf"
    write_export("unbound", rich_input(), export)
    proc = run(checkconf, str(unbound_conf(tmp_path, f'    include: "{export}"\n')))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "no errors" in proc.stdout


def test_unbound_include_after_another_clause(tmp_path: Path) -> None:
    # The file opens its own "server:" clause, so it also works when
    # included after another clause.
    checkconf = require("unbound-checkconf")
    export = tmp_path / "cleanfeed.conf"
    write_export("unbound", rich_input(), export)
    body = f'remote-control:\n    control-enable: no\ninclude: "{export}"\n'
    proc = run(checkconf, str(unbound_conf(tmp_path, body)))
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_unbound_checkconf_rejects_a_bad_zone_line(tmp_path: Path) -> None:
    checkconf = require("unbound-checkconf")
    export = tmp_path / "bad.conf"
    export.write_text(f'server:\nlocal-zone: "{"a" * 64}.example." always_nxdomain\n')
    proc = run(checkconf, str(unbound_conf(tmp_path, f'    include: "{export}"\n')))
    assert proc.returncode != 0


# --- dnsmasq: dnsmasq --test -----------------------------------------------------------


def test_dnsmasq_reads_the_file(tmp_path: Path) -> None:
    dnsmasq = require("dnsmasq")
    export = tmp_path / "cleanfeed.conf"
    write_export("dnsmasq", rich_input(), export)
    proc = run(dnsmasq, "--test", f"--conf-file={export}")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "syntax check OK" in proc.stdout + proc.stderr


def test_dnsmasq_rejects_a_bad_line(tmp_path: Path) -> None:
    dnsmasq = require("dnsmasq")
    export = tmp_path / "bad.conf"
    export.write_text(f"address=/{'a' * 64}.example/\n")
    proc = run(dnsmasq, "--test", f"--conf-file={export}")
    assert proc.returncode != 0


def test_hashes_file_matches_the_lookup_set(tmp_path: Path) -> None:
    # The hashes export is what the Squid helper loads: same set, same answers.
    from clients.isp.lookup import read_hashes_file

    out = tmp_path / "hashes.txt"
    data = rich_input()
    write_export("hashes", data, out)
    assert read_hashes_file(out) == {expression_hash(e) for e in RICH_LIST}


# --- resolvers running the exports: NXDOMAIN where listed, answers elsewhere -------

NOERROR, NXDOMAIN = 0, 3
RESOLVER_LIST = ["a.example/", "b.example/page.html", "c.d.example/"]


def free_udp_port() -> int:
    return free_port("127.0.0.1", socket.SOCK_DGRAM)


def dns_rcode(port: int, name: str, *, timeout: float = 2.0) -> int:
    """Send one A query to 127.0.0.1:port and return the answer's RCODE (RFC 1035 4.1.1)."""
    return a_query(port, name, timeout=timeout)[3] & 0x0F


def check_resolution(port: int, *, with_export: bool) -> None:
    # Without the export every name under example. resolves (negative
    # control): the NXDOMAIN answers come from the export alone.
    blocked = NXDOMAIN if with_export else NOERROR
    assert dns_rcode(port, "a.example") == blocked  # listed host
    assert dns_rcode(port, "www.a.example") == blocked  # its subdomain
    assert dns_rcode(port, "x.y.c.d.example") == blocked
    assert dns_rcode(port, "ok.example") == NOERROR  # not listed
    assert dns_rcode(port, "b.example") == NOERROR  # only a page is listed there


@pytest.mark.e2e
@pytest.mark.parametrize("with_export", [True, False])
def test_unbound_answers_nxdomain_for_listed_hosts(tmp_path: Path, with_export: bool) -> None:
    unbound = require("unbound")
    export = tmp_path / "cleanfeed.conf"
    write_export("unbound", make_input(RESOLVER_LIST), export)
    port = free_udp_port()
    conf = unbound_conf(
        tmp_path,
        "    interface: 127.0.0.1\n"
        f"    port: {port}\n"
        "    do-ip6: no\n"
        "    do-daemonize: no\n"
        '    logfile: ""\n'
        # every name under example. answers 192.0.2.9 unless a more
        # specific local zone (the export's) says otherwise
        '    local-zone: "example." redirect\n'
        '    local-data: "example. A 192.0.2.9"\n'
        + (f'    include: "{export}"\n' if with_export else ""),
    )
    with resolver_running([unbound, "-d", "-c", str(conf)], port) as p:
        check_resolution(p, with_export=with_export)


@pytest.mark.e2e
@pytest.mark.parametrize("with_export", [True, False])
def test_dnsmasq_answers_nxdomain_for_listed_hosts(tmp_path: Path, with_export: bool) -> None:
    dnsmasq = require("dnsmasq")
    export = tmp_path / "cleanfeed.conf"
    write_export("dnsmasq", make_input(RESOLVER_LIST), export)
    port = free_udp_port()
    argv = dnsmasq_argv(
        dnsmasq,
        port,
        # every name under example. answers 192.0.2.9 unless a more
        # specific address= line (the export's) says otherwise
        "--address=/example/192.0.2.9",
    )
    if with_export:
        argv.append(f"--conf-file={export}")
    with resolver_running(argv, port) as p:
        check_resolution(p, with_export=with_export)


# --- block page addresses (issue 18 item 3): every odd entry, every tool -------------

BLOCKPAGE = ("192.0.2.10", "2001:db8::10")


def test_blockpage_rpz_zone_loads_in_named_checkzone(tmp_path: Path) -> None:
    checkzone = require("named-checkzone")
    out = tmp_path / "cleanfeed.rpz"
    write_export("rpz", rich_input(), out, blockpage=BLOCKPAGE)
    proc = run(checkzone, ZONE, str(out))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "warning" not in (proc.stdout + proc.stderr).lower()


def test_blockpage_unbound_include_checks(tmp_path: Path) -> None:
    checkconf = require("unbound-checkconf")
    export = tmp_path / "cleanfeed.conf"
    write_export("unbound", rich_input(), export, blockpage=BLOCKPAGE)
    proc = run(checkconf, str(unbound_conf(tmp_path, f'    include: "{export}"\n')))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "no errors" in proc.stdout


def test_blockpage_dnsmasq_file_checks(tmp_path: Path) -> None:
    dnsmasq = require("dnsmasq")
    export = tmp_path / "cleanfeed.conf"
    write_export("dnsmasq", rich_input(), export, blockpage=BLOCKPAGE)
    proc = run(dnsmasq, "--test", f"--conf-file={export}")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "syntax check OK" in proc.stdout + proc.stderr
