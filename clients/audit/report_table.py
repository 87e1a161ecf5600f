"""The text form of ``cleanfeed audit verify``: the report as a table.

One row per group of checks (keyrings, audit log, global records,
statements, replay, decisions, Merkle log, entries, extra checkpoints), each
OK, FAILED, stopped or not reached, following the stages of
:func:`clients.audit.verify.verify_bundle`; then the extra checkpoints'
results, equivocation proofs, warnings, what no signature covers and the
verdict. ``--json`` prints :meth:`AuditReport.to_json` instead.
"""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.table import Table

from blocklist.encoding import b64encode, format_time
from clients.audit import report as v
from clients.audit.report import AuditReport, iso_time

__all__ = ["print_report"]


def print_report(report: AuditReport, sources: list[str], bundle_file: Path) -> None:
    """Print ``report`` as a table of check groups, then its notes and verdict.

    Args:
        report: the verification's report.
        sources: the file each extra checkpoint came from, in order.
        bundle_file: the verified bundle (the table's title).
    """
    console = Console(highlight=False)
    failure = report.failure
    counts = report.counts
    row_checks = {
        "keyrings": {v.CHECK_KEYRING},
        "audit": {v.CHECK_AUDIT_CHAIN, v.CHECK_AUDIT_RECORDS},
        "global": {v.CHECK_GLOBAL_CHAIN, v.CHECK_GLOBAL_HEAD, v.CHECK_PERSONS},
        "statements": {
            v.CHECK_FORMAT,
            v.CHECK_KEYRING_USE,
            v.CHECK_SIGNATURE,
            v.CHECK_NUMBERING,
            v.CHECK_ORIGIN,
            v.CHECK_PREVIOUS,
        },
        "replay": {v.CHECK_DELTA, v.CHECK_COUNT, v.CHECK_STATE},
        "decisions": {v.CHECK_AUDIT_HEAD, v.CHECK_ADDITION, v.CHECK_REMOVAL, v.CHECK_APPEAL},
        "checkpoints": {v.CHECK_CHECKPOINT},
        "entries": {v.CHECK_ENTRIES},
        "extra": {v.CHECK_EXTRA},
    }
    # The pass runs in stages; statements, replay and decisions share one.
    stage_of = {
        "keyrings": 1,
        "audit": 2,
        "global": 2,
        "statements": 3,
        "replay": 3,
        "decisions": 3,
        "checkpoints": 4,
        "entries": 5,
        "extra": 6,
    }
    failed_stage = 0
    if failure is not None:
        for row, checks in row_checks.items():
            if failure.check in checks:
                failed_stage = stage_of[row]

    def status(row: str) -> str:
        if failure is None:
            return "[green]OK[/green]"
        if failure.check in row_checks[row]:
            return "[bold red]FAILED[/bold red]"
        stage = stage_of[row]
        if stage < failed_stage:
            return "[green]OK[/green]"
        if stage == failed_stage:
            return "[yellow]stopped[/yellow]"
        return "[dim]not reached[/dim]"

    cp = report.checkpoint
    rows: list[tuple[str, str, str]] = [
        (
            "Keyrings",
            "keyrings",
            f"{counts.keyrings} serial(s) walked from the pinned root(s); "
            f"{counts.root_rotations} root rotation(s); {counts.online_keys} online key(s)"
            + (
                f"; latest serial {report.keyring_serial} expires "
                f"{format_time(report.keyring_expires)}"
                if report.keyring_expires is not None
                else ""
            ),
        )
    ]
    if report.kind == "full":
        rows.append(
            (
                "Audit log",
                "audit",
                f"{counts.audit_records} record(s), hash chain intact",
            )
        )
        rows.append(
            (
                "Global records",
                "global",
                f"{counts.global_records} token record(s), hash chain intact; "
                f"{counts.global_committed} committed by the list's statements",
            )
        )
    rows.append(
        (
            "Statements",
            "statements",
            f"{counts.statements} version(s): signatures under the keyring in force, "
            "numbering, previous chain, origin",
        )
    )
    rows.append(
        (
            "Replay",
            "replay",
            f"{counts.additions} addition(s), {counts.removals} removal(s); every count and "
            f"state digest matches; {report.count} listed after version {report.version}",
        )
    )
    if report.kind == "full":
        rows.append(
            (
                "Decisions",
                "decisions",
                f"{counts.backed_additions} addition(s) approved (four-eyes: "
                f"{report.approvals_required or '?'}), {counts.backed_removals} removal(s) "
                "backed by expiries; audit heads monotonic",
            )
        )
    cp_detail = f"{counts.checkpoints} checkpoint(s), all prefixes of the log"
    if cp is not None and cp.root is not None:
        cp_detail += (
            f"; latest: size {cp.size}, root {b64encode(cp.root)}, signed "
            f"{iso_time(cp.timestamp) if cp.timestamp is not None else '?'} by {cp.key}"
        )
    rows.append(("Merkle log", "checkpoints", cp_detail))
    if report.kind == "full":
        rows.append(
            (
                "Entries",
                "entries",
                f"{counts.entries} entries: expressions hash to their hashes, fields match "
                "their records"
                + (
                    f"; {counts.entries_pruned} without plaintext, each pruned by a "
                    "retention record"
                    if counts.entries_pruned
                    else ""
                ),
            )
        )
    if sources:
        ok = sum(1 for c in report.extra_checkpoints if c.status == "ok")
        rows.append(
            ("Extra checkpoints", "extra", f"{ok} of {len(sources)} consistent with the log")
        )

    table = Table(title=f"cleanfeed audit: {bundle_file}", show_lines=False)
    table.add_column("Check")
    table.add_column("Result")
    table.add_column("Detail", overflow="fold")
    partial = {
        "keyrings": f"{counts.keyrings} serial(s) verified",
        "audit": f"{counts.audit_records} record(s) verified",
        "global": f"{counts.global_records} global record(s) verified",
        "statements": f"{counts.statements} version(s) verified before the failure",
        "replay": f"{counts.additions} addition(s), {counts.removals} removal(s) replayed "
        "before the failure",
        "decisions": f"{counts.backed_additions} addition(s), {counts.backed_removals} "
        "removal(s) backed before the failure",
        "checkpoints": f"{counts.checkpoints} checkpoint(s) verified",
        "entries": f"{counts.entries} entries verified",
        "extra": f"{counts.extra_checkpoints} of {len(sources)} consistent with the log",
    }
    for title, key, detail in rows:
        shown = status(key)
        if "OK" not in shown:
            detail = "" if "not reached" in shown else partial[key]
        table.add_row(title, shown, detail)
    console.print(
        f"list [bold]{report.list_name or '?'}[/bold]  origin {report.origin or '?'}  "
        f"kind {report.kind or '?'}"
    )
    console.print(table)
    for i, source in enumerate(sources):
        result = report.extra_checkpoints[i] if i < len(report.extra_checkpoints) else None
        state = result.status if result is not None else "not_checked"
        detail = f": {result.detail}" if result is not None and result.detail else ""
        console.print(f"extra[{i}] from {source}: {state}{detail}", markup=False)
    for proof in report.equivocations:
        console.print(proof.to_text(), markup=False)
    for w in report.warnings:
        console.print(f"[yellow]warning:[/yellow] {w}")
    if report.unauthenticated:
        console.print(
            "not covered by any signature: " + "; ".join(report.unauthenticated), style="dim"
        )
    if failure is None:
        console.print("[bold green]VERIFIED[/bold green]")
    else:
        console.print("[bold red]NOT VERIFIED[/bold red]: ", end="")
        console.print(str(failure), markup=False)
