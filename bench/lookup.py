"""URL lookup: ``cleanfeed isp check -`` reading a batch of URLs from stdin, 1,000,000 entries.

Issue 8 target: >= 50,000 URLs/s. The state directory is the one the ISP
sync benchmark synced (1,000,000 hash-only entries). The batch mixes 10 %
listed URLs with unlisted ones of two shapes (``http://h{i}.example.com/p/
{j}.html`` and a deeper ``http://www.h{i}.example.com/p/a/b/{j}.html?q=k``,
which has more lookup expressions); the rate is URLs / wall time of the
whole command, interpreter start included. For comparison the same URLs go
through :class:`clients.isp.lookup.Matcher` in this process (the in-memory
set the Squid helper can use), which isolates canonicalisation and hashing
from the on-disk membership test.
"""

from __future__ import annotations

import random
import subprocess
import time
from pathlib import Path

from bench import deploy
from bench.common import (
    BenchContext,
    Figure,
    Section,
    Target,
    bench_env,
    fmt,
    fmt_runs,
    load_average,
    median,
    parse_pyspy_raw,
    pyspy_run,
    run_alone,
    summarise_collapsed,
)
from bench.isp_sync import cli_argv, peak_rss_mb, synced_state

RATE_TARGET = Target(">=", 50_000, ">= 50,000 URLs/s")
LISTED_SHARE = 0.10


def make_urls(size: int, count: int, seed: int = 20261128) -> tuple[list[str], int]:
    """``count`` URLs, 10 % of them listed in a list of ``size`` generated entries.

    Listed URLs are drawn from the upper half of the generated range (the
    benchmarks expire the oldest entries).
    """
    rnd = random.Random(seed)
    listed = int(count * LISTED_SHARE)
    urls = [deploy.url_of(rnd.randrange(size // 2, size)) for _ in range(listed)]
    unlisted_base = 50_000_000
    for k in range(count - listed):
        i = unlisted_base + rnd.randrange(10_000_000)
        if k % 2:
            urls.append(deploy.url_of(i))
        else:
            urls.append(f"http://www.h{i}.example.com/p/a/b/{k % 7}.html?q={k % 13}")
    rnd.shuffle(urls)
    return urls, listed


def _check(state: Path, urls_file: Path, output: Path | None) -> tuple[float, float, int]:
    """Run the command once; (seconds, peak RSS MB, exit status)."""
    sink = output if output is not None else Path("/dev/null")
    started = time.perf_counter()
    with urls_file.open("rb") as fin, sink.open("wb") as fout:
        out = subprocess.run(
            cli_argv("isp", "check", "--state-dir", str(state), "-", peak_rss=True),
            stdin=fin,
            stdout=fout,
            stderr=subprocess.PIPE,
            env=bench_env(),
            timeout=1800,
        )
    seconds = time.perf_counter() - started
    return seconds, peak_rss_mb(out.stderr.decode()), out.returncode


def run(ctx: BenchContext) -> Section:
    """Time the batch check (see module doc)."""
    _, large = deploy.sizes(ctx.quick)
    count = 50_000 if ctx.quick else 200_000
    repeats = 1 if ctx.quick else 3
    root = ctx.work / "lookup"
    root.mkdir(parents=True, exist_ok=True)
    state = synced_state(ctx, large)
    urls, listed = make_urls(large, count)
    urls_file = root / "urls.txt"
    urls_file.write_text("\n".join(urls) + "\n")
    load_before = load_average()

    # Run 1 writes the report and is checked; the others go to /dev/null.
    report = root / "report.txt"
    seconds, rss, status = _check(state, urls_file, report)
    found = sum(1 for line in report.read_text().splitlines() if line.startswith("listed\t"))
    if status != 0 or found != listed:
        raise RuntimeError(f"isp check: exit {status}, {found} listed, expected {listed}")
    timings = [seconds]
    rss_runs = [rss]
    for _ in range(repeats - 1):
        seconds, rss, status = _check(state, urls_file, None)
        timings.append(seconds)
        rss_runs.append(rss)
    rates = [count / t for t in timings]
    ctx.log(f"lookup: {fmt_runs(rates)} URLs/s")

    one = root / "one.txt"
    one.write_text(deploy.url_of(10**9) + "\n")
    startup = [_check(state, one, None)[0] for _ in range(3)]

    in_memory = _in_memory(state, urls, listed)
    full = not ctx.quick
    figures = [
        Figure(
            "lookup.rate",
            f"`cleanfeed isp check -` batch of {count:,} URLs against {large:,} entries",
            median(rates),
            "URLs/s",
            rates,
            RATE_TARGET if full else None,
            note="" if full else "quick mode: smaller list and batch; target not evaluated",
            quick=ctx.quick,
        ),
        Figure(
            "lookup.startup",
            "`cleanfeed isp check` of one URL (start-up cost)",
            median(startup),
            "s",
            startup,
            quick=ctx.quick,
        ),
        Figure(
            "lookup.in_memory",
            "same URLs through the in-memory `Matcher` (this process)",
            in_memory,
            "URLs/s",
            [in_memory],
            quick=ctx.quick,
        ),
        Figure(
            "lookup.rss",
            "peak RSS of `cleanfeed isp check`",
            median(rss_runs),
            "MB",
            rss_runs,
            quick=ctx.quick,
        ),
    ]
    profiles: list[str] = []
    if ctx.profile and figures[0].met is False:
        ctx.log("lookup: profiling the command (py-spy)")
        raw = root / "check.pyspy.txt"
        if pyspy_run(
            cli_argv("isp", "check", "--state-dir", str(state), "-"), raw, stdin=urls_file
        ):
            profiles.append(
                summarise_collapsed(parse_pyspy_raw(raw), "`cleanfeed isp check -` (py-spy)")
            )
    details = (
        f"{count:,} URLs ({listed:,} listed), {repeats} run(s) of the whole command, stdout "
        "to a file (run 1, checked: every listed URL reported) or /dev/null; start-up "
        f"measured with one URL: {fmt(median(startup))} s. Load average before: "
        f"{load_before}.\n\n| run | seconds | URLs/s |\n|---:|---:|---:|\n"
        + "".join(f"| {n + 1} | {fmt(t)} | {fmt(count / t)} |\n" for n, t in enumerate(timings))
    )
    return Section("lookup", "URL lookup", figures, details, profiles=profiles)


def _in_memory(state: Path, urls: list[str], listed: int) -> float:
    from clients.isp.lookup import Matcher
    from clients.isp.store import StateStore

    with StateStore(state, create=False) as store:
        matcher = Matcher(frozenset(store.iter_hashes()))
    started = time.perf_counter()
    results = matcher.match_many(urls)
    seconds = time.perf_counter() - started
    hits = sum(1 for r in results if not isinstance(r, Exception) and r.listed)
    if hits != listed:
        raise RuntimeError(f"Matcher found {hits} listed, expected {listed}")
    return len(urls) / seconds


if __name__ == "__main__":
    run_alone(run, __doc__)
