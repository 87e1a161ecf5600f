"""``cleanfeed isp dns-serve`` without a resolver: serials, journal, admission, wire, CLI.

The real secondaries are in tests/e2e/test_dns_serve.py; here dnspython is
the secondary (it checks every TSIG of a multi-message transfer and the
ZONEMD digest), and the journal and key-file rules are checked directly.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dns.message
import dns.name
import dns.opcode
import dns.query
import dns.rcode
import dns.rdatatype
import dns.tsig
import dns.xfr
import dns.zone
import pytest
from support.isp_helpers import NOW, MemoryServer, isp_config, new_log, serve_published
from support.memory_log import MemoryLog
from support.processes import free_port

from clients.errors import ConfigError, LocalCorruption
from clients.isp.config import IspConfig
from clients.isp.dnsserve import journal as journal_mod
from clients.isp.dnsserve.acl import Admission, parse_cidrs, parse_hostport, read_key_file
from clients.isp.dnsserve.journal import JOURNAL_FILE, Journal
from clients.isp.dnsserve.secondaries import SecondarySpec, bind_secondary, unbound_secondary
from clients.isp.dnsserve.server import MAX_RECORDS_PER_MESSAGE
from clients.isp.dnsserve.zone import Rendered, next_serial, serial_gt
from clients.isp.sync import Syncer

ROOT = Path(__file__).resolve().parents[3]
ZONE = "rpz.cleanfeed.invalid"
ORIGIN = dns.name.from_text(ZONE)
START_TIMEOUT = 30.0


def sha(expr: str) -> bytes:
    return hashlib.sha256(expr.encode()).digest()


# --- RFC 1982 serials ---------------------------------------------------------------


def test_serial_arithmetic_follows_rfc_1982() -> None:
    assert serial_gt(2, 1)
    assert not serial_gt(1, 2)
    assert not serial_gt(5, 5)
    # Across the wrap: 0 and 1 come after 2^32 - 1.
    assert serial_gt(1, 2**32 - 1)
    assert not serial_gt(2**32 - 1, 1)
    # Exactly half the space apart: undefined, so neither is greater.
    assert not serial_gt(2**31, 0)
    assert not serial_gt(0, 2**31)
    assert next_serial(2**32 - 1) == 1  # wraps, skipping 0
    assert next_serial(41) == 42


# --- the journal --------------------------------------------------------------------


def rendered(records: list[str], version: int = 1) -> Rendered:
    recs = tuple(sorted(["@ NS localhost.", *records]))
    digest = hashlib.sha256("\n".join(recs).encode()).digest()
    return Rendered(
        version, "localhost.", "hostmaster.localhost.", (3600, 600, 2419200, 300), recs, digest
    )


def test_journal_records_differences_and_keeps_the_serial_for_an_equal_rendering(
    tmp_path: Path,
) -> None:
    j = Journal(tmp_path, ORIGIN, zonemd=False)
    assert j.advance(rendered(["a.example CNAME .", "b.example CNAME ."])) is None
    assert j.current is not None
    first = j.current.serial
    delta = j.advance(rendered(["b.example CNAME .", "c.example CNAME ."], version=2))
    assert delta is not None
    assert (delta.from_serial, delta.to_serial) == (first, next_serial(first))
    assert delta.removed == ("a.example CNAME .",)
    assert delta.added == ("c.example CNAME .",)
    # The same rendering again (a restart, or a commit that changes nothing
    # the zone shows): no new generation.
    assert j.advance(rendered(["b.example CNAME .", "c.example CNAME ."], version=2)) is None
    assert j.current.serial == next_serial(first)
    # Persisted: a new process continues from it.
    again = Journal(tmp_path, ORIGIN, zonemd=False)
    assert again.current is not None
    assert again.current.serial == j.current.serial
    assert again.current.records == j.current.records
    assert again.path_from(first, j.current.serial) == j.deltas
    assert again.path_from(first, first) is None
    assert again.path_from(first - 7, j.current.serial) is None
    assert (tmp_path / JOURNAL_FILE).stat().st_mode & 0o777 == 0o600


def test_journal_is_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(journal_mod, "MAX_JOURNAL_DELTAS", 3)
    j = Journal(tmp_path, ORIGIN, zonemd=False)
    for i in range(6):
        j.advance(rendered([f"h{i}.example CNAME ."], version=i + 1))
    assert len(j.deltas) == 3
    assert j.current is not None
    assert j.deltas[-1].to_serial == j.current.serial
    monkeypatch.setattr(journal_mod, "MAX_JOURNAL_RECORDS", 5)
    j.advance(rendered(["x.example CNAME ."], version=9))
    assert sum(d.size for d in j.deltas) <= 5


def test_a_corrupt_journal_is_refused_with_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / JOURNAL_FILE).write_text(json.dumps({"format": "something else"}))
    with pytest.raises(LocalCorruption, match="not a dns-serve journal"):
        Journal(tmp_path, ORIGIN, zonemd=False)


# --- key file, CIDRs, addresses -------------------------------------------------------


def write_key(path: Path, text: str, mode: int = 0o600) -> Path:
    path.write_text(text)
    path.chmod(mode)
    return path


SECRET = base64.b64encode(b"k" * 32).decode()


def test_key_file_in_bind_syntax_is_read(tmp_path: Path) -> None:
    key = read_key_file(
        write_key(
            tmp_path / "k.key",
            f'# made by tsig-keygen\nkey "xfr-key" {{\n\talgorithm hmac-sha256;\n'
            f'\tsecret "{SECRET}";\n}};\n',
        )
    )
    assert key.name == dns.name.from_text("xfr-key")
    assert key.secret == b"k" * 32
    assert key.algorithm == dns.tsig.HMAC_SHA256


@pytest.mark.parametrize(
    ("text", "mode", "message"),
    [
        ("key x { nonsense", 0o600, "expected one `key"),
        (f'key "x" {{ algorithm hmac-md5; secret "{SECRET}"; }};', 0o600, "algorithm must be"),
        ('key "x" { algorithm hmac-sha256; secret "!!!"; };', 0o600, "not base64"),
        ('key "x" { algorithm hmac-sha256; secret "c2hvcnQ="; };', 0o600, "shorter than"),
        (f'key "x" {{ algorithm hmac-sha256; secret "{SECRET}"; }};', 0o644, "readable by others"),
    ],
)
def test_bad_key_files_are_refused_without_echoing_the_secret(
    tmp_path: Path, text: str, mode: int, message: str
) -> None:
    with pytest.raises(ConfigError, match=message) as e:
        read_key_file(write_key(tmp_path / "k.key", text, mode))
    assert SECRET not in str(e.value)


def test_cidrs_and_addresses_are_checked() -> None:
    nets = parse_cidrs(["192.0.2.0/24", "2001:db8::1"])
    admission = Admission(None, nets)
    assert admission.admits("192.0.2.77", signed=False) == "address"
    assert admission.admits("::ffff:192.0.2.77", signed=False) == "address"
    assert admission.admits("198.51.100.1", signed=False) is None
    # A signature without a configured key admits nothing.
    assert admission.admits("198.51.100.1", signed=True) is None
    for bad in ("192.0.2.1/24", "example.com", "300.1.1.1/32"):
        with pytest.raises(ConfigError, match="not a CIDR"):
            parse_cidrs([bad])
    assert parse_hostport("[2001:db8::53]:5300", "--listen") == ("2001:db8::53", 5300)
    for bad in ("ns.example:53", "192.0.2.1", "192.0.2.1:0", "192.0.2.1:70000"):
        with pytest.raises(ConfigError):
            parse_hostport(bad, "--listen")


# --- the docs show exactly the configuration the e2e test runs ---------------------------


def doc_block(name: str) -> str:
    text = (ROOT / "docs" / "isp.md").read_text()
    m = re.search(rf"<!-- dns-serve:{name} -->\n```\n(.*?)```\n", text, re.DOTALL)
    assert m is not None, f"docs/isp.md has no dns-serve:{name} block"
    return m.group(1)


def test_docs_show_the_secondary_configuration_the_command_prints() -> None:
    spec = SecondarySpec(ZONE, "192.0.2.53", 5300)
    assert doc_block("bind") == bind_secondary(spec)
    assert doc_block("unbound") == unbound_secondary(spec)
    printed = subprocess.run(
        [
            sys.executable,
            "-m",
            "cleanfeed",
            "isp",
            "dns-serve",
            "--listen",
            "192.0.2.53:5300",
            "--print-secondary",
            "unbound",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert printed == unbound_secondary(spec)


# --- the server process, with dnspython as the secondary -------------------------------


@dataclass
class Served:
    log: MemoryLog
    server: MemoryServer
    config: IspConfig
    key: dns.tsig.Key
    port: int
    log_path: Path
    proc: subprocess.Popen[bytes]

    def publish(self, adds: list[str], removes: list[str]) -> None:
        for e in adds:
            self.server.expressions[sha(e)] = e
        self.log.publish([sha(e) for e in adds], [sha(e) for e in removes], now=NOW)
        with self.server.client() as client:
            assert Syncer(self.config, client, clock=lambda: NOW.timestamp()).sync_once().ok


def entries(n: int, prefix: str = "h") -> list[str]:
    return [f"{prefix}{i}.example/" for i in range(n)]


class NotReady(Exception):
    """dns-serve answers SERVFAIL: no zone yet."""


def soa_serial(port: int, key: dns.tsig.Key) -> int:
    q = dns.message.make_query(ORIGIN, "SOA")
    q.use_tsig(key)
    r = dns.query.udp(q, "127.0.0.1", port=port, timeout=1)
    if r.rcode() == dns.rcode.SERVFAIL:
        raise NotReady  # dns-serve has not rendered the state yet
    assert r.rcode() == dns.rcode.NOERROR
    return int(r.answer[0][0].serial)


@pytest.fixture
def served(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Served]:
    extra: list[str] = getattr(request, "param", [])
    log = new_log()
    initial = entries(300)  # 600 records: several messages of MAX_RECORDS_PER_MESSAGE
    server = serve_published(log, initial)
    config = isp_config(log, tmp_path / "state", plaintext=True)
    with server.client() as client:
        assert Syncer(config, client, clock=lambda: NOW.timestamp()).sync_once().ok
    key = dns.tsig.Key("xfr-key", os.urandom(32), dns.tsig.HMAC_SHA256)
    secret = base64.b64encode(key.secret).decode()
    key_file = write_key(
        tmp_path / "xfr.key",
        f'key "xfr-key" {{ algorithm hmac-sha256; secret "{secret}"; }};\n',
    )
    port = free_port()
    log_path = tmp_path / "dns-serve.log"
    with log_path.open("wb") as sink:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "cleanfeed",
                "isp",
                "dns-serve",
                "--state-dir",
                str(config.state_dir),
                "--listen",
                f"127.0.0.1:{port}",
                "--tsig-key",
                str(key_file),
                "--zone",
                ZONE,
                *extra,
            ],
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                soa_serial(port, key)
                break
            except (dns.exception.Timeout, OSError, NotReady):
                assert proc.poll() is None, log_path.read_text()
                assert time.monotonic() < deadline, "dns-serve did not start"
                time.sleep(0.1)
        yield Served(log, server, config, key, port, log_path, proc)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    assert proc.returncode == 0, log_path.read_text()


def transfer(s: Served, zone: dns.zone.Zone, serial: int | None) -> None:
    # With EDNS (payload 1232): the TCP messages are still up to 64 KB.
    query, _ = dns.xfr.make_query(zone, serial=serial, use_edns=0)
    if serial is None:
        query = dns.message.make_query(ORIGIN, "AXFR", use_edns=0)
    query.use_tsig(s.key)
    dns.query.inbound_xfr("127.0.0.1", zone, query, port=s.port, timeout=10)


def names(zone: dns.zone.Zone) -> set[str]:
    return {n.to_text() for n in zone.nodes} - {"@"}


def test_signed_axfr_then_ixfr_over_many_messages(served: Served) -> None:
    zone = dns.zone.Zone(ORIGIN)
    transfer(served, zone, None)  # dnspython verifies the TSIG of every message
    assert len(names(zone)) == 600 > 2 * MAX_RECORDS_PER_MESSAGE
    first = zone.get_soa().serial
    assert first == soa_serial(served.port, served.key)

    served.publish(entries(250, "n"), entries(250))
    deadline = time.monotonic() + 20
    while soa_serial(served.port, served.key) == first:
        assert time.monotonic() < deadline, served.log_path.read_text()
        time.sleep(0.1)
    transfer(served, zone, first)
    assert zone.get_soa().serial == next_serial(first)
    assert "h0.example" not in names(zone)
    assert {"n0.example", "*.n0.example", "h299.example"} <= names(zone)
    assert len(names(zone)) == 600
    assert re.search(r"kind=IXFR from=\d+ deltas=1 changes=1000 ", served.log_path.read_text())
    # Up to date: the single current SOA (RFC 1995 section 2).
    transfer(served, zone, zone.get_soa().serial)
    assert "kind=UPTODATE" in served.log_path.read_text()


@pytest.mark.parametrize("served", [["--zonemd"]], indirect=True)
def test_zonemd_verifies(served: Served) -> None:
    zone = dns.zone.Zone(ORIGIN)
    transfer(served, zone, None)
    assert zone.get_rdataset("@", "ZONEMD") is not None
    zone.verify_digest()  # raises DigestVerificationFailure on a mismatch


# --- CLI errors ----------------------------------------------------------------------------


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cleanfeed", "isp", "dns-serve", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_cli_errors_are_one_clear_line(tmp_path: Path) -> None:
    state = str(tmp_path / "state")
    r = run_cli("--state-dir", state, "--listen", "127.0.0.1:5300")
    assert r.returncode == 2
    assert "give --tsig-key FILE and/or --allow-transfer CIDR" in r.stderr
    r = run_cli(
        "--state-dir", state, "--listen", "127.0.0.1:5300", "--allow-transfer", "10.0.0.1/8"
    )
    assert r.returncode == 2
    assert "not a CIDR" in r.stderr
    bad = write_key(tmp_path / "bad.key", 'key "x" { algorithm hmac-sha256; };')
    r = run_cli("--state-dir", state, "--listen", "127.0.0.1:5300", "--tsig-key", str(bad))
    assert r.returncode == 2
    assert "not base64" in r.stderr or "shorter than" in r.stderr


def test_port_in_use_is_reported(served: Served) -> None:
    # The port the fixture's server holds.
    r = run_cli(
        "--state-dir",
        str(served.config.state_dir),
        "--listen",
        f"127.0.0.1:{served.port}",
        "--allow-transfer",
        "127.0.0.1/32",
    )
    assert r.returncode == 2
    assert "port in use" in r.stderr
    with socket.socket() as s:  # the first server still answers
        s.connect(("127.0.0.1", served.port))


def test_only_admitted_soa_and_transfers_are_answered(served: Served) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.settimeout(5)
    with sock:
        sock.connect(("127.0.0.1", served.port))
        # A response sent to the server (reflection): never answered. The SOA
        # query after it is, so the first reply must be the SOA's.
        response = dns.message.make_response(dns.message.make_query(ORIGIN, "SOA"))
        response.id = 1111
        sock.send(response.to_wire())
        soa = dns.message.make_query(ORIGIN, "SOA")
        soa.id = 2222
        soa.use_tsig(served.key)
        sock.send(soa.to_wire())
        reply = dns.message.from_wire(sock.recv(65535), keyring=False)
        assert reply.id == 2222
        assert reply.rcode() == dns.rcode.NOERROR
        # No lookups in the zone (it would be an oracle of the list), even signed.
        probe = dns.message.make_query(dns.name.from_text("h0.example", ORIGIN), "CNAME")
        probe.use_tsig(served.key)
        sock.send(probe.to_wire())
        reply = dns.message.from_wire(sock.recv(65535), keyring=False)
        assert reply.rcode() == dns.rcode.REFUSED
        assert not reply.answer
        # NOTIFY to the primary: not implemented here.
        notify = dns.message.make_query(ORIGIN, "SOA")
        notify.set_opcode(dns.opcode.NOTIFY)
        sock.send(notify.to_wire())
        reply = dns.message.from_wire(sock.recv(65535), keyring=False)
        assert reply.rcode() == dns.rcode.NOTIMP


def test_a_configuration_change_is_a_new_generation_without_a_new_version(
    tmp_path: Path,
) -> None:
    from clients.isp.dnsserve.server import ServeConfig, ZoneServer
    from clients.isp.store import StateStore

    log = new_log()
    listed = entries(3)
    server = serve_published(log, listed)
    config = isp_config(log, tmp_path / "state", plaintext=True)
    with server.client() as client:
        assert Syncer(config, client, clock=lambda: NOW.timestamp()).sync_once().ok
    assert config.state_dir is not None

    def generation(blockpage: tuple[str, ...]) -> tuple[int, int, tuple[str, ...]]:
        serve = ServeConfig(
            config.state_dir, "127.0.0.1", 0, ORIGIN, Admission(None, ()), blockpage=blockpage
        )
        zs = ZoneServer(serve)
        with StateStore(serve.state_dir, create=False) as store:
            zs.refresh(store)
        assert zs.journal.current is not None
        return zs.journal.current.serial, zs.journal.current.version, zs.journal.current.records

    serial, version, records = generation(())
    assert "h0.example CNAME ." in records
    # A restart with the same configuration: same generation.
    assert generation(()) == (serial, version, records)
    # The block page addresses change the rendering, not the list version.
    serial2, version2, records2 = generation(("192.0.2.80",))
    assert version2 == version
    assert serial2 == next_serial(serial)
    assert "h0.example A 192.0.2.80" in records2
    assert "h0.example CNAME ." not in records2


# --- O(changes) generations (issue 19 item 4) -----------------------------------------


def _incremental_world(
    tmp_path: Path, listed: list[str]
) -> tuple[MemoryLog, MemoryServer, IspConfig]:
    log = new_log()
    server = serve_published(log, listed)
    config = isp_config(log, tmp_path / "state", plaintext=True)
    return log, server, config


def _sync(server: MemoryServer, config: IspConfig) -> None:
    with server.client() as client:
        assert Syncer(config, client, clock=lambda: NOW.timestamp()).sync_once().ok


def _apply(records: set[str], delta: journal_mod.Delta) -> None:
    assert set(delta.removed) <= records
    assert not set(delta.added) & records
    records.difference_update(delta.removed)
    records.update(delta.added)


def test_incremental_generations_equal_a_full_render_after_random_versions(
    tmp_path: Path,
) -> None:
    import random

    from clients.isp.dnsserve.server import ServeConfig, ZoneServer
    from clients.isp.dnsserve.zone import read_rendered
    from clients.isp.store import StateStore

    rng = random.Random(1982)
    # Hosts in few groups, with subdomains under covering hosts (pruned),
    # deep names, pages and IP hosts (no record): every rule of the full
    # render must come out the same group by group.
    pool = sorted(
        {
            f"{sub}{'.' if sub else ''}g{g}.example{path}"
            for g in range(12)
            for sub in ("", "a", "b.a", "c.b.a.x.y.z")
            for path in ("/", "/page")
        }
        | {"192.0.2.7/", "example/"}
    )
    listed = rng.sample(pool, 20)
    log, server, config = _incremental_world(tmp_path, listed)
    server.expressions.update({sha(e): e for e in pool})
    _sync(server, config)
    assert config.state_dir is not None
    for blockpage in ((), ("192.0.2.80", "2001:db8::80")):
        # A fresh journal per configuration (the zone name is the same, so
        # the second run starts with a configuration change: full render).
        serve = ServeConfig(
            config.state_dir, "127.0.0.1", 0, ORIGIN, Admission(None, ()), blockpage=blockpage
        )
        zs = ZoneServer(serve)
        try:
            with StateStore(serve.state_dir, create=False) as store:
                zs.refresh(store)
                assert zs.journal.last_groups is None  # the first: whole zone
                served = set(zs.journal.current.records)  # type: ignore[union-attr]
                incremental = 0
                for _ in range(15):
                    held = set(listed)
                    adds = rng.sample(sorted(set(pool) - held), rng.randint(0, 4))
                    removes = rng.sample(sorted(held), rng.randint(0, min(4, len(held))))
                    if not adds and not removes:
                        continue
                    log.publish([sha(e) for e in adds], [sha(e) for e in removes], now=NOW)
                    listed = sorted((held | set(adds)) - set(removes))
                    _sync(server, config)
                    delta = zs.refresh(store)
                    if zs.journal.last_groups is not None:
                        incremental += 1
                    if delta is not None:
                        _apply(served, delta)
                    full = read_rendered(
                        store, zone=ZONE, blockpage=blockpage, list_name=serve.list_name
                    )
                    now = zs.journal.current
                    assert now is not None
                    # Records identical to rendering the whole state, and
                    # the IXFR deltas replayed on the previous zone give it.
                    assert now.records == full.records
                    assert served == set(full.records)
                    assert now.count == len(full.records)
                    assert now.version == full.version
                assert incremental >= 10
        finally:
            zs.journal.close()


def test_a_new_generation_renders_only_the_groups_its_version_touches(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from clients.isp.dnsserve.server import ServeConfig, ZoneServer
    from clients.isp.store import StateStore

    listed = [f"h{i}.g{i % 50}.example/" for i in range(200)]
    log, server, config = _incremental_world(tmp_path, listed)
    server.expressions.update({sha(e): e for e in ("new.g3.example/", "g7.example/")})
    _sync(server, config)
    assert config.state_dir is not None
    serve = ServeConfig(config.state_dir, "127.0.0.1", 0, ORIGIN, Admission(None, ()))
    zs = ZoneServer(serve)
    rendered_hosts: list[list[str]] = []
    real = journal_mod.render_records

    def spy(data: object, **kwargs: object) -> object:
        assert data.expressions is not None  # type: ignore[attr-defined]
        rendered_hosts.append(sorted(data.expressions.values()))  # type: ignore[attr-defined]
        return real(data, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(journal_mod, "render_records", spy)
    try:
        with StateStore(serve.state_dir, create=False) as store:
            zs.refresh(store)
            before = zs.journal.current
            assert before is not None
            # One host added in group g3, one removed from g9, and g7's
            # own name listed: it covers h7/h57/... (pruned in g7 only).
            log.publish(
                [sha("new.g3.example/"), sha("g7.example/")], [sha("h9.g9.example/")], now=NOW
            )
            _sync(server, config)
            delta = zs.refresh(store)
    finally:
        zs.journal.close()
    assert zs.journal.last_groups == {"g3.example", "g7.example", "g9.example"}
    # Rendered: exactly the entries of those three groups, nothing else.
    assert rendered_hosts == [
        sorted(
            [e for e in listed if e.split(".", 1)[1] in ("g3.example/", "g7.example/")]
            + [e for e in listed if e.endswith(".g9.example/") and e != "h9.g9.example/"]
            + ["new.g3.example/", "g7.example/"]
        )
    ]
    assert delta is not None
    assert delta.from_serial == before.serial
    assert "new.g3.example CNAME ." in delta.added
    assert "g7.example CNAME ." in delta.added
    assert "*.g7.example CNAME ." in delta.added
    assert "h9.g9.example CNAME ." in delta.removed
    # The hosts g7.example now covers leave the zone.
    assert "h7.g7.example CNAME ." in delta.removed
    assert "h0.g0.example CNAME ." not in delta.removed + delta.added


def test_a_journal_the_state_log_no_longer_reaches_renders_the_whole_zone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from clients.isp import store as store_mod
    from clients.isp.dnsserve.server import ServeConfig, ZoneServer
    from clients.isp.dnsserve.zone import read_rendered
    from clients.isp.store import StateStore

    listed = entries(5)
    log, server, config = _incremental_world(tmp_path, listed)
    more = entries(8, prefix="m")
    server.expressions.update({sha(e): e for e in more})
    _sync(server, config)
    assert config.state_dir is not None
    serve = ServeConfig(config.state_dir, "127.0.0.1", 0, ORIGIN, Admission(None, ()))
    zs = ZoneServer(serve)
    try:
        with StateStore(serve.state_dir, create=False) as store:
            zs.refresh(store)
            v1 = store.status().version
            assert v1 is not None
            log.publish([sha(e) for e in more[:2]], [sha(listed[0])], now=NOW)
            _sync(server, config)
            # The log holds exactly the version's changes.
            assert sorted(store.hash_changes_since(v1) or []) == sorted(
                [(sha(more[0]), True), (sha(more[1]), True), (sha(listed[0]), False)]
            )
            zs.refresh(store)
            assert zs.journal.last_groups == {"m0.example", "m1.example", "h0.example"}
            v2 = store.status().version
            # The log is bounded: beyond it, the whole zone is rendered.
            monkeypatch.setattr(store_mod, "MAX_HASH_LOG", 3)
            log.publish([sha(e) for e in more[2:]], [], now=NOW)
            _sync(server, config)
            assert v2 is not None
            assert store.hash_changes_since(v2) is None
            delta = zs.refresh(store)
            assert zs.journal.last_groups is None
            assert delta is not None
            assert len(delta.added) == 12
            full = read_rendered(store, zone=ZONE, blockpage=(), list_name="")
            assert zs.journal.current is not None
            assert zs.journal.current.records == full.records
    finally:
        zs.journal.close()


def test_the_json_journal_of_earlier_releases_is_removed_unread(tmp_path: Path) -> None:
    legacy = tmp_path / journal_mod.LEGACY_JOURNAL_FILE
    legacy.write_text(json.dumps({"records": ["listed.example CNAME ."]}))
    j = Journal(tmp_path, ORIGIN, zonemd=False)
    try:
        assert not legacy.exists()
        assert j.current is None
    finally:
        j.close()


def test_an_entry_added_and_removed_between_two_generations_leaves_no_trace(
    tmp_path: Path,
) -> None:
    from clients.isp.dnsserve.server import ServeConfig, ZoneServer
    from clients.isp.dnsserve.zone import read_rendered
    from clients.isp.store import StateStore

    listed = entries(3)
    log, server, config = _incremental_world(tmp_path, listed)
    server.expressions[sha("brief.example/")] = "brief.example/"
    server.expressions[sha("late.example/")] = "late.example/"
    _sync(server, config)
    assert config.state_dir is not None
    serve = ServeConfig(config.state_dir, "127.0.0.1", 0, ORIGIN, Admission(None, ()))
    zs = ZoneServer(serve)
    try:
        with StateStore(serve.state_dir, create=False) as store:
            zs.refresh(store)
            before = zs.journal.current
            # Two versions while dns-serve does not look: its plaintext is
            # gone with the removal, and the zone must not wait for it.
            log.publish([sha("brief.example/")], [], now=NOW)
            _sync(server, config)
            log.publish([sha("late.example/")], [sha("brief.example/")], now=NOW)
            _sync(server, config)
            assert store.expression_of(sha("brief.example/")) is None
            delta = zs.refresh(store)
            assert zs.journal.last_groups == {"late.example"}
            assert delta is not None
            assert before is not None
            assert delta.from_serial == before.serial
            assert zs.journal.current is not None
            full = read_rendered(store, zone=ZONE, blockpage=(), list_name="")
            assert zs.journal.current.records == full.records
    finally:
        zs.journal.close()
