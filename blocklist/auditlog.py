"""The hash-chained audit log (docs/architecture.md, "Audit log hash chain").

Every analyst and admin action is one :class:`AuditRecord`. A record is
serialised as canonical JSON of ``{"seq", "time", "actor", "action", "list",
"entry", "details"}`` (keys sorted, separators ``,`` and ``:``, UTF-8, no
NaN) and chained::

    hash = SHA-256(b"cleanfeed-audit/v1\\n" || prev_hash || json)

with :data:`AUDIT_ZERO` (32 zero bytes) as the head of an empty log. Each
version statement's ``audit`` line commits to the head, so rewriting history
after the fact breaks signed statements (DESIGN.md, "Accountability").

This module is pure: the server store appends records, the offline auditor
re-verifies them with :func:`verify_chain`. It is also the one home of the
log's vocabulary (:class:`Action`, :class:`Actor`): the store writes these
names, the auditor replays them and the tests build records with them.

Canonical JSON, precisely: objects with string keys sorted by code point,
strings, integers, ``true``/``false``/``null`` and arrays. Floats are
refused: their text form is not canonical across implementations, and no
record needs them. Non-ASCII text is written as UTF-8, not ``\\u`` escapes.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final

from blocklist.encoding import format_time
from blocklist.errors import BlocklistError, FormatError

__all__ = [
    "AUDIT_DOMAIN",
    "AUDIT_ZERO",
    "MAX_DETAILS_DEPTH",
    "Action",
    "Actor",
    "AuditChainError",
    "AuditRecord",
    "canonical_json",
    "chain_hash",
    "verify_chain",
]

#: Domain separation prefix of every record hash.
AUDIT_DOMAIN = b"cleanfeed-audit/v1\n"

#: Head of the empty audit log.
AUDIT_ZERO = bytes(32)

#: Deepest nesting accepted in ``details``: records are flat key/value maps
#: with at most a list of names inside; bounding depth prevents recursion
#: exhaustion on hostile input handed to the verifier.
MAX_DETAILS_DEPTH = 8


class Action:
    """The ``action`` names of audit records.

    They are hashed into the chain and committed to by signed statements, and
    the offline auditor replays the ``entry.*`` decisions by name: extend,
    never rename (a renamed action breaks every bundle already published).
    """

    # The list's own chain.
    LIST_CREATE: Final = "list.create"
    ENTRY_ADD: Final = "entry.add"
    ENTRY_APPROVE: Final = "entry.approve"
    ENTRY_REINSTATE: Final = "entry.reinstate"
    ENTRY_SCHEDULE_EXPIRY: Final = "entry.schedule_expiry"
    ENTRY_EXPIRE: Final = "entry.expire"
    ENTRY_PRUNE_PLAINTEXT: Final = "entry.prune_plaintext"
    ENTRY_RESTORE_PLAINTEXT: Final = "entry.restore_plaintext"
    PUBLISH_REQUEST: Final = "publish.request"
    RETENTION_SNAPSHOTS: Final = "retention.snapshots"
    WITNESS_ADD: Final = "witness.add"
    WITNESS_REMOVE: Final = "witness.remove"
    KEYRING_RENEW: Final = "keyring.renew"
    KEYRING_ROTATE: Final = "keyring.rotate"
    KEYRING_IMPORT: Final = "keyring.import"
    #: A list-chain record carrying the global chain's head (written by the
    #: publisher, so the statements commit to the global records).
    GLOBAL_HEAD: Final = "global.head"
    # --- re-verification (issue 16 item 4; blocklist.store.verification) ---
    #: Gone for ``k`` consecutive checks: proposed for expiry in the
    #: analysts' queue (no state change; an analyst expires it, or
    #: ``auto_expire_gone`` does with ``entry.expire`` by :data:`Actor.REVERIFY`).
    ENTRY_VERIFY_PROPOSE_EXPIRY: Final = "entry.verify_propose_expiry"
    # --- end re-verification ---
    # The global chain (no list).
    TOKEN_CREATE: Final = "token.create"  # noqa: S105 - an action name
    TOKEN_REVOKE: Final = "token.revoke"  # noqa: S105 - an action name
    TOKEN_RENAME: Final = "token.rename"  # noqa: S105 - an action name
    # --- persons' accounts (issue 15; global chain) ---
    #: Written once before the first account record: from here on the
    #: auditor checks that approvals come from distinct enabled persons.
    ACCOUNTS_START: Final = "accounts.start"
    ACCOUNT_CREATE: Final = "account.create"
    ACCOUNT_ENROL: Final = "account.enrol"
    #: ``details.status`` "granted" or "pending" (a second admin must confirm).
    ACCOUNT_GRANT: Final = "account.grant"
    ACCOUNT_GRANT_CONFIRM: Final = "account.grant_confirm"
    ACCOUNT_REVOKE_ROLE: Final = "account.revoke_role"
    ACCOUNT_DISABLE: Final = "account.disable"
    ACCOUNT_RESET: Final = "account.reset"
    #: An existing token attached to a person (migration path, issue 15 item 5).
    TOKEN_ATTACH: Final = "token.attach"  # noqa: S105 - an action name
    # --- end of persons' accounts ---

    # --- safeguards (issue 16; blocklist.store.guards) ---
    #: The global chain: an administrator guards a host / lifts the guard.
    GUARD_ADD: Final = "guard.add"
    GUARD_REMOVE: Final = "guard.remove"
    #: An eligible administrator's approval of a guarded entry, with its
    #: written justification.
    ENTRY_GUARD_APPROVE: Final = "entry.guard_approve"
    #: Hosting evidence recorded for an entry (addresses, countries, database).
    ENTRY_HOSTING: Final = "entry.hosting"
    #: Observed home-country hosting: the entry is proposed for referral.
    ENTRY_REFER_PROPOSE: Final = "entry.refer_propose"
    #: Analysts agreed: the entry is referred (takedown, police), never listed.
    ENTRY_REFER: Final = "entry.refer"
    #: An administrator overrode a referral proposal, with a reason.
    ENTRY_REFER_OVERRIDE: Final = "entry.refer_override"
    # --- end safeguards ---

    # --- appeals (issue 17; blocklist.store.appeals) ---------------------
    #: An appeal was filed (global chain: it may match no list). Details:
    #: ``{"appeal": id, "ref": block_ref or null, "url": bool}``; never the
    #: appellant's message, contact or URL text.
    APPEAL_FILE: Final = "appeal.file"
    #: An appeal was attached to a matching entry (the list's chain).
    APPEAL_ATTACH: Final = "appeal.attach"
    #: A reviewer decided an appeal on an entry (the list's chain):
    #: ``{"appeal", "hash", "outcome", "reason"}``.
    APPEAL_DECIDE: Final = "appeal.decide"
    #: The appellant's own data (message, contact, URL) was erased, by
    #: request or retention (global chain; the appeal's records stay).
    APPEAL_ERASE: Final = "appeal.erase"
    #: An entry taken off the list at once while its appeal is reviewed.
    ENTRY_SUSPEND: Final = "entry.suspend"

    #: Prefix of the actions about one entry (they name it in ``entry``).
    ENTRY_PREFIX: Final = "entry."


class Actor:
    """The ``actor`` names of automatic records (every one starts ``system:``).

    Human actors are account or token names; a ``system:`` actor never counts
    as an analyst's approval (DESIGN.md, four-eyes).
    """

    #: Prefix of every automatic (non-human) actor.
    SYSTEM_PREFIX: Final = "system:"
    #: Creates a list's canary entry with the list (blocklist.store.lists).
    CANARY: Final = "system:canary"
    #: Carries out expiries an analyst scheduled (blocklist.store.entries).
    EXPIRY: Final = "system:expiry"
    #: Data directory initialisation (signer.datadir, blocklist.store.lists).
    INIT: Final = "system:init"
    #: Keyring renewal, rotation and import (signer.keyring_ops).
    KEYS: Final = "system:keys"
    #: Tokens minted from the command line (blocklist.store.tokens).
    CLI: Final = "system:cli"
    #: Records global heads at publish time (blocklist.store.audit).
    PUBLISHER: Final = "system:publisher"
    #: Retention's pruning (blocklist.store.retention).
    RETENTION: Final = "system:retention"
    #: Files appeals and attaches them to entries (blocklist.store.appeals):
    #: the public, who file without a token, are nobody in particular.
    APPEALS: Final = "system:appeals"
    #: Records written by a schema migration (frozen in its migration file).
    MIGRATION: Final = "system:migration"
    #: Re-verification (issue 16 item 4): proposes expiries and, under
    #: ``auto_expire_gone``, expires entries with reason ``gone`` and the
    #: agreeing vantage points in the record (checked by the auditor).
    REVERIFY: Final = "system:reverify"

    @staticmethod
    def is_system(actor: str) -> bool:
        """Whether ``actor`` is an automatic actor (never an analyst)."""
        return actor.startswith(Actor.SYSTEM_PREFIX)


class AuditChainError(BlocklistError):
    """The audit log's hash chain does not verify (rewritten or reordered)."""

    code = "audit_chain_broken"


@dataclass(frozen=True, eq=True)
class AuditRecord:
    """One audit record as it is hashed.

    ``list_name`` and ``entry_id`` are written as the JSON keys ``list`` and
    ``entry``. ``time`` is hashed at second resolution (UTC RFC 3339 with
    ``Z``), so stores keep it truncated to seconds. ``hash`` is the claimed
    chain hash when the record was read back from a store or bundle; it is
    not part of the hashed content.
    """

    seq: int
    time: datetime
    actor: str
    action: str
    list_name: str | None
    entry_id: int | None
    details: Mapping[str, object] = field(default_factory=dict, hash=False)
    hash: bytes | None = None

    def to_json(self) -> bytes:
        """Return the canonical JSON bytes that are hashed.

        Raises:
            FormatError: a value that has no canonical JSON form (floats,
                non-string keys, unpaired surrogates, naive times).
        """
        if self.time.tzinfo is None:
            raise FormatError("audit record time must be timezone-aware")
        obj: dict[str, object] = {
            "seq": self.seq,
            "time": format_time(self.time),
            "actor": self.actor,
            "action": self.action,
            "list": self.list_name,
            "entry": self.entry_id,
            "details": dict(self.details),
        }
        return canonical_json(obj)


def _check_json(value: object, depth: int) -> None:
    if depth > MAX_DETAILS_DEPTH:
        raise FormatError("audit details nest too deeply")
    if value is None or isinstance(value, (str, bool)):
        return
    if isinstance(value, int):
        return
    if isinstance(value, float):
        raise FormatError("audit details may not contain floats (no canonical form)")
    if isinstance(value, (list, tuple)):
        for item in value:
            _check_json(item, depth + 1)
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise FormatError("audit details keys must be strings")
            _check_json(item, depth + 1)
        return
    raise FormatError(f"audit details hold a non-JSON value of type {type(value).__name__}")


def canonical_json(obj: Mapping[str, object]) -> bytes:
    """Serialise ``obj`` as canonical JSON (sorted keys, no spaces, UTF-8).

    Raises:
        FormatError: floats, non-string keys, non-JSON types, unpaired
            surrogates, or nesting deeper than :data:`MAX_DETAILS_DEPTH`.
    """
    _check_json(obj, 0)
    try:
        text = json.dumps(
            obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        )
        return text.encode("utf-8")
    except (ValueError, UnicodeEncodeError) as e:
        raise FormatError(f"audit record has no canonical JSON form: {e}") from e


def chain_hash(prev: bytes, record: AuditRecord) -> bytes:
    """Return ``SHA-256(AUDIT_DOMAIN || prev || canonical_json(record))``.

    Raises:
        FormatError: ``prev`` is not 32 bytes or the record has no canonical
            JSON form.
    """
    if len(prev) != 32:
        raise FormatError("previous audit hash must be 32 bytes")
    return hashlib.sha256(AUDIT_DOMAIN + prev + record.to_json()).digest()


def verify_chain(
    records: Iterable[AuditRecord], *, prev: bytes = AUDIT_ZERO, first_seq: int = 1
) -> bytes:
    """Recompute the chain over ``records`` and return its head.

    Sequence numbers must run ``first_seq, first_seq + 1, ...`` without gaps;
    each record that carries a claimed ``hash`` must match the recomputed
    one. Pass ``prev``/``first_seq`` to continue from a verified head.

    Raises:
        AuditChainError: a gap or reordering in ``seq``, or a hash mismatch
            (a record was altered, inserted or removed).
    """
    head = prev
    expected = first_seq
    for record in records:
        if record.seq != expected:
            raise AuditChainError(f"audit seq {record.seq} where {expected} was expected")
        try:
            head = chain_hash(head, record)
        except FormatError as e:
            raise AuditChainError(f"audit record {record.seq} is not canonical: {e}") from e
        if record.hash is not None and record.hash != head:
            raise AuditChainError(f"audit record {record.seq} does not match its chain hash")
        expected += 1
    return head
