"""Administrators' API for persons' accounts: ``/v1/admin/accounts…`` (issue 15 item 1).

Mirrors ``cleanfeed account``. Admin tokens only; each change is recorded
in the global audit chain with the token's name as actor and, when the
token belongs to a person, that person in ``details["person"]``. Confirming
a pending grant needs an admin *person* (a token attached to an admin
account) other than the requester: an unattached admin token is refused
with ``second_admin_required``.
"""

from __future__ import annotations

import builtins
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter
from fastapi import Path as Path_
from pydantic import Field, StringConstraints
from starlette.concurrency import run_in_threadpool

from api.accounts import enrol_url
from api.auth import AdminDep, ContextDep
from api.models.common import MAX_INT, Forbid, ListName, Out
from api.routes.common import problems
from blocklist.store import accounts as store_accounts
from blocklist.store.accounts import AccountView, RoleGrant

__all__ = [
    "AccountCreateIn",
    "AccountCreatedOut",
    "AccountListOut",
    "AccountOut",
    "AttachIn",
    "AttachOut",
    "ConfirmOut",
    "DisableOut",
    "GrantIn",
    "GrantsOut",
    "ResetOut",
    "RoleOut",
    "router",
]

router = APIRouter(prefix="/v1/admin/accounts", tags=["admin"])

AccountRole = Literal["admin", "analyst", "auditor"]
AccountName = Annotated[
    str,
    Path_(
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$",
        description="account name",
    ),
]
GrantIdPath = Annotated[int, Path_(ge=1, le=MAX_INT, description="pending grant id")]

#: Most lists named in one request (a deployment has a handful).
MAX_ACCOUNT_LISTS = 64


class GrantIn(Forbid):
    """A role on lists (none: every list)."""

    role: AccountRole
    lists: Annotated[list[ListName], Field(default_factory=list, max_length=MAX_ACCOUNT_LISTS)]


class AccountCreateIn(GrantIn):
    """An account to create with its first role."""

    name: Annotated[
        str,
        StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$"),
    ]
    enrol_hours: Annotated[int, Field(ge=1, le=store_accounts.MAX_ENROL_HOURS)] | None = None


class RoleOut(Out):
    """A role on a list (``*``: every list), with its grant's state."""

    role: str
    list: str
    status: str | None = None
    grant: int | None = None
    tokens_revoked: builtins.list[int] | None = None


class AccountCreatedOut(Out):
    """A new account and its one-time enrolment link (shown once)."""

    name: str
    role: str
    lists: list[str]
    enrol_url: str
    enrol_expires_at: datetime
    grants: list[RoleOut]


class AccountOut(Out):
    """An account (no secret, no hash)."""

    id: int
    name: str
    disabled: bool
    enrolled: bool
    enrol_expires_at: datetime | None
    roles: list[RoleOut]
    pending: list[RoleOut]
    created_at: datetime


class AccountListOut(Out):
    """Every account."""

    accounts: list[AccountOut]


class DisableOut(Out):
    """A disabled account and the tokens revoked with it."""

    name: str
    disabled: bool
    tokens_revoked: list[int]


class ResetOut(Out):
    """A new enrolment link (shown once)."""

    name: str
    enrol_url: str
    enrol_expires_at: datetime


class GrantsOut(Out):
    """What a grant or revocation did, per list."""

    name: str
    roles: list[RoleOut]


class ConfirmOut(Out):
    """A confirmed grant: the role is held now."""

    grant: int
    role: str
    list: str


class AttachIn(Forbid):
    """The token to attach to the account."""

    token_id: Annotated[int, Field(ge=1, le=MAX_INT)]


class AttachOut(Out):
    """A token that now belongs to a person."""

    token: int
    name: str
    role: str
    account: str


def _account_out(view: AccountView) -> AccountOut:
    return AccountOut(
        id=view.id,
        name=view.name,
        disabled=view.disabled,
        enrolled=view.enrolled,
        enrol_expires_at=view.enrol_expires_at,
        roles=[RoleOut(role=g.role, list=g.list_name) for g in view.roles],
        pending=[
            RoleOut(role=g.role, list=g.list_name, status="pending", grant=i)
            for i, g in view.pending
        ],
        created_at=view.created_at,
    )


def _grants(body: GrantIn) -> list[RoleGrant]:
    return store_accounts.grants_for(body.role, body.lists)


@router.post(
    "",
    response_model=AccountCreatedOut,
    status_code=201,
    responses=problems(403, 404, 409, 422),
    summary="Create a person's account; its enrolment link is in this response only",
)
async def create_account(ctx: ContextDep, p: AdminDep, body: AccountCreateIn) -> AccountCreatedOut:
    """Create an account with a role; analyst and admin wait for a second admin
    when two or more admins exist."""
    hours = body.enrol_hours or ctx.settings.enrolment_link_hours

    def work() -> AccountCreatedOut:
        with ctx.db.transaction() as session:
            token, row, results = store_accounts.create_account(
                session,
                name=body.name,
                grants=_grants(body),
                actor=p.name,
                person=p.account_id,
                enrol_hours=hours,
            )
            assert row.enrol_expires_at is not None
            return AccountCreatedOut(
                name=row.name,
                role=body.role,
                lists=sorted(set(body.lists)),
                enrol_url=enrol_url(ctx.settings, token),
                enrol_expires_at=row.enrol_expires_at,
                grants=[
                    RoleOut(
                        role=r.grant.role,
                        list=r.grant.list_name,
                        status=r.status,
                        grant=r.pending_id,
                    )
                    for r in results
                ],
            )

    return await run_in_threadpool(work)


@router.get("", response_model=AccountListOut, responses=problems(403), summary="Every account")
async def list_accounts(ctx: ContextDep, p: AdminDep) -> AccountListOut:
    """Accounts with their roles and pending grants."""

    def work() -> AccountListOut:
        with ctx.db.read() as session:
            return AccountListOut(
                accounts=[_account_out(v) for v in store_accounts.list_accounts(session)]
            )

    return await run_in_threadpool(work)


@router.post(
    "/grants/{grant_id}/confirm",
    response_model=ConfirmOut,
    responses=problems(403, 404, 409),
    summary="Confirm a pending grant as a second admin person",
)
async def confirm_grant(ctx: ContextDep, p: AdminDep, grant_id: GrantIdPath) -> ConfirmOut:
    """The role is held from now on."""

    def work() -> ConfirmOut:
        with ctx.db.transaction() as session:
            result = store_accounts.confirm_grant(
                session, grant_id, actor=p.name, person=p.account_id
            )
            return ConfirmOut(grant=grant_id, role=result.grant.role, list=result.grant.list_name)

    return await run_in_threadpool(work)


@router.post(
    "/{name}/disable",
    response_model=DisableOut,
    responses=problems(403, 404, 409),
    summary="Disable an account: no login, sessions ended, its tokens revoked",
)
async def disable_account(ctx: ContextDep, p: AdminDep, name: AccountName) -> DisableOut:
    """Disable the account."""

    def work() -> list[int]:
        with ctx.db.transaction() as session:
            return store_accounts.disable_account(session, name, actor=p.name, person=p.account_id)

    revoked = await run_in_threadpool(work)
    for token_id in revoked:
        ctx.tokens.evict_token(token_id)
    return DisableOut(name=name, disabled=True, tokens_revoked=revoked)


@router.post(
    "/{name}/reset",
    response_model=ResetOut,
    responses=problems(403, 404, 409),
    summary="Erase both factors; a new enrolment link is in this response only",
)
async def reset_account(ctx: ContextDep, p: AdminDep, name: AccountName) -> ResetOut:
    """Reset the account (lost phone, forgotten password)."""

    def work() -> ResetOut:
        with ctx.db.transaction() as session:
            token, row = store_accounts.reset_account(
                session,
                name,
                actor=p.name,
                person=p.account_id,
                enrol_hours=ctx.settings.enrolment_link_hours,
            )
            assert row.enrol_expires_at is not None
            return ResetOut(
                name=name,
                enrol_url=enrol_url(ctx.settings, token),
                enrol_expires_at=row.enrol_expires_at,
            )

    return await run_in_threadpool(work)


@router.post(
    "/{name}/grant",
    response_model=GrantsOut,
    responses=problems(403, 404, 409, 422),
    summary="Grant a role (pending a second admin when two or more admins exist)",
)
async def grant_role(ctx: ContextDep, p: AdminDep, name: AccountName, body: GrantIn) -> GrantsOut:
    """Grant the role on each list."""

    def work() -> GrantsOut:
        with ctx.db.transaction() as session:
            out = []
            for grant in _grants(body):
                r = store_accounts.grant_role(
                    session, name, grant, actor=p.name, person=p.account_id
                )
                out.append(
                    RoleOut(
                        role=grant.role, list=grant.list_name, status=r.status, grant=r.pending_id
                    )
                )
            return GrantsOut(name=name, roles=out)

    return await run_in_threadpool(work)


@router.post(
    "/{name}/revoke",
    response_model=GrantsOut,
    responses=problems(403, 404, 422),
    summary="Take a role (or its pending grant) away",
)
async def revoke_role(ctx: ContextDep, p: AdminDep, name: AccountName, body: GrantIn) -> GrantsOut:
    """Revoke the role on each list; the person's tokens of a role no longer held go too."""

    def work() -> GrantsOut:
        with ctx.db.transaction() as session:
            out = []
            for grant in _grants(body):
                tokens = store_accounts.revoke_role(
                    session, name, grant, actor=p.name, person=p.account_id
                )
                out.append(RoleOut(role=grant.role, list=grant.list_name, tokens_revoked=tokens))
            return GrantsOut(name=name, roles=out)

    result = await run_in_threadpool(work)
    for item in result.roles:
        for token_id in item.tokens_revoked or ():
            ctx.tokens.evict_token(token_id)
    return result


@router.post(
    "/{name}/attach-token",
    response_model=AttachOut,
    responses=problems(403, 404, 409),
    summary="Attach an existing token to this person (four-eyes then counts the person)",
)
async def attach_token(
    ctx: ContextDep, p: AdminDep, name: AccountName, body: AttachIn
) -> AttachOut:
    """Attach the token (migration path, docs/operations.md)."""

    def work() -> AttachOut:
        with ctx.db.transaction() as session:
            row = store_accounts.attach_token(
                session, body.token_id, name, actor=p.name, person=p.account_id
            )
            return AttachOut(token=row.id, name=row.name, role=row.role, account=name)

    out = await run_in_threadpool(work)
    # Cached principals of this token lack the person: drop them at once.
    ctx.tokens.evict_token(out.token)
    return out
