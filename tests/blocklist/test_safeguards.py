"""The pure safeguard rules (blocklist.safeguards) and the shipped data files."""

from __future__ import annotations

import pytest

from blocklist import safeguards
from blocklist.entries import plan_entry
from blocklist.errors import PublicSuffix
from blocklist.store.guards import default_guards, normalise_guard_host
from signer.hosting import CdnNetworks, default_cdn_networks


@pytest.mark.parametrize(
    ("host", "public"),
    [
        ("co.uk", True),
        ("blogspot.com", True),
        ("github.io", True),
        ("s3.amazonaws.com", True),
        ("com", True),
        ("someone.blogspot.com", False),
        ("example.co.uk", False),
        ("example.com", False),
        ("192.0.2.1", False),
    ],
)
def test_public_suffixes_of_both_sections(host: str, public: bool) -> None:
    assert safeguards.is_public_suffix(host) is public


def test_plan_entry_refuses_a_public_suffix_unless_it_is_the_canary() -> None:
    with pytest.raises(PublicSuffix):
        plan_entry("http://co.uk/index.html", "page")
    assert (
        plan_entry("http://co.uk/index.html", "page", canary=True).expression == "co.uk/index.html"
    )


@pytest.mark.parametrize(
    ("host", "scope", "rule"),
    [
        ("files.example.org", "host", "example.org"),
        ("example.org", "prefix", "example.org"),
        ("a.b.example.org", "host", "b.example.org"),
        ("files.example.org", "page", None),
        ("example.net", "host", None),
        ("192.0.2.7", "prefix", safeguards.GUARD_IP),
        ("[2001:db8::1]", "host", safeguards.GUARD_IP),
    ],
)
def test_guard_rule(host: str, scope: str, rule: str | None) -> None:
    assert safeguards.guard_rule(host, scope, {"example.org", "b.example.org"}) == rule


@pytest.mark.parametrize(
    ("new", "other", "covered"),
    [
        ("example.org/", "example.org/a.html", True),
        ("example.org/", "www.example.org/a/b", True),
        ("example.org/", "example.org.evil.test/a", False),
        ("example.org/", "notexample.org/a", False),
        ("example.org/dir/", "example.org/dir/a.html", True),
        ("example.org/dir/", "www.example.org/dir/x/", True),
        ("example.org/dir/", "example.org/dirty.html", False),
        ("example.org/a.html", "example.org/a.html?x=1", True),
        ("example.org/a.html", "example.org/a.html", False),
        ("192.0.2.1/", "192.0.2.1/a.html", True),
        ("192.0.2.1/", "x.192.0.2.1/a.html", False),
    ],
)
def test_subsumes(new: str, other: str, covered: bool) -> None:
    assert safeguards.subsumes(new, other) is covered


def test_observed_home_ignores_cdn_addresses_and_unknowns() -> None:
    home = safeguards.HostingAddress("192.0.2.1", "GB")
    cdn = safeguards.HostingAddress("192.0.2.2", None, cdn=True)
    abroad = safeguards.HostingAddress("198.51.100.1", "NL")
    assert safeguards.observed_home([abroad, home], "GB")
    assert not safeguards.observed_home([cdn, abroad], "GB")
    assert not safeguards.observed_home([home], None)


def test_the_default_guard_list_is_valid_and_holds_no_public_suffix() -> None:
    hosts = default_guards()
    assert len(hosts) >= 50
    assert len(set(hosts)) == len(hosts)
    for host in hosts:
        # normalise_guard_host refuses IPs, public suffixes and non-canonical names.
        assert normalise_guard_host(host) == host


def test_the_shipped_cdn_networks_parse_and_a_bad_line_is_refused() -> None:
    import ipaddress

    cdn = default_cdn_networks()
    assert ipaddress.ip_address("104.16.1.1") in cdn
    assert ipaddress.ip_address("192.0.2.1") not in cdn
    with pytest.raises(ValueError, match="line 2"):
        CdnNetworks.parse("# c\n10.0.0.1/8\n")


def test_the_shipped_country_data_loads_offline_and_knows_no_reserved_address() -> None:
    from signer.hosting import ShippedCountries

    shipped = ShippedCountries()
    assert shipped.name.startswith("iptocc ")
    # RFC 5737 documentation addresses are delegated to no country.
    for address in ("192.0.2.1", "198.51.100.1", "203.0.113.1", "2001:db8::1"):
        assert shipped.country(address) is None
