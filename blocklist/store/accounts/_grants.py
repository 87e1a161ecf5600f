"""Role grants: at once, or pending until a second admin person confirms.

With two or more enabled admin accounts, granting a role of
:data:`CONFIRMED_ROLES` is only a *pending* grant until a second admin
person confirms it (:func:`confirm_grant`): one compromised admin cannot
mint an analyst to approve their own entries (issue 15 item 1). Revoking a
role also revokes the person's tokens of that role once they hold it
nowhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Final

from sqlalchemy import select
from sqlalchemy.orm import Session

from blocklist.auditlog import Action
from blocklist.store import audit
from blocklist.store import tokens as store_tokens
from blocklist.store.accounts._persons import (
    EVERY_LIST,
    RoleGrant,
    enabled_account,
    enabled_admin_count,
    get_account,
    get_account_by_name,
    list_ids,
    list_name,
    person_holds,
)
from blocklist.store.db import get_row
from blocklist.store.errors import InvalidState, NotFound, SecondAdminRequired
from blocklist.store.models import AccountRoleRow, AccountRow, PendingGrantRow, TokenRow

__all__ = [
    "CONFIRMED_ROLES",
    "GrantResult",
    "apply_grant",
    "confirm_grant",
    "grant_role",
    "revoke_role",
    "revoke_tokens",
]

#: Roles whose grant needs a second admin once two admins exist (issue 15
#: item 1): the roles that count in four-eyes or can mint those that do.
CONFIRMED_ROLES: Final = ("analyst", "admin")


@dataclass(frozen=True)
class GrantResult:
    """What a grant did: ``granted`` at once, or ``pending`` a second admin."""

    grant: RoleGrant
    status: str
    pending_id: int | None = None


def _pending(session: Session, account_id: int, list_id: int, role: str) -> PendingGrantRow | None:
    return session.scalar(
        select(PendingGrantRow).where(
            PendingGrantRow.account_id == account_id,
            PendingGrantRow.list_id == list_id,
            PendingGrantRow.role == role,
        )
    )


def _hold(
    session: Session, account_id: int, list_id: int, role: str, actor: str, now: datetime
) -> None:
    session.add(
        AccountRoleRow(
            account_id=account_id, list_id=list_id, role=role, granted_at=now, granted_by=actor
        )
    )
    session.flush()


def apply_grant(
    session: Session,
    row: AccountRow,
    grant: RoleGrant,
    *,
    actor: str,
    person: int | None,
    now: datetime,
) -> GrantResult:
    """Grant a role to an enabled account, in a transaction holding the chain's lock.

    Raises:
        InvalidField: a bad role, admin on one list.
        NotFound: the list does not exist.
    """
    list_id = list_ids(session, [grant])[grant.list_name]
    held = session.get(AccountRoleRow, (row.id, list_id, grant.role))
    if held is not None:
        return GrantResult(grant, "held")
    pending = _pending(session, row.id, list_id, grant.role)
    if pending is not None:
        return GrantResult(grant, "pending", pending.id)
    details: dict[str, object] = {
        "account": row.id,
        "name": row.name,
        "role": grant.role,
        "list": grant.list_name,
        **audit.person_details(person),
    }
    if grant.role in CONFIRMED_ROLES and enabled_admin_count(session) >= 2:
        pending = PendingGrantRow(
            account_id=row.id,
            list_id=list_id,
            role=grant.role,
            requested_by=actor,
            requested_by_person=person,
            requested_at=now,
        )
        session.add(pending)
        session.flush()
        details.update(status="pending", grant=pending.id)
        audit.append_global(session, actor, Action.ACCOUNT_GRANT, details, now)
        return GrantResult(grant, "pending", pending.id)
    _hold(session, row.id, list_id, grant.role, actor, now)
    details["status"] = "granted"
    audit.append_global(session, actor, Action.ACCOUNT_GRANT, details, now)
    return GrantResult(grant, "granted")


def grant_role(
    session: Session,
    name: str,
    grant: RoleGrant,
    *,
    actor: str,
    person: int | None = None,
    now: datetime | None = None,
) -> GrantResult:
    """Grant a role; ``pending`` when two or more enabled admins exist (analyst, admin).

    Raises:
        NotFound: no such account or list.
        InvalidField: a bad role, admin on one list, a bad actor.
        InvalidState: the account is disabled.
    """
    now = audit.begin_global(session, actor, now)
    row = enabled_account(session, name)
    return apply_grant(session, row, grant, actor=actor, person=person, now=now)


def confirm_grant(
    session: Session,
    grantid: int,
    *,
    actor: str,
    person: int | None,
    now: datetime | None = None,
) -> GrantResult:
    """A second admin person confirms a pending grant; the role is then held.

    Raises:
        NotFound: no such pending grant.
        SecondAdminRequired: ``person`` is None, not an enabled admin, the
            requester, or the account the grant is for.
        InvalidState: the account was disabled meanwhile.
    """
    now = audit.begin_global(session, actor, now)
    pending = get_row(session, PendingGrantRow, grantid, f"no pending grant {grantid}")
    if person is None or not person_holds(session, person, "admin", EVERY_LIST):
        raise SecondAdminRequired(
            "a pending grant is confirmed by an admin person (an admin account's session or "
            "token), not by the command line or an unattached token"
        )
    if person == pending.requested_by_person:
        raise SecondAdminRequired("the admin who asked for a grant cannot confirm it")
    if person == pending.account_id:
        raise SecondAdminRequired("an admin cannot confirm a grant to themself")
    row = get_account(session, pending.account_id)
    if row.disabled:
        raise InvalidState(f"account {row.name!r} is disabled")
    on_list = list_name(session, pending.list_id)
    session.delete(pending)
    _hold(session, row.id, pending.list_id, pending.role, actor, now)
    details = {
        "account": row.id,
        "name": row.name,
        "role": pending.role,
        "list": on_list,
        "grant": grantid,
        "requested_by": pending.requested_by,
        "person": person,
    }
    audit.append_global(session, actor, Action.ACCOUNT_GRANT_CONFIRM, details, now)
    return GrantResult(RoleGrant(pending.role, on_list), "granted")


def revoke_tokens(
    session: Session, account_id: int, actor: str, now: datetime, role: str | None = None
) -> list[int]:
    """Revoke the person's live tokens (of ``role``, or all); return their ids."""
    query = select(TokenRow.id).where(
        TokenRow.account_id == account_id, TokenRow.revoked_at.is_(None)
    )
    if role is not None:
        query = query.where(TokenRow.role == role)
    ids = list(session.scalars(query.order_by(TokenRow.id)).all())
    for token_id in ids:
        store_tokens.revoke_token(session, token_id, actor=actor, now=now)
    return ids


def revoke_role(
    session: Session,
    name: str,
    grant: RoleGrant,
    *,
    actor: str,
    person: int | None = None,
    now: datetime | None = None,
) -> list[int]:
    """Take a role (or a pending grant of it) away; return the token ids revoked.

    The person's API tokens of that role are revoked with it when the
    person no longer holds the role on any list (a token of a role the
    person lost must not keep working).

    Raises:
        NotFound: no such account or list, or the role is neither held nor
            pending.
        InvalidField: a bad role or actor.
    """
    now = audit.begin_global(session, actor, now)
    row = get_account_by_name(session, name)
    list_id = list_ids(session, [grant])[grant.list_name]
    held = session.get(AccountRoleRow, (row.id, list_id, grant.role))
    pending = _pending(session, row.id, list_id, grant.role)
    if held is None and pending is None:
        raise NotFound(f"{name!r} holds no {grant.role} role on {grant.list_name!r}")
    if held is not None:
        session.delete(held)
    if pending is not None:
        session.delete(pending)
    session.flush()
    details = {
        "account": row.id,
        "name": row.name,
        "role": grant.role,
        "list": grant.list_name,
        "was": "granted" if held is not None else "pending",
        **audit.person_details(person),
    }
    audit.append_global(session, actor, Action.ACCOUNT_REVOKE_ROLE, details, now)
    still = session.scalar(
        select(AccountRoleRow.list_id)
        .where(AccountRoleRow.account_id == row.id, AccountRoleRow.role == grant.role)
        .limit(1)
    )
    if still is None:
        return revoke_tokens(session, row.id, actor, now, grant.role)
    return []
