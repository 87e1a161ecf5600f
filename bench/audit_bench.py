"""Benchmark of the offline audit: ``verify_bundle`` on 1,000 versions x 1,000 changes.

Builds (once, cached under ``bench/out/``) a hash-only bundle of 1,000
versions of 1,000 changes each with :class:`tests.support.memory_log.MemoryLog`, the same
core the server publishes with: 900 additions and 100 removals of earlier
additions per version (the first version adds 1,000), one online key
rotation half way. Then, in the same run, times (median of ``--runs``):

- ``verify_bundle`` with the default worker count (the available CPUs),
- ``verify_bundle`` with one worker (everything in this process),
- the *bare* cost: only the Ed25519 verification of every statement and
  checkpoint note and the LtHash16 :class:`~blocklist.statedigest.StateDigest`
  update (batched per statement, digest per statement) of every change, in
  one process, on statements parsed beforehand;

and prints one JSON object with the figures and the ratios.

Usage::

    .venv/bin/python bench/audit_bench.py [--runs 3] [--versions 1000] [--changes 1000]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from blocklist.statedigest import StateDigest
from blocklist.statement import Statement
from clients.audit.bundle import KIND_HASH_ONLY, Bundle, dumps, load, save_bytes
from clients.audit.examine import default_workers
from clients.audit.verify import verify_bundle
from signer.note import Verifier, parse_note
from tests.support.memory_log import MemoryLog

OUT = Path(__file__).resolve().parent / "out"
START = datetime(2024, 1, 1, tzinfo=UTC)
ORIGIN = "bench.cleanfeed.invalid/audit"


def build(versions: int, changes: int, path: Path) -> str:
    """Build the bundle at ``path``; return the root vkey."""
    rnd = random.Random(20240101)
    log = MemoryLog(ORIGIN, now=START)
    listed: list[bytes] = []
    removes_per_version = changes // 10
    for v in range(versions):
        when = START + timedelta(minutes=10 * v)
        removes: list[bytes] = []
        if listed:
            # Remove random earlier additions (swap-pop keeps it O(1) each).
            for _ in range(removes_per_version):
                i = rnd.randrange(len(listed))
                listed[i], listed[-1] = listed[-1], listed[i]
                removes.append(listed.pop())
        adds = [rnd.randbytes(32) for _ in range(changes - len(removes))]
        log.publish(adds, removes, now=when)
        listed.extend(adds)
        if v == versions // 2:
            log.rotate_online_key(now=when)
        if (v + 1) % 100 == 0:
            print(f"built {v + 1}/{versions} versions", file=sys.stderr)
    checkpoint = log.checkpoint(now=START + timedelta(minutes=10 * versions))
    bundle = Bundle(
        kind=KIND_HASH_ONLY,
        list_name="bench",
        origin=ORIGIN,
        approvals_required=1,
        keyrings=tuple(log.keyrings),
        statements=tuple(log.statements),
        checkpoints=(checkpoint,),
    )
    save_bytes(dumps(bundle), path)
    return log.root_vkey


def bare_inputs(bundle: Bundle) -> list[tuple[Verifier, bytes, bytes, Any, Any]]:
    """Everything the bare loop needs, prepared outside the timing."""
    from blocklist.keyring import Keyring

    keys: dict[int, list[Any]] = {}
    for note in bundle.keyrings:
        keyring = Keyring.parse(parse_note(note).text)
        keys[keyring.serial] = [(Verifier.from_vkey(r.vkey), r) for r in keyring.keys]
    inputs = []
    for note in bundle.statements:
        parsed = parse_note(note)
        statement = Statement.parse(parsed.text)
        verifier = next(v for v, r in keys[statement.keyring] if r.contains(statement.version))
        sig = next(s for s in parsed.signatures if s.key_id == verifier.key_id).signature
        inputs.append(
            (verifier, parsed.text.encode("ascii"), sig, statement.adds, statement.removes)
        )
    for note in bundle.checkpoints:
        parsed = parse_note(note)
        latest = keys[max(keys)]
        verifier = next(v for v, r in latest if r.is_open)
        sig = next(s for s in parsed.signatures if s.key_id == verifier.key_id).signature
        inputs.append((verifier, parsed.text.encode("utf-8"), sig, (), ()))
    return inputs


def bare(inputs: list[tuple[Verifier, bytes, bytes, Any, Any]]) -> tuple[float, float]:
    """Ed25519 verifications + batched StateDigest updates, nothing else.

    Returns wall-clock and CPU seconds.
    """
    started, cpu = time.perf_counter(), time.process_time()
    state = StateDigest()
    for verifier, message, sig, adds, removes in inputs:
        if not verifier.verify(message, sig):
            raise SystemExit("bare: a signature did not verify")
        if adds or removes:
            state.update(adds, removes)
            state.digest()
    return time.perf_counter() - started, time.process_time() - cpu


def timed_verify(bundle: Bundle, root_vkey: str, workers: int) -> tuple[float, float]:
    """Wall-clock and CPU seconds of this process (workers' CPU is not included)."""
    started, cpu = time.perf_counter(), time.process_time()
    report = verify_bundle(bundle, [root_vkey], workers=workers, now=START + timedelta(days=30))
    elapsed = time.perf_counter() - started, time.process_time() - cpu
    if not report.ok:
        raise SystemExit(f"the benchmark bundle did not verify: {report.failure}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--versions", type=int, default=1000)
    parser.add_argument("--changes", type=int, default=1000)
    args = parser.parse_args()

    OUT.mkdir(exist_ok=True)
    path = OUT / f"audit-bundle-{args.versions}x{args.changes}.json"
    vkey_path = path.with_suffix(".vkey")
    if not path.exists() or not vkey_path.exists():
        started = time.perf_counter()
        vkey_path.write_text(build(args.versions, args.changes, path) + "\n")
        print(f"built {path} in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    root_vkey = vkey_path.read_text().strip()

    started = time.perf_counter()
    bundle = load(path)
    load_seconds = time.perf_counter() - started

    workers = default_workers(bundle.statements)
    parallel = [timed_verify(bundle, root_vkey, workers) for _ in range(args.runs)]
    single = [timed_verify(bundle, root_vkey, 1) for _ in range(args.runs)]
    inputs = bare_inputs(bundle)
    bare_runs = [bare(inputs) for _ in range(args.runs)]

    changes = sum(len(i[3]) + len(i[4]) for i in inputs)
    verify_median = statistics.median(w for w, _ in parallel)
    single_median = statistics.median(w for w, _ in single)
    single_cpu = statistics.median(c for _, c in single)
    bare_median = statistics.median(w for w, _ in bare_runs)
    bare_cpu = statistics.median(c for _, c in bare_runs)
    print(
        json.dumps(
            {
                "bundle": str(path.relative_to(OUT.parent.parent)),
                "bundle_bytes": path.stat().st_size,
                "versions": len(bundle.statements),
                "changes": changes,
                "load_seconds": round(load_seconds, 3),
                "workers": workers,
                "verify_seconds_median": round(verify_median, 3),
                "verify_seconds_runs": [round(w, 3) for w, _ in parallel],
                "verify_one_worker_seconds_median": round(single_median, 3),
                "verify_one_worker_seconds_runs": [round(w, 3) for w, _ in single],
                "verify_one_worker_cpu_seconds_median": round(single_cpu, 3),
                "bare_seconds_median": round(bare_median, 3),
                "bare_seconds_runs": [round(w, 3) for w, _ in bare_runs],
                "bare_cpu_seconds_median": round(bare_cpu, 3),
                "ratio": round(verify_median / bare_median, 3),
                "ratio_one_worker": round(single_median / bare_median, 3),
                "ratio_one_worker_cpu": round(single_cpu / bare_cpu, 3),
                "load_average_1min": round(os.getloadavg()[0], 2),
                "cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
                "python": platform.python_version(),
                "machine": platform.machine(),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
