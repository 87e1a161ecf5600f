"""API bearer tokens: issue, look up, revoke, record use.

A token is ``cf_<role>_<secret>`` where the secret is 32 random bytes in
unpadded base64url (43 characters), e.g. ``cf_isp_3q2-...``. The role
prefix makes leaked tokens easy to grep for and to recognise in secret
scanners; it grants nothing (the role comes from the database).

Only ``SHA-256(token)`` is stored, in a unique index, and a presented token
is found by hashing it and looking the hash up: the secret is never stored
and never compared as a string, so neither a database leak nor response
timing reveals a usable token. A 256-bit random secret needs no slow hash:
there is nothing to brute-force. ``prefix`` keeps the role prefix and the
first four secret characters so an administrator can tell tokens apart.

Token management is recorded in the deployment audit chain (chain 0, the
"global" chain): ``token.create``, ``token.revoke`` (and ``token.rename``,
written by migration 0004 for duplicate names). At each publish the
publisher records that chain's head in the list's own chain
(:func:`blocklist.store.audit.record_global_head`), so the statements
commit to who minted which identity (issue 12, item 13).

Names are unique per role and list among tokens not revoked
(:class:`~blocklist.store.models.TokenNameRow`): an actor name in the audit
chains, or an ISP in the uptake view, means one token. A token for every
list (admin, or an analyst without lists) claims the name on all lists.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, case, delete, literal, or_, select, update
from sqlalchemy.orm import Session

from blocklist.auditlog import Action, Actor
from blocklist.encoding import format_time
from blocklist.store import audit
from blocklist.store.db import get_row
from blocklist.store.errors import (
    AnalystTokenNeedsPerson,
    InvalidField,
    InvalidState,
    NotFound,
    TokenNameTaken,
)
from blocklist.store.models import (
    ROLES,
    TOKEN_NAME_LENGTH,
    AccountRoleRow,
    AccountRow,
    ListRow,
    TokenNameRow,
    TokenRow,
    UTCDateTime,
)

__all__ = [
    "EVERY_LIST",
    "LAST_USE_BATCH",
    "LIST_ROLES",
    "MAX_TOKEN_CHARS",
    "PREFIX_SECRET_CHARS",
    "TOKEN_SECRET_BYTES",
    "Principal",
    "claim_scopes",
    "create_token",
    "get_token",
    "list_tokens",
    "live_token_ids",
    "lookup_token",
    "record_last_use",
    "revoke_token",
    "role_prefix",
    "token_hash",
]

#: Random bytes per token: 256 bits, beyond any guessing.
TOKEN_SECRET_BYTES = 32

#: Longest presented token even looked at (``cf_analyst_`` + 43 characters is
#: 54): a bearer header of megabytes is refused before hashing.
MAX_TOKEN_CHARS = 64

#: Secret characters kept in the stored ``prefix`` to tell tokens apart
#: (24 of 256 bits: useless to an attacker).
PREFIX_SECRET_CHARS = 4

#: Tokens updated per ``last_used_at`` statement (bounds the CASE size).
LAST_USE_BATCH = 500

_TOKEN_RE = re.compile(r"\Acf_(admin|analyst|isp|auditor)_[A-Za-z0-9_-]{43}\Z")
_NAME_RE = re.compile(rf"\A[^\x00-\x1f\x7f]{{1,{TOKEN_NAME_LENGTH}}}\Z")

#: Roles that read lists and must name at least one.
LIST_ROLES = ("isp", "auditor")

#: ``token_names.list_id`` of a token valid for every list (no list has id 0).
EVERY_LIST = 0


def claim_scopes(role: str, list_ids: Sequence[int]) -> list[int]:
    """The ``token_names`` scopes a token claims: its lists, or :data:`EVERY_LIST`.

    Admin tokens act on every list whatever lists they name; an analyst
    token without lists does too.
    """
    if role == "admin" or not list_ids:
        return [EVERY_LIST]
    return sorted(set(list_ids))


def _check_name_free(session: Session, name: str, role: str, scopes: Sequence[int]) -> None:
    """Refuse a name a token not revoked holds for this role on an overlapping scope.

    Called under the deployment chain's lock, so two creations cannot both
    pass; the ``token_names`` primary key is the last line of defence.

    Raises:
        TokenNameTaken: the name is taken for this role on one of ``scopes``.
    """
    wanted = set(scopes)
    query = select(TokenNameRow.list_id).where(TokenNameRow.role == role, TokenNameRow.name == name)
    if EVERY_LIST not in wanted:
        query = query.where(TokenNameRow.list_id.in_(sorted(wanted | {EVERY_LIST})))
    clash = session.scalar(query.limit(1))
    if clash is not None:
        where = "every list" if clash == EVERY_LIST or EVERY_LIST in wanted else "one of its lists"
        raise TokenNameTaken(
            f"a {role} token named {name!r} exists already for {where}: "
            "choose another name, or revoke that token first"
        )


@dataclass(frozen=True)
class Principal:
    """Who a valid token belongs to and what it may do."""

    token_id: int
    name: str
    role: str
    lists: frozenset[str]
    list_ids: frozenset[int]
    plaintext: bool
    full_audit: bool
    expires_at: datetime | None
    #: The person (account id) acting: the token's owner, or the person of
    #: a console session (issue 15). None: a token of no person, whose name
    #: is its four-eyes identity (:func:`blocklist.foureyes.identity_of`).
    account_id: int | None = None


def role_prefix(role: str) -> str:
    """The greppable prefix of tokens of ``role``: ``cf_<role>_``."""
    return f"cf_{role}_"


def token_hash(token: str) -> bytes:
    """SHA-256 of the token's UTF-8 bytes: what the store keeps and looks up."""
    return hashlib.sha256(token.encode("utf-8")).digest()


def create_token(
    session: Session,
    *,
    name: str,
    role: str,
    lists: Sequence[str] = (),
    plaintext: bool = False,
    full_audit: bool = False,
    expires_at: datetime | None = None,
    actor: str = Actor.CLI,
    account_id: int | None = None,
    now: datetime | None = None,
) -> tuple[str, TokenRow]:
    """Issue a token; return ``(token, row)``. The token is never stored.

    ``account_id`` makes it a person's token (only
    :func:`blocklist.store.accounts.mint_person_token` passes it, from the
    person's own session); its ``token.create`` record then names the
    ``account``.

    Raises:
        InvalidField: bad name or role, plaintext for a non-ISP, full_audit
            for a non-auditor, an ISP/auditor token without lists, an
            ``expires_at`` not in the future.
        NotFound: a named list does not exist.
        TokenNameTaken: a token not revoked has this name for this role on
            one of these lists (or on every list).
        AnalystTokenNeedsPerson: an analyst token of no person for a list
            on which a person holds the analyst role
            (:func:`_check_analyst_persons`).
    """
    now = audit.resolve_now(now)
    audit.check_actor(actor)
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise InvalidField(f"token name must be 1..{TOKEN_NAME_LENGTH} characters without controls")
    if role not in ROLES:
        raise InvalidField(f"role must be one of {', '.join(ROLES)}")
    if plaintext and role != "isp":
        raise InvalidField("only ISP tokens carry the plaintext entitlement")
    if full_audit and role != "auditor":
        raise InvalidField("only auditor tokens may fetch full bundles")
    if role in LIST_ROLES and not lists:
        raise InvalidField(f"a {role} token must name at least one list")
    if expires_at is not None and (expires_at.tzinfo is None or expires_at <= now):
        raise InvalidField("expires_at must be a timezone-aware time in the future")
    names = sorted(set(lists))
    rows = list(session.scalars(select(ListRow).where(ListRow.name.in_(names))).all())
    missing = set(names) - {r.name for r in rows}
    if missing:
        raise NotFound(f"no list named {sorted(missing)[0]!r}")

    secret = base64.urlsafe_b64encode(secrets.token_bytes(TOKEN_SECRET_BYTES)).rstrip(b"=")
    token = role_prefix(role) + secret.decode("ascii")
    audit.lock_list(session, None)
    scopes = claim_scopes(role, [r.id for r in rows])
    if role == "analyst" and account_id is None:
        _check_analyst_persons(session, scopes)
    _check_name_free(session, name, role, scopes)
    row = TokenRow(
        name=name,
        role=role,
        token_hash=token_hash(token),
        prefix=token[: len(role_prefix(role)) + PREFIX_SECRET_CHARS],
        plaintext=bool(plaintext),
        full_audit=bool(full_audit),
        expires_at=expires_at,
        revoked_at=None,
        last_used_at=None,
        created_at=now,
        created_by=actor,
        account_id=account_id,
    )
    row.lists = sorted(rows, key=lambda r: r.name)
    session.add(row)
    session.flush()
    session.add_all(
        TokenNameRow(role=role, list_id=scope, name=name, token_id=row.id) for scope in scopes
    )
    session.flush()
    audit.append(
        session,
        list_id=None,
        actor=actor,
        action=Action.TOKEN_CREATE,
        details={
            "token": row.id,
            "name": name,
            "role": role,
            "prefix": row.prefix,
            "lists": names,
            "plaintext": row.plaintext,
            "full_audit": row.full_audit,
            "expires_at": format_time(expires_at) if expires_at else None,
            **({} if account_id is None else {"account": account_id, "person": account_id}),
        },
        now=now,
    )
    return token, row


def _check_analyst_persons(session: Session, scopes: Sequence[int]) -> None:
    """Refuse an analyst token of no person where analysts are persons.

    Issue 15, item 4: a token of no person is its own identity in
    four-eyes (its name), so on a list where any person holds the analyst
    role an admin could otherwise mint a second "analyst" and approve as
    someone else. Tokens minted before the list had persons keep working
    and keep the name rule until attached (item 5); only new ones are
    refused. A token for every list (``scopes == [EVERY_LIST]``) is
    refused once any person holds the analyst role anywhere.

    Raises:
        AnalystTokenNeedsPerson: a person holds the analyst role on one of
            ``scopes`` or on every list.
    """
    query = select(AccountRoleRow.list_id).where(AccountRoleRow.role == "analyst")
    if EVERY_LIST not in scopes:
        query = query.where(AccountRoleRow.list_id.in_(sorted({*scopes, EVERY_LIST})))
    held = session.scalar(query.order_by(AccountRoleRow.list_id).limit(1))
    if held is None:
        return
    where = "every list"
    if held != EVERY_LIST:
        where = f"list {session.scalar(select(ListRow.name).where(ListRow.id == held))!r}"
    raise AnalystTokenNeedsPerson(
        f"a person holds the analyst role on {where}: a new analyst token there must "
        "be a person's, minted in that person's console session (My tokens); attach "
        "an existing token with 'cleanfeed account attach-token'"
    )


def lookup_token(session: Session, token: str, *, now: datetime | None = None) -> Principal | None:
    """Return the principal of a valid token, or ``None``.

    Malformed, unknown, revoked and expired tokens all give ``None`` (the
    API answers each with the same 401).
    """
    if not isinstance(token, str) or len(token) > MAX_TOKEN_CHARS or not _TOKEN_RE.match(token):
        return None
    now = audit.resolve_now(now)
    row = session.scalar(select(TokenRow).where(TokenRow.token_hash == token_hash(token)))
    if row is None or row.revoked_at is not None:
        return None
    if row.expires_at is not None and row.expires_at <= now:
        return None
    if not token.startswith(role_prefix(row.role)):
        return None
    if row.account_id is not None:
        # A disabled person's tokens stop at once (disabling also revokes
        # them; this covers a token attached after the fact).
        disabled = session.scalar(
            select(AccountRow.disabled).where(AccountRow.id == row.account_id)
        )
        if disabled is None or disabled:
            return None
    return Principal(
        token_id=row.id,
        name=row.name,
        role=row.role,
        lists=frozenset(lst.name for lst in row.lists),
        list_ids=frozenset(lst.id for lst in row.lists),
        plaintext=row.plaintext,
        full_audit=row.full_audit,
        expires_at=row.expires_at,
        account_id=row.account_id,
    )


def get_token(session: Session, token_id: int) -> TokenRow:
    """Return a token row by id.

    Raises:
        NotFound: no such token.
    """
    return get_row(session, TokenRow, token_id, f"no token {token_id}")


def revoke_token(
    session: Session, token_id: int, *, actor: str, now: datetime | None = None
) -> TokenRow:
    """Revoke a token (it stops working at once, or within the API's cache bound).

    Raises:
        NotFound: no such token.
        InvalidState: already revoked.
    """
    now = audit.begin_global(session, actor, now)
    row = get_token(session, token_id)
    if row.revoked_at is not None:
        raise InvalidState(f"token {token_id} is already revoked")
    row.revoked_at = now
    # The name is free again: the global chain says which token held it when.
    session.execute(delete(TokenNameRow).where(TokenNameRow.token_id == row.id))
    session.flush()
    details = {
        "token": row.id,
        "name": row.name,
        "prefix": row.prefix,
        **({} if row.account_id is None else {"account": row.account_id}),
    }
    audit.append_global(session, actor, Action.TOKEN_REVOKE, details, now)
    return row


def live_token_ids(session: Session, name: str, roles: Sequence[str]) -> list[int]:
    """Ids of the tokens named ``name`` of one of ``roles`` not revoked, oldest first.

    Names are unique per role and list only, so a name may match several
    (``cleanfeed account attach-token --token-name`` asks for one).
    """
    return list(
        session.scalars(
            select(TokenRow.id)
            .where(
                TokenRow.name == name,
                TokenRow.revoked_at.is_(None),
                TokenRow.role.in_(sorted(set(roles))),
            )
            .order_by(TokenRow.id)
        ).all()
    )


def list_tokens(session: Session) -> list[TokenRow]:
    """Every token (revoked and expired included), by id."""
    return list(session.scalars(select(TokenRow).order_by(TokenRow.id)).all())


def record_last_use(session: Session, uses: Mapping[int, datetime]) -> None:
    """Write many tokens' ``last_used_at`` in one statement (per 500 tokens).

    The API collects uses in memory and flushes them periodically, so a busy
    ISP poll loop does not write a row per request. A time never moves
    ``last_used_at`` backwards.
    """
    items = sorted(uses.items())
    for start in range(0, len(items), LAST_USE_BATCH):
        batch = items[start : start + LAST_USE_BATCH]
        when = case(
            *(
                (
                    and_(
                        TokenRow.id == token_id,
                        or_(TokenRow.last_used_at.is_(None), TokenRow.last_used_at < at),
                    ),
                    literal(at, UTCDateTime()),
                )
                for token_id, at in batch
            ),
            else_=TokenRow.last_used_at,
        )
        session.execute(
            update(TokenRow)
            .where(TokenRow.id.in_([token_id for token_id, _ in batch]))
            .values(last_used_at=when)
            # CASE cannot be evaluated in Python; loaded TokenRow objects of
            # this session keep their old last_used_at (it is advisory).
            .execution_options(synchronize_session=False)
        )
