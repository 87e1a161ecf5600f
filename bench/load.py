"""Load: 500 simulated ISPs polling one API worker for 60 s (issue 7).

Pass criterion: zero errors other than 429 with ``Retry-After``; the latency
percentiles go into docs/benchmarks.md. ``cleanfeed serve`` runs with its
defaults (one worker, embedded signer, rate limit 2 requests/s per token
with a burst of 120); each simulated ISP has its own ISP token.

Each ISP, a task on one asyncio loop over its own keep-alive connection (a
minimal HTTP/1.1 client on asyncio streams, so the load generator stays
cheap next to the server on a 2-core machine):

1. fetches the keyring, the checkpoint and the statements it lacks;
2. then polls the checkpoint with ``If-None-Match`` every ``interval``
   seconds (uniformly jittered by +-50 %), far more often than a real ISP
   (minutes) so that 500 of them make a few hundred requests a second;
   on a new checkpoint it fetches the new statements (paged with ``next``);
3. honours ``Retry-After`` on 429.

A few ISPs (``--greedy``) poll without pausing, to drive the rate limiter.
Meanwhile two analysts add, approve and publish a few entries every 10 s
through the same worker, so the ISPs see new versions.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections import Counter
from collections.abc import Awaitable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import deploy
from bench.common import (
    BenchContext,
    Figure,
    Section,
    Target,
    cleanfeed_server,
    fmt,
    load_average,
    percentile,
    run_alone,
)

ERRORS_TARGET = Target("==", 0, "0 errors other than 429 + Retry-After")
ISPS = 500
GREEDY = 5
INTERVAL = 1.0
PUBLISH_EVERY = 10.0
URLS_PER_PUBLISH = 10
REQUEST_TIMEOUT = 30.0
#: Most error examples kept for the report.
MAX_ERROR_EXAMPLES = 10


class HttpConnection:
    """One keep-alive HTTP/1.1 connection (Content-Length and chunked bodies)."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def request(
        self, method: str, path: str, headers: dict[str, str], body: bytes = b""
    ) -> tuple[int, dict[str, str], bytes]:
        """Send one request, read the whole response.

        Like any HTTP client with keep-alive (httpx, browsers), a request on
        a reused connection that the server had already closed as idle
        (uvicorn closes after 5 s; EOF before a single response byte) is
        sent again once on a new connection. Nothing was processed then.
        """
        reused = self._writer is not None
        try:
            return await self._request_once(method, path, headers, body)
        except asyncio.IncompleteReadError as e:
            if not (reused and not e.partial):
                raise
        return await self._request_once(method, path, headers, body)

    async def _request_once(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        if self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        assert self._reader is not None
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        if body or method == "POST":
            lines.append(f"Content-Length: {len(body)}")
        self._writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        try:
            head = await self._reader.readuntil(b"\r\n\r\n")
            status_line, *header_lines = head.decode("latin-1").split("\r\n")
            status = int(status_line.split(" ", 2)[1])
            response_headers: dict[str, str] = {}
            for line in header_lines:
                if line:
                    name, _, value = line.partition(":")
                    response_headers[name.strip().lower()] = value.strip()
            if response_headers.get("transfer-encoding", "").lower() == "chunked":
                data = await self._chunked()
            else:
                length = int(response_headers.get("content-length", "0"))
                data = await self._reader.readexactly(length) if length else b""
        except BaseException:
            self.close()
            raise
        if response_headers.get("connection", "").lower() == "close":
            self.close()
        return status, response_headers, data

    async def _chunked(self) -> bytes:
        assert self._reader is not None
        parts: list[bytes] = []
        while True:
            size = int((await self._reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                await self._reader.readuntil(b"\r\n")
                return b"".join(parts)
            parts.append(await self._reader.readexactly(size))
            await self._reader.readexactly(2)

    def close(self) -> None:
        """Drop the connection (the next request opens a new one)."""
        if self._writer is not None:
            self._writer.close()
        self._reader = self._writer = None


@dataclass
class Stats:
    """Everything the load run observed."""

    latencies: dict[str, list[float]] = field(default_factory=dict)
    statuses: Counter[str] = field(default_factory=Counter)
    errors: int = 0
    error_examples: list[str] = field(default_factory=list)
    rate_limited: int = 0
    versions_seen: Counter[int] = field(default_factory=Counter)
    published: list[int] = field(default_factory=list)
    #: (seconds since the start, latency) of every response, for the timeline.
    timeline: list[tuple[float, float]] = field(default_factory=list)
    #: Seconds since the start at which each publish returned.
    publish_times: list[float] = field(default_factory=list)
    started: float = field(default_factory=time.perf_counter)

    def error(self, text: str) -> None:
        self.errors += 1
        if len(self.error_examples) < MAX_ERROR_EXAMPLES:
            self.error_examples.append(text)


class Client:
    """Requests of one simulated party with accounting and ``Retry-After``."""

    def __init__(self, host: str, port: int, token: str, stats: Stats, deadline: float) -> None:
        self.conn = HttpConnection(host, port)
        self.auth = {"Authorization": f"Bearer {token}"}
        self.stats = stats
        self.deadline = deadline

    async def call(
        self,
        kind: str,
        method: str,
        path: str,
        expected: tuple[int, ...],
        headers: dict[str, str] | None = None,
        body: Any = None,
    ) -> tuple[int, dict[str, str], bytes] | None:
        """One request; None when it failed or was rate-limited (after waiting)."""
        all_headers = {**self.auth, **(headers or {})}
        payload = b""
        if body is not None:
            payload = json.dumps(body).encode()
            all_headers["Content-Type"] = "application/json"
        started = time.perf_counter()
        try:
            status, h, data = await asyncio.wait_for(
                self.conn.request(method, path, all_headers, payload), REQUEST_TIMEOUT
            )
        except (
            OSError,
            asyncio.IncompleteReadError,
            asyncio.LimitOverrunError,
            ValueError,
            TimeoutError,
        ) as e:
            self.stats.error(f"{kind}: {type(e).__name__}: {e}")
            return None
        elapsed = time.perf_counter() - started
        self.stats.timeline.append((started - self.stats.started, elapsed))
        label = f"{kind} {status}"
        self.stats.statuses[label] += 1
        self.stats.latencies.setdefault(label, []).append(elapsed)
        if status == 429:
            retry = h.get("retry-after")
            if retry is None or not retry.isdigit():
                self.stats.error(f"{kind}: 429 without a valid Retry-After ({retry!r})")
                return None
            self.stats.rate_limited += 1
            await asyncio.sleep(min(float(retry), max(0.0, self.deadline - time.monotonic())))
            return None
        if status not in expected:
            self.stats.error(f"{kind}: unexpected {status}: {data[:200]!r}")
            return None
        return status, h, data


async def isp(
    n: int,
    host: str,
    port: int,
    token: str,
    stats: Stats,
    deadline: float,
    greedy: bool,
    ramp: float,
) -> None:
    """One simulated ISP (see the module doc)."""
    rnd = random.Random(n)
    client = Client(host, port, token, stats, deadline)
    base = f"/v1/lists/{deploy.LIST}"
    await asyncio.sleep(rnd.uniform(0, ramp))
    held = 0
    etag = ""
    try:
        await client.call("keyring", "GET", f"{base}/keyring", (200,))
        while time.monotonic() < deadline:
            headers = {"If-None-Match": etag} if etag else {}
            answer = await client.call(
                "checkpoint", "GET", f"{base}/checkpoint", (200, 304), headers
            )
            if answer is not None and answer[0] == 200:
                etag = answer[1].get("etag", "")
                size = int(answer[2].split(b"\n", 2)[1])
                while held < size and time.monotonic() < deadline:
                    page = await client.call(
                        "statements",
                        "GET",
                        f"{base}/statements?since={held}",
                        (200,),
                        {"Accept-Encoding": "identity"},
                    )
                    if page is None:
                        break
                    doc = json.loads(page[2])
                    held += len(doc["statements"])
                    if doc["next"] is None:
                        held = max(held, size)
                stats.versions_seen[held] += 1
            if not greedy:
                await asyncio.sleep(INTERVAL * rnd.uniform(0.5, 1.5))
    finally:
        client.conn.close()


async def analysts(
    host: str,
    port: int,
    adder: str,
    approver: str,
    stats: Stats,
    deadline: float,
    first_index: int,
) -> None:
    """Add, approve and publish a few entries every PUBLISH_EVERY seconds."""
    a = Client(host, port, adder, stats, deadline)
    b = Client(host, port, approver, stats, deadline)
    base = f"/v1/lists/{deploy.LIST}"
    index = first_index
    try:
        while time.monotonic() + PUBLISH_EVERY < deadline:
            await asyncio.sleep(PUBLISH_EVERY)
            rows = [
                {"url": deploy.url_of(i), "scope": "page", "reason": "load test"}
                for i in range(index, index + URLS_PER_PUBLISH)
            ]
            index += URLS_PER_PUBLISH
            added = await a.call("analyst bulk", "POST", f"{base}/entries/bulk", (200,), body=rows)
            if added is None:
                continue
            for row in json.loads(added[2])["results"]:
                await b.call(
                    "analyst approve",
                    "POST",
                    f"{base}/entries/{row['id']}/approve",
                    (200,),
                    body={},
                )
            done = await b.call("analyst publish", "POST", f"{base}/publish", (200, 202), body={})
            if done is not None:
                stats.published.append(int(json.loads(done[2])["version"]))
                stats.publish_times.append(time.perf_counter() - stats.started)
    finally:
        a.conn.close()
        b.conn.close()


def _worst_seconds(
    timeline: list[tuple[float, float]], top: int = 5
) -> list[tuple[int, int, float, float]]:
    """(second, requests, p50 ms, p99 ms) of the seconds with the highest p99."""
    by_second: dict[int, list[float]] = {}
    for start, latency in timeline:
        by_second.setdefault(int(start), []).append(latency)
    rows = []
    for sec, xs in by_second.items():
        xs.sort()
        rows.append((sec, len(xs), percentile(xs, 50) * 1000, percentile(xs, 99) * 1000))
    rows.sort(key=lambda r: -r[3])
    return sorted(rows[:top])


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    import os

    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _drive(
    host: str,
    port: int,
    tokens: list[str],
    adder: str,
    approver: str,
    duration: float,
) -> Stats:
    stats = Stats()
    deadline = time.monotonic() + duration
    ramp = min(2.0, duration / 10)
    tasks: list[Awaitable[None]] = [
        isp(n, host, port, t, stats, deadline, n < GREEDY, ramp) for n, t in enumerate(tokens)
    ]
    tasks.append(analysts(host, port, adder, approver, stats, deadline, 300_000_000))
    await asyncio.gather(*tasks)
    return stats


def _run_loop(coro: Coroutine[Any, Any, Stats]) -> Stats:
    """Run the load on uvloop when installed (a cheaper load generator), else asyncio."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coro)


def run(ctx: BenchContext) -> Section:
    """Drive the load and report errors and latency percentiles."""
    duration = 15.0 if ctx.quick else 60.0
    root = ctx.work / "load"
    root.mkdir(parents=True, exist_ok=True)
    dep = deploy.create(root / "data")
    deploy.curate(dep, 100)
    deploy.publish(dep)
    tokens = dep.tokens("isp", "isp-load", ISPS)
    adder = dep.token("analyst", "analyst-load-a", lists=())
    approver = dep.token("analyst", "analyst-load-b", lists=())
    dep.close()
    load_before = load_average()
    with cleanfeed_server(dep.data_dir, root / "server.log") as server:
        cpu_before = _cpu_seconds(server.pid)
        started = time.perf_counter()
        stats = _run_loop(_drive("127.0.0.1", server.port, tokens, adder, approver, duration))
        wall = time.perf_counter() - started
        server_cpu = (_cpu_seconds(server.pid) - cpu_before) / wall
    total = sum(stats.statuses.values())
    ctx.log(
        f"load: {total:,} responses in {wall:.0f} s, {stats.errors} errors, "
        f"{stats.rate_limited} rate-limited"
    )
    all_latencies = sorted(x for xs in stats.latencies.values() for x in xs)
    polls = sorted(stats.latencies.get("checkpoint 304", []))
    figures = [
        Figure(
            "load.errors",
            f"{ISPS} simulated ISPs for {duration:.0f} s: errors other than 429 + Retry-After",
            stats.errors,
            "errors",
            [stats.errors],
            ERRORS_TARGET,
            note="; ".join(stats.error_examples[:3]),
            quick=ctx.quick,
        ),
        Figure(
            "load.rps",
            "responses per second (one worker)",
            total / wall,
            "req/s",
            [total / wall],
            quick=ctx.quick,
        ),
        Figure(
            "load.p50",
            "latency p50, all requests",
            percentile(all_latencies, 50) * 1000,
            "ms",
            quick=ctx.quick,
        ),
        Figure(
            "load.p99",
            "latency p99, all requests",
            percentile(all_latencies, 99) * 1000,
            "ms",
            quick=ctx.quick,
        ),
        Figure(
            "load.poll_p99",
            "latency p99, up-to-date polls (304)",
            percentile(polls, 99) * 1000,
            "ms",
            quick=ctx.quick,
        ),
    ]
    rows = []
    worst = _worst_seconds(stats.timeline)
    for label in sorted(stats.latencies):
        xs = sorted(stats.latencies[label])
        rows.append(
            f"| {label} | {len(xs):,} | "
            + " | ".join(fmt(percentile(xs, p) * 1000) for p in (50, 90, 99, 99.9))
            + f" | {fmt(xs[-1] * 1000)} |"
        )
    details = (
        f"{ISPS} ISPs ({GREEDY} of them polling without pause), each with its own token and "
        f"connection, poll interval {INTERVAL:g} s +-50 %, for {duration:.0f} s; two analysts "
        f"publishing {URLS_PER_PUBLISH} entries every {PUBLISH_EVERY:g} s "
        f"({len(stats.published)} versions published: {stats.published}). Server: "
        "`cleanfeed serve` defaults (one worker, embedded signer, rate limit 2/s, burst 120). "
        f"Server CPU: {server_cpu:.0%} of one core. {stats.rate_limited} responses were 429 "
        f"(all with Retry-After, honoured). Errors: {stats.errors}"
        + (f" (e.g. {stats.error_examples})" if stats.error_examples else "")
        + f". Load average before: {load_before}.\n\n"
        "| request and status | count | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms |\n"
        "|---|---:|---:|---:|---:|---:|---:|\n"
        + "\n".join(rows)
        + "\n\nWhere the tail comes from: the 5 one-second windows (by request start) with "
        "the highest p99, next to the times the analysts' publishes returned ("
        + ", ".join(f"{t:.1f} s" for t in stats.publish_times)
        + ").\n\n| second | requests | p50 ms | p99 ms |\n|---:|---:|---:|---:|\n"
        + "".join(f"| {sec} | {n:,} | {fmt(p50)} | {fmt(p99)} |\n" for sec, n, p50, p99 in worst)
    )
    return Section("load", "Load: 500 simulated ISPs, one worker", figures, details)


if __name__ == "__main__":
    run_alone(run, __doc__)
