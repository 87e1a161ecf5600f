"""Server-side persistence: SQLAlchemy models, migrations and domain services.

Only the server (``api``, ``signer``) imports this package; the ISP client
and the auditor never do (tests/test_layering.py).

| module       | offers                                                                |
|--------------|-----------------------------------------------------------------------|
| ``db``       | :class:`Database` (engine, sessions, transactions), advisory locks,   |
|              | ``get_row`` / ``one_row`` (a row by key / by query, else NotFound)    |
| ``models``   | the tables                                                            |
| ``migrate``  | :func:`~blocklist.store.migrate.upgrade` (Alembic, no alembic.ini)    |
| ``errors``   | store errors with stable codes                                        |
| ``audit``    | append to / read / verify the hash-chained audit log                 |
| ``lists``    | create (with canary), get, enumerate lists                            |
| ``entries``  | one entry at a time: add, approve (four-eyes), expire, reinstate,     |
|              | due expiries, every entry of a list                                   |
| ``submissions`` | what a submitted entry must be; a new entry's row and record       |
| ``search``   | search entries; an entry's history                                    |
| ``imports``  | bulk add, imports (batches of one submission), bulk approval          |
| ``versions`` | the publisher's side: pending changes, versions, tree, checkpoints,   |
|              | keyrings, snapshots, plaintext, publish requests, ISP versions,       |
|              | publish state of every list                                           |
| ``witnesses``| registered witnesses and their cosignature lines                      |
| ``tokens``   | issue, look up, revoke tokens; batched last-use                       |
| ``retention``| prune old snapshots and off-list plaintext by policy                  |
| ``hits``     | ISPs' weekly hit counts (opt-in); totals across ISPs only             |
| ``accounts`` | persons' accounts: roles, second-admin grants, enrolment, factors,    |
|              | person tokens (a package; its modules are private)                    |
| ``sessions`` | console sessions and failed-login back-off                            |
| ``guards``   | guarded hosts, guard approvals, hosting evidence, referrals           |
| ``appeals``  | appeal intake, reviewers' queue, decisions, erasure (a package)       |

The four-eyes rules are stated in :mod:`blocklist.foureyes`; ``entries``
and ``imports`` enforce them. Every service is a function taking a
:class:`sqlalchemy.orm.Session` as its first argument and runs inside the
caller's :meth:`Database.transaction`, so one request is one transaction.
No SQL lives outside this package (``api`` and ``signer`` call services).
"""

from __future__ import annotations

from blocklist.store.db import Database
from blocklist.store.errors import (
    AdminCannotApprove,
    BulkRejected,
    Conflict,
    DuplicateApproval,
    InvalidField,
    InvalidState,
    LimitExceeded,
    NotFound,
    PermissionDenied,
    Pruned,
    SelfApproval,
    StoreError,
    StoreUnavailable,
)

__all__ = [
    "AdminCannotApprove",
    "BulkRejected",
    "Conflict",
    "Database",
    "DuplicateApproval",
    "InvalidField",
    "InvalidState",
    "LimitExceeded",
    "NotFound",
    "PermissionDenied",
    "Pruned",
    "SelfApproval",
    "StoreError",
    "StoreUnavailable",
]
