"""Building blocks for tests that drive the real API in-process.

Reusable by every suite (``from support.api_testing import ...``):
:func:`make_deployment` initialises a data directory exactly as ``cleanfeed
init`` does, adds a second list and a token for every role, and returns an
app built by ``api.app.create_app``;
:class:`ApiClient` is a synchronous facade over ``httpx.AsyncClient`` with
``httpx.ASGITransport`` (no sockets, no threads of our own).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import func, select

from api.app import create_app
from api.lists_admin import create_list_with_keys
from api.settings import Settings, load_settings
from blocklist.store import tokens as store_tokens
from blocklist.store.audit import head as audit_head
from blocklist.store.db import Database
from blocklist.store.models import Base
from signer.datadir import InitResult, init_data_dir

#: The two lists of every deployment: ISP and auditor tokens see only MAIN.
MAIN = "main"
OTHER = "other"

#: Test URLs use reserved names only (docs/dev/helper-rules.md).
URL_A = "http://203.0.113.7/abuse/a.html"
URL_B = "http://example.org/b/c.html"


class ApiClient:
    """Synchronous calls into an ASGI app through ``httpx.ASGITransport``."""

    def __init__(self, app: FastAPI, base_url: str = "http://cleanfeed.test") -> None:
        """Wrap ``app``; close with :meth:`close`."""
        self._runner = asyncio.Runner()
        self._client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base_url)

    def request(
        self, method: str, url: str, *, token: str | None = None, **kwargs: Any
    ) -> httpx.Response:
        """Send one request; ``token`` goes in the Authorization header."""
        headers = dict(kwargs.pop("headers", None) or {})
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return self._runner.run(self._client.request(method, url, headers=headers, **kwargs))

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        """GET ``url``."""
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        """POST ``url``."""
        return self.request("POST", url, **kwargs)

    def close(self) -> None:
        """Close the client and its event loop."""
        self._runner.run(self._client.aclose())
        self._runner.close()


@dataclass
class Tokens:
    """A token per role and purpose (secrets, for Authorization headers)."""

    admin: str
    alice: str  # analyst, every list
    bob: str  # analyst, every list
    carol: str  # analyst, every list
    analyst_other: str  # analyst restricted to OTHER
    isp: str  # isp on MAIN
    isp_plain: str  # isp on MAIN with the plaintext entitlement
    isp_other: str  # isp on OTHER only
    auditor: str  # auditor on MAIN
    auditor_full: str  # auditor on MAIN with full bundles
    ids: dict[str, int] = field(default_factory=dict)

    def by_role(self) -> dict[str, str]:
        """One representative token per role."""
        return {
            "admin": self.admin,
            "analyst": self.alice,
            "isp": self.isp,
            "auditor": self.auditor,
        }


@dataclass
class Deployment:
    """An initialised data directory, its database, tokens and an app."""

    init: InitResult
    settings: Settings
    db: Database
    tokens: Tokens
    app: FastAPI
    other_root_vkey: str

    @property
    def data_dir(self) -> Path:
        """The data directory."""
        return self.init.data_dir


def _token_specs() -> list[tuple[str, str, str, list[str], dict[str, bool]]]:
    return [
        ("alice", "analyst", "alice", [], {}),
        ("bob", "analyst", "bob", [], {}),
        ("carol", "analyst", "carol", [], {}),
        ("analyst_other", "analyst", "dora", [OTHER], {}),
        ("isp", "isp", "isp-a", [MAIN], {}),
        ("isp_plain", "isp", "isp-plain", [MAIN], {"plaintext": True}),
        ("isp_other", "isp", "isp-other", [OTHER], {}),
        ("auditor", "auditor", "auditor", [MAIN], {}),
        ("auditor_full", "auditor", "auditor-full", [MAIN], {"full_audit": True}),
    ]


def make_deployment(root: Path, *, database_url: str | None = None, **settings: Any) -> Deployment:
    """Initialise ``root/data`` with lists MAIN and OTHER and a token per role.

    ``settings`` override the test defaults (no scheduler, no rate limits,
    plain-text logs, no checkpoint cache); ``database_url`` puts the
    deployment on that database (default: SQLite in the data directory).
    """
    data_dir = root / "data"
    result = init_data_dir(
        data_dir, list_name=MAIN, approvals_required=1, database_url=database_url
    )
    if database_url is not None:
        settings = {"database_url": database_url, **settings}
    options: dict[str, Any] = {
        "schedule": False,
        "rate_limit_per_second": 0,
        "analyst_rate_limit_per_second": 0,
        "auditor_rate_limit_per_second": 0,
        "admin_rate_limit_per_second": 0,
        "json_logs": False,
        "checkpoint_cache_ttl": 0,
        "publish_wait_timeout": 0,
    }
    options.update(settings)
    cfg = load_settings(data_dir, **options)
    db = Database(cfg.resolved_database_url)
    other = create_list_with_keys(
        db,
        cfg.keys_dir,
        name=OTHER,
        origin=None,
        approvals_required=2,
        home_country="GB",
        canary_url=None,
        public=False,
        actor="test",
    )
    secrets: dict[str, str] = {"admin": result.admin_token}
    ids: dict[str, int] = {}
    with db.transaction() as session:
        for attr, role, name, lists, flags in _token_specs():
            token, row = store_tokens.create_token(
                session, name=name, role=role, lists=lists, actor="test", **flags
            )
            secrets[attr] = token
            ids[attr] = row.id
    tokens = Tokens(**secrets, ids=ids)
    app = create_app(cfg)
    return Deployment(
        init=result,
        settings=cfg,
        db=db,
        tokens=tokens,
        app=app,
        other_root_vkey=other.root_vkey,
    )


def close_deployment(deployment: Deployment) -> None:
    """Dispose every engine the deployment opened."""
    deployment.app.state.cf.db.dispose()
    deployment.db.dispose()


@contextmanager
def deployed(root: Path, **settings: Any) -> Iterator[Deployment]:
    """:func:`make_deployment` for the block, its engines disposed afterwards."""
    deployment = make_deployment(root, **settings)
    try:
        yield deployment
    finally:
        close_deployment(deployment)


@contextmanager
def deployment_client(deployment: Deployment) -> Iterator[ApiClient]:
    """An :class:`ApiClient` on the deployment's app, closed afterwards."""
    client = ApiClient(deployment.app)
    try:
        yield client
    finally:
        client.close()


def row_counts(db: Database) -> dict[str, int]:
    """Rows per table, to prove a refused request changed nothing."""
    counts: dict[str, int] = {}
    with db.read() as session:
        for table in Base.metadata.sorted_tables:
            counts[table.name] = int(session.scalar(select(func.count()).select_from(table)) or 0)
    return counts


def db_state(db: Database) -> tuple[dict[str, int], list[tuple[int, bytes]]]:
    """Row counts plus the audit heads of every chain (lists and deployment)."""
    with db.read() as session:
        heads = [tuple(audit_head(session, list_id)) for list_id in (None, 1, 2)]
    return row_counts(db), [(int(s), bytes(h)) for s, h in heads]


def add_entry(
    client: ApiClient,
    token: str,
    url: str = URL_A,
    *,
    list_name: str = MAIN,
    scope: str = "page",
    **fields: Any,
) -> httpx.Response:
    """POST one entry."""
    body: dict[str, Any] = {"url": url, "scope": scope, "reason": "hotline report", **fields}
    return client.post(f"/v1/lists/{list_name}/entries", json=body, token=token)


def add_approved(
    client: ApiClient, tokens: Tokens, url: str = URL_A, list_name: str = MAIN
) -> dict[str, Any]:
    """Add an entry as alice and approve it as bob; return the approved entry."""
    added = add_entry(client, tokens.alice, url, list_name=list_name)
    assert added.status_code in (200, 201), added.text
    entry_id = added.json()["id"]
    approved = client.post(f"/v1/lists/{list_name}/entries/{entry_id}/approve", token=tokens.bob)
    assert approved.status_code == 200, approved.text
    out: dict[str, Any] = approved.json()
    return out


def decide_appeal(client: ApiClient, token: str, appeal: int, outcome: str) -> None:
    """Decide ``appeal`` on MAIN with ``outcome`` as ``token`` (asserts 200)."""
    r = client.post(
        f"/v1/lists/{MAIN}/appeals/{appeal}/decide",
        json={"outcome": outcome, "reason": "reviewed"},
        token=token,
    )
    assert r.status_code == 200, r.text


def publish(client: ApiClient, token: str, list_name: str = MAIN) -> Mapping[str, Any]:
    """POST …/publish and return the body (asserts 200)."""
    r = client.post(f"/v1/lists/{list_name}/publish", token=token)
    assert r.status_code == 200, r.text
    out: Mapping[str, Any] = r.json()
    return out
