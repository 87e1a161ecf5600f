"""A tiny authoritative DNS server on loopback, built on dnspython (issue 16 item 3).

It answers A and AAAA queries (RFC 1035 section 4.1, RFC 3596) over UDP on
127.0.0.1 from a fixed table: NXDOMAIN for names it does not know, an empty
answer (NOERROR, no data) for a known name without that type, and silence
for names in ``silent`` (so the client's timeout is exercised). The tests
that resolve an entry's host point ``CLEANFEED_HOSTING_RESOLVER`` at it;
nothing ever leaves the machine. A context manager: the serving thread
stops when the block ends.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import dns.exception
import dns.flags
import dns.message
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

__all__ = ["LoopbackDns", "loopback_dns"]

#: Seconds the serving thread waits on its socket before checking for stop.
_POLL_SECONDS = 0.1


@dataclass
class LoopbackDns:
    """The running server: its address and the queries it saw (names, lower case)."""

    port: int
    queries: list[str] = field(default_factory=list)

    @property
    def resolver(self) -> str:
        """The ``CLEANFEED_HOSTING_RESOLVER`` value for this server."""
        return f"127.0.0.1:{self.port}"


def _answer(
    query: dns.message.Message,
    records: Mapping[str, Sequence[str]],
    silent: frozenset[str],
) -> dns.message.Message | None:
    response = dns.message.make_response(query)
    response.flags |= dns.flags.AA
    if not query.question:
        response.set_rcode(dns.rcode.FORMERR)
        return response
    question = query.question[0]
    name = question.name.to_text(omit_final_dot=True).lower()
    if name in silent:
        return None
    if name not in records:
        response.set_rcode(dns.rcode.NXDOMAIN)
        return response
    wanted = question.rdtype
    addresses = [
        a
        for a in records[name]
        if (":" in a) == (wanted == dns.rdatatype.AAAA)
        and wanted in (dns.rdatatype.A, dns.rdatatype.AAAA)
    ]
    if addresses:
        response.answer.append(
            dns.rrset.from_text_list(question.name, 60, dns.rdataclass.IN, wanted, addresses)
        )
    return response


@contextmanager
def loopback_dns(
    records: Mapping[str, Sequence[str]], *, silent: Sequence[str] = ()
) -> Iterator[LoopbackDns]:
    """Serve ``records`` (name -> addresses, IPv4 and IPv6 mixed) on 127.0.0.1 UDP."""
    table = {k.lower().rstrip("."): list(v) for k, v in records.items()}
    quiet = frozenset(s.lower().rstrip(".") for s in silent)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(_POLL_SECONDS)
    server = LoopbackDns(port=sock.getsockname()[1])
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                data, peer = sock.recvfrom(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                query = dns.message.from_wire(data)
            except dns.exception.DNSException:
                continue  # a malformed packet gets no answer
            if query.question:
                server.queries.append(query.question[0].name.to_text(omit_final_dot=True).lower())
            response = _answer(query, table, quiet)
            if response is not None:
                sock.sendto(response.to_wire(), peer)

    thread = threading.Thread(target=serve, name="loopback-dns", daemon=True)
    thread.start()
    try:
        yield server
    finally:
        stop.set()
        thread.join(timeout=5)
        sock.close()
