"""Named steps of a sync and of a state commit, announced as they are reached.

A crash at any of these steps must leave the old or the new verified list,
never a mix (DESIGN.md "ISP sync, fail closed"). Production code calls
:func:`reached` at each one and it does nothing; the kill -9 fault tests
(``tests/faults/kill_runner.py``) replace it in the child process they run
so the real process SIGKILLs itself at an exact step. The crash hook is
theirs: no environment variable or signal of the tests lives here.

The step names, in the order a sync reaches them: ``sync:checkpoint``,
``sync:verified``, ``commit:begin``, ``commit:hashes`` (between batches of
rows), ``commit:meta``, ``commit:before-commit``, ``commit:after-commit``,
``sync:committed``, ``sync:export``.
"""

from __future__ import annotations


def reached(step: str) -> None:
    """Announce that the sync or the commit reached ``step`` (a no-op seam)."""


__all__ = ["reached"]
