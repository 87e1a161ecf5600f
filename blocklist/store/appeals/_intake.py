"""Public intake: filing an appeal, matching it to entries, its public state.

Step 1 of the life told in :mod:`blocklist.store.appeals`. Intake is the
one write anyone may make without a token, so it is bounded three ways:
each field has a cap, an identical appeal within the de-duplication window
collapses onto the earlier one, and a global cap per hour and per day
refuses a flood (:class:`AppealCapReached`) before anything is stored.
"""

from __future__ import annotations

import hashlib
import math
import re
import secrets
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from sqlalchemy import ColumnElement, and_, func, or_, select
from sqlalchemy.orm import Session

from blocklist import canonical
from blocklist.auditlog import Action, Actor
from blocklist.blockref import (
    BLOCK_REF_BYTES,
    InvalidBlockRef,
    MistypedBlockRef,
    parse_block_ref,
)
from blocklist.encoding import b64encode
from blocklist.store import audit
from blocklist.store.appeals._queue import (
    LINK_OPEN,
    LINK_SUSPENDED,
    OUTCOME_REMOVED,
    printed_ref,
)
from blocklist.store.errors import InvalidField, LimitExceeded
from blocklist.store.models import (
    STATUS_ACTIVE,
    AppealLinkRow,
    AppealPrivateRow,
    AppealRow,
    AppealSecretRow,
    EntryRow,
    ListRow,
)
from blocklist.store.submissions import MAX_URL_CHARS, check_text

__all__ = [
    "MAX_CONTACT_CHARS",
    "MAX_MESSAGE_CHARS",
    "PUBLIC_STATES",
    "SECRET_BYTES",
    "AppealCapReached",
    "AppealRefInvalid",
    "AppealRefMistyped",
    "Filed",
    "file_appeal",
    "public_state",
    "secret_hash",
]

#: Longest appeal message: a few paragraphs. The public body cap (16 KiB,
#: api.bodygate) bounds the request; this bounds what is stored.
MAX_MESSAGE_CHARS: Final = 4000
#: Longest contact (an e-mail address is at most 254 characters, RFC 5321
#: section 4.5.3.1.3; a phone number or a name fits too).
MAX_CONTACT_CHARS: Final = 320
#: Bytes of randomness in a status secret: 256 bits, unguessable.
SECRET_BYTES: Final = 32

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
    """The global cap of appeals per hour or per day is reached (flood).

    Attributes:
        retry_after: whole seconds until the window has room again (when
            enough of the appeals in it have aged out of it), at least 1;
            the API sends it as ``Retry-After`` (RFC 9110 section 10.2.3).
    """

    code = "appeal_cap_reached"

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True)
class Filed:
    """What filing answered: the appeal and a fresh status secret."""

    appeal_id: int
    secret: str
    duplicate: bool
    #: Lists the appeal was attached to (never shown to the public).
    list_ids: tuple[int, ...]


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
        count = int(filed or 0)
        if count >= cap:
            # Room again once the oldest count - cap + 1 appeals of the window
            # have left it: the (count - cap + 1)-th oldest leaves last.
            leaving = session.scalar(
                select(AppealRow.filed_at)
                .where(AppealRow.filed_at > now - window)
                .order_by(AppealRow.filed_at)
                .offset(count - cap)
                .limit(1)
            )
            wait = (leaving + window - now).total_seconds() if leaving is not None else 1.0
            raise AppealCapReached(
                f"the service takes at most {cap} new appeals per {what} and that many "
                "arrived; try again later (appeals already filed are kept)",
                retry_after=max(1, math.ceil(wait)),
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
    printed = printed_ref(prefix) if prefix is not None else None
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
    filing = {"appeal": appeal.id, "ref": printed, "url": url is not None}
    audit.append_global(session, Actor.APPEALS, Action.APPEAL_FILE, filing, now)
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
