"""Errors of the persistence layer and its domain services.

Each derives from :class:`blocklist.errors.BlocklistError` and carries a
stable ``code`` that the API maps to problem+json:

| error | code | meaning |
|---|---|---|
| StoreError | store_error | root of this module |
| NotFound | not_found | no such list, entry, token, version |
| Conflict | conflict | clashes with existing data (name taken, version) |
| DuplicateApproval | duplicate_approval | the analyst already approved this round |
| TokenNameTaken | token_name_taken | a token not revoked has this name for this role and list |
| PermissionDenied | permission_denied | the actor may not do this |
| SelfApproval | self_approval | approving one's own entry or reinstatement |
| WitnessNotRegistered | witness_not_registered | a cosignature by an unregistered key |
| AdminCannotApprove | admin_cannot_approve | four-eyes counts analysts only |
| InvalidState | invalid_state | not allowed in the entry's/list's current state |
| InvalidField | invalid_field | a field is malformed, empty or over its cap |
| LimitExceeded | limit_exceeded | a page or batch larger than allowed |
| BulkRejected | bulk_rejected | all-or-nothing bulk add with failing rows |
| StoreUnavailable | store_unavailable | the database cannot be reached |
| BelowThreshold | hits_below_threshold | a posted hit count below the server's k |
| UnknownBlockRef | unknown_block_ref | a posted block_ref names no published entry |
| WeekNotOver | week_not_over | hit counts of an ISO week not yet ended |
| AccountNameTaken | account_name_taken | an account with this name exists |
| EnrolmentInvalid | enrolment_invalid | an enrolment link unknown, used, expired or disabled |
| WeakPassword | weak_password | a password shorter than the minimum (or too long) |
| TotpInvalid | totp_invalid | a TOTP code that does not match the secret |
| SecondAdminRequired | second_admin_required | a grant's confirmation by its own requester |
| AccountSecretsUnavailable | account_secrets_unavailable | the account-secrets key is unusable |
| GuardIneligible | guard_ineligible | a guard approval by its creator, an approver or a non-admin |
| AwaitingSafeguard | awaiting_safeguard | waits for a guard approval or a referral decision |

Every refused operation changes nothing: services validate before they
write, and the caller's transaction rolls back on any exception.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from blocklist.errors import BlocklistError

if TYPE_CHECKING:
    from blocklist.store.imports import BulkResult

__all__ = [
    "AccountNameTaken",
    "AccountSecretsUnavailable",
    "AdminCannotApprove",
    "AnalystTokenNeedsPerson",
    "AwaitingSafeguard",
    "BelowThreshold",
    "BulkRejected",
    "Conflict",
    "DuplicateApproval",
    "EnrolmentInvalid",
    "GuardIneligible",
    "InvalidField",
    "InvalidState",
    "LimitExceeded",
    "NotFound",
    "PermissionDenied",
    "Pruned",
    "SecondAdminRequired",
    "SelfApproval",
    "StoreError",
    "StoreUnavailable",
    "TokenNameTaken",
    "TotpInvalid",
    "UnknownBlockRef",
    "WeakPassword",
    "WeekNotOver",
    "WitnessNotRegistered",
]


class StoreError(BlocklistError):
    """Root of the errors raised by :mod:`blocklist.store`."""

    code = "store_error"


class NotFound(StoreError, LookupError):
    """The list, entry, token, version or document does not exist."""

    code = "not_found"


class Pruned(NotFound):
    """The document existed but retention pruned it (a snapshot below the list's floor)."""

    code = "pruned"


class Conflict(StoreError):
    """The change clashes with existing data (a taken name, a version number)."""

    code = "conflict"


class DuplicateApproval(Conflict):
    """The analyst has already approved this entry in the current round."""

    code = "duplicate_approval"


class TokenNameTaken(Conflict):
    """A token not revoked already has this name for this role and list."""

    code = "token_name_taken"


class AnalystTokenNeedsPerson(Conflict):
    """An analyst token of no person, for a list whose analysts are persons.

    Once a person holds the analyst role on a list (or on every list), a
    token of no person would count as an identity of its own in four-eyes:
    the loophole persons close (issue 15, item 4). New analyst tokens there
    are minted by the person, from their own TOTP-authenticated session.
    """

    code = "analyst_token_needs_person"


class PermissionDenied(StoreError):
    """The actor may not perform this action."""

    code = "permission_denied"


class SelfApproval(PermissionDenied):
    """Four-eyes: nobody approves an entry they created or reinstated."""

    code = "self_approval"


class WitnessNotRegistered(PermissionDenied):
    """A cosignature by a witness key no administrator registered for the list."""

    code = "witness_not_registered"


class AdminCannotApprove(PermissionDenied):
    """Four-eyes counts analysts only; administrators cannot approve entries."""

    code = "admin_cannot_approve"


class InvalidState(StoreError):
    """The action is not allowed in the current state (e.g. approving an expired entry)."""

    code = "invalid_state"


class GuardIneligible(PermissionDenied):
    """A guard approval by someone other than an administrator who neither
    created nor approved the entry (issue 16 item 2)."""

    code = "guard_ineligible"


class AwaitingSafeguard(InvalidState):
    """The action needs a guard approval or a referral decision first (issue 16)."""

    code = "awaiting_safeguard"


class InvalidField(StoreError, ValueError):
    """A field is malformed, empty when required, or longer than its cap."""

    code = "invalid_field"


class LimitExceeded(StoreError, ValueError):
    """A page, batch or request exceeds its named limit."""

    code = "limit_exceeded"


class BulkRejected(StoreError, ValueError):
    """An all-or-nothing bulk add had failing rows; nothing was added.

    ``results`` holds the per-row outcome so the caller can report which
    rows failed and why.
    """

    code = "bulk_rejected"

    def __init__(self, message: str, results: Sequence[BulkResult]) -> None:
        """Keep the per-row results next to the message."""
        super().__init__(message)
        self.results = list(results)


class StoreUnavailable(StoreError):
    """The database cannot be reached or refused the connection."""

    code = "store_unavailable"


class BelowThreshold(InvalidField):
    """Hit counts: a count below the server's threshold k (privacy floor)."""

    code = "hits_below_threshold"


class UnknownBlockRef(InvalidField):
    """Hit counts: a block reference that names no published entry of the list."""

    code = "unknown_block_ref"


class WeekNotOver(InvalidField):
    """Hit counts: the ISO week has not ended yet (only completed weeks are posted)."""

    code = "week_not_over"


# --- persons' accounts (issue 15) --------------------------------------------


class AccountNameTaken(Conflict):
    """An account with this name exists (names identify persons)."""

    code = "account_name_taken"


class EnrolmentInvalid(NotFound):
    """An enrolment link that is unknown, used, expired or of a disabled account.

    One answer for all four, so a guessed link learns nothing.
    """

    code = "enrolment_invalid"


class WeakPassword(InvalidField):
    """A password outside the accepted length (NIST SP 800-63B section 5.1.1.2)."""

    code = "weak_password"


class TotpInvalid(InvalidField):
    """A TOTP code that does not match the account's secret (enrolment)."""

    code = "totp_invalid"


class SecondAdminRequired(PermissionDenied):
    """A pending grant confirmed by its requester or by no admin person."""

    code = "second_admin_required"


class AccountSecretsUnavailable(StoreError):
    """The account-secrets key file is missing, malformed or readable by others."""

    code = "account_secrets_unavailable"
