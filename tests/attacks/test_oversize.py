"""Oversized bodies, huge ``limit``, deep JSON and huge values: 4xx, never 5xx.

``tests/api/test_limits.py`` covers the body cap on ``…/entries`` (413,
with and without ``Content-Length``), deep JSON, huge integers and NaN on
``…/entries``, huge ``limit``/``since``/``version`` query values and path
integers. This file applies the same attacks to every endpoint that takes a
body, adds the CSV cap, bulk row counts, huge values inside the body
(``limit``, ``cursor``, dates at the edge of the calendar) and proof sizes,
and checks each answer is a 4xx problem document (the app is driven with
``raise_app_exceptions=False``, so a crash shows up as the 500 a client
would see) and that nothing was stored.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from support.api_testing import MAIN, Deployment, close_deployment, db_state, make_deployment

from api.middleware import MAX_CSV_BODY_BYTES, MAX_JSON_BODY_BYTES, MAX_JSON_DEPTH
from api.route_caps import route_body_cap
from blocklist.store.imports import MAX_BULK_ROWS
from blocklist.store.search import MAX_PAGE_SIZE


class Client:
    """Requests into the app; an unhandled error comes back as a 500, as on the wire."""

    def __init__(self, d: Deployment) -> None:
        self.d = d
        self._runner = asyncio.Runner()
        transport = httpx.ASGITransport(app=d.app, raise_app_exceptions=False)
        self._client = httpx.AsyncClient(transport=transport, base_url="http://cleanfeed.test")

    def request(self, method: str, url: str, token: str | None, **kwargs: Any) -> httpx.Response:
        headers = dict(kwargs.pop("headers", None) or {})
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return self._runner.run(self._client.request(method, url, headers=headers, **kwargs))

    def close(self) -> None:
        self._runner.run(self._client.aclose())
        self._runner.close()


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Client]:
    d = make_deployment(tmp_path_factory.mktemp("oversize"))
    c = Client(d)
    try:
        r = c.request("POST", f"/v1/lists/{MAIN}/publish", d.tokens.admin)
        assert r.status_code == 200
        yield c
    finally:
        c.close()
        close_deployment(d)


def _refused(c: Client, r: httpx.Response, before: object, *statuses: int) -> None:
    assert r.status_code in statuses, (r.status_code, r.text[:300])
    assert r.headers["content-type"].startswith("application/problem+json")
    assert db_state(c.d.db) == before


LISTS = f"/v1/lists/{MAIN}"

#: (token attribute, path) of every endpoint that takes a JSON body.
JSON_ENDPOINTS = [
    ("alice", f"{LISTS}/entries"),
    ("alice", f"{LISTS}/entries/bulk"),
    ("alice", f"{LISTS}/entries/preview"),
    ("alice", f"{LISTS}/entries/search"),
    ("bob", f"{LISTS}/entries/1/approve"),
    ("alice", f"{LISTS}/entries/1/expire"),
    ("alice", f"{LISTS}/entries/1/reinstate"),
    ("auditor", f"{LISTS}/checkpoint/cosignatures"),
    ("admin", "/v1/tokens"),
    ("admin", "/v1/lists"),
]


def _post(c: Client, attr: str, path: str, body: bytes) -> httpx.Response:
    return c.request(
        "POST",
        path,
        getattr(c.d.tokens, attr),
        content=body,
        headers={"Content-Type": "application/json"},
    )


@pytest.mark.parametrize(("attr", "path"), JSON_ENDPOINTS)
def test_body_over_the_cap_is_413(env: Client, attr: str, path: str) -> None:
    before = db_state(env.d.db)
    cap = route_body_cap(path)
    if cap is None:
        body = json.dumps({"reason": "x" * MAX_JSON_BODY_BYTES}).encode()
        _refused(env, _post(env, attr, path, body), before, 413)
        return
    # The JSON bulk add's cap holds 10,000 of the largest rows (api.route_caps,
    # about 120 MiB): a body declaring more is refused before it is read.
    assert cap > MAX_JSON_BODY_BYTES

    async def small() -> AsyncIterator[bytes]:
        yield b"[]"

    r = env.request(
        "POST",
        path,
        getattr(env.d.tokens, attr),
        content=small(),
        headers={"Content-Type": "application/json", "Content-Length": str(cap + 1)},
    )
    _refused(env, r, before, 413)


@pytest.mark.parametrize(("attr", "path"), JSON_ENDPOINTS)
def test_deep_json_is_422(env: Client, attr: str, path: str) -> None:
    before = db_state(env.d.db)
    depth = MAX_JSON_DEPTH + 1
    _refused(env, _post(env, attr, path, b"[" * depth + b"]" * depth), before, 422)
    _refused(env, _post(env, attr, path, b"[" * 200_000 + b"]" * 200_000), before, 422)


@pytest.mark.parametrize(("attr", "path"), JSON_ENDPOINTS)
def test_huge_integer_literal_is_422(env: Client, attr: str, path: str) -> None:
    before = db_state(env.d.db)
    _refused(env, _post(env, attr, path, b'{"limit": ' + b"9" * 100_000 + b"}"), before, 422)


def test_csv_over_its_cap_is_413(env: Client) -> None:
    before = db_state(env.d.db)
    row = b"http://example.com/a.html,page,r\n"
    body = b"url,scope,reason\n" + row * (MAX_CSV_BODY_BYTES // len(row) + 1)
    r = env.request(
        "POST",
        f"{LISTS}/entries/bulk.csv",
        env.d.tokens.alice,
        content=body,
        headers={"Content-Type": "text/csv"},
    )
    _refused(env, r, before, 413)


def test_bulk_with_more_rows_than_allowed_is_422(env: Client) -> None:
    before = db_state(env.d.db)
    rows = [
        {"url": f"http://e.example/{i}", "scope": "page", "reason": "r"}
        for i in range(MAX_BULK_ROWS + 1)
    ]
    body = json.dumps(rows, separators=(",", ":")).encode()
    assert len(body) < MAX_JSON_BODY_BYTES  # refused for its rows, not its bytes
    _refused(env, _post(env, "alice", f"{LISTS}/entries/bulk", body), before, 422)


def test_csv_with_more_rows_than_allowed_is_422(env: Client) -> None:
    before = db_state(env.d.db)
    body = b"url,scope,reason\n" + b"".join(
        f"http://e.example/{i},page,r\n".encode() for i in range(MAX_BULK_ROWS + 1)
    )
    r = env.request(
        "POST",
        f"{LISTS}/entries/bulk.csv",
        env.d.tokens.alice,
        content=body,
        headers={"Content-Type": "text/csv"},
    )
    _refused(env, r, before, 422)


@pytest.mark.parametrize(
    "body",
    [
        {"limit": MAX_PAGE_SIZE + 1},
        {"limit": 10**18},
        {"limit": 0},
        {"limit": -1},
        {"cursor": 2**63},
        {"cursor": -1},
        {"limit": 1e308},
    ],
)
def test_huge_search_values_are_422(env: Client, body: dict[str, Any]) -> None:
    before = db_state(env.d.db)
    r = env.request("POST", f"{LISTS}/entries/search", env.d.tokens.alice, json=body)
    _refused(env, r, before, 422)


#: Times at the edges of what a datetime can hold: with an offset, their UTC
#: value is outside years 1..9999; as integers, seconds no calendar holds.
EDGE_TIMES: list[Any] = [
    "9999-12-31T23:59:59-23:59",
    "0001-01-01T00:00:00+23:59",
    "9999-12-31T23:59:59Z",
    99999999999999999999,
    -62135596801,
    253402300800,
]


@pytest.mark.parametrize("when", EDGE_TIMES)
def test_entry_expiry_at_the_edge_of_time(env: Client, when: Any) -> None:
    before = db_state(env.d.db)
    body = {
        "url": "http://example.com/edge.html",
        "scope": "page",
        "reason": "r",
        "expires_at": when,
    }
    r = env.request("POST", f"{LISTS}/entries", env.d.tokens.alice, json=body)
    if r.status_code == 201:
        # A far but representable future is a legitimate expiry; anything
        # else must be refused without a crash.
        return
    _refused(env, r, before, 422)


@pytest.mark.parametrize("when", EDGE_TIMES)
def test_scheduled_expiry_at_the_edge_of_time(env: Client, when: Any) -> None:
    added = env.request(
        "POST",
        f"{LISTS}/entries",
        env.d.tokens.alice,
        json={
            "url": f"http://example.com/edge/{abs(hash(str(when)))}.html",
            "scope": "page",
            "reason": "r",
        },
    )
    assert added.status_code == 201, added.text
    before = db_state(env.d.db)
    r = env.request(
        "POST",
        f"{LISTS}/entries/{added.json()['id']}/expire",
        env.d.tokens.alice,
        json={"at": when},
    )
    if r.status_code == 200:
        return
    _refused(env, r, before, 422)


@pytest.mark.parametrize("when", EDGE_TIMES)
def test_token_expiry_at_the_edge_of_time(env: Client, when: Any) -> None:
    before = db_state(env.d.db)
    body = {
        "name": f"edge-{abs(hash(str(when)))}",
        "role": "isp",
        "lists": [MAIN],
        "expires_at": when,
    }
    r = env.request("POST", "/v1/tokens", env.d.tokens.admin, json=body)
    if r.status_code == 201:
        return
    _refused(env, r, before, 422)


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/proofs/inclusion", {"version": 1, "size": 2**62}),
        ("/proofs/consistency", {"from": 0, "to": 2**62}),
        ("/proofs/range", {"size": 2**62}),
        ("/proofs/inclusion", {"version": 2, "size": 1}),
        ("/proofs/consistency", {"from": 2, "to": 1}),
        ("/snapshot", {"version": 2**62}),
        ("/statements/" + str(2**62), {}),
        ("/keyring", {"serial": 2**62}),
        ("/statements", {"since": 0, "limit": 0}),
        ("/statements", {"since": -1}),
        ("/plaintext", {"since": 2**63}),
    ],
)
def test_isp_query_values_beyond_the_log_are_4xx(
    env: Client, path: str, params: dict[str, int]
) -> None:
    before = db_state(env.d.db)
    r = env.request("GET", f"{LISTS}{path}", env.d.tokens.isp_plain, params=params)
    _refused(env, r, before, 400, 404, 422)


def test_module_fixture_is_the_real_app(env: Client) -> None:
    # Control: a normal request through the same client succeeds.
    r = env.request("GET", f"{LISTS}/checkpoint", env.d.tokens.isp)
    assert r.status_code == 200
