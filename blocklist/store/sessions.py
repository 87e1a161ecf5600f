"""Console sessions and failed-login back-off, kept in the database.

Sessions are server-side (issue 15 item 3; OWASP Session Management Cheat
Sheet): the cookie carries 256 random bits, only their SHA-256 is stored,
so a database read does not yield a usable cookie. A session ends when it
has been idle longer than the idle timeout, when it is older than the
absolute timeout, at logout, and when its account is disabled or reset.
Each login creates a new session id (session fixation: an id planted
before login is never promoted).

Back-off state is in the database too, so it holds across API workers:
one row per account name and one per client address, keyed by an HMAC
(:meth:`blocklist.store.accounts.AccountSecrets.mac`) so the address itself
is never stored. After :data:`BACKOFF_FREE_FAILURES` failures each further
failure doubles the wait, up to :data:`BACKOFF_CAP_SECONDS`; a row
untouched for :data:`BACKOFF_FORGET_SECONDS` is forgotten.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from blocklist.store import audit
from blocklist.store.models import AccountRow, LoginFailureRow, SessionRow

__all__ = [
    "BACKOFF_BASE_SECONDS",
    "BACKOFF_CAP_SECONDS",
    "BACKOFF_FORGET_SECONDS",
    "BACKOFF_FREE_FAILURES",
    "SESSION_SECRET_BYTES",
    "LiveSession",
    "backoff_delay",
    "backoff_wait",
    "clear_failures",
    "create_session",
    "delete_session",
    "load_session",
    "record_failure",
    "session_hash",
]

#: Random bytes of a session cookie: 256 bits (OWASP asks for at least 64).
SESSION_SECRET_BYTES: Final = 32

#: Failures allowed before any wait (typos happen).
BACKOFF_FREE_FAILURES: Final = 3

#: First wait after the free failures; each further failure doubles it.
BACKOFF_BASE_SECONDS: Final = 2.0

#: Longest wait: 15 minutes slows an online guesser to about a hundred
#: guesses a day per account while a locked-out person can still retry.
BACKOFF_CAP_SECONDS: Final = 900.0

#: A back-off row idle this long is deleted (failures are forgiven).
BACKOFF_FORGET_SECONDS: Final = 86_400.0


@dataclass(frozen=True)
class LiveSession:
    """A valid session: whose, its public id and CSRF token."""

    account_id: int
    public_id: str
    csrf_token: str
    created_at: datetime


def session_hash(cookie: str) -> bytes:
    """SHA-256 of a cookie value: what the store keeps."""
    return hashlib.sha256(cookie.encode("utf-8", "surrogatepass")).digest()


def create_session(
    session: Session, account_id: int, *, previous: str | None = None, now: datetime
) -> tuple[str, LiveSession]:
    """Start a session for an account; return ``(cookie value, session)``.

    ``previous``, the cookie the browser presented at login, is deleted:
    the new session never reuses an id (fixation).
    """
    now = audit.resolve_now(now)
    if previous:
        delete_session(session, previous)
    cookie = secrets.token_urlsafe(SESSION_SECRET_BYTES)
    row = SessionRow(
        id_hash=session_hash(cookie),
        public_id=secrets.token_hex(8),
        account_id=account_id,
        csrf_token=secrets.token_urlsafe(32),
        created_at=now,
        last_seen_at=now,
    )
    session.add(row)
    session.flush()
    return cookie, LiveSession(account_id, row.public_id, row.csrf_token, now)


def load_session(
    session: Session,
    cookie: str,
    *,
    idle: timedelta,
    absolute: timedelta,
    now: datetime,
) -> LiveSession | None:
    """The live session of a cookie, touching its ``last_seen_at``; None if none.

    An expired session (idle or absolute timeout), or one of a disabled
    account, is deleted and gives None.
    """
    now = audit.resolve_now(now)
    if not isinstance(cookie, str) or not 1 <= len(cookie) <= 2 * SESSION_SECRET_BYTES:
        return None
    row = session.get(SessionRow, session_hash(cookie))
    if row is None:
        return None
    account = session.get(AccountRow, row.account_id)
    if (
        account is None
        or account.disabled
        or now - row.last_seen_at >= idle
        or now - row.created_at >= absolute
    ):
        session.delete(row)
        session.flush()
        return None
    row.last_seen_at = now
    session.flush()
    return LiveSession(row.account_id, row.public_id, row.csrf_token, row.created_at)


def delete_session(session: Session, cookie: str) -> bool:
    """End a session (logout); whether there was one."""
    if not isinstance(cookie, str) or not cookie:
        return False
    result = session.execute(delete(SessionRow).where(SessionRow.id_hash == session_hash(cookie)))
    return bool(getattr(result, "rowcount", 0))


def backoff_delay(failures: int) -> float:
    """Seconds to wait after ``failures`` consecutive failures (0: none)."""
    if failures <= BACKOFF_FREE_FAILURES:
        return 0.0
    exponent = min(failures - BACKOFF_FREE_FAILURES - 1, 32)
    return float(min(BACKOFF_BASE_SECONDS * 2**exponent, BACKOFF_CAP_SECONDS))


def backoff_wait(session: Session, keys: Sequence[bytes], *, now: datetime) -> float:
    """Seconds any of ``keys`` must still wait before the next attempt (0: none)."""
    now = audit.resolve_now(now)
    rows = session.scalars(select(LoginFailureRow).where(LoginFailureRow.key.in_(list(keys))))
    wait = 0.0
    for row in rows:
        wait = max(wait, (row.blocked_until - now).total_seconds())
    return wait


def record_failure(session: Session, keys: Sequence[bytes], *, now: datetime) -> float:
    """Count a failed login against each key; return the wait it now imposes."""
    now = audit.resolve_now(now)
    forget = now - timedelta(seconds=BACKOFF_FORGET_SECONDS)
    # Bounded table: rows of names and addresses long quiet go.
    session.execute(delete(LoginFailureRow).where(LoginFailureRow.last_failure_at < forget))
    wait = 0.0
    for key in sorted(set(keys)):
        row = session.get(LoginFailureRow, key)
        if row is None:
            row = LoginFailureRow(key=key, failures=0, last_failure_at=now, blocked_until=now)
            session.add(row)
        row.failures += 1
        row.last_failure_at = now
        delay = backoff_delay(row.failures)
        row.blocked_until = now + timedelta(seconds=delay)
        wait = max(wait, delay)
    session.flush()
    return wait


def clear_failures(session: Session, keys: Sequence[bytes]) -> None:
    """Forget the failures of ``keys`` (after a successful login)."""
    session.execute(delete(LoginFailureRow).where(LoginFailureRow.key.in_(list(keys))))
