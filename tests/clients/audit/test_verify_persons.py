"""``cleanfeed audit verify``: approvals come from distinct, enabled persons (issue 15 item 6).

A full bundle of the real service, with persons approving through their
tokens, verifies; a server that forges an approval record (by a person
without the analyst role, by a disabled person, by the entry's own
opener, or by a person's token without naming the person) fails
``audit.persons`` even though its chains are consistently hashed.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from support import accounts_testing
from support.accounts_testing import Clock, enrolled_person, login_at
from support.api_testing import MAIN, ApiClient, Deployment, close_deployment, make_deployment

from api import accounts
from api.context import AppContext
from blocklist.auditlog import Action
from blocklist.store import accounts as store_accounts
from blocklist.store import audit as store_audit
from blocklist.store import lists as store_lists
from blocklist.store.models import AuditRow
from clients.audit.bundle import Bundle, loads
from clients.audit.report import CHECK_PERSONS, AuditReport
from clients.audit.verify import verify_bundle


class Hotline:
    """A deployment where ana and ben are persons (analysts), carl an auditor."""

    def __init__(self, root: Path) -> None:
        self.d: Deployment = make_deployment(root)
        self.client = ApiClient(self.d.app)
        self.ctx: AppContext = self.d.app.state.cf
        self.clock = Clock()
        self.people: dict[str, accounts_testing.Person] = {}
        self.tokens: dict[str, str] = {}
        for name, grants in (
            ("ana", [("analyst", "*")]),
            ("ben", [("analyst", MAIN)]),
            ("carl", [("auditor", MAIN)]),
        ):
            person = enrolled_person(self.ctx, name, grants, clock=self.clock)
            self.people[name] = person
            _, session = login_at(self.ctx, person, self.clock)
            role = "auditor" if name == "carl" else "analyst"
            lst = None if name == "ana" else MAIN
            token, _ = accounts.mint_person_token(self.ctx, session, role, lst, f"{name}-api")
            self.tokens[name] = token
        with self.d.db.read() as s:
            self.list_id = store_lists.get_list(s, MAIN).id

    def close(self) -> None:
        self.client.close()
        close_deployment(self.d)

    def post(self, path: str, token: str, body: Any = None) -> Any:
        r = self.client.post(f"/v1/lists/{MAIN}{path}", token=token, json=body or {})
        assert r.status_code in (200, 201), r.text
        return r.json()

    def add(self, url: str, who: str = "ana") -> int:
        entry = self.post(
            "/entries", self.tokens[who], {"url": url, "scope": "page", "reason": "r"}
        )
        return int(entry["id"])

    def forge_approval(self, entry_id: int, actor: str, person: int | None) -> None:
        """What a compromised server would write: a well-hashed approval record."""
        with self.d.db.transaction() as s:
            entry_hash = s.execute(
                select(AuditRow.details).where(
                    AuditRow.entry_id == entry_id, AuditRow.action == Action.ENTRY_ADD
                )
            ).scalar_one()["hash"]
            details: dict[str, object] = {
                "hash": entry_hash,
                "round": 1,
                "approvals": 1,
                "required": 1,
                "status": "active",
            }
            if person is not None:
                details["person"] = person
            store_audit.append(
                s,
                list_id=self.list_id,
                actor=actor,
                action=Action.ENTRY_APPROVE,
                entry_id=entry_id,
                details=details,
                now=self.clock.now,
            )

    def bundle(self) -> Bundle:
        self.post("/publish", self.d.tokens.alice)
        r = self.client.get(
            f"/v1/lists/{MAIN}/audit/bundle",
            token=self.d.tokens.auditor_full,
            params={"full": "true"},
        )
        assert r.status_code == 200, r.text
        return loads(r.content)

    def verify(self) -> AuditReport:
        return verify_bundle(self.bundle(), [self.d.init.root_vkey], workers=1)


@pytest.fixture
def hotline(tmp_path: Path) -> Iterator[Hotline]:
    h = Hotline(tmp_path)
    try:
        yield h
    finally:
        h.close()


def test_approvals_by_distinct_persons_verify(hotline: Hotline) -> None:
    h = hotline
    entry_id = h.add("http://example.org/a.html")
    h.post(f"/entries/{entry_id}/approve", h.tokens["ben"])
    report = h.verify()
    assert report.ok, report.failure
    assert report.counts.person_approvals == 1
    bundle = h.bundle()
    assert bundle.global_log is not None
    actions = [r.action for r in bundle.global_log]
    assert Action.ACCOUNTS_START in actions
    assert actions.count(Action.ACCOUNT_ENROL) == 3


@pytest.mark.parametrize("forgery", ["not_analyst", "disabled", "opener", "hidden_person", "ghost"])
def test_a_forged_approval_fails_the_persons_check(hotline: Hotline, forgery: str) -> None:
    h = hotline
    entry_id = h.add("http://example.org/forged.html")
    people = h.people
    if forgery == "not_analyst":
        h.forge_approval(entry_id, "carl-api", people["carl"].account_id)
    elif forgery == "disabled":
        with h.d.db.transaction() as s:
            store_accounts.disable_account(s, "ben", actor="admin", now=h.clock.now)
        h.clock.advance(seconds=5)
        h.forge_approval(entry_id, "ben-api", people["ben"].account_id)
    elif forgery == "opener":
        h.forge_approval(entry_id, "ana-2", people["ana"].account_id)
    elif forgery == "hidden_person":
        # ben's token, with the person left out of the record.
        h.forge_approval(entry_id, "ben-api", None)
    else:
        h.forge_approval(entry_id, "ghost", 999)
    report = h.verify()
    assert not report.ok
    assert report.failure is not None
    assert report.failure.check == CHECK_PERSONS, report.failure
    assert report.failure.entry_id == entry_id


def test_approvals_before_accounts_and_by_unattached_tokens_keep_the_name_rule(
    hotline: Hotline,
) -> None:
    h = hotline
    entry_id = h.add("http://example.org/old-style.html", who="ana")
    # bob's token belongs to no person: today's rule, not this check's.
    h.post(f"/entries/{entry_id}/approve", h.d.tokens.bob)
    report = h.verify()
    assert report.ok, report.failure
    assert report.counts.person_approvals == 0
