"""Request and response models of the HTTP API.

Every request model forbids unknown fields (mass assignment: a body naming
``version``, ``created_by`` or ``status`` is refused with 422, never
silently dropped) and caps every string, list and integer. Hashes travel as
base64 in JSON (DESIGN.md, "Interfaces other programs rely on"); in URL
paths and query strings as 64 lower-case hex digits.
"""

from __future__ import annotations

import builtins
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

from blocklist.auditlog import AuditRecord
from blocklist.encoding import b64encode
from blocklist.entries import Reach
from blocklist.store import guards as store_guards
from blocklist.store.imports import MAX_APPROVE_ROWS, MAX_BULK_ROWS, ApproveResult, BulkResult
from blocklist.store.models import ApprovalRow, EntryRow, ListRow, TokenRow, WitnessKeyRow
from blocklist.store.search import DEFAULT_PAGE_SIZE, MAX_HOST_CHARS, MAX_PAGE_SIZE
from blocklist.store.submissions import (
    MAX_CATEGORY_CHARS,
    MAX_REASON_CHARS,
    MAX_REFERENCE_CHARS,
    MAX_URL_CHARS,
)
from blocklist.verification import VerificationState

__all__ = [
    "MAX_INT",
    "MAX_NAME_CHARS",
    "MAX_SIGNATURE_LINE_CHARS",
    "MAX_TOKEN_LISTS",
    "MAX_VKEY_CHARS",
    "ApprovalOut",
    "ApproveIn",
    "ApproveManyIn",
    "ApproveManyOut",
    "ApproveResultOut",
    "AuditPageOut",
    "AuditRecordOut",
    "BulkIn",
    "BulkOut",
    "BulkResultOut",
    "Category",
    "CosignatureIn",
    "CosignatureOut",
    "Country",
    "EntryHistoryOut",
    "EntryIn",
    "EntryOut",
    "EntryPageOut",
    "ExpireIn",
    "ExpressionOut",
    "Forbid",
    "GuardApproveIn",
    "GuardHostOut",
    "GuardIn",
    "GuardListOut",
    "GuardOut",
    "GuardRemoveIn",
    "HashText",
    "HealthOut",
    "IspListOut",
    "IspStatusOut",
    "ListCreateIn",
    "ListCreatedOut",
    "ListName",
    "ListOut",
    "Out",
    "PlaintextOut",
    "PreviewIn",
    "PreviewOut",
    "ProblemOut",
    "ProofOut",
    "PublishIn",
    "PublishOut",
    "ReachOut",
    "Reason",
    "ReferIn",
    "Reference",
    "ReferralsOut",
    "RefusalOut",
    "ReinstateIn",
    "RevokeIn",
    "Role",
    "SafeguardsOut",
    "Scope",
    "SearchIn",
    "StatementsOut",
    "Status",
    "TokenCreateIn",
    "TokenCreatedOut",
    "TokenOut",
    "Url",
    "UtcTime",
    "ValidationIssueOut",
    "VerificationOut",
    "WitnessIn",
    "WitnessListOut",
    "WitnessOut",
    "approval_out",
    "approve_many_out",
    "audit_record_out",
    "bulk_out",
    "bulk_result_out",
    "entry_out",
    "list_out",
    "reach_out",
    "token_out",
    "verification_out",
    "witness_out",
]

#: Largest integer accepted anywhere in a request: a signed 64-bit column.
MAX_INT = 2**63 - 1

#: Longest token or list name in a request (the store's column sizes).
MAX_NAME_CHARS = 128

#: Most lists one token can be granted in one request.
MAX_TOKEN_LISTS = 100

#: Longest witness vkey or signature line (a vkey is name + 8 hex + 44
#: base64; names are at most 255 bytes).
MAX_VKEY_CHARS = 400
MAX_SIGNATURE_LINE_CHARS = 600

Scope = Literal["page", "prefix", "host"]
Status = Literal["pending", "active", "expired", "removed", "referred"]
Role = Literal["admin", "analyst", "isp", "auditor"]

Url = Annotated[str, StringConstraints(min_length=1, max_length=MAX_URL_CHARS)]
Reason = Annotated[str, StringConstraints(min_length=1, max_length=MAX_REASON_CHARS)]
Reference = Annotated[str, StringConstraints(min_length=1, max_length=MAX_REFERENCE_CHARS)]
Category = Annotated[str, StringConstraints(min_length=1, max_length=MAX_CATEGORY_CHARS)]
Country = Annotated[str, StringConstraints(min_length=2, max_length=2)]
ListName = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[a-z0-9-]+$")]
#: A hash in a JSON body: base64 (44 characters) or 64 hex digits.
HashText = Annotated[str, StringConstraints(min_length=44, max_length=64)]


def _representable_in_utc(value: datetime) -> datetime:
    # A time such as 9999-12-31T23:59:59-23:59 parses but lies past year
    # 9999 once converted to UTC: refuse it as bad input (422), never a 500.
    try:
        return value.astimezone(UTC)
    except OverflowError as e:
        raise ValueError("time is out of range once converted to UTC") from e


#: An RFC 3339 time with an offset that is representable in UTC.
UtcTime = Annotated[AwareDatetime, AfterValidator(_representable_in_utc)]


class Forbid(BaseModel):
    """Base of request models: unknown fields are an error (mass assignment)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)


class Out(BaseModel):
    """Base of response models."""

    model_config = ConfigDict(extra="forbid")


# --- entries ---------------------------------------------------------------


class EntryIn(Forbid):
    """One URL to add (DESIGN.md, "Entries")."""

    url: Url
    scope: Scope
    reason: Reason
    reference: Reference | None = None
    category: Category | None = None
    hosting_country: Country | None = Field(
        default=None, description="ISO 3166-1 alpha-2 country where the material is hosted."
    )
    expires_at: UtcTime | None = Field(
        default=None, description="Optional future expiry (RFC 3339 with offset)."
    )


class PreviewIn(Forbid):
    """A URL whose reach to show before adding it."""

    url: Url
    scope: Scope = "page"
    hosting_country: Country | None = None


class RefusalOut(Out):
    """Why an entry would be refused."""

    code: str
    detail: str


class ReachOut(Out):
    """What an expression blocks, as lookups really match it."""

    expression: str
    hash: str = Field(description="base64 SHA-256 of the expression")
    scope: Scope
    host: str
    path: str
    covers_subdomains: bool
    explanation: str
    problem: str | None
    matches: list[str]
    does_not_match: list[str]


class SafeguardsOut(Out):
    """Which safeguard rules apply to a previewed entry (issue 16)."""

    public_suffix: bool = Field(description="the host is a public suffix (refused)")
    rules: list[str] = Field(
        description="each safeguard rule that applies, in words (public suffix, guard)"
    )
    guard: str | None = Field(
        description="the guard rule: a guarded host, or 'ip-address'; null if unguarded"
    )
    subsumes: int = Field(description="listed entries the new one would cover (blast radius)")
    subsumes_capped: bool = Field(description="the count stopped at its scan limit")


class PreviewOut(Out):
    """The reach of the expression the URL would be stored as, and the verdict."""

    accepted: bool
    requested_scope: Scope
    reach: ReachOut | None
    refusal: RefusalOut | None
    safeguards: SafeguardsOut | None = None


class ApprovalOut(Out):
    """One analyst's approval of one round."""

    actor: str
    round: int
    at: datetime


class GuardOut(Out):
    """A guarded entry's rule and the administrator's approval (issue 16 item 2)."""

    rule: str = Field(description="the guarded host, or 'ip-address'")
    approved_by: str | None
    approved_at: datetime | None
    justification: str | None


class GuardApproveIn(Forbid):
    """An administrator's approval of a guarded entry."""

    justification: Reason


class ReferIn(Forbid):
    """Refer an entry (analysts) or override a referral proposal (administrators)."""

    reason: Reason


class GuardIn(Forbid):
    """A host to guard."""

    host: Annotated[str, StringConstraints(min_length=1, max_length=253)]
    note: Annotated[str, StringConstraints(max_length=500)] | None = None


class GuardRemoveIn(Forbid):
    """A guarded host and why its guard is lifted."""

    host: Annotated[str, StringConstraints(min_length=1, max_length=253)]
    reason: Reason


class GuardHostOut(Out):
    """One guarded host."""

    host: str
    note: str | None
    created_by: str
    created_at: datetime


class GuardListOut(Out):
    """The guard list."""

    guards: list[GuardHostOut]


class ReferralsOut(Out):
    """The open referral proposals of a list (the analysts' queue)."""

    entries: list[EntryOut]


class EntryOut(Out):
    """An entry as analysts see it."""

    id: int
    list: str
    expression: str | None = Field(description="null once retention pruned the plaintext")
    hash: str = Field(description="base64 SHA-256 of the expression")
    url: str | None = Field(description="null once retention pruned the plaintext")
    scope: Scope
    reason: str
    reference: str | None
    category: str | None
    hosting_country: str | None
    status: Status
    listed: bool
    expires_at: datetime | None
    created_by: str
    created_at: datetime
    added_version: int | None
    removed_version: int | None
    approval_round: int
    submitted_by: str
    plaintext_pruned_at: datetime | None = Field(
        description="when retention erased expression and url (add the URL again to restore)"
    )
    guard: GuardOut | None = Field(
        default=None, description="the guard rule and its approval; null if unguarded"
    )
    hosting: dict[str, Any] | None = Field(
        default=None,
        description="the latest hosting evidence (addresses, countries, database, resolver, "
        "time; verified false when resolution failed)",
    )
    referral: str | None = Field(
        default=None, description="'proposed' (held off the list) or 'overridden'; null if none"
    )
    awaiting: builtins.list[str] = Field(
        default_factory=builtins.list,
        description="safeguards a pending entry waits for besides four-eyes: 'guard', 'referral'",
    )


class AuditRecordOut(Out):
    """One audit log record (docs/architecture.md, "Audit log hash chain")."""

    seq: int
    time: datetime
    actor: str
    action: str
    list: str | None
    entry: int | None
    details: dict[str, Any]
    hash: str | None = Field(description="base64 chain hash after this record")


class VerificationOut(Out):
    """An entry's re-verification state (DESIGN.md part 2; docs/reverification.md)."""

    status: Literal["live", "gone", "unreachable", "moved", "unchecked"]
    checked_at: datetime | None = Field(description="time of the latest check")
    consecutive_gone: int = Field(description="consecutive checks that found it gone")
    hosting: list[str] = Field(description="addresses observed by the latest check")
    last_live_at: datetime | None = Field(description="last check that found it live")
    vantage_points: list[dict[str, Any]] = Field(
        description="each vantage point's verdict in the latest check (name, status, dns, "
        "http_status, error)"
    )
    expiry_proposed_at: datetime | None = Field(
        description="proposed for expiry (gone for k consecutive checks) since"
    )
    referral_proposed_at: datetime | None = Field(
        description="proposed for referral (observed hosting in the home country) since"
    )
    flagged_at: datetime | None = Field(
        description="flagged: not seen live for max_unverified_days, since"
    )


class EntryHistoryOut(EntryOut):
    """An entry with every approval and every audit record naming it."""

    approvals: list[ApprovalOut]
    history: list[AuditRecordOut]
    verification: VerificationOut | None = Field(
        default=None, description="re-verification state; null for the canary (never checked)"
    )


class ExpireIn(Forbid):
    """Take an entry off now (``{}``) or schedule it (``{"at": ...}``)."""

    at: UtcTime | None = None
    reason: Reason = "expired without a stated reason"


class ReinstateIn(Forbid):
    """Bring an expired entry back to pending (needs fresh approvals)."""

    reason: Reason = "reinstated without a stated reason"


class ApproveIn(Forbid):
    """Approve an entry (no fields; the body may be omitted)."""


class PublishIn(Forbid):
    """Publish now (no fields; the body may be omitted). Mass-assignment
    protection: a body such as ``{"version": 99}`` is refused, not ignored."""


class RevokeIn(Forbid):
    """Revoke a token (no fields; the body may be omitted)."""


class SearchIn(Forbid):
    """Search filters (AND-combined), sent in a POST body so URLs stay out of logs."""

    url: Url | None = Field(default=None, description="entries whose lookups this URL hits")
    host: Annotated[str, StringConstraints(min_length=1, max_length=MAX_HOST_CHARS)] | None = None
    hash: HashText | None = Field(default=None, description="base64 or 64 hex digits")
    status: Status | None = None
    reference: Reference | None = None
    cursor: Annotated[int, Field(ge=0, le=MAX_INT)] | None = None
    limit: Annotated[int, Field(ge=1, le=MAX_PAGE_SIZE)] = DEFAULT_PAGE_SIZE


class EntryPageOut(Out):
    """A page of entries; pass ``next`` as ``cursor`` for the next page."""

    entries: list[EntryOut]
    next: int | None


class BulkResultOut(Out):
    """Outcome of one bulk row."""

    index: int
    status: Literal["added", "existing", "failed", "skipped"]
    id: int | None = None
    hash: str | None = None
    code: str | None = None
    message: str | None = None


class BulkOut(Out):
    """Per-row results of a bulk add, with counts and the import id."""

    results: list[BulkResultOut]
    added: int
    existing: int
    failed: int
    skipped: int
    import_id: int | None = Field(
        default=None,
        serialization_alias="import",
        description="the import the added entries belong to: pass it as ?import= to add "
        'further batches to it, and approve them together with {"import": id}; null when '
        "nothing was added",
    )


class ApproveManyIn(Forbid):
    """Approve many entries: ``{"ids": [...]}`` or ``{"import": id}`` (one of the two)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    ids: (
        Annotated[
            list[Annotated[int, Field(ge=1, le=MAX_INT)]],
            Field(min_length=1, max_length=MAX_APPROVE_ROWS),
        ]
        | None
    ) = Field(default=None, description=f"entry ids, at most {MAX_APPROVE_ROWS}, no repeats")
    import_id: Annotated[int, Field(ge=1, le=MAX_INT)] | None = Field(
        default=None, alias="import", description="approve the entries this import added"
    )
    cursor: Annotated[int, Field(ge=0, le=MAX_INT)] | None = Field(
        default=None,
        description="with import: the previous answer's next (imports over "
        f"{MAX_APPROVE_ROWS} entries take several calls)",
    )

    @model_validator(mode="after")
    def _one_of(self) -> ApproveManyIn:
        if (self.ids is None) == (self.import_id is None):
            raise ValueError('send exactly one of "ids" and "import"')
        if self.ids is not None and len(set(self.ids)) != len(self.ids):
            raise ValueError("ids must not repeat")
        if self.cursor is not None and self.import_id is None:
            raise ValueError('"cursor" goes with "import"')
        return self


class ApproveResultOut(Out):
    """Outcome of one entry of a bulk approval."""

    id: int
    status: Literal["approved", "refused"]
    entry_status: Status | None = Field(
        default=None, description="the entry's status after the call (null: no such entry)"
    )
    approvals: int | None = Field(default=None, description="approvals of this round so far")
    required: int | None = None
    code: str | None = Field(default=None, description="why it was refused (a problem code)")
    message: str | None = None


class ApproveManyOut(Out):
    """Per-entry results of a bulk approval, with counts."""

    results: list[ApproveResultOut]
    approved: int = Field(description="approvals recorded")
    activated: int = Field(description="entries that became active (published at the next version)")
    refused: int = Field(description="entries refused, each with its code")
    import_id: int | None = Field(default=None, serialization_alias="import")
    next: int | None = Field(
        default=None, description="with import: pass as cursor for the rest; null when done"
    )


class ValidationIssueOut(BaseModel):
    """One reason a request failed validation (the input itself is not echoed)."""

    loc: list[str]
    msg: str
    type: str | None = None


class ProblemOut(BaseModel):
    """An RFC 9457 problem (the shape of every error response).

    RFC 9457 3.2 allows extension members; the API uses ``errors``
    (``validation_error``), ``results`` (``bulk_rejected``), ``reason``
    (``keyring_error``), ``role`` (``rate_limited``: whose limit) and
    ``search`` (``method_not_allowed`` on ``GET …/entries``: the search route).
    """

    model_config = ConfigDict(extra="allow")

    type: str
    title: str
    status: int
    detail: str
    code: str
    instance: str | None = None
    errors: list[ValidationIssueOut] | None = None
    results: list[BulkResultOut] | None = None
    reason: str | None = None
    role: str | None = None
    search: str | None = None


BulkIn = Annotated[list[EntryIn], Field(min_length=1, max_length=MAX_BULK_ROWS)]


# --- publishing ------------------------------------------------------------


class PublishOut(Out):
    """Result of a publish-now request."""

    version: int = Field(description="latest version after the call (unchanged if nothing pending)")
    published: bool = Field(description="whether this call cut at least one new version")
    versions: list[int] = Field(description="versions cut by this call")
    count: int | None = Field(default=None, description="entries in the latest version")
    pending: bool = Field(default=False, description="true when answered 202 (still queued)")
    request: int | None = Field(default=None, description="publish request id (--no-signer)")


# --- ISP documents ---------------------------------------------------------


class StatementsOut(Out):
    """A page of statements ``since+1 ...`` (DESIGN.md interface table)."""

    statements: list[str]
    next: int | None


class ExpressionOut(Out):
    """An expression with its base64 hash."""

    hash: str
    expression: str


class PlaintextOut(Out):
    """Expressions of entries added after ``since`` and still listed."""

    expressions: list[ExpressionOut]
    next: int | None


class ProofOut(Out):
    """A Merkle proof or range (base64 hashes)."""

    hashes: list[str]


# --- witnesses -------------------------------------------------------------


class CosignatureIn(Forbid):
    """A witness cosignature (c2sp.org/tlog-cosignature) of the current checkpoint."""

    vkey: Annotated[str, StringConstraints(min_length=1, max_length=MAX_VKEY_CHARS)] = Field(
        description="the witness's vkey (signature type 0x04 or 0x01 with the same public key)"
    )
    signature: Annotated[
        str, StringConstraints(min_length=1, max_length=MAX_SIGNATURE_LINE_CHARS)
    ] = Field(description="the signature line, '— <name> <base64>'")


class CosignatureOut(Out):
    """A stored cosignature line and the checkpoint size it covers."""

    size: int
    timestamp: int
    line: str


class WitnessIn(Forbid):
    """A witness key to register for a list (admin)."""

    vkey: Annotated[str, StringConstraints(min_length=1, max_length=MAX_VKEY_CHARS)] = Field(
        description="the witness's vkey (type 0x04, or 0x01 of the same key); "
        "`cleanfeed audit witness-key` prints it"
    )


class WitnessOut(Out):
    """A witness registered for a list."""

    id: int
    name: str
    vkey: str = Field(description="type 0x04 vkey, as ISPs configure it")
    created_at: datetime
    created_by: str


class WitnessListOut(Out):
    """The witnesses registered for a list."""

    list: str
    witnesses: builtins.list[WitnessOut]


# --- administration --------------------------------------------------------


class TokenCreateIn(Forbid):
    """A token to issue."""

    name: Annotated[str, StringConstraints(min_length=1, max_length=MAX_NAME_CHARS)]
    role: Role
    lists: Annotated[list[ListName], Field(max_length=MAX_TOKEN_LISTS)] = []
    plaintext: bool = False
    full_audit: bool = False
    expires_at: UtcTime | None = None


class TokenOut(Out):
    """A token's metadata (never its secret)."""

    id: int
    name: str
    role: Role
    prefix: str
    lists: list[str]
    plaintext: bool
    full_audit: bool
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None
    created_at: datetime
    created_by: str


class TokenCreatedOut(TokenOut):
    """A new token: ``token`` is shown once and never stored."""

    token: str


class ListCreateIn(Forbid):
    """A list to create."""

    name: ListName
    origin: Annotated[str, StringConstraints(min_length=1, max_length=255)] | None = None
    approvals_required: Literal[1, 2] = 2
    home_country: Country | None = None
    canary: Url | None = Field(default=None, description="canary URL (default under .invalid)")
    public: bool = False


class ListOut(Out):
    """A list's configuration and latest version."""

    name: str
    origin: str
    approvals_required: int
    home_country: str | None
    canary_url: str
    public: bool
    created_at: datetime
    version: int


class ListCreatedOut(ListOut):
    """A new list and the root vkey its ISPs must pin."""

    root_vkey: str


class IspStatusOut(Out):
    """Which ISP token last fetched which version of a list."""

    token_id: int
    name: str
    version: int
    at: datetime


class IspListOut(Out):
    """Every ISP token's last-seen version of a list."""

    list: str
    version: int
    isps: builtins.list[IspStatusOut]


class AuditPageOut(Out):
    """A page of audit records; pass ``next`` as ``since`` for the next page."""

    records: list[AuditRecordOut]
    next: int | None


class HealthOut(Out):
    """Liveness or readiness."""

    status: Literal["ok", "unavailable"]
    checks: dict[str, str] = {}


# --- conversions -----------------------------------------------------------


def verification_out(state: VerificationState) -> VerificationOut:
    """Serialise an entry's re-verification state."""
    return VerificationOut(
        status=state.status,  # type: ignore[arg-type]
        checked_at=state.checked_at,
        consecutive_gone=state.consecutive_gone,
        hosting=list(state.hosting),
        last_live_at=state.last_live_at,
        vantage_points=[dict(v) for v in state.vantage_points],
        expiry_proposed_at=state.expiry_proposed_at,
        referral_proposed_at=state.referral_proposed_at,
        flagged_at=state.flagged_at,
    )


def entry_out(entry: EntryRow, list_name: str) -> EntryOut:
    """Serialise an entry row (``null`` plaintext once retention pruned it)."""
    pruned = entry.plaintext_pruned_at is not None
    return EntryOut(
        id=entry.id,
        list=list_name,
        expression=None if pruned else entry.expression,
        hash=b64encode(entry.hash),
        url=None if pruned else entry.url,
        scope=entry.scope,  # type: ignore[arg-type]
        reason=entry.reason,
        reference=entry.reference,
        category=entry.category,
        hosting_country=entry.hosting_country,
        status=entry.status,  # type: ignore[arg-type]
        listed=entry.listed,
        expires_at=entry.expires_at,
        created_by=entry.created_by,
        created_at=entry.created_at,
        added_version=entry.added_version,
        removed_version=entry.removed_version,
        approval_round=entry.approval_round,
        submitted_by=entry.submitted_by,
        plaintext_pruned_at=entry.plaintext_pruned_at,
        guard=None
        if entry.guard is None
        else GuardOut(
            rule=entry.guard,
            approved_by=entry.guard_approved_by,
            approved_at=entry.guard_approved_at,
            justification=entry.guard_justification,
        ),
        hosting=entry.hosting,
        referral=entry.referral,
        awaiting=store_guards.blockers(entry) if entry.status == "pending" else [],
    )


def approval_out(row: ApprovalRow) -> ApprovalOut:
    """Serialise an approval row."""
    return ApprovalOut(actor=row.actor, round=row.round, at=row.at)


def audit_record_out(record: AuditRecord) -> AuditRecordOut:
    """Serialise an audit record (hashes in base64)."""
    return AuditRecordOut(
        seq=record.seq,
        time=record.time,
        actor=record.actor,
        action=record.action,
        list=record.list_name,
        entry=record.entry_id,
        details=dict(record.details),
        hash=b64encode(record.hash) if record.hash is not None else None,
    )


def reach_out(reach: Reach, digest: bytes) -> ReachOut:
    """Serialise a reach description."""
    return ReachOut(
        expression=reach.expression,
        hash=b64encode(digest),
        scope=reach.scope,
        host=reach.host,
        path=reach.path,
        covers_subdomains=reach.covers_subdomains,
        explanation=reach.explanation,
        problem=reach.problem,
        matches=list(reach.matches),
        does_not_match=list(reach.does_not_match),
    )


def bulk_result_out(result: BulkResult) -> BulkResultOut:
    """Serialise one bulk row result."""
    return BulkResultOut(
        index=result.index,
        status=result.status,  # type: ignore[arg-type]
        id=result.entry_id,
        hash=b64encode(result.hash) if result.hash is not None else None,
        code=result.code,
        message=result.message,
    )


def bulk_out(results: list[BulkResult], import_id: int | None = None) -> BulkOut:
    """Serialise a bulk add's results with per-status counts."""
    rows = [bulk_result_out(r) for r in results]
    counts = {"added": 0, "existing": 0, "failed": 0, "skipped": 0}
    for row in rows:
        counts[row.status] += 1
    return BulkOut(results=rows, import_id=import_id, **counts)


def approve_many_out(
    results: list[ApproveResult], *, import_id: int | None = None, next_cursor: int | None = None
) -> ApproveManyOut:
    """Serialise a bulk approval's results with counts."""
    rows = [
        ApproveResultOut(
            id=r.entry_id,
            status=r.status,  # type: ignore[arg-type]
            entry_status=r.entry_status,  # type: ignore[arg-type]
            approvals=r.approvals,
            required=r.required,
            code=r.code,
            message=r.message,
        )
        for r in results
    ]
    approved = sum(1 for r in rows if r.status == "approved")
    return ApproveManyOut(
        results=rows,
        approved=approved,
        activated=sum(1 for r in rows if r.status == "approved" and r.entry_status == "active"),
        refused=len(rows) - approved,
        import_id=import_id,
        next=next_cursor,
    )


def witness_out(row: WitnessKeyRow) -> WitnessOut:
    """The API view of a registered witness."""
    return WitnessOut(
        id=row.id,
        name=row.name,
        vkey=row.vkey,
        created_at=row.created_at,
        created_by=row.created_by,
    )


def token_out(row: TokenRow) -> TokenOut:
    """Serialise a token row (no secret)."""
    return TokenOut(
        id=row.id,
        name=row.name,
        role=row.role,  # type: ignore[arg-type]
        prefix=row.prefix,
        lists=[lst.name for lst in row.lists],
        plaintext=row.plaintext,
        full_audit=row.full_audit,
        expires_at=row.expires_at,
        revoked_at=row.revoked_at,
        last_used_at=row.last_used_at,
        created_at=row.created_at,
        created_by=row.created_by,
    )


def list_out(row: ListRow, version: int) -> ListOut:
    """Serialise a list row with its latest version."""
    return ListOut(
        name=row.name,
        origin=row.origin,
        approvals_required=row.approvals_required,
        home_country=row.home_country,
        canary_url=row.canary_url,
        public=row.public,
        created_at=row.created_at,
        version=version,
    )
