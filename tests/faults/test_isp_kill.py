"""kill -9 during an ISP sync leaves the old or the new list, never a mix.

Each trial runs the real ``cleanfeed isp sync --once`` in a subprocess
against a loopback HTTP server, and kills it with SIGKILL: either at a named
step of the code (``kill_runner.py`` replaces the ``clients.isp.steps`` seam
so the process SIGKILLs itself there: the real process dying, no mock) or
after a random delay. Then the
state directory must pass SQLite's integrity check, load as a consistent
trusted state, hold exactly the old or exactly the new version (its hash set
recomputes to the signed digest), and the next sync must succeed.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from support.isp_helpers import LIST, MemoryServer
from support.memory_log import MemoryLog

from clients.isp.store import StateStore
from clients.isp.trusted import TrustedState

ROOT = Path(__file__).resolve().parents[2]
#: Runs the CLI with the kill installed at one step.
KILL_RUNNER = Path(__file__).resolve().parent / "kill_runner.py"

#: Kill points in the order a sync reaches them (clients/isp/steps.py).
KILL_POINTS = (
    "sync:checkpoint",
    "sync:verified",
    "commit:begin",
    "commit:hashes",
    "commit:meta",
    "commit:before-commit",
    "commit:after-commit",
    "sync:committed",
    "sync:export",
)

#: Hashes in the list: more than one commit batch (10,000 rows), so
#: "commit:hashes" fires between batches of the snapshot import.
ENTRIES = 12_000


def _hash(i: int) -> bytes:
    import hashlib

    return hashlib.sha256(f"example.com/kill/{i}".encode()).digest()


class _Handler(BaseHTTPRequestHandler):
    server_version = "cleanfeed-test"
    memory: MemoryServer

    def do_GET(self) -> None:
        request = httpx.Request("GET", f"http://127.0.0.1{self.path}", headers=dict(self.headers))
        self.memory.now = datetime.now(UTC)
        response = self.memory.handle(request)
        body = response.read()
        self.send_response(response.status_code)
        for key, value in response.headers.items():
            if key.lower() not in ("content-length", "transfer-encoding", "connection"):
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[str, MemoryServer]]:
    log = MemoryLog("cleanfeed.invalid/kill", now=datetime.now(UTC))
    memory = MemoryServer(log)
    handler = type("Handler", (_Handler,), {"memory": memory})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", memory
    finally:
        httpd.shutdown()
        httpd.server_close()


def _sync(
    url: str,
    memory: MemoryServer,
    state: Path,
    kill_at: str | None,
    delay: float | None,
    export: Path,
) -> int:
    env = dict(os.environ)
    runner = [str(KILL_RUNNER), kill_at] if kill_at is not None else ["-m", "cleanfeed"]
    cmd = [
        sys.executable,
        *runner,
        "isp",
        "sync",
        "--once",
        "--server",
        url,
        "--list",
        LIST,
        "--token",
        "cf_isp_kill",
        "--root-key",
        memory.log.root_vkey,
        "--state-dir",
        str(state),
    ]
    config = state.parent / "isp.toml"
    config.write_text(f'[[exports]]\nformat = "hashes"\noutput = "{export}"\n')
    cmd += ["--config", str(config)]
    with subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    ) as proc:
        if delay is not None:
            try:
                proc.wait(timeout=delay)
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGKILL)
        _, err = proc.communicate(timeout=120)
        if proc.returncode not in (0, -signal.SIGKILL):
            raise AssertionError(f"sync failed: {err.decode(errors='replace')}")
        return proc.returncode


def _held(state: Path, root_vkey: str) -> tuple[int, frozenset[bytes]] | None:
    with StateStore(state, create=False) as store:
        assert store.integrity_check()
        record = store.load_record()
        if record is None:
            return None
        # Loads only if compact range, checkpoint and digest vector agree.
        TrustedState([root_vkey], record=record, hashes=store.hash_table())
        assert store.verify_local(record), "hash set does not give the signed digest"
        return record.version, frozenset(store.iter_hashes())


def _members_at(log: MemoryLog, version: int) -> frozenset[bytes]:
    return frozenset(log.snapshot(version))


def _trial(
    tmp: Path,
    url: str,
    memory: MemoryServer,
    rng: random.Random,
    kill_at: str | None,
    delay: float | None,
) -> None:
    log = memory.log
    state = tmp / "state"
    export = tmp / "hashes.txt"
    before = _held(state, log.root_vkey) if (state / "state.db").exists() else None
    # A new version: removals and additions.
    start = 1_000_000 + log.version * 100
    current = sorted(log.members)
    log.publish([_hash(start + i) for i in range(50)], current[:20], now=datetime.now(UTC))
    new_version = log.version
    _sync(url, memory, state, kill_at, delay, export)
    after = _held(state, log.root_vkey) if (state / "state.db").exists() else None
    # Entirely the state held before the sync, or entirely the new version.
    allowed = {before, (new_version, _members_at(log, new_version))}
    assert after in allowed, f"mixed state after kill at {kill_at or delay}"
    # Whatever happened, the next sync completes and lands on the new version.
    assert _sync(url, memory, state, None, None, export) == 0
    assert _held(state, log.root_vkey) == (new_version, _members_at(log, new_version))
    assert export.read_text().split() == sorted(x.hex() for x in log.members)
    del rng


def _seed(memory: MemoryServer) -> None:
    if memory.log.version == 0:
        memory.log.publish([_hash(i) for i in range(ENTRIES)], now=datetime.now(UTC))


@pytest.mark.parametrize("kill_at", ["sync:verified", "commit:hashes", "commit:before-commit"])
def test_kill_during_a_first_sync(
    tmp_path: Path, served: tuple[str, MemoryServer], kill_at: str
) -> None:
    url, memory = served
    _seed(memory)
    _trial(tmp_path, url, memory, random.Random(0), kill_at, None)


@pytest.mark.parametrize("kill_at", KILL_POINTS)
def test_kill_at_each_point_of_an_incremental_sync(
    tmp_path: Path, served: tuple[str, MemoryServer], kill_at: str
) -> None:
    url, memory = served
    _seed(memory)
    # A first, complete sync; then the killed one is incremental.
    _sync(url, memory, tmp_path / "state", None, None, tmp_path / "hashes.txt")
    _trial(tmp_path, url, memory, random.Random(0), kill_at, None)


@pytest.mark.slow
def test_kill_loop(tmp_path: Path, served: tuple[str, MemoryServer]) -> None:
    """>= 50 trials: named points and random delays, first and incremental syncs."""
    url, memory = served
    _seed(memory)
    rng = random.Random(20261128)
    for trial in range(60):
        tmp = tmp_path / f"t{trial % 6}"  # reuse state dirs: old state is often non-empty
        tmp.mkdir(exist_ok=True)
        if rng.random() < 0.5:
            _trial(tmp, url, memory, rng, rng.choice(KILL_POINTS), None)
        else:
            _trial(tmp, url, memory, rng, None, rng.uniform(0.05, 1.5))
