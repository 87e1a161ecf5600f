"""Token attacks (issue 7) and the authorisation cache, rate limit and usage."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update
from support.api_testing import (
    MAIN,
    OTHER,
    ApiClient,
    Deployment,
    Tokens,
    close_deployment,
    db_state,
    deployment_client,
    make_deployment,
)

from api.context import TokenCache
from api.ratelimit import MIN_WAIT_HEADER, RateLimiter
from blocklist.store import tokens as store_tokens
from blocklist.store.models import TokenRow

CHECKPOINT = f"/v1/lists/{MAIN}/checkpoint"


class FakeClock:
    """A monotonic clock the test moves by hand (no sleeping)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize("name", ["token", "access_token", "api_key", "TOKEN"])
def test_token_in_query_string_refused(client: ApiClient, tokens: Tokens, name: str) -> None:
    r = client.get(CHECKPOINT, params={name: tokens.isp})
    assert r.status_code == 400
    assert r.json()["code"] == "token_in_query"
    # Refused even alongside a valid header: the query string leaked it.
    r = client.get(CHECKPOINT, params={name: "x"}, token=tokens.isp)
    assert r.status_code == 400


@pytest.mark.parametrize(
    "header",
    [
        "Bearer",
        "Bearer ",
        "Basic dXNlcjpwYXNz",
        "Bearer cf_isp_short",
        "Bearer cf_isp_" + "A" * 43,  # well-formed, unknown
        "Bearer " + "x" * 5000,
        "cf_isp_" + "A" * 43,
    ],
)
def test_malformed_or_unknown_token_is_401(client: ApiClient, header: str) -> None:
    r = client.get(CHECKPOINT, headers={"Authorization": header})
    assert r.status_code == 401
    assert r.json()["code"] == "unauthenticated"
    assert r.headers["www-authenticate"].startswith("Bearer")
    assert r.headers[MIN_WAIT_HEADER]


def test_missing_token_is_401(client: ApiClient) -> None:
    for path in (CHECKPOINT, f"/v1/lists/{MAIN}/entries/1", "/v1/tokens"):
        assert client.get(path).status_code == 401


def test_token_with_other_role_prefix_is_401(client: ApiClient, tokens: Tokens) -> None:
    # The role prefix is part of the secret: renaming it breaks the token.
    forged = "cf_admin_" + tokens.isp.removeprefix("cf_isp_")
    assert client.get("/v1/tokens", token=forged).status_code == 401


def test_other_lists_answer_like_missing_lists(client: ApiClient, tokens: Tokens) -> None:
    forbidden = client.get(f"/v1/lists/{OTHER}/checkpoint", token=tokens.isp)
    missing = client.get("/v1/lists/nowhere/checkpoint", token=tokens.isp)
    assert forbidden.status_code == missing.status_code == 404
    as_if = forbidden.json()
    as_if["detail"] = as_if["detail"].replace(OTHER, "nowhere")
    as_if["instance"] = as_if["instance"].replace(OTHER, "nowhere")
    assert as_if == missing.json()
    assert set(forbidden.headers) == set(missing.headers)


def test_revocation_through_api_is_immediate(client: ApiClient, tokens: Tokens) -> None:
    assert client.get(CHECKPOINT, token=tokens.isp).status_code == 200  # now cached
    token_id = tokens.ids["isp"]
    r = client.post(f"/v1/tokens/{token_id}/revoke", token=tokens.admin)
    assert r.status_code == 200
    assert r.json()["revoked_at"] is not None
    assert client.get(CHECKPOINT, token=tokens.isp).status_code == 401
    assert client.post(f"/v1/tokens/{token_id}/revoke", token=tokens.admin).status_code == 409


def test_revocation_elsewhere_stops_within_cache_bound(
    deployment: Deployment, client: ApiClient, tokens: Tokens
) -> None:
    clock = FakeClock()
    ctx = deployment.app.state.cf
    ctx.tokens = TokenCache(5.0, clock=clock)
    assert client.get(CHECKPOINT, token=tokens.isp).status_code == 200
    # Another process (the CLI) revokes it in the database.
    with deployment.db.transaction() as session:
        store_tokens.revoke_token(session, tokens.ids["isp"], actor="cli:test")
    clock.now += 4.9
    assert client.get(CHECKPOINT, token=tokens.isp).status_code == 200  # cached
    clock.now += 0.2
    assert client.get(CHECKPOINT, token=tokens.isp).status_code == 401


def test_expired_token_is_401(deployment: Deployment, client: ApiClient, tokens: Tokens) -> None:
    with deployment.db.transaction() as session:
        session.execute(
            update(TokenRow)
            .where(TokenRow.id == tokens.ids["isp"])
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    assert client.get(CHECKPOINT, token=tokens.isp).status_code == 401


def test_rate_limit_answers_429_with_retry_after(tmp_path: Path) -> None:
    d = make_deployment(tmp_path)
    try:
        clock = FakeClock()
        ctx = d.app.state.cf
        ctx.limiter = RateLimiter(1.0, 2, clock=clock)
        with deployment_client(d) as client:
            assert client.get(CHECKPOINT, token=d.tokens.isp).status_code == 200
            assert client.get(CHECKPOINT, token=d.tokens.isp).status_code == 200
            limited = client.get(CHECKPOINT, token=d.tokens.isp)
            assert limited.status_code == 429
            assert limited.json()["code"] == "rate_limited"
            assert limited.headers["retry-after"] == "1"
            assert limited.headers[MIN_WAIT_HEADER]
            # Per token: another token is unaffected.
            assert client.get(CHECKPOINT, token=d.tokens.isp_plain).status_code == 200
            clock.now += 1.0
            assert client.get(CHECKPOINT, token=d.tokens.isp).status_code == 200
    finally:
        close_deployment(d)


def test_last_use_is_batched(deployment: Deployment, client: ApiClient, tokens: Tokens) -> None:
    def last_used() -> datetime | None:
        with deployment.db.read() as session:
            return session.scalar(
                select(TokenRow.last_used_at).where(TokenRow.id == tokens.ids["isp"])
            )

    assert client.get(CHECKPOINT, token=tokens.isp).status_code == 200
    assert last_used() is None  # nothing written on the request path
    deployment.app.state.cf.usage.flush(deployment.db)
    assert last_used() is not None


def test_token_management_through_api(
    deployment: Deployment, client: ApiClient, tokens: Tokens
) -> None:
    before = db_state(deployment.db)
    for bad in (
        {"name": "x", "role": "root"},
        {"name": "x", "role": "isp", "lists": []},
        {"name": "x", "role": "analyst", "plaintext": True},
        {"name": "x", "role": "isp", "lists": ["nowhere"]},
        {"name": "x", "role": "isp", "lists": [MAIN], "token_hash": "AA=="},
    ):
        r = client.post("/v1/tokens", json=bad, token=tokens.admin)
        assert r.status_code in (404, 422), (bad, r.text)
    assert db_state(deployment.db) == before
    created = client.post(
        "/v1/tokens",
        json={"name": "isp-new", "role": "isp", "lists": [MAIN], "plaintext": True},
        token=tokens.admin,
    )
    assert created.status_code == 201
    secret = created.json()["token"]
    assert secret.startswith("cf_isp_")
    assert client.get(CHECKPOINT, token=secret).status_code == 200
    listed = client.get("/v1/tokens", token=tokens.admin).json()
    assert "isp-new" in [t["name"] for t in listed]
    assert all("token" not in t for t in listed)
    assert secret not in str(listed)


def test_token_cache_refresh_ahead_and_revocation_race(
    deployment: Deployment, client: ApiClient, tokens: Tokens
) -> None:
    import asyncio

    clock = FakeClock()
    ctx = deployment.app.state.cf
    ctx.tokens = TokenCache(5.0, clock=clock)
    assert client.get(CHECKPOINT, token=tokens.isp).status_code == 200
    key = store_tokens.token_hash(tokens.isp)
    assert not ctx.tokens.claim_refresh(key)  # young entry: no refresh
    clock.now += 2.6  # past half its life
    assert ctx.tokens.claim_refresh(key)
    assert not ctx.tokens.claim_refresh(key)  # claimed once
    # The background lookup confirms the token: a new lifetime from now.
    generation = ctx.tokens.generation
    asyncio.run(ctx._refresh_token(tokens.isp, key, generation))
    clock.now += 4.9  # 7.5 s after the first lookup, 4.9 s after the refresh
    assert ctx.tokens.get(key) is not None
    # Revoked elsewhere: the next background lookup drops it at once.
    with deployment.db.transaction() as session:
        store_tokens.revoke_token(session, tokens.ids["isp"], actor="cli:test")
    assert ctx.tokens.claim_refresh(key)
    asyncio.run(ctx._refresh_token(tokens.isp, key, ctx.tokens.generation))
    assert ctx.tokens.get(key) is None
    assert client.get(CHECKPOINT, token=tokens.isp).status_code == 401


def test_refresh_started_before_a_revocation_cannot_restore_the_token(
    deployment: Deployment, client: ApiClient, tokens: Tokens
) -> None:
    clock = FakeClock()
    ctx = deployment.app.state.cf
    ctx.tokens = TokenCache(5.0, clock=clock)
    assert client.get(CHECKPOINT, token=tokens.isp).status_code == 200
    key = store_tokens.token_hash(tokens.isp)
    principal = ctx.tokens.get(key)
    clock.now += 3
    assert ctx.tokens.claim_refresh(key)
    generation = ctx.tokens.generation  # the lookup starts (reads "valid")
    ctx.tokens.evict_token(tokens.ids["isp"])  # revoked through the API meanwhile
    ctx.tokens.refreshed(key, principal, generation)  # the stale answer arrives
    assert ctx.tokens.get(key) is None
