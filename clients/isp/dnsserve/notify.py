"""NOTIFY (RFC 1996) to the secondaries after each new zone generation.

One task per target: send ``NOTIFY`` (opcode 4, the zone's SOA as the
question, AA set, the new SOA in the answer section as section 3.7
allows) over UDP, signed with the TSIG key when one is configured (RFC
8945; BIND checks it against its ``primaries`` key; Unbound 1.17 drops a
signed NOTIFY, so its targets are given as ``--notify-unsigned``, admitted
there by ``allow-notify`` address), and resend it until
the target answers with a matching ID, opcode and question (section 3.6),
at most :data:`NOTIFY_ATTEMPTS` times, the wait doubling from
:data:`NOTIFY_FIRST_WAIT`. A newer generation cancels the pending NOTIFY
of the older one: the secondary only needs the latest.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Final

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import dns.tsig

__all__ = ["NOTIFY_ATTEMPTS", "NOTIFY_FIRST_WAIT", "Notifier"]

log = logging.getLogger("cleanfeed.dns-serve")

#: Sends per generation and target (RFC 1996 section 3.6 leaves the count
#: to the implementation; BIND sends 5). After them the secondary still
#: finds the change at its next SOA refresh.
NOTIFY_ATTEMPTS: Final = 5
#: Seconds to wait for the first answer; doubled after each resend, so five
#: attempts span about a minute (section 3.6: "a reasonable default is 60
#: seconds" for the whole exchange).
NOTIFY_FIRST_WAIT: Final = 2.0


class _Reply(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.queue: asyncio.Queue[bytes] = asyncio.Queue(maxsize=16)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        with contextlib.suppress(asyncio.QueueFull):
            self.queue.put_nowait(data)


class Notifier:
    """Sends NOTIFY to every configured target after each generation."""

    def __init__(
        self,
        zone: dns.name.Name,
        targets: tuple[tuple[str, int], ...],
        key: dns.tsig.Key | None,
        *,
        unsigned: tuple[tuple[str, int], ...] = (),
        first_wait: float = NOTIFY_FIRST_WAIT,
    ) -> None:
        self.zone = zone
        self.targets = targets + unsigned
        self.unsigned = frozenset(unsigned)
        self.key = key
        self.first_wait = first_wait
        self._tasks: dict[tuple[str, int], asyncio.Task[None]] = {}
        self.acknowledged = 0

    def zone_changed(self, soa: dns.rrset.RRset) -> None:
        """Start (or restart) NOTIFY of ``soa``'s serial to every target."""
        for target in self.targets:
            old = self._tasks.pop(target, None)
            if old is not None:
                old.cancel()
            self._tasks[target] = asyncio.get_running_loop().create_task(self._notify(target, soa))

    def _key_for(self, target: tuple[str, int]) -> dns.tsig.Key | None:
        return None if target in self.unsigned else self.key

    def _message(self, soa: dns.rrset.RRset, key: dns.tsig.Key | None) -> dns.message.Message:
        msg = dns.message.make_query(self.zone, dns.rdatatype.SOA)
        # RFC 1996 section 3.7: AA set, no RD; the opcode lives in the same
        # header field, so it is set after the flags.
        msg.flags = dns.flags.AA
        msg.set_opcode(dns.opcode.NOTIFY)
        msg.answer.append(soa)
        if key is not None:
            msg.use_tsig(key)
        return msg

    async def _notify(self, target: tuple[str, int], soa: dns.rrset.RRset) -> None:
        host, port = target
        serial = int(soa[0].serial)
        loop = asyncio.get_running_loop()
        transport, proto = await loop.create_datagram_endpoint(_Reply, remote_addr=target)
        try:
            wait = self.first_wait
            for attempt in range(1, NOTIFY_ATTEMPTS + 1):
                key = self._key_for(target)
                msg = self._message(soa, key)
                transport.sendto(msg.to_wire())
                deadline = loop.time() + wait
                while (left := deadline - loop.time()) > 0:
                    try:
                        data = await asyncio.wait_for(proto.queue.get(), left)
                    except TimeoutError:
                        break
                    rcode = self._matches(msg, data, key)
                    if rcode is not None:
                        self.acknowledged += 1
                        log.info(
                            "notify target=%s:%d serial=%d attempt=%d rcode=%s",
                            host,
                            port,
                            serial,
                            attempt,
                            rcode,
                        )
                        return
                wait *= 2
            log.warning(
                "notify target=%s:%d serial=%d unanswered after %d attempts",
                host,
                port,
                serial,
                NOTIFY_ATTEMPTS,
            )
        finally:
            transport.close()

    def _matches(
        self, sent: dns.message.Message, data: bytes, key: dns.tsig.Key | None
    ) -> str | None:
        """The rcode text of a reply to ``sent`` (section 3.6), else None."""
        try:
            reply = dns.message.from_wire(
                data,
                keyring=None if key is None else {key.name: key},
                request_mac=sent.mac if key is not None else b"",
            )
        except (dns.exception.DNSException, ValueError):
            return None
        if (
            reply.id != sent.id
            or not reply.flags & dns.flags.QR
            or reply.opcode() != dns.opcode.NOTIFY
            or reply.question != sent.question
        ):
            return None
        return dns.rcode.to_text(reply.rcode())

    async def close(self) -> None:
        """Cancel pending NOTIFYs (shutdown)."""
        for task in self._tasks.values():
            task.cancel()
        for task in self._tasks.values():
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
