"""Persons' API tokens: attaching an existing token, minting one from a session.

Once a token carries a person (``tokens.account_id``), four-eyes counts the
person, whichever of their tokens acts (issue 15 items 4 and 5).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from blocklist.auditlog import Action
from blocklist.store import audit
from blocklist.store import tokens as store_tokens
from blocklist.store.accounts._persons import (
    ALL_LISTS,
    EVERY_LIST,
    get_account,
    get_account_by_name,
    person_holds,
    roles_of,
)
from blocklist.store.errors import InvalidState, NotFound, PermissionDenied
from blocklist.store.models import ACCOUNT_ROLES, ApprovalRow, EntryRow, ListRow, TokenRow

__all__ = [
    "attach_token",
    "mint_person_token",
]


def attach_token(
    session: Session,
    token_id: int,
    account_name: str,
    *,
    actor: str,
    person: int | None = None,
    now: datetime | None = None,
) -> TokenRow:
    """Attach an existing token to a person (migration path, issue 15 item 5).

    From then on four-eyes counts the person, not the token's name.

    Raises:
        NotFound: no such token or account.
        InvalidState: the token is revoked or already attached, the account
            is disabled.
        PermissionDenied: the person does not hold the token's role on the
            token's lists (an ISP token belongs to an organisation).
    """
    now = audit.begin_global(session, actor, now)
    token = store_tokens.get_token(session, token_id)
    row = get_account_by_name(session, account_name)
    if token.revoked_at is not None:
        raise InvalidState(f"token {token_id} is revoked")
    if token.account_id is not None:
        raise InvalidState(f"token {token_id} is attached to a person already")
    if row.disabled:
        raise InvalidState(f"account {account_name!r} is disabled")
    if token.role not in ACCOUNT_ROLES:
        raise PermissionDenied(f"{token.role} tokens belong to organisations, not persons")
    scopes = [lst.id for lst in token.lists] or [EVERY_LIST]
    if token.role == "admin":
        scopes = [EVERY_LIST]
    for list_id in scopes:
        if not person_holds(session, row.id, token.role, list_id):
            where = "every list" if list_id == EVERY_LIST else "the token's lists"
            raise PermissionDenied(
                f"{account_name!r} does not hold the {token.role} role on {where}: grant it first"
            )
    token.account_id = row.id
    # Rounds the token opened or approved before it was attached are the
    # person's too: otherwise the person could approve, through another of
    # their tokens, an entry they added with this one (issue 15 item 4).
    # Attributing more than needed only ever refuses more approvals.
    lists_of_token = [lst.id for lst in token.lists] if token.role == "analyst" else []
    entry_filter = [EntryRow.submitted_by == token.name, EntryRow.submitted_person.is_(None)]
    if lists_of_token:
        entry_filter.append(EntryRow.list_id.in_(lists_of_token))
    opened = session.execute(
        update(EntryRow)
        .where(*entry_filter)
        .values(submitted_person=row.id)
        .execution_options(synchronize_session=False)
    )
    approval_filter = [ApprovalRow.actor == token.name, ApprovalRow.person.is_(None)]
    if lists_of_token:
        approval_filter.append(
            ApprovalRow.entry_id.in_(
                select(EntryRow.id).where(EntryRow.list_id.in_(lists_of_token))
            )
        )
    approved = session.execute(
        update(ApprovalRow)
        .where(*approval_filter)
        .values(person=row.id)
        .execution_options(synchronize_session=False)
    )
    session.flush()
    details = {
        "token": token.id,
        "name": token.name,
        "role": token.role,
        "prefix": token.prefix,
        "account": row.id,
        "entries_attributed": int(getattr(opened, "rowcount", 0) or 0),
        "approvals_attributed": int(getattr(approved, "rowcount", 0) or 0),
        **audit.person_details(person),
    }
    audit.append_global(session, actor, Action.TOKEN_ATTACH, details, now)
    return token


def mint_person_token(
    session: Session,
    account_id: int,
    *,
    role: str,
    list_name: str | None,
    name: str,
    expires_at: datetime | None = None,
    now: datetime | None = None,
) -> tuple[str, TokenRow]:
    """Issue an API token of a person, from that person's TOTP-authenticated session.

    The token carries the person (four-eyes counts the person, whichever
    of their tokens acts); its actor in the audit chain is the person's
    account name.

    Raises:
        NotFound: no such account or list.
        PermissionDenied: the person (or the account is disabled) does not
            hold ``role`` on ``list_name``.
        InvalidField, TokenNameTaken: as :func:`blocklist.store.tokens.create_token`.
    """
    now = audit.resolve_now(now)
    row = get_account(session, account_id)
    if role not in ACCOUNT_ROLES:
        raise PermissionDenied(f"{role} tokens belong to organisations, not persons")
    list_id = EVERY_LIST
    if list_name is not None and list_name != ALL_LISTS:
        found = session.scalar(select(ListRow.id).where(ListRow.name == list_name))
        if found is None:
            raise NotFound(f"no list named {list_name!r}")
        list_id = found
    if role == "admin":
        list_id = EVERY_LIST
    if not person_holds(session, row.id, role, list_id):
        raise PermissionDenied(f"{row.name!r} does not hold the {role} role there")
    lists = [] if list_id == EVERY_LIST else [list_name or ""]
    if role == "auditor" and not lists:
        held = roles_of(session, row.id)
        lists = sorted(name for name, r in held.items() if "auditor" in r and name != ALL_LISTS)
        if not lists:
            lists = list(session.scalars(select(ListRow.name).order_by(ListRow.name)).all())
    return store_tokens.create_token(
        session,
        name=name,
        role=role,
        lists=lists,
        expires_at=expires_at,
        actor=row.name,
        account_id=row.id,
        now=now,
    )
