"""A snapshot whose state digest does not match the signed statement.

The snapshot carries no signature: the client recomputes its state digest
and compares it with statement N's ``state``, N being proven included in a
fresh checkpoint. A first sync that gets a wrong snapshot holds nothing; a
resync after local corruption that gets a wrong snapshot keeps what it had.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

import httpx
import pytest
from support.attack_helpers import World, replacing, sha

from clients.isp.store import DB_NAME

Edit = Callable[[list[bytes]], list[bytes]]


def _swap_one(hashes: list[bytes]) -> list[bytes]:
    return sorted([*hashes[1:], sha("example.org/not-listed")])


CASES: dict[str, tuple[Edit, str]] = {
    "one hash replaced": (_swap_one, "state_mismatch"),
    "one hash missing": (lambda h: h[1:], "state_mismatch"),
    "one hash more": (lambda h: sorted([*h, sha("example.org/extra")]), "oversize"),
    "unsorted": (lambda h: [h[1], h[0], *h[2:]], "format_error"),
    "duplicate instead of one": (lambda h: [h[0], h[0], *h[2:]], "format_error"),
    "empty": (lambda h: [], "state_mismatch"),
    "partial hash": (lambda h: [*h[:-1], h[-1][:31]], "state_mismatch"),
}


def _served(edit: Edit) -> Callable[[httpx.Request, httpx.Response], httpx.Response]:
    def tamper(request: httpx.Request, response: httpx.Response) -> httpx.Response:
        raw = response.content
        hashes = [raw[i : i + 32] for i in range(0, len(raw), 32)]
        return httpx.Response(
            200,
            content=b"".join(edit(hashes)),
            headers={"Cleanfeed-Version": response.headers["Cleanfeed-Version"]},
        )

    return tamper


@pytest.mark.parametrize("case", list(CASES))
def test_bad_snapshot_on_first_sync(world: World, case: str) -> None:
    w = world
    for label in ("a", "b", "c"):
        w.add(w.url(label))
    w.publish()
    before = w.held()
    edit, reason = CASES[case]
    w.proxy.tamper = replacing(snapshot=_served(edit))
    w.assert_rejected(w.sync(), reason, before)
    assert w.held().version is None
    # The honest snapshot is taken afterwards.
    w.proxy.tamper = None
    assert w.sync().version_after == 1


def test_bad_snapshot_when_repairing_local_corruption(synced: World) -> None:
    w = synced
    with sqlite3.connect(w.state_dir / DB_NAME) as raw:
        raw.execute("DELETE FROM hashes WHERE hash = (SELECT MIN(hash) FROM hashes)")
    raw.close()
    before = w.held()
    w.proxy.tamper = replacing(snapshot=_served(_swap_one))
    outcome = w.sync(config=w.configured(full_check_interval=0))
    w.assert_rejected(outcome, "state_mismatch", before)
