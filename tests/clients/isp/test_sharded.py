"""Incremental ``unbound``, ``dnsmasq`` and ``hosts`` exports: shards (issue 19 item 4).

After any number of versions the shards together hold exactly the lines of
a full export of the same version, with the same counts and notes; a
version rewrites only the shards its changes fall in; and the real Unbound
and dnsmasq read the result (including the shard directory) and answer by
it.
"""

from __future__ import annotations

import os
import pwd
import random
import socket
import struct
import subprocess
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from support.ci import require_program
from support.export_inputs import DNS_MIX
from support.isp_helpers import LIST, NOW, MemoryServer, isp_config, new_log
from support.processes import free_port
from support.resolvers import a_query, dnsmasq_argv, resolver_running, write_unbound_conf

from blocklist.canonical import expression_hash
from clients.errors import PlaintextMismatch
from clients.isp.config import ExportSpec
from clients.isp.exports.formats import ExportInput, ExportResult, MissingPlaintext
from clients.isp.exports.output import render
from clients.isp.exports.sharded import (
    SHARDED_FORMATS,
    ShardedSource,
    apply_sharded,
    shard_dir,
    shard_of,
)
from clients.isp.sync import Syncer, SyncOutcome

WHEN = datetime(2026, 1, 2, tzinfo=UTC)
BLOCKPAGE = ("192.0.2.10", "2001:db8::10")


def expr_of(i: int) -> str:
    """A mix: hosts, hosts under other hosts, deep hosts, pages, IPs, odd names."""
    kind = i % 9
    if kind == 0:
        return f"h{i}.example/"
    if kind == 1:
        return f"x.h{i - 1}.example/"  # under the previous host
    if kind == 2:
        return f"a.b.c.d.e{i}.example/"  # six labels: exact host only
    if kind == 3:
        return f"example.net/p/{i}.html"
    if kind == 4:
        return f"h{i - 4}.example/dir{i}/"  # prefix under a listed host
    if kind == 5:
        return f"198.51.100.{i % 250}/" if i % 2 else f"{'a' * 64}{i}.example/"
    if kind == 6:
        return f"w{i}.example.org/"
    if kind == 7:
        return f"h{i - 7}.example/"  # the same host as kind 0: a duplicate listing? no: i-7
    return DNS_MIX[i % len(DNS_MIX)]


class Listed:
    """The verified list as the store holds it, with versions."""

    def __init__(self, size: int, seed: int = 1) -> None:
        self.rng = random.Random(seed)
        self.exprs: dict[bytes, str] = {}
        for i in range(size):
            e = expr_of(i)
            self.exprs[expression_hash(e)] = e
        self.next = size
        self.version = 1

    def source(self) -> ShardedSource:
        return ShardedSource(
            lambda h: self.exprs.get(h),
            lambda: sorted(self.exprs.items()),
            lambda: len(self.exprs),
        )

    def data(self) -> ExportInput:
        return ExportInput(
            self.version, list(self.exprs), self.exprs, "main", "hotline.example", WHEN
        )

    def step(self, adds: int, removes: int) -> tuple[list[bytes], list[bytes]]:
        removed = self.rng.sample(sorted(self.exprs), removes)
        for h in removed:
            del self.exprs[h]
        added: list[bytes] = []
        while len(added) < adds:
            e = expr_of(self.next)
            self.next += 1
            h = expression_hash(e)
            if h not in self.exprs:
                self.exprs[h] = e
                added.append(h)
        self.version += 1
        return added, removed


def body_lines(content: bytes) -> list[bytes]:
    return [x for x in content.splitlines() if x and not x.startswith(b"#") and x != b"server:"]


def shard_lines(out: Path) -> list[bytes]:
    lines: list[bytes] = []
    for p in shard_dir(out).iterdir():
        if not p.name.startswith("."):
            lines += body_lines(p.read_bytes())
    return sorted(lines)


def same_report(a: ExportResult, b: ExportResult) -> None:
    assert (a.enforced, a.not_enforceable, a.left_out, a.partial) == (
        b.enforced,
        b.not_enforceable,
        b.left_out,
        b.partial,
    )
    assert a.notes == b.notes


def apply(
    fmt: str,
    out: Path,
    lst: Listed,
    changes: tuple[Iterable[bytes], Iterable[bytes]] | None,
    before: int | None,
    blockpage: tuple[str, ...] = (),
) -> ExportResult:
    added, removed = changes if changes is not None else ((), ())
    return apply_sharded(
        fmt,  # type: ignore[arg-type]
        out,
        out.parent / "index" / f"{fmt}.db",
        lst.data(),
        lst.source(),
        before=before,
        added=list(added),
        removed=list(removed),
        blockpage=blockpage,
    )


@pytest.mark.parametrize("fmt", SHARDED_FORMATS)
@pytest.mark.parametrize("blockpage", [(), BLOCKPAGE])
def test_incremental_applications_equal_a_full_render(
    tmp_path: Path, fmt: str, blockpage: tuple[str, ...]
) -> None:
    out = tmp_path / "cleanfeed.conf"
    lst = Listed(600)
    result = apply(fmt, out, lst, None, None, blockpage)
    for _ in range(12):
        before = lst.version
        changes = lst.step(lst.rng.randint(0, 40), lst.rng.randint(0, 30))
        result = apply(fmt, out, lst, changes, before, blockpage)
        full = render(fmt, lst.data(), blockpage=blockpage)
        assert shard_lines(out) == sorted(body_lines(full.files[""]))
        same_report(result, full)
        assert f"version {lst.version}".encode() in out.read_bytes()


def test_a_version_rewrites_only_its_shards(tmp_path: Path) -> None:
    out = tmp_path / "cleanfeed.conf"
    lst = Listed(3000)
    apply("unbound", out, lst, None, None)
    before_files = {p.name: p.stat().st_mtime_ns for p in shard_dir(out).iterdir()}
    before = lst.version
    added, removed = lst.step(3, 2)
    result = apply("unbound", out, lst, (added, removed), before)
    rewritten = {p.name for p, changed in result.written.items() if changed and p != out}
    hosts = [lst.exprs.get(h) for h in added]
    assert len(rewritten) <= 5
    after_files = {p.name: p.stat().st_mtime_ns for p in shard_dir(out).iterdir()}
    untouched = [n for n in before_files if n in after_files and n not in rewritten]
    assert untouched
    assert all(before_files[n] == after_files[n] for n in untouched)
    for e in hosts:
        assert e is not None
        if e.endswith("/") and e.count("/") == 1 and not e[0].isdigit():
            host = e[:-1]
            assert f"{shard_of(host):05d}.conf" in after_files


def test_changes_from_another_version_rebuild(tmp_path: Path) -> None:
    out = tmp_path / "cleanfeed.conf"
    lst = Listed(300)
    apply("dnsmasq", out, lst, None, None)
    lst.step(10, 10)  # never applied
    before = lst.version
    changes = lst.step(10, 10)
    result = apply("dnsmasq", out, lst, changes, before)
    full = render("dnsmasq", lst.data())
    assert shard_lines(out) == sorted(body_lines(full.files[""]))
    same_report(result, full)


def test_missing_plaintext_keeps_the_previous_version(tmp_path: Path) -> None:
    out = tmp_path / "cleanfeed.conf"
    lst = Listed(300)
    apply("hosts", out, lst, None, None)
    old = shard_lines(out)
    before = lst.version
    added, removed = lst.step(5, 5)
    held = dict(lst.exprs)
    del lst.exprs[added[0]]
    source = ShardedSource(lambda h: lst.exprs.get(h), lambda: [], lambda: len(held))
    with pytest.raises(MissingPlaintext):
        apply_sharded(
            "hosts",
            out,
            out.parent / "index" / "hosts.db",
            lst.data(),
            source,
            before=before,
            added=added,
            removed=removed,
        )
    assert shard_lines(out) == old
    lst.exprs = held
    apply("hosts", out, lst, (added, removed), before)
    assert shard_lines(out) == sorted(body_lines(render("hosts", lst.data()).files[""]))


def test_an_expression_that_is_not_its_hash_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "cleanfeed.conf"
    lst = Listed(50)
    h = next(iter(lst.exprs))
    lst.exprs[h] = "evil.example/"
    with pytest.raises(PlaintextMismatch):
        apply("unbound", out, lst, None, None)


# --- the real programs read the shards -----------------------------------------------


def test_unbound_checkconf_reads_the_shards(tmp_path: Path) -> None:
    checkconf = require_program("unbound-checkconf", "unbound")
    out = tmp_path / "cleanfeed.conf"
    lst = Listed(400)
    for blockpage in ((), BLOCKPAGE):
        apply("unbound", out, lst, None, None, blockpage)
        conf = write_unbound_conf(tmp_path, "", f'    include: "{out}"\n')
        proc = subprocess.run(
            [checkconf, str(conf)], capture_output=True, text=True, timeout=120, check=False
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
    # Negative control: a bad line in one shard fails the whole configuration.
    shard = next(p for p in shard_dir(out).iterdir() if p.suffix == ".conf")
    shard.write_text(shard.read_text() + f'local-zone: "{"a" * 64}.example." always_nxdomain\n')
    proc = subprocess.run(
        [checkconf, str(conf)], capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode != 0


def test_dnsmasq_reads_the_shards(tmp_path: Path) -> None:
    dnsmasq = require_program("dnsmasq", "dnsmasq-base")
    out = tmp_path / "cleanfeed.conf"
    lst = Listed(400)
    apply("dnsmasq", out, lst, None, None)
    proc = subprocess.run(
        [dnsmasq, "--test", f"--conf-file={out}"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    shard = next(p for p in shard_dir(out).iterdir() if p.suffix == ".conf")
    shard.write_text(shard.read_text() + f"address=/{'a' * 64}.example/\n")
    proc = subprocess.run(
        [dnsmasq, "--test", f"--conf-file={out}"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode != 0


# --- the syncer writes it after each verified commit -----------------------------------


def test_sync_keeps_a_sharded_unbound_export_current(tmp_path: Path) -> None:
    out = tmp_path / "out" / "cleanfeed.conf"
    out.parent.mkdir()
    log = new_log()
    first = {expression_hash(e): e for e in (expr_of(i) for i in range(200))}
    log.publish(sorted(first), now=NOW)
    server = MemoryServer(log)
    server.expressions = dict(first)
    config = isp_config(
        log,
        tmp_path / "state",
        plaintext=True,
        exports=(ExportSpec("unbound", out, incremental=True),),
    )

    def sync() -> SyncOutcome:
        with server.client() as client:
            return Syncer(config, client, clock=lambda: NOW.timestamp()).sync_once()

    def expected() -> list[bytes]:
        data = ExportInput(1, list(server.expressions), server.expressions, LIST, "", WHEN)
        return sorted(body_lines(render("unbound", data).files[""]))

    outcome = sync()
    assert outcome.problems == ()
    assert shard_lines(out) == expected()
    for i in range(3):
        new = {expression_hash(e): e for e in (f"n{i}.example/", f"m{i}.example.org/")}
        gone = sorted(server.expressions)[:5]
        server.expressions.update(new)
        log.publish(sorted(new), gone, now=NOW)
        outcome = sync()
        assert outcome.problems == ()
        assert outcome.exports_changed == (str(out),)
        for h in gone:
            del server.expressions[h]
        assert shard_lines(out) == expected()
        assert f"version {log.version}".encode() in out.read_bytes()
    assert sync().exports_changed == ()


# --- resolvers answering from the shards ---------------------------------------------


def dns_answer(port: int, name: str, *, timeout: float = 2.0) -> tuple[int, bytes | None]:
    """One A query to 127.0.0.1:port: (RCODE, the first answer's address or None).

    RFC 1035 4.1: a 12-byte header, the question, then answers; with one
    A record and nothing after it, its RDATA is the message's last 4 bytes.
    """
    data = a_query(port, name, timeout=timeout)
    ancount = struct.unpack("!H", data[6:8])[0]
    return data[3] & 0x0F, (data[-4:] if ancount else None)


NXDOMAIN = 3
REDIRECT = bytes([192, 0, 2, 9])  # every unlisted name under example.


def resolution_list() -> Listed:
    lst = Listed(0)
    for e in ("a.example/", "b.example/", "c.d.example/", "e.example/page.html"):
        lst.exprs[expression_hash(e)] = e
    return lst


def step_to(lst: Listed, adds: list[str], removes: list[str]) -> tuple[list[bytes], list[bytes]]:
    added = [expression_hash(e) for e in adds]
    removed = [expression_hash(e) for e in removes]
    for h in removed:
        del lst.exprs[h]
    lst.exprs.update(zip(added, adds, strict=True))
    lst.version += 1
    return added, removed


@pytest.mark.e2e
def test_unbound_answers_from_the_shards_across_versions(tmp_path: Path) -> None:
    unbound = require_program("unbound", "unbound")
    out = tmp_path / "cleanfeed.conf"
    lst = resolution_list()
    apply("unbound", out, lst, None, None)
    port = free_port("127.0.0.1", socket.SOCK_DGRAM)
    conf = write_unbound_conf(
        tmp_path,
        f"    interface: 127.0.0.1\n    port: {port}\n    do-ip6: no\n"
        '    do-daemonize: no\n    logfile: ""\n'
        '    local-zone: "example." redirect\n    local-data: "example. A 192.0.2.9"\n',
        f'    include: "{out}"\n',
    )
    with resolver_running([unbound, "-d", "-c", str(conf)], port):
        assert dns_answer(port, "a.example")[0] == NXDOMAIN
        assert dns_answer(port, "www.c.d.example")[0] == NXDOMAIN
        assert dns_answer(port, "e.example") == (0, REDIRECT)  # a page only
        assert dns_answer(port, "f.example") == (0, REDIRECT)
    before = lst.version
    changes = step_to(lst, ["f.example/"], ["a.example/"])
    apply("unbound", out, lst, changes, before)
    with resolver_running([unbound, "-d", "-c", str(conf)], port):
        assert dns_answer(port, "a.example") == (0, REDIRECT)
        assert dns_answer(port, "f.example")[0] == NXDOMAIN
        assert dns_answer(port, "b.example")[0] == NXDOMAIN


@pytest.mark.e2e
@pytest.mark.parametrize("fmt", ["dnsmasq", "hosts"])
def test_dnsmasq_answers_from_the_shards_across_versions(tmp_path: Path, fmt: str) -> None:
    dnsmasq = require_program("dnsmasq", "dnsmasq-base")
    out = tmp_path / "cleanfeed.conf"
    lst = resolution_list()
    apply(fmt, out, lst, None, None)
    port = free_port("127.0.0.1", socket.SOCK_DGRAM)
    load = f"--conf-file={out}" if fmt == "dnsmasq" else f"--addn-hosts={shard_dir(out)}"
    # An address= line for a domain outranks hosts files in dnsmasq, so the
    # hosts case has no catch-all: an unlisted name gets no 0.0.0.0 answer.
    # dnsmasq reads addn-hosts after dropping root to --user: keep this
    # test's user, which can read its temporary directory (mode 0700).
    user = f"--user={pwd.getpwuid(os.getuid()).pw_name}"
    extra = ["--address=/example/192.0.2.9"] if fmt == "dnsmasq" else [user]
    argv = dnsmasq_argv(dnsmasq, port, *extra, load)
    # dnsmasq answers NXDOMAIN for address=/host/, 0.0.0.0 for a hosts line.
    blocked = (NXDOMAIN, None) if fmt == "dnsmasq" else (0, bytes(4))
    with resolver_running(argv, port):
        assert dns_answer(port, "a.example") == blocked
        assert dns_answer(port, "f.example") != blocked
    before = lst.version
    changes = step_to(lst, ["f.example/"], ["a.example/"])
    apply(fmt, out, lst, changes, before)
    with resolver_running(argv, port):
        assert dns_answer(port, "a.example") != blocked
        assert dns_answer(port, "f.example") == blocked
        assert dns_answer(port, "b.example") == blocked
