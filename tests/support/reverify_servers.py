"""Loopback origins and a DNS server for the re-verification tests (issue 16 item 4).

:class:`Origin` is a raw-socket HTTP/1.1 server on 127.0.0.1 (one thread per
connection, one request per connection) whose behaviour per path the test
sets: a status code, a redirect, a reset, or an endless body. It records
what a check did to it: requests per host with their arrival times, the most
connections open at once, and for an endless body how many bytes it managed
to send before the client closed.

:class:`DnsServer` is a dnspython-based UDP server on 127.0.0.1 that answers
A queries for the names it is given, NOERROR without data for their other
types, and NXDOMAIN for every other name (RFC 8020): the tests never touch a
real resolver or the internet. Names are reserved (``*.example.com``).
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import dns.flags
import dns.message
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

#: Chunk of an endless body.
ENDLESS_CHUNK = b"x" * 16_384
#: Send buffer of an endless-body connection: small, so what the origin
#: "sent" measures what the client (or proxy) accepted, not kernel slack.
ENDLESS_SNDBUF = 32_768
#: Where an "endless" body stops: far beyond what any socket buffer holds,
#: so a client that reads the body finishes (and fails the test) instead of
#: hanging it.
ENDLESS_CAP = 64 * 1024 * 1024
#: Pause between the bytes of a dripped header section.
DRIP_SECONDS = 0.2
#: Header bytes dripped before the section is finished (about 12 s).
DRIP_BYTES = 60
#: Longest request head the origin reads.
MAX_HEAD = 65_536

_REASONS = {
    200: "OK",
    301: "Moved Permanently",
    302: "Found",
    404: "Not Found",
    405: "Method Not Allowed",
    410: "Gone",
    500: "Internal Server Error",
}


@dataclass
class EndlessRecord:
    """One endless-body response: bytes sent and whether the peer closed."""

    sent: int = 0
    closed_by_peer: bool = False


@dataclass
class Origin:
    """A loopback origin whose behaviour per path is set by the test.

    Modes (``modes[path]``, default ``"200"``): a status code as text
    (``"200"``, ``"404"``, ``"410"``, ``"500"``), ``"redirect-away"`` (302 to
    another host), ``"redirect-same"`` (301 to another path on this host),
    ``"reset"`` (a TCP reset instead of an answer), ``"endless"`` (405 to
    HEAD; a GET gets 200 and a body that never ends), ``"drip"`` (a header
    section sent a byte at a time, never finished).
    """

    delay: float = 0.0
    modes: dict[str, str] = field(default_factory=dict)
    arrivals: dict[str, list[float]] = field(default_factory=dict)
    requests: list[tuple[str, str, str]] = field(default_factory=list)
    endless: list[EndlessRecord] = field(default_factory=list)
    max_active: int = 0
    port: int = 0

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._active = 0
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(128)
        self._sock.settimeout(0.2)
        self.port = self._sock.getsockname()[1]
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._acceptor = threading.Thread(target=self._accept, daemon=True)
        self._acceptor.start()

    def url(self, host: str, path: str) -> str:
        """``http://host:port/path``."""
        return f"http://{host}:{self.port}{path}"

    def close(self) -> None:
        """Stop accepting and wait for the connection threads."""
        self._stop.set()
        self._acceptor.join(timeout=10)
        self._sock.close()
        for t in self._threads:
            t.join(timeout=10)

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            t = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self._threads.append(t)
            t.start()

    def _serve(self, conn: socket.socket) -> None:
        with self._lock:
            self._active += 1
            self.max_active = max(self.max_active, self._active)
        try:
            with conn:
                conn.settimeout(10)
                self._answer(conn)
        except OSError:
            pass
        finally:
            with self._lock:
                self._active -= 1

    def _answer(self, conn: socket.socket) -> None:
        head = b""
        while b"\r\n\r\n" not in head and len(head) < MAX_HEAD:
            chunk = conn.recv(4096)
            if not chunk:
                return
            head += chunk
        lines = head.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
        method, target, _ = lines[0].split(" ", 2)
        host = ""
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "host":
                host = value.strip().rsplit(":", 1)[0].lower()
        path = "/" + target.split("://", 1)[1].split("/", 1)[1] if "://" in target else target
        with self._lock:
            self.arrivals.setdefault(host, []).append(time.monotonic())
            self.requests.append((host, method, path))
        if self.delay:
            time.sleep(self.delay)
        mode = self.modes.get(path, "200")
        if mode == "reset":
            # SO_LINGER 0: close() sends RST instead of FIN.
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            return
        if mode == "redirect-away":
            self._send(conn, method, 302, {"Location": "http://elsewhere.example.org/moved.html"})
        elif mode == "redirect-same":
            self._send(conn, method, 301, {"Location": "/elsewhere-on-this-host.html"})
        elif mode == "drip":
            # One header byte per DRIP_SECONDS, never finishing the header
            # section: each read sees data, so per-read timeouts never fire.
            conn.sendall(b"HTTP/1.1 200 OK\r\nX-Drip: ")
            with contextlib.suppress(OSError):
                for _ in range(DRIP_BYTES):
                    if self._stop.is_set():
                        return
                    time.sleep(DRIP_SECONDS)
                    conn.sendall(b"x")
                # Finished at last: a checker without a deadline sees a 200
                # (and fails its test) instead of hanging it.
                conn.sendall(b"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        elif mode == "endless":
            if method == "HEAD":
                self._send(conn, method, 405, {"Allow": "GET"})
            else:
                self._endless(conn)
        else:
            self._send(conn, method, int(mode), {})

    @staticmethod
    def _send(conn: socket.socket, method: str, status: int, headers: dict[str, str]) -> None:
        body = b"" if method == "HEAD" else b"hello"
        fields = {"Content-Length": "5", "Connection": "close", **headers}
        text = f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}\r\n"
        text += "".join(f"{k}: {v}\r\n" for k, v in fields.items()) + "\r\n"
        conn.sendall(text.encode("latin-1") + body)

    def _endless(self, conn: socket.socket) -> None:
        record = EndlessRecord()
        with self._lock:
            self.endless.append(record)
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, ENDLESS_SNDBUF)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n")
        try:
            while not self._stop.is_set() and record.sent < ENDLESS_CAP:
                conn.sendall(ENDLESS_CHUNK)
                record.sent += len(ENDLESS_CHUNK)
        except OSError:
            record.closed_by_peer = True


class DnsServer:
    """Authoritative-looking UDP answers on 127.0.0.1 for a few names (test-controlled)."""

    def __init__(self, names: dict[str, str] | None = None) -> None:
        #: name (lower case, no trailing dot) -> IPv4 address; others: NXDOMAIN.
        self.names: dict[str, str] = dict(names or {})
        self.queries = 0
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.settimeout(0.2)
        self.port: int = self._sock.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    @property
    def address(self) -> str:
        """``127.0.0.1:port`` (a vantage point's ``resolver``)."""
        return f"127.0.0.1:{self.port}"

    def close(self) -> None:
        """Stop answering."""
        self._stop.set()
        self._thread.join(timeout=10)
        self._sock.close()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                data, peer = self._sock.recvfrom(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            with contextlib.suppress(Exception):
                self._sock.sendto(self._answer(data), peer)

    def _answer(self, data: bytes) -> bytes:
        query = dns.message.from_wire(data)
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        self.queries += 1
        question = query.question[0]
        name = question.name.to_text(omit_final_dot=True).lower()
        address = self.names.get(name)
        if address is None:
            response.set_rcode(dns.rcode.NXDOMAIN)
        elif question.rdtype == dns.rdatatype.A:
            response.answer.append(
                dns.rrset.from_text(question.name, 60, dns.rdataclass.IN, dns.rdatatype.A, address)
            )
        # Other types of a known name: NOERROR, no data.
        return response.to_wire()


@contextlib.contextmanager
def running_origin() -> Iterator[Origin]:
    """An :class:`Origin` for the block, closed (threads joined) afterwards."""
    origin = Origin()
    try:
        yield origin
    finally:
        origin.close()


@contextlib.contextmanager
def running_dns(names: dict[str, str]) -> Iterator[DnsServer]:
    """A :class:`DnsServer` answering ``names`` for the block, stopped afterwards."""
    server = DnsServer(names)
    try:
        yield server
    finally:
        server.close()
