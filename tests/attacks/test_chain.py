"""A statement chain with a gap, a duplicate, a reordering or a wrong ``previous``.

The server (or a proxy) serves genuine, validly signed statements, but not
the sequence the checkpoint commits to: one left out (hiding a removal or
an addition), one repeated, two swapped, the chain cut short, or a
``next`` cursor that lies. Statement ``N+2`` whose ``previous`` is not
statement ``N+1``'s text hash needs the online key. Each is rejected before
anything is applied.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from support.attack_helpers import Forger, World, replacing, sha

Reshape = Callable[[list[str]], dict[str, object]]

CASES: dict[str, tuple[Reshape, str]] = {
    "gap": (lambda s: {"statements": [s[0], s[2]], "next": None}, "chain_broken"),
    "gap at the start": (lambda s: {"statements": s[1:], "next": None}, "chain_broken"),
    "duplicate": (lambda s: {"statements": [s[0], s[0], s[1], s[2]], "next": None}, "chain_broken"),
    "reorder": (lambda s: {"statements": [s[1], s[0], s[2]], "next": None}, "chain_broken"),
    "cut short": (lambda s: {"statements": s[:2], "next": None}, "chain_broken"),
    "nothing": (lambda s: {"statements": [], "next": None}, "chain_broken"),
    "lying next": (lambda s: {"statements": s[:1], "next": 9}, "format_error"),
    "next going back": (lambda s: {"statements": s[:1], "next": 0}, "format_error"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_statement_sequence_attack(synced: World, case: str) -> None:
    w = synced
    for label in ("c3", "c4", "c5"):
        w.add(w.url(label))
        w.publish()
    before = w.held()
    real = w.statements_page(2)["statements"]
    assert len(real) == 3
    reshape, reason = CASES[case]
    w.proxy.tamper = replacing(statements=reshape(real))
    w.assert_rejected(w.sync(), reason, before)
    # The honest page is applied afterwards: the rejection was about the chain.
    w.proxy.tamper = None
    assert w.sync().version_after == 5


def test_wrong_previous_inside_a_batch(synced: World) -> None:
    w = synced
    before = w.held()
    forger = Forger(w)
    third = forger.statement([sha("example.org/3")])
    after = forger.digest.copy()
    after.update([sha("example.org/3")], [])
    after.update([sha("example.org/4")], [])
    # Statement 4, validly signed and right in every other line, but chained
    # to some other statement 3.
    fourth = forger.statement(
        [sha("example.org/4")],
        version=4,
        previous=sha("some other statement 3"),
        count=forger.tip.count + 2,
        state=after.digest(),
    )
    head = forger.checkpoint([third, fourth])
    w.proxy.tamper = replacing(
        checkpoint=head, statements={"statements": [third, fourth], "next": None}
    )
    w.assert_rejected(w.sync(), "chain_broken", before)
