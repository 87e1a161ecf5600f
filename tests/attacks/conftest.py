"""Fixtures of the attack suite (issue 7, "Attacks").

The suite runs with ``--import-mode=importlib``: this directory (for
``attack_helpers``), ``tests/api`` (for ``api_testing``, the real service
in-process) and ``tests/clients/isp`` (for ``isp_helpers``, the ASGI bridge
and the tampering proxy) are put on ``sys.path``.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

_HERE = Path(__file__).resolve().parent
for _path in (_HERE, _HERE.parent / "api", _HERE.parent / "clients" / "isp"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

pytest.importorskip("fastapi")

from attack_helpers import World  # noqa: E402


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    """The real service in-process and an ISP client behind a tampering proxy."""
    w = World(tmp_path)
    try:
        yield w
    finally:
        w.close()


@pytest.fixture
def synced(world: World) -> World:
    """A world whose ISP client holds version 2 (first sync v1, then an incremental sync)."""
    world.add(world.url("first"))
    world.add(world.url("second"), scope="prefix")
    assert world.publish() == 1
    outcome = world.sync()
    assert outcome.status == "updated", outcome
    world.add(world.url("third"))
    assert world.publish() == 2
    outcome = world.sync()
    assert outcome.status == "updated", outcome
    assert outcome.version_after == 2, outcome
    return world
