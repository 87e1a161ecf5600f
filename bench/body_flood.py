"""Upload flood: server RSS under unauthenticated clients holding large bodies.

Issue 12, item 8: 50 concurrent clients without a token each start a 16 MiB
CSV upload and never finish it; the RSS of ``cleanfeed serve`` may grow by
at most 50 MB. Two shapes are measured: a declared ``Content-Length`` (the
server answers from the headers) and a chunked body (the server reads at
most the 64 KiB pre-authentication cap, then answers). RSS is read from
``/proc/PID/status`` while the uploads are held, and again once the clients
are gone. The pass/fail version of this is
``tests/attacks/test_unauthenticated_upload_flood.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from bench.common import BenchContext, Figure, Section, Target, cleanfeed_server, fmt

TARGET = Target("<=", 50.0, "<= 50 MB")

CLIENTS = 50
UPLOAD_BYTES = 16 * 1024 * 1024
CHUNK_BYTES = 256 * 1024
WRITE_SECONDS = 5.0
PATH = "/v1/lists/main/entries/bulk.csv"


def _rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc")


async def _client(port: int, chunked: bool, stop: asyncio.Event) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    framing = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {UPLOAD_BYTES}"
    head = (
        f"POST {PATH} HTTP/1.1\r\nHost: bench.test\r\nContent-Type: text/csv\r\n{framing}\r\n\r\n"
    )
    try:
        writer.write(head.encode("ascii"))
        sent = 0
        while sent < UPLOAD_BYTES - CHUNK_BYTES and not stop.is_set():
            data = b"x" * CHUNK_BYTES
            writer.write(b"%x\r\n%s\r\n" % (len(data), data) if chunked else data)
            await asyncio.wait_for(writer.drain(), WRITE_SECONDS)
            sent += CHUNK_BYTES
        await stop.wait()
    except (TimeoutError, ConnectionError, OSError):
        await stop.wait()  # refused or stalled: hold what is held
    finally:
        writer.transport.abort()
        del reader


async def _flood(pid: int, port: int, chunked: bool) -> tuple[float, float, float]:
    baseline = _rss(pid)
    stop = asyncio.Event()
    tasks = [asyncio.create_task(_client(port, chunked, stop)) for _ in range(CLIENTS)]
    peak = baseline
    for _ in range(30):  # ~3 s of held uploads
        await asyncio.sleep(0.1)
        peak = max(peak, _rss(pid))
    stop.set()
    for task in tasks:
        with contextlib.suppress(Exception):
            await task
    await asyncio.sleep(1.0)
    after = _rss(pid)
    mb = 1_000_000
    return baseline / mb, (peak - baseline) / mb, (after - baseline) / mb


def run(ctx: BenchContext) -> Section:
    """Measure RSS growth under the flood (see module doc)."""
    root = ctx.work / "bodies"
    root.mkdir(parents=True, exist_ok=True)
    figures = []
    rows = []
    with cleanfeed_server(root / "data", root / "server.log") as server:
        for chunked in (False, True):
            shape = "chunked" if chunked else "Content-Length"
            base, growth, after = asyncio.run(_flood(server.pid, server.port, chunked))
            ctx.log(f"bodies: {shape}: RSS +{growth:.1f} MB held, +{after:.1f} MB after")
            rows.append(f"| {shape} | {fmt(base, 1)} | {fmt(growth, 1)} | {fmt(after, 1)} |")
            figures.append(
                Figure(
                    f"bodies.rss_growth_{'chunked' if chunked else 'length'}",
                    f"RSS growth, {CLIENTS} unauthenticated 16 MiB uploads held ({shape})",
                    growth,
                    "MB",
                    [growth],
                    TARGET,
                    quick=ctx.quick,
                )
            )
    details = (
        "| body framing | baseline RSS (MB) | growth while held (MB) | growth after (MB) |\n"
        "|---|---|---|---|\n" + "\n".join(rows) + "\n\n"
        "Before issue 12 the middleware buffered each body up to the route's cap before "
        "the token was looked at: about 800 MB for this flood."
    )
    return Section("bodies", "Unauthenticated upload flood (server RSS)", figures, details)
