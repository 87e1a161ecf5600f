"""PostgreSQL restarted under load: 503 with Retry-After meanwhile, recovery without a restart.

``cleanfeed serve --no-signer`` and ``cleanfeed signer run`` run against a
fresh database on the local test server while a thread keeps sending ISP
and analyst requests. The server is then stopped (``pg_ctlcluster … stop``),
probed while it is down, and started again: a restart with an outage window
long enough to observe.

While the database is down every request that needs it is answered 503
``application/problem+json`` with ``Retry-After`` (never a 500, never a
dropped connection), ``/readyz`` is 503 and ``/healthz`` still 200. When it
is back, the same API and signer processes (never restarted) serve reads
and writes again, a publish cuts a new version, and the log verifies.

This restarts the shared test server: it must not run concurrently with
other PostgreSQL tests (CI runs pytest without xdist; under xdist it skips).
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.engine import make_url
from support.pg_deployment import PgDeployment, init_pg_deployment, start_api, start_signer
from support.postgres import fresh_postgres_database, postgres_admin_url
from support.processes import stop_process
from support.published_log import check_highwater, verify_published_log

from signer.datadir import keys_dir_of

pytestmark = [pytest.mark.postgres, pytest.mark.e2e]

#: Statuses the load may see: success, nothing new, queued publish, or the
#: documented "come back later".
ALLOWED = frozenset({200, 201, 202, 304, 503})

#: Longest wait for the API (and the signer) to serve again after the restart.
RECOVERY_SECONDS = 60.0

#: Pause between two requests of the load thread.
LOAD_PAUSE_SECONDS = 0.05


@dataclass(frozen=True)
class Cluster:
    version: str
    name: str

    def ctl(self, action: str, *extra: str) -> None:
        subprocess.run(
            ["pg_ctlcluster", self.version, self.name, action, *extra],
            check=True,
            capture_output=True,
            text=True,
            timeout=120,
        )

    def online(self) -> bool:
        out = subprocess.run(
            ["pg_lsclusters", "-h"], capture_output=True, text=True, check=True
        ).stdout
        for line in out.splitlines():
            fields = line.split()
            if fields[:2] == [self.version, self.name]:
                return "online" in fields[3]
        return False


def _cluster(url: str) -> Cluster:
    """The local cluster serving ``url`` (skip when it cannot be restarted from here)."""
    parsed = make_url(url)
    if parsed.host not in ("127.0.0.1", "localhost", "::1"):
        pytest.skip(f"the test server {parsed.host} is not local: cannot restart it")
    if shutil.which("pg_ctlcluster") is None or shutil.which("pg_lsclusters") is None:
        pytest.skip("pg_ctlcluster/pg_lsclusters not installed (Debian postgresql-common)")
    port = str(parsed.port or 5432)
    out = subprocess.run(["pg_lsclusters", "-h"], capture_output=True, text=True, check=True)
    for line in out.stdout.splitlines():
        fields = line.split()
        if len(fields) >= 3 and fields[2] == port:
            return Cluster(fields[0], fields[1])
    pytest.skip(f"no local cluster listens on port {port}")


def _wait_online(cluster: Cluster, url: str) -> None:
    parsed = make_url(url)
    deadline = time.monotonic() + RECOVERY_SECONDS
    while True:
        ready = subprocess.run(
            ["pg_isready", "-q", "-h", parsed.host or "127.0.0.1", "-p", str(parsed.port or 5432)],
            check=False,
        )
        if ready.returncode == 0 and cluster.online():
            return
        assert time.monotonic() < deadline, "PostgreSQL did not come back"
        time.sleep(0.2)


@dataclass
class Load:
    """Every answer the load thread got, by phase."""

    phase: str = "up"
    seen: list[tuple[str, str, int, bool]] = field(default_factory=list)
    transport: list[str] = field(default_factory=list)


def _load(base: str, dep: PgDeployment, stop: threading.Event, load: Load) -> None:
    isp = {"Authorization": f"Bearer {dep.isp}"}
    analyst = {"Authorization": f"Bearer {dep.analysts[0]}"}
    counter = itertools.count()
    with httpx.Client(base_url=base, timeout=30.0) as client:
        while not stop.is_set():
            i = next(counter)
            what = i % 4
            try:
                if what == 0:
                    r = client.get("/v1/lists/main/checkpoint", headers=isp)
                elif what == 1:
                    r = client.get("/v1/lists/main/statements", params={"since": 0}, headers=isp)
                elif what == 2:
                    r = client.post(
                        "/v1/lists/main/entries",
                        json={
                            "url": f"http://r{i}.restart.example.org/page.html",
                            "scope": "page",
                            "reason": "restart load",
                        },
                        headers=analyst,
                    )
                else:
                    r = client.post(
                        "/v1/lists/main/entries/search",
                        json={"host": "restart.example.org"},
                        headers=analyst,
                    )
                load.seen.append(
                    (load.phase, r.request.url.path, r.status_code, "retry-after" in r.headers)
                )
            except httpx.HTTPError as e:
                load.transport.append(f"{load.phase}: {type(e).__name__}: {e}")
            stop.wait(LOAD_PAUSE_SECONDS)


def _publish(client: httpx.Client, token: str) -> int:
    """POST …/publish and follow a queued request to its version."""
    headers = {"Authorization": f"Bearer {token}"}
    r = client.post("/v1/lists/main/publish", headers=headers)
    assert r.status_code in (200, 202), r.text
    deadline = time.monotonic() + RECOVERY_SECONDS
    while r.status_code == 202 or r.json().get("pending"):
        assert time.monotonic() < deadline, "the signer never served the publish request"
        time.sleep(0.5)
        r = client.get(
            r.headers.get("location") or f"/v1/lists/main/publish/requests/{r.json()['request']}",
            headers=headers,
        )
        assert r.status_code == 200, r.text
    return int(r.json()["version"])


def _add_approved(client: httpx.Client, dep: PgDeployment, url: str) -> None:
    r = client.post(
        "/v1/lists/main/entries",
        json={"url": url, "scope": "page", "reason": "restart test"},
        headers={"Authorization": f"Bearer {dep.analysts[0]}"},
    )
    assert r.status_code == 201, r.text
    r = client.post(
        f"/v1/lists/main/entries/{r.json()['id']}/approve",
        json={},
        headers={"Authorization": f"Bearer {dep.analysts[1]}"},
    )
    assert r.status_code == 200, r.text


def _probes(
    isp: dict[str, str], analyst: dict[str, str]
) -> list[tuple[str, str, str, dict[str, Any]]]:
    """Requests that cannot be answered without the database."""
    return [
        (
            "statements",
            "GET",
            "/v1/lists/main/statements",
            {"params": {"since": 0}, "headers": isp},
        ),
        ("snapshot", "GET", "/v1/lists/main/snapshot", {"headers": isp}),
        (
            "add",
            "POST",
            "/v1/lists/main/entries",
            {
                "json": {
                    "url": "http://down.restart.example.org/a.html",
                    "scope": "page",
                    "reason": "while down",
                },
                "headers": analyst,
            },
        ),
        (
            "search",
            "POST",
            "/v1/lists/main/entries/search",
            {"json": {"host": "restart.example.org"}, "headers": analyst},
        ),
    ]


@pytest.fixture
def restartable() -> Iterator[tuple[str, Cluster]]:
    if os.environ.get("PYTEST_XDIST_WORKER"):
        pytest.skip("restarts the shared PostgreSQL server: run without xdist")
    admin = postgres_admin_url()
    cluster = _cluster(admin)
    with fresh_postgres_database(admin) as url:
        try:
            yield url, cluster
        finally:
            # Never leave the shared server down for the tests that follow.
            if not cluster.online():
                cluster.ctl("start")
            _wait_online(cluster, admin)


def test_postgres_restart_under_load(tmp_path: Path, restartable: tuple[str, Cluster]) -> None:
    url, cluster = restartable
    dep = init_pg_deployment(tmp_path / "data", url, analysts=2)
    api, base = start_api(dep, tmp_path / "api.log", workers=1)
    signer = start_signer(dep.data_dir, dep, tmp_path / "signer.log")
    load = Load()
    stop = threading.Event()
    loader = threading.Thread(target=_load, args=(base, dep, stop, load), daemon=True)
    probes: list[tuple[str, httpx.Response]] = []
    dropped: list[str] = []
    try:
        with httpx.Client(base_url=base, timeout=30.0) as client:
            _add_approved(client, dep, "http://before.restart.example.org/a.html")
            assert _publish(client, dep.analysts[0]) == 1
            loader.start()
            time.sleep(1.0)  # some load before the outage

            load.phase = "down"
            cluster.ctl("stop", "-m", "fast")
            isp = {"Authorization": f"Bearer {dep.isp}"}
            analyst = {"Authorization": f"Bearer {dep.analysts[0]}"}
            for name, method, path, kwargs in _probes(isp, analyst):
                try:
                    probes.append((name, client.request(method, path, **kwargs)))
                except httpx.TransportError as e:
                    dropped.append(f"{name}: {type(e).__name__}: {e}")
            # A fresh connection: a dropped keep-alive connection must not hide these.
            with httpx.Client(base_url=base, timeout=30.0) as fresh:
                readyz = fresh.get("/readyz")
                healthz = fresh.get("/healthz")

            load.phase = "recovering"
            cluster.ctl("start")
            _wait_online(cluster, url)
            deadline = time.monotonic() + RECOVERY_SECONDS
            while True:
                r = client.get("/v1/lists/main/statements", params={"since": 0}, headers=isp)
                if r.status_code == 200:
                    break
                assert time.monotonic() < deadline, f"the API did not recover: {r.status_code}"
                time.sleep(0.5)
            load.phase = "up-again"
            # The same processes serve writes and publish again.
            assert api.poll() is None, "the API process died"
            assert signer.poll() is None, "the signer process died"
            _add_approved(client, dep, "http://after.restart.example.org/a.html")
            assert _publish(client, dep.analysts[0]) >= 2
            ready_after = client.get("/readyz")
            time.sleep(1.0)
    finally:
        stop.set()
        if loader.is_alive():
            loader.join(timeout=60)
        stop_process(signer)
        stop_process(api)

    assert ready_after.status_code == 200, ready_after.text
    db = dep.database()
    try:
        view = verify_published_log(db, dep.root_vkey)
    finally:
        db.dispose()
    check_highwater(keys_dir_of(dep.data_dir), view)

    assert healthz.status_code == 200
    assert readyz.status_code == 503, readyz.text
    findings = [
        f"{name}: {r.status_code} {r.headers.get('content-type')} "
        f"Retry-After={r.headers.get('retry-after')} {r.text[:120]}"
        for name, r in probes
        if r.status_code != 503
        or "retry-after" not in r.headers
        or not r.headers.get("content-type", "").startswith("application/problem+json")
    ]
    findings += [f"probe connection dropped: {d}" for d in dropped]
    findings += [f"load connection dropped: {t}" for t in load.transport[:5]]
    bad = sorted(
        {(phase, path, status) for phase, path, status, _ in load.seen if status not in ALLOWED}
    )
    findings += [f"load got {status} on {path} ({phase})" for phase, path, status in bad]
    no_retry = sorted(
        {(path, phase) for phase, path, status, retry in load.seen if status == 503 and not retry}
    )
    findings += [
        f"load got 503 without Retry-After on {path} ({phase})" for path, phase in no_retry
    ]
    assert not findings, (
        "FINDING: during the outage the API did not answer 503 + Retry-After:\n"
        + "\n".join(findings)
    )
