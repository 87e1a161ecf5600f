"""IXFR of a 1,000-change version into BIND: from dns-serve vs from a BIND primary (issue 19).

Target: the transfer from ``cleanfeed isp dns-serve`` takes at most 1.5x
the transfer of the same change from a BIND primary serving the same zone
(ZONEMD off), zone of 1,000,000 entries (``--quick``: 100,000).

Setup, all on loopback: a client state of N host entries with plaintext
(a verified :class:`tests.support.memory_log.MemoryLog` snapshot committed
by the client's own store); ``cleanfeed isp dns-serve`` over it as zone
``rpz-a.bench.invalid``; a BIND primary (``ixfr-from-differences yes``)
serving zone ``rpz-b.bench.invalid`` with exactly dns-serve's records and
serial (written from dns-serve's journal); one BIND secondary of both
zones (plain secondary zones, unsigned, admitted by address on both
primaries). Each run publishes a version of 500 additions and 500
removals (2,000 records each way in RPZ, host plus wildcard), commits it
to the state (dns-serve notices, re-renders, journals and NOTIFYs), then
writes the BIND primary's new zone file and reloads it (BIND computes the
difference and NOTIFYs). Measured, per zone: the secondary's own figure
for the transfer ("Transfer completed: … secs" in its log, from connect to
commit), and the wall time from the primary's new serial being
answerable to the secondary answering it. The rendering and journalling
before it (O(changes) in dns-serve when hosts spread over many groups,
O(zone) here where every host shares ``bench.example``; see
``dns_generation``; BIND's own difference on reload is O(zone)) is
reported separately and is not part of the ratio.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dns.message
import dns.query
import dns.rcode

from bench.common import (
    BenchContext,
    Figure,
    Section,
    Target,
    bench_env,
    fmt,
    fmt_runs,
    load_average,
    median,
    run_alone,
)

TARGET = Target("<=", 1.5, "<= 1.5x BIND")
ZONE_A = "rpz-a.bench.invalid"
ZONE_B = "rpz-b.bench.invalid"
CHANGES = 1000  # 500 additions + 500 removals per version
START_TIMEOUT = 1800.0  # seconds: initial AXFRs of a 2,000,000-record zone (busy machine)
STEP_TIMEOUT = 300.0


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _expr(i: int) -> str:
    return f"h{i}.bench.example/"


def _grouped_expr(i: int) -> str:
    """Hosts four to a group (last two labels), whatever the list's size."""
    return f"h{i}.d{i // 4}.example/"


class _State:
    """The ISP state, advanced one verified version at a time."""

    def __init__(self, state_dir: Path, entries: int, expr: Callable[[int], str] = _expr) -> None:
        from clients.isp.store import StateStore
        from clients.isp.trusted import TrustedState
        from tests.support.memory_log import MemoryLog

        self.expr = expr
        self.now = datetime.now(UTC)
        self.next = entries
        self.low = 0
        hashes = {hashlib.sha256(expr(i).encode()).digest(): expr(i) for i in range(entries)}
        self.log = MemoryLog("cleanfeed.invalid/bench", now=self.now)
        self.log.publish(sorted(hashes), now=self.now)
        self.ts = TrustedState([self.log.root_vkey])
        t = self.now.timestamp()
        for i, note in enumerate(self.log.keyrings):
            self.ts.update_keyring(note, t, final=i == len(self.log.keyrings) - 1)
        size = self.log.version
        self.ts.apply_snapshot(
            self.log.checkpoint(self.now),
            self.log.statements[size - 1],
            self.log.inclusion_proof(size, size),
            self.log.range_hashes(size),
            b"".join(self.log.snapshot(size)),
            now=t,
        )
        self.store = StateStore(state_dir)
        self.store.commit(self.ts.record(), self.ts.changes())
        self.ts.mark_persisted(self.store.hash_table())
        self.store.save_plaintext(list(hashes.items()), since=size, complete=True, error=None)

    def step(self) -> None:
        """One version: 500 new hosts, the 500 oldest removed."""
        half = CHANGES // 2
        adds = {
            hashlib.sha256(self.expr(i).encode()).digest(): self.expr(i)
            for i in range(self.next, self.next + half)
        }
        removes = [
            hashlib.sha256(self.expr(i).encode()).digest() for i in range(self.low, self.low + half)
        ]
        self.next += half
        self.low += half
        before = self.log.version
        self.log.publish(sorted(adds), removes, now=self.now)
        self.ts.update_checkpoint(self.log.checkpoint(self.now), self.now.timestamp())
        self.ts.apply_statements(self.log.statements[before : self.log.version])
        self.store.commit(self.ts.record(), self.ts.changes())
        self.ts.mark_persisted(self.store.hash_table())
        self.store.save_plaintext(
            list(adds.items()), since=self.log.version, complete=True, error=None
        )


def _soa(port: int, zone: str) -> int | None:
    q = dns.message.make_query(zone, "SOA")
    try:
        r = dns.query.udp(q, "127.0.0.1", port=port, timeout=0.5)
    except (dns.exception.Timeout, OSError):
        return None
    if r.rcode() != dns.rcode.NOERROR or not r.answer:
        return None
    return int(r.answer[0][0].serial)


def _wait_serial(port: int, zone: str, serial: int, timeout: float) -> float:
    """Poll until ``zone`` at ``port`` has ``serial``; return when (monotonic)."""
    deadline = time.monotonic() + timeout
    while _soa(port, zone) != serial:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{zone} at port {port} did not reach serial {serial}")
        time.sleep(0.002)
    return time.monotonic()


def _journal(state_dir: Path) -> dict[str, Any]:
    """The journal's current generation: SOA fields, serial and records (one read)."""
    import sqlite3

    from clients.isp.dnsserve.journal import JOURNAL_FILE

    conn = sqlite3.connect(state_dir / JOURNAL_FILE, isolation_level=None)
    try:
        conn.execute("BEGIN")
        doc: dict[str, Any] = {str(k): v for k, v in conn.execute("SELECT key, value FROM meta")}
        doc["timers"] = json.loads(doc["timers"])
        doc["records"] = [str(r) for (r,) in conn.execute("SELECT rec FROM records ORDER BY rec")]
    finally:
        conn.close()
    return doc


def _write_zone(path: Path, doc: dict[str, Any], zone: str = ZONE_B) -> None:
    timers = " ".join(str(t) for t in doc["timers"])
    body = [
        f"$ORIGIN {zone}.\n$TTL 300\n",
        f"@ IN SOA {doc['mname']} {doc['rname']} {doc['serial']} {timers}\n",
    ]
    body += [line + "\n" for line in doc["records"]]
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(body))
    os.replace(tmp, path)


def _named_base(directory: Path, port: int) -> str:
    return (
        "options {\n"
        f'  directory "{directory}";\n'
        "  pid-file none;\n"
        f"  listen-on port {port} {{ 127.0.0.1; }};\n"
        "  listen-on-v6 { none; };\n"
        "  recursion no;\n"
        "  allow-query { 127.0.0.1; };\n"
        "  dnssec-validation no;\n"
        "  max-journal-size unlimited;\n"
        "};\n"
        "controls { };\n"
    )


def _transfer_secs(log: Path, zone: str, serial: int) -> float:
    """The secondary's own figure for the transfer that brought ``serial``."""
    pattern = re.compile(
        rf"transfer of '{re.escape(zone)}/IN' from [^:]+: Transfer completed: "
        rf".*?([0-9.]+) secs .*\(serial {serial}\)"
    )
    deadline = time.monotonic() + 30
    while True:
        m = pattern.search(log.read_text(errors="replace"))
        if m:
            return float(m.group(1))
        if time.monotonic() > deadline:
            raise RuntimeError(f"no 'Transfer completed' for {zone} serial {serial} in {log}")
        time.sleep(0.05)


def run(ctx: BenchContext) -> Section:
    """Measure IXFR into BIND from dns-serve and from a BIND primary."""
    entries = 100_000 if ctx.quick else 1_000_000
    repeats = 3
    named = "/usr/sbin/named"
    work = ctx.work / "dns-ixfr"
    work.mkdir(parents=True, exist_ok=True)
    state_dir = work / "state"
    ctx.log(f"dns_ixfr: building a state of {entries:,} entries")
    state = _State(state_dir, entries)
    serve_port, primary_port, secondary_port = _free_port(), _free_port(), _free_port()
    procs: list[subprocess.Popen[bytes]] = []
    a_secs: list[float] = []
    b_secs: list[float] = []
    a_wall: list[float] = []
    b_wall: list[float] = []
    render: list[float] = []
    kinds: list[str] = []
    load = load_average()
    try:
        serve_log = work / "dns-serve.log"
        with serve_log.open("wb") as sink:
            procs.append(
                subprocess.Popen(
                    [
                        *(sys.executable, "-m", "cleanfeed", "isp", "dns-serve"),
                        *("--state-dir", str(state_dir), "--listen", f"127.0.0.1:{serve_port}"),
                        *("--allow-transfer", "127.0.0.1/32", "--zone", ZONE_A),
                        *("--notify", f"127.0.0.1:{secondary_port}"),
                    ],
                    stdout=sink,
                    stderr=subprocess.STDOUT,
                    env=bench_env(),
                )
            )
        t0 = time.monotonic()
        while not (state_dir / "dns-serve.journal.db").exists() or _soa(serve_port, ZONE_A) is None:
            if procs[0].poll() is not None or time.monotonic() - t0 > START_TIMEOUT:
                raise RuntimeError(f"dns-serve did not start: {serve_log.read_text()[-2000:]}")
            time.sleep(0.2)
        ctx.log(f"dns_ixfr: dns-serve up in {time.monotonic() - t0:.1f} s")
        pdir, sdir = work / "primary", work / "secondary"
        pdir.mkdir(exist_ok=True)
        sdir.mkdir(exist_ok=True)
        zone_file = pdir / "rpz-b.zone"
        doc = _journal(state_dir)
        _write_zone(zone_file, doc)
        (pdir / "named.conf").write_text(
            _named_base(pdir, primary_port)
            + f'zone "{ZONE_B}" {{ type primary; file "{zone_file}"; '
            "ixfr-from-differences yes; allow-transfer { 127.0.0.1; }; notify explicit; "
            f"also-notify {{ 127.0.0.1 port {secondary_port}; }}; }};\n"
        )
        # The secondary starts with both zones at the current serial (text
        # zone files written from the journal): what is measured is the
        # IXFR, and an initial AXFR of 2,000,000 records from dns-serve
        # takes minutes (see docs/isp.md "Cost").
        _write_zone(sdir / "a.db", doc, ZONE_A)
        _write_zone(sdir / "b.db", doc, ZONE_B)
        (sdir / "named.conf").write_text(
            _named_base(sdir, secondary_port)
            + f'zone "{ZONE_A}" {{ type secondary; primaries {{ 127.0.0.1 port {serve_port}; }}; '
            'file "a.db"; masterfile-format text; };\n'
            f'zone "{ZONE_B}" {{ type secondary; primaries {{ 127.0.0.1 port {primary_port}; }}; '
            'file "b.db"; masterfile-format text; };\n'
        )
        plog, slog = pdir / "named.log", sdir / "named.log"
        for conf, log in ((pdir / "named.conf", plog), (sdir / "named.conf", slog)):
            with log.open("wb") as sink:
                procs.append(
                    subprocess.Popen(
                        [named, "-g", "-n", "1", "-c", str(conf)],
                        stdout=sink,
                        stderr=subprocess.STDOUT,
                    )
                )
        primary = procs[1]
        serial = int(doc["serial"])
        _wait_serial(primary_port, ZONE_B, serial, START_TIMEOUT)
        _wait_serial(secondary_port, ZONE_A, serial, START_TIMEOUT)
        _wait_serial(secondary_port, ZONE_B, serial, START_TIMEOUT)
        ctx.log(f"dns_ixfr: primary and secondary up in {time.monotonic() - t0:.1f} s")
        for run_no in range(repeats):
            serial = (serial + 1) % 2**32
            # dns-serve: the commit is noticed, rendered, journalled, NOTIFY sent.
            start = time.monotonic()
            state.step()
            ready = _wait_serial(serve_port, ZONE_A, serial, STEP_TIMEOUT)
            render.append(ready - start)
            done = _wait_serial(secondary_port, ZONE_A, serial, STEP_TIMEOUT)
            a_wall.append(done - ready)
            a_secs.append(_transfer_secs(slog, ZONE_A, serial))
            # BIND primary: the same records and serial, reloaded (SIGHUP).
            doc = _journal(state_dir)
            assert int(doc["serial"]) == serial
            _write_zone(zone_file, doc)
            primary.send_signal(signal.SIGHUP)
            ready = _wait_serial(primary_port, ZONE_B, serial, STEP_TIMEOUT)
            done = _wait_serial(secondary_port, ZONE_B, serial, STEP_TIMEOUT)
            b_wall.append(done - ready)
            b_secs.append(_transfer_secs(slog, ZONE_B, serial))
            ctx.log(
                f"dns_ixfr run {run_no + 1}: dns-serve {a_secs[-1]:.3f} s "
                f"(wall {a_wall[-1]:.3f}), BIND {b_secs[-1]:.3f} s (wall {b_wall[-1]:.3f}); "
                f"dns-serve render+journal {render[-1]:.2f} s"
            )
        text = serve_log.read_text(errors="replace")
        kinds = re.findall(r"kind=(\w+) from=\d+ deltas=\d+ changes=(\d+)", text)
        if len([k for k in kinds if k[0] == "IXFR"]) < repeats:
            raise RuntimeError(f"dns-serve did not serve {repeats} IXFRs: {kinds}")
    finally:
        for proc in reversed(procs):
            proc.terminate()
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        state.store.close()
    ratio = median(a_secs) / median(b_secs) if median(b_secs) > 0 else float("inf")
    wall_ratio = median(a_wall) / median(b_wall) if median(b_wall) > 0 else float("inf")
    figures = [
        Figure(
            key="dns_ixfr_ratio",
            what=f"IXFR of {CHANGES:,} changes into BIND at {entries:,} entries: "
            "dns-serve / BIND primary (secondary's transfer time)",
            value=ratio,
            unit="x",
            runs=[a / b for a, b in zip(a_secs, b_secs, strict=True) if b > 0],
            target=TARGET,
            quick=ctx.quick,
        ),
        Figure(
            key="dns_ixfr_wall_ratio",
            what="the same, wall time from the primary answering the new serial to the "
            "secondary answering it (NOTIFY, SOA query, IXFR, commit)",
            value=wall_ratio,
            unit="x",
            runs=[a / b for a, b in zip(a_wall, b_wall, strict=True) if b > 0],
            quick=ctx.quick,
        ),
    ]
    details = (
        f"Zone of {entries:,} entries ({2 * entries:,} records), versions of {CHANGES // 2} "
        f"additions and {CHANGES // 2} removals ({2 * CHANGES:,} records each way); "
        f"{repeats} runs, side by side in one secondary `named` (BIND "
        f"{_named_version(named)}); load average at start {load}.\n\n"
        f"- transfer time reported by the secondary, dns-serve: {fmt_runs(a_secs)} s "
        f"(median {fmt(median(a_secs))} s)\n"
        f"- the same from the BIND primary: {fmt_runs(b_secs)} s "
        f"(median {fmt(median(b_secs))} s)\n"
        f"- ratio of medians: {fmt(ratio)}x (target {TARGET.text})\n"
        f"- wall time primary-ready to secondary-serving, dns-serve: {fmt_runs(a_wall)} s; "
        f"BIND primary: {fmt_runs(b_wall)} s (ratio of medians {fmt(wall_ratio)}x)\n"
        f"- before that, dns-serve noticing the commit, rendering the zone and journalling "
        f"the difference (O(zone), not in the ratio): {fmt_runs(render)} s\n"
        f"- dns-serve log, transfers served: {kinds}\n"
    )
    return Section("dns_ixfr", "DNS: IXFR into BIND, dns-serve vs a BIND primary", figures, details)


def _named_version(named: str) -> str:
    out = subprocess.run([named, "-v"], capture_output=True, text=True, timeout=30).stdout
    return out.split()[1] if len(out.split()) > 1 else "?"


if __name__ == "__main__":
    run_alone(run, __doc__)
