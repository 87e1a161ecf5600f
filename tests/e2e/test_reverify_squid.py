"""Re-verification through a real Squid egress on loopback (issue 16 item 4).

Squid (Debian's) runs the ``squid.conf`` of docs/reverification.md verbatim,
its port substituted, behind three test lines that let it reach the loopback
origin (the documented configuration refuses internal addresses, loopback
included, as it must in production). Squid resolves the test names from a
hosts file; the checker's own DNS goes to a dnspython server on loopback.
Nothing touches the internet.
"""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.api_testing import MAIN, ApiClient, Deployment, deployed
from support.processes import free_port
from support.release_helpers import world_readable_dir
from support.reverify_servers import DnsServer, Origin, running_origin
from support.squid import Squid, chown_to_squid, squid_or_skip

from signer.reverify import Reverifier, ReverifyConfig, VantagePoint

pytestmark = [pytest.mark.e2e, pytest.mark.tools]

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "reverification.md"
HOST = "origin.example.com"
#: Longest wait for Squid to listen.
SQUID_DEADLINE_SECONDS = 60.0


def documented_squid_conf() -> str:
    """The ``# squid.conf`` block of docs/reverification.md."""
    match = re.search(r"^```\n(# squid\.conf: cleanfeed re-verification egress\n.*?)^```",
                      DOC.read_text(), re.M | re.S)  # fmt: skip
    assert match, "docs/reverification.md lost its squid.conf block"
    return match.group(1)


@pytest.fixture
def squid(origin: Origin) -> Iterator[Squid]:
    binary = squid_or_skip()
    directory = world_readable_dir("cleanfeed-reverify-squid-")
    port = free_port()
    doc = documented_squid_conf()
    assert "http_port 127.0.0.1:3128\n" in doc
    (directory / "hosts").write_text(f"127.0.0.1 {HOST}\n")
    (directory / "squid.conf").write_text(
        # Test only: let the egress reach the loopback origin (first match wins).
        "acl test_client src 127.0.0.1/32\n"
        "acl test_origin dst 127.0.0.1/32\n"
        f"acl test_origin_port port {origin.port}\n"
        "http_access allow test_client test_origin test_origin_port\n"
        + doc.replace("http_port 127.0.0.1:3128\n", f"http_port 127.0.0.1:{port}\n")
        + "# --- test only: run unprivileged in this directory, names from the hosts file ---\n"
        f"pid_filename {directory}/squid.pid\n"
        f"cache_log {directory}/cache.log\n"
        f"coredump_dir {directory}\n"
        "visible_hostname squid.test\n"
        "shutdown_lifetime 0 seconds\n"
        f"hosts_file {directory}/hosts\n"
        "dns_nameservers 127.0.0.1\n"
    )
    chown_to_squid(directory)
    name = f"cfrv{uuid.uuid4().hex[:8]}"
    with (directory / "stderr.log").open("wb") as log:
        process = subprocess.Popen(
            [binary, "-N", "-n", name, "-f", str(directory / "squid.conf")],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    running = Squid(port, process, directory, name)
    try:
        deadline = time.monotonic() + SQUID_DEADLINE_SECONDS
        while True:
            stderr = (directory / "stderr.log").read_text()
            assert process.poll() is None, stderr + running.cache_log
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"squid did not listen:\n{running.cache_log}")
                time.sleep(0.1)
        yield running
    finally:
        running.stop()
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def origin() -> Iterator[Origin]:
    with running_origin() as o:
        yield o


@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[Deployment]:
    with deployed(tmp_path) as d:
        yield d


def test_checks_through_the_documented_squid_egress(
    deployment: Deployment, origin: Origin, squid: Squid
) -> None:
    dns_server = DnsServer({HOST: "127.0.0.1"})
    client = ApiClient(deployment.app)
    try:
        tokens = deployment.tokens
        ids = {}
        origin.modes.update({"/live.html": "200", "/gone.html": "410", "/stream": "endless"})
        for path in origin.modes:
            r = client.post(
                f"/v1/lists/{MAIN}/entries",
                json={"url": origin.url(HOST, path), "scope": "page", "reason": "hotline report"},
                token=tokens.alice,
            )
            assert r.status_code == 201, r.text
            ids[path] = r.json()["id"]
            a = client.post(f"/v1/lists/{MAIN}/entries/{ids[path]}/approve", token=tokens.bob)
            assert a.status_code == 200, a.text
        config = ReverifyConfig(
            vantage_points=(
                VantagePoint(
                    "squid", proxy=f"http://127.0.0.1:{squid.port}", resolver=dns_server.address
                ),
            ),
            per_host_interval=0.0,
            timeout=10.0,
        )
        run = Reverifier(deployment.db, config).run_list(MAIN)
        assert run.checked == 3, squid.cache_log
        got = {
            path: client.get(f"/v1/lists/{MAIN}/entries/{eid}", token=tokens.alice).json()[
                "verification"
            ]
            for path, eid in ids.items()
        }
        assert got["/live.html"]["status"] == "live", got
        assert got["/gone.html"]["status"] == "gone", got
        assert got["/stream"]["status"] == "live", got
        # Every request reached the origin through Squid, with the entry's host.
        assert {(h, p) for h, _, p in origin.requests} == {(HOST, p) for p in ids}
        (record,) = origin.endless
        origin.close()  # joins the origin's threads: the endless send loop ended
        # quick_abort_min 0: Squid dropped the upstream transfer when the
        # checker closed after the headers, long before the body's end.
        assert record.closed_by_peer, record
        assert record.sent < 16 * 1024 * 1024, record
    finally:
        client.close()
        dns_server.close()
