"""Safeguards on what an entry may block, through the real app (issue 16 items 1-3).

Item 1: entries on a public suffix are refused (single, bulk, preview).
Item 2: a guarded host or prefix entry stays off the list until an eligible
administrator approves it with a justification; the preview names the rule
and the blast radius. Item 3: the host is resolved by a real DNS server on
loopback (tests/support/dns_server.py) and located with a MaxMind-format
file the test writes (RFC 5737 addresses mapped to countries); home-country
hosting without a CDN is proposed for referral and, once referred, never
listed.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mmdb_writer import MMDBWriter
from netaddr import IPSet
from support.api_testing import (
    MAIN,
    OTHER,
    ApiClient,
    Deployment,
    Tokens,
    add_entry,
    close_deployment,
    db_state,
    make_deployment,
    publish,
)
from support.dns_server import LoopbackDns, loopback_dns

from blocklist.auditlog import Action
from blocklist.store import tokens as store_tokens

ENTRIES = f"/v1/lists/{MAIN}/entries"


def _problem(r: Any, status: int, code: str) -> None:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["code"] == code, r.text


def _approve(client: ApiClient, token: str, entry_id: int, list_name: str = MAIN) -> Any:
    r = client.post(f"/v1/lists/{list_name}/entries/{entry_id}/approve", token=token)
    assert r.status_code == 200, r.text
    return r.json()


def _entry(client: ApiClient, token: str, entry_id: int, list_name: str = MAIN) -> Any:
    r = client.get(f"/v1/lists/{list_name}/entries/{entry_id}", token=token)
    assert r.status_code == 200, r.text
    return r.json()


# --- item 1: public suffixes ---------------------------------------------------


@pytest.mark.parametrize(
    ("url", "scope"),
    [
        ("http://co.uk/", "host"),
        ("http://blogspot.com/", "host"),
        ("http://github.io/", "host"),
        ("http://s3.amazonaws.com/", "host"),
        ("http://co.uk/index.html", "page"),
        ("https://github.io/some/dir/", "prefix"),
    ],
)
def test_entries_on_a_public_suffix_are_refused(
    client: ApiClient, tokens: Tokens, deployment: Deployment, url: str, scope: str
) -> None:
    before = db_state(deployment.db)
    r = add_entry(client, tokens.alice, url, scope=scope)
    _problem(r, 422, "public_suffix")
    assert "public suffix" in r.json()["detail"]
    assert db_state(deployment.db) == before


def test_a_site_under_a_public_suffix_is_an_ordinary_host(
    client: ApiClient, tokens: Tokens
) -> None:
    r = add_entry(client, tokens.alice, "http://someone.blogspot.com/2020/01/post.html")
    assert r.status_code == 201, r.text
    assert r.json()["expression"] == "someone.blogspot.com/2020/01/post.html"


def test_preview_explains_the_public_suffix_rule(client: ApiClient, tokens: Tokens) -> None:
    r = client.post(
        f"{ENTRIES}/preview", json={"url": "http://github.io/", "scope": "host"}, token=tokens.alice
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["accepted"] is False
    assert body["refusal"]["code"] == "public_suffix"
    assert body["safeguards"]["public_suffix"] is True
    assert any("public suffix" in rule for rule in body["safeguards"]["rules"])


def test_bulk_add_refuses_public_suffix_rows_one_by_one(client: ApiClient, tokens: Tokens) -> None:
    rows = [
        {"url": "http://someone.blogspot.com/a.html", "scope": "page", "reason": "r"},
        {"url": "http://blogspot.com/", "scope": "host", "reason": "r"},
    ]
    r = client.post(f"{ENTRIES}/bulk", json=rows, token=tokens.bob)
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert [row["status"] for row in results] == ["added", "failed"]
    assert results[1]["code"] == "public_suffix"


# --- item 2: guarded hosts -----------------------------------------------------


def _admin_named(deployment: Deployment, name: str) -> str:
    """An administrator token with the given name (the same person as an analyst)."""
    with deployment.db.transaction() as session:
        token, _ = store_tokens.create_token(session, name=name, role="admin", actor="test")
    return token


def test_the_guard_list_is_seeded_and_managed_by_admins(
    client: ApiClient, tokens: Tokens, deployment: Deployment
) -> None:
    r = client.get("/v1/guards", token=tokens.admin)
    assert r.status_code == 200, r.text
    hosts = {g["host"] for g in r.json()["guards"]}
    assert {"drive.google.com", "dropbox.com", "facebook.com"} <= hosts
    r = client.post("/v1/guards", json={"host": "Files.Example.ORG"}, token=tokens.admin)
    assert r.status_code == 201, r.text
    assert r.json()["host"] == "files.example.org"
    before = db_state(deployment.db)
    _problem(
        client.post("/v1/guards", json={"host": "files.example.org"}, token=tokens.admin),
        409,
        "conflict",
    )
    _problem(
        client.post("/v1/guards", json={"host": "192.0.2.1"}, token=tokens.admin),
        422,
        "invalid_field",
    )
    _problem(
        client.post("/v1/guards", json={"host": "co.uk"}, token=tokens.admin), 422, "invalid_field"
    )
    _problem(
        client.post("/v1/guards", json={"host": "http://x.example.org/p"}, token=tokens.admin),
        422,
        "invalid_field",
    )
    assert db_state(deployment.db) == before
    r = client.post(
        "/v1/guards/remove",
        json={"host": "files.example.org", "reason": "no longer shared"},
        token=tokens.admin,
    )
    assert r.status_code == 204, r.text
    _problem(
        client.post(
            "/v1/guards/remove",
            json={"host": "files.example.org", "reason": "x"},
            token=tokens.admin,
        ),
        404,
        "not_found",
    )
    # Both changes are records of the deployment's (global) audit chain.
    from blocklist.store import audit as store_audit

    with deployment.db.read() as session:
        records = store_audit.records(session, None)
    guard_records = [
        (r.action, r.details["host"], r.actor) for r in records if r.action.startswith("guard.")
    ]
    assert guard_records == [
        (Action.GUARD_ADD, "files.example.org", "admin"),
        (Action.GUARD_REMOVE, "files.example.org", "admin"),
    ]


def test_a_guarded_entry_stays_off_the_list_until_an_eligible_admin_approves(
    client: ApiClient, tokens: Tokens, deployment: Deployment
) -> None:
    assert (
        client.post("/v1/guards", json={"host": "example.org"}, token=tokens.admin).status_code
        == 201
    )
    added = add_entry(client, tokens.alice, "http://files.example.org/", scope="host")
    assert added.status_code == 201, added.text
    entry = added.json()
    assert entry["guard"]["rule"] == "example.org"
    entry_id = entry["id"]
    # Four-eyes alone (MAIN needs one approval) no longer lists it.
    approved = _approve(client, tokens.bob, entry_id)
    assert approved["status"] == "pending"
    assert approved["awaiting"] == ["guard"]
    publish(client, tokens.admin)
    assert _entry(client, tokens.alice, entry_id)["listed"] is False

    # The creator acting as an administrator is refused; so is an approver.
    before = db_state(deployment.db)
    for name in ("alice", "bob"):
        admin_as = _admin_named(deployment, name)
        before = db_state(deployment.db)
        r = client.post(
            f"{ENTRIES}/{entry_id}/guard-approve", json={"justification": "mine"}, token=admin_as
        )
        _problem(r, 403, "guard_ineligible")
        assert db_state(deployment.db) == before
    # An analyst is refused by role; a justification is required.
    _problem(
        client.post(
            f"{ENTRIES}/{entry_id}/guard-approve", json={"justification": "x"}, token=tokens.carol
        ),
        403,
        "forbidden",
    )
    _problem(
        client.post(
            f"{ENTRIES}/{entry_id}/guard-approve", json={"justification": ""}, token=tokens.admin
        ),
        422,
        "validation_error",
    )
    assert db_state(deployment.db) == before

    r = client.post(
        f"{ENTRIES}/{entry_id}/guard-approve",
        json={"justification": "the subdomain is dedicated to abuse material (case 12)"},
        token=tokens.admin,
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "active"
    assert body["guard"]["approved_by"] == "admin"
    assert body["guard"]["justification"].startswith("the subdomain")
    publish(client, tokens.admin)
    shown = _entry(client, tokens.alice, entry_id)
    assert shown["listed"] is True
    actions = [h["action"] for h in shown["history"]]
    assert Action.ENTRY_GUARD_APPROVE in actions
    # Approved once: a second guard approval is refused.
    _problem(
        client.post(
            f"{ENTRIES}/{entry_id}/guard-approve",
            json={"justification": "again"},
            token=tokens.admin,
        ),
        409,
        "invalid_state",
    )


def test_guard_approval_comes_after_four_eyes(
    client: ApiClient, tokens: Tokens, deployment: Deployment
) -> None:
    added = add_entry(client, tokens.alice, "http://192.0.2.10/files/", scope="prefix")
    assert added.status_code == 201, added.text
    assert added.json()["guard"]["rule"] == "ip-address"
    before = db_state(deployment.db)
    r = client.post(
        f"{ENTRIES}/{added.json()['id']}/guard-approve",
        json={"justification": "early"},
        token=tokens.admin,
    )
    _problem(r, 409, "awaiting_safeguard")
    assert db_state(deployment.db) == before


def test_page_entries_and_unguarded_hosts_need_no_guard_approval(
    client: ApiClient, tokens: Tokens
) -> None:
    page = add_entry(client, tokens.alice, "http://192.0.2.11/one.html")
    assert page.json()["guard"] is None
    host = add_entry(client, tokens.alice, "http://abuse.example.net/", scope="host")
    assert host.json()["guard"] is None
    assert _approve(client, tokens.bob, host.json()["id"])["status"] == "active"


def test_preview_names_the_guard_rule_and_the_blast_radius(
    client: ApiClient, tokens: Tokens
) -> None:
    for url in (
        "http://a.example.org/x.html",
        "http://example.org/dir/p.html",
        "http://example.net/",
    ):
        scope = "host" if url.endswith(".net/") else "page"
        entry = add_entry(client, tokens.alice, url, scope=scope).json()
        _approve(client, tokens.bob, entry["id"])
    publish(client, tokens.admin)
    assert (
        client.post("/v1/guards", json={"host": "example.org"}, token=tokens.admin).status_code
        == 201
    )
    r = client.post(
        f"{ENTRIES}/preview",
        json={"url": "http://example.org/", "scope": "host"},
        token=tokens.alice,
    )
    assert r.status_code == 200, r.text
    guard = r.json()["safeguards"]
    assert guard["guard"] == "example.org"
    assert guard["subsumes"] == 2  # a.example.org/x.html and example.org/dir/p.html
    assert any("guarded host example.org" in rule for rule in guard["rules"])
    r = client.post(
        f"{ENTRIES}/preview",
        json={"url": "http://example.org/dir/", "scope": "prefix"},
        token=tokens.alice,
    )
    assert r.json()["safeguards"]["subsumes"] == 1
    r = client.post(
        f"{ENTRIES}/preview", json={"url": "http://192.0.2.1/", "scope": "host"}, token=tokens.alice
    )
    assert r.json()["safeguards"]["guard"] == "ip-address"


# --- item 3: hosting evidence and referrals ------------------------------------

#: The test's country database: RFC 5737 blocks placed in countries.
_COUNTRIES = {"192.0.2.0/24": "GB", "198.51.100.0/24": "NL", "203.0.113.0/24": "GB"}
#: A CDN network inside a "GB" block: its addresses must count as unknown.
_CDN = "203.0.113.128/25"

_DNS = {
    "home.example.com": ["192.0.2.5"],
    "home2.example.com": ["192.0.2.6", "2001:db8::6"],
    "abroad.example.com": ["198.51.100.7"],
    "cdn.example.com": ["203.0.113.200"],
    "nodata.example.com": [],
}


def write_country_db(path: Path, countries: dict[str, str]) -> Path:
    """A MaxMind-format country database (GeoLite2-Country layout) for the test."""
    writer = MMDBWriter(ip_version=6, ipv4_compatible=True, database_type="Test-Country")
    for network, code in countries.items():
        writer.insert_network(IPSet([network]), {"country": {"iso_code": code}})
    writer.to_db_file(str(path))
    return path


@pytest.fixture
def dns() -> Iterator[LoopbackDns]:
    with loopback_dns(_DNS, silent=["slow.example.com"]) as server:
        yield server


@pytest.fixture
def located(tmp_path: Path, dns: LoopbackDns) -> Iterator[tuple[Deployment, ApiClient]]:
    db = write_country_db(tmp_path / "countries.mmdb", _COUNTRIES)
    cdn = tmp_path / "cdn.txt"
    cdn.write_text(f"# test CDN\n{_CDN}\n")
    d = make_deployment(
        tmp_path / "dep",
        hosting_resolver=dns.resolver,
        hosting_country_db=db,
        hosting_cdn_networks=cdn,
        hosting_dns_timeout=0.5,
    )
    client = ApiClient(d.app)
    try:
        yield d, client
    finally:
        client.close()
        close_deployment(d)


def test_home_hosting_is_proposed_for_referral_and_a_referred_entry_is_never_listed(
    located: tuple[Deployment, ApiClient], dns: LoopbackDns
) -> None:
    d, client = located
    tokens = d.tokens
    entries = f"/v1/lists/{OTHER}/entries"  # OTHER's home country is GB
    added = add_entry(client, tokens.alice, "http://home.example.com/a.html", list_name=OTHER)
    assert added.status_code == 201, added.text
    body = added.json()
    assert body["referral"] == "proposed"
    hosting = body["hosting"]
    assert hosting["verified"] is True
    assert hosting["countries"] == ["GB"]
    assert hosting["addresses"] == [{"address": "192.0.2.5", "country": "GB", "cdn": False}]
    assert hosting["resolver"] == dns.resolver
    assert hosting["database"].startswith("mmdb:Test-Country")
    assert "home.example.com" in dns.queries
    entry_id = body["id"]
    queue = client.get(f"/v1/lists/{OTHER}/referrals", token=tokens.bob)
    assert [e["id"] for e in queue.json()["entries"]] == [entry_id]
    # Four-eyes complete (OTHER needs two): still held by the proposal.
    _approve(client, tokens.bob, entry_id, OTHER)
    second = _approve(client, tokens.carol, entry_id, OTHER)
    assert second["status"] == "pending"
    assert second["awaiting"] == ["referral"]
    r = client.post(
        f"{entries}/{entry_id}/refer",
        json={"reason": "hosted at home: takedown"},
        token=tokens.alice,
    )
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "referred"
    publish(client, tokens.admin, OTHER)
    shown = _entry(client, tokens.alice, entry_id, OTHER)
    assert shown["listed"] is False
    assert shown["added_version"] is None
    actions = [h["action"] for h in shown["history"]]
    assert actions == [
        Action.ENTRY_ADD,
        Action.ENTRY_HOSTING,
        Action.ENTRY_REFER_PROPOSE,
        Action.ENTRY_APPROVE,
        Action.ENTRY_APPROVE,
        Action.ENTRY_REFER,
    ]
    assert client.get(f"/v1/lists/{OTHER}/referrals", token=tokens.bob).json()["entries"] == []
    # Referred is final: it cannot come back.
    _problem(
        client.post(f"{entries}/{entry_id}/reinstate", json={"reason": "x"}, token=tokens.bob),
        409,
        "invalid_state",
    )


def test_foreign_cdn_and_failed_resolution_propose_nothing(
    located: tuple[Deployment, ApiClient],
) -> None:
    d, client = located
    tokens = d.tokens
    abroad = add_entry(client, tokens.alice, "http://abroad.example.com/a.html", list_name=OTHER)
    assert abroad.json()["referral"] is None
    assert abroad.json()["hosting"]["countries"] == ["NL"]
    cdn = add_entry(client, tokens.alice, "http://cdn.example.com/a.html", list_name=OTHER)
    assert cdn.json()["referral"] is None
    assert cdn.json()["hosting"]["addresses"] == [
        {"address": "203.0.113.200", "country": None, "cdn": True}
    ]
    for host, error in (("missing", "nxdomain"), ("nodata", "no_address"), ("slow", "timeout")):
        r = add_entry(
            client,
            tokens.alice,
            f"http://{host}.example.com/a.html",
            list_name=OTHER,
            hosting_country="NL",
        )
        assert r.status_code == 201, r.text
        assert r.json()["hosting_country"] == "NL"  # the analyst's declaration stands
        assert r.json()["hosting"]["verified"] is False
        assert r.json()["hosting"]["error"] == error
        assert r.json()["referral"] is None


def test_bulk_add_resolves_each_host_and_proposes_referrals(
    located: tuple[Deployment, ApiClient], dns: LoopbackDns
) -> None:
    d, client = located
    tokens = d.tokens
    rows = [
        {"url": "http://home.example.com/1.html", "scope": "page", "reason": "r"},
        {"url": "http://home.example.com/2.html", "scope": "page", "reason": "r"},
        {"url": "http://abroad.example.com/1.html", "scope": "page", "reason": "r"},
    ]
    r = client.post(f"/v1/lists/{OTHER}/entries/bulk", json=rows, token=tokens.alice)
    assert r.status_code == 200, r.text
    ids = [row["id"] for row in r.json()["results"]]
    shown = [_entry(client, tokens.bob, i, OTHER) for i in ids]
    assert [e["referral"] for e in shown] == ["proposed", "proposed", None]
    assert [e["hosting"]["countries"] for e in shown] == [["GB"], ["GB"], ["NL"]]
    assert dns.queries.count("home.example.com") == 2  # once per host (A and AAAA)
    queue = client.get(f"/v1/lists/{OTHER}/referrals", token=tokens.bob).json()["entries"]
    assert [e["id"] for e in queue] == ids[:2]


def test_an_admin_overrides_a_referral_with_a_reason(
    located: tuple[Deployment, ApiClient],
) -> None:
    d, client = located
    tokens = d.tokens
    entries = f"/v1/lists/{OTHER}/entries"
    entry_id = add_entry(
        client, tokens.alice, "http://home2.example.com/a.html", list_name=OTHER
    ).json()["id"]
    before = db_state(d.db)
    _problem(
        client.post(f"{entries}/{entry_id}/refer-override", json={"reason": "x"}, token=tokens.bob),
        403,
        "forbidden",
    )
    _problem(
        client.post(f"{entries}/{entry_id}/refer-override", json={}, token=tokens.admin),
        422,
        "validation_error",
    )
    assert db_state(d.db) == before
    _approve(client, tokens.bob, entry_id, OTHER)
    _approve(client, tokens.carol, entry_id, OTHER)
    r = client.post(
        f"{entries}/{entry_id}/refer-override",
        json={"reason": "the address is a foreign provider's; geolocation is stale"},
        token=tokens.admin,
    )
    assert r.status_code == 200, r.text
    assert r.json()["referral"] == "overridden"
    assert r.json()["status"] == "active"
    publish(client, tokens.admin, OTHER)
    assert _entry(client, tokens.alice, entry_id, OTHER)["listed"] is True


def test_the_canary_is_never_resolved_nor_referred(
    located: tuple[Deployment, ApiClient], dns: LoopbackDns
) -> None:
    d, client = located
    tokens = d.tokens
    r = client.post(
        "/v1/lists",
        json={"name": "third", "home_country": "GB", "canary": "http://home.example.com/canary"},
        token=tokens.admin,
    )
    assert r.status_code == 201, r.text
    assert dns.queries == []  # the canary's host was never resolved
    with d.db.read() as session:
        from blocklist.store import lists as store_lists

        canary_id = store_lists.get_list(session, "third").canary_entry_id
    assert canary_id is not None
    before = db_state(d.db)
    _problem(
        client.post(
            f"/v1/lists/third/entries/{canary_id}/refer", json={"reason": "x"}, token=tokens.bob
        ),
        409,
        "invalid_state",
    )
    assert db_state(d.db) == before


# --- item 5: a full bundle with every safeguard decision verifies ---------------


def test_full_bundle_with_safeguard_decisions_verifies_and_a_forged_one_fails(
    located: tuple[Deployment, ApiClient],
) -> None:
    import dataclasses

    from clients.audit.bundle import loads
    from clients.audit.verify import verify_bundle

    d, client = located
    tokens = d.tokens
    entries = f"/v1/lists/{OTHER}/entries"
    with d.db.transaction() as session:
        auditor, _ = store_tokens.create_token(
            session,
            name="auditor-other",
            role="auditor",
            lists=[OTHER],
            full_audit=True,
            actor="test",
        )
    assert (
        client.post("/v1/guards", json={"host": "example.org"}, token=tokens.admin).status_code
        == 201
    )
    guarded = add_entry(
        client, tokens.alice, "http://files.example.org/", scope="host", list_name=OTHER
    )
    guarded_id = guarded.json()["id"]
    referred_id = add_entry(
        client, tokens.alice, "http://home.example.com/a.html", list_name=OTHER
    ).json()["id"]
    overridden_id = add_entry(
        client, tokens.alice, "http://home2.example.com/b.html", list_name=OTHER
    ).json()["id"]
    for entry_id in (guarded_id, referred_id, overridden_id):
        _approve(client, tokens.bob, entry_id, OTHER)
        _approve(client, tokens.carol, entry_id, OTHER)
    r = client.post(
        f"{entries}/{guarded_id}/guard-approve",
        json={"justification": "dedicated"},
        token=tokens.admin,
    )
    assert r.status_code == 200, r.text
    r = client.post(f"{entries}/{referred_id}/refer", json={"reason": "home"}, token=tokens.alice)
    assert r.status_code == 200, r.text
    r = client.post(
        f"{entries}/{overridden_id}/refer-override", json={"reason": "stale"}, token=tokens.admin
    )
    assert r.status_code == 200, r.text
    publish(client, tokens.admin, OTHER)
    r = client.post(
        f"{entries}/{guarded_id}/expire", json={"reason": "taken down"}, token=tokens.bob
    )
    assert r.status_code == 200, r.text
    publish(client, tokens.admin, OTHER)

    r = client.get(f"/v1/lists/{OTHER}/audit/bundle", params={"full": "true"}, token=auditor)
    assert r.status_code == 200, r.text
    bundle = loads(r.content)
    actions = {rec.action for rec in bundle.audit_log or ()}
    assert {
        Action.ENTRY_GUARD_APPROVE,
        Action.ENTRY_HOSTING,
        Action.ENTRY_REFER_PROPOSE,
        Action.ENTRY_REFER,
        Action.ENTRY_REFER_OVERRIDE,
    } <= actions
    report = verify_bundle(bundle, [d.other_root_vkey], workers=1)
    assert report.ok, report.failure

    # Forge: the guard approval's justification is erased. The chain no
    # longer verifies (a forger without the signing key cannot re-sign).
    records = list(bundle.audit_log or ())
    i = next(n for n, rec in enumerate(records) if rec.action == Action.ENTRY_GUARD_APPROVE)
    records[i] = dataclasses.replace(
        records[i], details={**records[i].details, "justification": ""}
    )
    forged = dataclasses.replace(bundle, audit_log=tuple(records))
    report = verify_bundle(forged, [d.other_root_vkey], workers=1)
    assert not report.ok
    assert report.failure is not None
    assert report.failure.check == "audit.chain"


def test_the_reverification_locator_uses_the_hosting_database_and_cdn_rule(
    tmp_path: Path,
) -> None:
    """Re-verification places addresses as entry time does (issue 16 items 3-4)."""
    from signer.hosting import address_locator

    db = write_country_db(tmp_path / "c.mmdb", {"192.0.2.0/24": "GB", "203.0.113.0/24": "GB"})
    cdn = tmp_path / "cdn.txt"
    cdn.write_text("203.0.113.128/25\n", encoding="utf-8")
    locate = address_locator(db, cdn)
    assert locate("192.0.2.7") == "GB"
    assert locate("203.0.113.5") == "GB"
    assert locate("203.0.113.200") is None  # a CDN address counts as unknown
    assert locate("198.51.100.1") is None  # not in the database
    assert locate("not an address") is None
