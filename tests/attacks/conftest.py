"""Fixtures of the attack suite (issue 7, "Attacks").

The world (the real service in-process and an ISP client behind a tampering
proxy) is built by ``tests/support/attack_helpers.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("fastapi")

from support.attack_helpers import World


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
