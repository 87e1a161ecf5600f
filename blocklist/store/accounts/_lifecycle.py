"""An account's life: creation, enrolment through a one-time link, reset, disabling.

Steps 1 to 3 of the life told in :mod:`blocklist.store.accounts`. An
enrolment link is a bearer credential until used, so only its SHA-256 is
stored and it expires (:data:`DEFAULT_ENROL_HOURS`, at most
:data:`MAX_ENROL_HOURS`); using it sets both factors at once, so no
administrator ever knows them.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Final

import pyotp
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from blocklist.auditlog import Action
from blocklist.encoding import format_time
from blocklist.store import audit
from blocklist.store.accounts._factors import (
    AccountSecrets,
    check_new_password,
    hash_password,
    match_totp,
)
from blocklist.store.accounts._grants import GrantResult, apply_grant, revoke_tokens
from blocklist.store.accounts._persons import (
    RoleGrant,
    check_name,
    enabled_account,
    get_account_by_name,
    list_ids,
)
from blocklist.store.errors import (
    AccountNameTaken,
    EnrolmentInvalid,
    InvalidField,
    InvalidState,
    TotpInvalid,
)
from blocklist.store.models import AccountRow, AuditRow, PendingGrantRow, SessionRow

__all__ = [
    "DEFAULT_ENROL_HOURS",
    "ENROL_TOKEN_BYTES",
    "MAX_ENROL_HOURS",
    "complete_enrolment",
    "create_account",
    "disable_account",
    "enrolment_account",
    "enrolment_secret",
    "reset_account",
]

#: Random bytes of an enrolment link's token: 256 bits, beyond guessing.
ENROL_TOKEN_BYTES: Final = 32

#: Default lifetime of an enrolment link (issue 15: 72 hours).
DEFAULT_ENROL_HOURS: Final = 72

#: Longest lifetime an administrator may give a link (a month): a link is a
#: bearer credential for the account until used.
MAX_ENROL_HOURS: Final = 24 * 31


def _token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


def _check_enrol_hours(hours: int) -> timedelta:
    if isinstance(hours, bool) or not isinstance(hours, int) or not 1 <= hours <= MAX_ENROL_HOURS:
        raise InvalidField(f"an enrolment link lasts 1..{MAX_ENROL_HOURS} hours")
    return timedelta(hours=hours)


def _ensure_started(session: Session, actor: str, now: datetime) -> None:
    """Append ``accounts.start`` once, before the first account record.

    The auditor checks approvals per person from this record on.
    """
    exists = session.scalar(
        select(AuditRow.seq)
        .where(AuditRow.chain == audit.DEPLOYMENT_CHAIN, AuditRow.action == Action.ACCOUNTS_START)
        .limit(1)
    )
    if exists is None:
        note = {"note": "approvals count persons from here on (issue 15)"}
        audit.append_global(session, actor, Action.ACCOUNTS_START, note, now)


def _new_enrolment(
    session: Session,
    row: AccountRow,
    lifetime: timedelta,
    *,
    action: str,
    actor: str,
    person: int | None,
    now: datetime,
) -> str:
    """Give the account a fresh enrolment link and record it (``action``); return its token."""
    token = secrets.token_urlsafe(ENROL_TOKEN_BYTES)
    expires = now + lifetime
    row.enrol_token_hash = _token_hash(token)
    row.enrol_expires_at = expires
    session.add(row)
    session.flush()
    details = {
        "account": row.id,
        "name": row.name,
        "enrol_expires_at": format_time(expires),
        **audit.person_details(person),
    }
    audit.append_global(session, actor, action, details, now)
    return token


def create_account(
    session: Session,
    *,
    name: str,
    grants: Sequence[RoleGrant],
    actor: str,
    person: int | None = None,
    enrol_hours: int = DEFAULT_ENROL_HOURS,
    now: datetime | None = None,
) -> tuple[str, AccountRow, list[GrantResult]]:
    """Create a person's account with its roles; return ``(enrol token, row, grants)``.

    The enrolment token is returned once and only its SHA-256 is stored.
    Each grant is applied as :func:`grant_role` would (pending a second
    admin where that rule applies).

    Raises:
        InvalidField: a bad name, no roles, a bad role, admin on one list,
            a link lifetime out of range, a bad actor.
        NotFound: a named list does not exist.
        AccountNameTaken: an account has this name.
    """
    now = audit.resolve_now(now)
    audit.check_actor(actor)
    check_name(name)
    lifetime = _check_enrol_hours(enrol_hours)
    if not grants:
        raise InvalidField("an account needs at least one role")
    list_ids(session, grants)
    audit.lock_list(session, None)
    if session.scalar(select(AccountRow.id).where(AccountRow.name == name)) is not None:
        raise AccountNameTaken(f"an account named {name!r} exists already")
    _ensure_started(session, actor, now)
    row = AccountRow(
        name=name,
        disabled=False,
        password_hash=None,
        totp_secret=None,
        totp_last_step=None,
        enrolled_at=None,
        created_at=now,
        created_by=actor,
    )
    token = _new_enrolment(
        session, row, lifetime, action=Action.ACCOUNT_CREATE, actor=actor, person=person, now=now
    )
    results = [
        apply_grant(session, row, g, actor=actor, person=person, now=now)
        for g in sorted(set(grants), key=lambda g: (g.role, g.list_name))
    ]
    return token, row, results


def disable_account(
    session: Session,
    name: str,
    *,
    actor: str,
    person: int | None = None,
    now: datetime | None = None,
) -> list[int]:
    """Disable an account: no login, sessions ended, tokens revoked; return their ids.

    Raises:
        NotFound: no such account.
        InvalidState: already disabled.
    """
    now = audit.begin_global(session, actor, now)
    row = get_account_by_name(session, name)
    if row.disabled:
        raise InvalidState(f"account {name!r} is already disabled")
    row.disabled = True
    row.enrol_token_hash = None
    row.enrol_expires_at = None
    session.execute(delete(SessionRow).where(SessionRow.account_id == row.id))
    session.execute(delete(PendingGrantRow).where(PendingGrantRow.account_id == row.id))
    session.flush()
    details = {"account": row.id, "name": row.name, **audit.person_details(person)}
    audit.append_global(session, actor, Action.ACCOUNT_DISABLE, details, now)
    return revoke_tokens(session, row.id, actor, now)


def reset_account(
    session: Session,
    name: str,
    *,
    actor: str,
    person: int | None = None,
    enrol_hours: int = DEFAULT_ENROL_HOURS,
    now: datetime | None = None,
) -> tuple[str, AccountRow]:
    """Erase both factors and issue a new enrolment link; return ``(token, row)``.

    For a lost phone or a forgotten password (issue 15 item 2: resets by an
    admin only, through a new link). The person's sessions end; their API
    tokens stay (revoke them separately if they may be compromised).

    Raises:
        NotFound: no such account.
        InvalidState: the account is disabled.
        InvalidField: a link lifetime out of range.
    """
    now = audit.resolve_now(now)
    audit.check_actor(actor)
    lifetime = _check_enrol_hours(enrol_hours)
    audit.lock_list(session, None)
    row = enabled_account(session, name)
    row.password_hash = None
    row.totp_secret = None
    row.enrolled_at = None
    session.execute(delete(SessionRow).where(SessionRow.account_id == row.id))
    token = _new_enrolment(
        session, row, lifetime, action=Action.ACCOUNT_RESET, actor=actor, person=person, now=now
    )
    return token, row


def enrolment_account(session: Session, token: str, *, now: datetime | None = None) -> AccountRow:
    """The account an enrolment link is for, if the link is still valid.

    Raises:
        EnrolmentInvalid: unknown, used, expired, or the account is disabled
            (one answer for all).
    """
    now = audit.resolve_now(now)
    if not isinstance(token, str) or not 1 <= len(token) <= 2 * ENROL_TOKEN_BYTES:
        raise EnrolmentInvalid("this enrolment link is not valid (unknown, used or expired)")
    digest = _token_hash(token)
    row = session.scalar(select(AccountRow).where(AccountRow.enrol_token_hash == digest))
    if row is None or row.disabled or row.enrol_expires_at is None or row.enrol_expires_at <= now:
        raise EnrolmentInvalid("this enrolment link is not valid (unknown, used or expired)")
    return row


def enrolment_secret(
    session: Session, token: str, keys: AccountSecrets, *, now: datetime | None = None
) -> tuple[AccountRow, str]:
    """The TOTP secret the person is to scan, drawn at the first visit of the link.

    Later visits of the same link show the same secret (the page may be
    reloaded before the code is confirmed).

    Raises:
        EnrolmentInvalid: the link is not valid.
    """
    row = enrolment_account(session, token, now=now)
    if row.totp_secret is None:
        row.totp_secret = keys.seal(pyotp.random_base32())
        session.flush()
        return row, keys.open(row.totp_secret)
    return row, keys.open(row.totp_secret)


def complete_enrolment(
    session: Session,
    token: str,
    password: str,
    totp_code: str,
    keys: AccountSecrets,
    *,
    now: datetime | None = None,
) -> AccountRow:
    """Set the password and confirm the TOTP secret; the link is used up.

    The confirming code's time-step is remembered, so it cannot log in
    afterwards (RFC 6238 section 5.2).

    Raises:
        EnrolmentInvalid: the link is not valid, or no secret was shown yet.
        WeakPassword: the password is too short or too long.
        TotpInvalid: the code does not match the secret.
    """
    now = audit.resolve_now(now)
    audit.lock_list(session, None)
    row = enrolment_account(session, token, now=now)
    check_new_password(password)
    if row.totp_secret is None:
        raise EnrolmentInvalid("open the enrolment link first: it shows the TOTP secret")
    step = match_totp(keys.open(row.totp_secret), totp_code, now)
    if step is None:
        raise TotpInvalid(
            "the code does not match: check the phone's clock and enter the current code"
        )
    row.password_hash = hash_password(password)
    row.totp_last_step = step
    row.enrol_token_hash = None
    row.enrol_expires_at = None
    row.enrolled_at = now
    session.flush()
    details = {"account": row.id, "name": row.name, "person": row.id}
    audit.append_global(session, row.name, Action.ACCOUNT_ENROL, details, now)
    return row
