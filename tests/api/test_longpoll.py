"""Long-poll of the checkpoint: ``GET …/checkpoint?wait=S`` (DESIGN.md, "Freshness").

Each test drives the real app in-process over ``httpx.ASGITransport`` on one
event loop, so a held request and the publish that ends it run side by
side. "Held" is observed, never timed: the waiter is counted by the app
(:attr:`CheckpointWaiters.active`) and its task is still pending; each
test's holds ask for far longer (55 s) than the test's guard
(:data:`GUARD_SECONDS`), so only a wake-up can end them in time.

The multi-process cases run two app instances on one database with their
lifespans (which start the PostgreSQL listener or the SQLite poller): a
publish through one wakes a waiter held by the other.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from fastapi import FastAPI
from support.api_testing import (
    MAIN,
    URL_A,
    URL_B,
    Deployment,
    close_deployment,
    make_deployment,
)
from support.postgres import POSTGRES_ENV, admin_engine, fresh_postgres_database

from api.app import create_app
from api.context import AppContext
from api.longpoll import MAX_WAIT_SECONDS, WAIT_HEADER
from api.settings import load_settings

T = TypeVar("T")

#: Longest a test waits for something that should happen at once.
GUARD_SECONDS = 20.0
PATH = f"/v1/lists/{MAIN}/checkpoint"


def _run(test: Callable[[], Awaitable[T]]) -> T:
    return asyncio.run(asyncio.wait_for(test(), GUARD_SECONDS * 3))


def _client(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://cf.test")


def _auth(token: str, **headers: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", **headers}


def _ctx(app: FastAPI) -> AppContext:
    ctx: AppContext = app.state.cf
    return ctx


async def _until(predicate: Callable[[], bool]) -> None:
    """Yield to the loop until ``predicate`` holds (bounded by the guard)."""
    async with asyncio.timeout(GUARD_SECONDS):
        while not predicate():
            await asyncio.sleep(0.01)


async def _publish_one(c: httpx.AsyncClient, d: Deployment, url: str) -> int:
    added = await c.post(
        f"/v1/lists/{MAIN}/entries",
        json={"url": url, "scope": "page", "reason": "hotline report"},
        headers=_auth(d.tokens.alice),
    )
    assert added.status_code == 201, added.text
    approved = await c.post(
        f"/v1/lists/{MAIN}/entries/{added.json()['id']}/approve", headers=_auth(d.tokens.bob)
    )
    assert approved.status_code == 200, approved.text
    published = await c.post(f"/v1/lists/{MAIN}/publish", headers=_auth(d.tokens.alice))
    assert published.status_code == 200, published.text
    version: int = published.json()["version"]
    return version


def test_a_held_request_is_answered_by_the_publish(deployment: Deployment) -> None:
    d = deployment

    async def scenario() -> None:
        async with _client(d.app) as c:
            first = await c.get(PATH, headers=_auth(d.tokens.isp))
            etag = first.headers["etag"]
            held = asyncio.create_task(
                c.get(
                    PATH,
                    params={"wait": MAX_WAIT_SECONDS},
                    headers=_auth(d.tokens.isp, **{"If-None-Match": etag}),
                )
            )
            await _until(lambda: _ctx(d.app).waiters.active == 1)
            assert not held.done()
            version = await _publish_one(c, d, URL_A)
            r = await asyncio.wait_for(held, GUARD_SECONDS)
            assert r.status_code == 200
            assert r.headers["etag"] != etag
            assert r.headers[WAIT_HEADER] == str(MAX_WAIT_SECONDS)
            assert f"\n{version}\n" in r.text  # the note of the new tree size
            assert _ctx(d.app).waiters.active == 0

    _run(scenario)


def test_no_change_within_the_wait_answers_304(deployment: Deployment) -> None:
    d = deployment

    async def scenario() -> None:
        async with _client(d.app) as c:
            etag = (await c.get(PATH, headers=_auth(d.tokens.isp))).headers["etag"]
            held = asyncio.create_task(
                c.get(
                    PATH,
                    params={"wait": 1},
                    headers=_auth(d.tokens.isp, **{"If-None-Match": etag}),
                )
            )
            await _until(lambda: _ctx(d.app).waiters.active == 1 or held.done())
            r = await asyncio.wait_for(held, GUARD_SECONDS)
            assert r.status_code == 304
            assert r.content == b""
            assert r.headers["etag"] == etag
            assert r.headers[WAIT_HEADER] == "1"

    _run(scenario)


def test_a_newer_checkpoint_answers_at_once_and_wait_is_capped(deployment: Deployment) -> None:
    d = deployment

    async def scenario() -> None:
        async with _client(d.app) as c:
            old = (await c.get(PATH, headers=_auth(d.tokens.isp))).headers["etag"]
            await _publish_one(c, d, URL_A)
            # The client is behind: no hold, whatever it asks for.
            r = await asyncio.wait_for(
                c.get(
                    PATH,
                    params={"wait": 10_000},
                    headers=_auth(d.tokens.isp, **{"If-None-Match": old}),
                ),
                GUARD_SECONDS,
            )
            assert r.status_code == 200
            assert r.headers["etag"] != old
            # Larger waits are capped, not refused.
            assert r.headers[WAIT_HEADER] == str(MAX_WAIT_SECONDS)
            # Without a validator there is nothing to wait for either.
            plain = await c.get(PATH, params={"wait": 30}, headers=_auth(d.tokens.isp))
            assert plain.status_code == 200
            assert plain.headers[WAIT_HEADER] == "30"
            # "*" matches every checkpoint: today's 304, at once.
            star = await asyncio.wait_for(
                c.get(
                    PATH,
                    params={"wait": 30},
                    headers=_auth(d.tokens.isp, **{"If-None-Match": "*"}),
                ),
                GUARD_SECONDS,
            )
            assert star.status_code == 304
            assert _ctx(d.app).waiters.active == 0

    _run(scenario)


def test_without_wait_nothing_changes(deployment: Deployment) -> None:
    d = deployment

    async def scenario() -> None:
        async with _client(d.app) as c:
            etag = (await c.get(PATH, headers=_auth(d.tokens.isp))).headers["etag"]
            for params in ({}, {"wait": 0}):
                r = await c.get(
                    PATH, params=params, headers=_auth(d.tokens.isp, **{"If-None-Match": etag})
                )
                assert r.status_code == 304
                assert WAIT_HEADER not in r.headers
            for bad in ("-1", "soon", "1.5", "9" * 40):
                r = await c.get(PATH, params={"wait": bad}, headers=_auth(d.tokens.isp))
                assert r.status_code == 422, bad
                assert r.headers["content-type"].startswith("application/problem+json")
            # Authentication is unchanged: no token, no hold.
            r = await c.get(PATH, params={"wait": 5}, headers={"If-None-Match": etag})
            assert r.status_code == 401
            assert _ctx(d.app).waiters.active == 0

    _run(scenario)


def test_beyond_the_cap_requests_are_answered_at_once(deployment: Deployment) -> None:
    d = deployment
    _ctx(d.app).waiters.limit = 1

    async def scenario() -> None:
        async with _client(d.app) as c:
            etag = (await c.get(PATH, headers=_auth(d.tokens.isp))).headers["etag"]
            headers = _auth(d.tokens.isp, **{"If-None-Match": etag})
            first = asyncio.create_task(
                c.get(PATH, params={"wait": MAX_WAIT_SECONDS}, headers=headers)
            )
            await _until(lambda: _ctx(d.app).waiters.active == 1)
            second = await asyncio.wait_for(
                c.get(PATH, params={"wait": MAX_WAIT_SECONDS}, headers=headers), GUARD_SECONDS
            )
            assert second.status_code == 304
            assert second.headers[WAIT_HEADER] == "0"  # declined: poll on schedule
            assert not first.done()
            await _publish_one(c, d, URL_A)
            assert (await asyncio.wait_for(first, GUARD_SECONDS)).status_code == 200

    _run(scenario)


def test_a_held_request_costs_one_request_of_the_rate_limit(tmp_path: Path) -> None:
    # Burst 2, refilling one request a day: a held request must cost exactly
    # one, like any poll, however long it is held.
    d = make_deployment(tmp_path, rate_limit_per_second=1 / 86_400, rate_limit_burst=2)

    async def scenario() -> None:
        async with _client(d.app) as c:
            first = await c.get(PATH, headers=_auth(d.tokens.isp))
            etag = first.headers["etag"]
            r = await c.get(
                PATH, params={"wait": 1}, headers=_auth(d.tokens.isp, **{"If-None-Match": etag})
            )
            assert r.status_code == 304
            limited = await c.get(PATH, headers=_auth(d.tokens.isp))
            assert limited.status_code == 429

    try:
        _run(scenario)
    finally:
        close_deployment(d)


def test_shutdown_releases_held_requests(deployment: Deployment) -> None:
    d = deployment

    async def scenario() -> None:
        async with _client(d.app) as c:
            etag = (await c.get(PATH, headers=_auth(d.tokens.isp))).headers["etag"]
            held = asyncio.create_task(
                c.get(
                    PATH,
                    params={"wait": MAX_WAIT_SECONDS},
                    headers=_auth(d.tokens.isp, **{"If-None-Match": etag}),
                )
            )
            await _until(lambda: _ctx(d.app).waiters.active == 1)
            _ctx(d.app).waiters.release_all()
            r = await asyncio.wait_for(held, GUARD_SECONDS)
            assert r.status_code == 304
            # No new holds while stopping.
            again = await asyncio.wait_for(
                c.get(
                    PATH,
                    params={"wait": MAX_WAIT_SECONDS},
                    headers=_auth(d.tokens.isp, **{"If-None-Match": etag}),
                ),
                GUARD_SECONDS,
            )
            assert again.headers[WAIT_HEADER] == "0"

    _run(scenario)


# --- several processes on one database -------------------------------------------


@asynccontextmanager
async def _running(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """The app with its lifespan running (listener or poller), and a client on it."""
    async with AsyncExitStack() as stack:
        await stack.enter_async_context(app.router.lifespan_context(app))
        yield await stack.enter_async_context(_client(app))


def _second_worker(d: Deployment, **overrides: Any) -> FastAPI:
    """Another API process on the same database: no signer, no checkpoint cache.

    Without the cache there is no periodic refresh either, so only the
    cross-process signal (NOTIFY or the SQLite poll) can wake its waiters.
    """
    options: dict[str, Any] = {
        "schedule": False,
        "signer": False,
        "rate_limit_per_second": 0,
        "json_logs": False,
        "checkpoint_cache_ttl": 0,
        **overrides,
    }
    if d.settings.database_url:
        options["database_url"] = d.settings.database_url
    return create_app(load_settings(d.data_dir, **options))


async def _cross_worker_wake(d: Deployment, worker: FastAPI) -> None:
    async with _running(d.app) as publisher, _running(worker) as waiter:
        listener_ready = _ctx(worker).publish_listener
        if listener_ready is not None:
            await asyncio.wait_for(listener_ready.listening.wait(), GUARD_SECONDS)
        etag = (await waiter.get(PATH, headers=_auth(d.tokens.isp))).headers["etag"]
        held = asyncio.create_task(
            waiter.get(
                PATH,
                params={"wait": MAX_WAIT_SECONDS},
                headers=_auth(d.tokens.isp, **{"If-None-Match": etag}),
            )
        )
        await _until(lambda: _ctx(worker).waiters.active == 1)
        await _publish_one(publisher, d, URL_B)
        r = await asyncio.wait_for(held, GUARD_SECONDS)
        assert r.status_code == 200
        assert r.headers["etag"] != etag
        assert r.headers[WAIT_HEADER] == str(MAX_WAIT_SECONDS)


def test_a_publish_in_one_process_wakes_a_waiter_in_another_sqlite(
    deployment: Deployment,
) -> None:
    worker = _second_worker(deployment)
    try:
        _run(lambda: _cross_worker_wake(deployment, worker))
    finally:
        _ctx(worker).db.dispose()


@pytest.mark.postgres
def test_a_publish_in_one_process_wakes_a_waiter_in_another_postgres(tmp_path: Path) -> None:
    engine = admin_engine(f"set {POSTGRES_ENV} to run the PostgreSQL long-poll test")
    engine.dispose()
    from support.postgres import postgres_admin_url

    with fresh_postgres_database(postgres_admin_url()) as url:
        d = make_deployment(tmp_path, database_url=url)
        worker = _second_worker(d)
        try:
            _run(lambda: _cross_worker_wake(d, worker))
        finally:
            _ctx(worker).db.dispose()
            close_deployment(d)


def test_a_client_that_disconnects_gives_up_its_place(deployment: Deployment) -> None:
    # Served for real (uvicorn on loopback): only a real connection can drop.
    import socket
    import threading
    import time

    import uvicorn
    from support.processes import free_port

    d = deployment
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(d.app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()

    def until(predicate: Callable[[], bool]) -> None:
        deadline = time.monotonic() + GUARD_SECONDS
        while not predicate():
            assert time.monotonic() < deadline, "condition not reached in time"
            time.sleep(0.02)

    try:
        until(lambda: server.started)
        etag = httpx.get(f"http://127.0.0.1:{port}{PATH}", headers=_auth(d.tokens.isp)).headers[
            "etag"
        ]
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall(
                (
                    f"GET {PATH}?wait={MAX_WAIT_SECONDS} HTTP/1.1\r\nHost: cf.test\r\n"
                    f"Authorization: Bearer {d.tokens.isp}\r\nIf-None-Match: {etag}\r\n\r\n"
                ).encode()
            )
            until(lambda: _ctx(d.app).waiters.active == 1)
        # The connection is closed: the place is free long before the 55 s.
        until(lambda: _ctx(d.app).waiters.active == 0)
    finally:
        _ctx(d.app).waiters.release_all()
        server.should_exit = True
        thread.join(timeout=30)
