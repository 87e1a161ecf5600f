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

This package is the one import path; its private modules hold one concept
each:

| module      | holds                                                           |
|-------------|-----------------------------------------------------------------|
| ``_intake`` | filing, matching to entries, the public status                  |
| ``_queue``  | appeal and link states, the reviewers' and admins' views        |
| ``_review`` | a reviewer's decision, closing an unmatched appeal              |
| ``_erasure``| erasing the appellant's data, on request and by retention       |
"""

from __future__ import annotations

from blocklist.store.appeals._erasure import erase, erase_expired
from blocklist.store.appeals._intake import (
    MAX_CONTACT_CHARS,
    MAX_MESSAGE_CHARS,
    PUBLIC_STATES,
    SECRET_BYTES,
    AppealCapReached,
    AppealRefInvalid,
    AppealRefMistyped,
    Filed,
    file_appeal,
    public_state,
    secret_hash,
)
from blocklist.store.appeals._queue import (
    LINK_OPEN,
    LINK_SUSPENDED,
    OUTCOME_REMOVED,
    OUTCOME_SUSPENDED,
    OUTCOME_UPHELD,
    AppealView,
    LinkView,
    get_appeal,
    list_links,
    overdue_count,
    unmatched_appeals,
)
from blocklist.store.appeals._review import (
    REASON_CODE_APPEAL,
    Decided,
    IneligibleReviewer,
    close_unmatched,
    decide,
)

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
