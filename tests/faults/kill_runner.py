"""Run the ``cleanfeed`` CLI, SIGKILLing the process at one named step.

Usage: ``python tests/faults/kill_runner.py STEP cleanfeed-arguments...``.
Replaces the no-op :func:`clients.isp.steps.reached` seam before the CLI
starts, so the real process dies at exactly ``STEP`` (no mock of the code
under test): the crash hook of tests/faults/test_isp_kill.py, owned here
rather than by production code.
"""

from __future__ import annotations

import os
import signal
import sys

from clients.isp import steps


def main() -> None:
    """Install the kill at ``sys.argv[1]`` and run the CLI on the rest."""
    target = sys.argv.pop(1)

    def kill_at(step: str) -> None:
        if step == target:
            os.kill(os.getpid(), signal.SIGKILL)

    steps.reached = kill_at
    from cleanfeed.cli import main as cli_main

    cli_main()


if __name__ == "__main__":
    main()
