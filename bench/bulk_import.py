"""Bulk import: 100,000 URLs through the API in batches (SQLite).

Issue 8 target: >= 2,000 URLs/s. ``cleanfeed serve`` (default settings,
embedded signer) on a fresh data directory; one analyst token posts
``POST /v1/lists/main/entries/bulk`` with JSON batches of 1,000 rows (the
size the request body cap is made for) one after the other over one
keep-alive connection; every row must come back ``added``. The rate is
URLs / wall time of all batches.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx

from bench import deploy
from bench.common import (
    IDLE_MARKERS,
    BenchContext,
    Figure,
    Section,
    Target,
    cleanfeed_server,
    fmt,
    fmt_runs,
    load_average,
    parse_pyspy_raw,
    pyspy_record,
    run_alone,
    summarise_collapsed,
)

RATE_TARGET = Target(">=", 2_000, ">= 2,000 URLs/s")
BATCH = 1_000
#: URL indexes of the import start here, far from the other benchmarks' URLs.
FIRST_INDEX = 200_000_000


def _batch(start: int) -> list[dict[str, str]]:
    return [
        {
            "url": deploy.url_of(i),
            "scope": "page",
            "reason": "bulk import benchmark",
            "reference": f"BENCH-{i}",
        }
        for i in range(start, start + BATCH)
    ]


def _import(client: httpx.Client, base: str, token: str, first: int, batches: int) -> list[float]:
    """POST ``batches`` batches; return each batch's seconds.

    Raises:
        RuntimeError: a batch was refused or a row not added.
    """
    url = f"{base}/v1/lists/{deploy.LIST}/entries/bulk"
    headers = {"Authorization": f"Bearer {token}"}
    times = []
    for b in range(batches):
        body = _batch(first + b * BATCH)
        started = time.perf_counter()
        r = client.post(url, json=body, headers=headers)
        times.append(time.perf_counter() - started)
        if r.status_code != 200:
            raise RuntimeError(f"bulk batch {b}: {r.status_code} {r.text[:500]}")
        results = r.json()["results"]
        added = sum(1 for x in results if x["status"] == "added")
        if added != BATCH:
            raise RuntimeError(f"bulk batch {b}: {added} of {BATCH} added: {results[:2]}")
    return times


def run(ctx: BenchContext) -> Section:
    """Import the URLs and time it (see module doc)."""
    total = 20_000 if ctx.quick else 100_000
    batches = total // BATCH
    root = ctx.work / "bulk"
    root.mkdir(parents=True, exist_ok=True)
    dep = deploy.create(root / "data")
    token = dep.token("analyst", "analyst-import", lists=())
    dep.close()
    load_before = load_average()
    profiles: list[str] = []
    with (
        cleanfeed_server(dep.data_dir, root / "server.log") as server,
        httpx.Client(timeout=120) as client,
    ):
        # Warm-up: one small batch of other URLs (imports, first connection).
        _import(client, server.base, token, FIRST_INDEX - 10 * BATCH, 1)
        started = time.perf_counter()
        times = _import(client, server.base, token, FIRST_INDEX, batches)
        seconds = time.perf_counter() - started
        rate = total / seconds
        ctx.log(f"bulk import: {total:,} URLs in {seconds:.1f} s = {rate:,.0f} URLs/s")
        figure = Figure(
            "bulk.rate",
            f"bulk import of {total:,} URLs through the API, batches of {BATCH:,}",
            rate,
            "URLs/s",
            [BATCH / t for t in times],
            RATE_TARGET,
            note="one run (figure: URLs / total seconds; runs: per batch)",
            quick=ctx.quick,
        )
        if ctx.profile and figure.met is False:
            profiles.append(_profile(ctx, client, server, token, root))
    first_last = (times[: len(times) // 10], times[-(len(times) // 10) :])
    details = (
        f"{batches} batches of {BATCH:,} rows (url, scope page, reason, reference), "
        "sequential over one connection, after one warm-up batch. Server: `cleanfeed serve` "
        f"with its defaults. Total {fmt(seconds)} s. Batch seconds, first tenth: "
        f"{fmt_runs(first_last[0])}; last tenth: {fmt_runs(first_last[1])} (a growing "
        f"batch time would mean a cost that grows with the list). Load average before: "
        f"{load_before}.\n"
    )
    return Section("bulk", "Bulk import", [figure], details, profiles=profiles)


def _profile(
    ctx: BenchContext, client: httpx.Client, server: object, token: str, root: Path
) -> str:
    """py-spy the server while a few more batches go in."""
    from bench.common import ServerProcess

    assert isinstance(server, ServerProcess)
    ctx.log("bulk import: profiling the server (py-spy)")
    out = root / "bulk.pyspy.txt"
    seconds = 8
    holder: dict[str, Path | None] = {}
    thread = threading.Thread(
        target=lambda: holder.update(path=pyspy_record(server.pid, seconds, out))
    )
    thread.start()
    deadline = time.monotonic() + seconds
    start = FIRST_INDEX + 10_000_000
    while time.monotonic() < deadline:
        _import(client, server.base, token, start, 1)
        start += BATCH
    thread.join()
    path = holder.get("path")
    if path is None:
        return "**server during bulk import**: py-spy could not attach\n"
    return summarise_collapsed(
        parse_pyspy_raw(path), "`cleanfeed serve` during bulk import (py-spy)", idle=IDLE_MARKERS
    )


if __name__ == "__main__":
    run_alone(run, __doc__)
