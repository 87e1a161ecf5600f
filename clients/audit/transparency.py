"""Verify a transparency report offline (``cleanfeed audit verify-report``).

Issue 17 item 5. With the pinned root key and the list's keyrings (given
as files, or taken from an audit bundle), the report note must be signed by
the online key whose range holds the version it names. With a bundle, the
bundle must verify (:func:`clients.audit.verify.verify_bundle`), the
version must be the last one published before the period's end, and, for a
full bundle, the audit head must be the chain's head at the end and every
figure must equal what :func:`blocklist.transparency.compute_figures`
recomputes from the bundle's audit log: the very function the server used.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from blocklist.encoding import b64encode
from blocklist.errors import FormatError
from blocklist.keyring import Keyring
from blocklist.statement import Statement
from blocklist.transparency import (
    FIGURES,
    Report,
    compute_figures,
    head_before,
    parse_period,
    parse_report,
)
from clients.audit.bundle import Bundle
from clients.audit.verify import verify_bundle
from signer.errors import KeyringError, NoteError
from signer.keyring import verifiers_for_statement, verify_keyring_update
from signer.note import parse_note, verify_note

__all__ = ["ReportCheck", "ReportInvalid", "verify_report"]


class ReportInvalid(Exception):
    """The report does not verify; ``check`` names the failed step."""

    def __init__(self, check: str, reason: str) -> None:
        """Create the failure of step ``check``."""
        super().__init__(f"{check}: {reason}")
        self.check = check
        self.reason = reason


@dataclass
class ReportCheck:
    """What verified."""

    report: Report
    keyring_serial: int
    signer: str
    bundle_verified: bool = False
    figures_recomputed: bool = False
    warnings: list[str] = field(default_factory=list)


def _keyrings(
    notes: Sequence[str], roots: Sequence[str], origin: str, now: datetime
) -> list[Keyring]:
    held: Keyring | None = None
    out: list[Keyring] = []
    for i, note in enumerate(notes):
        try:
            held = verify_keyring_update(
                note, held=held, pinned_roots=roots, now=now, origin=origin, expired_ok=True
            )
        except KeyringError as e:
            raise ReportInvalid("keyring", f"keyring {i + 1}: {e}") from e
        out.append(held)
    if not out:
        raise ReportInvalid("keyring", "no keyring given")
    return out


def verify_report(
    note: str,
    roots: Sequence[str],
    *,
    keyrings: Sequence[str] = (),
    bundle: Bundle | None = None,
    now: datetime | None = None,
) -> ReportCheck:
    """Verify a transparency report note.

    Args:
        note: the signed note.
        roots: pinned root vkeys.
        keyrings: keyring notes in serial order (when no bundle is given).
        bundle: an audit bundle of the list (its keyrings are used; a full
            one lets every figure be recomputed).
        now: the time (tests).

    Returns:
        What verified.

    Raises:
        ReportInvalid: the first failed step: ``format``, ``keyring``,
            ``signature``, ``bundle``, ``version``, ``audit_head`` or
            ``figures`` (every differing figure is named).
    """
    now = now or datetime.now(UTC)
    try:
        report = parse_report(parse_note(note).text)
    except (FormatError, NoteError) as e:
        raise ReportInvalid("format", str(e)) from e
    notes = list(bundle.keyrings) if bundle is not None else list(keyrings)
    chain = _keyrings(notes, roots, report.origin, now)
    covering = [k for k in chain if k.keys_for_version(report.version)]
    if not covering:
        raise ReportInvalid("signature", f"no keyring names a key for version {report.version}")
    keyring = covering[-1]
    try:
        verified = verify_note(note, verifiers_for_statement(keyring, report.version))
    except (NoteError, KeyringError) as e:
        raise ReportInvalid(
            "signature", f"not signed by the key of version {report.version}: {e}"
        ) from e
    check = ReportCheck(report, keyring.serial, verified.verifiers[0].vkey)
    if bundle is None:
        check.warnings.append("no bundle: the figures were not recomputed")
        return check
    if bundle.origin != report.origin:
        raise ReportInvalid("bundle", f"the bundle is of {bundle.origin}, not {report.origin}")
    audit = verify_bundle(bundle, roots, workers=1, now=now)
    if not audit.ok:
        raise ReportInvalid("bundle", f"the bundle does not verify: {audit.failure}")
    check.bundle_verified = True
    _, end = parse_period(report.period)
    published = [Statement.parse(parse_note(n).text) for n in bundle.statements]
    before = [st.version for st in published if st.time < end]
    expected = before[-1] if before else 0
    if report.version != expected:
        raise ReportInvalid(
            "version",
            f"the report names version {report.version}; the last version before the period's "
            f"end is {expected}",
        )
    if bundle.audit_log is None:
        check.warnings.append("hash-only bundle: the figures were not recomputed")
        return check
    records = list(bundle.audit_log)
    seq, head = head_before(records, end)
    if (seq, head) != (report.audit_seq, report.audit_head):
        raise ReportInvalid(
            "audit_head",
            f"the report names audit head {report.audit_seq} {b64encode(report.audit_head)}; "
            f"the log's head at the period's end is {seq} {b64encode(head)}",
        )
    figures = compute_figures(records, report.period)
    wrong = [
        f"{name} {report.figures[name]} (recomputed {figures[name]})"
        for name in FIGURES
        if figures[name] != report.figures[name]
    ]
    if wrong:
        raise ReportInvalid("figures", "; ".join(wrong))
    check.figures_recomputed = True
    return check
