"""Building blocks for tests of persons' accounts (issue 15).

Shared by the API, console and audit suites: a settable wall clock for
``ctx.wall_clock``, TOTP codes at a given time, and :func:`enrolled_person`,
which creates an account and enrols it as the person would (through the
same functions the console's enrolment page calls).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pyotp

from api import accounts
from api.context import AppContext
from blocklist.store import accounts as store_accounts

__all__ = [
    "PASSWORD",
    "T0",
    "Clock",
    "Person",
    "code_at",
    "enrolled_person",
    "login_at",
]

#: A password that passes the length rule (test data, not a real secret).
PASSWORD = "correct horse battery staple"

#: A fixed start time, aligned to a TOTP step boundary.
T0 = datetime(2026, 12, 1, 9, 0, 0, tzinfo=UTC)


class Clock:
    """A wall clock tests move by hand (assign to ``ctx.wall_clock``)."""

    def __init__(self, start: datetime = T0) -> None:
        """Start at ``start``."""
        self.now = start

    def __call__(self) -> datetime:
        """The current fake time."""
        return self.now

    def advance(self, **delta: float) -> datetime:
        """Move forward by ``timedelta(**delta)``; return the new time."""
        self.now += timedelta(**delta)
        return self.now


def code_at(secret: str, when: datetime) -> str:
    """The TOTP code of ``secret`` at ``when`` (RFC 6238, 30 s, 6 digits)."""
    return pyotp.TOTP(secret).at(when)


@dataclass(frozen=True)
class Person:
    """An enrolled person: account id, name, TOTP secret."""

    account_id: int
    name: str
    secret: str


def enrolled_person(
    ctx: AppContext,
    name: str,
    grants: Sequence[tuple[str, str]],
    *,
    clock: Clock | None = None,
    actor: str = "test",
) -> Person:
    """Create an account with ``(role, list or '*')`` grants and enrol it.

    ``clock`` (if given) becomes ``ctx.wall_clock`` and moves one TOTP step
    past enrolment, so the first login's code is a fresh one.
    """
    if clock is not None:
        ctx.wall_clock = clock
    now = ctx.wall_clock()
    with ctx.db.transaction() as session:
        token, row, _ = store_accounts.create_account(
            session,
            name=name,
            grants=[store_accounts.RoleGrant(role, lst) for role, lst in grants],
            actor=actor,
            now=now,
        )
        account_id = row.id
    info = accounts.enrolment_info(ctx, token)
    accounts.complete_enrolment(ctx, token, PASSWORD, code_at(info.totp_secret, now))
    if clock is not None:
        clock.advance(seconds=store_accounts.TOTP_STEP_SECONDS)
    return Person(account_id, name, info.totp_secret)


def login_at(
    ctx: AppContext, person: Person, clock: Clock, client_addr: str = "192.0.2.10"
) -> tuple[str, accounts.SessionPerson]:
    """Log ``person`` in with the code of the clock's time, then step the clock past it."""
    out = accounts.login(ctx, person.name, PASSWORD, code_at(person.secret, clock.now), client_addr)
    clock.advance(seconds=store_accounts.TOTP_STEP_SECONDS)
    return out
