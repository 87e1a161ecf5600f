"""Persons' accounts for the API and the console (issue 15).

This module is the interface the console's routes build on: :func:`login`,
:func:`load_session`, :func:`logout`, :func:`check_csrf`, enrolment
(:func:`enrolment_info`, :func:`complete_enrolment`), tokens of a person
(:func:`mint_person_token`) and the cookie helpers. Administration (create,
grant, confirm, disable, reset, attach) is in :mod:`api.accounts.admin`
(``/v1/admin/accounts``) and ``cleanfeed account``.

Issue 15 items 1-3. Every function here is synchronous and opens its own
transaction; routes call them through ``run_in_threadpool`` as the rest of
``api`` calls the store. Times come from ``ctx.wall_clock`` so tests expire
sessions without sleeping.

Login (:func:`login`): password (argon2id) and TOTP code (RFC 6238) are
both checked before anything is said; a wrong password and a wrong code
get the same ``bad_credentials`` answer, as does an unknown or unenrolled
name (after the same argon2 work, so timing does not tell either). A code
whose time-step is not later than the last accepted one is refused with
``totp_reused`` (RFC 6238 section 5.2). Failures back off per account name
and per client address (:mod:`blocklist.store.sessions`); the address is
kept only as a keyed hash, only for that.

Sessions: a new session id at each login (fixation), idle and absolute
timeouts (``session_idle_timeout``, ``session_absolute_timeout``), a
per-session CSRF token (:func:`check_csrf`), deleted at logout. Cookies are
set by :func:`set_session_cookie`: ``HttpOnly`` (no script reads it),
``SameSite=Strict`` (no cross-site request carries it), ``Secure`` over
HTTPS, ``Path=/``, no ``Max-Age`` (the server decides when it ends).
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Final
from urllib.parse import quote

import pyotp
from starlette.responses import Response

from api.accounts.keyfile import load_or_create
from blocklist.store import accounts as store_accounts
from blocklist.store import sessions as store_sessions
from blocklist.store.errors import (
    EnrolmentInvalid as StoreEnrolmentInvalid,
)
from blocklist.store.errors import (
    NotFound,
    PermissionDenied,
    TotpInvalid,
    WeakPassword,
)
from blocklist.store.models import AccountRow
from blocklist.store.tokens import Principal

if TYPE_CHECKING:
    from api.context import AppContext
    from api.settings import Settings

__all__ = [
    "CSRF_FIELD",
    "NO_TOKEN_ID",
    "SESSION_COOKIE",
    "EnrolmentInfo",
    "EnrolmentInvalid",
    "LoginBackoff",
    "LoginRefused",
    "SessionPerson",
    "account_secrets",
    "check_csrf",
    "clear_session_cookie",
    "complete_enrolment",
    "enrol_url",
    "enrolment_info",
    "load_session",
    "login",
    "logout",
    "mint_person_token",
    "set_session_cookie",
]

#: Name of the session cookie.
SESSION_COOKIE: Final = "cf_session"

#: Name of the form field that carries the CSRF token (console forms).
CSRF_FIELD: Final = "csrf_token"

#: ``Principal.token_id`` of a person acting through a console session.
NO_TOKEN_ID: Final = 0

#: Longest name, password or code even looked at in a login (bounded work).
_MAX_LOGIN_FIELD: Final = store_accounts.MAX_PASSWORD_CHARS


class LoginRefused(Exception):
    """A login refused; ``code`` says why in words safe to show.

    ``bad_credentials``: unknown name, wrong password or wrong code (one
    answer, so a guesser learns nothing); ``totp_reused``: a correct code
    already used (wait for the next one); ``account_disabled``: correct
    credentials of a disabled account.
    """

    def __init__(self, code: str, message: str) -> None:
        """Refuse with a stable ``code``."""
        super().__init__(message)
        self.code = code


class LoginBackoff(Exception):
    """Too many failed logins: wait ``retry_after`` seconds (name or address)."""

    code = "login_backoff"

    def __init__(self, retry_after: float) -> None:
        """Refuse for ``retry_after`` more seconds."""
        super().__init__(f"too many failed logins: try again in {max(1, round(retry_after))} s")
        self.retry_after = retry_after


class EnrolmentInvalid(Exception):
    """An enrolment refused: ``enrolment_invalid`` (link unknown, used or
    expired), ``weak_password`` or ``totp_invalid``."""

    def __init__(self, code: str, message: str) -> None:
        """Refuse with a stable ``code``."""
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class EnrolmentInfo:
    """What the enrolment page shows: the name and the TOTP secret to scan."""

    name: str
    totp_secret: str
    provisioning_uri: str


@dataclass(frozen=True)
class SessionPerson:
    """The person of a live console session."""

    account_id: int
    name: str
    #: List name -> roles held there; key ``"*"``: every list.
    roles: Mapping[str, frozenset[str]] = field(hash=False)
    #: Public id for display and logs (not the cookie secret).
    session_id: str
    #: The session's CSRF token: every state-changing form carries it.
    csrf_token: str

    def holds(self, role: str, list_name: str | None) -> bool:
        """Whether the person holds ``role`` on ``list_name`` (None: on any list)."""
        if role in self.roles.get(store_accounts.ALL_LISTS, frozenset()):
            return True
        if list_name is None:
            return any(role in held for held in self.roles.values())
        return role in self.roles.get(list_name, frozenset())

    def principal(self, role: str, list_name: str | None) -> Principal:
        """A :class:`Principal` acting as this person in ``role`` (on ``list_name``).

        Its ``token_id`` is :data:`NO_TOKEN_ID` (no token: a session), its
        name the account name, its ``account_id`` the person, so four-eyes
        counts the person whichever way they act. ``list_ids`` is empty.

        Raises:
            PermissionDenied: the person does not hold ``role`` there.
        """
        if not self.holds(role, list_name):
            where = f"list {list_name!r}" if list_name else "any list"
            raise PermissionDenied(f"{self.name} does not hold the {role} role on {where}")
        every = role in self.roles.get(store_accounts.ALL_LISTS, frozenset())
        lists: frozenset[str]
        if role == "admin" or (every and role == "analyst"):
            lists = frozenset()
        elif list_name is not None:
            lists = frozenset({list_name})
        else:
            lists = frozenset(
                name
                for name, held in self.roles.items()
                if role in held and name != store_accounts.ALL_LISTS
            )
        return Principal(
            token_id=NO_TOKEN_ID,
            name=self.name,
            role=role,
            lists=lists,
            list_ids=frozenset(),
            plaintext=False,
            full_audit=False,
            expires_at=None,
            account_id=self.account_id,
        )


def account_secrets(ctx: AppContext) -> store_accounts.AccountSecrets:
    """The deployment's account-secrets key (created at first need).

    Raises:
        AccountSecretsUnavailable: the key file is unusable (503).
    """
    if ctx.account_secrets is None:
        ctx.account_secrets = load_or_create(ctx.settings.account_secrets_file)
    return ctx.account_secrets


def enrol_url(settings: Settings, token: str) -> str:
    """The link a person enrols through: ``<public URL>/console/enrol/<token>``."""
    return f"{settings.enrol_base_url}/console/enrol/{quote(token, safe='')}"


def _timeouts(ctx: AppContext) -> tuple[timedelta, timedelta]:
    s = ctx.settings
    return (
        timedelta(seconds=s.session_idle_timeout),
        timedelta(seconds=s.session_absolute_timeout),
    )


def _backoff_keys(
    keys: store_accounts.AccountSecrets, name: str, client_addr: str | None
) -> list[bytes]:
    out = [keys.mac("account", name.casefold())]
    if client_addr:
        out.append(keys.mac("address", client_addr))
    return out


def _person(
    account_id: int,
    name: str,
    live: store_sessions.LiveSession,
    roles: Mapping[str, frozenset[str]],
) -> SessionPerson:
    return SessionPerson(
        account_id=account_id,
        name=name,
        roles=roles,
        session_id=live.public_id,
        csrf_token=live.csrf_token,
    )


def login(
    ctx: AppContext,
    name: str,
    password: str,
    totp_code: str,
    client_addr: str | None,
    *,
    previous_cookie: str | None = None,
) -> tuple[str, SessionPerson]:
    """Log a person in; return ``(cookie value, person)`` of a brand-new session.

    ``previous_cookie`` (the session cookie the browser sent, if any) is
    ended, so an id planted before login never becomes a logged-in one.

    Raises:
        LoginBackoff: too many recent failures for this name or address.
        LoginRefused: ``bad_credentials``, ``totp_reused`` or
            ``account_disabled``.
        AccountSecretsUnavailable: the key file is unusable.
    """
    keys = account_secrets(ctx)
    now = ctx.wall_clock()
    name = name if isinstance(name, str) else ""
    name = name.strip()[:_MAX_LOGIN_FIELD]
    backoff = _backoff_keys(keys, name, client_addr)
    with ctx.db.transaction() as session:
        wait = store_sessions.backoff_wait(session, backoff, now=now)
    if wait > 0:
        raise LoginBackoff(wait)

    refusal: LoginRefused | None = None
    result: tuple[str, SessionPerson] | None = None
    with ctx.db.transaction() as session:
        try:
            row: AccountRow | None = store_accounts.get_account_by_name(session, name, lock=True)
        except NotFound:
            row = None
        if not store_accounts.check_password(row, password) or row is None:
            refusal = LoginRefused("bad_credentials", "wrong name, password or code")
        else:
            assert row.totp_secret is not None
            step = store_accounts.match_totp(keys.open(row.totp_secret), totp_code, now)
            if step is None:
                refusal = LoginRefused("bad_credentials", "wrong name, password or code")
            elif row.totp_last_step is not None and step <= row.totp_last_step:
                # RFC 6238 section 5.2: a code is accepted once.
                refusal = LoginRefused(
                    "totp_reused", "this code was used already: wait for the next one"
                )
            elif row.disabled:
                refusal = LoginRefused("account_disabled", "this account is disabled")
            else:
                row.totp_last_step = step
                store_sessions.clear_failures(session, backoff[:1])
                cookie, live = store_sessions.create_session(
                    session, row.id, previous=previous_cookie, now=now
                )
                roles = store_accounts.roles_of(session, row.id)
                result = cookie, _person(row.id, row.name, live, roles)
    if result is not None:
        return result
    assert refusal is not None
    with ctx.db.transaction() as session:
        # Counted in its own transaction: the refusal must not roll it back.
        store_sessions.record_failure(session, backoff, now=now)
    raise refusal


def load_session(ctx: AppContext, cookie_value: str | None) -> SessionPerson | None:
    """The person of a session cookie, or None (no session, expired, disabled).

    Touches the session's ``last_seen_at`` (the idle timeout counts from
    the last request).
    """
    if not cookie_value:
        return None
    idle, absolute = _timeouts(ctx)
    now = ctx.wall_clock()
    with ctx.db.transaction() as session:
        live = store_sessions.load_session(
            session, cookie_value, idle=idle, absolute=absolute, now=now
        )
        if live is None:
            return None
        row = store_accounts.get_account(session, live.account_id)
        roles = store_accounts.roles_of(session, row.id)
        return _person(row.id, row.name, live, roles)


def logout(ctx: AppContext, cookie_value: str | None) -> None:
    """End the session server-side (the cookie is worthless afterwards)."""
    if not cookie_value:
        return
    with ctx.db.transaction() as session:
        store_sessions.delete_session(session, cookie_value)


def check_csrf(person: SessionPerson, submitted: str | None) -> bool:
    """Whether a form's CSRF token is the session's (constant-time comparison).

    OWASP CSRF Prevention Cheat Sheet, synchronizer token pattern: the token
    is per session, stored server-side, and never sent in a cookie.
    """
    if not isinstance(submitted, str) or not submitted:
        return False
    return hmac.compare_digest(person.csrf_token.encode("ascii"), submitted.encode("utf-8"))


def _enrolment_error(error: Exception) -> EnrolmentInvalid:
    code = getattr(error, "code", "enrolment_invalid")
    return EnrolmentInvalid(code, str(error))


def enrolment_info(ctx: AppContext, enrol_token: str) -> EnrolmentInfo:
    """The enrolment page's content for a valid link (draws the TOTP secret once).

    Raises:
        EnrolmentInvalid: ``enrolment_invalid``.
    """
    keys = account_secrets(ctx)
    try:
        with ctx.db.transaction() as session:
            row, secret = store_accounts.enrolment_secret(
                session, enrol_token, keys, now=ctx.wall_clock()
            )
            name = row.name
    except StoreEnrolmentInvalid as e:
        raise _enrolment_error(e) from e
    uri = pyotp.TOTP(
        secret, digits=store_accounts.TOTP_DIGITS, interval=store_accounts.TOTP_STEP_SECONDS
    ).provisioning_uri(name=name, issuer_name=store_accounts.TOTP_ISSUER)
    return EnrolmentInfo(name=name, totp_secret=secret, provisioning_uri=uri)


def complete_enrolment(ctx: AppContext, enrol_token: str, password: str, totp_code: str) -> None:
    """Set the password and confirm the TOTP code; the link is used up.

    Raises:
        EnrolmentInvalid: ``enrolment_invalid``, ``weak_password`` or
            ``totp_invalid`` (nothing changed).
    """
    keys = account_secrets(ctx)
    try:
        with ctx.db.transaction() as session:
            store_accounts.complete_enrolment(
                session, enrol_token, password, totp_code, keys, now=ctx.wall_clock()
            )
    except (StoreEnrolmentInvalid, WeakPassword, TotpInvalid) as e:
        raise _enrolment_error(e) from e


def mint_person_token(
    ctx: AppContext,
    person: SessionPerson,
    role: str,
    list_name: str | None,
    name: str,
    *,
    expires_at: datetime | None = None,
) -> tuple[str, int]:
    """Issue an API token of ``person`` (from their TOTP-authenticated session).

    Returns ``(token, token id)``; the token is shown once.

    Raises:
        PermissionDenied: the person does not hold ``role`` there.
        NotFound: no such list.
        InvalidField, TokenNameTaken: a bad or taken name, a bad expiry.
    """
    with ctx.db.transaction() as session:
        token, row = store_accounts.mint_person_token(
            session,
            person.account_id,
            role=role,
            list_name=list_name,
            name=name,
            expires_at=expires_at,
            now=ctx.wall_clock(),
        )
        return token, row.id


def set_session_cookie(response: Response, value: str, *, secure: bool) -> None:
    """Set the session cookie: HttpOnly, SameSite=Strict, Path=/, Secure over HTTPS."""
    response.set_cookie(
        SESSION_COOKIE, value, httponly=True, samesite="strict", secure=secure, path="/"
    )


def clear_session_cookie(response: Response) -> None:
    """Tell the browser to drop the session cookie (logout)."""
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
