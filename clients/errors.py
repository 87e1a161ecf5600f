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

Every class carries a stable ``reason`` string, named in its class
statement (``class Rollback(BadData, reason="rollback")``): it is the label
of the sync outcome counters (``cleanfeed_isp_sync_total{reason=...}``), the
word after ``rejected:`` in ``cleanfeed isp sync --once`` and the key of the
status output. Reasons are part of the operator interface: extend, never rename.
"""

from __future__ import annotations

from typing import Any, ClassVar

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
    """Root of every error the client packages raise on purpose.

    A subclass names its reason in its bases: ``class Rollback(BadData,
    reason="rollback")``.
    """

    #: Stable, machine-readable reason (metrics label, CLI output).
    reason: ClassVar[str] = "client_error"

    def __init_subclass__(cls, *, reason: str | None = None, **kwargs: Any) -> None:
        """Set the subclass's :attr:`reason` from its class keyword, if given."""
        super().__init_subclass__(**kwargs)
        if reason is not None:
            cls.reason = reason


# --- transport: retry later --------------------------------------------------


class TransportError(ClientError, reason="network_error"):
    """The server could not answer now; retry later with back-off.

    Attributes:
        retry_after: seconds the server asked us to wait (``Retry-After``),
            or ``None`` when it gave no hint.
    """

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class NetworkError(TransportError, reason="network_error"):
    """Connection refused or reset, DNS failure, TLS failure, proxy failure."""


class Timeout(TransportError, reason="timeout"):
    """A connect, read, write or pool timeout (slow retrieval protection)."""


class ServerError(TransportError, reason="server_error"):
    """The server answered 5xx (``retry_after`` set from ``Retry-After``)."""


class RateLimited(TransportError, reason="backoff"):
    """The server answered 429: we polled faster than our rate limit."""


# --- the server refused the request: retrying will not help -----------------


class RequestRejected(ClientError, reason="request_rejected"):
    """A 4xx answer other than 429: wrong token, list or request.

    Attributes:
        status: the HTTP status code.
    """

    def __init__(self, message: str, *, status: int) -> None:
        super().__init__(message)
        self.status = status


class AccessDenied(RequestRejected, reason="access_denied"):
    """401 or 403: the token is missing, wrong, expired or revoked."""


class NotFound(RequestRejected, reason="not_found"):
    """404: no such list, or the token is not entitled to it (same answer)."""


# --- bad data: never applied -------------------------------------------------


class BadData(ClientError, reason="bad_data"):
    """The server's answer does not verify; the last good list stays."""


class MalformedData(BadData, reason="format_error"):
    """A note, statement, JSON document or header breaks its format."""


class Undecodable(MalformedData, reason="undecodable"):
    """A header or byte the client cannot decode (not ASCII where ASCII is
    required): refused as a typed rejection, never a ``UnicodeError``."""


class BadSignature(BadData, reason="signature_error"):
    """A signature by a trusted key does not verify."""


class UnknownKey(BadData, reason="unknown_key"):
    """No signature is by a key trusted for this document (wrong key, or a
    rotated-out key used for a version beyond its range)."""


class WrongOrigin(BadData, reason="wrong_origin"):
    """A validly signed document of another list (mix-and-match)."""


class Rollback(BadData, reason="rollback"):
    """A smaller tree, an older version or an older keyring than held."""


class Equivocation(BadData, reason="equivocation"):
    """Two validly signed, inconsistent views of the log (or of the keyring).

    Both notes are kept as evidence for auditors.

    Attributes:
        kind: ``"checkpoint"`` or ``"keyring"``.
        held_note: the note the client held.
        new_note: the conflicting note the server served.
    """

    def __init__(self, message: str, *, kind: str, held_note: str, new_note: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.held_note = held_note
        self.new_note = new_note


class Stale(BadData, reason="stale"):
    """Freeze protection: a checkpoint older than the maximum age, one dated
    in the future, or an expired keyring."""


class ChainBroken(BadData, reason="chain_broken"):
    """Statements with a gap, a duplicate, a reordering or a wrong
    ``previous`` hash."""


class DeltaInvalid(BadData, reason="delta_invalid"):
    """A delta adds a present hash or removes an absent one."""


class StateMismatch(BadData, reason="state_mismatch"):
    """A state digest or entry count differs from the signed statement."""


class Oversize(BadData, reason="oversize"):
    """A response exceeded its size cap (endless data, gzip bombs)."""


class KeyringRejected(BadData, reason="keyring_rejected"):
    """A keyring update is refused (threshold, serial gap, expiry, ...).

    Attributes:
        detail: the signer's keyring reason (``serial_gap``, ``threshold``...).
    """

    def __init__(self, message: str, *, detail: str = "") -> None:
        super().__init__(message)
        self.detail = detail


class ProofMismatch(BadData, reason="proof_mismatch"):
    """A Merkle proof, compact range or tree root does not verify."""


class PlaintextMismatch(BadData, reason="plaintext_mismatch"):
    """An expression whose SHA-256 is not the hash it was served for, or is
    not in the verified set."""


class WitnessQuorum(BadData, reason="witness_quorum"):
    """Fewer valid witness cosignatures on the checkpoint than the quorum."""


# --- the auditor's own: bundles and the witness ------------------------------


class AuditError(ClientError, reason="audit_error"):
    """Root of the errors the auditor raises on purpose."""


class BundleError(AuditError, MalformedData, reason="bundle_format"):
    """The bundle is not a well-formed ``cleanfeed-bundle/v1`` document."""


class BundleTooLarge(BundleError, Oversize, reason="oversize"):
    """The bundle exceeds its size cap (endless-data protection)."""


class NotVerified(AuditError, BadData, reason="not_verified"):
    """A bundle that fails verification was given where a verified one is needed.

    Attributes:
        failure: the text of the first failure of the verification.
    """

    def __init__(self, message: str, *, failure: str) -> None:
        super().__init__(message)
        self.failure = failure


class WitnessError(AuditError, reason="witness_error"):
    """The witness cannot run (state file, configuration, key)."""


class WitnessStateError(WitnessError, reason="witness_state"):
    """The witness state file is unreadable, corrupt or for another log."""


class CosignRefused(WitnessError, BadData, reason="cosign_refused"):
    """The witness refuses to cosign the checkpoint it was shown.

    Attributes:
        detail: a short machine-readable cause (``rollback``,
            ``equivocation``, ``signature``, ``origin``, ``future``...).
        evidence: the file the conflicting notes were saved to, if any.
    """

    def __init__(self, message: str, *, detail: str, evidence: str | None = None) -> None:
        super().__init__(message)
        self.detail = detail
        self.evidence = evidence


# --- local state --------------------------------------------------------------


class LocalStateError(ClientError, reason="local_state"):
    """The local state directory cannot be used as it is."""


class StateLocked(LocalStateError, reason="locked"):
    """Another sync process holds the state directory's lock."""


class LocalCorruption(LocalStateError, reason="local_corruption"):
    """The local state no longer matches the verified statement it claims.

    Not bad server data: the sync takes the snapshot path to recover.
    """


class NotInitialised(LocalStateError, reason="not_initialised"):
    """The state directory holds no verified list yet (run a sync first)."""


class ConfigError(ClientError, reason="config_error"):
    """The configuration (file, flags or environment) cannot be used."""


class RootKeyMismatch(ConfigError, reason="root_key_mismatch"):
    """A configured root key that the existing state never trusted.

    The pinned roots are part of the state: the state follows the keyring's
    root rotation from the roots it was created with, so a root key that is
    neither among those nor among the roots rotated to since is a mistake
    (another list, another hotline, a typo), never silently ignored.
    """


class ServerUrlRefused(ConfigError, reason="server_url_refused"):
    """The server URL would expose the token: clear-text ``http://`` off
    loopback without ``allow_insecure_http``, or credentials inside it."""
