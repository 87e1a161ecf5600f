"""dnsmasq, Unbound and BIND as loopback resolvers for the DNS export tests.

Used by tests/clients/isp/test_exports_tools.py and test_sharded.py (the
resolver loads the export), tests/e2e/test_dns_blockpage.py (it answers
with the block page's address) and tests/e2e/test_dns_serve.py (it
transfers the zone): foreground processes on 127.0.0.1 that read no system
configuration and forward nothing (the tests never touch the internet).
"""

from __future__ import annotations

import contextlib
import secrets
import socket
import struct
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

#: Seconds a resolver gets to start answering on its port.
START_SECONDS = 30.0
#: Seconds a terminated resolver gets to exit.
STOP_SECONDS = 60.0
#: The name every start-up probe asks for (any answer, even NXDOMAIN, will do).
PROBE_NAME = "ok.example"


def write_unbound_conf(directory: Path, server: str, body: str) -> Path:
    """``directory/unbound.conf``: a ``server:`` clause run as the test's user.

    No chroot, no user switch, no pid file and no syslog, so it runs
    unprivileged in ``directory``; ``server`` adds clause lines, ``body``
    follows them (an include or more clauses).
    """
    conf = directory / "unbound.conf"
    conf.write_text(
        "server:\n"
        '    chroot: ""\n'
        '    username: ""\n'
        f'    directory: "{directory}"\n'
        '    pidfile: ""\n'
        "    use-syslog: no\n" + server + body
    )
    return conf


def named_options(directory: Path, port: int) -> str:
    """The lines of BIND's ``options { }`` block that every test's ``named`` shares.

    A recursive server for 127.0.0.1 only, on UDP/TCP ``port``, without a
    pid file, IPv6 or DNSSEC validation (the test zones are unsigned); the
    caller adds its own options (a response policy, transfer sources).
    """
    return (
        f'  directory "{directory}";\n'
        "  pid-file none;\n"
        f"  listen-on port {port} {{ 127.0.0.1; }};\n"
        "  listen-on-v6 { none; };\n"
        "  recursion yes;\n"
        "  allow-query { 127.0.0.1; };\n"
        "  allow-recursion { 127.0.0.1; };\n"
        "  dnssec-validation no;\n"
    )


def dnsmasq_argv(dnsmasq: str, port: int, *extra: str) -> list[str]:
    """argv of ``dnsmasq`` serving UDP/TCP ``port`` on 127.0.0.1 only, plus ``extra``."""
    return [
        dnsmasq,
        "--keep-in-foreground",
        f"--port={port}",
        "--listen-address=127.0.0.1",
        "--bind-interfaces",
        "--no-resolv",
        "--no-hosts",
        "--pid-file=",
        *extra,
    ]


def a_query(port: int, name: str, *, timeout: float = 2.0) -> bytes:
    """Send one A query to 127.0.0.1:``port``; the reply that carries its id.

    Built by hand (RFC 1035 section 4.1.1: a 12-byte header with RD set,
    one question of class IN), so the tests need no resolver library.

    Raises:
        TimeoutError: no reply within ``timeout`` seconds.
        ConnectionRefusedError: nothing listens on the port (yet).
    """
    qid = secrets.randbits(16)
    question = b"".join(bytes([len(x)]) + x.encode() for x in name.split(".")) + b"\x00"
    packet = struct.pack("!6H", qid, 0x0100, 1, 0, 0, 0) + question + struct.pack("!2H", 1, 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.sendto(packet, ("127.0.0.1", port))
        while True:
            data, _ = s.recvfrom(4096)
            if struct.unpack("!H", data[:2])[0] == qid:
                return data


def wait_answering(
    proc: subprocess.Popen[bytes],
    port: int,
    *,
    what: str = "resolver",
    output: Callable[[], str] | None = None,
    timeout: float = START_SECONDS,
) -> None:
    """Return once ``proc`` answers DNS on 127.0.0.1:``port``.

    ``output`` reads what the process said (default: its pipes), for the
    error when it exited instead.

    Raises:
        AssertionError: ``proc`` exited first, or ``timeout`` seconds passed.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            a_query(port, PROBE_NAME, timeout=0.5)
            return
        except (TimeoutError, ConnectionRefusedError):
            pass
        if proc.poll() is not None:
            said = output() if output is not None else proc.communicate()
            raise AssertionError(f"{what} exited with {proc.returncode}: {said}")
        assert time.monotonic() < deadline, f"{what} did not start answering"
        time.sleep(0.05)


@contextlib.contextmanager
def resolver_running(argv: list[str], port: int) -> Iterator[int]:
    """Run ``argv`` in the foreground until it answers on ``port``; terminated after.

    Yields ``port``.
    """
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        wait_answering(proc, port)
        yield port
    finally:
        proc.terminate()
        proc.communicate(timeout=STOP_SECONDS)
