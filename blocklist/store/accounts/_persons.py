"""Persons and their roles: lookups, the administrators' view, role scopes.

What the other parts of :mod:`blocklist.store.accounts` build on: finding
an account, which roles a person holds where, and the checks every change
to an account shares (its name, the lists a grant names).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from blocklist.store.db import get_row, one_row
from blocklist.store.errors import InvalidField, InvalidState, NotFound
from blocklist.store.models import (
    ACCOUNT_ROLES,
    NAME_LENGTH,
    AccountRoleRow,
    AccountRow,
    ListRow,
    PendingGrantRow,
)

__all__ = [
    "ALL_LISTS",
    "EVERY_LIST",
    "AccountView",
    "RoleGrant",
    "account_view",
    "check_name",
    "enabled_account",
    "enabled_admin_count",
    "get_account",
    "get_account_by_name",
    "grants_for",
    "list_accounts",
    "list_ids",
    "list_name",
    "mapping_of",
    "person_holds",
    "roles_of",
]

#: ``account_roles.list_id`` of a role on every list (no list has id 0).
EVERY_LIST: Final = 0

#: How a role on every list is written in records, JSON and the CLI.
ALL_LISTS: Final = "*"

_NAME_RE = re.compile(rf"\A[A-Za-z0-9][A-Za-z0-9._-]{{0,{NAME_LENGTH - 1}}}\Z")


@dataclass(frozen=True, order=True)
class RoleGrant:
    """A role on a list (``list_name`` :data:`ALL_LISTS`: every list)."""

    role: str
    list_name: str


@dataclass(frozen=True)
class AccountView:
    """An account as administrators see it (no secret, no hash)."""

    id: int
    name: str
    disabled: bool
    enrolled: bool
    enrol_expires_at: datetime | None
    roles: tuple[RoleGrant, ...]
    pending: tuple[tuple[int, RoleGrant], ...]
    created_at: datetime


def check_name(name: object) -> str:
    """Validate a new account's name.

    Raises:
        InvalidField: not 1..NAME_LENGTH ASCII letters, digits, '.', '_' or '-'.
    """
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise InvalidField(
            f"account name must be 1..{NAME_LENGTH} ASCII letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return name


def list_ids(session: Session, grants: Sequence[RoleGrant]) -> dict[str, int]:
    """Map each grant's list name to its id (:data:`ALL_LISTS` to 0).

    Raises:
        InvalidField: an unknown role, an admin role on one list.
        NotFound: a named list does not exist.
    """
    names = sorted({g.list_name for g in grants if g.list_name != ALL_LISTS})
    found = dict(
        session.execute(select(ListRow.name, ListRow.id).where(ListRow.name.in_(names))).all()
    )
    for g in grants:
        if g.role not in ACCOUNT_ROLES:
            raise InvalidField(f"an account's role is one of {', '.join(ACCOUNT_ROLES)}")
        if g.role == "admin" and g.list_name != ALL_LISTS:
            raise InvalidField("the admin role is held on every list (no --list)")
        if g.list_name != ALL_LISTS and g.list_name not in found:
            raise NotFound(f"no list named {g.list_name!r}")
    mapping: dict[str, int] = {name: int(list_id) for name, list_id in found.items()}
    mapping[ALL_LISTS] = EVERY_LIST
    return mapping


def list_name(session: Session, list_id: int) -> str:
    """The name of a role's list (:data:`ALL_LISTS` for every list).

    Raises:
        NotFound: no list with this id.
    """
    if list_id == EVERY_LIST:
        return ALL_LISTS
    name = session.scalar(select(ListRow.name).where(ListRow.id == list_id))
    if name is None:
        raise NotFound(f"no list with id {list_id}")
    return name


def grants_for(role: str, lists: Sequence[str]) -> list[RoleGrant]:
    """The grants of ``role`` on ``lists`` (none given: every list)."""
    if not lists:
        return [RoleGrant(role, ALL_LISTS)]
    return [RoleGrant(role, name) for name in sorted(set(lists))]


def mapping_of(grants: Sequence[RoleGrant]) -> Mapping[str, list[str]]:
    """Role -> list names, for JSON output."""
    out: dict[str, list[str]] = {}
    for g in grants:
        out.setdefault(g.role, []).append(g.list_name)
    return out


def get_account(session: Session, account_id: int) -> AccountRow:
    """An account by id.

    Raises:
        NotFound: no such account.
    """
    return get_row(session, AccountRow, account_id, f"no account {account_id}")


def get_account_by_name(session: Session, name: str, *, lock: bool = False) -> AccountRow:
    """An account by name; ``lock`` holds its row until the transaction ends.

    Login locks it, so two logins racing with one TOTP code cannot both
    pass the "code accepted once" check (RFC 6238 section 5.2).

    Raises:
        NotFound: no such account.
    """
    query = select(AccountRow).where(AccountRow.name == name)
    return one_row(session, query, f"no account named {name[:NAME_LENGTH]!r}", lock=lock)


def enabled_account(session: Session, name: str) -> AccountRow:
    """An account by name that is not disabled.

    Raises:
        NotFound: no such account.
        InvalidState: the account is disabled.
    """
    row = get_account_by_name(session, name)
    if row.disabled:
        raise InvalidState(f"account {name!r} is disabled")
    return row


def enabled_admin_count(session: Session) -> int:
    """How many enabled accounts hold the admin role."""
    return int(
        session.scalar(
            select(func.count(func.distinct(AccountRoleRow.account_id)))
            .join(AccountRow, AccountRow.id == AccountRoleRow.account_id)
            .where(AccountRoleRow.role == "admin", AccountRow.disabled.is_(False))
        )
        or 0
    )


def roles_of(session: Session, account_id: int) -> dict[str, frozenset[str]]:
    """List name (:data:`ALL_LISTS` for every list) -> roles the person holds there."""
    rows = session.execute(
        select(AccountRoleRow.list_id, AccountRoleRow.role).where(
            AccountRoleRow.account_id == account_id
        )
    ).all()
    names = dict(
        session.execute(
            select(ListRow.id, ListRow.name).where(
                ListRow.id.in_([r.list_id for r in rows if r.list_id != EVERY_LIST])
            )
        ).all()
    )
    out: dict[str, set[str]] = {}
    for list_id, role in rows:
        key = ALL_LISTS if list_id == EVERY_LIST else names[list_id]
        out.setdefault(key, set()).add(role)
    return {k: frozenset(v) for k, v in out.items()}


def person_holds(session: Session, account_id: int, role: str, list_id: int) -> bool:
    """Whether an enabled person holds ``role`` on list ``list_id`` (or on every list)."""
    row = session.get(AccountRow, account_id)
    if row is None or row.disabled:
        return False
    held = session.scalar(
        select(AccountRoleRow.list_id)
        .where(
            AccountRoleRow.account_id == account_id,
            AccountRoleRow.role == role,
            AccountRoleRow.list_id.in_(sorted({list_id, EVERY_LIST})),
        )
        .limit(1)
    )
    return held is not None


def account_view(session: Session, row: AccountRow) -> AccountView:
    """The administrators' view of an account."""
    roles = roles_of(session, row.id)
    pending = session.scalars(
        select(PendingGrantRow)
        .where(PendingGrantRow.account_id == row.id)
        .order_by(PendingGrantRow.id)
    ).all()
    return AccountView(
        id=row.id,
        name=row.name,
        disabled=row.disabled,
        enrolled=row.password_hash is not None,
        enrol_expires_at=row.enrol_expires_at,
        roles=tuple(sorted(RoleGrant(role, name) for name, held in roles.items() for role in held)),
        pending=tuple((p.id, RoleGrant(p.role, list_name(session, p.list_id))) for p in pending),
        created_at=row.created_at,
    )


def list_accounts(session: Session) -> list[AccountView]:
    """Every account (disabled included), by id."""
    rows = session.scalars(select(AccountRow).order_by(AccountRow.id)).all()
    return [account_view(session, row) for row in rows]
