"""Exports after a 1,000-change version: 1,000,000 entries / 10,000 (issue 19 item 4).

Target (issue 19, benchmark row 4): applying a 1,000-change version to the
exports at 1,000,000 entries costs at most 2.0x what it costs at 10,000,
for each format that can be written incrementally. Both sizes run in this
one process, the ratios side by side.

Incremental (``incremental = true``): the ``unbound``, ``dnsmasq`` and
``hosts`` exports as shard directories (:func:`clients.isp.exports.sharded.apply_sharded`),
and the ``hashes`` export
(:func:`clients.isp.exports.hashlog.apply_hashes_log`, what the syncer runs after a
verified commit): each version appends its record, or compacts the log
when it outgrew its fraction of the base. Every version is timed,
compactions included, and the median reported (the compactions are also
listed).

Not incremental (each rewrites its whole file, O(entries)): the plain
``hashes`` export and the plaintext formats (``urls``, ``squid``, ``rpz``,
``unbound``, ``dnsmasq``, ``hosts``), timed as
:func:`clients.isp.exports.output.write_export` of the new version over the old
files. The list is synthetic: 60 % whole-host entries (``hN.example``,
some under another listed host), 40 % page entries (``example.net/p/N.html``).
"""

from __future__ import annotations

import hashlib
import random
import shutil
import time
from datetime import UTC, datetime
from pathlib import Path

from bench import deploy
from bench.common import BenchContext, Figure, Section, Target, fmt, fmt_runs, median, run_alone

RATIO_TARGET = Target("<=", 2.0, "<= 2.0")
ADDS, REMOVES = 900, 100
#: Versions timed per size for the incremental export (after one untimed).
VERSIONS = 9
#: Full rewrites timed per size and format.
FULL_REPEATS = 2
FULL_FORMATS = ("hashes", "urls", "squid", "rpz", "unbound", "dnsmasq", "hosts")


def _expression(i: int) -> str:
    if i % 5 < 3:
        # Every 50th host sits under an earlier listed one (pruned by DNS formats).
        return f"a.h{i - 1}.example/" if i % 50 == 1 else f"h{i}.example/"
    return f"example.net/p/{i}.html"


def _hash(expr: str) -> bytes:
    return hashlib.sha256(expr.encode()).digest()


class _List:
    """The synthetic list and its versions (900 additions + 100 removals each)."""

    def __init__(self, size: int, seed: int) -> None:
        self.rng = random.Random(seed)
        self.expressions = {_hash(e): e for e in map(_expression, range(size))}
        self.next = size
        self.version = 1

    def step(self) -> tuple[list[bytes], list[bytes]]:
        removed = self.rng.sample(sorted(self.expressions), REMOVES)
        added: list[bytes] = []
        for _ in range(ADDS):
            expr = _expression(self.next)
            self.next += 1
            added.append(_hash(expr))
            self.expressions[added[-1]] = expr
        for h in removed:
            del self.expressions[h]
        self.version += 1
        return added, removed

    def data(self) -> object:
        from clients.isp.exports.formats import ExportInput

        return ExportInput(
            version=self.version,
            hashes=list(self.expressions),
            expressions=self.expressions,
            list_name=deploy.LIST,
            origin="hotline.example/main",
            generated=datetime.now(UTC),
        )


INCREMENTAL = ("hashes", "unbound", "dnsmasq", "hosts")


def _incremental(root: Path, size: int) -> tuple[dict[str, list[float]], list[bool]]:
    """Each version applied to every incremental export, as the syncer does."""
    from clients.isp.exports.formats import ExportInput
    from clients.isp.exports.hashlog import apply_hashes_log
    from clients.isp.exports.sharded import ShardedSource, apply_sharded

    lst = _List(size, seed=size)
    out = root / f"incremental-{size}.hashes"
    source = ShardedSource(
        lambda h: lst.expressions.get(h),
        lambda: sorted(lst.expressions.items()),
        lambda: len(lst.expressions),
    )

    def sharded(
        fmt_name: str, before: int | None, added: list[bytes], removed: list[bytes]
    ) -> None:
        data = lst.data()
        assert isinstance(data, ExportInput)
        apply_sharded(
            fmt_name,  # type: ignore[arg-type]
            root / f"incremental-{size}.{fmt_name}",
            root / "index" / f"{size}-{fmt_name}.db",
            data,
            source,
            before=before,
            added=added,
            removed=removed,
        )

    apply_hashes_log(out, version=lst.version, hashes=lambda: lst.expressions.keys())
    for fmt_name in INCREMENTAL[1:]:
        sharded(fmt_name, None, [], [])
    runs: dict[str, list[float]] = {f: [] for f in INCREMENTAL}
    compacted: list[bool] = []
    for r in range(VERSIONS + 1):
        before = lst.version
        added, removed = lst.step()
        started = time.perf_counter()
        result = apply_hashes_log(
            out,
            version=lst.version,
            before=before,
            added=added,
            removed=removed,
            hashes=lambda: lst.expressions.keys(),
        )
        seconds = {"hashes": time.perf_counter() - started}
        for fmt_name in INCREMENTAL[1:]:
            started = time.perf_counter()
            sharded(fmt_name, before, added, removed)
            seconds[fmt_name] = time.perf_counter() - started
        if r:
            for fmt_name, value in seconds.items():
                runs[fmt_name].append(value)
            compacted.append(result.compacted)
    return runs, compacted


def _full(root: Path, size: int) -> dict[str, list[float]]:
    from clients.isp.exports.formats import ExportInput
    from clients.isp.exports.output import write_export

    lst = _List(size, seed=size + 1)
    out: dict[str, list[float]] = {f: [] for f in FULL_FORMATS}
    data = lst.data()
    assert isinstance(data, ExportInput)
    for fmt_name in FULL_FORMATS:
        write_export(fmt_name, data, root / f"full-{size}.{fmt_name}")
    for _ in range(FULL_REPEATS):
        lst.step()
        data = lst.data()
        assert isinstance(data, ExportInput)
        for fmt_name in FULL_FORMATS:
            started = time.perf_counter()
            write_export(fmt_name, data, root / f"full-{size}.{fmt_name}")
            out[fmt_name].append(time.perf_counter() - started)
    return out


def run(ctx: BenchContext) -> Section:
    """Time the incremental and the full exports at both sizes."""
    small, large = deploy.sizes(ctx.quick)
    root = ctx.work / "exports"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    incremental: dict[int, dict[str, list[float]]] = {}
    compactions: dict[int, list[bool]] = {}
    full: dict[int, dict[str, list[float]]] = {}
    for size in (small, large):
        ctx.log(f"exports: incremental exports at {size:,}")
        incremental[size], compactions[size] = _incremental(root, size)
        ctx.log(f"exports: full rewrites at {size:,}")
        full[size] = _full(root, size)
    ratios = {f: median(incremental[large][f]) / median(incremental[small][f]) for f in INCREMENTAL}
    figures: list[Figure] = []
    for fmt_name in INCREMENTAL:
        how = "base + log" if fmt_name == "hashes" else "shards"
        figures += [
            Figure(
                f"exports.{fmt_name}_incremental_ratio",
                f"incremental `{fmt_name}` export ({how}) of a 1,000-change version: "
                f"time at {large:,} / at {small:,} entries",
                ratios[fmt_name],
                "x",
                [],
                RATIO_TARGET,
                note="ratio of the medians" + (", compactions included" if how != "shards" else ""),
                quick=ctx.quick,
            ),
            Figure(
                f"exports.{fmt_name}_incremental_large",
                f"incremental `{fmt_name}` export of a 1,000-change version at {large:,}",
                median(incremental[large][fmt_name]),
                "s",
                incremental[large][fmt_name],
                quick=ctx.quick,
            ),
            Figure(
                f"exports.{fmt_name}_incremental_small",
                f"incremental `{fmt_name}` export of a 1,000-change version at {small:,}",
                median(incremental[small][fmt_name]),
                "s",
                incremental[small][fmt_name],
                quick=ctx.quick,
            ),
        ]
    for fmt_name in FULL_FORMATS:
        figures.append(
            Figure(
                f"exports.full_{fmt_name}_ratio",
                f"`{fmt_name}` export rewritten whole (not incremental): time at {large:,} "
                f"/ at {small:,}",
                median(full[large][fmt_name]) / median(full[small][fmt_name]),
                "x",
                [],
                note=f"{fmt(median(full[large][fmt_name]))} s at {large:,}",
                quick=ctx.quick,
            )
        )
    rows = "".join(
        f"| `{f}`, `incremental = true` | yes | {fmt_runs(incremental[small][f])} | "
        f"{fmt_runs(incremental[large][f])} | **{fmt(ratios[f])}x** |\n"
        for f in INCREMENTAL
    ) + "".join(
        f"| `{f}` | no | {fmt_runs(full[small][f])} | {fmt_runs(full[large][f])} | "
        f"{fmt(median(full[large][f]) / median(full[small][f]))}x |\n"
        for f in FULL_FORMATS
    )
    details = (
        f"Synthetic list (60 % host entries, 40 % pages); each version adds {ADDS} and "
        f"removes {REMOVES} entries. Incremental: {VERSIONS} versions timed per size after "
        "one untimed, each the call the syncer makes after a verified commit "
        "(`apply_hashes_log`; `apply_sharded` for the shard directories, whose index "
        "lives in SQLite with `synchronous=FULL`); compactions of the hashes log among "
        f"them: {small:,}: "
        f"{sum(compactions[small])} of {len(compactions[small])}, {large:,}: "
        f"{sum(compactions[large])} of {len(compactions[large])}. Full rewrites: "
        f"`write_export` of each new version over the previous files, {FULL_REPEATS} per "
        "size and format. Files on the local disk, each write fsynced.\n\n"
        f"| export | incremental | seconds at {small:,} | seconds at {large:,} | ratio |\n"
        "|---|---|---|---|---:|\n" + rows
    )
    return Section("exports", "Exports after a 1,000-change version", figures, details)


if __name__ == "__main__":
    run_alone(run, __doc__)
