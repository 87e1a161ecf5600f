"""``/v1/admin/accounts…``: the admin API mirrors ``cleanfeed account`` (issue 15 item 1)."""

from __future__ import annotations

from support.accounts_testing import Clock, enrolled_person, login_at
from support.api_testing import MAIN, ApiClient, Deployment, db_state

from api import accounts
from api.context import AppContext
from blocklist.auditlog import Action
from blocklist.store import audit as store_audit

BASE = "/v1/admin/accounts"


def test_create_list_reset_disable(deployment: Deployment, client: ApiClient) -> None:
    admin = deployment.tokens.admin
    r = client.post(BASE, token=admin, json={"name": "ana", "role": "analyst", "lists": [MAIN]})
    assert r.status_code == 201, r.text
    out = r.json()
    assert (out["name"], out["role"], out["lists"]) == ("ana", "analyst", [MAIN])
    assert "/console/enrol/" in out["enrol_url"]
    assert out["grants"] == [
        {
            "role": "analyst",
            "list": MAIN,
            "status": "granted",
            "grant": None,
            "tokens_revoked": None,
        }
    ]
    r = client.post(BASE, token=admin, json={"name": "ana", "role": "analyst"})
    assert r.status_code == 409
    assert r.json()["code"] == "account_name_taken"
    listed = client.get(BASE, token=admin).json()["accounts"]
    assert [(a["name"], a["enrolled"]) for a in listed] == [("ana", False)]
    r = client.post(f"{BASE}/ana/reset", token=admin)
    assert r.status_code == 200
    assert r.json()["enrol_url"] != out["enrol_url"]
    r = client.post(f"{BASE}/ana/disable", token=admin)
    assert r.json() == {"name": "ana", "disabled": True, "tokens_revoked": []}
    assert client.post(f"{BASE}/ana/disable", token=admin).status_code == 409
    assert client.post(f"{BASE}/nobody/disable", token=admin).status_code == 404
    with deployment.db.read() as s:
        records = [r for r in store_audit.records(s, None) if r.action.startswith("account.")]
    # The actor is the admin token's name: records say who did it.
    assert {r.actor for r in records} == {"admin"}


def test_only_admins_and_bad_bodies_change_nothing(
    deployment: Deployment, client: ApiClient
) -> None:
    before = db_state(deployment.db)
    body = {"name": "ana", "role": "analyst"}
    assert client.post(BASE, token=deployment.tokens.alice, json=body).status_code == 403
    assert client.post(BASE, json=body).status_code == 401
    admin = deployment.tokens.admin
    for bad in (
        {"name": "ana", "role": "isp"},
        {"name": "a b", "role": "analyst"},
        {"name": "ana", "role": "analyst", "extra": 1},
        {"name": "ana", "role": "analyst", "enrol_hours": 0},
    ):
        assert client.post(BASE, token=admin, json=bad).status_code == 422, bad
    r = client.post(BASE, token=admin, json={"name": "ana", "role": "admin", "lists": [MAIN]})
    assert r.status_code == 422
    assert r.json()["code"] == "invalid_field"
    r = client.post(BASE, token=admin, json={"name": "ana", "role": "analyst", "lists": ["zz"]})
    assert r.status_code == 404
    assert db_state(deployment.db) == before


def test_second_admin_confirms_through_the_api(deployment: Deployment, client: ApiClient) -> None:
    ctx: AppContext = deployment.app.state.cf
    clock = Clock()
    root = enrolled_person(ctx, "root", [("admin", "*")], clock=clock)
    second = enrolled_person(ctx, "second", [("admin", "*")], clock=clock)
    _, root_session = login_at(ctx, root, clock)
    _, second_session = login_at(ctx, second, clock)
    root_token, _ = accounts.mint_person_token(ctx, root_session, "admin", None, "root-api")
    second_token, _ = accounts.mint_person_token(ctx, second_session, "admin", None, "second-api")
    r = client.post(BASE, token=root_token, json={"name": "ana", "role": "analyst"})
    grant = r.json()["grants"][0]
    assert grant["status"] == "pending"
    confirm = f"{BASE}/grants/{grant['grant']}/confirm"
    # Not the requester; not an admin token of no person.
    for token in (root_token, deployment.tokens.admin):
        r = client.post(confirm, token=token)
        assert r.status_code == 403
        assert r.json()["code"] == "second_admin_required"
    r = client.post(confirm, token=second_token)
    assert r.status_code == 200, r.text
    assert r.json() == {"grant": grant["grant"], "role": "analyst", "list": "*"}
    with deployment.db.read() as s:
        confirmed = [
            r for r in store_audit.records(s, None) if r.action == Action.ACCOUNT_GRANT_CONFIRM
        ]
    assert confirmed[0].details["person"] == second.account_id
    listed = {a["name"]: a for a in client.get(BASE, token=second_token).json()["accounts"]}
    assert listed["ana"]["roles"] == [
        {"role": "analyst", "list": "*", "status": None, "grant": None, "tokens_revoked": None}
    ]


def test_attach_token_and_disable_revokes_it_at_once(
    deployment: Deployment, client: ApiClient
) -> None:
    admin = deployment.tokens.admin
    client.post(BASE, token=admin, json={"name": "alice", "role": "analyst"})
    r = client.post(
        f"{BASE}/alice/attach-token", token=admin, json={"token_id": deployment.tokens.ids["alice"]}
    )
    assert r.status_code == 200, r.text
    assert r.json() == {
        "token": deployment.tokens.ids["alice"],
        "name": "alice",
        "role": "analyst",
        "account": "alice",
    }
    # Already attached.
    r = client.post(
        f"{BASE}/alice/attach-token", token=admin, json={"token_id": deployment.tokens.ids["alice"]}
    )
    assert r.status_code == 409
    assert (
        client.get(f"/v1/lists/{MAIN}/entries/1", token=deployment.tokens.alice).status_code == 200
    )
    r = client.post(f"{BASE}/alice/disable", token=admin)
    assert r.json()["tokens_revoked"] == [deployment.tokens.ids["alice"]]
    r = client.get(f"/v1/lists/{MAIN}/entries/1", token=deployment.tokens.alice)
    assert r.status_code == 401


def test_no_new_analyst_token_of_nobody_once_analysts_are_persons(
    deployment: Deployment, client: ApiClient
) -> None:
    """Issue 15 item 4: a token of no person would be a second identity."""
    admin = deployment.tokens.admin

    def mint(name: str, role: str) -> tuple[int, str]:
        r = client.post(
            "/v1/tokens", token=admin, json={"name": name, "role": role, "lists": [MAIN]}
        )
        return r.status_code, r.json().get("code", "")

    assert mint("before-persons", "analyst")[0] == 201  # a deployment without persons
    r = client.post(BASE, token=admin, json={"name": "ana", "role": "analyst", "lists": [MAIN]})
    assert r.status_code == 201, r.text
    before = db_state(deployment.db)
    assert mint("ana-2", "analyst") == (409, "analyst_token_needs_person")
    assert db_state(deployment.db) == before
    assert mint("isp-after", "isp")[0] == 201  # organisations' tokens are unaffected
