"""What a test does when something it needs is missing: skip, or fail in CI.

CI must never silently skip a real component (a database server, a DNS
server, a proxy): under ``CI=true`` a missing one is a failure.
"""

from __future__ import annotations

import os
import shutil
from typing import NoReturn

import pytest


def in_ci() -> bool:
    """Whether the tests run in CI (``CI=true``)."""
    return os.environ.get("CI", "").strip().lower() == "true"


def missing(message: str) -> NoReturn:
    """Skip the test because of ``message``; under CI fail it instead."""
    if in_ci():
        pytest.fail(f"CI=true but {message}")
    pytest.skip(message)


def require_program(program: str, packages: str) -> str:
    """The path of ``program`` (also searched in the sbin directories).

    Args:
        program: the executable's name.
        packages: the Debian packages that provide it, named in the message.

    Returns:
        The executable's path; when it is absent the test is skipped (failed in CI).
    """
    path = shutil.which(program, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")
    if path is None:
        missing(f"{program} is not installed (Debian: {packages})")
    return path
