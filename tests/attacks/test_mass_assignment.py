"""Mass assignment: fields a caller must never set, in any request body.

Every request model forbids unknown fields (api/models/common.py ``Forbid``): a
body naming ``version``, ``created_by``, ``status``, ``id`` or anything
unknown is refused with 422 ``validation_error`` and nothing is stored,
on every endpoint that takes a body, including the ones whose body is
optional or empty. Adding an entry with these fields is also tested in
``tests/api/test_analyst.py::test_mass_assignment_refused``; the CSV upload's
unknown columns in ``tests/api/test_bulk_publish.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from support.api_testing import MAIN, db_state
from support.attack_helpers import World

#: What an attacker would like to set.
SMUGGLED: dict[str, Any] = {
    "version": 99,
    "created_by": "mallory",
    "status": "active",
    "id": 1,
    "approved_by": ["bob", "carol"],
    "role": "admin",
    "revoked_at": None,
    "submitted_by": "bob",
    "added_version": 1,
}

Call = tuple[str, str, str, Callable[[dict[str, Any]], dict[str, Any]]]


def _calls(w: World, entry_id: int, expired_id: int) -> dict[str, Call]:
    """endpoint -> (token attribute, method, path, body builder from extra fields)."""
    entry = {"url": w.url("new"), "scope": "page", "reason": "r"}
    lists = f"/v1/lists/{MAIN}"
    return {
        "add": ("alice", "POST", f"{lists}/entries", lambda x: {**entry, **x}),
        "bulk": ("alice", "POST", f"{lists}/entries/bulk", lambda x: [{**entry, **x}]),
        "preview": (
            "alice",
            "POST",
            f"{lists}/entries/preview",
            lambda x: {"url": entry["url"], "scope": "page", **x},
        ),
        "search": ("alice", "POST", f"{lists}/entries/search", lambda x: {**x}),
        "approve": ("carol", "POST", f"{lists}/entries/{entry_id}/approve", lambda x: {**x}),
        "approve many": (
            "carol",
            "POST",
            f"{lists}/entries/approve",
            lambda x: {"ids": [entry_id], **x},
        ),
        "expire": ("alice", "POST", f"{lists}/entries/{entry_id}/expire", lambda x: {**x}),
        "reinstate": (
            "alice",
            "POST",
            f"{lists}/entries/{expired_id}/reinstate",
            lambda x: {"reason": "back", **x},
        ),
        "publish": ("alice", "POST", f"{lists}/publish", lambda x: {**x}),
        "token create": (
            "admin",
            "POST",
            "/v1/tokens",
            lambda x: {"name": "new-isp", "role": "isp", "lists": [MAIN], **x},
        ),
        "token revoke": (
            "admin",
            "POST",
            f"/v1/tokens/{w.tokens.ids['carol']}/revoke",
            lambda x: {**x},
        ),
        "list create": ("admin", "POST", "/v1/lists", lambda x: {"name": "newlist", **x}),
    }


@pytest.fixture
def env(world: World) -> tuple[World, dict[str, Call]]:
    w = world
    pending = w.call(
        "POST",
        f"/v1/lists/{MAIN}/entries",
        w.tokens.alice,
        json={"url": w.url("pending"), "scope": "page", "reason": "r"},
    ).json()["id"]
    expired = w.add(w.url("expired"))
    w.expire(w.url("expired"))
    return w, _calls(w, int(pending), expired)


ENDPOINTS = [
    "add",
    "bulk",
    "preview",
    "search",
    "approve",
    "approve many",
    "expire",
    "reinstate",
    "publish",
    "token create",
    "token revoke",
    "list create",
]


#: Fields an endpoint legitimately takes (a search filters by status; a new
#: token has a role): not smuggled there.
LEGITIMATE: dict[str, set[str]] = {"search": {"status"}, "token create": {"role"}}


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_smuggled_field_is_refused_and_nothing_is_stored(
    env: tuple[World, dict[str, Call]], endpoint: str
) -> None:
    w, calls = env
    attr, method, path, build = calls[endpoint]
    accepted: list[tuple[str, int]] = []
    changed: list[str] = []
    for field, value in SMUGGLED.items():
        if field in LEGITIMATE.get(endpoint, set()):
            continue
        before = db_state(w.d.db)
        r = w.call(method, path, getattr(w.tokens, attr), json=build({field: value}))
        if r.status_code != 422 or r.json().get("code") != "validation_error":
            accepted.append((field, r.status_code))
        if db_state(w.d.db) != before:
            changed.append(field)
    assert not accepted, f"{endpoint}: smuggled fields not refused with 422: {accepted}"
    assert not changed, f"{endpoint}: the database changed for {changed}"


@pytest.mark.parametrize("column", ["status", "created_by", "version", "id", "approved_by"])
def test_smuggled_csv_column_is_refused_and_nothing_is_stored(world: World, column: str) -> None:
    w = world
    before = db_state(w.d.db)
    csv = f"url,scope,reason,{column}\n{w.url('csv')},page,r,x\n".encode()
    r = w.call(
        "POST",
        f"/v1/lists/{MAIN}/entries/bulk.csv",
        w.tokens.alice,
        content=csv,
        headers={"Content-Type": "text/csv"},
    )
    assert r.status_code == 422, r.text
    assert db_state(w.d.db) == before


def test_valid_bodies_are_accepted_so_the_refusals_are_about_the_fields(
    env: tuple[World, dict[str, Call]],
) -> None:
    # Control: the same calls without the smuggled field succeed.
    w, calls = env
    for endpoint in ENDPOINTS:
        attr, method, path, build = calls[endpoint]
        r = w.call(method, path, getattr(w.tokens, attr), json=build({}))
        assert r.status_code in (200, 201), (endpoint, r.status_code, r.text[:200])
