"""Run every benchmark in one process and write docs/benchmarks.md.

Usage::

    python -m bench                       # everything, full sizes -> docs/benchmarks.md
    python -m bench --quick               # smaller sizes (< 3 min) -> bench/out/benchmarks-quick.md
    python -m bench --only http,publish   # a subset -> bench/out/benchmarks-partial.md
    python -m bench --no-profile          # skip profiling of missed targets (--quick: default)
    python -m bench --output FILE         # write the report elsewhere

Benchmarks (issue 8's targets table, and issue 7's load test): http,
publish, isp_sync, exports (issue 19's incremental exports), lookup, bulk,
wire, load, audit, bodies (issue 12's upload flood). Each returns its figures
(medians of repeated runs) and details; where a target is missed and
profiling is on, it profiles the code under test (py-spy for servers and
commands, pyinstrument in-process) and the top frames go into the report.

The report keeps the hand-written analysis between the ``analysis`` markers
of the existing docs/benchmarks.md, so re-running the benchmarks refreshes
the figures without losing the write-up.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from bench.common import (
    OUT,
    ROOT,
    BenchContext,
    Figure,
    Section,
    Target,
    fmt,
    fmt_runs,
    load_average,
    machine_info,
    median,
    profile_call,
)

DOC = ROOT / "docs" / "benchmarks.md"
ANALYSIS_BEGIN = "<!-- analysis:begin -->"
ANALYSIS_END = "<!-- analysis:end -->"

AUDIT_SECONDS_TARGET = Target("<=", 20.0, "<= 20 s")
AUDIT_RATIO_TARGET = Target("<=", 3.0, "<= 3x")


def _audit(ctx: BenchContext) -> Section:
    """The offline audit benchmark of bench/audit_bench.py, with figures for the report."""
    from bench import audit_bench
    from clients.audit.bundle import load
    from clients.audit.examine import default_workers

    versions, changes = (100, 1000) if ctx.quick else (1000, 1000)
    repeats = 3
    path = audit_bench.OUT / f"audit-bundle-{versions}x{changes}.json"
    vkey_path = path.with_suffix(".vkey")
    audit_bench.OUT.mkdir(parents=True, exist_ok=True)
    built = ""
    if not path.exists() or not vkey_path.exists():
        ctx.log(f"audit: building a bundle of {versions} x {changes} (cached in bench/out)")
        started = time.perf_counter()
        vkey_path.write_text(audit_bench.build(versions, changes, path) + "\n")
        built = f" (built in {time.perf_counter() - started:.0f} s this run)"
    root_vkey = vkey_path.read_text().strip()
    started = time.perf_counter()
    bundle = load(path)
    load_seconds = time.perf_counter() - started
    workers = default_workers(bundle.statements)
    load_before = load_average()
    # audit_bench's timers return wall seconds, or (wall, CPU seconds of this process).
    parallel_runs = [
        _timing(audit_bench.timed_verify(bundle, root_vkey, workers)) for _ in range(repeats)
    ]
    parallel = [w for w, _ in parallel_runs]
    ctx.log(f"audit: verify_bundle ({workers} workers): {fmt_runs(parallel)} s")
    single_runs = [_timing(audit_bench.timed_verify(bundle, root_vkey, 1))]
    single = [w for w, _ in single_runs]
    inputs = audit_bench.bare_inputs(bundle)
    bare_runs = [_timing(audit_bench.bare(inputs)) for _ in range(repeats)]
    bare = [w for w, _ in bare_runs]
    ctx.log(f"audit: bare signatures + digests: {fmt_runs(bare)} s")
    cpu_note = ""
    single_cpu = [c for _, c in single_runs if c is not None]
    bare_cpu = [c for _, c in bare_runs if c is not None]
    if single_cpu and bare_cpu:
        cpu_note = f"; CPU-time ratio with one worker: {median(single_cpu) / median(bare_cpu):.2f}x"
    total_changes = sum(len(i[3]) + len(i[4]) for i in inputs)
    full = not ctx.quick
    figures = [
        Figure(
            "audit.seconds",
            f"offline audit of {len(bundle.statements):,} versions, {total_changes:,} changes "
            f"(`verify_bundle`, {workers} worker(s))",
            median(parallel),
            "s",
            parallel,
            AUDIT_SECONDS_TARGET if full else None,
            note="" if full else "quick mode: 100 versions; target not evaluated",
            quick=ctx.quick,
        ),
        Figure(
            "audit.ratio",
            "offline audit / bare Ed25519 verifications + LtHash16 updates (same run)",
            median(parallel) / median(bare),
            "x",
            [p / b for p, b in zip(parallel, bare, strict=True)],
            AUDIT_RATIO_TARGET,
            note=f"wall-clock ratio with one worker: {median(single) / median(bare):.2f}x"
            + cpu_note,
            quick=ctx.quick,
        ),
        Figure(
            "audit.bare",
            "bare signature verifications + state-digest updates",
            median(bare),
            "s",
            bare,
            quick=ctx.quick,
        ),
        Figure(
            "audit.one_worker",
            "offline audit with one worker",
            median(single),
            "s",
            single,
            quick=ctx.quick,
        ),
    ]
    profiles = []
    if ctx.profile and any(f.met is False for f in figures):
        profiles.append(
            profile_call(
                lambda: audit_bench.timed_verify(bundle, root_vkey, 1),
                "verify_bundle with one worker",
            )
        )
    details = (
        f"Bundle `{path.relative_to(ROOT)}` ({path.stat().st_size:,} bytes){built}, built by "
        "bench/audit_bench.py with `tests.support.memory_log.MemoryLog` (900 additions + 100 "
        "removals per "
        f"version, one key rotation); loaded in {fmt(load_seconds)} s (not counted). "
        f"`verify_bundle`: {fmt_runs(parallel)} s with {workers} worker(s), "
        f"{fmt_runs(single)} s with one. Bare loop (Ed25519 verification of every note and "
        f"batched LtHash16 updates, one process): {fmt_runs(bare)} s. Load average before: "
        f"{load_before}.\n"
    )
    return Section("audit", "Offline audit", figures, details, profiles=profiles)


def _timing(value: float | tuple[float, float]) -> tuple[float, float | None]:
    """(wall, CPU or None) from a timer returning seconds or (wall, CPU)."""
    if isinstance(value, tuple):
        return float(value[0]), float(value[1])
    return float(value), None


def _runners() -> dict[str, Callable[[BenchContext], Section]]:
    from bench import (
        blockpage,
        body_flood,
        bulk_import,
        dns_generation,
        dns_ixfr,
        exports,
        freshness,
        http_ratio,
        isp_sync,
        load,
        lookup,
        nginx_cache,
        publish,
        wire_size,
    )

    return {
        "http": http_ratio.run,
        "nginx": nginx_cache.run,
        "wire": wire_size.run,
        "publish": publish.run,
        "isp_sync": isp_sync.run,
        "exports": exports.run,
        "lookup": lookup.run,
        "bulk": bulk_import.run,
        "load": load.run,
        "audit": _audit,
        "blockpage": blockpage.run,
        "bodies": body_flood.run,
        "dns_ixfr": dns_ixfr.run,
        "dns_generation": dns_generation.run,
        "freshness": freshness.run,
    }


#: The targets table of issue 8 (plus issue 7's load test), in its order:
#: (what, how measured, figure keys whose targets decide it).
TARGETS: list[tuple[str, str, list[str]]] = [
    (
        "up-to-date poll (checkpoint, If-None-Match, auth)",
        "req/s of `cleanfeed serve` / bare FastAPI, wrk -c50",
        ["http.poll_ratio"],
    ),
    ("statements fetch, one version of 100 changes", "same ratio", ["http.statements_ratio"]),
    (
        "publish a 1,000-change version",
        "time at 1,000,000 / at 10,000; absolute at 1,000,000",
        ["publish.ratio", "publish.large"],
    ),
    (
        "ISP sync of a 1,000-change version (verify + commit)",
        "time at 1,000,000 / at 10,000",
        ["isp.sync_ratio"],
    ),
    ("ISP client memory", "peak RSS holding 1,000,000 hash-only entries", ["isp.rss"]),
    (
        "offline audit",
        "1,000 versions, 1,000,000 changes; / bare signatures + digests",
        ["audit.seconds", "audit.ratio"],
    ),
    ("URL lookup", "`cleanfeed isp check -` against 1,000,000 entries", ["lookup.rate"]),
    ("bulk import", "100,000 URLs through the API in batches, SQLite", ["bulk.rate"]),
    ("wire size", "bytes per added entry, gzip'ed statements response", ["wire.per_add_10000"]),
    ("first sync", "new ISP at 1,000,000 entries (snapshot + verify)", ["isp.first_sync"]),
    (
        "load (issue 7)",
        "500 ISPs polling one worker: errors other than 429 + Retry-After",
        ["load.errors"],
    ),
    (
        "incremental exports (issue 19 row 4)",
        "1,000-change version applied to each incremental export (`hashes`, `unbound`, "
        "`dnsmasq`, `hosts`): time at 1,000,000 / at 10,000",
        [
            "exports.hashes_incremental_ratio",
            "exports.unbound_incremental_ratio",
            "exports.dnsmasq_incremental_ratio",
            "exports.hosts_incremental_ratio",
        ],
    ),
    (
        "RPZ by IXFR, dns-serve's journal (issue 19 row 4)",
        "one dns-serve zone generation of a 1,000-change version: time at 1,000,000 / "
        "at 10,000 (in process)",
        ["dns_generation.dns_generation_ratio"],
    ),
    (
        "upload flood (issue 12)",
        "RSS growth, 50 unauthenticated clients holding 16 MiB uploads",
        ["bodies.rss_growth_length", "bodies.rss_growth_chunked"],
    ),
]


def _value(f: Figure) -> str:
    unit = {
        "x": "x",
        "s": " s",
        "MB": " MB",
        "ms": " ms",
        "bytes": " bytes",
        "URLs/s": " URLs/s",
        "req/s": " req/s",
        "errors": "",
    }.get(f.unit, " " + f.unit)
    return f"{fmt(f.value)}{unit}"


def _verdict(f: Figure) -> str:
    if f.target is None:
        return "not evaluated" + (" (quick)" if f.quick else "")
    return "**met**" if f.met else "**MISSED**"


def _targets_table(figures: dict[str, Figure]) -> str:
    lines = [
        "| what | how measured | measured | target | met? |",
        "|---|---|---|---|---|",
    ]
    for what, how, keys in TARGETS:
        present = [figures[k] for k in keys if k in figures]
        if not present:
            lines.append(f"| {what} | {how} | not run | | |")
            continue
        measured = "; ".join(_value(f) + (" (quick)" if f.quick else "") for f in present)
        target = "; ".join(f.target.text if f.target else "-" for f in present)
        verdict = "; ".join(_verdict(f) for f in present)
        lines.append(f"| {what} | {how} | {measured} | {target} | {verdict} |")
    return "\n".join(lines) + "\n"


def _all_figures_table(sections: list[Section]) -> str:
    lines = ["| figure | median | runs | note |", "|---|---:|---|---|"]
    for s in sections:
        for f in s.figures:
            runs = fmt_runs(f.runs) if len(f.runs) > 1 else ""
            lines.append(f"| {f.what} | {_value(f)} | {runs} | {f.note} |")
    return "\n".join(lines) + "\n"


def _kept_analysis(path: Path) -> str:
    default = (
        f"{ANALYSIS_BEGIN}\n## Analysis of missed targets\n\n"
        "(Hand-written; kept across runs of `python -m bench`.)\n"
        f"{ANALYSIS_END}\n"
    )
    if not path.exists():
        return default
    text = path.read_text()
    start, end = text.find(ANALYSIS_BEGIN), text.find(ANALYSIS_END)
    if start < 0 or end < start:
        return default
    return text[start : end + len(ANALYSIS_END)] + "\n"


def render(
    sections: list[Section],
    *,
    quick: bool,
    command: str,
    started: datetime,
    seconds: float,
    failures: list[str],
    analysis: str,
) -> str:
    """The whole Markdown report."""
    figures = {f.key: f for s in sections for f in s.figures}
    info = machine_info()
    mode = (
        "**--quick** (smaller sizes: 100,000 instead of 1,000,000 entries, shorter runs; "
        "absolute targets tied to 1,000,000 entries are not evaluated)"
        if quick
        else "full"
    )
    parts = [
        "# Benchmarks\n",
        "Generated by `python -m bench` (`make bench`): every figure below was measured in "
        "one run on the machine described here. Figures are medians of repeated runs unless "
        "a row says otherwise. Benchmarks are scripts in `bench/`, never timed tests. Ratios "
        "hold on any machine; absolute figures are for this 2-core machine.\n",
        "## Run\n",
        f"- date: {started.strftime('%Y-%m-%d %H:%M UTC')}, {seconds / 60:.1f} min",
        f"- command: `{command}`",
        f"- mode: {mode}",
        *(f"- {k}: {v}" for k, v in info.items()),
        "- note: other processes on the machine skew figures; each section gives the "
        "1-minute load average before it ran.",
        "",
    ]
    if failures:
        parts += ["**Benchmarks that failed in this run:**\n"]
        parts += [f"- {f}" for f in failures]
        parts.append("")
    parts += ["## Targets (issue 8, and issue 7's load test)\n", _targets_table(figures)]
    parts += ["## All figures\n", _all_figures_table(sections)]
    for s in sections:
        parts += [f"## {s.title}\n", f"({s.seconds:.0f} s)\n", s.details]
        if s.profiles:
            parts += ["### Profiles (a target was missed)\n", *s.profiles]
    parts.append(analysis)
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    """Parse options, run the benchmarks, write the report; exit 1 if a benchmark failed."""
    names = list(_runners())
    parser = argparse.ArgumentParser(
        prog="python -m bench", description="Run cleanfeed's benchmarks and write the report."
    )
    parser.add_argument("--quick", action="store_true", help="smaller sizes, shorter runs")
    parser.add_argument("--only", default="", help=f"comma-separated subset of: {', '.join(names)}")
    parser.add_argument(
        "--no-profile", action="store_true", help="never profile (default with --quick)"
    )
    parser.add_argument(
        "--profile", action="store_true", help="profile missed targets even with --quick"
    )
    parser.add_argument("--output", type=Path, default=None, help="report path")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures as JSON")
    args = parser.parse_args(argv)
    chosen = [n.strip() for n in args.only.split(",") if n.strip()] or names
    unknown = sorted(set(chosen) - set(names))
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}")
    chosen = [n for n in names if n in chosen]  # fixed order: shared fixtures build once
    if args.output is not None:
        output = args.output
    elif args.quick:
        output = OUT / "benchmarks-quick.md"
    elif chosen != names:
        output = OUT / "benchmarks-partial.md"
    else:
        output = DOC
    command = "python -m bench" + (
        " " + " ".join(argv if argv is not None else sys.argv[1:]) if (argv or sys.argv[1:]) else ""
    )

    OUT.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="cleanfeed-bench-", dir=OUT))
    profile = args.profile or not (args.no_profile or args.quick)
    ctx = BenchContext(quick=args.quick, work=work, profile=profile)
    started_at = datetime.now(UTC)
    started = time.perf_counter()
    sections: list[Section] = []
    failures: list[str] = []
    runners = _runners()
    try:
        for name in chosen:
            ctx.log(f"=== {name} ===")
            t0 = time.perf_counter()
            try:
                section = runners[name](ctx)
            except Exception as e:  # one broken benchmark must not hide the others
                traceback.print_exc()
                failures.append(f"{name}: {type(e).__name__}: {str(e).splitlines()[0][:300]}")
                continue
            section.seconds = time.perf_counter() - t0
            sections.append(section)
            for f in section.figures:
                verdict = "" if f.met is None else (" MET" if f.met else " MISSED")
                ctx.log(f"{f.key} = {_value(f)}{verdict}")
    finally:
        for dep in [v for k, v in ctx.shared.items() if k.startswith("deployment-")]:
            dep.close()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    seconds = time.perf_counter() - started
    report = render(
        sections,
        quick=args.quick,
        command=command,
        started=started_at,
        seconds=seconds,
        failures=failures,
        analysis=_kept_analysis(DOC),
    )
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(report)
    if args.json is not None:
        args.json.write_text(
            json.dumps(
                {
                    "python": platform.python_version(),
                    "quick": args.quick,
                    "figures": {
                        f.key: {"value": f.value, "unit": f.unit, "runs": f.runs, "met": f.met}
                        for s in sections
                        for f in s.figures
                    },
                    "failures": failures,
                },
                indent=2,
            )
        )
    ctx.log(f"wrote {output} in {seconds / 60:.1f} min")
    print(_targets_table({f.key: f for s in sections for f in s.figures}))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
