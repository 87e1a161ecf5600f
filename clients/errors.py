"""Error tree of the client packages (the ISP client and the auditor).

STYLE.md, "Errors": like python-tuf, the client splits problems into two
families, and both mean the same thing for the list in force: keep the last
good one.

- :class:`TransportError`: the server could not be reached or asked us to
  come back later (network, timeout, 5xx, 429). Retry later, with back-off
  and the server's ``Retry-After`` hint.
- :class:`BadData`: the server (or something between it and us) answered
  with data that does not verify: a bad signature, an unknown key, a
  rollback, a stale checkpoint, equivocation, a broken chain, a state digest
  mismatch, an oversized response... Never applied, never "repaired".

Two smaller families sit beside them: :class:`RequestRejected` (the server
refused the request: a wrong token or list, which retrying will not fix) and
:class:`LocalStateError` (the state directory is locked, corrupt or
unreadable). :class:`ConfigError` is a configuration the client cannot use.

The auditor adds its own under :class:`AuditError`: :class:`BundleError`
(a bundle file that is not a well-formed ``cleanfeed-bundle/v1`` document;
the offline verification of a bundle that *loads* never raises, it returns
a report naming the first failure), :class:`BundleTooLarge` (endless-data
protection), :class:`NotVerified` (``prove`` was asked to rely on a bundle
that does not verify) and :class:`WitnessError` (the witness cannot run, or
:class:`CosignRefused` to cosign).

Every class carries a stable ``reason`` string: it is the label of the sync
outcome counters (``cleanfeed_isp_sync_total{reason=...}``), the word after
``rejected:`` in ``cleanfeed isp sync --once`` and the key of the status
output. Reasons are part of the operator interface: extend, never rename.
"""

from __future__ import annotations

from typing import ClassVar

__all__ = [
    "AccessDenied",
    "AuditError",
    "BadData",
    "BadSignature",
    "BundleError",
    "BundleTooLarge",
    "ChainBroken",
    "ClientError",
    "ConfigError",
    "CosignRefused",
    "DeltaInvalid",
    "Equivocation",
    "KeyringRejected",
    "LocalCorruption",
    "LocalStateError",
    "MalformedData",
    "NetworkError",
    "NotFound",
    "NotInitialised",
    "NotVerified",
    "Oversize",
    "PlaintextMismatch",
    "ProofMismatch",
    "RateLimited",
    "RequestRejected",
    "Rollback",
    "RootKeyMismatch",
    "ServerError",
    "ServerUrlRefused",
    "Stale",
    "StateLocked",
    "StateMismatch",
    "Timeout",
    "TransportError",
    "Undecodable",
    "UnknownKey",
    "WitnessError",
    "WitnessQuorum",
    "WitnessStateError",
    "WrongOrigin",
]


class ClientError(Exception):
    """Root of every error the client packages raise on purpose."""

    #: Stable, machine-readable reason (metrics label, CLI output).
    reason: ClassVar[str] = "client_error"


# --- transport: retry later --------------------------------------------------


class TransportError(ClientError):
    """The server could not answer now; retry later with back-off.

    Attributes:
        retry_after: seconds the server asked us to wait (``Retry-After``),
            or ``None`` when it gave no hint.
    """

    reason: ClassVar[str] = "network_error"

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class NetworkError(TransportError):
    """Connection refused or reset, DNS failure, TLS failure, proxy failure."""

    reason: ClassVar[str] = "network_error"


class Timeout(TransportError):
    """A connect, read, write or pool timeout (slow retrieval protection)."""

    reason: ClassVar[str] = "timeout"


class ServerError(TransportError):
    """The server answered 5xx (``retry_after`` set from ``Retry-After``)."""

    reason: ClassVar[str] = "server_error"


class RateLimited(TransportError):
    """The server answered 429: we polled faster than our rate limit."""

    reason: ClassVar[str] = "backoff"


# --- the server refused the request: retrying will not help -----------------


class RequestRejected(ClientError):
    """A 4xx answer other than 429: wrong token, list or request.

    Attributes:
        status: the HTTP status code.
    """

    reason: ClassVar[str] = "request_rejected"

    def __init__(self, message: str, *, status: int) -> None:
        super().__init__(message)
        self.status = status


class AccessDenied(RequestRejected):
    """401 or 403: the token is missing, wrong, expired or revoked."""

    reason: ClassVar[str] = "access_denied"


class NotFound(RequestRejected):
    """404: no such list, or the token is not entitled to it (same answer)."""

    reason: ClassVar[str] = "not_found"


# --- bad data: never applied -------------------------------------------------


class BadData(ClientError):
    """The server's answer does not verify; the last good list stays."""

    reason: ClassVar[str] = "bad_data"


class MalformedData(BadData):
    """A note, statement, JSON document or header breaks its format."""

    reason: ClassVar[str] = "format_error"


class Undecodable(MalformedData):
    """A header or byte the client cannot decode (not ASCII where ASCII is
    required): refused as a typed rejection, never a ``UnicodeError``."""

    reason: ClassVar[str] = "undecodable"


class BadSignature(BadData):
    """A signature by a trusted key does not verify."""

    reason: ClassVar[str] = "signature_error"


class UnknownKey(BadData):
    """No signature is by a key trusted for this document (wrong key, or a
    rotated-out key used for a version beyond its range)."""

    reason: ClassVar[str] = "unknown_key"


class WrongOrigin(BadData):
    """A validly signed document of another list (mix-and-match)."""

    reason: ClassVar[str] = "wrong_origin"


class Rollback(BadData):
    """A smaller tree, an older version or an older keyring than held."""

    reason: ClassVar[str] = "rollback"


class Equivocation(BadData):
    """Two validly signed, inconsistent views of the log (or of the keyring).

    Both notes are kept as evidence for auditors.

    Attributes:
        kind: ``"checkpoint"`` or ``"keyring"``.
        held_note: the note the client held.
        new_note: the conflicting note the server served.
    """

    reason: ClassVar[str] = "equivocation"

    def __init__(self, message: str, *, kind: str, held_note: str, new_note: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.held_note = held_note
        self.new_note = new_note


class Stale(BadData):
    """Freeze protection: a checkpoint older than the maximum age, one dated
    in the future, or an expired keyring."""

    reason: ClassVar[str] = "stale"


class ChainBroken(BadData):
    """Statements with a gap, a duplicate, a reordering or a wrong
    ``previous`` hash."""

    reason: ClassVar[str] = "chain_broken"


class DeltaInvalid(BadData):
    """A delta adds a present hash or removes an absent one."""

    reason: ClassVar[str] = "delta_invalid"


class StateMismatch(BadData):
    """A state digest or entry count differs from the signed statement."""

    reason: ClassVar[str] = "state_mismatch"


class Oversize(BadData):
    """A response exceeded its size cap (endless data, gzip bombs)."""

    reason: ClassVar[str] = "oversize"


class KeyringRejected(BadData):
    """A keyring update is refused (threshold, serial gap, expiry, ...).

    Attributes:
        detail: the signer's keyring reason (``serial_gap``, ``threshold``...).
    """

    reason: ClassVar[str] = "keyring_rejected"

    def __init__(self, message: str, *, detail: str = "") -> None:
        super().__init__(message)
        self.detail = detail


class ProofMismatch(BadData):
    """A Merkle proof, compact range or tree root does not verify."""

    reason: ClassVar[str] = "proof_mismatch"


class PlaintextMismatch(BadData):
    """An expression whose SHA-256 is not the hash it was served for, or is
    not in the verified set."""

    reason: ClassVar[str] = "plaintext_mismatch"


class WitnessQuorum(BadData):
    """Fewer valid witness cosignatures on the checkpoint than the quorum."""

    reason: ClassVar[str] = "witness_quorum"


# --- the auditor's own: bundles and the witness ------------------------------


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


# --- local state --------------------------------------------------------------


class LocalStateError(ClientError):
    """The local state directory cannot be used as it is."""

    reason: ClassVar[str] = "local_state"


class StateLocked(LocalStateError):
    """Another sync process holds the state directory's lock."""

    reason: ClassVar[str] = "locked"


class LocalCorruption(LocalStateError):
    """The local state no longer matches the verified statement it claims.

    Not bad server data: the sync takes the snapshot path to recover.
    """

    reason: ClassVar[str] = "local_corruption"


class NotInitialised(LocalStateError):
    """The state directory holds no verified list yet (run a sync first)."""

    reason: ClassVar[str] = "not_initialised"


class ConfigError(ClientError):
    """The configuration (file, flags or environment) cannot be used."""

    reason: ClassVar[str] = "config_error"


class RootKeyMismatch(ConfigError):
    """A configured root key that the existing state never trusted.

    The pinned roots are part of the state: the state follows the keyring's
    root rotation from the roots it was created with, so a root key that is
    neither among those nor among the roots rotated to since is a mistake
    (another list, another hotline, a typo), never silently ignored.
    """

    reason: ClassVar[str] = "root_key_mismatch"


class ServerUrlRefused(ConfigError):
    """The server URL would expose the token: clear-text ``http://`` off
    loopback without ``allow_insecure_http``, or credentials inside it."""

    reason: ClassVar[str] = "server_url_refused"
