"""Persons' accounts: creation, enrolment, roles, second-admin grants, tokens.

Issue 15 (DESIGN.md, "Accounts and the console"): an account is a person,
the identity four-eyes counts. Its life:

1. an administrator creates it with roles (:func:`create_account`); the
   person receives a one-time enrolment link (only its SHA-256 is stored,
   valid :data:`DEFAULT_ENROL_HOURS` by default);
2. the person opens the link (:func:`enrolment_secret` draws the TOTP
   secret, sealed with the deployment's account-secrets key), sets a
   password and confirms a TOTP code (:func:`complete_enrolment`): no
   administrator ever knows both factors;
3. an administrator may grant and revoke roles, disable the account, or
   reset it (a new enrolment link; the old factors are erased).

Roles are per list, or on every list (``list_id`` :data:`EVERY_LIST`).
Administrators hold ``admin`` on every list. With two or more enabled admin
accounts, granting ``analyst`` or ``admin`` is only a *pending* grant until
a second admin person confirms it (:func:`confirm_grant`): one compromised
admin cannot mint an analyst to approve their own entries.

Every change is recorded in the deployment ("global") audit chain in the
same transaction (:data:`blocklist.auditlog.Action` ``account.*``,
``token.attach``); ``details["person"]`` names the acting person when the
actor is one. The first account record is preceded by one
``accounts.start`` record: the auditor's per-person approval check starts
there (:mod:`clients.audit.persons`).

Secrets: passwords are argon2id (RFC 9106) PHC strings from argon2-cffi;
TOTP secrets (RFC 6238, pyotp) are sealed with NaCl's SecretBox under a
key kept outside the database (:class:`AccountSecrets`), so a database dump
alone yields neither factor.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

import nacl.exceptions
import nacl.secret
import nacl.utils
import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from blocklist.auditlog import Action
from blocklist.encoding import format_time
from blocklist.store import audit
from blocklist.store import tokens as store_tokens
from blocklist.store.errors import (
    AccountNameTaken,
    EnrolmentInvalid,
    InvalidField,
    InvalidState,
    NotFound,
    PermissionDenied,
    SecondAdminRequired,
    TotpInvalid,
    WeakPassword,
)
from blocklist.store.models import (
    ACCOUNT_ROLES,
    NAME_LENGTH,
    AccountRoleRow,
    AccountRow,
    ApprovalRow,
    AuditRow,
    EntryRow,
    ListRow,
    PendingGrantRow,
    SessionRow,
    TokenRow,
)

__all__ = [
    "ALL_LISTS",
    "CONFIRMED_ROLES",
    "DEFAULT_ENROL_HOURS",
    "ENROL_TOKEN_BYTES",
    "EVERY_LIST",
    "MAX_ENROL_HOURS",
    "MAX_PASSWORD_CHARS",
    "MIN_PASSWORD_CHARS",
    "SECRETS_KEY_BYTES",
    "TOTP_DIGITS",
    "TOTP_ISSUER",
    "TOTP_STEP_SECONDS",
    "TOTP_WINDOW",
    "AccountSecrets",
    "AccountView",
    "GrantResult",
    "RoleGrant",
    "account_view",
    "attach_token",
    "check_password",
    "complete_enrolment",
    "confirm_grant",
    "create_account",
    "disable_account",
    "enabled_admin_count",
    "enrolment_account",
    "enrolment_secret",
    "get_account",
    "get_account_by_name",
    "grant_role",
    "grants_for",
    "list_accounts",
    "mapping_of",
    "match_totp",
    "mint_person_token",
    "person_holds",
    "reset_account",
    "revoke_role",
    "roles_of",
]

#: ``account_roles.list_id`` of a role on every list (no list has id 0).
EVERY_LIST: Final = 0

#: How a role on every list is written in records, JSON and the CLI.
ALL_LISTS: Final = "*"

#: Random bytes of an enrolment link's token: 256 bits, beyond guessing.
ENROL_TOKEN_BYTES: Final = 32

#: Default lifetime of an enrolment link (issue 15: 72 hours).
DEFAULT_ENROL_HOURS: Final = 72

#: Longest lifetime an administrator may give a link (a month): a link is a
#: bearer credential for the account until used.
MAX_ENROL_HOURS: Final = 24 * 31

#: Password length bounds. NIST SP 800-63B section 5.1.1.2: at least 8
#: characters, no composition rules; 12 because these accounts approve
#: what ISPs block. The upper bound only keeps a megabyte "password" from
#: becoming work for the hasher.
MIN_PASSWORD_CHARS: Final = 12
MAX_PASSWORD_CHARS: Final = 1024

#: RFC 6238 parameters every authenticator app supports: 30-second steps,
#: 6 digits, HMAC-SHA-1 (section 4; pyotp's defaults).
TOTP_STEP_SECONDS: Final = 30
TOTP_DIGITS: Final = 6

#: Steps either side of now that are accepted (RFC 6238 section 5.2 advises
#: at most one step of network delay and clock drift).
TOTP_WINDOW: Final = 1

#: Issuer shown by authenticator apps (``otpauth://`` URI).
TOTP_ISSUER: Final = "cleanfeed"

#: Length of the account-secrets key (NaCl SecretBox key).
SECRETS_KEY_BYTES: Final = nacl.secret.SecretBox.KEY_SIZE

#: Roles whose grant needs a second admin once two admins exist (issue 15
#: item 1): the roles that count in four-eyes or can mint those that do.
CONFIRMED_ROLES: Final = ("analyst", "admin")

_NAME_RE = re.compile(rf"\A[A-Za-z0-9][A-Za-z0-9._-]{{0,{NAME_LENGTH - 1}}}\Z")
_TOTP_CODE_RE = re.compile(rf"\A[0-9]{{{TOTP_DIGITS}}}\Z")

#: argon2id with argon2-cffi's defaults (RFC 9106 section 4, second
#: recommended option: t=3, 64 MiB, p=4).
_HASHER = PasswordHasher()


class AccountSecrets:
    """The deployment's account-secrets key: seals TOTP secrets, keys hashes.

    TOTP secrets are sealed with XSalsa20-Poly1305 (NaCl SecretBox), so the
    database alone does not give the second factor. The same key (through
    a derived subkey) keys the HMAC that names back-off rows, so a stored
    row cannot be matched to a client address without it.
    """

    def __init__(self, key: bytes) -> None:
        """Wrap a 32-byte key.

        Raises:
            InvalidField: a key of another length.
        """
        if len(key) != SECRETS_KEY_BYTES:
            raise InvalidField(f"the account-secrets key must be {SECRETS_KEY_BYTES} bytes")
        self._box = nacl.secret.SecretBox(key)
        self._mac_key = hashlib.sha256(b"cleanfeed-account-mac/v1\n" + key).digest()

    def seal(self, plaintext: str) -> bytes:
        """Encrypt a TOTP secret (a fresh random nonce each time)."""
        return bytes(self._box.encrypt(plaintext.encode("ascii")))

    def open(self, sealed: bytes) -> str:
        """Decrypt a sealed TOTP secret.

        Raises:
            InvalidState: sealed under another key or altered (the key file
                was replaced: the account must be reset).
        """
        try:
            return bytes(self._box.decrypt(sealed)).decode("ascii")
        except nacl.exceptions.CryptoError as e:
            raise InvalidState(
                "a TOTP secret does not open with this deployment's account-secrets key "
                "(was the key file replaced?): reset the account"
            ) from e

    def mac(self, purpose: str, value: str) -> bytes:
        """HMAC-SHA-256 of ``value`` for ``purpose`` (back-off row keys)."""
        message = purpose.encode("ascii") + b"\x00" + value.encode("utf-8", "surrogatepass")
        return hmac.new(self._mac_key, message, hashlib.sha256).digest()

    @staticmethod
    def generate() -> bytes:
        """A fresh random key."""
        return nacl.utils.random(SECRETS_KEY_BYTES)


@dataclass(frozen=True, order=True)
class RoleGrant:
    """A role on a list (``list_name`` :data:`ALL_LISTS`: every list)."""

    role: str
    list_name: str


@dataclass(frozen=True)
class GrantResult:
    """What a grant did: ``granted`` at once, or ``pending`` a second admin."""

    grant: RoleGrant
    status: str
    pending_id: int | None = None


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


def _token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


def _check_name(name: object) -> str:
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise InvalidField(
            f"account name must be 1..{NAME_LENGTH} ASCII letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return name


def _check_enrol_hours(hours: int) -> timedelta:
    if isinstance(hours, bool) or not isinstance(hours, int) or not 1 <= hours <= MAX_ENROL_HOURS:
        raise InvalidField(f"an enrolment link lasts 1..{MAX_ENROL_HOURS} hours")
    return timedelta(hours=hours)


def _record(
    session: Session, actor: str, action: str, details: Mapping[str, object], now: datetime
) -> None:
    """Append a record to the deployment (global) chain."""
    audit.append(session, list_id=None, actor=actor, action=action, details=details, now=now)


def _person_details(person: int | None) -> dict[str, object]:
    return {} if person is None else {"person": person}


def _list_ids(session: Session, grants: Sequence[RoleGrant]) -> dict[str, int]:
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


def grants_for(role: str, lists: Sequence[str]) -> list[RoleGrant]:
    """The grants of ``role`` on ``lists`` (none given: every list)."""
    if not lists:
        return [RoleGrant(role, ALL_LISTS)]
    return [RoleGrant(role, name) for name in sorted(set(lists))]


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
        audit.append(
            session,
            list_id=None,
            actor=actor,
            action=Action.ACCOUNTS_START,
            details={"note": "approvals count persons from here on (issue 15)"},
            now=now,
        )


def get_account(session: Session, account_id: int) -> AccountRow:
    """An account by id.

    Raises:
        NotFound: no such account.
    """
    row = session.get(AccountRow, account_id)
    if row is None:
        raise NotFound(f"no account {account_id}")
    return row


def get_account_by_name(session: Session, name: str, *, lock: bool = False) -> AccountRow:
    """An account by name; ``lock`` holds its row until the transaction ends.

    Login locks it, so two logins racing with one TOTP code cannot both
    pass the "code accepted once" check (RFC 6238 section 5.2).

    Raises:
        NotFound: no such account.
    """
    query = select(AccountRow).where(AccountRow.name == name)
    if lock:
        query = query.with_for_update()
    row = session.scalar(query)
    if row is None:
        raise NotFound(f"no account named {name[:NAME_LENGTH]!r}")
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


def _new_enrolment(row: AccountRow, now: datetime, lifetime: timedelta) -> str:
    token = secrets.token_urlsafe(ENROL_TOKEN_BYTES)
    row.enrol_token_hash = _token_hash(token)
    row.enrol_expires_at = now + lifetime
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
    _check_name(name)
    lifetime = _check_enrol_hours(enrol_hours)
    if not grants:
        raise InvalidField("an account needs at least one role")
    _list_ids(session, grants)
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
    token = _new_enrolment(row, now, lifetime)
    session.add(row)
    session.flush()
    assert row.enrol_expires_at is not None
    audit.append(
        session,
        list_id=None,
        actor=actor,
        action=Action.ACCOUNT_CREATE,
        details={
            "account": row.id,
            "name": name,
            "enrol_expires_at": format_time(row.enrol_expires_at),
            **_person_details(person),
        },
        now=now,
    )
    results = [
        _grant(session, row, g, actor=actor, person=person, now=now)
        for g in sorted(set(grants), key=lambda g: (g.role, g.list_name))
    ]
    return token, row, results


def _grant(
    session: Session,
    row: AccountRow,
    grant: RoleGrant,
    *,
    actor: str,
    person: int | None,
    now: datetime,
) -> GrantResult:
    list_id = _list_ids(session, [grant])[grant.list_name]
    held = session.get(AccountRoleRow, (row.id, list_id, grant.role))
    if held is not None:
        return GrantResult(grant, "held")
    pending = session.scalar(
        select(PendingGrantRow).where(
            PendingGrantRow.account_id == row.id,
            PendingGrantRow.list_id == list_id,
            PendingGrantRow.role == grant.role,
        )
    )
    if pending is not None:
        return GrantResult(grant, "pending", pending.id)
    details: dict[str, object] = {
        "account": row.id,
        "name": row.name,
        "role": grant.role,
        "list": grant.list_name,
        **_person_details(person),
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
        _record(session, actor, Action.ACCOUNT_GRANT, details, now)
        return GrantResult(grant, "pending", pending.id)
    session.add(
        AccountRoleRow(
            account_id=row.id, list_id=list_id, role=grant.role, granted_at=now, granted_by=actor
        )
    )
    session.flush()
    details["status"] = "granted"
    audit.append(
        session, list_id=None, actor=actor, action=Action.ACCOUNT_GRANT, details=details, now=now
    )
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
    now = audit.resolve_now(now)
    audit.check_actor(actor)
    audit.lock_list(session, None)
    row = get_account_by_name(session, name)
    if row.disabled:
        raise InvalidState(f"account {name!r} is disabled")
    return _grant(session, row, grant, actor=actor, person=person, now=now)


def confirm_grant(
    session: Session,
    grant_id: int,
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
    now = audit.resolve_now(now)
    audit.check_actor(actor)
    audit.lock_list(session, None)
    pending = session.get(PendingGrantRow, grant_id)
    if pending is None:
        raise NotFound(f"no pending grant {grant_id}")
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
    list_name = _list_name(session, pending.list_id)
    session.delete(pending)
    session.add(
        AccountRoleRow(
            account_id=row.id,
            list_id=pending.list_id,
            role=pending.role,
            granted_at=now,
            granted_by=actor,
        )
    )
    session.flush()
    audit.append(
        session,
        list_id=None,
        actor=actor,
        action=Action.ACCOUNT_GRANT_CONFIRM,
        details={
            "account": row.id,
            "name": row.name,
            "role": pending.role,
            "list": list_name,
            "grant": grant_id,
            "requested_by": pending.requested_by,
            "person": person,
        },
        now=now,
    )
    return GrantResult(RoleGrant(pending.role, list_name), "granted")


def _list_name(session: Session, list_id: int) -> str:
    if list_id == EVERY_LIST:
        return ALL_LISTS
    name = session.scalar(select(ListRow.name).where(ListRow.id == list_id))
    if name is None:
        raise NotFound(f"no list with id {list_id}")
    return name


def _revoke_tokens(
    session: Session, account_id: int, actor: str, now: datetime, role: str | None = None
) -> list[int]:
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
    now = audit.resolve_now(now)
    audit.check_actor(actor)
    audit.lock_list(session, None)
    row = get_account_by_name(session, name)
    list_id = _list_ids(session, [grant])[grant.list_name]
    held = session.get(AccountRoleRow, (row.id, list_id, grant.role))
    pending = session.scalar(
        select(PendingGrantRow).where(
            PendingGrantRow.account_id == row.id,
            PendingGrantRow.list_id == list_id,
            PendingGrantRow.role == grant.role,
        )
    )
    if held is None and pending is None:
        raise NotFound(f"{name!r} holds no {grant.role} role on {grant.list_name!r}")
    if held is not None:
        session.delete(held)
    if pending is not None:
        session.delete(pending)
    session.flush()
    audit.append(
        session,
        list_id=None,
        actor=actor,
        action=Action.ACCOUNT_REVOKE_ROLE,
        details={
            "account": row.id,
            "name": row.name,
            "role": grant.role,
            "list": grant.list_name,
            "was": "granted" if held is not None else "pending",
            **_person_details(person),
        },
        now=now,
    )
    still = session.scalar(
        select(AccountRoleRow.list_id)
        .where(AccountRoleRow.account_id == row.id, AccountRoleRow.role == grant.role)
        .limit(1)
    )
    if still is None:
        return _revoke_tokens(session, row.id, actor, now, grant.role)
    return []


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
    now = audit.resolve_now(now)
    audit.check_actor(actor)
    audit.lock_list(session, None)
    row = get_account_by_name(session, name)
    if row.disabled:
        raise InvalidState(f"account {name!r} is already disabled")
    row.disabled = True
    row.enrol_token_hash = None
    row.enrol_expires_at = None
    session.execute(delete(SessionRow).where(SessionRow.account_id == row.id))
    session.execute(delete(PendingGrantRow).where(PendingGrantRow.account_id == row.id))
    session.flush()
    audit.append(
        session,
        list_id=None,
        actor=actor,
        action=Action.ACCOUNT_DISABLE,
        details={"account": row.id, "name": row.name, **_person_details(person)},
        now=now,
    )
    return _revoke_tokens(session, row.id, actor, now)


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
    row = get_account_by_name(session, name)
    if row.disabled:
        raise InvalidState(f"account {name!r} is disabled")
    row.password_hash = None
    row.totp_secret = None
    row.enrolled_at = None
    token = _new_enrolment(row, now, lifetime)
    session.execute(delete(SessionRow).where(SessionRow.account_id == row.id))
    session.flush()
    assert row.enrol_expires_at is not None
    audit.append(
        session,
        list_id=None,
        actor=actor,
        action=Action.ACCOUNT_RESET,
        details={
            "account": row.id,
            "name": row.name,
            "enrol_expires_at": format_time(row.enrol_expires_at),
            **_person_details(person),
        },
        now=now,
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


def _check_password(password: object) -> str:
    if not isinstance(password, str) or not (
        MIN_PASSWORD_CHARS <= len(password) <= MAX_PASSWORD_CHARS
    ):
        raise WeakPassword(
            f"a password has {MIN_PASSWORD_CHARS} to {MAX_PASSWORD_CHARS} characters "
            "(a passphrase of several words is easiest)"
        )
    return password


def match_totp(secret: str, code: str, at: datetime) -> int | None:
    """The time-step whose code is ``code`` within :data:`TOTP_WINDOW` of ``at``, or None.

    RFC 6238 section 4: ``T = floor(unix time / 30)``; section 5.2: accept
    at most one step either side for drift. Codes are compared in constant
    time.
    """
    if not isinstance(code, str) or not _TOTP_CODE_RE.match(code):
        return None
    totp = pyotp.TOTP(secret, digits=TOTP_DIGITS, interval=TOTP_STEP_SECONDS)
    now_step = int(at.timestamp()) // TOTP_STEP_SECONDS
    found: int | None = None
    for step in range(now_step - TOTP_WINDOW, now_step + TOTP_WINDOW + 1):
        if hmac.compare_digest(totp.generate_otp(step), code) and found is None:
            found = step
    return found


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
    _check_password(password)
    if row.totp_secret is None:
        raise EnrolmentInvalid("open the enrolment link first: it shows the TOTP secret")
    step = match_totp(keys.open(row.totp_secret), totp_code, now)
    if step is None:
        raise TotpInvalid(
            "the code does not match: check the phone's clock and enter the current code"
        )
    row.password_hash = _HASHER.hash(password)
    row.totp_last_step = step
    row.enrol_token_hash = None
    row.enrol_expires_at = None
    row.enrolled_at = now
    session.flush()
    audit.append(
        session,
        list_id=None,
        actor=row.name,
        action=Action.ACCOUNT_ENROL,
        details={"account": row.id, "name": row.name, "person": row.id},
        now=now,
    )
    return row


_DUMMY_HASH: list[str] = []


def check_password(row: AccountRow | None, password: str) -> bool:
    """Whether ``password`` is the account's; ``row`` None still costs one hash.

    Verifying against a dummy hash for unknown or unenrolled accounts keeps
    the answer's timing from telling which names exist. A hash made with
    weaker parameters than today's is upgraded in place.
    """
    if not isinstance(password, str) or len(password) > MAX_PASSWORD_CHARS:
        return False
    if row is None or row.password_hash is None:
        if not _DUMMY_HASH:
            _DUMMY_HASH.append(_HASHER.hash(secrets.token_hex(16)))
        with contextlib.suppress(VerificationError):
            _HASHER.verify(_DUMMY_HASH[0], password)
        return False
    try:
        _HASHER.verify(row.password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False
    if _HASHER.check_needs_rehash(row.password_hash):
        row.password_hash = _HASHER.hash(password)
    return True


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
        pending=tuple((p.id, RoleGrant(p.role, _list_name(session, p.list_id))) for p in pending),
        created_at=row.created_at,
    )


def list_accounts(session: Session) -> list[AccountView]:
    """Every account (disabled included), by id."""
    rows = session.scalars(select(AccountRow).order_by(AccountRow.id)).all()
    return [account_view(session, row) for row in rows]


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
    now = audit.resolve_now(now)
    audit.check_actor(actor)
    audit.lock_list(session, None)
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
    audit.append(
        session,
        list_id=None,
        actor=actor,
        action=Action.TOKEN_ATTACH,
        details={
            "token": token.id,
            "name": token.name,
            "role": token.role,
            "prefix": token.prefix,
            "account": row.id,
            "entries_attributed": int(getattr(opened, "rowcount", 0) or 0),
            "approvals_attributed": int(getattr(approved, "rowcount", 0) or 0),
            **_person_details(person),
        },
        now=now,
    )
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


def mapping_of(grants: Sequence[RoleGrant]) -> Mapping[str, list[str]]:
    """Role -> list names, for JSON output."""
    out: dict[str, list[str]] = {}
    for g in grants:
        out.setdefault(g.role, []).append(g.list_name)
    return out
