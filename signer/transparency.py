"""Issue a list's transparency report for a month: compute, sign once, store.

DESIGN.md part 2, "Transparency report": the note names the list version
and the audit-log head at the end of the period and is signed by the
online key valid for that version (the keyring's key whose range contains
it), so it verifies offline with the root key and the keyrings. It is
issued once per period, only after the period has ended, and never
re-signed: a second request returns the stored bytes.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from blocklist.keyring import Keyring
from blocklist.store import audit
from blocklist.store import transparency as store_reports
from blocklist.store import versions as store_versions
from blocklist.store.db import Database
from blocklist.store.errors import InvalidState
from blocklist.store.lists import get_list
from blocklist.transparency import Report, compute_figures, head_before, parse_period
from signer.datadir import online_key_path
from signer.errors import NoKeyring, OnlineKeyMissing
from signer.keys import load_key
from signer.note import parse_note, sign_note

__all__ = ["issue_report"]


def issue_report(
    db: Database, list_name: str, period: str, keys_dir: Path, *, now: datetime | None = None
) -> str:
    """The signed report note of ``list_name`` for ``period``, issuing it on first request.

    Raises:
        FormatError: a bad period.
        NotFound: no such list.
        InvalidState: the period has not ended, or nothing was published
            before its end (no version names the list's state).
        NoKeyring, OnlineKeyMissing, KeyFileError: no key may sign it here.
    """
    now = now or datetime.now(UTC)
    _, end = parse_period(period)
    with db.read() as session:
        lst = get_list(session, list_name)
        stored = store_reports.get_report(session, lst.id, period)
    if stored is not None:
        return stored
    if end > now:
        raise InvalidState(
            f"the period {period} has not ended; its report is issued from "
            f"{end.strftime('%Y-%m-%d')} (UTC)"
        )
    with db.transaction() as session:
        lst = get_list(session, list_name)
        audit.lock_list(session, lst.id)
        stored = store_reports.get_report(session, lst.id, period)
        if stored is not None:
            return stored
        version = store_reports.version_before(session, lst.id, end)
        if version == 0:
            raise InvalidState(f"list {list_name!r} published no version before {period} ended")
        records = store_reports.all_records(session, lst.id)
        seq, head = head_before(records, end)
        text = Report(
            origin=lst.origin,
            period=period,
            version=version,
            audit_seq=seq,
            audit_head=head,
            figures=compute_figures(records, period),
        ).to_text()
        row = store_versions.get_keyring(session, lst.id)
        if row is None:
            raise NoKeyring(f"list {list_name!r} has no keyring")
        keyring = Keyring.parse(parse_note(row.note).text)
        vkeys = keyring.keys_for_version(version)
        if len(vkeys) != 1:
            raise OnlineKeyMissing(
                f"keyring serial {keyring.serial} names no key for version {version}"
            )
        path = online_key_path(keys_dir, list_name, vkeys[0])
        if not path.exists():
            raise OnlineKeyMissing(
                f"the key that signed version {version} ({vkeys[0]}) is not at {path}"
            )
        note = sign_note(text, [load_key(path)])
        return store_reports.put_report(session, lst.id, period, note, now)
