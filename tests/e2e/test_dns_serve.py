"""End to end: real BIND and Unbound secondaries of ``cleanfeed isp dns-serve`` (issue 19).

The real sync (:class:`clients.isp.sync.Syncer`, plaintext tier, against
the test server) commits a list; a real ``cleanfeed isp dns-serve``
process serves its RPZ zone on loopback; a real BIND ``named`` (admitted
by TSIG) and a real Unbound (admitted by address, from 127.0.0.1: Unbound
1.17 cannot sign transfers) and BIND transfers from 127.0.0.2 load it as
a secondary response-policy zone, configured with exactly the statements
docs/isp.md shows (:mod:`clients.isp.dnsserve.secondaries`).

Then a sync that adds one host and removes another: NOTIFY makes both
fetch it by IXFR (dns-serve's log says ``kind=IXFR`` for each peer; the SOA
refresh is an hour, so only NOTIFY can make it this quick), and each
resolver answers the new policy. Unsigned transfers, transfers from an
unlisted address and a wrong key are refused (a BIND secondary without
the key too); a secondary whose serial the journal no longer holds gets
the whole zone (BIND after the journal is lost, and a dnspython IXFR from
an unknown serial).

Marked ``e2e`` and ``tools``: a missing program skips its test with a
reason, except under ``CI=true``, where it fails.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import dns.exception
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdatatype
import dns.tsig
import dns.xfr
import dns.zone
import pytest
from support.ci import require_program
from support.isp_helpers import NOW, MemoryServer, isp_config, new_log, serve_published
from support.memory_log import MemoryLog
from support.processes import free_port
from support.resolvers import named_options, wait_answering, write_unbound_conf

from clients.isp.config import IspConfig
from clients.isp.dnsserve.journal import JOURNAL_FILE
from clients.isp.dnsserve.secondaries import SecondarySpec, bind_secondary, unbound_secondary
from clients.isp.sync import Syncer

pytestmark = [pytest.mark.e2e, pytest.mark.tools]

ZONE = "rpz.cleanfeed.invalid"
ORIGIN = dns.name.from_text(ZONE)
KEY_NAME = "cleanfeed-xfr"
KEEP = "kept.example/"
GONE = "gone.example/"
NEW = "new.example/"
LATER = "later.example/"
#: Every name under example. that no policy rewrites answers this (RFC 5737).
OTHER_V4 = "192.0.2.9"
#: Unbound's source address for transfers (Unbound 1.17 has no source
#: setting for them): the only one --allow-transfer lists.
UNBOUND_SOURCE = "127.0.0.1"
#: BIND's transfer-source: not listed, so BIND is admitted by its key only.
BIND_SOURCE = "127.0.0.2"
#: An address no option lists.
STRANGER = "127.0.0.4"
START_TIMEOUT = 30.0  # seconds for a process to start answering
#: Seconds for a change to reach a resolver: NOTIFY, SOA query, IXFR. The
#: SOA refresh is RPZ_REFRESH (an hour), so only NOTIFY can meet it.
PROPAGATION_TIMEOUT = 30.0


def require(program: str) -> str:
    return require_program(program, "bind9, bind9-utils, unbound")


def sha(expr: str) -> bytes:
    return hashlib.sha256(expr.encode()).digest()


def wait_until(what: str, check: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


# --- the processes --------------------------------------------------------------------


@dataclass
class World:
    base: Path
    log: MemoryLog
    server: MemoryServer
    config: IspConfig
    key_file: Path
    key: dns.tsig.Key
    serve_port: int
    serve_log: Path
    bind_port: int = 0
    unbound_port: int = 0
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def sync(self) -> None:
        with self.server.client() as client:
            outcome = Syncer(self.config, client, clock=lambda: NOW.timestamp()).sync_once()
        assert outcome.ok, outcome

    def publish(self, adds: list[str], removes: list[str]) -> None:
        for e in adds:
            self.server.expressions[sha(e)] = e
        self.log.publish([sha(e) for e in adds], [sha(e) for e in removes], now=NOW)
        self.sync()

    def serve_log_text(self) -> str:
        return self.serve_log.read_text(errors="replace")

    def start_serve(self) -> None:
        argv = [
            *(sys.executable, "-m", "cleanfeed", "isp", "dns-serve"),
            *("--state-dir", str(self.config.state_dir)),
            *("--listen", f"127.0.0.1:{self.serve_port}"),
            *("--tsig-key", str(self.key_file)),
            *("--allow-transfer", f"{UNBOUND_SOURCE}/32"),
            *("--zone", ZONE),
        ]
        if self.bind_port:
            argv += ["--notify", f"127.0.0.1:{self.bind_port}"]
        if self.unbound_port:
            argv += ["--notify-unsigned", f"127.0.0.1:{self.unbound_port}"]
        with self.serve_log.open("ab") as sink:
            proc = subprocess.Popen(argv, stdout=sink, stderr=subprocess.STDOUT)
        self.procs["serve"] = proc
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                soa_query(self.serve_port, key=self.key)
                return
            except (dns.exception.Timeout, ConnectionRefusedError, OSError, NotReady):
                pass
            if proc.poll() is not None:
                raise AssertionError(f"dns-serve exited {proc.returncode}: {self.serve_log_text()}")
            assert time.monotonic() < deadline, "dns-serve did not start"
            time.sleep(0.1)

    def stop(self, name: str) -> None:
        proc = self.procs.pop(name)
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class NotReady(Exception):
    """dns-serve answers SERVFAIL: no zone yet."""


def soa_query(port: int, *, key: dns.tsig.Key | None = None, source: str = "127.0.0.1") -> int:
    """The serial dns-serve answers for the zone's SOA (UDP)."""
    q = dns.message.make_query(ORIGIN, "SOA")
    if key is not None:
        q.use_tsig(key)
    r = dns.query.udp(q, "127.0.0.1", port=port, timeout=1, source=source)
    if r.rcode() == dns.rcode.SERVFAIL:
        raise NotReady  # dns-serve has not rendered the state yet
    assert r.rcode() == dns.rcode.NOERROR, dns.rcode.to_text(r.rcode())
    return int(r.answer[0][0].serial)


def resolve(port: int, name: str) -> tuple[int, set[str]]:
    q = dns.message.make_query(name, "A")
    r = dns.query.udp(q, "127.0.0.1", port=port, timeout=2)
    got = {rr.to_text() for rrset in r.answer if rrset.rdtype == dns.rdatatype.A for rr in rrset}
    return r.rcode(), got


def blocked(port: int, host: str) -> bool:
    """NXDOMAIN from the policy (the rpz CNAME-to-root action)."""
    return resolve(port, host)[0] == dns.rcode.NXDOMAIN


def open_(port: int, host: str) -> bool:
    return resolve(port, host) == (dns.rcode.NOERROR, {OTHER_V4})


def key_text(key: dns.tsig.Key) -> str:
    secret = base64.b64encode(key.secret).decode()
    return f'key "{KEY_NAME}" {{\n    algorithm hmac-sha256;\n    secret "{secret}";\n}};\n'


def spec(world: World, zone_file: str) -> SecondarySpec:
    return SecondarySpec(ZONE, "127.0.0.1", world.serve_port, KEY_NAME, zone_file)


def example_zone(directory: Path) -> Path:
    """``example.``: every name answers :data:`OTHER_V4` (what no policy rewrites)."""
    path = directory / "example.zone"
    path.write_text(
        "$ORIGIN example.\n"
        "$TTL 300\n"
        "@ IN SOA localhost. hostmaster.localhost. 1 3600 600 2419200 300\n"
        "@ IN NS localhost.\n"
        f"* A {OTHER_V4}\n"
    )
    return path


def named_conf(world: World, directory: Path, port: int, *, with_key: bool = True) -> Path:
    example_zone(directory)
    snippet = bind_secondary(spec(world, "cleanfeed.rpz"))
    policy, zone = snippet.split("\n\n", 1)
    if not with_key:
        zone = zone.replace(f' key "{KEY_NAME}"', "")
    conf = directory / "named.conf"
    conf.write_text(
        (f'include "{world.key_file}";\n' if with_key else "")
        + "options {\n"
        + named_options(directory, port)
        + f"  transfer-source {BIND_SOURCE};\n"
        # BIND 9.18 retries a refused transfer from its alternate source
        # (any address, so 127.0.0.1, which Unbound's admission lists).
        f"  alt-transfer-source {BIND_SOURCE};\n"
        "  notify no;\n" + "".join(f"  {line}\n" for line in policy.splitlines()) + "};\n"
        "controls { };\n" + zone + 'zone "example" { type primary; file "example.zone"; };\n'
    )
    return conf


def unbound_conf(world: World, directory: Path, port: int) -> Path:
    return write_unbound_conf(
        directory,
        '    logfile: ""\n'
        "    interface: 127.0.0.1\n"
        f"    port: {port}\n"
        "    do-ip6: no\n"
        "    do-daemonize: no\n"
        "    do-not-query-localhost: no\n"
        '    module-config: "respip iterator"\n'
        # example. from a local authoritative zone the iterator reads as its
        # upstream (a local-zone would answer before the policy applies).
        "auth-zone:\n"
        '    name: "example."\n'
        f'    zonefile: "{example_zone(directory)}"\n'
        "    for-downstream: no\n"
        "    for-upstream: yes\n",
        unbound_secondary(spec(world, "cleanfeed.rpz")),
    )


def start_resolver(world: World, name: str, argv: list[str], port: int, log: Path) -> None:
    with log.open("ab") as sink:
        proc = subprocess.Popen(argv, stdout=sink, stderr=subprocess.STDOUT)
    world.procs[name] = proc
    wait_answering(proc, port, what=name, output=lambda: log.read_text()[-3000:])


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    named = require("named")
    unbound = require("unbound")
    base = tmp_path_factory.mktemp("dns-serve")
    log = new_log()
    server = serve_published(log, [KEEP, GONE])
    config = isp_config(log, base / "state", plaintext=True)
    key = dns.tsig.Key(KEY_NAME, os.urandom(32), dns.tsig.HMAC_SHA256)
    key_file = base / "cleanfeed-xfr.key"
    key_file.write_text(key_text(key))
    key_file.chmod(0o600)
    world = World(base, log, server, config, key_file, key, free_port(), base / "dns-serve.log")
    world.sync()
    world.bind_port = free_port()
    world.unbound_port = free_port()
    try:
        world.start_serve()
        bind_dir = base / "bind"
        bind_dir.mkdir()
        conf = named_conf(world, bind_dir, world.bind_port)
        checked = subprocess.run(
            [require("named-checkconf"), str(conf)], capture_output=True, text=True, timeout=60
        )
        assert checked.returncode == 0, checked.stdout + checked.stderr
        start_resolver(
            world,
            "named",
            [named, "-g", "-n", "1", "-c", str(conf)],
            world.bind_port,
            bind_dir / "named.log",
        )
        unbound_dir = base / "unbound"
        unbound_dir.mkdir()
        uconf = unbound_conf(world, unbound_dir, world.unbound_port)
        checked = subprocess.run(
            [require("unbound-checkconf"), str(uconf)], capture_output=True, text=True, timeout=60
        )
        assert checked.returncode == 0, checked.stdout + checked.stderr
        start_resolver(
            world,
            "unbound",
            [unbound, "-d", "-c", str(uconf)],
            world.unbound_port,
            unbound_dir / "unbound.log",
        )
        for port in (world.bind_port, world.unbound_port):
            wait_until(
                "the first transfer", lambda p=port: blocked(p, "gone.example"), PROPAGATION_TIMEOUT
            )
        yield world
    finally:
        for name in list(world.procs):
            world.stop(name)


def transfers(world: World, peer: str, kind: str) -> int:
    return len(
        re.findall(
            rf"transfer zone={re.escape(ZONE)}\. peer={re.escape(peer)} "
            rf"auth=\w+ kind={kind}\b",
            world.serve_log_text(),
        )
    )


# --- the tests -------------------------------------------------------------------------


def test_a_sync_reaches_both_secondaries_by_notify_and_ixfr(world: World) -> None:
    for port in (world.bind_port, world.unbound_port):
        assert blocked(port, "gone.example")
        assert blocked(port, "www.gone.example")
        assert blocked(port, "kept.example")
        assert open_(port, "new.example")
    ixfr_before = {p: transfers(world, p, "IXFR") for p in (BIND_SOURCE, UNBOUND_SOURCE)}
    serial = soa_query(world.serve_port, key=world.key)

    world.publish([NEW], [GONE])

    wait_until("a new serial", lambda: soa_query(world.serve_port, key=world.key) != serial, 10)
    for port in (world.bind_port, world.unbound_port):
        wait_until(
            f"the new policy at port {port}",
            lambda p=port: blocked(p, "new.example") and open_(p, "gone.example"),
            PROPAGATION_TIMEOUT,
        )
        assert blocked(port, "www.new.example")
        assert blocked(port, "kept.example")
    # Both fetched the change as a difference, BIND signed, Unbound by address.
    text = world.serve_log_text()
    assert transfers(world, BIND_SOURCE, "IXFR") > ixfr_before[BIND_SOURCE], text
    assert transfers(world, UNBOUND_SOURCE, "IXFR") > ixfr_before[UNBOUND_SOURCE], text
    assert re.search(rf"peer={re.escape(BIND_SOURCE)} auth=tsig kind=IXFR", text), text
    # Unbound's unsigned request got the reply rendered once per generation.
    assert re.search(
        rf"peer={re.escape(UNBOUND_SOURCE)} auth=address kind=IXFR .* prerendered=yes", text
    ), text
    assert f"notify target=127.0.0.1:{world.bind_port} " in text
    assert f"notify target=127.0.0.1:{world.unbound_port} " in text


def inbound(
    world: World, *, key: dns.tsig.Key | None, source: str, serial: int | None = None
) -> dns.zone.Zone:
    zone = dns.zone.Zone(ORIGIN)
    query, _ = dns.xfr.make_query(zone, serial=serial, use_edns=False)
    if key is not None:
        query.use_tsig(key)
    if serial is None:
        query = dns.message.make_query(ORIGIN, "AXFR")
        if key is not None:
            query.use_tsig(key)
    dns.query.inbound_xfr(
        "127.0.0.1", zone, query, port=world.serve_port, timeout=10, source=source
    )
    return zone


def test_transfers_without_the_key_or_from_unlisted_addresses_are_refused(world: World) -> None:
    for source in (BIND_SOURCE, STRANGER):
        with pytest.raises(dns.xfr.TransferError) as refused:
            inbound(world, key=None, source=source)
        assert refused.value.rcode == dns.rcode.REFUSED
        q = dns.message.make_query(ORIGIN, "SOA")
        r = dns.query.udp(q, "127.0.0.1", port=world.serve_port, timeout=2, source=source)
        assert r.rcode() == dns.rcode.REFUSED
        assert not r.answer
    wrong = dns.tsig.Key(KEY_NAME, os.urandom(32), dns.tsig.HMAC_SHA256)
    with pytest.raises(dns.exception.DNSException):
        inbound(world, key=wrong, source=BIND_SOURCE)
    assert "reason=bad_tsig" in world.serve_log_text()
    # The same requests with the key, or from the listed address, succeed.
    for key, source in ((world.key, STRANGER), (None, UNBOUND_SOURCE)):
        zone = inbound(world, key=key, source=source)
        assert zone.get_node("kept.example") is not None
        assert zone.get_node("*.kept.example") is not None


def test_a_bind_secondary_without_the_key_is_refused(world: World, tmp_path: Path) -> None:
    named = require("named")
    port = free_port()
    start = len(world.serve_log_text())
    start_resolver(
        world,
        "named-nokey",
        [named, "-g", "-n", "1", "-c", str(named_conf(world, tmp_path, port, with_key=False))],
        port,
        tmp_path / "named.log",
    )
    try:
        wait_until(
            "the unsigned refresh to be refused",
            lambda: (
                re.search(
                    rf"refused zone=\S+ peer={re.escape(BIND_SOURCE)} type=(SOA|IXFR|AXFR)",
                    world.serve_log_text()[start:],
                )
                is not None
            ),
            PROPAGATION_TIMEOUT,
        )
        # It has no zone, so it applies no policy.
        assert open_(port, "kept.example")
    finally:
        world.stop("named-nokey")


def test_a_secondary_the_journal_no_longer_reaches_gets_the_whole_zone(world: World) -> None:
    # dnspython: IXFR from a serial this zone never had -> the full zone
    # (RFC 1995 section 4), which dnspython accepts as an AXFR-style answer.
    current = soa_query(world.serve_port, key=world.key)
    zone = inbound(world, key=world.key, source="127.0.0.1", serial=(current - 100_000) % 2**32)
    # A record no recent difference holds: the answer is the whole zone.
    # (Names other tests of this module add are not asserted: xdist may run
    # this test on a worker with its own fixture.)
    assert zone.get_node("kept.example") is not None
    assert re.search(r"kind=AXFR requested=IXFR from=\d+ too_old", world.serve_log_text())

    # BIND: the journal is lost while dns-serve is down and the list moves
    # on; the restarted server's generation does not reach BIND's serial.
    world.stop("serve")
    (world.config.state_dir / JOURNAL_FILE).unlink()
    world.publish([LATER], [])
    before = transfers(world, BIND_SOURCE, "AXFR")
    world.start_serve()
    wait_until(
        "BIND to fetch the whole zone",
        lambda: transfers(world, BIND_SOURCE, "AXFR") > before,
        PROPAGATION_TIMEOUT,
    )
    for port in (world.bind_port, world.unbound_port):
        wait_until(
            f"the new policy at port {port}",
            lambda p=port: blocked(p, "later.example"),
            PROPAGATION_TIMEOUT,
        )
        assert blocked(port, "new.example")
        assert open_(port, "gone.example")
