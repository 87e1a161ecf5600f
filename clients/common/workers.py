"""How the clients start worker processes: one policy, one reason.

Every process pool of the clients (the auditor's parallel examination, the
ISP client's parallel snapshot digest and its batch ``check``) starts its
workers with :func:`pool_context`: ``forkserver``, or ``spawn`` where the
platform lacks it, never a plain ``fork``.

The reason: a pool may be opened by a process that runs threads (the ISP
daemon's scheduler and block page, a CLI's progress display, a test
runner). ``fork`` copies only the calling thread, so a lock another thread
held at that moment (logging, an allocator, a connection pool) stays held
forever in the child; CPython deprecates forking a threaded process for
that reason (3.12) and makes ``forkserver`` the POSIX default (3.14). The
cost is that workers inherit nothing: each pool passes its inputs
explicitly (an ``initializer`` or the mapped arguments), and its worker
functions live in modules that are cheap to import and have no import-time
side effects (the main module is re-imported under ``__mp_main__``, and the
``cleanfeed`` entry points guard their ``main()`` call).
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.context


def pool_context() -> multiprocessing.context.BaseContext:
    """The start method for a worker pool: ``forkserver``, else ``spawn``."""
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")


__all__ = ["pool_context"]
