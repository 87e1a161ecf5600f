"""Token attacks: missing, malformed, expired, revoked, in the query string,
another ISP's list, and an ISP token on analyst and admin endpoints.

The API's answers to each (401 / 400 / 404 / 403) are tested in
``tests/api/test_auth.py`` and, for every route x role, in
``tests/api/test_matrix.py::test_authorisation_matrix``. This file adds what
those do not prove: that another ISP's list answers *byte for byte* like a
list that does not exist (compared against a deployment where it really
does not exist), that a token in any query parameter is never accepted, that
a refused ISP token changes nothing on the server, and what the real ISP
client does when its token is refused (keeps its list, says why, counts it).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import update
from support.api_testing import MAIN, OTHER, ApiClient, db_state
from support.attack_helpers import World

from api.app import create_app
from api.settings import load_settings
from blocklist.store import tokens as store_tokens
from blocklist.store.db import Database
from blocklist.store.models import TokenRow
from signer.datadir import init_data_dir, resolve_database_url

#: Every ISP document of a list, with parameters valid for version 1.
ISP_DOCUMENTS = [
    ("/keyring", {}),
    ("/keyring", {"serial": 1}),
    ("/checkpoint", {}),
    ("/statements", {"since": 0}),
    ("/statements/1", {}),
    ("/snapshot", {"version": 1}),
    ("/plaintext", {"since": 0}),
    ("/proofs/inclusion", {"version": 1, "size": 1}),
    ("/proofs/consistency", {"from": 0, "to": 1}),
    ("/proofs/range", {"size": 1}),
]


class Lone:
    """A deployment with list ``main`` only, and an ISP token for it."""

    def __init__(self, root: Path) -> None:
        data_dir = root / "lone"
        init_data_dir(data_dir, list_name=MAIN, approvals_required=1)
        db = Database(resolve_database_url(data_dir))
        try:
            with db.transaction() as session:
                self.isp, _ = store_tokens.create_token(
                    session, name="isp-a", role="isp", lists=[MAIN], actor="test", plaintext=True
                )
        finally:
            db.dispose()
        settings = load_settings(
            data_dir,
            schedule=False,
            rate_limit_per_second=0,
            json_logs=False,
            checkpoint_cache_ttl=0,
        )
        self.app = create_app(settings)
        self.client = ApiClient(self.app)

    def close(self) -> None:
        self.client.close()
        self.app.state.cf.db.dispose()


@pytest.fixture
def lone(tmp_path: Path) -> Iterator[Lone]:
    service = Lone(tmp_path)
    try:
        yield service
    finally:
        service.close()


@pytest.mark.parametrize(("path", "params"), ISP_DOCUMENTS)
@pytest.mark.parametrize("token", ["isp", "isp_plain"])
def test_another_isps_list_answers_byte_for_byte_like_a_missing_list(
    world: World, lone: Lone, path: str, params: dict[str, int], token: str
) -> None:
    w = world
    w.call("POST", f"/v1/lists/{OTHER}/publish", w.tokens.alice)  # list other exists, version 1
    url = f"/v1/lists/{OTHER}{path}"
    forbidden = w.call("GET", url, getattr(w.tokens, token), params=params)
    missing = lone.client.get(url, token=lone.isp, params=params)
    assert forbidden.status_code == missing.status_code == 404
    assert forbidden.content == missing.content
    assert forbidden.headers.multi_items() == missing.headers.multi_items()


def test_a_token_in_any_query_parameter_is_never_accepted(world: World) -> None:
    w = world
    url = f"/v1/lists/{MAIN}/checkpoint"
    # Under a name that says what it is: refused as a leaked credential.
    for name in ("token", "access_token", "api_key", "apikey", "Token"):
        r = w.call("GET", url, params={name: w.tokens.isp})
        assert r.status_code == 400, name
        assert r.json()["code"] == "token_in_query", name
    # Under any other name: simply not a credential.
    for name in ("t", "auth", "bearer", "authorization", "key"):
        r = w.call("GET", url, params={name: w.tokens.isp})
        assert r.status_code == 401, name
        assert r.json()["code"] == "unauthenticated", name
    # Nor in a cookie.
    r = w.call("GET", url, headers={"Cookie": f"token={w.tokens.isp}"})
    assert r.status_code == 401


def _analyst_and_admin_calls(w: World) -> list[tuple[str, str, dict[str, object]]]:
    entry = {"url": w.url("via-isp"), "scope": "page", "reason": "r"}
    return [
        ("POST", f"/v1/lists/{MAIN}/entries", {"json": entry}),
        ("POST", f"/v1/lists/{MAIN}/entries/bulk", {"json": [entry]}),
        (
            "POST",
            f"/v1/lists/{MAIN}/entries/bulk.csv",
            {
                "content": f"url,scope,reason\n{entry['url']},page,r\n".encode(),
                "headers": {"Content-Type": "text/csv"},
            },
        ),
        ("POST", f"/v1/lists/{MAIN}/entries/1/approve", {"json": {}}),
        ("POST", f"/v1/lists/{MAIN}/entries/1/expire", {"json": {}}),
        ("POST", f"/v1/lists/{MAIN}/entries/1/reinstate", {"json": {}}),
        ("POST", f"/v1/lists/{MAIN}/publish", {}),
        ("POST", "/v1/tokens", {"json": {"name": "mine", "role": "admin"}}),
        ("POST", f"/v1/tokens/{w.tokens.ids['alice']}/revoke", {}),
        ("POST", "/v1/lists", {"json": {"name": "mine"}}),
        (
            "POST",
            f"/v1/lists/{MAIN}/checkpoint/cosignatures",
            {"json": {"vkey": "x", "signature": "y"}},
        ),
        ("GET", f"/v1/lists/{MAIN}/entries/2", {}),
        ("GET", f"/v1/lists/{MAIN}/publish/requests/1", {}),
        ("GET", f"/v1/lists/{MAIN}/audit/log", {}),
        ("GET", f"/v1/lists/{MAIN}/audit/bundle", {}),
        ("GET", f"/v1/lists/{MAIN}", {}),
        ("GET", f"/v1/lists/{MAIN}/isps", {}),
        ("GET", "/v1/tokens", {}),
        ("GET", "/v1/lists", {}),
    ]


def test_isp_token_on_analyst_and_admin_endpoints_is_403_and_changes_nothing(
    world: World,
) -> None:
    w = world
    w.add(w.url("listed"))  # entry 2 (1 is the canary)
    before = db_state(w.d.db)
    for method, path, kwargs in _analyst_and_admin_calls(w):
        r = w.call(method, path, w.tokens.isp_plain, **kwargs)  # type: ignore[arg-type]
        assert r.status_code == 403, (path, r.status_code, r.text)
        assert r.json()["code"] == "forbidden"
    assert db_state(w.d.db) == before


def test_isp_token_on_analyst_endpoints_is_403_whatever_the_body(world: World) -> None:
    """The role is checked before the body is parsed (api/auth.py: 401, 403, 404 first)."""
    w = world
    for method, path, kwargs in _analyst_and_admin_calls(w):
        if "json" not in kwargs:
            continue
        r = w.call(
            method,
            path,
            w.tokens.isp,
            content=b"{not json",
            headers={"Content-Type": "application/json"},
        )
        assert r.status_code == 403, (path, r.status_code, r.json().get("code"))


# --- the real ISP client with a refused token -----------------------------------------


def test_revoked_token(synced: World) -> None:
    w = synced
    before = w.held()
    r = w.call("POST", f"/v1/tokens/{w.tokens.ids['isp']}/revoke", w.tokens.admin)
    assert r.status_code == 200
    w.assert_rejected(w.sync(), "access_denied", before, status="failed")


def test_expired_token(synced: World) -> None:
    w = synced
    before = w.held()
    with w.d.db.transaction() as session:
        session.execute(
            update(TokenRow)
            .where(TokenRow.id == w.tokens.ids["isp"])
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    w.d.app.state.cf.tokens.clear()  # no cached authorisation (at most 5 s anyway)
    w.assert_rejected(w.sync(), "access_denied", before, status="failed")


@pytest.mark.parametrize("token", [None, "", "cf_isp_short", "cf_admin_" + "A" * 43, "x" * 5000])
def test_missing_or_malformed_token(synced: World, token: str | None) -> None:
    w = synced
    before = w.held()
    w.assert_rejected(
        w.sync(config=w.configured(token=token)), "access_denied", before, status="failed"
    )


def test_token_of_another_isps_list(synced: World) -> None:
    w = synced
    before = w.held()
    outcome = w.sync(config=w.configured(token=w.tokens.isp_other))
    w.assert_rejected(outcome, "not_found", before, status="failed")
