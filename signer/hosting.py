"""Hosting evidence: resolve an entry's host and locate each address offline.

DESIGN.md, "Safeguards on what an entry may block", **Hosting**; issue 16
item 3. One model for declared and observed hosting: at entry time the
service asks a configured resolver for the host's A and AAAA records
(dnspython; RFC 1035 section 4, RFC 3596) and places each address in a
country with an offline database:

* a MaxMind-format file (GeoLite2/GeoIP2 Country, DB-IP lite, or any file
  with ``country.iso_code``) read with ``maxminddb``, when configured; else
* the data shipped inside the ``iptocc`` package (the five Regional
  Internet Registries' delegation files, refreshed with each release).

Nothing is downloaded at run time. Addresses in a known CDN or anycast
network (the shipped ``blocklist/data/cdn_networks.txt``, or a configured
file) count as unknown: a CDN answers the hotline's resolver with a nearby
node, so its country says where the hotline is, not where the material is.

A resolution failure yields evidence with ``verified`` False and an error
category (never the host name); the analyst's declared ``hosting_country``
then stands, marked unverified. Server-side only: the ISP client and the
auditor never import this module. It lives in ``signer/`` rather than the
domain package because it does network I/O (ADR 0004: I/O belongs to the
package that does it); the API (entry time) and the re-verification job
(:mod:`signer.reverify`) both use it.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata, resources
from pathlib import Path
from typing import Final, Protocol

import dns.exception
import dns.rdatatype
import dns.resolver

from blocklist import canonical
from blocklist.encoding import format_time
from blocklist.safeguards import HostingAddress, HostingEvidence

__all__ = [
    "DEFAULT_DNS_TIMEOUT_SECONDS",
    "MAX_HOSTING_ADDRESSES",
    "CdnNetworks",
    "CountryDatabase",
    "HostingLocator",
    "MaxMindCountries",
    "ResolverConfig",
    "ShippedCountries",
    "address_locator",
    "default_cdn_networks",
]

#: Seconds the whole resolution of one host may take: the analyst waits for
#: it; a slow or silent resolver yields "unverified", not a hung request.
DEFAULT_DNS_TIMEOUT_SECONDS: Final = 3.0

#: Most addresses kept per host (A and AAAA together): evidence stays small
#: while a round-robin answer is still represented.
MAX_HOSTING_ADDRESSES: Final = 16

_Address = ipaddress.IPv4Address | ipaddress.IPv6Address
_Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class CountryDatabase(Protocol):
    """An offline IP-to-country database."""

    #: Name and version, recorded with the evidence.
    name: str

    def country(self, address: str) -> str | None:
        """ISO 3166-1 alpha-2 code of the address, or None when unknown."""
        ...


class MaxMindCountries:
    """A MaxMind-format (MMDB) country database file, read with ``maxminddb``."""

    def __init__(self, path: Path) -> None:
        """Open the database.

        Raises:
            OSError: the file cannot be read.
            ValueError: the file is not a valid MaxMind DB.
        """
        import maxminddb

        self._reader = maxminddb.open_database(str(path))
        meta = self._reader.metadata()
        built = datetime.fromtimestamp(meta.build_epoch, UTC)
        self.name = f"mmdb:{meta.database_type} built {format_time(built)}"

    def country(self, address: str) -> str | None:
        """The record's ``country.iso_code`` (else ``registered_country``), or None."""
        record = self._reader.get(address)
        if not isinstance(record, dict):
            return None
        for key in ("country", "registered_country"):
            value = record.get(key)
            if isinstance(value, dict):
                code = value.get("iso_code")
                if isinstance(code, str) and len(code) == 2:
                    return code.upper()
        return None

    def close(self) -> None:
        """Close the file."""
        self._reader.close()


class ShippedCountries:
    """The RIR delegation data shipped inside the ``iptocc`` package."""

    def __init__(self) -> None:
        """Load the package (its data is embedded; nothing is fetched)."""
        import iptocc

        self._lookup = iptocc.country_code
        self.name = f"iptocc {metadata.version('iptocc')} (RIR delegations)"

    def country(self, address: str) -> str | None:
        """The country an RIR delegated the address's block to, or None."""
        code = self._lookup(address)
        return code.upper() if isinstance(code, str) and len(code) == 2 else None


class CdnNetworks:
    """Known CDN and anycast networks (one CIDR network per line, ``#`` comments)."""

    def __init__(self, networks: Iterable[_Network]) -> None:
        """Keep the networks."""
        self._networks = tuple(networks)

    @classmethod
    def parse(cls, text: str) -> CdnNetworks:
        """Parse a networks file.

        Raises:
            ValueError: a line is not a CIDR network.
        """
        nets: list[_Network] = []
        for number, line in enumerate(text.splitlines(), 1):
            item = line.split("#", 1)[0].strip()
            if not item:
                continue
            try:
                nets.append(ipaddress.ip_network(item, strict=True))
            except ValueError as e:
                raise ValueError(f"CDN networks line {number}: not a CIDR network") from e
        return cls(nets)

    def __contains__(self, address: object) -> bool:
        if not isinstance(address, ipaddress.IPv4Address | ipaddress.IPv6Address):
            return False
        return any(address in net for net in self._networks)


@functools.cache
def default_cdn_networks() -> CdnNetworks:
    """The shipped list of CDN and anycast networks."""
    text = resources.files("blocklist.data").joinpath("cdn_networks.txt").read_text("utf-8")
    return CdnNetworks.parse(text)


@dataclass(frozen=True, slots=True)
class ResolverConfig:
    """Which resolver answers, and how long it may take.

    Attributes:
        address: the resolver's IP address; None uses the system's
            (``/etc/resolv.conf``).
        port: its port.
        timeout: seconds for the whole resolution (A and AAAA).
    """

    address: str | None = None
    port: int = 53
    timeout: float = DEFAULT_DNS_TIMEOUT_SECONDS

    @property
    def label(self) -> str:
        """How the evidence names the resolver."""
        if self.address is None:
            return "system"
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"{host}:{self.port}"


class HostingLocator:
    """Resolves hosts and locates their addresses: the evidence of one entry."""

    def __init__(
        self,
        resolver: ResolverConfig,
        countries: CountryDatabase,
        cdn: CdnNetworks | None = None,
    ) -> None:
        """Configure the locator (nothing is resolved yet)."""
        self.resolver = resolver
        self.countries = countries
        self.cdn = cdn if cdn is not None else default_cdn_networks()

    def _resolver(self) -> dns.resolver.Resolver:
        r = dns.resolver.Resolver(configure=self.resolver.address is None)
        if self.resolver.address is not None:
            r.nameservers = [self.resolver.address]
            r.port = self.resolver.port
        r.lifetime = self.resolver.timeout
        r.timeout = self.resolver.timeout
        return r

    def _resolve(self, host: str) -> tuple[list[str], str | None]:
        """The host's addresses (A, then AAAA), or an error category."""
        r = self._resolver()
        found: list[str] = []
        failures: list[str] = []
        for rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
            try:
                answer = r.resolve(host, rdtype, search=False, raise_on_no_answer=False)
            except dns.resolver.NXDOMAIN:
                return [], "nxdomain"
            except dns.resolver.NoNameservers:
                failures.append("servfail")
                continue
            except dns.exception.Timeout:
                failures.append("timeout")
                continue
            except dns.exception.DNSException:
                failures.append("dns_error")
                continue
            found.extend(rr.to_text() for rr in answer)
        if found:
            return list(dict.fromkeys(found))[:MAX_HOSTING_ADDRESSES], None
        return [], failures[0] if failures else "no_address"

    def locate(self, addresses: Sequence[str]) -> tuple[HostingAddress, ...]:
        """Each address with its country (None for a CDN/anycast address)."""
        located = []
        for text in addresses:
            address = ipaddress.ip_address(text)
            if address in self.cdn:
                located.append(HostingAddress(text, None, cdn=True))
            else:
                located.append(HostingAddress(text, self.countries.country(text)))
        return tuple(located)

    def observe(self, host: str, *, now: datetime | None = None) -> HostingEvidence:
        """Resolve ``host`` (an IP-address host is its own address) and locate it."""
        when = format_time(now or datetime.now(UTC))
        if canonical.is_ip_host(host):
            addresses, error = [host.strip("[]")], None
        else:
            addresses, error = self._resolve(host)
        if error is not None:
            return HostingEvidence(
                verified=False,
                database=self.countries.name,
                resolver=self.resolver.label,
                checked_at=when,
                error=error,
            )
        return HostingEvidence(
            verified=True,
            addresses=self.locate(addresses),
            database=self.countries.name,
            resolver=self.resolver.label,
            checked_at=when,
        )


def address_locator(
    country_db: Path | None = None, cdn_file: Path | None = None
) -> Callable[[str], str | None]:
    """Address -> ISO country code, None for unknown or a CDN/anycast address.

    The re-verification job's view of hosting (:mod:`signer.reverify`,
    ``locate=``): the same country database and CDN rule as entry time,
    without a resolver (the job resolves through its vantage points).

    Raises:
        OSError, ValueError: the configured database or CDN file cannot be read.
    """
    countries: CountryDatabase = (
        MaxMindCountries(country_db) if country_db is not None else ShippedCountries()
    )
    cdn = (
        default_cdn_networks()
        if cdn_file is None
        else CdnNetworks.parse(cdn_file.read_text("utf-8"))
    )

    def locate(text: str) -> str | None:
        try:
            address = ipaddress.ip_address(text)
        except ValueError:
            return None
        if address in cdn:
            return None
        return countries.country(text)

    return locate
