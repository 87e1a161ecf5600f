"""How the clients start worker processes: one policy, one reason.

Every process pool of the clients takes its start method from
:func:`pool_context` (the ISP client's parallel snapshot digest and batch
``check``, the auditor's parallel examination), and every pool hands its workers
their inputs explicitly (an ``initializer`` or the mapped arguments), so
the workers behave the same under any start method.

The policy: ``fork`` while the calling process runs a single thread,
otherwise ``forkserver`` (``spawn`` where the platform lacks it). The one
reason: ``fork`` copies only the calling thread, so a lock another thread
held at that moment (logging, an allocator, a connection pool) would stay
held forever in the child; CPython deprecates forking a threaded process
for that reason (3.12). With a single thread there is no such lock, and
``fork`` starts workers at no cost (inputs shared copy-on-write, nothing
re-imported), which the batch ``check`` benchmark depends on. A process
that runs threads (the ISP daemon, a CLI's progress display, a test
runner) gets ``forkserver``: workers fork from a small, single-threaded
server that imports only the modules named in ``preload``.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.context
import threading
from collections.abc import Sequence


def pool_context(preload: Sequence[str] = ()) -> multiprocessing.context.BaseContext:
    """The start method for a worker pool (see the module docstring).

    Args:
        preload: the modules that hold the pool's worker functions. A fork
            server imports them (and not the main module, the whole CLI)
            once; it applies when the fork server starts (the first such
            pool of the process), later pools reuse that server.

    Returns:
        A ``fork`` context in a single-threaded process, else
        ``forkserver``, else ``spawn``.
    """
    methods = multiprocessing.get_all_start_methods()
    if "fork" in methods and threading.active_count() == 1:
        return multiprocessing.get_context("fork")
    if "forkserver" not in methods:
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    if preload:
        context.set_forkserver_preload(list(preload))
    return context


__all__ = ["pool_context"]
