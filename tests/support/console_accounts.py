"""Accounts for the console's browser tests: a person and their enrolment link."""

from __future__ import annotations

from collections.abc import Mapping, Set
from typing import Any


def create_person(console: Any, name: str, roles: Mapping[str, Set[str]]) -> str:
    """Create the account ``name`` with ``roles`` per list; its one-time enrolment URL."""
    from api.accounts import stub_create  # DEV: replaced by the accounts API

    token = stub_create(console.ctx, name, {k: set(v) for k, v in roles.items()})
    return f"{console.base}/console/enrol/{token}"
