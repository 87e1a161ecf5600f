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

This package is the one import path; its private modules hold one concept
each:

| module             | holds                                                      |
|--------------------|------------------------------------------------------------|
| ``_persons``       | lookups, roles held, the administrators' view              |
| ``_factors``       | the login factors: password hashes, TOTP, the secrets key  |
| ``_grants``        | grants, pending a second admin; revocation                 |
| ``_lifecycle``     | creation, the enrolment link, reset, disabling             |
| ``_person_tokens`` | attaching a token to a person, minting a person's token    |

Console sessions and failed-login back-off are :mod:`blocklist.store.sessions`.
"""

from __future__ import annotations

from blocklist.store.accounts._factors import (
    MAX_PASSWORD_CHARS,
    MIN_PASSWORD_CHARS,
    SECRETS_KEY_BYTES,
    TOTP_DIGITS,
    TOTP_ISSUER,
    TOTP_STEP_SECONDS,
    TOTP_WINDOW,
    AccountSecrets,
    check_password,
    match_totp,
)
from blocklist.store.accounts._grants import (
    CONFIRMED_ROLES,
    GrantResult,
    confirm_grant,
    grant_role,
    revoke_role,
)
from blocklist.store.accounts._lifecycle import (
    DEFAULT_ENROL_HOURS,
    ENROL_TOKEN_BYTES,
    MAX_ENROL_HOURS,
    complete_enrolment,
    create_account,
    disable_account,
    enrolment_account,
    enrolment_secret,
    reset_account,
)
from blocklist.store.accounts._person_tokens import attach_token, mint_person_token
from blocklist.store.accounts._persons import (
    ALL_LISTS,
    EVERY_LIST,
    AccountView,
    RoleGrant,
    account_view,
    enabled_admin_count,
    get_account,
    get_account_by_name,
    grants_for,
    list_accounts,
    mapping_of,
    person_holds,
    roles_of,
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
