"""Helpers of the end-to-end tests: ``cleanfeed`` processes on loopback, and HTTP calls.

The servers run with ``CLEANFEED_SCHEDULE=false`` so that only a test's
``POST …/publish`` calls cut versions: version numbers are then exact, with
no race against the embedded signer's timer.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from support.processes import free_port, stop_process

#: Longest wait for a server to answer /readyz (first start generates keys
#: and migrates the database).
STARTUP_DEADLINE_SECONDS = 60.0

#: Longest a CLI subprocess may run (a sync of a few versions takes < 1 s).
CLI_TIMEOUT_SECONDS = 60.0

#: Files of the embedded default's data directory (docs/architecture.md).
DB_FILE = "cleanfeed.db"
ADMIN_TOKEN_FILE = "admin-token"
LIST = "main"

# --- processes ---------------------------------------------------------------------


def serve_argv(data_dir: Path, port: int, *extra: str) -> list[str]:
    """argv of ``cleanfeed serve`` on loopback ``port`` (plus ``extra`` flags)."""
    return [
        sys.executable,
        "-m",
        "cleanfeed",
        "serve",
        "--data-dir",
        str(data_dir),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        *extra,
    ]


def env(*, schedule: bool = False) -> dict[str, str]:
    """The environment of every process: JSON logs, no schedule unless asked for."""
    env = {
        **os.environ,
        "CLEANFEED_SCHEDULE": "true" if schedule else "false",
        "CLEANFEED_JSON_LOGS": "true",
    }
    # The ISP client reads its token from the environment when set: never
    # let one from the caller's shell leak into these runs.
    env.pop("CLEANFEED_TOKEN", None)
    return env


@dataclass
class Server:
    """A running ``cleanfeed serve`` on a loopback port."""

    base: str
    data_dir: Path
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def admin_token(self) -> str:
        return (self.data_dir / ADMIN_TOKEN_FILE).read_text().strip()

    @property
    def root_vkey(self) -> str:
        """The root verifier key of list :data:`LIST`, as an ISP pins it."""
        return (self.data_dir / "keys" / LIST / "root.vkey").read_text().strip()

    def stop(self) -> None:
        stop_process(self.process)


def serve(data_dir: Path, log: Path, *extra: str, schedule: bool = False) -> Server:
    """Start ``cleanfeed serve`` (plus ``extra`` flags) and wait until /readyz answers 200.

    ``schedule``: let the embedded signer publish on its timer (version
    numbers are then only a lower bound).
    """
    port = free_port()
    # Output goes to a file: a pipe nobody reads would block a chatty server.
    with log.open("ab") as sink:
        process = subprocess.Popen(
            serve_argv(data_dir, port, *extra),
            stdout=sink,
            stderr=subprocess.STDOUT,
            env=env(schedule=schedule),
        )
    server = Server(f"http://127.0.0.1:{port}", data_dir, process, log)
    deadline = time.monotonic() + STARTUP_DEADLINE_SECONDS
    while True:
        if process.poll() is not None:
            pytest.fail(f"cleanfeed serve exited with {process.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(f"{server.base}/readyz", timeout=2.0).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            server.stop()
            pytest.fail(f"cleanfeed serve did not become ready:\n{log.read_text()}")
        time.sleep(0.2)


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cleanfeed", *args],
        capture_output=True,
        text=True,
        env=env(),
        timeout=CLI_TIMEOUT_SECONDS,
        check=False,
    )


# --- API helpers --------------------------------------------------------------------


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def token(server: Server, **body: object) -> str:
    r = httpx.post(
        f"{server.base}/v1/tokens", json=body, headers=auth(server.admin_token), timeout=30
    )
    assert r.status_code == 201, r.text
    token: str = r.json()["token"]
    return token


def add_and_approve(server: Server, alice: str, bob: str, url: str, scope: str) -> None:
    with httpx.Client(base_url=server.base, timeout=30.0) as client:
        added = client.post(
            f"/v1/lists/{LIST}/entries",
            json={"url": url, "scope": scope, "reason": "backup/restore test"},
            headers=auth(alice),
        )
        assert added.status_code == 201, added.text
        entry_id = added.json()["id"]
        approved = client.post(f"/v1/lists/{LIST}/entries/{entry_id}/approve", headers=auth(bob))
        assert approved.status_code == 200, approved.text


def publish(server: Server, analyst: str) -> httpx.Response:
    return httpx.post(
        f"{server.base}/v1/lists/{LIST}/publish", json={}, headers=auth(analyst), timeout=60
    )


def checkpoint_size(server: Server, isp: str) -> int:
    r = httpx.get(f"{server.base}/v1/lists/{LIST}/checkpoint", headers=auth(isp), timeout=30)
    assert r.status_code == 200, r.text
    # c2sp.org/tlog-checkpoint: origin, then the tree size, then the root.
    return int(r.text.split("\n")[1])


def isp_sync(
    server: Server, token: str, root_vkey: str, state: Path
) -> tuple[int, dict[str, object]]:
    proc = cli(
        "isp",
        "sync",
        "--once",
        "--json",
        "--server",
        server.base,
        "--token",
        token,
        "--list",
        LIST,
        "--root-key",
        root_vkey,
        "--state-dir",
        str(state),
    )
    assert proc.stdout.strip(), f"no JSON outcome (exit {proc.returncode}): {proc.stderr}"
    outcome: dict[str, object] = json.loads(proc.stdout)
    return proc.returncode, outcome
