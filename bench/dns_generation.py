"""dns-serve: one zone generation of a 1,000-change version, at 1,000,000 vs 10,000 entries.

Issue 19 item 4 ("the IXFR journal for RPZ"): applying a 1,000-change
version costs at most 2x at 1,000,000 entries what it costs at 10,000.

In process, no network: a client state of N host entries with plaintext
(committed by the client's own store, as ``cleanfeed isp sync`` does),
dns-serve's :class:`clients.isp.dnsserve.server.ZoneServer` over it, its
first generation rendered whole (not measured: once per journal). Each run
commits a version of 500 additions and 500 removals and times
``ZoneServer.refresh``: reading the state's change log, re-rendering the
touched groups, diffing them, committing the journal transaction and
preparing the IXFR reply, i.e. everything between the sync's commit and
the new serial being served (the NOTIFY and transfer are in ``dns_ixfr``).

Hosts are four to a group (``hN.dK.example``: a group is the host's last
two labels), so a version touches about 1,000 groups whatever N; a group
holding a large share of the list is re-rendered whole (O(group)).
"""

from __future__ import annotations

import time
from typing import Any

import dns.name

from bench.common import (
    BenchContext,
    Figure,
    Section,
    Target,
    fmt,
    fmt_runs,
    load_average,
    median,
    run_alone,
)
from bench.dns_ixfr import CHANGES, _grouped_expr, _State

TARGET = Target("<=", 2.0, "<= 2.0")
ZONE = "rpz.bench.invalid"
REPEATS = 5


def _generations(ctx: BenchContext, entries: int) -> tuple[list[float], list[float], float, int]:
    """Seconds per 1,000-change generation (all; journal part), first render, records."""
    from clients.isp.dnsserve.acl import Admission
    from clients.isp.dnsserve.server import ServeConfig, ZoneServer

    state_dir = ctx.work / f"dns-generation-{entries}"
    ctx.log(f"dns_generation: building a state of {entries:,} entries")
    state = _State(state_dir, entries, _grouped_expr)
    config = ServeConfig(state_dir, "127.0.0.1", 0, dns.name.from_text(ZONE), Admission(None, ()))
    server = ZoneServer(config)
    runs: list[float] = []
    journal_runs: list[float] = []
    follow = server.journal.follow

    def timed_follow(*args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return follow(*args, **kwargs)
        finally:
            journal_runs.append(time.perf_counter() - t0)

    server.journal.follow = timed_follow  # type: ignore[method-assign]
    try:
        t0 = time.perf_counter()
        server.refresh(state.store)
        first = time.perf_counter() - t0
        journal_runs.clear()
        ctx.log(f"dns_generation: {entries:,} entries, first (whole) render {first:.1f} s")
        for _ in range(REPEATS):
            state.step()
            t0 = time.perf_counter()
            delta = server.refresh(state.store)
            runs.append(time.perf_counter() - t0)
            if delta is None or server.journal.last_groups is None:
                raise RuntimeError("the version was not applied incrementally")
            if delta.size != 2 * CHANGES:
                raise RuntimeError(f"expected {2 * CHANGES} changed records, got {delta.size}")
        assert server.current is not None
        records = server.current.count
    finally:
        server.journal.close()
        state.store.close()
    return runs, journal_runs, first, records


def run(ctx: BenchContext) -> Section:
    """Time a 1,000-change generation at a small and a large zone."""
    small, large = 10_000, 100_000 if ctx.quick else 1_000_000
    load = load_average()
    small_runs, small_journal, small_first, small_records = _generations(ctx, small)
    large_runs, large_journal, large_first, large_records = _generations(ctx, large)
    ratio = median(large_runs) / median(small_runs)
    journal_ratio = median(large_journal) / median(small_journal)
    figures = [
        Figure(
            key="dns_generation_ratio",
            what=f"dns-serve generation of a {CHANGES:,}-change version: "
            f"{large:,} entries / {small:,}",
            value=ratio,
            unit="x",
            runs=[a / b for a, b in zip(large_runs, small_runs, strict=True)],
            target=TARGET,
            quick=ctx.quick,
        ),
        Figure(
            key="dns_generation_journal_ratio",
            what="the journal part alone (change log, group renders, diff, SQLite "
            "transaction; without preparing the IXFR reply's wire format)",
            value=journal_ratio,
            unit="x",
            runs=[a / b for a, b in zip(large_journal, small_journal, strict=True)],
            quick=ctx.quick,
        ),
        Figure(
            key="dns_generation_large_seconds",
            what=f"the same at {large:,} entries",
            value=median(large_runs),
            unit="s",
            runs=large_runs,
            quick=ctx.quick,
        ),
    ]
    details = (
        f"Versions of {CHANGES // 2} additions and {CHANGES // 2} removals ({2 * CHANGES:,} "
        f"records changed: host and wildcard), hosts four to a group; {REPEATS} runs each, "
        f"in process; load average at start {load}.\n\n"
        f"- {small:,} entries ({small_records:,} records): {fmt_runs(small_runs)} s "
        f"(median {fmt(median(small_runs))} s); first, whole render {fmt(small_first)} s\n"
        f"- {large:,} entries ({large_records:,} records): {fmt_runs(large_runs)} s "
        f"(median {fmt(median(large_runs))} s); first, whole render {fmt(large_first)} s\n"
        f"- ratio of medians: {fmt(ratio)}x (target {TARGET.text})\n"
        f"- of which the journal (change log, group renders, diff, one SQLite "
        f"transaction): {small:,}: {fmt_runs(small_journal)} s; {large:,}: "
        f"{fmt_runs(large_journal)} s; ratio of medians {fmt(journal_ratio)}x (the rest is "
        f"the IXFR reply's wire format, O(changes))\n"
    )
    return Section("dns_generation", "DNS: dns-serve zone generation, O(changes)", figures, details)


if __name__ == "__main__":
    run_alone(run, __doc__)
