"""``cleanfeed isp dns-serve``: the verified RPZ zone as a primary for the ISP's resolvers.

Layout: :mod:`~clients.isp.dnsserve.zone` (the zone from the verified
state, RFC 1982 serials, ZONEMD), :mod:`~clients.isp.dnsserve.journal`
(generations and the IXFR journal), :mod:`~clients.isp.dnsserve.acl` (TSIG
key file, address list), :mod:`~clients.isp.dnsserve.server` (AXFR, IXFR
and SOA over TCP and UDP, following the state),
:mod:`~clients.isp.dnsserve.notify` (NOTIFY) and
:mod:`~clients.isp.dnsserve.cli` (the command). See docs/isp.md
"DNS delivery: dns-serve".
"""

from __future__ import annotations

__all__: list[str] = []
