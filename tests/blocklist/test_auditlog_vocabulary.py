"""The audit log's vocabulary is a wire format: its names never change.

Action and actor names are hashed into the audit chain and committed to by
signed statements, and the offline auditor replays ``entry.*`` decisions by
name, so every bundle already published depends on these exact strings.
This is the one place outside :mod:`blocklist.auditlog` that spells them
out: everything else (store, auditor, tests) uses the constants.
"""

from __future__ import annotations

from blocklist.auditlog import Action, Actor

#: The published names (docs/architecture.md, "Audit log hash chain").
ACTIONS = {
    "LIST_CREATE": "list.create",
    "ENTRY_ADD": "entry.add",
    "ENTRY_APPROVE": "entry.approve",
    "ENTRY_REINSTATE": "entry.reinstate",
    "ENTRY_SCHEDULE_EXPIRY": "entry.schedule_expiry",
    "ENTRY_EXPIRE": "entry.expire",
    "ENTRY_PRUNE_PLAINTEXT": "entry.prune_plaintext",
    "ENTRY_RESTORE_PLAINTEXT": "entry.restore_plaintext",
    "PUBLISH_REQUEST": "publish.request",
    "RETENTION_SNAPSHOTS": "retention.snapshots",
    "WITNESS_ADD": "witness.add",
    "WITNESS_REMOVE": "witness.remove",
    "KEYRING_RENEW": "keyring.renew",
    "KEYRING_ROTATE": "keyring.rotate",
    "KEYRING_IMPORT": "keyring.import",
    "GLOBAL_HEAD": "global.head",
    "TOKEN_CREATE": "token.create",
    "TOKEN_REVOKE": "token.revoke",
    "TOKEN_RENAME": "token.rename",
    # re-verification (issue 16 item 4)
    "ENTRY_VERIFY_PROPOSE_EXPIRY": "entry.verify_propose_expiry",
    # --- persons' accounts (issue 15) ---
    "ACCOUNTS_START": "accounts.start",
    "ACCOUNT_CREATE": "account.create",
    "ACCOUNT_ENROL": "account.enrol",
    "ACCOUNT_GRANT": "account.grant",
    "ACCOUNT_GRANT_CONFIRM": "account.grant_confirm",
    "ACCOUNT_REVOKE_ROLE": "account.revoke_role",
    "ACCOUNT_DISABLE": "account.disable",
    "ACCOUNT_RESET": "account.reset",
    "TOKEN_ATTACH": "token.attach",
    # --- end of persons' accounts ---
    # Safeguards (issue 16).
    "GUARD_ADD": "guard.add",
    "GUARD_REMOVE": "guard.remove",
    "ENTRY_GUARD_APPROVE": "entry.guard_approve",
    "ENTRY_HOSTING": "entry.hosting",
    "ENTRY_REFER_PROPOSE": "entry.refer_propose",
    "ENTRY_REFER": "entry.refer",
    "ENTRY_REFER_OVERRIDE": "entry.refer_override",
    # appeals (issue 17)
    "APPEAL_FILE": "appeal.file",
    "APPEAL_ATTACH": "appeal.attach",
    "APPEAL_DECIDE": "appeal.decide",
    "APPEAL_ERASE": "appeal.erase",
    "ENTRY_SUSPEND": "entry.suspend",
}

ACTORS = {
    "CANARY": "system:canary",
    "EXPIRY": "system:expiry",
    "INIT": "system:init",
    "KEYS": "system:keys",
    "CLI": "system:cli",
    "PUBLISHER": "system:publisher",
    "RETENTION": "system:retention",
    "MIGRATION": "system:migration",
    # re-verification (issue 16 item 4)
    "REVERIFY": "system:reverify",
    # appeals (issue 17)
    "APPEALS": "system:appeals",
}


def _names(cls: type, prefix_name: str) -> dict[str, str]:
    return {
        k: v
        for k, v in vars(cls).items()
        if k.isupper() and isinstance(v, str) and k != prefix_name
    }


def test_action_names_are_the_published_ones() -> None:
    assert _names(Action, "ENTRY_PREFIX") == ACTIONS
    assert Action.ENTRY_PREFIX == "entry."
    entry_actions = {v for v in ACTIONS.values() if v.startswith(Action.ENTRY_PREFIX)}
    # 7 before part 2; re-verification added one, safeguards five (issue
    # 16), appeals one (entry.suspend, issue 17)
    assert len(entry_actions) == 7 + 1 + 5 + 1


def test_actor_names_are_the_published_ones() -> None:
    assert _names(Actor, "SYSTEM_PREFIX") == ACTORS
    assert Actor.SYSTEM_PREFIX == "system:"
    assert all(Actor.is_system(v) for v in ACTORS.values())
    assert not Actor.is_system("alice")
    assert not Actor.is_system("system")  # the colon is part of the prefix
