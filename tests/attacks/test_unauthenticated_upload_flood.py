"""Unauthenticated upload flood and slow bodies against a real ``cleanfeed serve``.

Issue 12, item 8. The server runs as users run it (``cleanfeed serve``,
uvicorn, a loopback port); the attackers are raw sockets:

- 50 clients without a token each start a 16 MiB CSV upload (the largest
  body cap) and hold it open without ever finishing. Before the fix the API
  read each body into memory before looking at the token: 800 MB of RSS.
  Now at most 64 KiB is read before authorisation: the server's RSS (read
  from ``/proc``) may grow by at most 50 MB, and is back near where it
  started once the clients are gone.
- a client *with* a valid analyst token that trickles its body is cut off
  (408 ``body_too_slow``) once it falls below ``body_min_rate``.

Memory is asserted; time is not (the wait loops only bound a test that
would otherwise hang).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from support.e2e_helpers import Server, serve, token

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc"),
]

#: Attacking clients and the body each one announces (the CSV route's cap).
CLIENTS = 50
UPLOAD_BYTES = 16 * 1024 * 1024

#: The issue's bound on the server's RSS growth under the flood.
MAX_RSS_GROWTH = 50 * 1024 * 1024

#: Bytes each client pushes per round; after each round RSS is checked, so a
#: server that buffers everything is caught before it eats the machine.
ROUND_BYTES = 1024 * 1024

#: Longest wait for one round's writes (a server that stopped reading makes
#: the writes block: that is a held upload, which is the point).
ROUND_SECONDS = 5.0

CSV_PATH = "/v1/lists/main/entries/bulk.csv"


def rss_bytes(pid: int) -> int:
    """Resident set size of process ``pid`` (Linux ``/proc/PID/status``)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS line")


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Server]:
    # A short grace period so the slow-body test needs seconds, not minutes.
    monkeypatch.setenv("CLEANFEED_BODY_GRACE_SECONDS", "1")
    s = serve(tmp_path / "cleanfeed-data", tmp_path / "serve.log")
    try:
        yield s
    finally:
        s.stop()


def _port(server: Server) -> int:
    return int(server.base.rsplit(":", 1)[1])


def _request_head(length: int, token: str | None = None) -> bytes:
    lines = [
        f"POST {CSV_PATH} HTTP/1.1",
        "Host: cleanfeed.test",
        "Content-Type: text/csv",
        f"Content-Length: {length}",
    ]
    if token is not None:
        lines.append(f"Authorization: Bearer {token}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii")


class Attacker:
    """One raw connection holding an unfinished upload."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.sent = 0
        self.cut_off = False

    async def push(self, size: int) -> None:
        """Send ``size`` more body bytes (never the last one); note a closed connection."""
        if self.cut_off:
            return
        size = min(size, UPLOAD_BYTES - 1 - self.sent)
        try:
            self.writer.write(b"x" * size)
            await asyncio.wait_for(self.writer.drain(), ROUND_SECONDS)
            self.sent += size
        except TimeoutError:
            pass  # the server stopped reading: the upload is held
        except (ConnectionError, OSError):
            self.cut_off = True

    def close(self) -> None:
        self.writer.transport.abort()


async def _flood(server: Server) -> tuple[int, int, int]:
    """Run the flood; return (baseline RSS, peak RSS while held, RSS after)."""
    pid = server.process.pid
    baseline = rss_bytes(pid)
    attackers = []
    for _ in range(CLIENTS):
        reader, writer = await asyncio.open_connection("127.0.0.1", _port(server))
        writer.write(_request_head(UPLOAD_BYTES))
        attackers.append(Attacker(reader, writer))
    peak = baseline
    try:
        for _ in range(UPLOAD_BYTES // ROUND_BYTES):
            await asyncio.gather(*(a.push(ROUND_BYTES) for a in attackers))
            peak = max(peak, rss_bytes(pid))
            if peak - baseline > MAX_RSS_GROWTH or all(a.cut_off for a in attackers):
                break  # failed already, or every upload was refused
        # Held: every client that was not cut off still has its upload open.
        peak = max(peak, rss_bytes(pid))
    finally:
        for a in attackers:
            a.close()
    # Memory comes back once the connections are gone (bounded wait).
    after = rss_bytes(pid)
    for _ in range(50):
        if after - baseline <= MAX_RSS_GROWTH // 5:
            break
        await asyncio.sleep(0.1)
        after = rss_bytes(pid)
    return baseline, peak, after


@pytest.mark.e2e
def test_unauthenticated_upload_flood_does_not_hold_memory(server: Server) -> None:
    baseline, peak, after = asyncio.run(_flood(server))
    mib = 1024 * 1024
    assert peak - baseline <= MAX_RSS_GROWTH, (
        f"RSS grew by {(peak - baseline) / mib:.0f} MiB under {CLIENTS} unauthenticated "
        f"16 MiB uploads (limit {MAX_RSS_GROWTH // mib} MiB)"
    )
    assert after - baseline <= MAX_RSS_GROWTH // 5, (
        f"RSS still {(after - baseline) / mib:.0f} MiB above its baseline after the flood"
    )
    # The server still serves.
    assert httpx.get(f"{server.base}/healthz", timeout=10.0).status_code == 200


async def _unauthenticated_answer(server: Server) -> tuple[int, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", _port(server))
    try:
        writer.write(_request_head(UPLOAD_BYTES))
        with contextlib.suppress(ConnectionError):
            await writer.drain()
        status = await asyncio.wait_for(reader.readline(), 30.0)
        rest = await asyncio.wait_for(reader.read(), 30.0)  # the server closes
        return int(status.split()[1]), rest
    finally:
        writer.transport.abort()


@pytest.mark.e2e
def test_unauthenticated_large_upload_is_refused_before_its_body(server: Server) -> None:
    # Not a byte of the body is sent: the answer comes from the headers alone.
    status, rest = asyncio.run(_unauthenticated_answer(server))
    assert status == 401
    assert b"unauthenticated" in rest


async def _trickle(server: Server, analyst: str) -> tuple[int, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", _port(server))
    try:
        writer.write(_request_head(1000, token=analyst) + b"url,scope,reason\n")
        await writer.drain()
        # One byte now and then: far below 8 KiB/s once the 1 s grace is over.
        for _ in range(600):
            try:
                line = await asyncio.wait_for(reader.readline(), 0.5)
            except TimeoutError:
                writer.write(b"x")
                await writer.drain()
                continue
            rest = await asyncio.wait_for(reader.read(), 30.0)
            return int(line.split()[1]), rest
        raise AssertionError("a body trickled for 5 minutes was never cut off")
    finally:
        writer.transport.abort()


@pytest.mark.e2e
def test_slow_body_from_authorised_client_is_cut_off(server: Server) -> None:
    analyst = token(server, name="slow-analyst", role="analyst")
    status, rest = asyncio.run(_trickle(server, analyst))
    assert status == 408
    assert b"body_too_slow" in rest
