"""Authorisation matrix: every endpoint x every role x own/other list.

Expected answer, in the order the API checks:

1. no token: 401;
2. a token whose role the endpoint does not serve: 403;
3. a list the token may not read: 404 (the same answer as a missing list);
4. otherwise the endpoint's success status.

Roles: admin (every list), analyst (every list), analyst restricted to OTHER,
isp (MAIN, plaintext-entitled), isp on OTHER, auditor (MAIN). Each call
that changes something gets fresh objects, so every combination runs on the
same deployment independently of the others.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import nacl.signing
import pytest
from support.api_testing import (
    MAIN,
    OTHER,
    ApiClient,
    Deployment,
    close_deployment,
    make_deployment,
    publish,
)

from api.witness import register_witness
from blocklist.store import accounts as store_accounts
from blocklist.store import entries as store_entries
from blocklist.store import guards as store_guards
from blocklist.store import lists as store_lists
from blocklist.store import tokens as store_tokens
from blocklist.store import versions as store_versions
from signer.note import parse_note

LISTS = (MAIN, OTHER)

#: role name -> (token attribute on Tokens or None, lists it may read)
ROLES: dict[str, tuple[str | None, frozenset[str]]] = {
    "anonymous": (None, frozenset()),
    "admin": ("admin", frozenset(LISTS)),
    "analyst": ("alice", frozenset(LISTS)),
    "analyst-other-only": ("analyst_other", frozenset({OTHER})),
    "isp": ("isp_plain", frozenset({MAIN})),
    "isp-other": ("isp_other", frozenset({OTHER})),
    "auditor": ("auditor", frozenset({MAIN})),
}

_ROLE_OF = {
    "admin": "admin",
    "analyst": "analyst",
    "analyst-other-only": "analyst",
    "isp": "isp",
    "isp-other": "isp",
    "auditor": "auditor",
}

_counter = itertools.count()

#: A completed ISO week (hit counts are posted for weeks that have ended).
_LAST_WEEK = "{:04d}-W{:02d}".format(*(datetime.now(UTC) - timedelta(weeks=1)).isocalendar()[:2])


@dataclass
class Env:
    """The shared deployment plus helpers to make fresh objects."""

    d: Deployment
    client: ApiClient
    #: Analyst tokens of no person, minted when the deployment had no
    #: analyst person (afterwards the store refuses such tokens:
    #: ``analyst_token_needs_person``); the revoke and attach rows use them.
    legacy_tokens: list[int]

    def list_id(self, name: str) -> int:
        with self.d.db.read() as session:
            return store_lists.get_list(session, name).id

    def fresh_entry(self, list_name: str, *, expired: bool = False) -> int:
        with self.d.db.transaction() as session:
            list_id = store_lists.get_list(session, list_name).id
            row, _ = store_entries.add_entry(
                session,
                list_id,
                url=f"http://example.com/m/{next(_counter)}.html",
                scope="page",
                reason="matrix",
                actor="bob",
            )
            if expired:
                store_entries.expire(session, list_id, row.id, actor="bob", reason="matrix")
            return row.id

    def fresh_guarded_entry(self, list_name: str) -> int:
        """A prefix entry on an IP address (guarded), with its four-eyes approvals."""
        n = next(_counter)
        with self.d.db.transaction() as session:
            list_id = store_lists.get_list(session, list_name).id
            row, _ = store_entries.add_entry(
                session,
                list_id,
                url=f"http://192.0.2.{n % 250 + 1}/g{n}/",
                scope="prefix",
                reason="matrix",
                actor="bob",
            )
            for approver in ("carol", "dave"):
                store_entries.approve(
                    session, list_id, row.id, actor=approver, actor_role="analyst"
                )
            return row.id

    def fresh_referral(self, list_name: str) -> int:
        entry_id = self.fresh_entry(list_name)
        with self.d.db.transaction() as session:
            list_id = store_lists.get_list(session, list_name).id
            row = store_entries.get_entry(session, list_id, entry_id)
            store_guards.propose_referral(
                session, list_id, row, actor="bob", home_country="GB", now=datetime.now(UTC)
            )
        return entry_id

    def fresh_guard(self) -> str:
        host = f"guard{next(_counter)}.example.com"
        with self.d.db.transaction() as session:
            store_guards.add_guard(session, host, actor="admin")
        return host

    def fresh_token_id(self) -> int:
        """An analyst token of no person, minted before any analyst person existed."""
        return self.legacy_tokens.pop()

    def fresh_account(self, role: str = "auditor") -> str:
        """An account (issue 15) with ``role`` on every list."""
        name = f"person{next(_counter)}"
        with self.d.db.transaction() as session:
            store_accounts.create_account(
                session,
                name=name,
                grants=[store_accounts.RoleGrant(role, "*")],
                actor="test",
            )
        return name

    def publish_request(self, list_name: str) -> int:
        with self.d.db.transaction() as session:
            return store_versions.request_publish(session, self.list_id(list_name), actor="bob").id

    def cosignature(self, list_name: str) -> dict[str, str]:
        """A witness cosignature line over the current checkpoint (naive c2sp code)."""
        with self.d.db.read() as session:
            note = store_versions.get_checkpoint(session, self.list_id(list_name)).note
        text = parse_note(note).text
        key = nacl.signing.SigningKey.generate()
        name = f"witness{next(_counter)}.example"
        public = bytes(key.verify_key)
        key_id = hashlib.sha256(name.encode() + b"\n\x04" + public).digest()[:4]
        timestamp = 1_900_000_000
        message = f"cosignature/v1\ntime {timestamp}\n{text}".encode()
        signature = key.sign(message).signature
        line = (
            "\u2014 "
            + name
            + " "
            + base64.b64encode(key_id + timestamp.to_bytes(8, "big") + signature).decode()
        )
        vkey = f"{name}+{key_id.hex()}+" + base64.b64encode(b"\x04" + public).decode()
        # Only registered witnesses may post (issue 12, item 1).
        self.register_witness(list_name, vkey)
        return {"vkey": vkey, "signature": line}

    def register_witness(self, list_name: str, vkey: str) -> int:
        with self.d.db.transaction() as session:
            lst = store_lists.get_list(session, list_name)
            return register_witness(session, lst.id, lst.origin, vkey, actor="admin").id

    def witness_vkey(self) -> str:
        public = bytes(nacl.signing.SigningKey.generate().verify_key)
        name = f"witness{next(_counter)}.example"
        key_id = hashlib.sha256(name.encode() + b"\n\x04" + public).digest()[:4]
        return f"{name}+{key_id.hex()}+" + base64.b64encode(b"\x04" + public).decode()

    def fresh_witness(self, list_name: str) -> int:
        return self.register_witness(list_name, self.witness_vkey())

    # --- appeals (issue 17) ---

    def _file_appeal(self, **kwargs: Any) -> Any:
        from blocklist.store import appeals as store_appeals

        with self.d.db.transaction() as session:
            return store_appeals.file_appeal(
                session,
                message=f"matrix {next(_counter)}",
                contact=None,
                dedup_window=timedelta(hours=1),
                cap_per_hour=0,
                cap_per_day=0,
                **kwargs,
            )

    def fresh_appeal(self, list_name: str) -> int:
        """An appeal attached to a fresh listed entry that bob added and others approved."""
        from blocklist.blockref import block_ref
        from blocklist.store.models import EntryRow

        entry_id = self.fresh_entry(list_name)
        with self.d.db.transaction() as session:
            list_id = store_lists.get_list(session, list_name).id
            for who in ("carol", "erin"):
                row = session.get(EntryRow, entry_id)
                if row is not None and row.status == "pending":
                    store_entries.approve(
                        session, list_id, entry_id, actor=who, actor_role="analyst"
                    )
        publish(self.client, self.d.tokens.admin, list_name)
        with self.d.db.read() as session:
            entry = session.get(EntryRow, entry_id)
            assert entry is not None
            ref = block_ref(bytes(entry.hash))
        filed = self._file_appeal(block_ref_text=ref, url=None)
        assert filed.list_ids, "the fresh appeal matched nothing"
        appeal: int = filed.appeal_id
        return appeal

    def fresh_unmatched_appeal(self) -> int:
        appeal: int = self._file_appeal(
            block_ref_text=None, url=f"http://example.org/none/{next(_counter)}"
        ).appeal_id
        return appeal

    def appeal_secret(self) -> str:
        secret: str = self._file_appeal(
            block_ref_text=None, url=f"http://example.org/s/{next(_counter)}"
        ).secret
        return secret

    def report_period(self, list_name: str) -> str:
        """A month whose report exists (issued as of the month's end)."""
        from blocklist.transparency import parse_period, period_of
        from signer.transparency import issue_report

        period = period_of(datetime.now(UTC))
        after = parse_period(period)[1] + timedelta(hours=1)
        issue_report(self.d.db, list_name, period, self.d.settings.keys_dir, now=after)
        return period


Request = tuple[str, str, dict[str, Any]]


@dataclass(frozen=True)
class Endpoint:
    """One endpoint: who may call it and how to call it on a list."""

    name: str
    roles: frozenset[str]
    success: int
    build: Callable[[Env, str], Request]
    list_scoped: bool = True


def _e(
    name: str, roles: str, success: int, build: Callable[[Env, str], Request], scoped: bool = True
) -> Endpoint:
    return Endpoint(name, frozenset(roles.split()), success, build, scoped)


def _entry_body() -> dict[str, str]:
    return {"url": f"http://example.com/new/{next(_counter)}.html", "scope": "page", "reason": "r"}


ENDPOINTS = [
    _e(
        "add",
        "analyst",
        201,
        lambda env, ln: ("POST", f"/v1/lists/{ln}/entries", {"json": _entry_body()}),
    ),
    _e(
        "preview",
        "analyst",
        200,
        lambda env, ln: (
            "POST",
            f"/v1/lists/{ln}/entries/preview",
            {"json": {"url": "http://example.com/p.html"}},
        ),
    ),
    _e(
        "bulk",
        "analyst",
        200,
        lambda env, ln: ("POST", f"/v1/lists/{ln}/entries/bulk", {"json": [_entry_body()]}),
    ),
    _e(
        "bulk.csv",
        "analyst",
        200,
        lambda env, ln: (
            "POST",
            f"/v1/lists/{ln}/entries/bulk.csv",
            {
                "content": f"url,scope,reason\nhttp://example.com/csv/{next(_counter)}.html,page,r\n".encode(),
                "headers": {"Content-Type": "text/csv"},
            },
        ),
    ),
    _e(
        "search",
        "analyst",
        200,
        lambda env, ln: ("POST", f"/v1/lists/{ln}/entries/search", {"json": {}}),
    ),
    _e(
        "get",
        "analyst",
        200,
        lambda env, ln: ("GET", f"/v1/lists/{ln}/entries/{env.fresh_entry(ln)}", {}),
    ),
    _e(
        "approve",
        "analyst",
        200,
        lambda env, ln: ("POST", f"/v1/lists/{ln}/entries/{env.fresh_entry(ln)}/approve", {}),
    ),
    _e(
        "approve-many",
        "analyst",
        200,
        lambda env, ln: (
            "POST",
            f"/v1/lists/{ln}/entries/approve",
            {"json": {"ids": [env.fresh_entry(ln)]}},
        ),
    ),
    _e(
        "expire",
        "analyst",
        200,
        lambda env, ln: (
            "POST",
            f"/v1/lists/{ln}/entries/{env.fresh_entry(ln)}/expire",
            {"json": {}},
        ),
    ),
    _e(
        "reinstate",
        "analyst",
        200,
        lambda env, ln: (
            "POST",
            f"/v1/lists/{ln}/entries/{env.fresh_entry(ln, expired=True)}/reinstate",
            {"json": {"reason": "back"}},
        ),
    ),
    _e("publish", "analyst admin", 200, lambda env, ln: ("POST", f"/v1/lists/{ln}/publish", {})),
    _e(
        "publish-request",
        "analyst admin",
        200,
        lambda env, ln: ("GET", f"/v1/lists/{ln}/publish/requests/{env.publish_request(ln)}", {}),
    ),
    _e("keyring", "isp", 200, lambda env, ln: ("GET", f"/v1/lists/{ln}/keyring", {})),
    _e("checkpoint", "isp", 200, lambda env, ln: ("GET", f"/v1/lists/{ln}/checkpoint", {})),
    _e("statements", "isp", 200, lambda env, ln: ("GET", f"/v1/lists/{ln}/statements", {})),
    _e("statement", "isp", 200, lambda env, ln: ("GET", f"/v1/lists/{ln}/statements/1", {})),
    _e("snapshot", "isp", 200, lambda env, ln: ("GET", f"/v1/lists/{ln}/snapshot", {})),
    _e("plaintext", "isp", 200, lambda env, ln: ("GET", f"/v1/lists/{ln}/plaintext", {})),
    _e(
        "inclusion",
        "isp",
        200,
        lambda env, ln: (
            "GET",
            f"/v1/lists/{ln}/proofs/inclusion",
            {"params": {"version": 1, "size": 1}},
        ),
    ),
    _e(
        "consistency",
        "isp",
        200,
        lambda env, ln: (
            "GET",
            f"/v1/lists/{ln}/proofs/consistency",
            {"params": {"from": 0, "to": 1}},
        ),
    ),
    _e(
        "range",
        "isp",
        200,
        lambda env, ln: ("GET", f"/v1/lists/{ln}/proofs/range", {"params": {"size": 1}}),
    ),
    _e("bundle", "auditor", 200, lambda env, ln: ("GET", f"/v1/lists/{ln}/audit/bundle", {})),
    _e("audit-log", "auditor admin", 200, lambda env, ln: ("GET", f"/v1/lists/{ln}/audit/log", {})),
    _e(
        "cosignature",
        "auditor",
        201,
        lambda env, ln: (
            "POST",
            f"/v1/lists/{ln}/checkpoint/cosignatures",
            {"json": env.cosignature(ln)},
        ),
    ),
    _e(
        "hits-post",
        "isp",
        200,
        lambda env, ln: (
            "POST",
            f"/v1/lists/{ln}/hits",
            {"json": {"week": _LAST_WEEK, "counts": []}},
        ),
    ),
    _e(
        "hits-get",
        "analyst admin",
        200,
        lambda env, ln: ("GET", f"/v1/lists/{ln}/hits", {"params": {"week": _LAST_WEEK}}),
    ),
    _e(
        "proposals",
        "analyst admin",
        200,
        lambda env, ln: ("GET", f"/v1/lists/{ln}/proposals", {}),
    ),
    _e("witness-list", "admin", 200, lambda env, ln: ("GET", f"/v1/lists/{ln}/witnesses", {})),
    _e(
        "witness-add",
        "admin",
        201,
        lambda env, ln: (
            "POST",
            f"/v1/lists/{ln}/witnesses",
            {"json": {"vkey": env.witness_vkey()}},
        ),
    ),
    _e(
        "witness-remove",
        "admin",
        200,
        lambda env, ln: ("DELETE", f"/v1/lists/{ln}/witnesses/{env.fresh_witness(ln)}", {}),
    ),
    _e("list-get", "admin", 200, lambda env, ln: ("GET", f"/v1/lists/{ln}", {})),
    _e("isps", "admin", 200, lambda env, ln: ("GET", f"/v1/lists/{ln}/isps", {})),
    _e(
        "token-create",
        "admin",
        201,
        lambda env, ln: (
            "POST",
            "/v1/tokens",
            {"json": {"name": f"t{next(_counter)}", "role": "analyst"}},
        ),
        scoped=False,
    ),
    _e("token-list", "admin", 200, lambda env, ln: ("GET", "/v1/tokens", {}), scoped=False),
    _e(
        "token-revoke",
        "admin",
        200,
        lambda env, ln: ("POST", f"/v1/tokens/{env.fresh_token_id()}/revoke", {}),
        scoped=False,
    ),
    _e(
        "list-create",
        "admin",
        201,
        lambda env, ln: ("POST", "/v1/lists", {"json": {"name": f"l{next(_counter)}"}}),
        scoped=False,
    ),
    _e("list-list", "admin", 200, lambda env, ln: ("GET", "/v1/lists", {}), scoped=False),
    # Safeguards (issue 16).
    _e("guard-list", "admin", 200, lambda env, ln: ("GET", "/v1/guards", {}), scoped=False),
    _e(
        "guard-add",
        "admin",
        201,
        lambda env, ln: (
            "POST",
            "/v1/guards",
            {"json": {"host": f"g{next(_counter)}.example.org"}},
        ),
        scoped=False,
    ),
    _e(
        "guard-remove",
        "admin",
        204,
        lambda env, ln: (
            "POST",
            "/v1/guards/remove",
            {"json": {"host": env.fresh_guard(), "reason": "matrix"}},
        ),
        scoped=False,
    ),
    _e(
        "guard-approve",
        "admin",
        200,
        lambda env, ln: (
            "POST",
            f"/v1/lists/{ln}/entries/{env.fresh_guarded_entry(ln)}/guard-approve",
            {"json": {"justification": "matrix"}},
        ),
    ),
    _e("referrals", "analyst admin", 200, lambda env, ln: ("GET", f"/v1/lists/{ln}/referrals", {})),
    _e(
        "refer",
        "analyst",
        200,
        lambda env, ln: (
            "POST",
            f"/v1/lists/{ln}/entries/{env.fresh_referral(ln)}/refer",
            {"json": {"reason": "matrix"}},
        ),
    ),
    _e(
        "refer-override",
        "admin",
        200,
        lambda env, ln: (
            "POST",
            f"/v1/lists/{ln}/entries/{env.fresh_referral(ln)}/refer-override",
            {"json": {"reason": "matrix"}},
        ),
    ),
    # --- appeals and transparency (issue 17) ---
    _e(
        "appeal-file",
        "public",
        202,
        lambda env, ln: (
            "POST",
            "/v1/appeals",
            {"json": {"url": f"http://example.org/a/{next(_counter)}", "message": "m"}},
        ),
        scoped=False,
    ),
    _e(
        "appeal-status",
        "public",
        200,
        lambda env, ln: ("GET", f"/v1/appeals/status/{env.appeal_secret()}", {}),
        scoped=False,
    ),
    _e("appeals-list", "analyst", 200, lambda env, ln: ("GET", f"/v1/lists/{ln}/appeals", {})),
    _e(
        "appeal-decide",
        "analyst",
        200,
        lambda env, ln: (
            "POST",
            f"/v1/lists/{ln}/appeals/{env.fresh_appeal(ln)}/decide",
            {"json": {"outcome": "upheld", "reason": "r"}},
        ),
    ),
    _e(
        "appeals-unmatched",
        "admin",
        200,
        lambda env, ln: ("GET", "/v1/admin/appeals", {}),
        scoped=False,
    ),
    _e(
        "appeal-close",
        "admin",
        200,
        lambda env, ln: (
            "POST",
            f"/v1/admin/appeals/{env.fresh_unmatched_appeal()}/close",
            {"json": {"reason": "r"}},
        ),
        scoped=False,
    ),
    _e(
        "transparency",
        "auditor admin",
        200,
        lambda env, ln: (
            "GET",
            f"/v1/lists/{ln}/transparency",
            {"params": {"period": env.report_period(ln)}},
        ),
    ),
    # --- persons' accounts (issue 15) ---
    _e(
        "account-create",
        "admin",
        201,
        lambda env, ln: (
            "POST",
            "/v1/admin/accounts",
            {"json": {"name": f"p{next(_counter)}", "role": "auditor"}},
        ),
        scoped=False,
    ),
    _e(
        "account-list",
        "admin",
        200,
        lambda env, ln: ("GET", "/v1/admin/accounts", {}),
        scoped=False,
    ),
    _e(
        "account-disable",
        "admin",
        200,
        lambda env, ln: ("POST", f"/v1/admin/accounts/{env.fresh_account()}/disable", {}),
        scoped=False,
    ),
    _e(
        "account-reset",
        "admin",
        200,
        lambda env, ln: ("POST", f"/v1/admin/accounts/{env.fresh_account()}/reset", {}),
        scoped=False,
    ),
    _e(
        "account-grant",
        "admin",
        200,
        lambda env, ln: (
            "POST",
            f"/v1/admin/accounts/{env.fresh_account()}/grant",
            {"json": {"role": "auditor", "lists": [MAIN]}},
        ),
        scoped=False,
    ),
    _e(
        "account-revoke",
        "admin",
        200,
        lambda env, ln: (
            "POST",
            f"/v1/admin/accounts/{env.fresh_account()}/revoke",
            {"json": {"role": "auditor"}},
        ),
        scoped=False,
    ),
    # No pending grant 999999: an admin gets past the role check to the 404
    # (confirming a real one needs an admin person: tests/api/test_accounts_admin.py).
    _e(
        "account-confirm",
        "admin",
        404,
        lambda env, ln: ("POST", "/v1/admin/accounts/grants/999999/confirm", {}),
        scoped=False,
    ),
    _e(
        "account-attach-token",
        "admin",
        200,
        lambda env, ln: (
            "POST",
            f"/v1/admin/accounts/{env.fresh_account('analyst')}/attach-token",
            {"json": {"token_id": env.fresh_token_id()}},
        ),
        scoped=False,
    ),
]


def expected(endpoint: Endpoint, role: str, list_name: str) -> int:
    """The status the matrix requires."""
    attr, readable = ROLES[role]
    if "public" in endpoint.roles:
        return endpoint.success  # public by design (appeal intake): anyone, any token
    if attr is None:
        return 401
    if _ROLE_OF[role] not in endpoint.roles:
        return 403
    if endpoint.name == "approve" and role == "admin":
        return 403  # four-eyes counts analysts only
    if endpoint.list_scoped and list_name not in readable:
        return 404
    if endpoint.name == "plaintext" and role != "isp":
        return 403  # only the "isp" token holds the plaintext entitlement
    if endpoint.name == "audit-log" and role == "auditor":
        return 403  # the log holds free text: a full-audit entitlement (this one is hash-only)
    return endpoint.success


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    # Appeal intake's per-address burst limit would stop the public rows.
    d = make_deployment(tmp_path_factory.mktemp("matrix"), appeal_burst=10_000)
    client = ApiClient(d.app)
    try:
        for name in LISTS:
            publish(client, d.tokens.admin, name)  # version 1: the canary
        with d.db.transaction() as session:
            legacy = [
                store_tokens.create_token(
                    session, name=f"victim-{next(_counter)}", role="analyst", actor="test"
                )[1].id
                for _ in range(2 * len(ROLES) * len(LISTS))
            ]
        yield Env(d, client, legacy)
    finally:
        client.close()
        close_deployment(d)


def _cases() -> Iterator[Any]:
    for endpoint in ENDPOINTS:
        for role in ROLES:
            for list_name in LISTS if endpoint.list_scoped else (MAIN,):
                yield pytest.param(
                    endpoint, role, list_name, id=f"{endpoint.name}-{role}-{list_name}"
                )


@pytest.mark.parametrize(("endpoint", "role", "list_name"), list(_cases()))
def test_authorisation_matrix(env: Env, endpoint: Endpoint, role: str, list_name: str) -> None:
    method, path, kwargs = endpoint.build(env, list_name)
    attr = ROLES[role][0]
    token = getattr(env.d.tokens, attr) if attr else None
    r = env.client.request(method, path, token=token, **kwargs)
    want = expected(endpoint, role, list_name)
    assert r.status_code == want, f"{method} {path} as {role}: {r.status_code} {r.text[:300]}"
    if want >= 400:
        assert r.headers["content-type"].startswith("application/problem+json")


def test_matrix_covers_every_v1_route(env: Env) -> None:
    covered = {
        ("POST", "/v1/lists/{list}/entries"),
        ("POST", "/v1/lists/{list}/entries/preview"),
        ("POST", "/v1/lists/{list}/entries/bulk"),
        ("POST", "/v1/lists/{list}/entries/bulk.csv"),
        ("POST", "/v1/lists/{list}/entries/search"),
        ("GET", "/v1/lists/{list}/entries/{entry_id}"),
        ("POST", "/v1/lists/{list}/entries/{entry_id}/approve"),
        ("POST", "/v1/lists/{list}/entries/approve"),
        ("POST", "/v1/lists/{list}/entries/{entry_id}/expire"),
        ("POST", "/v1/lists/{list}/entries/{entry_id}/reinstate"),
        ("POST", "/v1/lists/{list}/publish"),
        ("GET", "/v1/lists/{list}/publish/requests/{request_id}"),
        ("GET", "/v1/lists/{list}/keyring"),
        ("GET", "/v1/lists/{list}/checkpoint"),
        ("GET", "/v1/lists/{list}/statements"),
        ("GET", "/v1/lists/{list}/statements/{n}"),
        ("GET", "/v1/lists/{list}/snapshot"),
        ("GET", "/v1/lists/{list}/plaintext"),
        ("GET", "/v1/lists/{list}/proofs/inclusion"),
        ("GET", "/v1/lists/{list}/proofs/consistency"),
        ("GET", "/v1/lists/{list}/proofs/range"),
        ("GET", "/v1/lists/{list}/audit/bundle"),
        ("GET", "/v1/lists/{list}/audit/log"),
        ("POST", "/v1/lists/{list}/checkpoint/cosignatures"),
        ("GET", "/v1/lists/{list}/witnesses"),
        ("POST", "/v1/lists/{list}/witnesses"),
        ("DELETE", "/v1/lists/{list}/witnesses/{witness_id}"),
        ("GET", "/v1/lists/{list}"),
        ("POST", "/v1/lists/{list}/hits"),
        ("GET", "/v1/lists/{list}/hits"),
        ("GET", "/v1/lists/{list}/proposals"),
        ("GET", "/v1/lists/{list}/isps"),
        ("POST", "/v1/tokens"),
        ("GET", "/v1/tokens"),
        ("POST", "/v1/tokens/{token_id}/revoke"),
        ("POST", "/v1/lists"),
        ("GET", "/v1/lists"),
        ("POST", "/v1/admin/accounts"),
        ("GET", "/v1/admin/accounts"),
        ("POST", "/v1/admin/accounts/{name}/disable"),
        ("POST", "/v1/admin/accounts/{name}/reset"),
        ("POST", "/v1/admin/accounts/{name}/grant"),
        ("POST", "/v1/admin/accounts/{name}/revoke"),
        ("POST", "/v1/admin/accounts/grants/{grant_id}/confirm"),
        ("POST", "/v1/admin/accounts/{name}/attach-token"),
        ("POST", "/v1/appeals"),
        ("GET", "/v1/appeals/status/{secret}"),
        ("GET", "/v1/lists/{list}/appeals"),
        ("POST", "/v1/lists/{list}/appeals/{appeal_id}/decide"),
        ("GET", "/v1/admin/appeals"),
        ("POST", "/v1/admin/appeals/{appeal_id}/close"),
        ("GET", "/v1/lists/{list}/transparency"),
        ("GET", "/v1/guards"),
        ("POST", "/v1/guards"),
        ("POST", "/v1/guards/remove"),
        ("POST", "/v1/lists/{list}/entries/{entry_id}/guard-approve"),
        ("GET", "/v1/lists/{list}/referrals"),
        ("POST", "/v1/lists/{list}/entries/{entry_id}/refer"),
        ("POST", "/v1/lists/{list}/entries/{entry_id}/refer-override"),
    }
    assert len(covered) == len(ENDPOINTS)
    paths = env.d.app.openapi()["paths"]
    routes = {
        (method.upper(), path)
        for path, operations in paths.items()
        if path.startswith("/v1")
        for method in operations
    }
    assert routes == covered


def test_ops_endpoints_need_no_token(env: Env) -> None:
    for path in ("/healthz", "/readyz", "/metrics", "/openapi.json", "/docs"):
        assert env.client.get(path).status_code == 200, path
