"""The ``cleanfeed isp dns-serve`` server: AXFR/IXFR over TCP, SOA over UDP.

What it answers (nothing else; the zone lists blocked hosts, so answering
ordinary queries from it would make this server an oracle for the list):

- ``SOA`` of the zone (UDP and TCP), so a secondary can compare serials;
- ``AXFR`` (TCP only, RFC 5936): SOA, every record, SOA again, in as many
  messages as needed;
- ``IXFR`` (RFC 1995): over TCP, the deltas from the secondary's serial
  (section 4: current SOA, then per delta old SOA, removed records, new
  SOA, added records, then the current SOA), or the whole zone when the
  journal does not reach back to that serial, or a single SOA when the
  secondary is current; over UDP, always a single SOA (section 2: a reply
  that does not fit is replaced by the SOA, and the secondary retries over
  TCP).

Every one of them is admitted only with a TSIG signature by the
configured key (RFC 8945; dnspython verifies it while parsing) or from an
``--allow-transfer`` network; others get REFUSED (a bad or unknown key:
NOTAUTH, RFC 8945 section 5.2), and a log line with the zone name, the
peer address and the reason, never anything else of the request.

Responses to a signed request are signed, each message of a transfer in
turn with the running digest of RFC 8945 section 5.3.1 (dnspython's
``multi`` TSIG context).

How a commit is noticed: dns-serve is its own process and never talks to
the hotline; every :data:`POLL_INTERVAL` seconds it reads the state's
version and plaintext progress (three indexed reads of ``state.db``'s
``meta`` table, WAL readers never block the sync). When they change it
re-renders the groups the new versions touch (the whole zone on a
configuration change: :mod:`clients.isp.dnsserve.journal`), and when
the records differ it becomes the next
generation, is journalled, served, and NOTIFY goes to every target
(:mod:`clients.isp.dnsserve.notify`). Polling was chosen over inotify:
the same code on every platform and filesystem, no missed events across
SQLite's WAL checkpoints, and a second at most of added latency.

Logging: one ``key=value`` line per transfer, refusal, generation and
NOTIFY. Peer addresses are logged: the peers are the ISP's own
resolvers (this server is not for subscribers), and a refusal without an
address cannot be acted on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import struct
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, cast

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import dns.tsig

from clients.errors import ClientError
from clients.isp.dnsserve.acl import Admission
from clients.isp.dnsserve.journal import Delta, Journal
from clients.isp.dnsserve.notify import Notifier
from clients.isp.dnsserve.zone import (
    ZoneNotReady,
    ZoneSnapshot,
    serial_gt,
    state_key,
)
from clients.isp.exports.formats import RPZ_TTL
from clients.isp.store import StateStore

__all__ = [
    "MAX_RECORDS_PER_MESSAGE",
    "POLL_INTERVAL",
    "ServeConfig",
    "ZoneServer",
    "run",
]

log = logging.getLogger("cleanfeed.dns-serve")

#: Seconds between two looks at the state (see the module docstring).
POLL_INTERVAL: Final = 1.0
#: Seconds before a failed refresh (state or journal unusable) is tried
#: again: each try renders the whole zone.
ERROR_BACKOFF: Final = 30.0
#: Records per transfer message. An owner name is at most 255 octets and
#: the largest record (AAAA) adds 26, so 200 records stay below the 65,535
#: octets of one TCP DNS message (RFC 1035 4.2.2) with room for the TSIG.
MAX_RECORDS_PER_MESSAGE: Final = 200
#: Newest deltas kept as ready-made record sets (built in the worker thread
#: when the generation is made, so the IXFR that NOTIFY triggers only
#: serialises them). At 1,000 changes a delta is 2,000 records, a few MB.
PREPARED_DELTAS: Final = 4
#: Largest request accepted over TCP: a transfer request is one question,
#: an SOA and a TSIG; anything larger is not one.
MAX_REQUEST_OCTETS: Final = 4096
#: Seconds a TCP client may take to send its request (slow-loris bound).
TCP_READ_TIMEOUT: Final = 30.0
#: Concurrent TCP connections; further ones are closed at once (bounded
#: memory: each transfer holds its zone snapshot reference only).
MAX_TCP_CONNECTIONS: Final = 64


@dataclass(frozen=True)
class ServeConfig:
    """What ``dns-serve`` was started with.

    Attributes:
        state_dir: the ISP client's state directory (read only, plus the
            journal file).
        host: listening address.
        port: listening port (UDP and TCP).
        zone: the zone name.
        admission: who may transfer.
        notify: NOTIFY targets (address, port), signed when a key is set.
        notify_unsigned: NOTIFY targets that get it unsigned (Unbound).
        zonemd: add an RFC 8976 ZONEMD record.
        blockpage: the ``rpz`` export's blockpage addresses (ISP config).
        list_name: the list's name (zone file header).
        poll_interval: seconds between looks at the state.
    """

    state_dir: Path
    host: str
    port: int
    zone: dns.name.Name
    admission: Admission
    notify: tuple[tuple[str, int], ...] = ()
    notify_unsigned: tuple[tuple[str, int], ...] = ()
    zonemd: bool = False
    blockpage: tuple[str, ...] = ()
    list_name: str = ""
    poll_interval: float = POLL_INTERVAL


@dataclass
class _Rdatas:
    """Parsed rdata by its text: an RPZ zone has only a few distinct ones."""

    origin: dns.name.Name
    cache: dict[str, dns.rdata.Rdata] = field(default_factory=dict)

    def rrset(self, line: str) -> dns.rrset.RRset:
        owner, rest = line.split(" ", 1)
        rd = self.cache.get(rest)
        if rd is None:
            rdtype, text = rest.split(" ", 1)
            rd = dns.rdata.from_text(dns.rdataclass.IN, rdtype, text, origin=self.origin)
            if len(self.cache) < 1024:
                self.cache[rest] = rd
        name = self.origin if owner == "@" else dns.name.from_text(owner, self.origin)
        return dns.rrset.from_rdata(name, RPZ_TTL, rd)


class ZoneServer:
    """The served zone, its journal, and the request handling."""

    def __init__(self, config: ServeConfig) -> None:
        """Load the journal (the last good zone) of ``config.state_dir``.

        Raises:
            LocalCorruption: the journal file is not one.
            LocalStateError: it cannot be read.
        """
        self.config = config
        self.journal = Journal(config.state_dir, config.zone, zonemd=config.zonemd)
        self.counters: Counter[str] = Counter()
        self._rdatas = _Rdatas(config.zone)
        #: to_serial -> (removed, added) record sets of the newest deltas.
        self._prepared: dict[int, tuple[list[dns.rrset.RRset], list[dns.rrset.RRset]]] = {}
        #: The unsigned IXFR reply from the previous generation to the
        #: current one, rendered once: (from, to, {edns?: messages}).
        self._ready_ixfr: tuple[int, int, dict[bool, list[bytes]]] | None = None
        self._key: object = None
        #: The zone served: the journal's current generation once its IXFR
        #: reply is prepared (the journal may be one generation ahead).
        self.current: ZoneSnapshot | None = self.journal.current
        self.notifier = Notifier(
            config.zone, config.notify, config.admission.key, unsigned=config.notify_unsigned
        )

    # --- following the state --------------------------------------------------

    def refresh(self, store: StateStore) -> Delta | None:
        """Re-render the state; journal and serve it if it changed.

        Returns:
            The new delta (None: unchanged, or the first generation).

        Raises:
            ZoneNotReady: nothing to serve from the state yet.
            ClientError: the state or the journal cannot be used.
        """
        before = self.current
        # O(changes): only the groups the new versions touch are rendered
        # again (the whole zone on a configuration change; journal.py).
        delta = self.journal.follow(
            store,
            zone=self.config.zone.to_text(),
            blockpage=self.config.blockpage,
            list_name=self.config.list_name,
        )
        now = self.journal.current
        if delta is not None:
            prepared = {
                d.to_serial: self._prepared.get(d.to_serial)
                or (
                    [self._rdatas.rrset(line) for line in d.removed],
                    [self._rdatas.rrset(line) for line in d.added],
                )
                for d in self.journal.deltas[-PREPARED_DELTAS:]
            }
            self._prepared = prepared  # one assignment: readers see old or new
            if now is not None:
                self._ready_ixfr = self._render_newest(now, delta)
        # Served (SOA answered, transfers) only now, with its IXFR reply
        # ready: the secondaries NOTIFY wakes ask at once.
        self.current = now
        if now is not None and now is not before:
            self.counters["generations"] += 1
            log.info(
                "zone serial=%d version=%d records=%d removed=%d added=%d",
                now.serial,
                now.version,
                now.count,
                0 if delta is None else len(delta.removed),
                0 if delta is None else len(delta.added),
            )
        return delta

    def _render_newest(
        self, zone: ZoneSnapshot, delta: Delta
    ) -> tuple[int, int, dict[bool, list[bytes]]]:
        """Render the IXFR reply of the newest delta once, without and with EDNS.

        The secondaries NOTIFY wakes all ask for exactly this difference;
        an unsigned request then gets these messages with its own ID
        (signed requests are rendered per request: the MACs cover the
        request's).
        """
        variants: dict[bool, list[bytes]] = {}
        for edns in (False, True):
            template = dns.message.make_query(
                self.config.zone, dns.rdatatype.IXFR, use_edns=0 if edns else None
            )
            template.id = 0
            template.flags = 0
            variants[edns] = list(self._messages(template, self._ixfr(zone, [delta])))
        return delta.from_serial, delta.to_serial, variants

    def _refresh_own_connection(self) -> Delta | None:
        with StateStore(self.config.state_dir, create=False) as store:
            return self.refresh(store)

    async def watch(self, store: StateStore) -> None:
        """Poll the state forever; refresh and NOTIFY on every change.

        A state that cannot be rendered yet (plaintext still arriving) is
        tried again when the state changes, not every second (a whole
        rendering is O(zone)); another failure after :data:`ERROR_BACKOFF`
        seconds.
        """
        key: object = None
        not_ready = ""
        while True:
            wait = self.config.poll_interval
            current_key: object = None
            try:
                current_key = state_key(store)
                if current_key != key:
                    before = self.current
                    # Rendering may be O(zone) (first generation, configuration
                    # change): a worker thread, with its own state connection
                    # (SQLite connections stay in their thread).
                    await _in_daemon_thread(self._refresh_own_connection)
                    key = current_key
                    now = self.current
                    if now is not None and now is not before:
                        self.notifier.zone_changed(now.soa)
            except ZoneNotReady as e:
                key = current_key
                if str(e) != not_ready:  # once per reason, not every second
                    not_ready = str(e)
                    log.warning("zone not ready: %s", e)
            except ClientError as e:
                key, wait = None, ERROR_BACKOFF
                log.error(
                    "cannot refresh the zone (%s): %s; still serving serial %s",
                    e.reason,
                    e,
                    None if self.current is None else self.current.serial,
                )
            except Exception:
                # Never let the watcher die silently: the zone would freeze.
                key, wait = None, ERROR_BACKOFF
                log.exception("cannot refresh the zone; still serving the previous one")
            await asyncio.sleep(wait)

    # --- requests ---------------------------------------------------------------

    def _parse(self, wire: bytes, peer: str) -> tuple[dns.message.Message | None, bytes | None]:
        """Parse a request; returns (query, None) or (None, an error reply or None)."""
        try:
            query = dns.message.from_wire(wire, keyring=self.config.admission.keyring)
        except (
            dns.message.UnknownTSIGKey,
            dns.tsig.BadSignature,
            dns.tsig.BadTime,
            dns.tsig.BadAlgorithm,
            dns.tsig.PeerError,
        ) as e:
            # RFC 8945 section 5.2: a request whose TSIG fails is answered
            # NOTAUTH, unsigned.
            self.counters["refused"] += 1
            log.warning(
                "refused zone=%s peer=%s reason=bad_tsig (%s)",
                self.config.zone,
                peer,
                type(e).__name__,
            )
            try:
                bare = dns.message.from_wire(wire, keyring=False)
            except dns.exception.DNSException:
                return None, None
            if bare.flags & dns.flags.QR:
                return None, None
            reply = dns.message.make_response(bare)
            reply.set_rcode(dns.rcode.NOTAUTH)
            return None, reply.to_wire()
        except dns.exception.DNSException:
            self.counters["malformed"] += 1
            return None, None
        if query.flags & dns.flags.QR:
            return None, None  # a response: never answered (no reflection loops)
        return query, None

    def _refuse(self, query: dns.message.Message, rcode: dns.rcode.Rcode) -> bytes:
        reply = dns.message.make_response(query)
        reply.set_rcode(rcode)
        return reply.to_wire()

    def _check(
        self, query: dns.message.Message, peer: str, transport: str
    ) -> tuple[int, str] | bytes:
        """Admit a request: (rdtype, how admitted), or the refusal to send."""
        if query.opcode() != dns.opcode.QUERY or len(query.question) != 1:
            return self._refuse(
                query, dns.rcode.NOTIMP if query.opcode() != dns.opcode.QUERY else dns.rcode.FORMERR
            )
        q = query.question[0]
        if q.name != self.config.zone or q.rdclass != dns.rdataclass.IN:
            self.counters["refused"] += 1
            return self._refuse(query, dns.rcode.REFUSED)
        how = self.config.admission.admits(peer, query.had_tsig)
        if how is None:
            self.counters["refused"] += 1
            log.warning(
                "refused zone=%s peer=%s type=%s transport=%s reason=%s",
                self.config.zone,
                peer,
                dns.rdatatype.to_text(q.rdtype),
                transport,
                "not_admitted" if not query.had_tsig else "key_not_configured",
            )
            return self._refuse(query, dns.rcode.REFUSED)
        if q.rdtype not in (dns.rdatatype.SOA, dns.rdatatype.AXFR, dns.rdatatype.IXFR):
            return self._refuse(query, dns.rcode.REFUSED)
        if self.current is None:
            return self._refuse(query, dns.rcode.SERVFAIL)
        return int(q.rdtype), how

    def _soa_reply(self, query: dns.message.Message, zone: ZoneSnapshot) -> bytes:
        reply = dns.message.make_response(query)
        reply.flags |= dns.flags.AA
        reply.answer.append(zone.soa)
        return reply.to_wire()

    def answer_udp(self, wire: bytes, peer: str) -> bytes | None:
        """The reply to one UDP request (None: send nothing)."""
        query, error = self._parse(wire, peer)
        if query is None:
            return error
        checked = self._check(query, peer, "udp")
        if isinstance(checked, bytes):
            return checked
        rdtype, _how = checked
        zone = self.current
        assert zone is not None
        if rdtype == dns.rdatatype.AXFR:
            # RFC 5936 section 4.2: AXFR is TCP only.
            return self._refuse(query, dns.rcode.REFUSED)
        # SOA, and IXFR over UDP (RFC 1995 section 2: the SOA alone tells
        # the secondary to come back over TCP).
        return self._soa_reply(query, zone)

    def answer_tcp(self, wire: bytes, peer: str) -> Iterator[bytes]:
        """The reply messages (wire, without length prefix) to one TCP request."""
        query, error = self._parse(wire, peer)
        if query is None:
            if error is not None:
                yield error
            return
        checked = self._check(query, peer, "tcp")
        if isinstance(checked, bytes):
            yield checked
            return
        rdtype, how = checked
        zone = self.current
        assert zone is not None
        if rdtype == dns.rdatatype.SOA:
            yield self._soa_reply(query, zone)
            return
        kind, rrsets, detail = self._transfer(query, rdtype, zone)
        ready = self._ready_ixfr
        messages: Iterator[bytes] | None = None
        if (
            kind == "IXFR"
            and not query.had_tsig
            and ready is not None
            and ready[1] == zone.serial
            and ready[0] == _ixfr_serial(query)
        ):
            # The same reply for everyone but the ID (RFC 1035 4.1.1: the
            # first two octets of the header).
            messages = (struct.pack("!H", query.id) + m[2:] for m in ready[2][query.edns >= 0])
            detail += " prerendered=yes"
        self.counters[kind.lower()] += 1
        log.info(
            "transfer zone=%s peer=%s auth=%s kind=%s %s serial=%d",
            self.config.zone,
            peer,
            how,
            kind,
            detail,
            zone.serial,
        )
        yield from messages if messages is not None else self._messages(query, rrsets)

    def _transfer(
        self, query: dns.message.Message, rdtype: int, zone: ZoneSnapshot
    ) -> tuple[str, Iterator[dns.rrset.RRset], str]:
        """What to send: the kind (for logs and counters), the records, a detail."""
        if rdtype == dns.rdatatype.IXFR:
            client = _ixfr_serial(query)
            if client is None:
                return "AXFR", self._axfr(zone), "requested=IXFR without_soa"
            if client == zone.serial or serial_gt(client, zone.serial):
                # RFC 1995 section 2: same or newer: the current SOA alone.
                return "UPTODATE", iter((zone.soa,)), f"from={client}"
            path = self.journal.path_from(client, zone.serial)
            if path is None:
                # RFC 1995 section 4: incremental transfer not available.
                return "AXFR", self._axfr(zone), f"requested=IXFR from={client} too_old"
            changes = sum(d.size for d in path)
            return (
                "IXFR",
                self._ixfr(zone, path),
                f"from={client} deltas={len(path)} changes={changes}",
            )
        return "AXFR", self._axfr(zone), f"records={zone.count}"

    def _axfr(self, zone: ZoneSnapshot) -> Iterator[dns.rrset.RRset]:
        """The whole zone, streamed from the journal's store (one read snapshot).

        The store may already hold a newer generation than ``zone`` (its
        IXFR reply still being prepared): the snapshot's own serial then
        frames the records, so SOA and records always belong together.
        """
        serial, records = self.journal.snapshot()
        soa = zone.soa
        if serial is not None and serial != zone.serial:
            soa = self.journal.soa_at(serial)
        yield soa
        for line in records:
            yield self._rdatas.rrset(line)
        yield soa

    def _ixfr(self, zone: ZoneSnapshot, path: Sequence[Delta]) -> Iterator[dns.rrset.RRset]:
        yield zone.soa
        prepared = self._prepared
        for delta in path:
            ready = prepared.get(delta.to_serial)
            yield self.journal.soa_at(delta.from_serial)
            if ready is not None:
                yield from ready[0]
            else:
                yield from (self._rdatas.rrset(line) for line in delta.removed)
            yield self.journal.soa_at(delta.to_serial)
            if ready is not None:
                yield from ready[1]
            else:
                yield from (self._rdatas.rrset(line) for line in delta.added)
        yield zone.soa

    def _messages(
        self, query: dns.message.Message, rrsets: Iterator[dns.rrset.RRset]
    ) -> Iterator[bytes]:
        """Pack the records into messages, each signed in turn when the request was.

        RFC 5936 section 2.2: the first message repeats the question, later
        ones may leave it out; RFC 8945 section 5.3.1: every message's MAC
        covers the previous one's (dnspython's ``tsig_ctx``).
        """
        ctx = None
        first = True
        batch: list[dns.rrset.RRset] = []

        def pack() -> bytes:
            nonlocal ctx, first
            if first:
                msg = dns.message.make_response(query)
                first = False
            else:
                msg = dns.message.Message(id=query.id)
                msg.flags = dns.flags.QR
                if query.had_tsig:
                    assert query.keyalgorithm is not None
                    msg.use_tsig(query.keyring, query.keyname, algorithm=query.keyalgorithm)
            msg.flags |= dns.flags.AA
            msg.answer = batch
            # TCP: up to 65,535 octets whatever the EDNS payload says (that
            # is a UDP size, RFC 6891 6.2.5); dnspython would otherwise cap
            # the message at the request's payload.
            wire = msg.to_wire(max_size=65535, multi=query.had_tsig, tsig_ctx=ctx)
            ctx = msg.tsig_ctx if query.had_tsig else None
            return wire

        for rrset in rrsets:
            batch.append(rrset)
            if len(batch) >= MAX_RECORDS_PER_MESSAGE:
                yield pack()
                batch = []
        if batch or first:
            yield pack()


def _in_daemon_thread(fn: Callable[[], object]) -> asyncio.Future[object]:
    """Run ``fn`` in a daemon thread; its result as a future of the running loop.

    Not :func:`asyncio.to_thread`: its worker threads are joined at exit, so
    SIGTERM during a rendering of a large zone would wait for it to end.
    Stopping mid-rendering loses nothing: the journal is replaced
    atomically or not at all.
    """
    loop = asyncio.get_running_loop()
    future: asyncio.Future[object] = loop.create_future()

    def settle(result: object, error: BaseException | None) -> None:
        if future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)

    def target() -> None:
        try:
            result, error = fn(), None
        except BaseException as e:  # handed to the awaiting coroutine
            result, error = None, e
        with contextlib.suppress(RuntimeError):  # the loop is closed: exiting
            loop.call_soon_threadsafe(settle, result, error)

    threading.Thread(target=target, name="dns-serve-render", daemon=True).start()
    return future


def _ixfr_serial(query: dns.message.Message) -> int | None:
    """The secondary's serial: the SOA in an IXFR request's authority section."""
    for rrset in query.authority:
        if rrset.rdtype == dns.rdatatype.SOA and len(rrset):
            return int(rrset[0].serial)
    return None


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, server: ZoneServer) -> None:
        self.server = server
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A datagram endpoint's transport (the selector transport is not a
        # subclass of DatagramTransport at runtime).
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        reply = self.server.answer_udp(data, addr[0])
        if reply is not None and self.transport is not None:
            self.transport.sendto(reply, addr)


async def _serve_tcp(
    server: ZoneServer,
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    slots: asyncio.Semaphore,
) -> None:
    peer = str(writer.get_extra_info("peername")[0])
    if slots.locked():
        writer.close()
        return
    async with slots:
        try:
            # RFC 7766 section 6.2.1: several requests may follow on one connection.
            while True:
                try:
                    head = await asyncio.wait_for(reader.readexactly(2), TCP_READ_TIMEOUT)
                except (asyncio.IncompleteReadError, TimeoutError):
                    return
                (size,) = struct.unpack("!H", head)
                if size > MAX_REQUEST_OCTETS:
                    return
                wire = await asyncio.wait_for(reader.readexactly(size), TCP_READ_TIMEOUT)
                for message in server.answer_tcp(wire, peer):
                    writer.write(struct.pack("!H", len(message)) + message)
                    await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, TimeoutError):
            return
        except asyncio.CancelledError:
            # Shutdown: the connection's task is the outermost frame here,
            # so ending it quietly loses nothing.
            return
        except Exception:
            # A bug answering one request must not pass silently; the
            # connection is closed and the server goes on.
            log.exception("error answering peer=%s; connection closed", peer)
            return
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()


async def run(config: ServeConfig, *, ready: asyncio.Event | None = None) -> None:
    """Serve until SIGTERM or SIGINT.

    Raises:
        OSError: the address cannot be bound (port in use).
        ClientError: the state or the journal cannot be used.
    """
    server = ZoneServer(config)
    store = StateStore(config.state_dir, create=False)
    loop = asyncio.get_running_loop()
    try:
        # Bound first (a port in use is reported at once), then the state
        # is rendered by the watcher; meanwhile the journal's last good
        # zone is served, or SERVFAIL when there is none yet.
        slots = asyncio.Semaphore(MAX_TCP_CONNECTIONS)
        tcp = await asyncio.start_server(
            lambda r, w: _serve_tcp(server, r, w, slots),
            config.host,
            config.port,
            reuse_address=True,
        )
        try:
            udp, _ = await loop.create_datagram_endpoint(
                lambda: _Udp(server), local_addr=(config.host, config.port)
            )
        except OSError:
            tcp.close()
            raise
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        log.info(
            "listening zone=%s address=%s port=%d serial=%s",
            config.zone,
            config.host,
            config.port,
            None if server.current is None else server.current.serial,
        )
        if server.current is not None:
            # A restart may have missed a generation the secondaries lack.
            server.notifier.zone_changed(server.current.soa)
        else:
            log.warning("no zone yet: transfers get SERVFAIL until the state is rendered")
        watcher = asyncio.create_task(server.watch(store))
        if ready is not None:
            ready.set()
        try:
            await stop.wait()
        finally:
            watcher.cancel()
            await server.notifier.close()
            udp.close()
            tcp.close()
            await tcp.wait_closed()
            log.info("stopped counters=%s", dict(server.counters))
    finally:
        store.close()
        server.journal.close()
