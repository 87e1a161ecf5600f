"""The BIND and Unbound configuration of a dns-serve secondary.

One source for three readers: ``cleanfeed isp dns-serve
--print-secondary bind|unbound`` prints it for the operator, docs/isp.md
shows it (a test keeps the doc equal to this output), and the end-to-end
test (tests/e2e/test_dns_serve.py) runs real ``named`` and ``unbound``
with exactly these statements.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["SecondarySpec", "bind_secondary", "unbound_secondary"]


@dataclass(frozen=True)
class SecondarySpec:
    """Where the secondary finds dns-serve.

    Attributes:
        zone: the zone name, without the final dot.
        primary: dns-serve's address.
        port: dns-serve's port.
        key_name: BIND: the TSIG key's name (its ``key`` statement is the
            key file dns-serve reads, included in named.conf).
        zone_file: where the secondary keeps its copy.
    """

    zone: str
    primary: str
    port: int
    key_name: str = "cleanfeed-xfr"
    zone_file: str = "cleanfeed.rpz"


def bind_secondary(spec: SecondarySpec) -> str:
    """named.conf statements: the policy (inside ``options``) and the zone.

    BIND admits a NOTIFY from an address in ``primaries`` (its default
    ``allow-notify``), and signs its SOA queries and transfers with the key.
    ``min-update-interval 0``: apply each transfer at once (BIND otherwise
    defers a policy update arriving within 60 s of the previous one).
    ``break-dnssec yes`` and ``qname-wait-recurse no``: as for the ``rpz``
    export (docs/isp.md "BIND"). ``allow-query { none; }``: the zone is
    policy, not data to look up (it lists blocked hosts).
    """
    return (
        "# inside options { }:\n"
        f'response-policy {{ zone "{spec.zone}" min-update-interval 0; }}\n'
        "    break-dnssec yes qname-wait-recurse no;\n"
        "\n"
        "# at the top level (the key file is the one given to dns-serve --tsig-key):\n"
        f'zone "{spec.zone}" {{\n'
        "    type secondary;\n"
        f'    primaries {{ {spec.primary} port {spec.port} key "{spec.key_name}"; }};\n'
        f'    file "{spec.zone_file}";\n'
        "    allow-query { none; };\n"
        "};\n"
    )


def unbound_secondary(spec: SecondarySpec) -> str:
    """unbound.conf ``rpz:`` clause (Unbound 1.17: admitted by address, no TSIG).

    ``allow-notify`` names dns-serve's address (the NOTIFY's source), so the
    change is fetched at once instead of at the SOA refresh.
    """
    return (
        "rpz:\n"
        f'    name: "{spec.zone}."\n'
        f"    primary: {spec.primary}@{spec.port}\n"
        f"    allow-notify: {spec.primary}\n"
        f'    zonefile: "{spec.zone_file}"\n'
    )
