"""Contract: API tokens are stored only as hashes (SQLite and PostgreSQL)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from datetime import datetime

import pytest
from sqlalchemy import event, select
from support.contract_helpers import NOW, later

from blocklist.auditlog import Action, Actor
from blocklist.store import Database, InvalidField, InvalidState, NotFound
from blocklist.store import audit as store_audit
from blocklist.store import tokens as store_tokens
from blocklist.store.models import Base, TokenRow

Unchanged = Callable[[Callable[[], object], type[BaseException]], None]


def create(db: Database, **fields: object) -> tuple[str, int]:
    values: dict[str, object] = {"name": "isp-one", "role": "isp", "lists": ["main"], "now": NOW}
    values.update(fields)
    with db.transaction() as s:
        token, row = store_tokens.create_token(s, **values)  # type: ignore[arg-type]
        return token, row.id


def lookup(db: Database, token: str, now: datetime = NOW) -> store_tokens.Principal | None:
    with db.read() as s:
        return store_tokens.lookup_token(s, token, now=now)


def test_create_and_look_up_a_token(db: Database, list_id: int, list2_id: int) -> None:
    token, token_id = create(db, lists=["strict", "main"], plaintext=True)
    assert re.fullmatch(r"cf_isp_[A-Za-z0-9_-]{43}", token)
    principal = lookup(db, token)
    assert principal == store_tokens.Principal(
        token_id=token_id,
        name="isp-one",
        role="isp",
        lists=frozenset({"main", "strict"}),
        list_ids=frozenset({list_id, list2_id}),
        plaintext=True,
        full_audit=False,
        expires_at=None,
    )
    with db.read() as s:
        row = store_tokens.get_token(s, token_id)
        assert row.prefix == token[: len("cf_isp_") + 4]
        assert row.token_hash == hashlib.sha256(token.encode()).digest()
        assert [lst.name for lst in row.lists] == ["main", "strict"]


def test_every_role_gets_its_prefix(db: Database, list_id: int) -> None:
    for role in ("admin", "analyst", "isp", "auditor"):
        lists = ["main"] if role in ("isp", "auditor") else []
        token, _ = create(db, name=role, role=role, lists=lists)
        assert token.startswith(f"cf_{role}_")
        principal = lookup(db, token)
        assert principal is not None
        assert principal.role == role


def test_the_plaintext_token_is_stored_nowhere(db: Database, list_id: int) -> None:
    token, _ = create(db)
    secret = token.removeprefix("cf_isp_")
    needles = [token, secret, secret[8:30]]
    with db.read() as s:
        for table in Base.metadata.sorted_tables:
            for row in s.execute(select(table)).all():
                for value in row:
                    haystack = value.decode("latin-1") if isinstance(value, bytes) else str(value)
                    for needle in needles:
                        assert needle not in haystack, f"token material in {table.name}"


def test_unknown_malformed_expired_and_revoked_tokens_are_refused(
    db: Database, list_id: int
) -> None:
    token, token_id = create(db, expires_at=later(days=1))
    assert lookup(db, token) is not None
    assert lookup(db, token, now=later(days=1)) is None  # expired
    flipped = token[:-1] + ("A" if token[-1] != "A" else "B")
    assert lookup(db, flipped) is None  # unknown
    for malformed in ("", "cf_isp_", token + "x", "Bearer " + token, token.upper(), "x" * 10_000):
        assert lookup(db, malformed) is None
    # The same secret under another role's prefix is a different token.
    assert lookup(db, token.replace("cf_isp_", "cf_admin_")) is None

    with db.transaction() as s:
        row = store_tokens.revoke_token(s, token_id, actor="root", now=later(hours=1))
        assert row.revoked_at == later(hours=1)
    assert lookup(db, token) is None


def test_revoke_twice_or_unknown_is_refused(
    db: Database, list_id: int, unchanged: Unchanged
) -> None:
    _, token_id = create(db)
    with db.transaction() as s:
        store_tokens.revoke_token(s, token_id, actor="root", now=NOW)

    def revoke(which: int) -> None:
        with db.transaction() as s:
            store_tokens.revoke_token(s, which, actor="root", now=NOW)

    unchanged(lambda: revoke(token_id), InvalidState)
    unchanged(lambda: revoke(999_999), NotFound)


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"role": "superuser"}, InvalidField),
        ({"name": ""}, InvalidField),
        ({"name": "two\nlines"}, InvalidField),
        ({"role": "analyst", "lists": [], "plaintext": True}, InvalidField),
        ({"role": "isp", "full_audit": True}, InvalidField),
        ({"role": "isp", "lists": []}, InvalidField),
        ({"role": "auditor", "lists": []}, InvalidField),
        ({"lists": ["main", "absent"]}, NotFound),
        ({"expires_at": NOW}, InvalidField),
    ],
)
def test_bad_token_requests_change_nothing(
    db: Database,
    list_id: int,
    unchanged: Unchanged,
    fields: dict[str, object],
    error: type[Exception],
) -> None:
    unchanged(lambda: create(db, **fields), error)


def test_token_management_is_audited_without_secrets(db: Database, list_id: int) -> None:
    token, token_id = create(db, name="auditor-1", role="auditor", full_audit=True)
    with db.transaction() as s:
        store_tokens.revoke_token(s, token_id, actor="root", now=NOW)
    with db.read() as s:
        records = store_audit.records(s, None)
        assert store_audit.verify(s, None).seq == 2
    assert [(r.actor, r.action, r.list_name) for r in records] == [
        (Actor.CLI, Action.TOKEN_CREATE, None),
        ("root", Action.TOKEN_REVOKE, None),
    ]
    assert records[0].details["lists"] == ["main"]
    assert records[0].details["full_audit"] is True
    assert token.removeprefix("cf_auditor_")[:20] not in records[0].to_json().decode()


def test_record_last_use_writes_many_tokens_in_one_statement(db: Database, list_id: int) -> None:
    ids = [create(db, name=f"isp-{i}")[1] for i in range(5)]
    statements: list[str] = []

    def count(conn: object, cursor: object, statement: str, *args: object) -> None:
        if statement.lstrip().upper().startswith("UPDATE"):
            statements.append(statement)

    event.listen(db.engine, "before_cursor_execute", count)
    try:
        with db.transaction() as s:
            store_tokens.record_last_use(
                s, {ids[0]: later(minutes=1), ids[1]: later(minutes=2), ids[3]: later(minutes=3)}
            )
    finally:
        event.remove(db.engine, "before_cursor_execute", count)
    assert len(statements) == 1
    with db.transaction() as s:
        # Never backwards: an older time leaves the newer one in place.
        store_tokens.record_last_use(s, {ids[0]: NOW, ids[1]: later(minutes=5)})
    with db.read() as s:
        used = {
            row.id: row.last_used_at
            for row in s.execute(select(TokenRow.id, TokenRow.last_used_at))
        }
    assert used == {
        ids[0]: later(minutes=1),
        ids[1]: later(minutes=5),
        ids[2]: None,
        ids[3]: later(minutes=3),
        ids[4]: None,
    }


def test_live_token_ids_finds_a_name_across_roles_but_not_revoked_ones(
    db: Database, list_id: int
) -> None:
    with db.transaction() as s:
        _, analyst = store_tokens.create_token(s, name="kim", role="analyst", now=NOW)
        _, auditor = store_tokens.create_token(
            s, name="kim", role="auditor", lists=["main"], now=NOW
        )
        _, isp = store_tokens.create_token(s, name="kim", role="isp", lists=["main"], now=NOW)
        _, gone = store_tokens.create_token(s, name="kim", role="admin", now=NOW)
        store_tokens.revoke_token(s, gone.id, actor="root", now=NOW)
    with db.read() as s:
        persons = ("admin", "analyst", "auditor")
        assert store_tokens.live_token_ids(s, "kim", persons) == [analyst.id, auditor.id]
        assert store_tokens.live_token_ids(s, "kim", ("isp",)) == [isp.id]
        assert store_tokens.live_token_ids(s, "lee", persons) == []
