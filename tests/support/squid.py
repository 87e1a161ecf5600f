"""Debian's Squid as a foreground process on loopback, for the end-to-end tests.

Used by tests/e2e/test_squid_helper_e2e.py (docs/isp.md's Squid lines) and
tests/e2e/test_reverify_squid.py (docs/reverification.md's egress): each
writes its own ``squid.conf``; this module finds the program, hands the
directory to Squid's user when run as root, and stops the process.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from support.release_helpers import SQUID_USER

__all__ = ["Squid", "chown_to_squid", "squid_or_skip"]

#: Seconds Squid gets to exit after SIGTERM before it is killed.
STOP_SECONDS = 30


def squid_or_skip() -> str:
    """The ``squid`` program; skips the test without it (fails it in CI).

    Raises:
        pytest.fail.Exception: in CI (``CI=true``) when Squid is missing.
        pytest.skip.Exception: elsewhere when Squid is missing.
    """
    squid = shutil.which("squid") or (
        "/usr/sbin/squid" if Path("/usr/sbin/squid").exists() else None
    )
    if squid is None:
        if os.environ.get("CI") == "true":
            pytest.fail("squid is not installed (.ci/run installs it)")
        pytest.skip("squid is not installed (Debian: squid)")
    return squid


def chown_to_squid(path: Path) -> None:
    """Give ``path`` to Squid's user when the tests run as root.

    As root Squid runs as (and starts its helpers as) ``proxy``, which must
    read its configuration and write its logs there.
    """
    if os.geteuid() == 0:
        subprocess.run(["chown", "-R", f"{SQUID_USER}:{SQUID_USER}", str(path)], check=True)


@dataclass
class Squid:
    """A running Squid: its loopback port, process, directory and service name (``-n``)."""

    port: int
    process: subprocess.Popen[bytes]
    directory: Path
    name: str

    @property
    def cache_log(self) -> str:
        """Squid's ``cache.log`` so far (empty before Squid writes it)."""
        path = self.directory / "cache.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        """Stop Squid (SIGTERM, then SIGKILL) and remove its shared memory."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=STOP_SECONDS)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        # Squid names its shared-memory segments after the service name (-n).
        for segment in Path("/dev/shm").glob(f"{self.name}-*"):
            segment.unlink(missing_ok=True)
