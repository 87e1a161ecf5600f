"""Block page throughput: requests per second of ``cleanfeed isp blockpage`` on one core.

Issue 18 item 2's target: 1,000 requests/s on one core. The real command
(one process, one event loop: one core) serves a state directory holding
``ENTRIES`` hashes (a verified snapshot of a :class:`tests.support.memory_log.MemoryLog`,
committed by the client's own store); ``wrk`` on loopback sends keep-alive
``GET`` requests, once with a listed host (451 and the page: the lookup,
the block_ref and the page rendering) and once with an unlisted host
(404: the lookup alone).

Usage::

    python -m bench.blockpage            # prints the figures
    python -m bench --only blockpage     # when registered in bench/__main__.py
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx

from bench.common import (
    BenchContext,
    Figure,
    Section,
    Target,
    bench_env,
    free_port,
    lua_headers_script,
    run_alone,
    run_wrk,
)

#: Listed hashes in the state (a mid-sized national list).
ENTRIES = 100_000
#: The listed host entry the 451 run asks for.
LISTED = "abuse-only.example.net"
TARGET = Target(">=", 1000.0, ">= 1,000 requests/s on one core (issue 18)")


def build_state(state_dir: Path, entries: int) -> None:
    """Commit a verified snapshot of ``entries`` hashes, one of them ``LISTED/``."""
    from clients.isp.store import StateStore
    from clients.isp.trusted import TrustedState
    from tests.support.memory_log import MemoryLog

    now = datetime.now(UTC)
    hashes = {hashlib.sha256(f"example.com/page-{i}".encode()).digest() for i in range(entries)}
    hashes.add(hashlib.sha256(f"{LISTED}/".encode()).digest())
    log = MemoryLog("cleanfeed.invalid/bench", now=now)
    log.publish(sorted(hashes), now=now)
    ts = TrustedState([log.root_vkey])
    t = now.timestamp()
    for i, note in enumerate(log.keyrings):
        ts.update_keyring(note, t, final=i == len(log.keyrings) - 1)
    size = log.version
    ts.apply_snapshot(
        log.checkpoint(now),
        log.statements[size - 1],
        log.inclusion_proof(size, size),
        log.range_hashes(size),
        b"".join(log.snapshot(size)),
        now=t,
    )
    with StateStore(state_dir) as store:
        store.commit(ts.record(), ts.changes())


def _wait(url: str, host: str, proc: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            httpx.get(url, headers={"Host": host}, timeout=5)
            return
        except httpx.TransportError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the block page did not start") from None
            time.sleep(0.1)


def run(ctx: BenchContext) -> Section:
    """Measure the block page with wrk (listed and unlisted hosts)."""
    duration = 5.0 if ctx.quick else 15.0
    state = ctx.work / "blockpage-state"
    if not (state / "state.db").exists():
        ctx.log(f"blockpage: building a state of {ENTRIES} entries")
        build_state(state, ENTRIES)
    port = free_port()
    argv = [
        str(Path(sys.executable).parent / "cleanfeed"),
        *("isp", "blockpage", "--state-dir", str(state), "--listen", f"127.0.0.1:{port}"),
    ]
    proc = subprocess.Popen(
        argv, env=bench_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    rates: dict[str, float] = {}
    raw: list[str] = []
    try:
        url = f"http://127.0.0.1:{port}/"
        _wait(url, LISTED, proc)
        for label, host in (("451 (listed host)", LISTED), ("404 (unlisted host)", "x.example")):
            script = lua_headers_script(ctx.work / f"blockpage-{port}.lua", {"Host": host})
            result = run_wrk(url, script, duration=duration, connections=50, threads=1)
            if result.socket_errors:
                raise RuntimeError(f"wrk: {result.socket_errors}")
            rates[label] = result.requests_per_second
            raw.append(
                f"- {label}: {result.requests_per_second:,.0f} requests/s, latency avg "
                f"{result.latency_avg}, p99 {result.latency_p99}"
            )
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    figures = [
        Figure(
            key=f"blockpage_{label.split()[0]}_rps",
            what=f"block page, {label}, requests/s on one core",
            value=rate,
            unit="req/s",
            runs=[rate],
            target=TARGET,
            quick=ctx.quick,
        )
        for label, rate in rates.items()
    ]
    body = (
        f"`cleanfeed isp blockpage` (one process, one core) over a state of {ENTRIES:,} "
        f"entries; wrk, 50 keep-alive connections, {duration:g} s per run.\n\n"
        + "\n".join(raw)
        + "\n"
    )
    return Section("blockpage", "Block page", figures, body)


if __name__ == "__main__":
    run_alone(run, __doc__)
