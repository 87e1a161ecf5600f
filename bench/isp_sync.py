"""ISP sync: incremental sync at 10,000 vs 1,000,000 entries, first sync, client memory.

Issue 8 targets:

- ISP sync of a 1,000-change version (verify + commit; exports timed
  separately): time at 1,000,000 / time at 10,000 <= 2.0;
- first sync of a new ISP at 1,000,000 entries (snapshot + verify) <= 10 s;
- peak RSS of the client holding 1,000,000 hash-only entries <= 200 MB.

The real client against the real server: ``cleanfeed serve --no-signer`` on
the deployment of :mod:`bench.deploy` (loopback), the real publisher cutting
each new version in this process. The incremental figure is one
:meth:`clients.isp.sync.Syncer.sync_once` with no export configured: keyring,
checkpoint, statements over HTTP, signature, chain, delta and state digest
checks, compact range, and the SQLite commit (``synchronous=FULL``). The
``hashes`` export (what a hash-only ISP feeds its filter) is timed on its
own. First syncs run the real command line, ``cleanfeed isp sync --once``,
in a fresh process each, which reports its peak resident memory (``VmHWM``)
at exit: the peak memory of a client that ends up holding the whole list.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import deploy
from bench.common import (
    BIN,
    IDLE_MARKERS,
    PYTHON,
    BenchContext,
    Figure,
    Section,
    ServerProcess,
    Target,
    bench_env,
    cleanfeed_server,
    fmt,
    fmt_runs,
    load_average,
    median,
    parse_pyspy_raw,
    profile_call,
    pyspy_record,
    pyspy_run,
    run_alone,
    summarise_collapsed,
)

RATIO_TARGET = Target("<=", 2.0, "<= 2.0")
FIRST_SYNC_TARGET = Target("<=", 10.0, "<= 10 s")
RSS_TARGET = Target("<=", 200.0, "<= 200 MB")
ADDS, EXPIRES = 900, 100


# --- the client, as an ISP runs it -----------------------------------------------------


def _config(server: str, token: str, root_vkey: str, state_dir: Path) -> Any:
    from clients.isp.config import load_config

    return load_config(
        overrides={
            "server": server,
            "token": token,
            "list": deploy.LIST,
            "root_keys": (root_vkey,),
            "state_dir": state_dir,
        },
        environ={},
    )


def _sync(server: str, token: str, root_vkey: str, state_dir: Path) -> tuple[float, Any]:
    from clients.isp.fetcher import build_http_client
    from clients.isp.sync import Syncer

    config = _config(server, token, root_vkey, state_dir)
    with build_http_client(config) as http:
        syncer = Syncer(config, http)
        started = time.perf_counter()
        outcome = syncer.sync_once()
        return time.perf_counter() - started, outcome


#: Runs the ``cleanfeed`` console script's entry point and, at exit, writes
#: the process's peak resident memory (``VmHWM``) to stderr. ``ru_maxrss``
#: cannot be used: Linux carries the *parent's* peak into a child across
#: fork/vfork + exec, so a child of this big benchmark process would report
#: the benchmark's own memory.
_PEAK_RSS_WRAPPER = (
    "import atexit, resource, sys\n"
    "def _peak():\n"
    "    for line in open('/proc/self/status'):\n"
    "        if line.startswith('VmHWM:'):\n"
    "            sys.stderr.write('BENCH-PEAK-RSS-KB ' + line.split()[1] + '\\n')\n"
    "    helpers = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss\n"
    "    sys.stderr.write('BENCH-HELPERS-RSS-KB %d\\n' % helpers)\n"
    "atexit.register(_peak)\n"
    "sys.argv[0] = 'cleanfeed'\n"
    "from cleanfeed.cli import main\n"
    "main()\n"
)


def cli_argv(*args: str, peak_rss: bool = False) -> list[str]:
    """``cleanfeed ARGS``; with ``peak_rss`` through the VmHWM wrapper above."""
    if peak_rss:
        return [str(PYTHON), "-c", _PEAK_RSS_WRAPPER, *args]
    return [str(BIN / "cleanfeed"), *args]


def peak_rss_mb(stderr: str, what: str = "PEAK") -> float:
    """The wrapper's peak RSS report (``PEAK``: the process; ``HELPERS``: the
    largest process it forked, e.g. snapshot digest workers), in MiB.

    Raises:
        RuntimeError: the report is missing.
    """
    marker = f"BENCH-{what}-RSS-KB "
    for line in reversed(stderr.splitlines()):
        if line.startswith(marker):
            return int(line.split()[1]) / 1024
    raise RuntimeError("the command did not report its peak RSS")


def _sync_args(server: ServerProcess, root_vkey: str, state: Path) -> list[str]:
    """``isp sync --once --json ...``: exactly what an ISP's cron job runs."""
    return [
        "isp",
        "sync",
        "--once",
        "--json",
        "--server",
        server.base,
        "--list",
        deploy.LIST,
        "--root-key",
        root_vkey,
        "--state-dir",
        str(state),
    ]


def child_sync(server: ServerProcess, token: str, root_vkey: str, state: Path) -> dict[str, Any]:
    """Run ``cleanfeed isp sync --once`` in a fresh process; its wall time and peak RSS.

    The token goes through the environment (``CLEANFEED_TOKEN``), as the
    docs recommend.

    Raises:
        RuntimeError: the sync failed or did not apply the list.
    """
    started = time.perf_counter()
    out = subprocess.run(
        cli_argv(*_sync_args(server, root_vkey, state), peak_rss=True),
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        env=bench_env(CLEANFEED_TOKEN=token),
        timeout=900,
    )
    seconds = time.perf_counter() - started
    if out.returncode != 0:
        raise RuntimeError(f"isp sync exited {out.returncode}: {out.stderr[-3000:]}")
    report: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    if report["status"] != "updated":
        raise RuntimeError(f"isp sync did not update: {report}")
    report.update(
        seconds=seconds,
        maxrss_mb=peak_rss_mb(out.stderr),
        helpers_mb=peak_rss_mb(out.stderr, "HELPERS"),
    )
    return report


def _export_hashes(state_dir: Path, output: Path) -> float:
    """Time the ``hashes`` export as the syncer writes it after a commit."""
    from clients.isp.exports.formats import ExportInput
    from clients.isp.exports.output import write_export
    from clients.isp.store import StateStore

    started = time.perf_counter()
    with StateStore(state_dir) as store:
        record = store.load_record()
        assert record is not None
        data = ExportInput(
            version=record.version,
            hashes=list(store.iter_hashes()),
            expressions=None,
            list_name=deploy.LIST,
            origin=record.origin or "",
            generated=datetime.now(UTC),
        )
        write_export("hashes", data, output)
    return time.perf_counter() - started


def wait_served(server: ServerProcess, token: str, size: int, timeout: float = 30.0) -> float:
    """Wait until the server serves a checkpoint of ``size``; return the seconds waited.

    With ``--no-signer`` the API learns of a version cut by another process
    when its checkpoint cache expires (``checkpoint_cache_ttl``, 1 s by
    default), so a sync started at once could still find nothing new.

    Raises:
        RuntimeError: not served within ``timeout``.
    """
    import httpx

    url = f"{server.base}/v1/lists/{deploy.LIST}/checkpoint"
    started = time.perf_counter()
    with httpx.Client(timeout=10) as client:
        while time.perf_counter() - started < timeout:
            r = client.get(url, headers={"Authorization": f"Bearer {token}"})
            if r.status_code == 200 and int(r.text.split("\n", 2)[1]) >= size:
                return time.perf_counter() - started
            time.sleep(0.05)
    raise RuntimeError(f"the server did not serve checkpoint {size} within {timeout} s")


# --- fixtures ------------------------------------------------------------------------


def synced_state(ctx: BenchContext, size: int) -> Path:
    """An ISP state directory holding the deployment of ``size`` entries (for lookups)."""

    def make() -> Path:
        dep = deploy.shared(ctx, size)
        token = dep.token("isp", f"isp-state-{size}")
        state = ctx.work / f"isp-state-{size}"
        with cleanfeed_server(
            dep.data_dir, ctx.work / f"isp-state-server-{size}.log", no_signer=True
        ) as server:
            child_sync(server, token, dep.root_vkey, state)
        return state

    path: Path = ctx.memo(f"isp-state-{size}", make)
    return path


# --- the benchmark -----------------------------------------------------------------------


def run(ctx: BenchContext) -> Section:
    """Measure first syncs, incremental syncs and exports at both sizes."""
    small, large = deploy.sizes(ctx.quick)
    repeats = 2 if ctx.quick else 4
    first_repeats = 1 if ctx.quick else 3
    root = ctx.work / "isp-sync"
    root.mkdir(parents=True, exist_ok=True)
    first: dict[int, list[dict[str, Any]]] = {}
    incremental: dict[int, list[float]] = {}
    exports: dict[int, list[float]] = {}
    steady_rss: dict[int, float] = {}
    loads: dict[int, str] = {}
    profiles: list[str] = []
    servers: dict[int, tuple[deploy.Deployment, str]] = {}
    staleness: list[float] = []
    for size in (small, large):
        dep = deploy.shared(ctx, size)
        token = dep.token("isp", f"isp-sync-{size}")
        servers[size] = (dep, token)
        loads[size] = load_average()
        with cleanfeed_server(dep.data_dir, root / f"server-{size}.log", no_signer=True) as server:
            first[size] = []
            state = root / f"state-{size}"
            for r in range(first_repeats):
                shutil.rmtree(state, ignore_errors=True)
                report = child_sync(server, token, dep.root_vkey, state)
                ctx.log(
                    f"isp: first sync at {size:,} (run {r + 1}): {report['seconds']:.2f} s, "
                    f"peak RSS {report['maxrss_mb']:.0f} MB"
                )
                first[size].append(report)
            ctx.shared[f"isp-state-{size}"] = state
            incremental[size] = []
            exports[size] = []
            for r in range(repeats + 1):
                deploy.curate(dep, ADDS, EXPIRES)
                versions = deploy.publish(dep)
                staleness.append(wait_served(server, token, versions[-1]))
                seconds, outcome = _sync(server.base, token, dep.root_vkey, state)
                if outcome.status != "updated" or outcome.version_after != versions[-1]:
                    raise RuntimeError(f"incremental sync did not apply {versions}: {outcome}")
                export = _export_hashes(state, root / f"hashes-{size}.txt")
                if r == 0:
                    continue  # warm-up: first incremental sync after the snapshot
                incremental[size].append(seconds)
                exports[size].append(export)
            ctx.log(f"isp: incremental sync at {size:,}: {fmt_runs(incremental[size])} s")
            # Memory of a steady-state sync (hashes stay on disk).
            deploy.curate(dep, ADDS, EXPIRES)
            wait_served(server, token, deploy.publish(dep)[-1])
            steady = child_sync(server, token, dep.root_vkey, state)
            steady_rss[size] = steady["maxrss_mb"]
            if ctx.profile and size == large:
                profiles += _maybe_profile(
                    ctx, dep, server, token, state, incremental, small, large, first[large]
                )

    ratio = median(incremental[large]) / median(incremental[small])
    first_large = [r["seconds"] for r in first[large]]
    rss_large = [r["maxrss_mb"] for r in first[large]]
    helpers = max(r["helpers_mb"] for r in first[large])
    helper_note = (
        f"main process VmHWM; the largest process it forked (snapshot digest worker, "
        f"sharing the snapshot's pages copy-on-write) peaked at {helpers:.0f} MB"
        if helpers
        else "main process VmHWM; no helper process"
    )
    full = not ctx.quick
    figures = [
        Figure(
            "isp.sync_ratio",
            f"ISP sync of 1,000 changes: time at {large:,} / at {small:,} entries",
            ratio,
            "x",
            [a / b for a, b in zip(incremental[large], incremental[small], strict=True)],
            RATIO_TARGET,
            quick=ctx.quick,
        ),
        Figure(
            "isp.sync_large",
            f"ISP sync of 1,000 changes at {large:,}",
            median(incremental[large]),
            "s",
            incremental[large],
            quick=ctx.quick,
        ),
        Figure(
            "isp.sync_small",
            f"ISP sync of 1,000 changes at {small:,}",
            median(incremental[small]),
            "s",
            incremental[small],
            quick=ctx.quick,
        ),
        Figure(
            "isp.export_large",
            f"`hashes` export after a sync at {large:,}",
            median(exports[large]),
            "s",
            exports[large],
            quick=ctx.quick,
        ),
        Figure(
            "isp.export_small",
            f"`hashes` export after a sync at {small:,}",
            median(exports[small]),
            "s",
            exports[small],
            quick=ctx.quick,
        ),
        Figure(
            "isp.first_sync",
            f"first sync of a new ISP at {large:,} entries (snapshot + verify)",
            median(first_large),
            "s",
            first_large,
            FIRST_SYNC_TARGET if full else None,
            note="" if full else "quick mode: not at 1,000,000 entries; target not evaluated",
            quick=ctx.quick,
        ),
        Figure(
            "isp.rss",
            f"peak RSS of the client syncing and holding {large:,} hash-only entries",
            median(rss_large),
            "MB",
            rss_large,
            RSS_TARGET if full else None,
            note=helper_note
            + ("" if full else "; quick mode: not at 1,000,000 entries, target not evaluated"),
            quick=ctx.quick,
        ),
        Figure(
            "isp.rss_steady",
            f"peak RSS of an incremental sync at {large:,}",
            steady_rss[large],
            "MB",
            [steady_rss[large]],
            quick=ctx.quick,
        ),
    ]
    details = (
        "Server: `cleanfeed serve --no-signer` (one worker) on the generated deployment; "
        "the real publisher cuts each version in the benchmark process (900 additions + 100 "
        f"expiries staged through the store). {repeats} incremental syncs per size after one "
        f"warm-up, {first_repeats} first sync(s) per size, each in a fresh interpreter. "
        "Each sync starts once the server serves the new checkpoint (with `--no-signer` the "
        "API sees another process's version when its checkpoint cache expires; waited "
        f"{fmt(min(staleness))}-{fmt(max(staleness))} s, untimed). Load average before each "
        "size: "
        + ", ".join(f"{n:,}: {la}" for n, la in loads.items())
        + ".\n\n| entries | first sync (s) | its peak RSS (MB) | incremental sync (s) | "
        "`hashes` export (s) | steady-state sync RSS (MB) |\n|---:|---|---|---|---|---:|\n"
        + "".join(
            f"| {n:,} | {fmt_runs([r['seconds'] for r in first[n]])} | "
            f"{fmt_runs([r['maxrss_mb'] for r in first[n]])} | {fmt_runs(incremental[n])} | "
            f"{fmt_runs(exports[n])} | {fmt(steady_rss[n])} |\n"
            for n in (small, large)
        )
    )
    return Section(
        "isp_sync", "ISP client: sync, first sync, memory", figures, details, profiles=profiles
    )


def _maybe_profile(
    ctx: BenchContext,
    dep: deploy.Deployment,
    server: ServerProcess,
    token: str,
    state: Path,
    incremental: dict[int, list[float]],
    small: int,
    large: int,
    first_large: list[dict[str, Any]],
) -> list[str]:
    out: list[str] = []
    if median(incremental[large]) / median(incremental[small]) > RATIO_TARGET.threshold:
        ctx.log("isp: profiling one incremental sync at the large size")
        deploy.curate(dep, ADDS, EXPIRES)
        wait_served(server, token, deploy.publish(dep)[-1])
        out.append(
            profile_call(
                lambda: _sync(server.base, token, dep.root_vkey, state),
                f"one incremental ISP sync at {large:,} entries (client side)",
            )
        )
    slow = median([r["seconds"] for r in first_large]) > FIRST_SYNC_TARGET.threshold
    fat = median([r["maxrss_mb"] for r in first_large]) > RSS_TARGET.threshold
    if (slow or fat) and not ctx.quick:
        ctx.log("isp: profiling a first sync at the large size (py-spy)")
        fresh = ctx.work / "isp-sync" / "state-profile"
        shutil.rmtree(fresh, ignore_errors=True)
        raw = ctx.work / "isp-sync" / "first-sync.pyspy.txt"
        server_raw = ctx.work / "isp-sync" / "first-sync-server.pyspy.txt"
        argv = cli_argv(*_sync_args(server, dep.root_vkey, fresh))
        # The server's side of the same first sync (snapshot, proofs), sampled
        # for about as long as a first sync takes.
        seconds = median([r["seconds"] for r in first_large]) + 2
        holder: dict[str, Path | None] = {}
        thread = threading.Thread(
            target=lambda: holder.update(path=pyspy_record(server.pid, seconds, server_raw))
        )
        thread.start()
        ok = pyspy_run(argv, raw, env=bench_env(CLEANFEED_TOKEN=token))
        thread.join()
        if ok:
            out.append(
                summarise_collapsed(
                    parse_pyspy_raw(raw),
                    f"first sync at {large:,} entries, client process (py-spy)",
                )
            )
        if holder.get("path") is not None:
            out.append(
                summarise_collapsed(
                    parse_pyspy_raw(server_raw),
                    f"first sync at {large:,} entries, `cleanfeed serve` side (py-spy)",
                    idle=IDLE_MARKERS,
                )
            )
        shutil.rmtree(fresh, ignore_errors=True)
    return out


if __name__ == "__main__":
    run_alone(run, __doc__)
