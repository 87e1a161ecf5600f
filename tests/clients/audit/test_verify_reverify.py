"""The auditor's check of re-verification expiries (issue 16 items 4 and 5).

An ``entry.expire`` by ``system:reverify`` (``auto_expire_gone``) backs a
removal only with reason ``gone`` and at least two distinct vantage points
that all saw the entry gone (:func:`blocklist.verification.vantage_agreement`).
Each forged variant below is otherwise a valid, signed history (the
statements commit to the forged chain), so only that check can catch it.
"""

from __future__ import annotations

from typing import Any

import pytest
from support.audit_helpers import FullLog, assert_audit_failed, page, run

from blocklist.auditlog import Action, Actor
from blocklist.encoding import b64encode, format_time

AGREED: list[dict[str, Any]] = [
    {"name": "egress-a", "status": "gone", "dns": "nxdomain"},
    {"name": "egress-b", "status": "gone", "dns": "ok", "http_status": 410},
]


def _system_expiry(f: FullLog, eid: int, details: dict[str, Any], *, actor: str) -> None:
    """Record a system expiry of ``eid`` with ``details`` merged in, then publish."""
    f.tick()
    e = f.entries[eid]
    e.status = "expired"
    e.expires_at = f.now
    f.record(
        actor,
        Action.ENTRY_EXPIRE,
        eid,
        {
            "hash": b64encode(e.hash),
            "at": format_time(f.now),
            "status": "expired",
            "consecutive_gone": 3,
            **details,
        },
    )
    f.publish()


def _listed(f: FullLog) -> int:
    eid = f.add_approved(page(1))
    f.publish()
    f.tick()
    e = f.entries[eid]
    f.record(
        Actor.REVERIFY,
        Action.ENTRY_VERIFY_PROPOSE_EXPIRY,
        eid,
        {"hash": b64encode(e.hash), "consecutive_gone": 3, "threshold": 3},
    )
    return eid


def test_a_reverify_expiry_with_agreeing_vantage_points_verifies() -> None:
    f = FullLog(1)
    eid = _listed(f)
    _system_expiry(f, eid, {"reason": "gone", "vantage_points": AGREED}, actor=Actor.REVERIFY)
    report = run(f.bundle(), f, now=f.now)
    assert report.ok, report.failure


@pytest.mark.parametrize(
    ("details", "what"),
    [
        ({"reason": "analyst", "vantage_points": AGREED}, "another reason"),
        ({"reason": "gone"}, "no vantage points recorded"),
        ({"reason": "gone", "vantage_points": AGREED[:1]}, "one vantage point"),
        ({"reason": "gone", "vantage_points": [AGREED[0], AGREED[0]]}, "one point twice"),
        (
            {
                "reason": "gone",
                "vantage_points": [AGREED[0], {**AGREED[1], "status": "live"}],
            },
            "vantage points disagree",
        ),
        ({"reason": "gone", "vantage_points": "egress-a,egress-b"}, "not a list"),
    ],
)
def test_a_forged_reverify_expiry_fails(details: dict[str, Any], what: str) -> None:
    f = FullLog(1)
    eid = _listed(f)
    _system_expiry(f, eid, details, actor=Actor.REVERIFY)
    assert_audit_failed(
        f,
        "audit.removal",
        "a system:reverify expiry without reason 'gone' agreed by at least two vantage points",
        entry_id=eid,
    )


def test_another_system_actor_cannot_borrow_the_gone_reason() -> None:
    f = FullLog(1)
    eid = _listed(f)
    _system_expiry(f, eid, {"reason": "gone", "vantage_points": AGREED}, actor=Actor.EXPIRY)
    assert_audit_failed(
        f, "audit.removal", "a system expiry that no analyst scheduled", entry_id=eid
    )
