"""A hostile HTTP server on loopback that writes whatever bytes a test scripts.

The ISP client and ``cleanfeed audit fetch`` are tested against it with
their *production* HTTP client (:func:`clients.common.http.build_http_client`)
over a real socket: the attacks here (a header line a second, ``100
Continue`` forever, undecodable bytes, broken framing) live below what an
in-memory transport can express.

Each request head is read, then :attr:`HostileServer.script` is called
with a :class:`Conn` to answer it; the connection is closed when the
script returns, unless the script says its answer was complete
(:attr:`Conn.keep_open`), in which case the next request on the same
connection is served (as a keep-alive server would). Every wait of a
script is bounded (:data:`MAX_SCRIPT_SECONDS`) and ends when the client
hangs up or the server is closed, so a test that fails can never hang the
suite.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Final

#: The longest any script may keep a connection open (the hang guard).
MAX_SCRIPT_SECONDS: Final = 15.0
#: Most bytes of a request head read (the client's heads are small).
MAX_HEAD: Final = 64 * 1024


@dataclass
class Conn:
    """One accepted connection, as a script sees it."""

    sock: socket.socket
    head: bytes
    stop: threading.Event
    started: float
    #: Set by a script whose answer is complete and framed (Content-Length or
    #: chunked): the connection then serves the client's next request.
    keep_open: bool = False

    @property
    def target(self) -> str:
        """The request target (path and query) of the request line."""
        parts = self.head.split(b"\r\n", 1)[0].split(b" ")
        return parts[1].decode("latin-1") if len(parts) > 1 else ""

    def header(self, name: str) -> str | None:
        """A request header's value (latin-1), or None."""
        for line in self.head.split(b"\r\n")[1:]:
            key, _, value = line.partition(b":")
            if key.strip().lower() == name.lower().encode():
                return value.strip().decode("latin-1")
        return None

    def alive(self) -> bool:
        """Whether the script may go on (not stopped, not past its bound)."""
        return not self.stop.is_set() and time.monotonic() - self.started < MAX_SCRIPT_SECONDS

    def send(self, data: bytes) -> bool:
        """Send ``data``; False once the client has gone."""
        try:
            self.sock.sendall(data)
        except OSError:
            return False
        return True

    def pause(self, seconds: float) -> bool:
        """Wait (interruptibly); False when the script must end."""
        return not self.stop.wait(seconds) and self.alive()

    def drip(self, pieces: Iterator[bytes], interval: float) -> None:
        """Send one piece per ``interval`` until the client hangs up or time is up."""
        for piece in pieces:
            if not self.alive() or not self.send(piece):
                return
            if not self.pause(interval):
                return


Script = Callable[[Conn], None]


class HostileServer:
    """A TCP server on 127.0.0.1 (random port) answering with :attr:`script`."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.targets: list[str] = []
        self._stop = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.1)
        self.port = self._listener.getsockname()[1]
        self._threads: list[threading.Thread] = []
        self._acceptor = threading.Thread(target=self._accept, daemon=True)
        self._acceptor.start()

    @property
    def url(self) -> str:
        """Base URL (clear-text http on loopback, which the client allows)."""
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                sock, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            t = threading.Thread(target=self._serve, args=(sock,), daemon=True)
            self._threads.append(t)
            t.start()

    def _serve(self, sock: socket.socket) -> None:
        with sock:
            sock.settimeout(2.0)
            buffered = b""
            while not self._stop.is_set():
                try:
                    while b"\r\n\r\n" not in buffered and len(buffered) < MAX_HEAD:
                        data = sock.recv(4096)
                        if not data:
                            return
                        buffered += data
                except OSError:
                    return
                head, _, buffered = buffered.partition(b"\r\n\r\n")
                conn = Conn(sock, head + b"\r\n\r\n", self._stop, time.monotonic())
                self.targets.append(conn.target)
                try:
                    self.script(conn)
                except OSError:
                    return
                if not conn.keep_open:
                    # Half-close, then let the client read what was sent.
                    with contextlib.suppress(OSError):
                        sock.shutdown(socket.SHUT_WR)
                    return

    def close(self) -> None:
        """Stop every script and the listener; wait (bounded) for the threads."""
        self._stop.set()
        self._listener.close()
        self._acceptor.join(timeout=5)
        for t in self._threads:
            t.join(timeout=5)


@contextlib.contextmanager
def hostile(script: Script) -> Iterator[HostileServer]:
    """A :class:`HostileServer` for the duration of a ``with`` block."""
    server = HostileServer(script)
    try:
        yield server
    finally:
        server.close()
