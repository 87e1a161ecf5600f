"""``cleanfeed audit verify`` checks the safeguard decisions (issue 16 item 5).

Full bundles built by :class:`support.audit_helpers.FullLog` (the service's
decisions modelled record by record), extended here with the safeguard
records the store writes (:mod:`blocklist.store.guards`): a guarded entry
needs an eligible ``entry.guard_approve`` before it is listed; a referred
entry is never listed; an override needs a reason; a ``system:`` expiry is
backed only when it is a decision the auditor can check (a scheduled time
an analyst set, or ``gone`` from two vantage points).
"""

from __future__ import annotations

from typing import Any

from support.audit_helpers import FullLog, assert_audit_failed, page, run

from blocklist.auditlog import Action
from blocklist.encoding import b64encode

REVERIFY = "system:reverify"


def _add_guarded(f: FullLog, url: str, guard: str = "example.org", scope: str = "prefix") -> int:
    """An entry.add record carrying its guard rule, as the store writes it."""
    from blocklist.canonical import expression

    expr = expression(url, scope)
    eid = f._new_entry(expr, url, scope, "abuse material", "case-1", "test", "alice")
    e = f.entries[eid]
    f.record(
        "alice",
        Action.ENTRY_ADD,
        eid,
        {
            "guard": guard,
            "hash": b64encode(e.hash),
            "scope": scope,
            "reason": "abuse material",
            "reference": "case-1",
            "category": "test",
            "hosting_country": None,
            "expires_at": None,
            "status": "pending",
        },
    )
    return eid


def _approve_pending(f: FullLog, eid: int, *actors: str) -> None:
    """Four-eyes approvals that leave a guarded/referred entry pending."""
    e = f.entries[eid]
    for actor in actors:
        e.approvers.add(actor)
        f.record(
            actor,
            Action.ENTRY_APPROVE,
            eid,
            {
                "hash": b64encode(e.hash),
                "round": e.round,
                "approvals": len(e.approvers),
                "required": f.required,
                "status": "pending",
            },
        )


def _guard_approve(f: FullLog, eid: int, actor: str = "admin", **overrides: Any) -> None:
    e = f.entries[eid]
    e.status = "active"
    details: dict[str, Any] = {
        "hash": b64encode(e.hash),
        "guard": "example.org",
        "round": e.round,
        "justification": "the directory is dedicated to abuse material",
        "status": "active",
    }
    details.update(overrides)
    f.record(actor, Action.ENTRY_GUARD_APPROVE, eid, details)


def _propose(f: FullLog, eid: int) -> None:
    e = f.entries[eid]
    f.record(
        "alice",
        Action.ENTRY_HOSTING,
        eid,
        {
            "hash": b64encode(e.hash),
            "verified": True,
            "addresses": [{"address": "192.0.2.5", "country": "GB", "cdn": False}],
            "countries": ["GB"],
            "database": "test",
            "resolver": "127.0.0.1:53",
            "checked_at": "2024-01-01T00:00:00Z",
            "error": None,
        },
    )
    f.record(
        "alice",
        Action.ENTRY_REFER_PROPOSE,
        eid,
        {
            "hash": b64encode(e.hash),
            "home_country": "GB",
            "at": "2024-01-01T00:00:00Z",
            "status": e.status,
        },
    )


def _referred_and_decided(f: FullLog, actor: str, action: str, status: str, reason: str) -> int:
    """A page proposed for referral, approved by bob, then decided by ``actor``."""
    eid = f.add(page(1))
    _propose(f, eid)
    _approve_pending(f, eid, "bob")
    e = f.entries[eid]
    e.status = status
    f.record(actor, action, eid, {"hash": b64encode(e.hash), "reason": reason, "status": status})
    return eid


# --- guard approvals -------------------------------------------------------------


def test_a_guarded_entry_listed_after_an_eligible_guard_approval_verifies() -> None:
    f = FullLog(2)
    eid = _add_guarded(f, "http://files.example.org/dir/")
    _approve_pending(f, eid, "bob", "carol")
    _guard_approve(f, eid)
    f.publish()
    report = run(f.bundle(), f, now=f.now)
    assert report.ok, report.failure


def test_a_guarded_entry_listed_without_a_guard_approval_fails() -> None:
    f = FullLog(2)
    eid = _add_guarded(f, "http://files.example.org/dir/")
    _approve_pending(f, eid, "bob", "carol")
    f.force_adds = [eid]
    f.publish()
    assert_audit_failed(
        f, "audit.addition", "without an administrator's guard approval", version=1, entry_id=eid
    )


def test_a_guard_approval_by_the_creator_or_an_approver_is_forged() -> None:
    for actor in ("alice", "bob"):
        f = FullLog(2)
        eid = _add_guarded(f, "http://files.example.org/dir/")
        _approve_pending(f, eid, "bob", "carol")
        _guard_approve(f, eid, actor=actor)
        f.publish()
        assert_audit_failed(f, "audit.safeguards", "who added, reinstated or approved")


def test_a_guard_approval_without_justification_or_before_four_eyes_is_forged() -> None:
    f = FullLog(2)
    eid = _add_guarded(f, "http://files.example.org/dir/")
    _approve_pending(f, eid, "bob", "carol")
    _guard_approve(f, eid, justification="  ")
    f.publish()
    assert_audit_failed(f, "audit.safeguards", "without a written justification")

    f = FullLog(2)
    eid = _add_guarded(f, "http://files.example.org/dir/")
    _approve_pending(f, eid, "bob")
    _guard_approve(f, eid)
    f.publish()
    assert_audit_failed(f, "audit.safeguards", "before the entry had its four-eyes")


# --- referrals -------------------------------------------------------------------


def test_a_referred_entry_never_listed_verifies_and_listing_it_fails() -> None:
    f = FullLog(1)
    eid = _referred_and_decided(f, "carol", Action.ENTRY_REFER, "referred", "home")
    f.add_approved(page(2))
    f.publish()
    report = run(f.bundle(), f, now=f.now)
    assert report.ok, report.failure
    f.tick()
    f.force_adds = [eid]
    f.publish()
    assert_audit_failed(f, "audit.addition", "which analysts referred", version=2)


def test_an_entry_listed_while_its_referral_is_undecided_fails() -> None:
    f = FullLog(1)
    eid = f.add(page(1))
    _propose(f, eid)
    _approve_pending(f, eid, "bob")
    f.force_adds = [eid]
    f.publish()
    assert_audit_failed(f, "audit.addition", "referral proposal was undecided")


def test_an_override_needs_a_reason_and_an_open_proposal() -> None:
    f = FullLog(1)
    _referred_and_decided(f, "admin", Action.ENTRY_REFER_OVERRIDE, "active", "geolocation is stale")
    f.publish()
    report = run(f.bundle(), f, now=f.now)
    assert report.ok, report.failure

    f = FullLog(1)
    _referred_and_decided(f, "admin", Action.ENTRY_REFER_OVERRIDE, "active", "")
    f.publish()
    assert_audit_failed(f, "audit.safeguards", "without a reason")

    f = FullLog(1)
    eid = f.add_approved(page(1))
    e = f.entries[eid]
    f.record(
        "admin",
        Action.ENTRY_REFER_OVERRIDE,
        eid,
        {"hash": b64encode(e.hash), "reason": "r", "status": "active"},
    )
    f.publish()
    assert_audit_failed(f, "audit.safeguards", "no open referral proposal")


# --- system expiries ---------------------------------------------------------------


def _system_expire(f: FullLog, eid: int, actor: str, details: dict[str, Any]) -> None:
    e = f.entries[eid]
    e.status = "expired"
    f.record(
        actor, Action.ENTRY_EXPIRE, eid, {"hash": b64encode(e.hash), "status": "expired", **details}
    )


def test_a_reverify_expiry_seen_gone_from_two_vantage_points_backs_a_removal() -> None:
    f = FullLog(1)
    eid = f.add_approved(page(1))
    f.publish()
    f.tick()
    _system_expire(f, eid, REVERIFY, {"reason": "gone", "vantage_points": [_gone("a"), _gone("b")]})
    f.publish()
    report = run(f.bundle(), f, now=f.now)
    assert report.ok, report.failure


def _gone(name: str) -> dict[str, str]:
    """One vantage point's observation as the re-verification job records it."""
    return {"name": name, "status": "gone"}


def test_system_expiries_the_auditor_cannot_check_are_refused() -> None:
    for actor, details in (
        (REVERIFY, {"reason": "gone", "vantage_points": [_gone("a")]}),
        (REVERIFY, {"reason": "gone", "vantage_points": [_gone("a"), _gone("a")]}),
        (REVERIFY, {"reason": "appeal", "vantage_points": [_gone("a"), _gone("b")]}),
        ("system:retention", {"reason": "gone", "vantage_points": [_gone("a"), _gone("b")]}),
        ("system:somebody", {"reason": "scheduled expiry"}),
    ):
        f = FullLog(1)
        eid = f.add_approved(page(1))
        f.publish()
        f.tick()
        _system_expire(f, eid, actor, details)
        f.publish()
        expected = (
            "system:reverify expiry without reason 'gone'"
            if actor == REVERIFY
            else "a system expiry that no analyst"
        )
        assert_audit_failed(f, "audit.removal", expected)
