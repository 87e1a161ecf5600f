"""Four-eyes: who may approve an entry, and when it counts as approved.

The rules (DESIGN.md, "Four-eyes"), stated once here:

1. Only analysts approve (:data:`APPROVER_ROLE`); administrators never do,
   so an administrator token cannot publish an entry on its own.
2. Adding an entry opens approval round 1; reinstating it opens the next
   round. The analyst who opened a round (its *opener*) may not approve it.
3. An analyst approves a round at most once.

"The analyst" is an identity (:func:`identity_of`, issue 15): the person
behind a token or console session, so two tokens of one person are one
analyst; a token attached to no person is identified by its name.
4. A round is approved once its approvals reach the list's
   ``approvals_required``, which is one of :data:`APPROVALS_REQUIRED_CHOICES`.
5. Taking an entry off needs no approval: one analyst suffices, because a
   wrong block must come off fast (the reason is logged).

This module is pure. The store enforces the rules inside the write
transaction (:mod:`blocklist.store.entries` and
:mod:`blocklist.store.imports`, mapping each :class:`Refusal` to its
error with a stable code); the offline auditor can re-count them from the
audit log with the same functions.
"""

from __future__ import annotations

import enum
from collections.abc import Collection
from typing import Final

__all__ = [
    "ADMIN_ROLE",
    "APPROVALS_REQUIRED_CHOICES",
    "APPROVER_ROLE",
    "Refusal",
    "identity_of",
    "is_approved",
    "reviewer_refusal",
    "role_refusal",
    "round_refusal",
    "valid_approvals_required",
]

#: The one role whose approvals count.
APPROVER_ROLE: Final = "analyst"

#: The role refused outright (rule 1), with its own error code.
ADMIN_ROLE: Final = "admin"

#: The values a list's ``approvals_required`` may take (rule 4).
APPROVALS_REQUIRED_CHOICES: Final = (1, 2)


class Refusal(enum.Enum):
    """Why an approval does not count."""

    #: Rule 1: an administrator tried to approve.
    ADMIN = "admin"
    #: Rule 1: a role other than analyst or admin tried to approve.
    NOT_ANALYST = "not_analyst"
    #: Rule 2: the opener of the round tried to approve it.
    OWN_ROUND = "own_round"
    #: Rule 3: the analyst already approved this round.
    ALREADY_APPROVED = "already_approved"


def identity_of(actor: str, person: int | None) -> str:
    """The identity separation of duties compares: the person, else the token name.

    Issue 15 item 4: one person never counts twice, so two tokens (or a
    token and a console session) of one person are one identity. A token
    attached to no person keeps today's rule: its name is its identity.
    Both forms carry a prefix, so no token name can pass for a person.
    Every rule that asks "the same person?" (four-eyes here; guard approval
    and appeal review) calls this one function.
    """
    if person is not None:
        return f"person:{person}"
    return f"token:{actor}"


def role_refusal(actor_role: str) -> Refusal | None:
    """Why ``actor_role`` may not approve at all (rule 1), or None if it may."""
    if actor_role == ADMIN_ROLE:
        return Refusal.ADMIN
    if actor_role != APPROVER_ROLE:
        return Refusal.NOT_ANALYST
    return None


def round_refusal(actor: str, *, opener: str, approvers: Collection[str]) -> Refusal | None:
    """Why ``actor``'s approval of a round does not count (rules 2 and 3), or None.

    Args:
        actor: the approving analyst's identity (:func:`identity_of`).
        opener: the identity of the analyst who opened the round (added or
            reinstated the entry).
        approvers: the identities of the analysts who already approved this round.
    """
    if actor == opener:
        return Refusal.OWN_ROUND
    if actor in approvers:
        return Refusal.ALREADY_APPROVED
    return None


def reviewer_refusal(
    actor: str, openers: Collection[str], approvers: Collection[str]
) -> str | None:
    """Why ``actor`` may not review an appeal against an entry, or None if they may.

    DESIGN.md part 2, "Appeals": the reviewer is a person who neither
    created nor approved the entry. ``actor`` is the reviewer's identity,
    ``openers`` the identities that opened a round of it (added or
    reinstated it), ``approvers`` every identity that approved any round;
    identities are :func:`identity_of` values in the store (persons, issue
    15) and actor names in the offline replay. The store enforces this when
    a decision is made; the auditor re-checks it from the audit log with
    this same function.
    """
    if actor in openers:
        return "created or reinstated the entry"
    if actor in approvers:
        return "approved the entry"
    return None


def is_approved(approvals: int, required: int) -> bool:
    """Whether ``approvals`` distinct counted approvals approve a round (rule 4)."""
    return approvals >= required


def valid_approvals_required(value: object) -> bool:
    """Whether ``value`` is an allowed ``approvals_required`` (an int, not a bool)."""
    return not isinstance(value, bool) and value in APPROVALS_REQUIRED_CHOICES
