"""Appeals: public intake, attachment to entries, review, erasure (issue 17).

DESIGN.md part 2, "Appeals and transparency". The life of an appeal:

1. :func:`file_appeal` (anyone, no token): the appeal names a block
   reference or a URL (or both) and carries a message and maybe a contact.
   In the same transaction it is matched against every list: a reference by
   its hash prefix (:mod:`blocklist.blockref`), a URL by the same lookup
   expressions the ISP side uses (:func:`blocklist.canonical.expressions`),
   against entries that are listed or active. Each match is an
   :class:`AppealLinkRow` with an ``appeal.attach`` record in that list's
   chain; an appeal matching nothing (or only a canary, which is never
   appealable) waits in the admins' queue. The filing itself is an
   ``appeal.file`` record in the global chain. The appellant's words go to
   :class:`AppealPrivateRow` only, never to the audit log.
2. :func:`decide` (an analyst who neither created nor approved the entry,
   compared with :func:`blocklist.foureyes.identity_of`): ``upheld`` (the
   entry stays; after a suspension it is reinstated, which opens a
   four-eyes round), ``removed`` (expired, reason code ``appeal``),
   ``suspended`` (off the list at once; the caller publishes urgently).
3. :func:`erase` and :func:`erase_expired`: the appellant's data goes;
   the audit records, which name the appeal by id, stay and verify.

Answers to the public never depend on whether anything matched: the caller
gets an id and a status secret either way, and :func:`public_state`
words the state the same for a matched and an unmatched appeal.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from sqlalchemy import ColumnElement, and_, func, or_, select
from sqlalchemy.orm import Session

from blocklist import canonical, foureyes
from blocklist.auditlog import Action, Actor
from blocklist.blockref import (
    BLOCK_REF_BYTES,
    InvalidBlockRef,
    MistypedBlockRef,
    block_ref,
    parse_block_ref,
)
from blocklist.encoding import b64encode, format_time
from blocklist.store import audit
from blocklist.store.entries import get_entry, sync_publish_flag
from blocklist.store.errors import (
    InvalidField,
    InvalidState,
    LimitExceeded,
    NotFound,
    PermissionDenied,
)
from blocklist.store.models import (
    APPEAL_OUTCOMES,
    STATUS_ACTIVE,
    STATUS_EXPIRED,
    STATUS_PENDING,
    STATUS_REMOVED,
    AppealLinkRow,
    AppealPrivateRow,
    AppealRow,
    AppealSecretRow,
    AuditRow,
    EntryRow,
    ListRow,
)
from blocklist.store.submissions import MAX_REASON_CHARS, MAX_URL_CHARS, check_text

__all__ = [
    "LINK_OPEN",
    "LINK_SUSPENDED",
    "MAX_CONTACT_CHARS",
    "MAX_MESSAGE_CHARS",
    "OUTCOME_REMOVED",
    "OUTCOME_SUSPENDED",
    "OUTCOME_UPHELD",
    "PUBLIC_STATES",
    "REASON_CODE_APPEAL",
    "SECRET_BYTES",
    "AppealCapReached",
    "AppealRefInvalid",
    "AppealRefMistyped",
    "AppealView",
    "Decided",
    "Filed",
    "IneligibleReviewer",
    "LinkView",
    "close_unmatched",
    "decide",
    "erase",
    "erase_expired",
    "file_appeal",
    "get_appeal",
    "list_links",
    "overdue_count",
    "public_state",
    "secret_hash",
    "unmatched_appeals",
]

#: Longest appeal message: a few paragraphs. The public body cap (16 KiB,
#: api.bodygate) bounds the request; this bounds what is stored.
MAX_MESSAGE_CHARS: Final = 4000
#: Longest contact (an e-mail address is at most 254 characters, RFC 5321
#: section 4.5.3.1.3; a phone number or a name fits too).
MAX_CONTACT_CHARS: Final = 320
#: Bytes of randomness in a status secret: 256 bits, unguessable.
SECRET_BYTES: Final = 32

OUTCOME_UPHELD: Final = "upheld"
OUTCOME_REMOVED: Final = "removed"
OUTCOME_SUSPENDED: Final = "suspended"
LINK_OPEN: Final = "open"
LINK_SUSPENDED: Final = OUTCOME_SUSPENDED
#: Link states still under review.
_UNDECIDED: Final = (LINK_OPEN, LINK_SUSPENDED)

#: The removal reason code of an expiry decided by an appeal (shared_names.md).
REASON_CODE_APPEAL: Final = "appeal"

#: What the status page says for each public state; the words depend only
#: on what a reviewer decided, never on whether the appeal matched.
PUBLIC_STATES: Final = {
    "received": "Your appeal has been received and is waiting for review.",
    "suspended": "The block is suspended while your appeal is being reviewed.",
    "no_change": "Your appeal has been reviewed. The list was not changed.",
    "removed": "Your appeal has been reviewed. The block has been removed.",
}

_DEDUP_DOMAIN: Final = b"cleanfeed-appeal-dedup/v1\n"
_SPACES_RE: Final = re.compile(r"\s+")


class AppealRefInvalid(InvalidField):
    """The appeal's ``block_ref`` is not a block reference (prefix, length, alphabet)."""

    code = "appeal_ref_invalid"


class AppealRefMistyped(AppealRefInvalid):
    """The appeal's ``block_ref`` fails its check character: a typing error."""

    code = "appeal_ref_mistyped"


class AppealCapReached(LimitExceeded):
    """The global cap of appeals per hour or per day is reached (flood)."""

    code = "appeal_cap_reached"


class IneligibleReviewer(PermissionDenied):
    """The reviewer created, reinstated or approved the entry under appeal."""

    code = "appeal_reviewer_ineligible"


@dataclass(frozen=True)
class Filed:
    """What filing answered: the appeal and a fresh status secret."""

    appeal_id: int
    secret: str
    duplicate: bool
    #: Lists the appeal was attached to (never shown to the public).
    list_ids: tuple[int, ...]


@dataclass(frozen=True)
class LinkView:
    """An appeal attached to an entry of a list, for reviewers."""

    appeal_id: int
    list_id: int
    entry_id: int
    entry_hash: bytes
    entry_status: str
    status: str
    attached_at: datetime
    decided_at: datetime | None
    decided_by: str | None
    reason: str | None
    message: str | None
    contact: str | None
    url: str | None
    ref: str | None

    @property
    def block_ref(self) -> str:
        """The matched entry's block reference."""
        return block_ref(self.entry_hash)


@dataclass(frozen=True)
class AppealView:
    """An appeal with its private data (admins' queue)."""

    appeal_id: int
    filed_at: datetime
    closed_at: datetime | None
    matched: bool
    duplicates: int
    ref: str | None
    message: str | None
    contact: str | None
    url: str | None


@dataclass(frozen=True)
class Decided:
    """The result of :func:`decide`."""

    link: LinkView
    #: The entry went off the list now: publish at once.
    publish_now: bool


def secret_hash(secret: str) -> bytes:
    """The stored form of a status secret (SHA-256 of its ASCII text)."""
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).digest()


def _normal_text(text: str) -> str:
    return _SPACES_RE.sub(" ", unicodedata.normalize("NFKC", text)).strip().casefold()


def _parse_ref(text: str | None) -> bytes | None:
    if text is None:
        return None
    try:
        return parse_block_ref(text)
    except MistypedBlockRef as e:
        raise AppealRefMistyped(str(e)) from None
    except InvalidBlockRef as e:
        raise AppealRefInvalid(str(e)) from None


def _check_inputs(url: str | None, message: str, contact: str | None) -> str | None:
    """Validate the appellant's fields; return the URL's canonical form (None: no URL).

    Raises:
        InvalidEntry, InvalidField, InvalidURL: a field empty, over its cap,
            with control characters, or a URL that cannot be canonicalised.
    """
    check_text(message, "message", MAX_MESSAGE_CHARS, required=True, multiline=True)
    if contact is not None:
        check_text(contact, "contact", MAX_CONTACT_CHARS, required=False)
    if url is None:
        return None
    check_text(url, "url", MAX_URL_CHARS, required=True)
    return canonical.canonicalize(url)


def _ref_range(prefix: bytes) -> tuple[bytes, bytes]:
    pad = 32 - BLOCK_REF_BYTES
    return prefix + b"\x00" * pad, prefix + b"\xff" * pad


def _matches(session: Session, prefix: bytes | None, url: str | None) -> list[EntryRow]:
    """Entries of every list an appeal names: listed or active, never a canary."""
    conditions: list[ColumnElement[bool]] = []
    if prefix is not None:
        lo, hi = _ref_range(prefix)
        conditions.append(and_(EntryRow.hash >= lo, EntryRow.hash <= hi))
    if url is not None:
        hashes = [canonical.expression_hash(e) for e in canonical.expressions(url)]
        conditions.append(EntryRow.hash.in_(hashes))
    canaries = select(ListRow.canary_entry_id).where(ListRow.canary_entry_id.is_not(None))
    rows = session.scalars(
        select(EntryRow)
        .where(
            or_(*conditions),
            or_(EntryRow.listed.is_(True), EntryRow.status == STATUS_ACTIVE),
            EntryRow.id.not_in(canaries),
        )
        .order_by(EntryRow.list_id, EntryRow.id)
    ).all()
    return list(rows)


def _check_cap(session: Session, now: datetime, per_hour: int, per_day: int) -> None:
    for window, cap, what in (
        (timedelta(hours=1), per_hour, "hour"),
        (timedelta(days=1), per_day, "day"),
    ):
        if cap <= 0:
            continue
        filed = session.scalar(
            select(func.count()).select_from(AppealRow).where(AppealRow.filed_at > now - window)
        )
        if int(filed or 0) >= cap:
            raise AppealCapReached(
                f"the service takes at most {cap} new appeals per {what} and that many "
                "arrived; try again later (appeals already filed are kept)"
            )


def file_appeal(
    session: Session,
    *,
    block_ref_text: str | None,
    url: str | None,
    message: str,
    contact: str | None,
    dedup_window: timedelta,
    cap_per_hour: int,
    cap_per_day: int,
    now: datetime | None = None,
) -> Filed:
    """File an appeal, or collapse it onto an identical recent one.

    Args:
        session: a write transaction.
        block_ref_text: the reference as typed (any spelling
            :func:`blocklist.blockref.parse_block_ref` reads), or None.
        url: the blocked URL as typed, or None. One of the two is required.
        message: why the block is wrong (required).
        contact: how to reach the appellant (optional).
        dedup_window: an appeal with the same normalised reference or URL
            and message filed within this window absorbs this one.
        cap_per_hour: most new appeals per hour across the service (0: no cap).
        cap_per_day: most new appeals per day (0: no cap).
        now: the time (tests).

    Returns:
        The appeal (new or the one it collapsed onto) and a new secret.

    Raises:
        InvalidField: neither reference nor URL, a field over its cap.
        AppealRefInvalid, AppealRefMistyped: a bad reference, caught
            before anything is stored.
        InvalidURL: a URL that cannot be canonicalised.
        AppealCapReached: the global cap is reached (nothing stored).
    """
    now = audit.resolve_now(now)
    if block_ref_text is None and url is None:
        raise InvalidField("an appeal names a block_ref or a url (or both)")
    prefix = _parse_ref(block_ref_text)
    canonical_url = _check_inputs(url, message, contact)
    printed = block_ref(prefix + bytes(32 - BLOCK_REF_BYTES)) if prefix is not None else None
    dedup = hashlib.sha256(
        _DEDUP_DOMAIN
        + "\n".join([printed or "", canonical_url or "", _normal_text(message)]).encode("utf-8")
    ).digest()
    secret = secrets.token_urlsafe(SECRET_BYTES)
    # Serialise intake (the global chain's lock): the cap and the
    # de-duplication read, then write, without a race between two filers.
    audit.lock_list(session, None)
    earlier = session.scalars(
        select(AppealRow)
        .where(AppealRow.dedup_key == dedup, AppealRow.filed_at > now - dedup_window)
        .order_by(AppealRow.id)
        .limit(1)
    ).first()
    if earlier is not None:
        earlier.duplicates += 1
        session.add(AppealSecretRow(secret_hash=secret_hash(secret), appeal_id=earlier.id))
        session.flush()
        lists = session.scalars(
            select(AppealLinkRow.list_id).where(AppealLinkRow.appeal_id == earlier.id).distinct()
        ).all()
        return Filed(earlier.id, secret, True, tuple(sorted(lists)))
    _check_cap(session, now, cap_per_hour, cap_per_day)
    matches = _matches(session, prefix, canonical_url)
    appeal = AppealRow(
        dedup_key=dedup,
        ref_prefix=prefix,
        has_url=url is not None,
        matched=bool(matches),
        filed_at=now,
        duplicates=0,
    )
    session.add(appeal)
    session.flush()
    session.add(AppealSecretRow(secret_hash=secret_hash(secret), appeal_id=appeal.id))
    session.add(AppealPrivateRow(appeal_id=appeal.id, message=message, contact=contact, url=url))
    by_list: dict[int, list[EntryRow]] = {}
    for entry in matches:
        by_list.setdefault(entry.list_id, []).append(entry)
    for list_id in sorted(by_list):
        events = []
        for entry in by_list[list_id]:
            session.add(
                AppealLinkRow(
                    appeal_id=appeal.id,
                    entry_id=entry.id,
                    list_id=list_id,
                    status=LINK_OPEN,
                    attached_at=now,
                )
            )
            events.append(
                audit.AuditEvent(
                    actor=Actor.APPEALS,
                    action=Action.APPEAL_ATTACH,
                    entry_id=entry.id,
                    details={"appeal": appeal.id, "hash": b64encode(entry.hash)},
                )
            )
        session.flush()
        audit.append_many(session, list_id, events, now=now)
    audit.append(
        session,
        list_id=None,
        actor=Actor.APPEALS,
        action=Action.APPEAL_FILE,
        details={"appeal": appeal.id, "ref": printed, "url": url is not None},
        now=now,
    )
    return Filed(appeal.id, secret, False, tuple(sorted(by_list)))


def _appeal_by_secret(session: Session, secret: str) -> AppealRow | None:
    if not secret or len(secret) > 2 * SECRET_BYTES:
        return None
    appeal_id = session.scalar(
        select(AppealSecretRow.appeal_id).where(AppealSecretRow.secret_hash == secret_hash(secret))
    )
    return session.get(AppealRow, appeal_id) if appeal_id is not None else None


def public_state(session: Session, secret: str) -> tuple[int, str] | None:
    """The appeal and its public state (a key of :data:`PUBLIC_STATES`), None if unknown.

    The state depends only on reviewers' decisions: ``received`` until one
    is made, whether or not the appeal matched an entry.
    """
    appeal = _appeal_by_secret(session, secret)
    if appeal is None:
        return None
    statuses = set(
        session.scalars(
            select(AppealLinkRow.status).where(AppealLinkRow.appeal_id == appeal.id)
        ).all()
    )
    if LINK_SUSPENDED in statuses:
        return appeal.id, "suspended"
    if LINK_OPEN in statuses or (not statuses and appeal.closed_at is None):
        return appeal.id, "received"
    if OUTCOME_REMOVED in statuses:
        return appeal.id, "removed"
    return appeal.id, "no_change"


def _private(session: Session, appeal_id: int) -> AppealPrivateRow | None:
    return session.get(AppealPrivateRow, appeal_id)


def _ref_of(appeal: AppealRow) -> str | None:
    if appeal.ref_prefix is None:
        return None
    return block_ref(bytes(appeal.ref_prefix) + bytes(32 - BLOCK_REF_BYTES))


def _link_view(session: Session, link: AppealLinkRow, entry: EntryRow) -> LinkView:
    private = _private(session, link.appeal_id)
    appeal = session.get(AppealRow, link.appeal_id)
    assert appeal is not None
    return LinkView(
        appeal_id=link.appeal_id,
        list_id=link.list_id,
        entry_id=link.entry_id,
        entry_hash=bytes(entry.hash),
        entry_status=entry.status,
        status=link.status,
        attached_at=link.attached_at,
        decided_at=link.decided_at,
        decided_by=link.decided_by,
        reason=link.reason,
        message=private.message if private else None,
        contact=private.contact if private else None,
        url=private.url if private else None,
        ref=_ref_of(appeal),
    )


def list_links(
    session: Session, list_id: int, *, status: str | None = None, limit: int = 500
) -> list[LinkView]:
    """A list's appeals with their matched entries, oldest first.

    Args:
        status: ``open`` (open or suspended: still under review), a link
            status, or None for all.
    """
    query = select(AppealLinkRow, EntryRow).join(EntryRow, EntryRow.id == AppealLinkRow.entry_id)
    query = query.where(AppealLinkRow.list_id == list_id)
    if status == LINK_OPEN:
        query = query.where(AppealLinkRow.status.in_(_UNDECIDED))
    elif status is not None:
        query = query.where(AppealLinkRow.status == status)
    rows = session.execute(
        query.order_by(AppealLinkRow.attached_at, AppealLinkRow.appeal_id).limit(limit)
    ).all()
    return [_link_view(session, link, entry) for link, entry in rows]


def overdue_count(session: Session, before: datetime) -> int:
    """Appeals waiting since before ``before``: attachments under review, and
    unmatched appeals in the admins' queue."""
    links = session.scalar(
        select(func.count())
        .select_from(AppealLinkRow)
        .where(AppealLinkRow.status.in_(_UNDECIDED), AppealLinkRow.attached_at < before)
    )
    unmatched = session.scalar(
        select(func.count())
        .select_from(AppealRow)
        .where(
            AppealRow.matched.is_(False),
            AppealRow.closed_at.is_(None),
            AppealRow.filed_at < before,
        )
    )
    return int(links or 0) + int(unmatched or 0)


def _appeal_view(session: Session, appeal: AppealRow) -> AppealView:
    private = _private(session, appeal.id)
    return AppealView(
        appeal_id=appeal.id,
        filed_at=appeal.filed_at,
        closed_at=appeal.closed_at,
        matched=appeal.matched,
        duplicates=appeal.duplicates,
        ref=_ref_of(appeal),
        message=private.message if private else None,
        contact=private.contact if private else None,
        url=private.url if private else None,
    )


def unmatched_appeals(
    session: Session, *, open_only: bool = True, limit: int = 500
) -> list[AppealView]:
    """The admins' queue: appeals attached to no list, oldest first."""
    query = select(AppealRow).where(AppealRow.matched.is_(False))
    if open_only:
        query = query.where(AppealRow.closed_at.is_(None))
    rows = session.scalars(query.order_by(AppealRow.id).limit(limit)).all()
    return [_appeal_view(session, a) for a in rows]


def get_appeal(session: Session, appeal_id: int) -> AppealView:
    """One appeal with its private data.

    Raises:
        NotFound: no such appeal.
    """
    appeal = session.get(AppealRow, appeal_id)
    if appeal is None:
        raise NotFound(f"no appeal {appeal_id}")
    return _appeal_view(session, appeal)


def close_unmatched(
    session: Session, appeal_id: int, *, actor: str, reason: str, now: datetime | None = None
) -> AppealView:
    """An admin closes an appeal that matched no list (the public reads "no change").

    Raises:
        NotFound: no such appeal.
        InvalidState: it matched a list (reviewers of that list decide it),
            or it is closed already.
        InvalidEntry: an empty or oversized reason.
    """
    now = audit.resolve_now(now)
    audit.check_actor(actor)
    check_text(reason, "reason", MAX_REASON_CHARS, required=True, multiline=True)
    audit.lock_list(session, None)
    appeal = session.get(AppealRow, appeal_id)
    if appeal is None:
        raise NotFound(f"no appeal {appeal_id}")
    if appeal.matched:
        raise InvalidState(f"appeal {appeal_id} matched a list: its reviewers decide it")
    if appeal.closed_at is not None:
        raise InvalidState(f"appeal {appeal_id} is closed already")
    appeal.closed_at = now
    appeal.closed_by = actor
    session.flush()
    audit.append(
        session,
        list_id=None,
        actor=actor,
        action=Action.APPEAL_DECIDE,
        details={"appeal": appeal_id, "outcome": "closed_unmatched"},
        now=now,
    )
    return _appeal_view(session, appeal)


def _involved(session: Session, entry_id: int) -> tuple[set[str], set[str]]:
    """Who opened a round of the entry (created, reinstated) and who approved it.

    Read from the entry's audit records, exactly as the offline auditor
    reads them (clients.audit.replay), so both apply one rule. Each is
    given twice: as its :func:`blocklist.foureyes.identity_of` (the person
    named in the record's details, issue 15, else the token name) and as
    its bare actor name, so neither a second token of the same person nor
    a token sharing a person's actor name passes for someone else.
    """
    rows = session.execute(
        select(AuditRow.action, AuditRow.actor, AuditRow.details).where(
            AuditRow.entry_id == entry_id,
            AuditRow.action.in_((Action.ENTRY_ADD, Action.ENTRY_REINSTATE, Action.ENTRY_APPROVE)),
        )
    ).all()
    openers: set[str] = set()
    approvers: set[str] = set()
    for action, actor, details in rows:
        person = details.get("person") if isinstance(details, dict) else None
        target = approvers if action == Action.ENTRY_APPROVE else openers
        target.add(actor)
        target.add(foureyes.identity_of(actor, person if isinstance(person, int) else None))
    return openers, approvers


def _off_status(entry: EntryRow) -> str:
    return STATUS_EXPIRED if entry.listed or entry.added_version is not None else STATUS_REMOVED


def decide(
    session: Session,
    list_id: int,
    appeal_id: int,
    *,
    actor: str,
    outcome: str,
    reason: str,
    entry_id: int | None = None,
    person: int | None = None,
    now: datetime | None = None,
) -> Decided:
    """Record a reviewer's decision on an appeal attached to an entry of the list.

    ``person`` is the reviewer's account (issue 15), compared with everyone
    who created, reinstated or approved the entry.

    Raises:
        NotFound: the appeal is not attached to this list (or to ``entry_id``).
        InvalidField: a bad outcome; several entries matched and ``entry_id``
            names none of them.
        InvalidEntry: an empty or oversized reason.
        IneligibleReviewer: the actor created, reinstated or approved the entry.
        InvalidState: decided already; ``suspended`` twice or on an entry not
            active; the entry is the canary.
    """
    now = audit.resolve_now(now)
    audit.check_actor(actor)
    if outcome not in APPEAL_OUTCOMES:
        raise InvalidField(f"outcome is one of {', '.join(APPEAL_OUTCOMES)}")
    check_text(reason, "reason", MAX_REASON_CHARS, required=True, multiline=True)
    audit.lock_list(session, list_id)
    links = session.scalars(
        select(AppealLinkRow)
        .where(AppealLinkRow.list_id == list_id, AppealLinkRow.appeal_id == appeal_id)
        .order_by(AppealLinkRow.entry_id)
        .with_for_update()
    ).all()
    if entry_id is not None:
        links = [link for link in links if link.entry_id == entry_id]
    if not links:
        raise NotFound(f"no appeal {appeal_id} on this list")
    if len(links) > 1:
        ids = ", ".join(str(link.entry_id) for link in links)
        raise InvalidField(f"appeal {appeal_id} matched entries {ids}: name one as 'entry'")
    link = links[0]
    if link.status not in _UNDECIDED:
        raise InvalidState(f"appeal {appeal_id} was decided already ({link.status})")
    entry = get_entry(session, list_id, link.entry_id, lock=True)
    lst = session.get(ListRow, list_id)
    if lst is not None and lst.canary_entry_id == entry.id:
        raise InvalidState("the canary entry is never appealable")
    openers, approvers = _involved(session, entry.id)
    refusal = foureyes.reviewer_refusal(
        foureyes.identity_of(actor, person), openers, approvers
    ) or foureyes.reviewer_refusal(actor, openers, approvers)
    if refusal is not None:
        raise IneligibleReviewer(
            f"{actor} {refusal}: the reviewer must be someone who neither created nor approved it"
        )
    h = b64encode(entry.hash)
    events = [
        audit.AuditEvent(
            actor=actor,
            action=Action.APPEAL_DECIDE,
            entry_id=entry.id,
            details={
                "appeal": appeal_id,
                "hash": h,
                "outcome": outcome,
                "reason": reason,
                **({} if person is None else {"person": person}),
            },
        )
    ]
    publish_now = False
    if outcome == OUTCOME_SUSPENDED:
        if link.status == LINK_SUSPENDED:
            raise InvalidState(f"appeal {appeal_id} has the entry suspended already")
        if entry.status != STATUS_ACTIVE:
            raise InvalidState(
                f"entry {entry.id} is {entry.status}: only an active entry is suspended"
            )
        entry.status = _off_status(entry)
        entry.expires_at = now
        sync_publish_flag(entry)
        publish_now = True
        events.append(
            audit.AuditEvent(
                actor=actor,
                action=Action.ENTRY_SUSPEND,
                entry_id=entry.id,
                details={"hash": h, "appeal": appeal_id, "status": entry.status},
            )
        )
    elif outcome == OUTCOME_REMOVED:
        was_suspended = link.status == LINK_SUSPENDED
        if entry.status in (STATUS_ACTIVE, STATUS_PENDING) or was_suspended:
            if entry.status in (STATUS_ACTIVE, STATUS_PENDING):
                entry.status = _off_status(entry)
                entry.expires_at = now
                sync_publish_flag(entry)
            events.append(
                audit.AuditEvent(
                    actor=actor,
                    action=Action.ENTRY_EXPIRE,
                    entry_id=entry.id,
                    details={
                        "hash": h,
                        "reason": REASON_CODE_APPEAL,
                        "appeal": appeal_id,
                        "at": format_time(now),
                        "status": entry.status,
                    },
                )
            )
    elif link.status == LINK_SUSPENDED and entry.status in (STATUS_EXPIRED, STATUS_REMOVED):
        # Upheld after a suspension: back through four-eyes. The reviewer
        # opens the round and may not approve it (blocklist.foureyes rule 2).
        if entry.plaintext_pruned_at is not None:
            raise InvalidState(f"entry {entry.id}'s plaintext was pruned: add its URL again first")
        entry.status = STATUS_PENDING
        entry.approval_round += 1
        entry.submitted_by = actor
        entry.submitted_person = person
        entry.expires_at = None
        sync_publish_flag(entry)
        events.append(
            audit.AuditEvent(
                actor=actor,
                action=Action.ENTRY_REINSTATE,
                entry_id=entry.id,
                details={
                    "hash": h,
                    "reason": reason,
                    "round": entry.approval_round,
                    "status": entry.status,
                    "appeal": appeal_id,
                    **({} if person is None else {"person": person}),
                },
            )
        )
    link.status = outcome
    link.decided_at = now
    link.decided_by = actor
    link.reason = reason
    session.flush()
    audit.append_many(session, list_id, events, now=now)
    open_left = session.scalar(
        select(func.count())
        .select_from(AppealLinkRow)
        .where(AppealLinkRow.appeal_id == appeal_id, AppealLinkRow.status.in_(_UNDECIDED))
    )
    appeal = session.get(AppealRow, appeal_id)
    if appeal is not None and not open_left:
        appeal.closed_at = now
        appeal.closed_by = actor
    session.flush()
    return Decided(_link_view(session, link, entry), publish_now)


def erase(
    session: Session, appeal_id: int, *, actor: str, why: str, now: datetime | None = None
) -> bool:
    """Erase the appellant's message, contact and URL; the audit records stay.

    Returns:
        Whether there was anything to erase.

    Raises:
        NotFound: no such appeal.
    """
    now = audit.resolve_now(now)
    audit.check_actor(actor)
    audit.lock_list(session, None)
    if session.get(AppealRow, appeal_id) is None:
        raise NotFound(f"no appeal {appeal_id}")
    row = _private(session, appeal_id)
    if row is None:
        return False
    session.delete(row)
    session.flush()
    audit.append(
        session,
        list_id=None,
        actor=actor,
        action=Action.APPEAL_ERASE,
        details={"appeal": appeal_id, "why": why},
        now=now,
    )
    return True


def erase_expired(session: Session, *, days: int, now: datetime | None = None) -> list[int]:
    """Retention: erase the private data of appeals closed more than ``days`` ago.

    Open appeals keep theirs (reviewers need the message). Returns the ids erased.
    """
    now = audit.resolve_now(now)
    cutoff = now - timedelta(days=days)
    ids: Sequence[int] = session.scalars(
        select(AppealRow.id)
        .join(AppealPrivateRow, AppealPrivateRow.appeal_id == AppealRow.id)
        .where(AppealRow.closed_at.is_not(None), AppealRow.closed_at < cutoff)
        .order_by(AppealRow.id)
    ).all()
    done = [i for i in ids if erase(session, i, actor=Actor.RETENTION, why="retention", now=now)]
    return done
