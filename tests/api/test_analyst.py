"""Analyst workflows through the real app (httpx ASGITransport, in-process).

Every refused request is checked to leave the database exactly as it was
(row counts of every table and the head of every audit chain).
"""

from __future__ import annotations

import hashlib

import pytest
from support.api_testing import (
    MAIN,
    OTHER,
    URL_A,
    URL_B,
    ApiClient,
    Deployment,
    Tokens,
    add_approved,
    add_entry,
    db_state,
    publish,
)

from blocklist.auditlog import Action
from blocklist.canonical import expression
from blocklist.encoding import b64encode


def _problem(r: object, status: int, code: str) -> None:
    assert r.status_code == status, r.text  # type: ignore[attr-defined]
    assert r.headers["content-type"].startswith("application/problem+json")  # type: ignore[attr-defined]
    body = r.json()  # type: ignore[attr-defined]
    assert body["code"] == code
    assert body["status"] == status
    assert body["type"].endswith(code)


def test_add_then_same_expression_returns_existing(
    client: ApiClient, tokens: Tokens, deployment: Deployment
) -> None:
    first = add_entry(client, tokens.alice, URL_A)
    assert first.status_code == 201
    body = first.json()
    expr = expression(URL_A, "page")
    assert body["expression"] == expr
    assert body["hash"] == b64encode(hashlib.sha256(expr.encode()).digest())
    assert body["status"] == "pending"
    assert body["created_by"] == "alice"
    before = db_state(deployment.db)
    # Another spelling of the same page: same expression, existing entry, 200.
    again = add_entry(client, tokens.bob, "HTTP://203.0.113.7/abuse/./a.html#frag")
    assert again.status_code == 200
    assert again.json()["id"] == body["id"]
    assert db_state(deployment.db) == before


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        ({"url": "mailto:someone@example.com", "scope": "page"}, "invalid_url"),
        ({"url": "http://example.com/dir/", "scope": "page"}, "invalid_entry"),
        ({"url": "http://a.b.c.d.e.example.com/", "scope": "host"}, "invalid_entry"),
        ({"url": "http://example.com/a/b/c/d/e.html", "scope": "prefix"}, "invalid_entry"),
    ],
)
def test_refused_entries_store_nothing(
    client: ApiClient,
    tokens: Tokens,
    deployment: Deployment,
    payload: dict[str, str],
    code: str,
) -> None:
    before = db_state(deployment.db)
    r = client.post(
        f"/v1/lists/{MAIN}/entries",
        json={**payload, "reason": "report"},
        token=tokens.alice,
    )
    _problem(r, 422, code)
    assert db_state(deployment.db) == before


def test_domestic_hosting_refused(
    client: ApiClient, tokens: Tokens, deployment: Deployment
) -> None:
    before = db_state(deployment.db)
    r = add_entry(client, tokens.alice, URL_B, list_name=OTHER, hosting_country="gb")
    _problem(r, 422, "domestic_hosting")
    assert "takedown" in r.json()["detail"]
    assert db_state(deployment.db) == before
    # Hosted abroad: accepted.
    assert (
        add_entry(client, tokens.alice, URL_B, list_name=OTHER, hosting_country="US").status_code
        == 201
    )


@pytest.mark.parametrize(
    "extra",
    [
        {"version": 7},
        {"created_by": "mallory"},
        {"status": "active"},
        {"id": 1},
        {"hash": "AAAA"},
    ],
)
def test_mass_assignment_refused(
    client: ApiClient, tokens: Tokens, deployment: Deployment, extra: dict[str, object]
) -> None:
    before = db_state(deployment.db)
    body = {"url": URL_A, "scope": "page", "reason": "report", **extra}
    r = client.post(f"/v1/lists/{MAIN}/entries", json=body, token=tokens.alice)
    _problem(r, 422, "validation_error")
    assert db_state(deployment.db) == before


def test_preview_shows_reach_and_stores_nothing(
    client: ApiClient, tokens: Tokens, deployment: Deployment
) -> None:
    before = db_state(deployment.db)
    ok = client.post(
        f"/v1/lists/{MAIN}/entries/preview",
        json={"url": "http://example.com/dir/", "scope": "prefix"},
        token=tokens.alice,
    )
    assert ok.status_code == 200
    body = ok.json()
    assert body["accepted"] is True
    assert body["reach"]["expression"] == "example.com/dir/"
    assert body["reach"]["scope"] == "prefix"
    assert body["reach"]["matches"]
    refused = client.post(
        f"/v1/lists/{MAIN}/entries/preview",
        json={"url": "http://example.com/dir/", "scope": "page"},
        token=tokens.alice,
    )
    assert refused.status_code == 200
    assert refused.json()["accepted"] is False
    assert refused.json()["refusal"]["code"] == "invalid_entry"
    assert db_state(deployment.db) == before


def test_four_eyes(client: ApiClient, tokens: Tokens, deployment: Deployment) -> None:
    entry = add_entry(client, tokens.alice, URL_B, list_name=OTHER).json()
    path = f"/v1/lists/{OTHER}/entries/{entry['id']}/approve"
    before = db_state(deployment.db)
    _problem(client.post(path, token=tokens.alice), 403, "self_approval")
    _problem(client.post(path, token=tokens.admin), 403, "admin_cannot_approve")
    assert db_state(deployment.db) == before
    # OTHER needs two analysts besides the creator.
    first = client.post(path, token=tokens.bob)
    assert first.status_code == 200
    assert first.json()["status"] == "pending"
    _problem(client.post(path, token=tokens.bob), 409, "duplicate_approval")
    second = client.post(path, token=tokens.carol)
    assert second.json()["status"] == "active"


def test_expire_reinstate_cycle(client: ApiClient, tokens: Tokens, deployment: Deployment) -> None:
    entry = add_approved(client, tokens)
    assert publish(client, tokens.alice)["version"] == 1
    base = f"/v1/lists/{MAIN}/entries/{entry['id']}"
    expired = client.post(f"{base}/expire", json={}, token=tokens.carol)
    assert expired.status_code == 200
    assert expired.json()["status"] == "expired"
    assert expired.json()["listed"] is True  # until the next version
    out = publish(client, tokens.alice)
    assert out["version"] == 2
    _problem(client.post(f"{base}/expire", json={}, token=tokens.carol), 409, "invalid_state")
    back = client.post(f"{base}/reinstate", json={"reason": "confirmed again"}, token=tokens.carol)
    assert back.json()["status"] == "pending"
    # The reinstating analyst opened a new round and may not approve it.
    _problem(client.post(f"{base}/approve", token=tokens.carol), 403, "self_approval")
    assert client.post(f"{base}/approve", token=tokens.alice).json()["status"] == "active"
    history = client.get(base, token=tokens.bob).json()
    actions = [h["action"] for h in history["history"]]
    assert actions == [
        Action.ENTRY_ADD,
        Action.ENTRY_APPROVE,
        Action.ENTRY_EXPIRE,
        Action.ENTRY_REINSTATE,
        Action.ENTRY_APPROVE,
    ]
    assert [a["actor"] for a in history["approvals"]] == ["bob", "alice"]
    assert history["removed_version"] == 2


def test_expire_at_future_time_is_scheduled(client: ApiClient, tokens: Tokens) -> None:
    entry = add_approved(client, tokens)
    r = client.post(
        f"/v1/lists/{MAIN}/entries/{entry['id']}/expire",
        json={"at": "2999-01-01T00:00:00Z", "reason": "court order ends"},
        token=tokens.carol,
    )
    assert r.status_code == 200
    assert r.json()["status"] == "active"
    assert r.json()["expires_at"].startswith("2999-01-01T00:00:00")


def test_expire_refuses_naive_time_and_unknown_fields(
    client: ApiClient, tokens: Tokens, deployment: Deployment
) -> None:
    entry = add_approved(client, tokens)
    before = db_state(deployment.db)
    path = f"/v1/lists/{MAIN}/entries/{entry['id']}/expire"
    _problem(
        client.post(path, json={"at": "2999-01-01T00:00:00"}, token=tokens.bob),
        422,
        "validation_error",
    )
    _problem(client.post(path, json={"when": "now"}, token=tokens.bob), 422, "validation_error")
    assert db_state(deployment.db) == before


def test_search_filters_and_cursor(client: ApiClient, tokens: Tokens) -> None:
    urls = [f"http://example.com/s/{i}.html" for i in range(5)]
    ids = [
        add_entry(client, tokens.alice, u, reference=f"case-{i % 2}").json()["id"]
        for i, u in enumerate(urls)
    ]
    path = f"/v1/lists/{MAIN}/entries/search"
    by_url = client.post(
        path, json={"url": "https://www.example.com/s/3.html?x=1"}, token=tokens.bob
    )
    assert [e["id"] for e in by_url.json()["entries"]] == [ids[3]]
    by_ref = client.post(path, json={"reference": "case-1"}, token=tokens.bob)
    assert [e["id"] for e in by_ref.json()["entries"]] == [ids[1], ids[3]]
    digest = hashlib.sha256(b"example.com/s/2.html").digest()
    for text in (digest.hex(), b64encode(digest)):
        found = client.post(path, json={"hash": text}, token=tokens.bob).json()["entries"]
        assert [e["id"] for e in found] == [ids[2]]
    seen: list[int] = []
    cursor = None
    while True:
        page = client.post(
            path, json={"host": "example.com", "limit": 2, "cursor": cursor}, token=tokens.bob
        ).json()
        seen += [e["id"] for e in page["entries"]]
        cursor = page["next"]
        if cursor is None:
            break
    assert seen == ids
    _problem(client.post(path, json={"limit": 100000}, token=tokens.bob), 422, "validation_error")
    _problem(client.post(path, json={"hash": "zz" * 32}, token=tokens.bob), 422, "validation_error")


def test_get_unknown_entry_is_404(client: ApiClient, tokens: Tokens) -> None:
    _problem(client.get(f"/v1/lists/{MAIN}/entries/999999", token=tokens.alice), 404, "not_found")


def test_entry_of_another_list_is_not_found(client: ApiClient, tokens: Tokens) -> None:
    entry = add_entry(client, tokens.alice, URL_B, list_name=OTHER).json()
    _problem(
        client.get(f"/v1/lists/{MAIN}/entries/{entry['id']}", token=tokens.alice), 404, "not_found"
    )
    _problem(
        client.post(f"/v1/lists/{MAIN}/entries/{entry['id']}/approve", token=tokens.bob),
        404,
        "not_found",
    )


def test_publish_unchanged_when_nothing_pending(client: ApiClient, tokens: Tokens) -> None:
    first = publish(client, tokens.admin)
    assert first["version"] == 1  # the canary goes out with the first version
    again = publish(client, tokens.alice)
    assert again["version"] == 1
    assert again["published"] is False
    assert again["versions"] == []
