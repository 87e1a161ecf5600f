"""The real service in-process for auditor tests (no sockets).

:func:`support.api_testing.make_deployment` initialises a data directory as
``cleanfeed init`` does (list ``main`` with one required approval, tokens
per role); :class:`support.asgi_bridge.ASGIBridge` lets the auditor's
synchronous ``httpx.Client`` talk to the app in-process.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from support.api_testing import MAIN, ApiClient, Deployment, close_deployment, make_deployment
from support.asgi_bridge import ASGIBridge

BASE = "https://cleanfeed.test"


@dataclass
class Service:
    """A deployment, an API client for analysts, and an httpx client for the auditor."""

    deployment: Deployment
    api: ApiClient
    bridge: ASGIBridge
    http: httpx.Client

    @property
    def root_vkey(self) -> str:
        return str(self.deployment.init.root_vkey)

    def post(self, path: str, token: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        r = self.api.post(f"/v1/lists/{MAIN}{path}", token=token, json=body or {})
        assert r.status_code in (200, 201), r.text
        out: dict[str, Any] = r.json()
        return out

    def add(self, url: str, *, approve: bool = True) -> int:
        tokens = self.deployment.tokens
        entry = self.post("/entries", tokens.alice, {"url": url, "scope": "page", "reason": "t"})
        if approve:
            self.post(f"/entries/{entry['id']}/approve", tokens.bob)
        return int(entry["id"])

    def expire(self, entry_id: int) -> None:
        self.post(f"/entries/{entry_id}/expire", self.deployment.tokens.alice, {"reason": "gone"})

    def publish(self) -> int:
        return int(self.post("/publish", self.deployment.tokens.alice)["version"])


@contextmanager
def service(tmp_path: Path) -> Iterator[Service]:
    """A running service with a short history: two versions, one expiry."""
    deployment = make_deployment(tmp_path)
    api = ApiClient(deployment.app)
    bridge = ASGIBridge(deployment.app)
    http = httpx.Client(transport=bridge, base_url=BASE)
    s = Service(deployment, api, bridge, http)
    try:
        first = s.add("http://example.org/abuse/a.html")
        s.add("http://203.0.113.7/abuse/b.html")
        s.publish()
        s.expire(first)
        s.add("http://example.com/abuse/c.html")
        s.publish()
        yield s
    finally:
        http.close()
        api.close()
        close_deployment(deployment)
