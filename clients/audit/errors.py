"""Error tree of the offline auditor (``clients/audit``).

The auditor reuses the client families of :mod:`clients.errors` (transport
problems, refused requests, bad data) and adds its own under
:class:`AuditError`:

- :class:`BundleError`: a bundle file that cannot be read as a
  ``cleanfeed-bundle/v1`` document (bad JSON, a missing or unknown key, a
  wrong type, a non-canonical hash). The offline verification of a bundle
  that *loads* never raises: it returns a report naming the first failure
  (:func:`clients.audit.verify.verify_bundle`).
- :class:`BundleTooLarge`: the file or download exceeds its size cap
  (endless-data protection).
- :class:`NotVerified`: ``prove`` was asked to rely on a bundle that does not
  verify under the given root keys.
- :class:`WitnessError` and its subclasses: the witness refuses to cosign.

Every class carries a stable ``reason`` like the rest of the client tree.
"""

from __future__ import annotations

from typing import ClassVar

from clients.errors import BadData, ClientError, MalformedData, Oversize


class AuditError(ClientError):
    """Root of the errors the auditor raises on purpose."""

    reason: ClassVar[str] = "audit_error"


class BundleError(AuditError, MalformedData):
    """The bundle is not a well-formed ``cleanfeed-bundle/v1`` document."""

    reason: ClassVar[str] = "bundle_format"


class BundleTooLarge(BundleError, Oversize):
    """The bundle exceeds its size cap (endless-data protection)."""

    reason: ClassVar[str] = "oversize"


class NotVerified(AuditError, BadData):
    """A bundle that fails verification was given where a verified one is needed.

    Attributes:
        failure: the text of the first failure of the verification.
    """

    reason: ClassVar[str] = "not_verified"

    def __init__(self, message: str, *, failure: str) -> None:
        super().__init__(message)
        self.failure = failure


class WitnessError(AuditError):
    """The witness cannot run (state file, configuration, key)."""

    reason: ClassVar[str] = "witness_error"


class WitnessStateError(WitnessError):
    """The witness state file is unreadable, corrupt or for another log."""

    reason: ClassVar[str] = "witness_state"


class CosignRefused(WitnessError, BadData):
    """The witness refuses to cosign the checkpoint it was shown.

    Attributes:
        detail: a short machine-readable cause (``rollback``,
            ``equivocation``, ``signature``, ``origin``, ``future``...).
        evidence: the file the conflicting notes were saved to, if any.
    """

    reason: ClassVar[str] = "cosign_refused"

    def __init__(self, message: str, *, detail: str, evidence: str | None = None) -> None:
        super().__init__(message)
        self.detail = detail
        self.evidence = evidence
