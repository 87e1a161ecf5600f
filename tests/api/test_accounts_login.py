"""Persons' login, sessions and enrolment through :mod:`api.accounts` (issue 15 items 1-3).

Every time comes from a hand-moved clock (``ctx.wall_clock``): idle expiry
and back-off are tested without sleeping.
"""

from __future__ import annotations

import os
import stat
from datetime import timedelta

import pytest
from sqlalchemy import select
from starlette.responses import Response
from support.accounts_testing import (
    PASSWORD,
    Clock,
    code_at,
    enrolled_person,
    login_at,
)
from support.api_testing import MAIN, Deployment

from api import accounts
from api.context import AppContext
from api.settings import SettingsError, load_settings
from blocklist.store import accounts as store_accounts
from blocklist.store import sessions as store_sessions
from blocklist.store.errors import AccountSecretsUnavailable, PermissionDenied
from blocklist.store.models import AccountRow, LoginFailureRow, SessionRow


@pytest.fixture
def ctx(deployment: Deployment) -> AppContext:
    c: AppContext = deployment.app.state.cf
    c.wall_clock = Clock()
    return c


@pytest.fixture
def clock(ctx: AppContext) -> Clock:
    assert isinstance(ctx.wall_clock, Clock)
    return ctx.wall_clock


def _new_account(ctx: AppContext, name: str = "ana", role: str = "analyst") -> str:
    with ctx.db.transaction() as s:
        token, _, _ = store_accounts.create_account(
            s,
            name=name,
            grants=[store_accounts.RoleGrant(role, "*")],
            actor="test",
            now=ctx.wall_clock(),
        )
    return token


# --- enrolment ----------------------------------------------------------------


def test_enrolment_sets_both_factors_and_the_link_is_used_up(ctx: AppContext, clock: Clock) -> None:
    token = _new_account(ctx)
    info = accounts.enrolment_info(ctx, token)
    assert info.name == "ana"
    assert info.provisioning_uri.startswith("otpauth://totp/cleanfeed:ana?")
    assert f"secret={info.totp_secret}" in info.provisioning_uri
    # Reloading the page shows the same secret (not yet confirmed).
    assert accounts.enrolment_info(ctx, token).totp_secret == info.totp_secret
    with ctx.db.read() as s:
        row = store_accounts.get_account_by_name(s, "ana")
        # Sealed at rest: the secret's text is not in the column.
        assert row.totp_secret is not None
        assert info.totp_secret.encode() not in row.totp_secret
    accounts.complete_enrolment(ctx, token, PASSWORD, code_at(info.totp_secret, clock.now))
    with ctx.db.read() as s:
        row = store_accounts.get_account_by_name(s, "ana")
        assert row.password_hash is not None
        assert row.password_hash.startswith("$argon2id$")
        assert PASSWORD not in row.password_hash
        assert row.enrol_token_hash is None
    with pytest.raises(accounts.EnrolmentInvalid) as e:
        accounts.enrolment_info(ctx, token)
    assert e.value.code == "enrolment_invalid"
    with pytest.raises(accounts.EnrolmentInvalid) as e:
        accounts.complete_enrolment(ctx, token, PASSWORD, code_at(info.totp_secret, clock.now))
    assert e.value.code == "enrolment_invalid"


def test_enrolment_refuses_weak_password_wrong_code_and_expired_link(
    ctx: AppContext, clock: Clock
) -> None:
    token = _new_account(ctx)
    info = accounts.enrolment_info(ctx, token)
    code = code_at(info.totp_secret, clock.now)
    with pytest.raises(accounts.EnrolmentInvalid) as e:
        accounts.complete_enrolment(ctx, token, "short", code)
    assert e.value.code == "weak_password"
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    with pytest.raises(accounts.EnrolmentInvalid) as e:
        accounts.complete_enrolment(ctx, token, PASSWORD, wrong)
    assert e.value.code == "totp_invalid"
    with ctx.db.read() as s:
        assert store_accounts.get_account_by_name(s, "ana").password_hash is None
    clock.advance(hours=store_accounts.DEFAULT_ENROL_HOURS, seconds=1)
    with pytest.raises(accounts.EnrolmentInvalid) as e:
        accounts.complete_enrolment(ctx, token, PASSWORD, code_at(info.totp_secret, clock.now))
    assert e.value.code == "enrolment_invalid"
    with pytest.raises(accounts.EnrolmentInvalid):
        accounts.enrolment_info(ctx, "not-a-link")


# --- login -------------------------------------------------------------------


def test_login_gives_a_session_with_roles_and_a_fresh_id_each_time(
    ctx: AppContext, clock: Clock
) -> None:
    ana = enrolled_person(ctx, "ana", [("analyst", MAIN)], clock=clock)
    cookie, person = login_at(ctx, ana, clock)
    assert person.name == "ana"
    assert person.roles == {MAIN: frozenset({"analyst"})}
    assert accounts.load_session(ctx, cookie) == person
    # Session fixation: logging in again (presenting the old cookie) gives a
    # new id and ends the old one.
    again, person2 = accounts.login(
        ctx, "ana", PASSWORD, code_at(ana.secret, clock.now), "192.0.2.10", previous_cookie=cookie
    )
    assert again != cookie
    assert person2.session_id != person.session_id
    assert person2.csrf_token != person.csrf_token
    assert accounts.load_session(ctx, cookie) is None
    assert accounts.load_session(ctx, again) is not None
    # Only the cookie's hash is stored.
    with ctx.db.read() as s:
        stored = list(s.scalars(select(SessionRow.id_hash)))
    assert again.encode() not in stored
    assert store_sessions.session_hash(again) in stored


@pytest.mark.parametrize("what", ["password", "code", "name", "unenrolled"])
def test_a_wrong_factor_or_name_gets_one_answer(ctx: AppContext, clock: Clock, what: str) -> None:
    ana = enrolled_person(ctx, "ana", [("analyst", "*")], clock=clock)
    _new_account(ctx, "newbie")
    code = code_at(ana.secret, clock.now)
    args = {
        "password": ("ana", PASSWORD + "x", code),
        "code": ("ana", PASSWORD, f"{(int(code) + 1) % 1_000_000:06d}"),
        "name": ("nobody", PASSWORD, code),
        "unenrolled": ("newbie", PASSWORD, code),
    }[what]
    with pytest.raises(accounts.LoginRefused) as e:
        accounts.login(ctx, *args, "192.0.2.10")
    assert e.value.code == "bad_credentials"
    with ctx.db.read() as s:
        assert s.scalars(select(SessionRow)).all() == []


def test_a_totp_code_is_accepted_once(ctx: AppContext, clock: Clock) -> None:
    ana = enrolled_person(ctx, "ana", [("analyst", "*")], clock=clock)
    code = code_at(ana.secret, clock.now)
    cookie, _ = accounts.login(ctx, "ana", PASSWORD, code, "192.0.2.10")
    accounts.logout(ctx, cookie)
    # RFC 6238 section 5.2: the same code (same time-step) is refused ...
    with pytest.raises(accounts.LoginRefused) as e:
        accounts.login(ctx, "ana", PASSWORD, code, "192.0.2.10")
    assert e.value.code == "totp_reused"
    # ... and so is the previous step's code, still inside the drift window.
    earlier = code_at(ana.secret, clock.now - timedelta(seconds=30))
    with pytest.raises(accounts.LoginRefused) as e:
        accounts.login(ctx, "ana", PASSWORD, earlier, "192.0.2.10")
    assert e.value.code in ("totp_reused", "bad_credentials")
    clock.advance(seconds=30)
    accounts.login(ctx, "ana", PASSWORD, code_at(ana.secret, clock.now), "192.0.2.10")


def test_the_enrolment_code_cannot_log_in(ctx: AppContext, clock: Clock) -> None:
    token = _new_account(ctx)
    info = accounts.enrolment_info(ctx, token)
    code = code_at(info.totp_secret, clock.now)
    accounts.complete_enrolment(ctx, token, PASSWORD, code)
    with pytest.raises(accounts.LoginRefused) as e:
        accounts.login(ctx, "ana", PASSWORD, code, "192.0.2.10")
    assert e.value.code == "totp_reused"


def test_a_disabled_account_cannot_log_in_and_its_sessions_end(
    ctx: AppContext, clock: Clock
) -> None:
    ana = enrolled_person(ctx, "ana", [("analyst", "*")], clock=clock)
    cookie, _ = login_at(ctx, ana, clock)
    with ctx.db.transaction() as s:
        store_accounts.disable_account(s, "ana", actor="test", now=clock.now)
    assert accounts.load_session(ctx, cookie) is None
    with pytest.raises(accounts.LoginRefused) as e:
        accounts.login(ctx, "ana", PASSWORD, code_at(ana.secret, clock.now), "192.0.2.10")
    assert e.value.code == "account_disabled"


# --- sessions ----------------------------------------------------------------


def test_idle_timeout_counts_from_the_last_request(ctx: AppContext, clock: Clock) -> None:
    ana = enrolled_person(ctx, "ana", [("analyst", "*")], clock=clock)
    cookie, _ = login_at(ctx, ana, clock)
    for _ in range(3):  # busy: well past 30 minutes in total, never idle that long
        clock.advance(minutes=29)
        assert accounts.load_session(ctx, cookie) is not None
    clock.advance(minutes=30)
    assert accounts.load_session(ctx, cookie) is None
    with ctx.db.read() as s:  # expired sessions are deleted, not just ignored
        assert s.scalars(select(SessionRow)).all() == []


def test_absolute_timeout_ends_even_a_busy_session(ctx: AppContext, clock: Clock) -> None:
    ana = enrolled_person(ctx, "ana", [("analyst", "*")], clock=clock)
    start = clock.now
    cookie, _ = login_at(ctx, ana, clock)
    while clock.now - start < timedelta(hours=11, minutes=30):
        clock.advance(minutes=20)
        assert accounts.load_session(ctx, cookie) is not None
    clock.advance(minutes=20)
    assert accounts.load_session(ctx, cookie) is None


def test_logout_ends_the_session_server_side(ctx: AppContext, clock: Clock) -> None:
    ana = enrolled_person(ctx, "ana", [("analyst", "*")], clock=clock)
    cookie, _ = login_at(ctx, ana, clock)
    accounts.logout(ctx, cookie)
    assert accounts.load_session(ctx, cookie) is None
    assert accounts.load_session(ctx, "forged-cookie") is None
    assert accounts.load_session(ctx, None) is None


def test_csrf_token_is_checked(ctx: AppContext, clock: Clock) -> None:
    ana = enrolled_person(ctx, "ana", [("analyst", "*")], clock=clock)
    _, person = login_at(ctx, ana, clock)
    assert accounts.check_csrf(person, person.csrf_token)
    assert not accounts.check_csrf(person, person.csrf_token + "x")
    assert not accounts.check_csrf(person, "")
    assert not accounts.check_csrf(person, None)


def test_session_cookie_attributes() -> None:
    response = Response()
    accounts.set_session_cookie(response, "v", secure=True)
    header = response.headers["set-cookie"]
    assert header.startswith(f"{accounts.SESSION_COOKIE}=v;")
    for attribute in ("HttpOnly", "Path=/", "SameSite=strict", "Secure"):
        assert attribute in header
    assert "Max-Age" not in header
    plain = Response()
    accounts.set_session_cookie(plain, "v", secure=False)
    assert "Secure" not in plain.headers["set-cookie"]
    cleared = Response()
    accounts.clear_session_cookie(cleared)
    assert 'cf_session="";' in cleared.headers["set-cookie"]
    assert "Max-Age=0" in cleared.headers["set-cookie"]


def test_session_principal_carries_the_person(ctx: AppContext, clock: Clock) -> None:
    ana = enrolled_person(ctx, "ana", [("analyst", MAIN), ("auditor", "*")], clock=clock)
    _, person = login_at(ctx, ana, clock)
    p = person.principal("analyst", MAIN)
    assert (p.account_id, p.name, p.role, p.lists) == (ana.account_id, "ana", "analyst", {MAIN})
    assert p.token_id == accounts.NO_TOKEN_ID
    with pytest.raises(PermissionDenied):
        person.principal("analyst", "other")
    with pytest.raises(PermissionDenied):
        person.principal("admin", None)


# --- back-off ----------------------------------------------------------------


def _fail(ctx: AppContext, name: str, addr: str) -> None:
    with pytest.raises(accounts.LoginRefused):
        accounts.login(ctx, name, "wrong password!", "000000", addr)


def test_failed_logins_back_off_per_account(ctx: AppContext, clock: Clock) -> None:
    ana = enrolled_person(ctx, "ana", [("analyst", "*")], clock=clock)
    for i in range(store_sessions.BACKOFF_FREE_FAILURES + 1):
        _fail(ctx, "ana", f"192.0.2.{i + 1}")  # a new address each time
    # Correct credentials are refused while the account waits.
    with pytest.raises(accounts.LoginBackoff) as e:
        accounts.login(ctx, "ana", PASSWORD, code_at(ana.secret, clock.now), "198.51.100.1")
    assert 0 < e.value.retry_after <= store_sessions.BACKOFF_BASE_SECONDS
    clock.advance(seconds=store_sessions.BACKOFF_BASE_SECONDS)
    cookie, _ = accounts.login(ctx, "ana", PASSWORD, code_at(ana.secret, clock.now), "198.51.100.1")
    assert accounts.load_session(ctx, cookie) is not None


def test_failed_logins_back_off_per_address_and_grow(ctx: AppContext, clock: Clock) -> None:
    ana = enrolled_person(ctx, "ana", [("analyst", "*")], clock=clock)
    addr = "203.0.113.9"
    mac = accounts.account_secrets(ctx).mac("address", addr)
    waits = []
    for i in range(store_sessions.BACKOFF_FREE_FAILURES + 3):
        _fail(ctx, f"name{i}", addr)  # a new name each time: only the address repeats
        with ctx.db.read() as s:
            waits.append(store_sessions.backoff_wait(s, [mac], now=clock.now))
        if waits[-1] > 0:
            # Even the right credentials wait, from this address.
            with pytest.raises(accounts.LoginBackoff):
                accounts.login(ctx, "ana", PASSWORD, code_at(ana.secret, clock.now), addr)
        clock.advance(seconds=waits[-1])
    assert waits[: store_sessions.BACKOFF_FREE_FAILURES] == [0.0] * 3
    assert waits[3:] == [2.0, 4.0, 8.0]  # exponential
    assert store_sessions.backoff_delay(10_000) == store_sessions.BACKOFF_CAP_SECONDS
    # Another address is not held back by this one.
    accounts.login(ctx, "ana", PASSWORD, code_at(ana.secret, clock.now), "198.51.100.2")
    # Privacy: the address is stored only as a keyed hash.
    with ctx.db.read() as s:
        keys = list(s.scalars(select(LoginFailureRow.key)))
    assert mac in keys
    assert all(addr.encode() not in k and len(k) == 32 for k in keys)


# --- the key file ------------------------------------------------------------


def test_secrets_key_file_is_created_private_and_refused_when_readable(
    ctx: AppContext, deployment: Deployment
) -> None:
    path = deployment.settings.account_secrets_file
    assert not path.exists()
    first = accounts.account_secrets(ctx)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    sealed = first.seal("ABC")
    ctx.account_secrets = None
    assert accounts.account_secrets(ctx).open(sealed) == "ABC"  # same key reloaded
    os.chmod(path, 0o640)
    ctx.account_secrets = None
    with pytest.raises(AccountSecretsUnavailable, match="chmod 600"):
        accounts.account_secrets(ctx)


def test_enrol_url_uses_the_public_url(deployment: Deployment) -> None:
    assert accounts.enrol_url(deployment.settings, "abc").endswith("/console/enrol/abc")
    custom = load_settings(deployment.data_dir, public_url="https://hotline.example.org/")
    assert accounts.enrol_url(custom, "abc") == "https://hotline.example.org/console/enrol/abc"
    for bad in ("ftp://hotline.example.org", "hotline.example.org", "https://h.example.org/?x=1"):
        with pytest.raises(SettingsError, match="public_url"):
            load_settings(deployment.data_dir, public_url=bad)


def test_accounts_are_recorded_without_secrets(ctx: AppContext, clock: Clock) -> None:
    enrolled_person(ctx, "ana", [("analyst", "*")], clock=clock)
    with ctx.db.read() as s:
        row = s.scalar(select(AccountRow))
        assert row is not None
        assert row.enrolled_at is not None
