"""``cleanfeed account …`` and four-eyes per person through the API (issue 15 items 1, 4, 5)."""

from __future__ import annotations

import json
from typing import Any

from click.testing import CliRunner
from support import accounts_testing
from support.accounts_testing import PASSWORD, Clock, code_at, login_at
from support.api_testing import MAIN, URL_A, ApiClient, Deployment, add_entry

from api import accounts
from api.context import AppContext
from blocklist.auditlog import Action
from blocklist.store import audit as store_audit
from cleanfeed.cli import main


def _run(deployment: Deployment, *args: str, ok: bool = True) -> Any:
    argv = [args[0], args[1], "--data-dir", str(deployment.data_dir), *args[2:]]
    result = CliRunner().invoke(main, argv, catch_exceptions=False)
    if ok:
        assert result.exit_code == 0, result.output
        return json.loads(result.output) if "--json" in args else result.output
    assert result.exit_code != 0
    return result.output


def _enrol_from_url(ctx: AppContext, url: str, clock: Clock) -> str:
    token = url.rsplit("/", 1)[1]
    info = accounts.enrolment_info(ctx, token)
    accounts.complete_enrolment(ctx, token, PASSWORD, code_at(info.totp_secret, clock.now))
    clock.advance(seconds=30)
    return info.totp_secret


def test_account_create_json_and_enrolment_through_the_link(
    deployment: Deployment, client: ApiClient
) -> None:
    ctx: AppContext = deployment.app.state.cf
    clock = Clock()
    ctx.wall_clock = clock
    out = _run(deployment, "account", "create", "--name", "ana", "--role", "analyst",
               "--list", MAIN, "--json")  # fmt: skip
    assert {"name", "role", "lists", "enrol_url"} <= set(out)
    assert (out["name"], out["role"], out["lists"]) == ("ana", "analyst", [MAIN])
    assert out["enrol_url"].startswith("http://127.0.0.1:8080/console/enrol/")
    secret = _enrol_from_url(ctx, out["enrol_url"], clock)
    _, person = accounts.login(ctx, "ana", PASSWORD, code_at(secret, clock.now), "192.0.2.1")
    assert person.roles == {MAIN: frozenset({"analyst"})}
    listed = _run(deployment, "account", "list", "--json")["accounts"]
    assert listed[0]["enrolled"] is True
    assert listed[0]["roles"] == [{"role": "analyst", "list": MAIN}]
    # The link was one-time.
    err = _run(deployment, "account", "reset", "nobody", ok=False)
    assert "not_found" in err
    reset = _run(deployment, "account", "reset", "ana", "--public-url",
                 "https://hotline.example.org", "--json")  # fmt: skip
    assert reset["enrol_url"].startswith("https://hotline.example.org/console/enrol/")
    assert accounts.load_session(ctx, "x") is None


def test_second_admin_rule_from_the_command_line(deployment: Deployment) -> None:
    _run(deployment, "account", "create", "--name", "root", "--role", "admin", "--json")
    _run(deployment, "account", "create", "--name", "second", "--role", "admin", "--json")
    out = _run(deployment, "account", "create", "--name", "ana", "--role", "analyst", "--json")
    (grant,) = out["grants"]
    assert grant["status"] == "pending"
    # Granting again is the same pending grant.
    again = _run(deployment, "account", "grant", "ana", "--role", "analyst", "--json")
    assert again["roles"][0]["grant"] == grant["grant"]
    err = _run(deployment, "account", "confirm", str(grant["grant"]), "--by", "ana", ok=False)
    assert "second_admin_required" in err
    done = _run(deployment, "account", "confirm", str(grant["grant"]), "--by", "second", "--json")
    assert (done["role"], done["list"]) == ("analyst", "*")
    listed = {a["name"]: a for a in _run(deployment, "account", "list", "--json")["accounts"]}
    assert listed["ana"]["roles"] == [{"role": "analyst", "list": "*"}]
    assert listed["ana"]["pending"] == []
    revoked = _run(deployment, "account", "revoke", "ana", "--role", "analyst", "--json")
    assert revoked["roles"][0]["tokens_revoked"] == []
    disabled = _run(deployment, "account", "disable", "ana", "--json")
    assert disabled["disabled"] is True
    with deployment.db.read() as s:
        actions = [r.action for r in store_audit.records(s, None)]
    for action in (
        Action.ACCOUNT_CREATE,
        Action.ACCOUNT_GRANT,
        Action.ACCOUNT_GRANT_CONFIRM,
        Action.ACCOUNT_REVOKE_ROLE,
        Action.ACCOUNT_DISABLE,
    ):
        assert action in actions


def test_a_person_cannot_approve_her_own_entry_through_a_second_token(
    deployment: Deployment, client: ApiClient
) -> None:
    ctx: AppContext = deployment.app.state.cf
    clock = Clock()
    ctx.wall_clock = clock
    out = _run(deployment, "account", "create", "--name", "alice", "--role", "analyst", "--json")
    secret = _enrol_from_url(ctx, out["enrol_url"], clock)
    with deployment.db.read() as s:
        from blocklist.store import accounts as store_accounts

        account_id = store_accounts.get_account_by_name(s, "alice").id
    alice = accounts_testing.Person(account_id, "alice", secret)
    _, person = login_at(ctx, alice, clock)
    # Item 5: her existing (pre-accounts) token "alice" is attached to her.
    attached = _run(deployment, "account", "attach-token", "--token-name", "alice",
                    "--account", "alice", "--json")  # fmt: skip
    assert attached["token"] == deployment.tokens.ids["alice"]
    with deployment.db.read() as s:
        record = [r for r in store_audit.records(s, None) if r.action == Action.TOKEN_ATTACH][-1]
    assert record.details["token"] == deployment.tokens.ids["alice"]
    assert record.details["account"] == account_id
    # A second token minted in her session.
    second, _ = accounts.mint_person_token(ctx, person, "analyst", None, "alice-script")
    r = add_entry(client, deployment.tokens.alice, URL_A)
    assert r.status_code == 201, r.text
    entry_id = r.json()["id"]
    r = client.post(f"/v1/lists/{MAIN}/entries/{entry_id}/approve", token=second)
    assert r.status_code == 403
    assert r.json()["code"] == "self_approval"
    r = client.post(f"/v1/lists/{MAIN}/entries/approve", token=second, json={"ids": [entry_id]})
    assert r.json()["results"][0]["code"] == "self_approval"
    # Nor through her session.
    with ctx.db.transaction() as s:
        from blocklist.store import entries as store_entries
        from blocklist.store.errors import SelfApproval

        p = person.principal("analyst", MAIN)
        try:
            store_entries.approve(
                s, 1, entry_id, actor=p.name, actor_role=p.role, person=p.account_id
            )
            raise AssertionError("approved her own entry through her session")
        except SelfApproval:
            pass
    # Bob (another token, no person) still can.
    r = client.post(f"/v1/lists/{MAIN}/entries/{entry_id}/approve", token=deployment.tokens.bob)
    assert r.status_code == 200, r.text


def test_attach_token_refuses_an_isp_token_and_ambiguity(deployment: Deployment) -> None:
    _run(deployment, "account", "create", "--name", "ana", "--role", "analyst", "--json")
    err = _run(deployment, "account", "attach-token", "--token-name", "isp-a",
               "--account", "ana", ok=False)  # fmt: skip
    assert "no live admin, analyst or auditor token" in err
    err = _run(deployment, "account", "attach-token", "--token-id",
               str(deployment.tokens.ids["isp"]), "--account", "ana", ok=False)  # fmt: skip
    assert "permission_denied" in err
