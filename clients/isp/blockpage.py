"""``cleanfeed isp blockpage``: the page a DNS export sends blocked hosts to.

DESIGN.md part 2, "Enforcement at the ISP", block page; issue 18 item 2.
A resolver fed by a DNS export (RPZ, Unbound, dnsmasq, hosts) answers a
listed host with this server's address; the browser then asks this server
for the page, with the blocked name in ``Host``. The answer is:

- HTTP 451 Unavailable For Legal Reasons (RFC 7725 section 3) with
  ``Link: <the ISP's page>; rel="blocked-by"`` (section 4: blocked-by names
  who implements the block, the ISP), and a page that says who asked for
  the block (the hotline) and under what policy, the matched entry's
  ``block_ref`` (:mod:`blocklist.blockref`), a deterrence message, a
  confidential help line and how to appeal (the hotline's form with the
  ``block_ref`` filled in; the listed URL is never a link);
- a plain 404 for everything else.

Oracle protection (Clayton 2005): only **host** entries are looked up, from
the ``Host`` name alone. The path is never read: answering a listed page
URL sent here would let anyone who can reach the server test any URL
against the list's page entries. Lookups are the Safe Browsing host
suffixes (:func:`blocklist.canonical.expressions` of ``http://HOST/``) with
path ``/``, which are exactly the expressions of host entries (DESIGN.md,
"Entries": ``host/`` needs scope ``host``).

Privacy (DESIGN.md part 2, "Privacy by default"): nothing about a request
is logged or kept: no client address, no ``Host``, no path; an unexpected
error is logged by its type only. The one exception is opt-in and holds
none of those: with ``[hits] enabled = true`` each 451 answer to a GET adds
one to a count per ``block_ref`` per ISO week (:mod:`clients.isp.hits`;
the canary is never counted). No cookie is set, every
answer is ``Cache-Control: no-store`` and ``Referrer-Policy: no-referrer``,
the page loads nothing from a third party and runs no script (its
Content-Security-Policy allows one stylesheet from the page's own origin).

Only configured client networks are answered (default: loopback); any
other peer's connection is closed unanswered, so the server is no oracle
for the Internet at large either.

Fresh state without a restart: every lookup reads the committed set from
the state database (SQLite WAL readers see the last committed version), so
a sync that commits is in force on the next request. A watcher re-opens the
database when the file was replaced and logs the version now served.

The server is asyncio with h11 (the HTTP/1.1 state machine httpx itself
uses, so it is part of the base install): no web framework on the ISP's
machine. Page templates use :class:`string.Template` with every value
HTML-escaped: a custom template holds placeholders, never logic.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import signal
from collections.abc import Sequence
from dataclasses import dataclass, field
from sqlite3 import Error as SqliteError
from typing import Final
from urllib.parse import urlsplit

import h11

from blocklist.blockref import block_ref
from blocklist.errors import InvalidURL
from clients.errors import ClientError, ConfigError
from clients.isp.blockpage_config import (
    BlockPageConfig,
    _networks,
    load_blockpage_config,
    parse_listen,
)
from clients.isp.blockpage_index import (
    HostIndex,
    host_expressions,
)
from clients.isp.blockpage_page import (
    DEFAULT_TEMPLATE,
    STYLESHEET_PATH,
    PageContext,
    PageRenderer,
    appeal_link,
)
from clients.isp.hits import FLUSH_INTERVAL, HitCounter

log = logging.getLogger("cleanfeed.blockpage")

#: Largest request head (request line and headers) accepted: browsers send
#: a few KiB; more is an attack on memory. h11 checks it on each incomplete
#: read (max_incomplete_event_size), so a head is refused with 431 once the
#: buffer passes it: at most this plus one READ_CHUNK is ever held.
MAX_REQUEST_HEAD: Final = 16 * 1024
#: Request body bytes read and discarded before the connection is closed
#: (GET and HEAD carry no body; a client sending one gets no more room).
MAX_DISCARDED_BODY: Final = 64 * 1024
#: Seconds to receive a whole request head, or to wait idle between two
#: requests of a keep-alive connection (slow-loris protection).
REQUEST_TIMEOUT: Final = 10.0
#: After an error answer, how long and how much of the rest of the request
#: is read and dropped so that closing does not reset the connection.
LINGER_SECONDS: Final = 2.0
LINGER_BYTES: Final = 256 * 1024
#: Bytes read from the socket at a time.
READ_CHUNK: Final = 16 * 1024
#: Seconds between checks of the state file (replaced file, new version).
WATCH_INTERVAL: Final = 1.0


#: RFC 9110 section 9.3.1 / 9.3.2: the only methods a page answers.
_ALLOWED_METHODS: Final = frozenset({b"GET", b"HEAD"})

#: The strictest policy the page allows itself: nothing but its own
#: stylesheet; no script, image, frame, form or base URL (CSP Level 3).
CONTENT_SECURITY_POLICY: Final = (
    "default-src 'none'; style-src 'self'; img-src 'none'; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'"
)

#: Headers of every answer: no caching of anything on a blocked origin, no
#: Referer leaking the blocked host to the help line or the appeal form.
_COMMON_HEADERS: Final = (
    ("Cache-Control", "no-store"),
    ("Referrer-Policy", "no-referrer"),
    ("X-Content-Type-Options", "nosniff"),
)


# --- the page ---------------------------------------------------------------------


# --- the lookup -------------------------------------------------------------------


# --- HTTP ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Answer:
    """One HTTP answer: status, headers, body (the body of a GET)."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes
    close: bool = False


def _plain(status: int, text: str, *extra: tuple[str, str], close: bool = False) -> Answer:
    body = (text + "\n").encode("ascii")
    headers = (("Content-Type", "text/plain; charset=utf-8"), *_COMMON_HEADERS, *extra)
    return Answer(status, headers, body, close)


NOT_FOUND: Final = _plain(404, "Not Found")
METHOD_NOT_ALLOWED: Final = _plain(405, "Method Not Allowed", ("Allow", "GET, HEAD"), close=True)
BAD_REQUEST: Final = _plain(400, "Bad Request", close=True)
UNAVAILABLE: Final = _plain(503, "Service Unavailable", ("Retry-After", "10"))


@dataclass
class BlockPage:
    """Decides the answer to one request; no sockets here.

    Args:
        config: the settings.
        index: the host entries in force.
    """

    config: BlockPageConfig
    index: HostIndex
    #: Opt-in hit counts (None: nothing is counted).
    counter: HitCounter | None = None
    renderer: PageRenderer = field(init=False)
    _headers: tuple[tuple[str, str], ...] = field(init=False)

    def __post_init__(self) -> None:
        self.renderer = PageRenderer(self.config)
        headers = [
            ("Content-Type", "text/html; charset=utf-8"),
            ("Content-Language", self.config.language),
            ("Content-Security-Policy", CONTENT_SECURITY_POLICY),
            *_COMMON_HEADERS,
        ]
        if self.config.blocked_by:
            # RFC 7725 section 4: identifies the entity implementing the block.
            headers.append(("Link", f'<{self.config.blocked_by}>; rel="blocked-by"'))
        self._headers = tuple(headers)

    def context(self) -> PageContext:
        """Who asked for the block and under what policy, for the version in force."""
        origin = self.index.origin
        return PageContext(
            hotline_name=self.config.hotline_name or origin.split("/", 1)[0] or "the hotline",
            policy=self.config.policy or f"the blocklist {origin}",
        )

    def answer(self, method: bytes, target: bytes, host: str | None) -> Answer:
        """The answer to one request.

        Args:
            method: the request method.
            target: the request target (only its authority is read, when
                it is in absolute form; the path never is).
            host: the ``Host`` header, or None.
        """
        if method not in _ALLOWED_METHODS:
            return METHOD_NOT_ALLOWED
        if target[:7].lower() == b"http://" or target[:8].lower() == b"https://":
            # RFC 9112 section 3.2.2: an absolute-form target's authority
            # replaces the Host header.
            host = urlsplit(target.decode("ascii", "replace")).netloc
        if not host:
            return BAD_REQUEST
        try:
            h = self.index.lookup(host)
        except InvalidURL:
            return NOT_FOUND
        except (ClientError, OSError, SqliteError):
            return UNAVAILABLE
        if h is None:
            return NOT_FOUND
        if target.split(b"?", 1)[0] == STYLESHEET_PATH.encode():
            css = (("Content-Type", "text/css; charset=utf-8"), *_COMMON_HEADERS)
            return Answer(200, css, self.renderer.stylesheet)
        if self.counter is not None and method == b"GET":
            # One hit per page shown (HEAD shows no page); only the week and
            # the block_ref are kept (clients/isp/hits.py).
            self.counter.hit(h)
        # RFC 7725 section 3: 451 for a resource blocked by a legal demand.
        return Answer(451, self._headers, self.renderer.render(block_ref(h), self.context()))


class BlockPageServer:
    """The asyncio HTTP/1.1 server around :class:`BlockPage`.

    Args:
        page: the decisions.
        host: address to listen on.
        port: port (0: any free one; see :attr:`port` after :meth:`start`).
    """

    def __init__(self, page: BlockPage, host: str, port: int) -> None:
        self.page = page
        self._host = host
        self._port = port
        self._allowed = _networks(page.config.allow_clients)
        self._server: asyncio.Server | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def port(self) -> int:
        """The port actually bound."""
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        """Bind and start answering.

        Raises:
            OSError: the address cannot be bound.
        """
        self._server = await asyncio.start_server(
            self._connection, self._host, self._port, reuse_address=True, limit=READ_CHUNK
        )
        self._watcher = asyncio.create_task(self._watch())

    async def close(self) -> None:
        """Stop listening and drop open connections."""
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
        if self._server is not None:
            self._server.close()
            for writer in list(self._writers):
                writer.transport.abort()  # keep-alive connections end with the server
            await self._server.wait_closed()
        self.page.index.close()
        if self.page.counter is not None:
            self.page.counter.close()

    async def _watch(self) -> None:
        since_flush = 0.0
        while True:
            await asyncio.sleep(WATCH_INTERVAL)
            since_flush += WATCH_INTERVAL
            if self.page.counter is not None and since_flush >= FLUSH_INTERVAL:
                since_flush = 0.0
                try:
                    self.page.counter.flush()
                except ClientError as e:
                    log.warning("cannot save hit counts: %s", type(e).__name__)
            try:
                if self.page.index.watch():
                    log.info("serving version %s", self.page.index.version)
            except (ClientError, OSError, SqliteError) as e:
                # The previous connection keeps serving the last good state.
                log.warning("cannot re-read the state: %s", type(e).__name__)

    def _admitted(self, peer: object) -> bool:
        if not isinstance(peer, tuple) or not peer:
            return False  # not an IP socket: nobody configured it
        try:
            addr = ipaddress.ip_address(str(peer[0]).split("%", 1)[0])
        except ValueError:
            return False
        if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
            addr = addr.ipv4_mapped  # a dual-stack socket's IPv4 client
        return any(addr in net for net in self._allowed)

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # Only configured client networks are answered; others are closed
        # without a byte, and nothing about them is logged.
        if (
            not self._admitted(writer.get_extra_info("peername"))
            or len(self._writers) >= self.page.config.max_connections
        ):
            writer.transport.abort()
            return
        self._writers.add(writer)
        try:
            await self._serve(reader, writer)
        except (ConnectionError, TimeoutError, h11.ProtocolError, asyncio.IncompleteReadError):
            pass  # the client went away or misbehaved: nothing to report
        except Exception as e:  # never a traceback: it could carry request data
            log.error("internal error answering a request: %s", type(e).__name__)
        finally:
            self._writers.discard(writer)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_REQUEST_HEAD)
        while True:
            # Slow-loris protection: a whole request head, or the idle time
            # before the next one, within REQUEST_TIMEOUT.
            try:
                async with asyncio.timeout(REQUEST_TIMEOUT):
                    event = await self._next(conn, reader)
            except h11.RemoteProtocolError as e:
                # A malformed or oversized request head: say so (400, or 431
                # for a head over MAX_REQUEST_HEAD, h11's hint) and close.
                if conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
                    status = e.error_status_hint
                    reason = "Request Header Fields Too Large" if status == 431 else "Bad Request"
                    await self._send(conn, writer, _plain(status, reason, close=True), head=False)
                    await _linger(reader, writer)
                return
            if isinstance(event, h11.ConnectionClosed):
                return
            if not isinstance(event, h11.Request):
                return
            host = None
            hosts = [v for k, v in event.headers if k == b"host"]
            if len(hosts) == 1:
                host = hosts[0].decode("ascii", "replace")
            if len(hosts) > 1:
                answer = BAD_REQUEST  # RFC 9112 section 3.2: exactly one Host
            else:
                answer = self.page.answer(event.method, event.target, host)
            await self._send(conn, writer, answer, head=event.method == b"HEAD")
            if answer.close or conn.our_state is not h11.DONE:
                if conn.their_state is not h11.DONE:
                    await _linger(reader, writer)
                return
            # Discard any request body, within a bound, then keep alive.
            discarded = 0
            async with asyncio.timeout(REQUEST_TIMEOUT):
                while conn.their_state is not h11.DONE:
                    ev = await self._next(conn, reader)
                    if isinstance(ev, h11.Data):
                        discarded += len(ev.data)
                        if discarded > MAX_DISCARDED_BODY:
                            return
                    elif not isinstance(ev, h11.EndOfMessage):
                        return
            conn.start_next_cycle()  # both sides DONE: keep the connection alive

    @staticmethod
    async def _next(conn: h11.Connection, reader: asyncio.StreamReader) -> object:
        while True:
            event = conn.next_event()
            if event is not h11.NEED_DATA:
                return event
            data = await reader.read(READ_CHUNK)
            conn.receive_data(data)

    @staticmethod
    async def _send(
        conn: h11.Connection, writer: asyncio.StreamWriter, answer: Answer, *, head: bool
    ) -> None:
        headers = [*answer.headers, ("Content-Length", str(len(answer.body)))]
        if answer.close:
            headers.append(("Connection", "close"))
        out = conn.send(h11.Response(status_code=answer.status, headers=headers)) or b""
        if not head:
            out += conn.send(h11.Data(data=answer.body)) or b""
        out += conn.send(h11.EndOfMessage()) or b""
        writer.write(out)
        await writer.drain()


async def _linger(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Close our side, then read what the client is still sending, within bounds.

    Closing a socket with unread data makes the kernel send a reset, which
    can destroy the error answer before the client reads it (the "lingering
    close" of RFC 9112 section 9.6).
    """
    with contextlib.suppress(OSError, RuntimeError):
        if writer.can_write_eof():
            writer.write_eof()
    drained = 0
    with contextlib.suppress(OSError, TimeoutError):
        async with asyncio.timeout(LINGER_SECONDS):
            while drained < LINGER_BYTES and (chunk := await reader.read(READ_CHUNK)):
                drained += len(chunk)


async def open_server(config: BlockPageConfig, host: str, port: int) -> BlockPageServer:
    """Open the state, check the settings and start answering on ``host:port``.

    The state database is opened in the running loop's thread (SQLite
    connections stay in the thread that made them); :meth:`BlockPageServer.close`
    closes it.

    Raises:
        ClientError: the state cannot be opened or holds no verified list.
        ConfigError: a bad setting or template.
        OSError: the address cannot be bound.
    """
    if config.state_dir is None:
        raise ConfigError("missing required setting: --state-dir")
    index = HostIndex(config.state_dir)
    counter = HitCounter(config.state_dir, config.hits) if config.hits.enabled else None
    try:
        server = BlockPageServer(BlockPage(config, index, counter), host, port)
        await server.start()
    except BaseException:
        index.close()
        raise
    if not config.blocked_by:
        log.warning("no blocked_by URL configured: answers carry no RFC 7725 Link header")
    if not config.appeal_url:
        log.warning("no appeal_url configured: the page cannot link the appeal form")
    log.info(
        "cleanfeed blockpage listening on %s port %d, serving version %s",
        host,
        server.port,
        index.version,
    )
    return server


async def serve(config: BlockPageConfig, host: str, port: int) -> int:
    """Run the block page until SIGTERM or SIGINT.

    Returns:
        The exit status (0).

    Raises:
        ClientError: the state cannot be opened or holds no verified list.
        ConfigError: a bad setting or template.
        OSError: the address cannot be bound.
    """
    server = await open_server(config, host, port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await server.close()
    log.info("cleanfeed blockpage stopped")
    return 0


def main(config: BlockPageConfig) -> int:
    """Entry point of ``cleanfeed isp blockpage`` (after option parsing).

    Raises:
        ClientError: as :func:`serve`.
        OSError: as :func:`serve`.
    """
    if config.listen is None:
        raise ConfigError("missing required setting: --listen HOST:PORT (or blockpage.listen)")
    host, port = parse_listen(config.listen)
    return asyncio.run(serve(config, host, port))


__all__: Sequence[str] = (
    "CONTENT_SECURITY_POLICY",
    "DEFAULT_TEMPLATE",
    "STYLESHEET_PATH",
    "Answer",
    "BlockPage",
    "BlockPageConfig",
    "BlockPageServer",
    "HostIndex",
    "PageRenderer",
    "appeal_link",
    "host_expressions",
    "load_blockpage_config",
    "main",
    "open_server",
    "parse_listen",
    "serve",
)
