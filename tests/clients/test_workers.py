"""The clients' worker start policy (clients/common/workers.py)."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from blocklist.statedigest import StateDigest
from clients.common.workers import pool_context
from clients.isp.snapshot import PARALLEL_DIGEST_MIN, SnapshotHashes, snapshot_digest


@contextmanager
def _another_thread() -> Iterator[None]:
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def test_fork_only_while_single_threaded() -> None:
    assert threading.active_count() == 1
    assert pool_context().get_start_method() == "fork"
    with _another_thread():
        # fork would copy locks other threads hold: never fork then.
        assert pool_context().get_start_method() in ("forkserver", "spawn")


def test_parallel_digest_in_a_threaded_process_equals_the_serial_one() -> None:
    members = sorted(hashlib.sha256(b"t%d" % i).digest() for i in range(PARALLEL_DIGEST_MIN + 3))
    hashes = SnapshotHashes(b"".join(members))
    with _another_thread():
        parallel = snapshot_digest(hashes, workers=2)
    assert parallel.digest() == StateDigest.from_hashes(members).digest()
