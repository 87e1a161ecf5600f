"""Re-verification against real servers on loopback (issue 16 item 4).

Every check goes over real sockets: DNS to a dnspython server on 127.0.0.1
(:class:`support.reverify_servers.DnsServer`), HTTP to raw-socket origins
on 127.0.0.1 (:class:`support.reverify_servers.Origin`); entries are added
and read through the real API in-process; the job writes to the real store.
Nothing here touches the internet; names are reserved (``*.example.com``).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from support.api_testing import (
    MAIN,
    OTHER,
    ApiClient,
    Deployment,
    add_entry,
    close_deployment,
    deployed,
    deployment_client,
    make_deployment,
    publish,
)
from support.reverify_servers import DnsServer, Origin, running_dns, running_origin

from blocklist.auditlog import Action, Actor
from clients.audit.bundle import loads
from clients.audit.verify import verify_bundle
from signer.reverify import (
    Reverifier,
    ReverifyConfig,
    ReverifyConfigError,
    VantagePoint,
    load_config,
    parse_config,
)

#: Hosts the loopback DNS server knows (all at 127.0.0.1, where the origin is).
HOSTS = [f"site{i}.example.com" for i in range(8)]
#: A second-level test clock: each run is a day after the previous one.
T0 = datetime(2026, 12, 1, tzinfo=UTC)


class Clock:
    """The job's clock, moved by the test (checks are days apart)."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def next_day(self) -> None:
        self.now += timedelta(days=1)


@pytest.fixture
def origin() -> Iterator[Origin]:
    with running_origin() as o:
        yield o


@pytest.fixture
def dns_server() -> Iterator[DnsServer]:
    with running_dns(dict.fromkeys(HOSTS, "127.0.0.1")) as server:
        yield server


@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[Deployment]:
    with deployed(tmp_path) as d:
        yield d


@pytest.fixture
def client(deployment: Deployment) -> Iterator[ApiClient]:
    with deployment_client(deployment) as c:
        yield c


def approved(client: ApiClient, deployment: Deployment, url: str, list_name: str = MAIN) -> int:
    """Add ``url`` as alice, approve it (bob, and carol where two are needed)."""
    tokens = deployment.tokens
    r = add_entry(client, tokens.alice, url, list_name=list_name)
    assert r.status_code == 201, r.text
    entry_id: int = r.json()["id"]
    for approver in (tokens.bob, tokens.carol)[: 2 if list_name == OTHER else 1]:
        a = client.post(f"/v1/lists/{list_name}/entries/{entry_id}/approve", token=approver)
        assert a.status_code == 200, a.text
    return entry_id


def entry(client: ApiClient, deployment: Deployment, entry_id: int, list_name: str = MAIN) -> Any:
    r = client.get(f"/v1/lists/{list_name}/entries/{entry_id}", token=deployment.tokens.alice)
    assert r.status_code == 200, r.text
    return r.json()


def verification(client: ApiClient, deployment: Deployment, entry_id: int) -> Any:
    return entry(client, deployment, entry_id)["verification"]


def proposals(client: ApiClient, deployment: Deployment, list_name: str = MAIN) -> list[Any]:
    r = client.get(f"/v1/lists/{list_name}/proposals", token=deployment.tokens.alice)
    assert r.status_code == 200, r.text
    out: list[Any] = r.json()["proposals"]
    return out


def config(dns_server: DnsServer, **overrides: Any) -> ReverifyConfig:
    base = ReverifyConfig(
        vantage_points=(VantagePoint("direct", resolver=dns_server.address),),
        gone_threshold=3,
        per_host_interval=0.0,
        timeout=5.0,
        allow_private_addresses=True,  # the origins are on loopback
    )
    return replace(base, **overrides)


def test_entries_move_through_live_gone_and_back_and_are_proposed_after_k(
    deployment: Deployment, client: ApiClient, origin: Origin, dns_server: DnsServer
) -> None:
    clock = Clock()
    page = approved(client, deployment, origin.url(HOSTS[0], "/page.html"))
    job = Reverifier(deployment.db, config(dns_server), clock=clock)
    assert verification(client, deployment, page)["status"] == "unchecked"

    job.run_list(MAIN)
    state = verification(client, deployment, page)
    assert state["status"] == "live"
    assert state["hosting"] == ["127.0.0.1"]
    assert state["consecutive_gone"] == 0
    assert (HOSTS[0], "HEAD", "/page.html") in origin.requests

    origin.modes["/page.html"] = "404"
    for k in (1, 2):
        clock.next_day()
        job.run_list(MAIN)
        state = verification(client, deployment, page)
        assert (state["status"], state["consecutive_gone"]) == ("gone", k)
        # Not yet k = 3 consecutive checks: nothing proposed.
        assert proposals(client, deployment) == []
    clock.next_day()
    job.run_list(MAIN)
    state = verification(client, deployment, page)
    assert (state["status"], state["consecutive_gone"]) == ("gone", 3)
    queue = proposals(client, deployment)
    assert [(p["entry"], p["kind"]) for p in queue] == [(page, "expiry")]
    history = entry(client, deployment, page)["history"]
    proposed = [h for h in history if h["action"] == Action.ENTRY_VERIFY_PROPOSE_EXPIRY]
    assert len(proposed) == 1
    assert proposed[0]["actor"] == Actor.REVERIFY
    assert proposed[0]["details"]["consecutive_gone"] == 3
    # Proposed, not expired: auto_expire_gone is off by default.
    assert entry(client, deployment, page)["status"] == "active"

    # A fourth gone check does not propose it twice.
    clock.next_day()
    job.run_list(MAIN)
    history = entry(client, deployment, page)["history"]
    assert sum(h["action"] == Action.ENTRY_VERIFY_PROPOSE_EXPIRY for h in history) == 1

    # ... and back: live again resets the run and withdraws the proposal.
    origin.modes["/page.html"] = "200"
    clock.next_day()
    job.run_list(MAIN)
    state = verification(client, deployment, page)
    assert (state["status"], state["consecutive_gone"]) == ("live", 0)
    assert state["expiry_proposed_at"] is None
    assert proposals(client, deployment) == []


def test_each_answer_gets_its_verdict(
    deployment: Deployment, client: ApiClient, origin: Origin, dns_server: DnsServer
) -> None:
    cases = {
        "/gone.html": ("410", "gone"),
        "/missing.html": ("404", "gone"),
        "/away.html": ("redirect-away", "moved"),
        "/same.html": ("redirect-same", "live"),
        "/reset.html": ("reset", "unreachable"),
        "/broken.html": ("500", "unreachable"),
    }
    ids = {}
    for path, (mode, _) in cases.items():
        origin.modes[path] = mode
        ids[path] = approved(client, deployment, origin.url(HOSTS[1], path))
    nxdomain = approved(client, deployment, f"http://vanished.example.com:{origin.port}/a.html")
    # Nothing listens on this port of 127.0.0.1: connection refused.
    refused = approved(client, deployment, f"http://{HOSTS[2]}:9/closed.html")
    Reverifier(deployment.db, config(dns_server), clock=Clock()).run_list(MAIN)
    for path, (_, expected) in cases.items():
        state = verification(client, deployment, ids[path])
        assert state["status"] == expected, (path, state)
    gone = verification(client, deployment, nxdomain)
    assert gone["status"] == "gone"
    assert gone["vantage_points"][0]["dns"] == "nxdomain"
    assert gone["hosting"] == []
    assert ("vanished.example.com", "HEAD", "/a.html") not in origin.requests
    closed = verification(client, deployment, refused)
    assert closed["status"] == "unreachable"
    assert closed["vantage_points"][0]["error"] == "connect"


def test_an_endless_body_is_never_read(
    deployment: Deployment, client: ApiClient, origin: Origin, dns_server: DnsServer
) -> None:
    origin.modes["/stream"] = "endless"
    eid = approved(client, deployment, origin.url(HOSTS[3], "/stream"))
    Reverifier(deployment.db, config(dns_server), clock=Clock()).run_list(MAIN)
    state = verification(client, deployment, eid)
    # HEAD refused with 405, then a GET closed after its header section: the
    # check finished (reading the body would never end, or time out as
    # "unreachable") and found the page live.
    assert state["status"] == "live", state
    assert state["vantage_points"][0]["http_status"] == 200
    methods = [m for h, m, p in origin.requests if p == "/stream"]
    assert methods == ["HEAD", "GET"]
    (record,) = origin.endless
    origin.close()  # joins the origin's threads: the endless loop has ended
    # The origin's send failed because the checker closed the connection,
    # having accepted no more than socket buffers hold (an endless body).
    assert record.closed_by_peer
    assert record.sent < 16 * 1024 * 1024, record.sent


def test_a_header_drip_is_cut_off_at_the_deadline(
    deployment: Deployment, client: ApiClient, origin: Origin, dns_server: DnsServer
) -> None:
    origin.modes["/drip"] = "drip"
    eid = approved(client, deployment, origin.url(HOSTS[3], "/drip"))
    # Every read gets a byte within the 2 s read timeout; only the overall
    # deadline ends the check (without it, it would never end).
    job = Reverifier(deployment.db, config(dns_server, timeout=2.0, deadline=1.5), clock=Clock())
    job.run_list(MAIN)
    state = verification(client, deployment, eid)
    assert state["status"] == "unreachable"
    assert state["vantage_points"][0]["error"] == "timeout"


def test_concurrency_and_per_host_rate_hold(
    deployment: Deployment, client: ApiClient, origin: Origin, dns_server: DnsServer
) -> None:
    origin.delay = 0.05  # each answer holds its connection, so overlaps show
    hosts, per_host = HOSTS[:4], 5
    for i in range(per_host):
        for host in hosts:
            approved(client, deployment, origin.url(host, f"/p{i}.html"))
    interval = 0.3
    job = Reverifier(
        deployment.db,
        config(dns_server, concurrency=3, per_host_interval=interval),
        clock=Clock(),
    )
    run = job.run_list(MAIN)
    assert run.checked == len(hosts) * per_host
    assert run.by_status == {"live": len(hosts) * per_host}
    # Concurrency: never more connections at once than the limit.
    assert origin.max_active <= 3
    # Per-host rate: n requests to one host span at least (n - 1) intervals.
    # Measured over the whole span, the scheduling jitter of a loaded machine
    # (first and last arrival only) stays far inside the allowance; without
    # the pacer the span is a fraction of one interval.
    for host in hosts:
        times = origin.arrivals[host]
        assert len(times) == per_host
        span = times[-1] - times[0]
        assert span >= (per_host - 1) * interval - 0.3, (host, span)


def test_direct_checks_never_connect_to_private_addresses_by_default(
    deployment: Deployment, client: ApiClient, origin: Origin, dns_server: DnsServer
) -> None:
    eid = approved(client, deployment, origin.url(HOSTS[0], "/inside.html"))
    Reverifier(
        deployment.db, config(dns_server, allow_private_addresses=False), clock=Clock()
    ).run_list(MAIN)
    state = verification(client, deployment, eid)
    # The name resolves to 127.0.0.1: no connection is made (SSRF into the
    # hotline's own network), and the check says it could not verify.
    assert state["status"] == "unreachable"
    assert state["vantage_points"][0]["error"] == "private_address"
    assert state["hosting"] == ["127.0.0.1"]
    assert origin.requests == []


def test_the_canary_is_never_checked(
    deployment: Deployment, client: ApiClient, origin: Origin, dns_server: DnsServer
) -> None:
    with deployment.db.read() as session:
        from blocklist.store import lists as store_lists

        canary = store_lists.get_list(session, MAIN).canary_entry_id
    assert canary is not None
    eid = approved(client, deployment, origin.url(HOSTS[0], "/x.html"))
    run = Reverifier(deployment.db, config(dns_server), clock=Clock()).run_list(MAIN)
    assert run.checked == 1
    assert entry(client, deployment, canary)["verification"] is None
    assert verification(client, deployment, eid)["status"] == "live"
    # One name asked about (A and AAAA): the entry's, not the canary's.
    assert dns_server.queries == 2


def test_entries_not_seen_live_are_flagged_and_home_hosting_is_proposed_for_referral(
    deployment: Deployment, client: ApiClient, origin: Origin, dns_server: DnsServer
) -> None:
    dns_server.names["home.example.com"] = "127.0.0.2"
    # OTHER's home country is GB; the locator places 127.0.0.2 there (the
    # safeguards' hosting locator plugs in here in production).
    eid = approved(client, deployment, f"http://home.example.com:{origin.port}/r.html", OTHER)
    clock = Clock()
    job = Reverifier(
        deployment.db,
        config(dns_server, max_unverified_days=2),
        clock=clock,
        locate={"127.0.0.2": "GB"}.get,
    )
    clock.now = datetime.now(UTC)
    job.run_list(OTHER)
    state = entry(client, deployment, eid, OTHER)["verification"]
    assert state["status"] == "unreachable"  # nothing listens on 127.0.0.2
    assert state["referral_proposed_at"] is not None
    kinds = [p["kind"] for p in proposals(client, deployment, OTHER)]
    assert kinds == ["referral"]
    clock.now += timedelta(days=3)
    job.run_list(OTHER)
    kinds = [p["kind"] for p in proposals(client, deployment, OTHER)]
    assert kinds == ["referral", "unverified"]


def test_auto_expire_needs_two_agreeing_vantage_points_and_the_bundle_verifies(
    deployment: Deployment, client: ApiClient, origin: Origin, dns_server: DnsServer
) -> None:
    second = DnsServer(dict.fromkeys(HOSTS, "127.0.0.1"))
    try:
        both = approved(client, deployment, origin.url(HOSTS[4], "/both.html"))
        one = approved(client, deployment, origin.url(HOSTS[5], "/one.html"))
        publish(client, deployment.tokens.alice)
        # HOSTS[4] vanished for both resolvers; HOSTS[5] only for the first
        # (a site hiding from one vantage point).
        del dns_server.names[HOSTS[4]]
        del second.names[HOSTS[4]]
        del dns_server.names[HOSTS[5]]
        cfg = config(
            dns_server,
            gone_threshold=2,
            auto_expire_gone=True,
            vantage_points=(
                VantagePoint("a", resolver=dns_server.address),
                VantagePoint("b", resolver=second.address),
            ),
        )
        clock = Clock()
        job = Reverifier(deployment.db, cfg, clock=clock)
        job.run_list(MAIN)
        assert entry(client, deployment, both)["status"] == "active"  # 1 < k
        clock.next_day()
        run = job.run_list(MAIN)
        assert run.expired == 1
        expired = entry(client, deployment, both)
        assert expired["status"] == "expired"
        record = [h for h in expired["history"] if h["action"] == Action.ENTRY_EXPIRE][-1]
        assert record["actor"] == Actor.REVERIFY
        assert record["details"]["reason"] == "gone"
        assert [v["name"] for v in record["details"]["vantage_points"]] == ["a", "b"]
        # One vantage point still sees HOSTS[5] live: never expired by the system.
        assert entry(client, deployment, one)["status"] == "active"
        assert verification(client, deployment, one)["status"] == "live"
    finally:
        second.close()
    publish(client, deployment.tokens.alice)
    r = client.get(
        f"/v1/lists/{MAIN}/audit/bundle",
        params={"full": "true"},
        token=deployment.tokens.auditor_full,
    )
    assert r.status_code == 200
    report = verify_bundle(loads(r.content), [deployment.init.root_vkey], workers=1)
    assert report.ok, report.failure


def test_metrics_count_entries_by_status_and_the_last_run(
    deployment: Deployment, client: ApiClient, origin: Origin, dns_server: DnsServer
) -> None:
    origin.modes["/gone.html"] = "404"
    approved(client, deployment, origin.url(HOSTS[0], "/live.html"))
    approved(client, deployment, origin.url(HOSTS[0], "/gone.html"))
    approved(client, deployment, origin.url(HOSTS[0], "/later.html"))
    job = Reverifier(deployment.db, config(dns_server, batch=2), clock=Clock())
    job.run_list(MAIN)
    text = client.get("/metrics", token=deployment.tokens.admin).text
    assert 'cleanfeed_verification_entries{list="main",status="live"} 1.0' in text
    assert 'cleanfeed_verification_entries{list="main",status="gone"} 1.0' in text
    # The batch of 2 left one entry for the next run.
    assert 'cleanfeed_verification_entries{list="main",status="unchecked"} 1.0' in text
    assert 'cleanfeed_verification_last_run_timestamp_seconds{list="main"}' in text
    assert "example.com" not in text  # no URL or host in the metrics
    public = client.get("/metrics").text
    assert "cleanfeed_verification" not in public


# --- configuration ------------------------------------------------------------------


def test_config_file_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "reverify.toml"
    path.write_text(
        "interval_seconds = 3600\n"
        "gone_threshold = 4\n"
        "auto_expire_gone = true\n"
        "per_host_interval_seconds = 2.5\n"
        "[[vantage_point]]\n"
        'name = "egress-a"\n'
        'proxy = "http://192.0.2.10:3128"\n'
        "[[vantage_point]]\n"
        'name = "egress-b"\n'
        'resolver = "[2001:db8::53]:5353"\n'
    )
    cfg = load_config(path)
    assert cfg.interval == 3600.0
    assert cfg.gone_threshold == 4
    assert cfg.auto_expire_gone is True
    assert cfg.per_host_interval == 2.5
    assert [p.name for p in cfg.vantage_points] == ["egress-a", "egress-b"]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"gone_threshold": 0}, "gone_threshold: must be between 1 and 100"),
        ({"concurrency": 1000}, "concurrency: must be between 1 and 64"),
        ({"gone_threshold": 2.5}, "gone_threshold: must be a whole number"),
        ({"surprise": 1}, "unknown key(s): surprise"),
        ({"auto_expire_gone": True}, "auto_expire_gone needs at least two"),
        (
            {"auto_expire_gone": True, "vantage_point": [{"name": "a"}]},
            "auto_expire_gone needs at least two",
        ),
        ({"vantage_point": [{"name": "a"}, {"name": "a"}]}, "same name"),
        ({"vantage_point": [{"name": "a", "proxy": "socks5://x"}]}, "proxy must be an http"),
        ({"vantage_point": [{"name": "a", "resolver": "dns.example"}]}, "resolver must be an IP"),
    ],
)
def test_bad_config_is_refused_with_the_key_to_fix(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ReverifyConfigError) as e:
        parse_config(data)
    assert message in str(e.value)


def test_bad_config_file_stops_the_server_at_start(tmp_path: Path) -> None:
    from api.settings import SettingsError, load_settings

    path = tmp_path / "reverify.toml"
    path.write_text("gone_threshold = 0\n")
    with pytest.raises(SettingsError) as e:
        load_settings(tmp_path / "data", reverify_config=path)
    assert "reverify_config" in str(e.value)
    assert "gone_threshold" in str(e.value)


# --- the schedule: the job runs in the signer's process ------------------------------


def test_the_embedded_signer_schedules_the_job(
    tmp_path: Path, origin: Origin, dns_server: DnsServer
) -> None:
    conf = tmp_path / "reverify.toml"
    conf.write_text(
        "interval_seconds = 3600\n"
        "per_host_interval_seconds = 0\n"
        "allow_private_addresses = true\n"
        "[[vantage_point]]\n"
        'name = "direct"\n'
        f'resolver = "{dns_server.address}"\n'
    )
    d = make_deployment(tmp_path / "d", reverify_config=conf)
    c = ApiClient(d.app)
    try:
        signer = d.app.state.cf.signer
        assert signer is not None
        assert signer.reverifier is not None
        assert signer.reverifier.config.interval == 3600.0
        eid = approved(c, d, origin.url(HOSTS[0], "/scheduled.html"))
        # What the app's lifespan does with schedule on: the first run of
        # every job is due at once.
        signer.start()
        try:
            deadline = time.monotonic() + 60
            while verification(c, d, eid)["status"] == "unchecked":
                assert time.monotonic() < deadline, "the scheduled job never ran"
                time.sleep(0.2)
        finally:
            signer.shutdown()
        assert verification(c, d, eid)["status"] == "live"
        assert (HOSTS[0], "HEAD", "/scheduled.html") in origin.requests
    finally:
        c.close()
        close_deployment(d)


def test_signer_run_refuses_a_bad_config_with_the_key_to_fix(
    deployment: Deployment, tmp_path: Path
) -> None:
    from click.testing import CliRunner

    from signer.publisher_cli import signer_group

    conf = tmp_path / "bad.toml"
    conf.write_text("concurrency = 0\n")
    result = CliRunner().invoke(
        signer_group,
        ["run", "--data-dir", str(deployment.settings.data_dir), "--reverify-config", str(conf)],
    )
    assert result.exit_code == 1, result.output
    assert "concurrency: must be between 1 and 64" in result.output


def test_signer_reverify_runs_once_and_prints_counts(
    deployment: Deployment, client: ApiClient, origin: Origin, dns_server: DnsServer, tmp_path: Path
) -> None:
    import json

    from click.testing import CliRunner

    from signer.publisher_cli import signer_group

    origin.modes["/gone.html"] = "410"
    live = approved(client, deployment, origin.url(HOSTS[0], "/live.html"))
    approved(client, deployment, origin.url(HOSTS[0], "/gone.html"))
    conf = tmp_path / "reverify.toml"
    conf.write_text(
        "per_host_interval_seconds = 0\n"
        "allow_private_addresses = true\n"
        "[[vantage_point]]\n"
        'name = "direct"\n'
        f'resolver = "{dns_server.address}"\n'
    )
    args = ["reverify", "--data-dir", str(deployment.settings.data_dir)]
    result = CliRunner().invoke(
        signer_group, [*args, "--list", MAIN, "--reverify-config", str(conf)]
    )
    assert result.exit_code == 0, result.output
    (line,) = result.output.strip().splitlines()
    summary = json.loads(line)
    assert summary["list"] == MAIN
    assert summary["checked"] == 2
    assert summary["by_status"] == {"gone": 1, "live": 1}
    assert "example.com" not in result.output  # counts only, no host or URL
    assert verification(client, deployment, live)["status"] == "live"
