"""Contract: persons' accounts, roles, second-admin grants, tokens, four-eyes (both backends).

Issue 15 items 1, 2, 4, 5 and 6 at the store level: every account change is
a record of the global audit chain; four-eyes counts persons, so two
tokens of one person are one person.
"""

from __future__ import annotations

from collections.abc import Callable

import pyotp
import pytest
from sqlalchemy import select
from support.contract_helpers import NOW, later

from blocklist.auditlog import Action
from blocklist.store import Database, InvalidState, NotFound, PermissionDenied
from blocklist.store import accounts as store_accounts
from blocklist.store import audit as store_audit
from blocklist.store import entries as store_entries
from blocklist.store import imports as store_imports
from blocklist.store import tokens as store_tokens
from blocklist.store.accounts import AccountSecrets, RoleGrant
from blocklist.store.errors import (
    AccountNameTaken,
    AnalystTokenNeedsPerson,
    DuplicateApproval,
    EnrolmentInvalid,
    InvalidField,
    SecondAdminRequired,
    SelfApproval,
    TokenNameTaken,
)
from blocklist.store.models import AccountRoleRow, PendingGrantRow

Unchanged = Callable[..., None]
KEYS = AccountSecrets(bytes(range(32)))
URL = "http://203.0.113.7/abuse/a.html"


def create(db: Database, name: str, *grants: tuple[str, str]) -> tuple[str, int]:
    with db.transaction() as s:
        token, row, _ = store_accounts.create_account(
            s, name=name, grants=[RoleGrant(r, lst) for r, lst in grants], actor="test", now=NOW
        )
        return token, row.id


def global_actions(db: Database) -> list[str]:
    with db.read() as s:
        return [r.action for r in store_audit.records(s, None)]


def global_records(db: Database) -> list[store_audit.AuditRecord]:
    with db.read() as s:
        return list(store_audit.records(s, None))


def test_create_records_start_create_and_grant(db: Database, list_id: int) -> None:
    token, account_id = create(db, "ana", ("analyst", "main"))
    assert len(token) >= 43
    with db.read() as s:
        view = store_accounts.account_view(s, store_accounts.get_account(s, account_id))
        assert not view.enrolled
        assert view.roles == (RoleGrant("analyst", "main"),)
        assert view.enrol_expires_at == later(hours=72)
        row = store_accounts.get_account(s, account_id)
        assert row.enrol_token_hash is not None
        assert token.encode() not in row.enrol_token_hash
    records = global_records(db)
    assert [r.action for r in records] == [
        Action.ACCOUNTS_START,
        Action.ACCOUNT_CREATE,
        Action.ACCOUNT_GRANT,
    ]
    assert records[2].details["role"] == "analyst"
    assert records[2].details["list"] == "main"
    assert records[2].details["status"] == "granted"
    create(db, "ben", ("auditor", "*"))
    assert global_actions(db).count(Action.ACCOUNTS_START) == 1  # once only
    with db.read() as s:
        assert store_audit.verify(s, None)


def test_bad_creations_change_nothing(db: Database, list_id: int, unchanged: Unchanged) -> None:
    create(db, "ana", ("analyst", "*"))

    def attempt(name: str, *grants: RoleGrant, hours: int = 72) -> Callable[[], object]:
        def run() -> object:
            with db.transaction() as s:
                return store_accounts.create_account(
                    s, name=name, grants=list(grants), actor="test", enrol_hours=hours, now=NOW
                )

        return run

    unchanged(attempt("ana", RoleGrant("analyst", "*")), AccountNameTaken)
    unchanged(attempt("bad name", RoleGrant("analyst", "*")), InvalidField)
    unchanged(attempt("x"), InvalidField)  # no role
    unchanged(attempt("x", RoleGrant("isp", "main")), InvalidField)
    unchanged(attempt("x", RoleGrant("admin", "main")), InvalidField)
    unchanged(attempt("x", RoleGrant("analyst", "nope")), NotFound)
    unchanged(attempt("x", RoleGrant("analyst", "*"), hours=0), InvalidField)


def enrol(db: Database, token: str) -> str:
    with db.transaction() as s:
        _, secret = store_accounts.enrolment_secret(s, token, KEYS, now=NOW)
    with db.transaction() as s:
        store_accounts.complete_enrolment(
            s, token, "a long enough passphrase", pyotp.TOTP(secret).at(NOW), KEYS, now=NOW
        )
    return secret


def test_enrol_reset_and_disable(db: Database, list_id: int) -> None:
    token, account_id = create(db, "ana", ("analyst", "*"))
    enrol(db, token)
    with db.read() as s:
        row = store_accounts.get_account(s, account_id)
        assert row.password_hash is not None
        assert store_accounts.check_password(row, "a long enough passphrase")
        assert not store_accounts.check_password(row, "a long enough passphrasE")
    with pytest.raises(EnrolmentInvalid), db.transaction() as s:
        store_accounts.enrolment_account(s, token, now=NOW)
    with db.transaction() as s:
        new_token, row = store_accounts.reset_account(s, "ana", actor="admin-1", now=later(days=1))
        assert row.password_hash is None
        assert row.totp_secret is None
    assert new_token != token
    enrol(db, new_token)
    with db.transaction() as s:
        store_accounts.disable_account(s, "ana", actor="admin-1", now=later(days=2))
    with pytest.raises(InvalidState), db.transaction() as s:
        store_accounts.disable_account(s, "ana", actor="admin-1", now=later(days=2))
    with pytest.raises(InvalidState), db.transaction() as s:
        store_accounts.reset_account(s, "ana", actor="admin-1", now=later(days=2))
    assert global_actions(db)[-4:] == [
        Action.ACCOUNT_ENROL,
        Action.ACCOUNT_RESET,
        Action.ACCOUNT_ENROL,
        Action.ACCOUNT_DISABLE,
    ]


def test_two_admins_make_analyst_grants_pending_until_a_second_admin_confirms(
    db: Database, list_id: int
) -> None:
    _, root = create(db, "root", ("admin", "*"))
    # One admin: grants apply at once.
    _, second = create(db, "second", ("admin", "*"))
    with db.read() as s:
        assert store_accounts.enabled_admin_count(s) == 2
    _, ana = create(db, "ana", ("auditor", "main"))
    with db.transaction() as s:
        result = store_accounts.grant_role(
            s, "ana", RoleGrant("analyst", "main"), actor="root", person=root, now=NOW
        )
    assert result.status == "pending"
    assert result.pending_id is not None
    with db.read() as s:
        assert not store_accounts.person_holds(s, ana, "analyst", list_id)
    # Not by the requester, not by the command line, not by a non-admin.
    for person in (root, None, ana):
        with pytest.raises(SecondAdminRequired), db.transaction() as s:
            store_accounts.confirm_grant(s, result.pending_id, actor="x", person=person, now=NOW)
    with db.transaction() as s:
        store_accounts.confirm_grant(
            s, result.pending_id, actor="second", person=second, now=later(minutes=1)
        )
    with db.read() as s:
        assert store_accounts.person_holds(s, ana, "analyst", list_id)
        assert s.scalars(select(PendingGrantRow)).all() == []
    assert global_actions(db)[-2:] == [Action.ACCOUNT_GRANT, Action.ACCOUNT_GRANT_CONFIRM]
    # The auditor role needs no second admin.
    with db.transaction() as s:
        assert (
            store_accounts.grant_role(
                s, "ana", RoleGrant("auditor", "*"), actor="root", person=root, now=NOW
            ).status
            == "granted"
        )


def test_an_admin_cannot_confirm_a_grant_to_themself(db: Database, list_id: int) -> None:
    _, root = create(db, "root", ("admin", "*"))
    _, second = create(db, "second", ("admin", "*"))
    with db.transaction() as s:
        result = store_accounts.grant_role(
            s, "second", RoleGrant("analyst", "*"), actor="root", person=root, now=NOW
        )
    assert result.pending_id is not None
    with pytest.raises(SecondAdminRequired), db.transaction() as s:
        store_accounts.confirm_grant(s, result.pending_id, actor="s", person=second, now=NOW)


def test_revoking_the_last_role_revokes_the_persons_tokens(db: Database, list_id: int) -> None:
    _, ana = create(db, "ana", ("analyst", "*"))
    with db.transaction() as s:
        token, row = store_accounts.mint_person_token(
            s, ana, role="analyst", list_name=None, name="ana-script", now=NOW
        )
        token_id = row.id
    with db.read() as s:
        p = store_tokens.lookup_token(s, token, now=NOW)
        assert p is not None
        assert p.account_id == ana
    with db.transaction() as s:
        revoked = store_accounts.revoke_role(
            s, "ana", RoleGrant("analyst", "*"), actor="root", now=NOW
        )
    assert revoked == [token_id]
    with db.read() as s:
        assert store_tokens.lookup_token(s, token, now=NOW) is None
        assert s.scalars(select(AccountRoleRow)).all() == []
    with pytest.raises(NotFound), db.transaction() as s:
        store_accounts.revoke_role(s, "ana", RoleGrant("analyst", "*"), actor="root", now=NOW)


def test_a_disabled_persons_attached_token_stops_working(db: Database, list_id: int) -> None:
    # A token of the days before persons (minted before any analyst person
    # exists: afterwards the store refuses it, see the next test).
    with db.transaction() as s:
        token, row = store_tokens.create_token(s, name="ana-old", role="analyst", now=NOW)
    _, ana = create(db, "ana", ("analyst", "*"))
    with db.transaction() as s:
        store_accounts.attach_token(s, row.id, "ana", actor="root", now=NOW)
    with db.read() as s:
        p = store_tokens.lookup_token(s, token, now=NOW)
        assert p is not None
        assert p.account_id == ana
    with db.transaction() as s:
        store_accounts.disable_account(s, "ana", actor="root", now=NOW)
    with db.read() as s:
        assert store_tokens.lookup_token(s, token, now=NOW) is None


def test_attach_refuses_what_the_person_does_not_hold(
    db: Database, list_id: int, unchanged: Unchanged
) -> None:
    create(db, "ana", ("auditor", "main"))
    with db.transaction() as s:
        _, analyst = store_tokens.create_token(s, name="old", role="analyst", now=NOW)
        _, isp = store_tokens.create_token(s, name="isp", role="isp", lists=["main"], now=NOW)
        analyst_id, isp_id = analyst.id, isp.id

    def attach(token_id: int) -> Callable[[], object]:
        def run() -> object:
            with db.transaction() as s:
                return store_accounts.attach_token(s, token_id, "ana", actor="root", now=NOW)

        return run

    unchanged(attach(analyst_id), PermissionDenied)
    unchanged(attach(isp_id), PermissionDenied)
    unchanged(attach(999), NotFound)


def test_an_analyst_token_of_no_person_is_refused_where_analysts_are_persons(
    db: Database, list_id: int, list2_id: int, unchanged: Unchanged
) -> None:
    """Issue 15 item 4: tokens of no person would be identities of their own."""

    def mint(name: str, role: str = "analyst", lists: tuple[str, ...] = ()) -> Callable[[], object]:
        def run() -> object:
            with db.transaction() as s:
                return store_tokens.create_token(s, name=name, role=role, lists=lists, now=NOW)

        return run

    # Before any analyst person: today's rules (a migrated deployment).
    mint("before")()
    _, ana = create(db, "ana", ("analyst", "main"))
    unchanged(mint("second-ana", lists=("main",)), AnalystTokenNeedsPerson, match="'main'")
    unchanged(mint("every-list"), AnalystTokenNeedsPerson)
    unchanged(mint("both", lists=("main", "strict")), AnalystTokenNeedsPerson)
    # A list with no analyst person keeps the old rule; other roles are
    # organisations' tokens; the person mints her own.
    mint("strict-only", lists=("strict",))()
    mint("isp", role="isp", lists=("main",))()
    mint("ops", role="admin")()
    with db.transaction() as s:
        _, row = store_accounts.mint_person_token(
            s, ana, role="analyst", list_name="main", name="ana-cron", now=NOW
        )
        assert row.account_id == ana
    # A person on every list closes every list.
    create(db, "bo", ("analyst", "*"))
    unchanged(mint("strict-later", lists=("strict",)), AnalystTokenNeedsPerson, match="every list")


def test_mint_person_token_needs_the_role(db: Database, list_id: int) -> None:
    _, ana = create(db, "ana", ("analyst", "main"))
    with pytest.raises(PermissionDenied), db.transaction() as s:
        store_accounts.mint_person_token(s, ana, role="admin", list_name=None, name="t", now=NOW)
    with pytest.raises(PermissionDenied), db.transaction() as s:
        store_accounts.mint_person_token(s, ana, role="isp", list_name="main", name="t", now=NOW)
    with db.transaction() as s:
        _, row = store_accounts.mint_person_token(
            s, ana, role="analyst", list_name="main", name="t", now=NOW
        )
        assert [lst.name for lst in row.lists] == ["main"]
    with pytest.raises(TokenNameTaken), db.transaction() as s:
        store_accounts.mint_person_token(
            s, ana, role="analyst", list_name="main", name="t", now=NOW
        )
    created = [r for r in global_records(db) if r.action == Action.TOKEN_CREATE][-1]
    assert created.details["account"] == ana


# --- four-eyes counts persons (item 4) ------------------------------------------


def _two_tokens(db: Database, account_id: int) -> tuple[store_tokens.Principal, ...]:
    out = []
    with db.transaction() as s:
        for name in ("ana-laptop", "ana-script"):
            token, _ = store_accounts.mint_person_token(
                s, account_id, role="analyst", list_name=None, name=name, now=NOW
            )
            p = store_tokens.lookup_token(s, token, now=NOW)
            assert p is not None
            out.append(p)
    return tuple(out)


def test_two_tokens_of_one_person_are_one_person(db: Database, list_id: int) -> None:
    _, ana = create(db, "ana", ("analyst", "*"))
    laptop, script = _two_tokens(db, ana)
    assert laptop.name != script.name
    with db.transaction() as s:
        entry, _ = store_entries.add_entry(
            s,
            list_id,
            url=URL,
            scope="page",
            reason="report",
            actor=laptop.name,
            person=laptop.account_id,
            now=NOW,
        )
        entry_id = entry.id
    with pytest.raises(SelfApproval), db.transaction() as s:
        store_entries.approve(
            s,
            list_id,
            entry_id,
            actor=script.name,
            actor_role="analyst",
            person=script.account_id,
            now=NOW,
        )
    with db.transaction() as s:  # bulk approval judges the same way
        results = store_imports.approve_many(
            s,
            list_id,
            [entry_id],
            actor=script.name,
            actor_role="analyst",
            person=script.account_id,
            now=NOW,
        )
    assert results[0].code == "self_approval"
    # Another person approves; the records name the persons.
    _, ben = create(db, "ben", ("analyst", "*"))
    with db.transaction() as s:
        store_entries.approve(
            s, list_id, entry_id, actor="ben", actor_role="analyst", person=ben, now=NOW
        )
    with db.read() as s:
        records = list(store_audit.entry_records(s, entry_id))
    assert [(r.action, r.details.get("person")) for r in records] == [
        (Action.ENTRY_ADD, ana),
        (Action.ENTRY_APPROVE, ben),
    ]


def test_an_unattached_token_keeps_the_name_rule(db: Database, list2_id: int) -> None:
    """Tokens of no person: identity is the name, as before accounts existed."""
    with db.transaction() as s:
        entry, _ = store_entries.add_entry(
            s, list2_id, url=URL, scope="page", reason="r", actor="zed", now=NOW
        )
        entry_id = entry.id
    with pytest.raises(SelfApproval), db.transaction() as s:
        store_entries.approve(s, list2_id, entry_id, actor="zed", actor_role="analyst", now=NOW)
    _, ana = create(db, "ana", ("analyst", "*"))
    with db.transaction() as s:
        store_entries.approve(
            s, list2_id, entry_id, actor="ana", actor_role="analyst", person=ana, now=NOW
        )
    # A token of no person named like her cannot add a second approval under
    # the same actor name (the audit chain could not tell the two apart).
    with pytest.raises(DuplicateApproval), db.transaction() as s:
        store_entries.approve(s, list2_id, entry_id, actor="ana", actor_role="analyst", now=NOW)
    with db.transaction() as s:
        row = store_entries.approve(
            s, list2_id, entry_id, actor="yan", actor_role="analyst", now=NOW
        )
    assert row.status == "active"
