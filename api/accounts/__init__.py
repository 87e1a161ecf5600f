"""Persons' accounts for the API and the console (issue 15).

The console's routes build on this interface: :func:`login`,
:func:`load_session`, :func:`logout`, :func:`check_csrf`, enrolment
(:func:`enrolment_info`, :func:`complete_enrolment`), tokens of a person
(:func:`mint_person_token`) and the cookie helpers. Administration (create,
grant, confirm, disable, reset, attach) is in :mod:`api.accounts.admin`
(``/v1/admin/accounts``) and ``cleanfeed account``.
"""

from __future__ import annotations

from api.accounts.core import (
    CSRF_FIELD,
    NO_TOKEN_ID,
    SESSION_COOKIE,
    EnrolmentInfo,
    EnrolmentInvalid,
    LoginBackoff,
    LoginRefused,
    SessionPerson,
    account_secrets,
    check_csrf,
    clear_session_cookie,
    complete_enrolment,
    enrol_url,
    enrolment_info,
    load_session,
    login,
    logout,
    mint_person_token,
    set_session_cookie,
)

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
