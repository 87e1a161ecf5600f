"""Accounts for the console's browser tests, made through the admin API (the curl path)."""

from __future__ import annotations

from typing import Any

import httpx


def create_person(console: Any, name: str, role: str, lists: list[str]) -> str:
    """Create the account ``name`` with ``role`` on ``lists``; its one-time enrolment URL.

    ``POST /v1/admin/accounts`` with the deployment's first admin token, as
    an administrator does with curl or ``cleanfeed account create``.
    """
    r = httpx.post(
        f"{console.base}/v1/admin/accounts",
        json={"name": name, "role": role, "lists": lists},
        headers={"Authorization": f"Bearer {console.admin_token}"},
        timeout=30,
    )
    assert r.status_code == 201, r.text
    url: str = r.json()["enrol_url"]
    assert url.startswith(f"{console.base}/console/enrol/"), url
    return url
