"""Safeguards on what an entry may block (DESIGN.md, part 2; issue 16).

A blocklist loses the public's trust through its mistakes: one entry that
blocks thousands of unrelated sites (Australia 2013), or entries whose
material has long gone (Denmark 2008, ACMA 2009). The rules here are pure
and stated once; the store enforces them inside the write transaction and
the preview explains them before anything is stored:

* **Public suffixes** (:func:`check_public_suffix`): no entry of any scope
  on a host that is a public suffix (ICANN or private section of the Public
  Suffix List), since lookups try parent hosts and an entry on ``co.uk``
  would block every site registered under it. The list is the one shipped
  by the ``publicsuffixlist`` package (kept current by its releases); it is
  never downloaded at run time.
* **Guarded hosts** (:func:`guard_rule`): a host or prefix entry on a host
  an administrator guards (or a subdomain of one), or on any IP address,
  needs an extra approval (:mod:`blocklist.store.guards`).
* **Blast radius** (:func:`subsumes`): how many listed entries a new one
  would cover, for the preview.
* **Hosting** (:class:`HostingEvidence`, :func:`observed_home`): resolved
  addresses located offline; a CDN or anycast address counts as unknown.

The canary entry is exempt from all of it: callers pass ``canary=True``
(it is a reserved test URL every ISP must block, chosen by the operator).
"""

from __future__ import annotations

import functools
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

from publicsuffixlist import PublicSuffixList

from blocklist import canonical
from blocklist.errors import PublicSuffix

__all__ = [
    "GUARD_IP",
    "PUBLIC_SUFFIX_RULE",
    "HostingAddress",
    "HostingEvidence",
    "check_public_suffix",
    "guard_explanation",
    "guard_rule",
    "is_public_suffix",
    "observed_home",
    "subsumes",
]

#: The guard rule of an IP-address host: every address is guarded, since one
#: address serves many unrelated sites (Australia 2013: one address block
#: took down about 1,200 sites hosted on it).
GUARD_IP: Final = "ip-address"

#: The rule in words, for the preview and the refusal.
PUBLIC_SUFFIX_RULE: Final = (
    "a public suffix (such as co.uk, blogspot.com or github.io; the ICANN and private "
    "sections of the Public Suffix List) is where unrelated people register their own "
    "sites, and lookups try parent hosts, so an entry of any scope on a public suffix "
    "would block that path (or everything) on every site under it; list the site under "
    "the suffix instead (such as someone.blogspot.com)"
)


@functools.cache
def _psl() -> PublicSuffixList:
    # Parsing the shipped list takes a few tens of milliseconds: once per process.
    return PublicSuffixList()


def is_public_suffix(host: str) -> bool:
    """Whether ``host`` is a public suffix (ICANN or private section).

    IP addresses are never suffixes. Wildcard rules (``*.ck``) and their
    exceptions are the package's, which implements the list's algorithm
    (publicsuffix.org/list, "Algorithm"); a label the list does not know is
    treated as a suffix of one label (its implicit ``*`` rule).
    """
    if not host or canonical.is_ip_host(host):
        return False
    return bool(_psl().is_public(host.rstrip(".").lower()))


def check_public_suffix(host: str) -> None:
    """Refuse an entry whose host is a public suffix.

    Raises:
        PublicSuffix: the host is a public suffix.
    """
    if is_public_suffix(host):
        raise PublicSuffix(f"the entry's host is a public suffix: {PUBLIC_SUFFIX_RULE}")


def guard_rule(host: str, scope: str, guarded: Collection[str]) -> str | None:
    """The guard rule a new entry falls under, or None.

    Only host and prefix entries are guarded (a page entry blocks one page,
    whatever the host). The rule is :data:`GUARD_IP` for an IP-address
    host, else the guarded host that is ``host`` itself or its nearest
    parent in ``guarded`` (names in canonical form: lower case, no
    trailing dot).
    """
    if scope not in ("host", "prefix"):
        return None
    if canonical.is_ip_host(host):
        return GUARD_IP
    labels = host.split(".")
    for i in range(len(labels) - 1):
        candidate = ".".join(labels[i:])
        if candidate in guarded:
            return candidate
    return None


def guard_explanation(rule: str) -> str:
    """The guard rule in words, for the preview and the entry."""
    if rule == GUARD_IP:
        return (
            "the host is an IP address, which many unrelated sites may share: the entry "
            "needs, besides four-eyes, the approval of an administrator who neither added "
            "nor approved it, with a written justification"
        )
    return (
        f"the host is (under) the guarded host {rule}, a high-collateral host (shared "
        "hosting, a CDN, a file locker or a large platform): the entry needs, besides "
        "four-eyes, the approval of an administrator who neither added nor approved it, "
        "with a written justification"
    )


def _split(expression: str) -> tuple[str, str]:
    return canonical.split_expression(expression)


def subsumes(new: str, other: str) -> bool:
    """Whether every URL ``other`` blocks is also blocked by ``new`` (``new != other``).

    ``new`` is a host (``host/``) or prefix (``host/dir/``) expression; a
    page expression subsumes only itself with a query. Lookups try parent
    hosts when the host has two to five labels, so a host entry covers its
    subdomains (:func:`blocklist.entries.reach`).
    """
    if new == other:
        return False
    new_host, new_path = _split(new)
    host, path = _split(other)
    covers = not canonical.is_ip_host(new_host) and (
        2 <= len(new_host.split(".")) <= canonical.LOOKUP_HOST_LABELS
    )
    same_site = host == new_host or (covers and host.endswith("." + new_host))
    if not same_site:
        return False
    if new_path == "/":
        return True
    if new_path.endswith("/") and "?" not in new_path:
        return path.startswith(new_path)
    return "?" not in new_path and path.startswith(new_path + "?")


@dataclass(frozen=True, slots=True)
class HostingAddress:
    """One resolved address and where the database places it.

    Attributes:
        address: the IPv4 or IPv6 address, as text.
        country: ISO 3166-1 alpha-2 code, or None (unknown: not in the
            database, or a CDN/anycast address).
        cdn: whether the address belongs to a known CDN or anycast network
            (its country is then unknown on purpose: geo-DNS answers the
            hotline's resolver with a nearby node, not the origin).
    """

    address: str
    country: str | None
    cdn: bool = False

    def to_json(self) -> dict[str, object]:
        """The address as stored and shown."""
        return {"address": self.address, "country": self.country, "cdn": self.cdn}


@dataclass(frozen=True, slots=True)
class HostingEvidence:
    """Where an entry's host was observed to be hosted, at one time.

    Attributes:
        verified: whether resolution succeeded (False: the analyst's
            declared country stands, marked unverified).
        addresses: each resolved address with its country.
        database: the country database's name and version.
        resolver: the resolver asked (``address:port`` or ``system``).
        checked_at: RFC 3339 time of the resolution.
        error: why resolution failed (no host name, only a category such
            as ``nxdomain`` or ``timeout``), or None.
    """

    verified: bool
    addresses: tuple[HostingAddress, ...] = ()
    database: str | None = None
    resolver: str | None = None
    checked_at: str | None = None
    error: str | None = None
    extra: Mapping[str, object] = field(default_factory=dict)

    @property
    def countries(self) -> tuple[str, ...]:
        """The distinct known countries, sorted."""
        return tuple(sorted({a.country for a in self.addresses if a.country is not None}))

    def to_json(self) -> dict[str, object]:
        """The evidence as stored with the entry, shown in its history and audited."""
        return {
            "verified": self.verified,
            "addresses": [a.to_json() for a in self.addresses],
            "countries": list(self.countries),
            "database": self.database,
            "resolver": self.resolver,
            "checked_at": self.checked_at,
            "error": self.error,
        }


def observed_home(addresses: Sequence[HostingAddress], home_country: str | None) -> bool:
    """Whether any non-CDN address is located in the list's home country."""
    if home_country is None:
        return False
    return any(a.country == home_country and not a.cdn for a in addresses)
