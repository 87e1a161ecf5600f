"""HTTP: cleanfeed's request rate divided by a bare FastAPI app's, same uvicorn, same wrk.

Issue 8 targets: an up-to-date poll (checkpoint with ``If-None-Match`` and
a bearer token, answered 304) at >= 0.6 of the bare app's rate, and a
statements fetch of one version of 100 changes at >= 0.4.

Set-up: a fresh data directory (``cleanfeed init`` equivalent), version 1
(the canary) and version 2 (100 additions curated through the store and
cut by the real publisher), an ISP token. Then ``cleanfeed serve`` with
one worker and ``python -m bench.bare_app`` run side by side on loopback
ports; ``wrk -c50 -t2`` with a Lua script sending the same headers
(``Authorization``, ``If-None-Match``, ``Accept-Encoding: gzip``) measures
each in turn, alternating for several rounds; the figure is the median of
the per-round ratios. The rate limit is raised out of reach (the limiter
still runs) so one token is not answered 429.
"""

from __future__ import annotations

import statistics
from pathlib import Path

import httpx

from bench import deploy
from bench.bare_app import PATH as BARE_PATH
from bench.common import (
    IDLE_MARKERS,
    PYTHON,
    BenchContext,
    Figure,
    Section,
    ServerProcess,
    Target,
    WrkResult,
    bench_env,
    cleanfeed_server,
    fmt_runs,
    free_port,
    load_average,
    lua_headers_script,
    median,
    parse_pyspy_raw,
    pyspy_record,
    run_alone,
    run_wrk,
    summarise_collapsed,
    uvicorn_options_note,
)

POLL_TARGET = Target(">=", 0.6, ">= 0.6")
STATEMENTS_TARGET = Target(">=", 0.4, ">= 0.4")

#: Changes in the version the statements scenario fetches (issue 8).
STATEMENT_CHANGES = 100


def _prepare(ctx: BenchContext, root: Path) -> tuple[deploy.Deployment, str]:
    dep = deploy.create(root / "data")
    deploy.curate(dep, STATEMENT_CHANGES)
    versions = deploy.publish(dep)
    if versions != [2]:
        raise RuntimeError(f"expected version 2 with {STATEMENT_CHANGES} changes, got {versions}")
    token = dep.token("isp", "isp-bench")
    dep.close()
    return dep, token


def _check_scenarios(base: str, bare: str, token: str) -> str:
    """One request of each scenario by hand: right status, right body; the ETag."""
    auth = {"Authorization": f"Bearer {token}"}
    with httpx.Client(timeout=10) as c:
        r = c.get(f"{base}/v1/lists/{deploy.LIST}/checkpoint", headers=auth)
        r.raise_for_status()
        etag = r.headers["etag"]
        r304 = c.get(
            f"{base}/v1/lists/{deploy.LIST}/checkpoint", headers={**auth, "If-None-Match": etag}
        )
        if r304.status_code != 304:
            raise RuntimeError(f"checkpoint with If-None-Match answered {r304.status_code}")
        rs = c.get(
            f"{base}/v1/lists/{deploy.LIST}/statements?since=1&limit=1",
            headers={**auth, "Accept-Encoding": "gzip"},
        )
        rs.raise_for_status()
        notes = rs.json()["statements"]
        adds = notes[0].count("\nadd ") if notes else 0
        if len(notes) != 1 or adds != STATEMENT_CHANGES:
            raise RuntimeError(f"statements page has {len(notes)} notes, {adds} additions")
        rb = c.get(bare + BARE_PATH)
        if rb.status_code != 200 or len(rb.content) != 200:
            raise RuntimeError("bare app did not answer 200 bytes")
    return etag


def run(ctx: BenchContext) -> Section:
    """Measure both scenarios against the bare app (see module doc)."""
    root = ctx.work / "http"
    root.mkdir(parents=True, exist_ok=True)
    duration = 3 if ctx.quick else 10
    rounds = 3 if ctx.quick else 5
    dep, token = _prepare(ctx, root)
    figures: list[Figure] = []
    profiles: list[str] = []
    runs: dict[str, list[WrkResult]] = {"bare": [], "checkpoint": [], "statements": []}
    load_before = load_average()
    server = cleanfeed_server(dep.data_dir, root / "server.log", unlimited=True)
    try:
        bare_port = free_port()
        bare = ServerProcess(
            [str(PYTHON), "-m", "bench.bare_app", "--port", str(bare_port)],
            bare_port,
            root / "bare.log",
            bench_env(),
            ready_path=BARE_PATH,
        )
        try:
            etag = _check_scenarios(server.base, bare.base, token)
            headers = {
                "Authorization": f"Bearer {token}",
                "If-None-Match": etag,
                "Accept-Encoding": "gzip",
            }
            cp_script = lua_headers_script(
                root / "checkpoint.lua",
                {"Authorization": headers["Authorization"], "If-None-Match": etag},
            )
            st_script = lua_headers_script(
                root / "statements.lua",
                {"Authorization": headers["Authorization"], "Accept-Encoding": "gzip"},
            )
            bare_script = lua_headers_script(root / "bare.lua", headers)
            urls = {
                "bare": (bare.base + BARE_PATH, bare_script),
                "checkpoint": (f"{server.base}/v1/lists/{deploy.LIST}/checkpoint", cp_script),
                "statements": (
                    f"{server.base}/v1/lists/{deploy.LIST}/statements?since=1&limit=1",
                    st_script,
                ),
            }
            # Warm-up: imports, caches, JIT-free but lazy paths, TCP.
            for name, (url, script) in urls.items():
                ctx.log(f"http: warm-up {name}")
                run_wrk(url, script, duration=2)
            order = ["bare", "checkpoint", "statements"]
            for r in range(rounds):
                for name in order if r % 2 == 0 else list(reversed(order)):
                    url, script = urls[name]
                    result = run_wrk(url, script, duration=duration)
                    rate = result.requests_per_second
                    ctx.log(f"http: round {r + 1}/{rounds} {name}: {rate:.0f} req/s")
                    runs[name].append(result)
            ratios = {
                name: [
                    c.requests_per_second / b.requests_per_second
                    for c, b in zip(runs[name], runs["bare"], strict=True)
                ]
                for name in ("checkpoint", "statements")
            }
            cp_ratio = median(ratios["checkpoint"])
            st_ratio = median(ratios["statements"])
            rps = {name: [x.requests_per_second for x in rs] for name, rs in runs.items()}
            errors = {name: sum(x.non_2xx_3xx for x in rs) for name, rs in runs.items()}
            figures += [
                Figure(
                    "http.poll_ratio",
                    "up-to-date poll (304, auth) / bare FastAPI, req/s ratio",
                    cp_ratio,
                    "x",
                    ratios["checkpoint"],
                    POLL_TARGET,
                    quick=ctx.quick,
                ),
                Figure(
                    "http.statements_ratio",
                    "statements fetch (1 version, 100 changes) / bare, req/s ratio",
                    st_ratio,
                    "x",
                    ratios["statements"],
                    STATEMENTS_TARGET,
                    quick=ctx.quick,
                ),
                Figure(
                    "http.bare_rps",
                    "bare FastAPI app",
                    median(rps["bare"]),
                    "req/s",
                    rps["bare"],
                    quick=ctx.quick,
                ),
                Figure(
                    "http.poll_rps",
                    "up-to-date poll (304)",
                    median(rps["checkpoint"]),
                    "req/s",
                    rps["checkpoint"],
                    quick=ctx.quick,
                ),
                Figure(
                    "http.statements_rps",
                    "statements fetch (100 changes, gzip)",
                    median(rps["statements"]),
                    "req/s",
                    rps["statements"],
                    quick=ctx.quick,
                ),
            ]
            if any(errors.values()):
                figures[0].note = f"non-2xx/3xx responses: {errors}"
            missed = [f for f in figures[:2] if f.met is False]
            if missed and ctx.profile:
                for f in missed:
                    name = "checkpoint" if f.key == "http.poll_ratio" else "statements"
                    profiles.append(_profile_server(ctx, root, server, name, *urls[name]))
        finally:
            bare.stop()
    finally:
        server.stop()
    details = _details(runs, figures, duration, rounds, load_before)
    return Section(
        "http", "HTTP: cleanfeed vs a bare FastAPI app", figures, details, profiles=profiles
    )


def _profile_server(
    ctx: BenchContext, root: Path, server: ServerProcess, name: str, url: str, script: Path
) -> str:
    """py-spy the cleanfeed server while wrk drives ``name``; top frames as Markdown."""
    import threading

    ctx.log(f"http: profiling the server under the {name} load (py-spy)")
    out = root / f"profile-{name}.txt"
    seconds = 8
    result: dict[str, Path | None] = {}

    def record() -> None:
        result["path"] = pyspy_record(server.pid, seconds, out)

    thread = threading.Thread(target=record)
    thread.start()
    run_wrk(url, script, duration=seconds + 2)
    thread.join()
    path = result.get("path")
    if path is None:
        return f"**server under {name} load**: py-spy could not attach\n"
    return summarise_collapsed(
        parse_pyspy_raw(path),
        f"`cleanfeed serve` under the {name} load (py-spy, wall-clock samples)",
        idle=IDLE_MARKERS,
    )


def _details(
    runs: dict[str, list[WrkResult]],
    figures: list[Figure],
    duration: int,
    rounds: int,
    load_before: str,
) -> str:
    lines = [
        f"Both servers: {uvicorn_options_note()}. `cleanfeed serve` runs its default "
        "configuration (embedded signer, JSON request logs to a file, metrics) with the "
        "rate limit raised out of reach. Load: `wrk -c50 -t2 -d"
        f"{duration}s --latency` on the same machine (2 cores shared by wrk and the "
        f"server), {rounds} rounds, order alternating, after a 2 s warm-up of each; "
        f"ratio = median of the per-round ratios. Load average before: {load_before}.",
        "",
        "| scenario | req/s per round | latency avg / p99 (last round) | non-2xx/3xx |",
        "|---|---|---|---:|",
    ]
    label = {
        "bare": f"bare FastAPI `GET {BARE_PATH}` (200 bytes)",
        "checkpoint": "`GET /v1/lists/main/checkpoint` + token + If-None-Match (304)",
        "statements": "`GET /v1/lists/main/statements?since=1&limit=1` + token, gzip (100 adds)",
    }
    for name, rs in runs.items():
        if not rs:
            continue
        last = rs[-1]
        lines.append(
            f"| {label[name]} | {fmt_runs([x.requests_per_second for x in rs])} | "
            f"{last.latency_avg} / {last.latency_p99} | {sum(x.non_2xx_3xx for x in rs)} |"
        )
    spread = {
        f.key: statistics.pstdev(f.runs) / f.value if f.value and len(f.runs) > 1 else 0.0
        for f in figures
        if f.unit == "x"
    }
    lines += [
        "",
        "Per-round ratios: "
        + "; ".join(
            f"{f.key}: {fmt_runs(f.runs)} (rel. spread {spread.get(f.key, 0):.0%})"
            for f in figures
            if f.unit == "x"
        ),
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    run_alone(run, __doc__)
