"""``cleanfeed entries …`` and ``cleanfeed publish``: what analysts do from scripts.

Every command talks to the HTTP API with httpx (docs/quickstart.md, "From a
shell"). Common options, each also an environment variable:

- ``--server URL`` (``CLEANFEED_SERVER``);
- the token from ``--token-file FILE`` (``CLEANFEED_TOKEN_FILE``) or the
  ``CLEANFEED_TOKEN`` variable; never as a command-line argument, where it
  would land in shell history and the process table;
- ``--list NAME`` (``CLEANFEED_LIST``, default ``main``);
- ``--json``: print one JSON document instead of text.

Exit codes (:data:`clients.analyst.connection.EXIT_CODES`): 0 done; 1 the server refused the request
(its problem code is printed) or ``add`` was not confirmed; 2 a usage or
configuration error (no token, a server URL without a scheme, an unreadable
file); 3 a bulk command finished but some rows were refused (see the
per-row results); 4 the server could not be reached or answered something
that is not the API.

The package is split by concept: :mod:`clients.analyst.connection` (the
common options, the API client, errors and exit codes) and
:mod:`clients.analyst.bulk` (the import file, its batches and result file);
this module holds the commands, each a mapping of options onto API routes.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, NoReturn

import click

from clients.analyst.bulk import (
    MAX_BATCH_ROWS,
    NOT_SENT,
    RESULT_BY_STATUS,
    Record,
    batches,
    csv_bytes,
    read_csv,
    write_results,
)
from clients.analyst.connection import (
    EXIT_PARTIAL,
    EXIT_REFUSED,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
    HELP_EPILOG,
    CliFailure,
    common_options,
    emit,
    open_api,
)

__all__ = [
    "add_command",
    "approve_command",
    "entries_group",
    "expire_command",
    "import_command",
    "publish_command",
    "refer_command",
    "referrals_command",
    "search_command",
    "show_command",
]


def _exit(code: int) -> NoReturn:
    sys.exit(code)


@click.group(
    "entries",
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog=HELP_EPILOG,
)
def entries_group() -> None:
    """Curate a list from a shell: add, import, approve, expire, search, show.

    Every command needs --server (or CLEANFEED_SERVER) and an analyst token
    from --token-file (or CLEANFEED_TOKEN_FILE, or the token in
    CLEANFEED_TOKEN). Add --json to get one JSON document per command.
    """


# --- add ----------------------------------------------------------------------


def _print_reach(preview: dict[str, Any]) -> None:
    reach = preview.get("reach") or {}
    if reach:
        click.echo(f"expression: {reach.get('expression')}  ({preview.get('requested_scope')})")
        if reach.get("explanation"):
            click.echo(f"reach: {reach['explanation']}")
        for m in reach.get("matches", [])[:10]:
            click.echo(f"  blocks        {m}")
        for m in reach.get("does_not_match", [])[:10]:
            click.echo(f"  does not block {m}")
    # Safeguards (issue 16): the rule that applies and the blast radius.
    guards = preview.get("safeguards") or {}
    for rule in guards.get("rules", []):
        click.echo(f"safeguard: {rule}")
    if guards.get("subsumes"):
        more = "at least " if guards.get("subsumes_capped") else ""
        click.echo(f"covers {more}{guards['subsumes']} entries already listed")
    refusal = preview.get("refusal")
    if refusal:
        click.echo(f"refused: {refusal.get('code')}: {refusal.get('detail')}")


@entries_group.command("add", epilog=HELP_EPILOG)
@click.argument("url")
@click.option(
    "--scope",
    type=click.Choice(["page", "prefix", "host"]),
    default="page",
    show_default=True,
    help="What the entry blocks: one page, a directory, or a whole host.",
)
@click.option("--reason", required=True, help="Why it is listed (kept in the audit log).")
@click.option("--reference", default=None, help="Case reference.")
@click.option("--category", default=None, help="Category label.")
@click.option("--hosting-country", default=None, help="ISO 3166-1 alpha-2 hosting country.")
@click.option("--expires-at", default=None, help="Future expiry, RFC 3339 with offset.")
@click.option(
    "--yes", "-y", is_flag=True, help="Add without asking (scripts): the reach is printed."
)
@common_options
def add_command(
    url: str,
    scope: str,
    reason: str,
    reference: str | None,
    category: str | None,
    hosting_country: str | None,
    expires_at: str | None,
    yes: bool,
    **common: Any,
) -> None:
    """Show what URL would block (the reach preview), then add it as pending.

    Without --yes the command asks before adding; a script passes --yes. The
    entry needs a colleague's approval (`cleanfeed entries approve ID`).
    """
    api = open_api(**common)
    asked: dict[str, Any] = {"url": url, "scope": scope}
    if hosting_country is not None:
        asked["hosting_country"] = hosting_country  # the domestic-hosting check previews too
    preview = api.call("POST", api.path("/entries/preview"), json=asked)
    if not api.as_json:
        _print_reach(preview)
    if not preview.get("accepted"):
        if api.as_json:
            click.echo(json.dumps({"preview": preview, "entry": None}, indent=2, sort_keys=True))
        refusal = preview.get("refusal") or {}
        raise CliFailure(
            f"{refusal.get('code', 'refused')}: {refusal.get('detail', 'not added')}",
            EXIT_REFUSED,
        )
    if not yes:
        if not sys.stdin.isatty():
            raise CliFailure(
                "not added: confirm interactively, or pass --yes to add without asking",
                EXIT_USAGE,
            )
        if not click.confirm("Add this entry?", default=False, err=True):
            raise CliFailure("not added", EXIT_REFUSED)
    body: dict[str, Any] = {"url": url, "scope": scope, "reason": reason}
    for key, value in (
        ("reference", reference),
        ("category", category),
        ("hosting_country", hosting_country),
        ("expires_at", expires_at),
    ):
        if value is not None:
            body[key] = value
    entry = api.call("POST", api.path("/entries"), json=body, expect=(200, 201))
    emit(
        api,
        {"preview": preview, "entry": entry},
        lambda: click.echo(
            f"entry {entry['id']} {entry['status']} (hash {entry['hash']}); "
            f"approve with: cleanfeed entries approve {entry['id']}"
        ),
    )


# --- import ---------------------------------------------------------------------


@entries_group.command("import", epilog=HELP_EPILOG)
@click.argument("csv_file", metavar="FILE.csv", type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "--results",
    "results_file",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Per-row result file (CSV; default FILE.results.csv next to the input).",
)
@click.option(
    "--batch-size",
    type=click.IntRange(1, MAX_BATCH_ROWS),
    default=MAX_BATCH_ROWS,
    show_default=True,
    help="Rows per upload.",
)
@click.option(
    "--import",
    "import_id",
    type=click.IntRange(min=1),
    default=None,
    help="Add to an import you started earlier (its id) instead of starting one.",
)
@common_options
def import_command(
    csv_file: Path,
    results_file: Path | None,
    batch_size: int,
    import_id: int | None,
    **common: Any,
) -> None:
    """Add every row of a CSV file, in batches, as one import.

    The file has the format of POST /v1/lists/LIST/entries/bulk.csv: a header
    row naming columns among url, scope, reason (required), reference,
    category, hosting_country, expires_at. Progress goes to stderr; the
    result of every row (created, existing or refused, with the code and
    reason; not_sent for rows after a batch the server did not take) goes
    to the result file. Approve the whole import with
    `cleanfeed entries approve --import ID`.
    """
    api = open_api(**common)
    header, records = read_csv(csv_file)
    target = results_file or csv_file.with_name(csv_file.name + ".results.csv")
    if not target.parent.is_dir():
        raise CliFailure(f"cannot write {target}: no directory {target.parent}", EXIT_USAGE)
    outcome: list[tuple[Record, dict[str, Any]]] = []
    counts = {"created": 0, "existing": 0, "refused": 0}
    total = len(records)
    done = 0
    try:
        for batch in batches(header, records, batch_size):
            params = {"import": str(import_id)} if import_id is not None else {}
            answer = api.call(
                "POST",
                api.path("/entries/bulk.csv"),
                content=csv_bytes([header, *(r.cells for r in batch)]),
                headers={"Content-Type": "text/csv"},
                params=params,
            )
            results = answer.get("results", [])
            if len(results) != len(batch):
                raise CliFailure(
                    f"the server answered {len(results)} results for {len(batch)} rows",
                    EXIT_UNREACHABLE,
                )
            if import_id is None and answer.get("import") is not None:
                import_id = int(answer["import"])
            for record, result in zip(batch, results, strict=True):
                word = RESULT_BY_STATUS.get(result.get("status"), "refused")
                counts[word] += 1
                outcome.append((record, {**result, "result": word}))
            done += len(batch)
            click.echo(
                f"rows {done - len(batch) + 1}-{done} of {total}: {counts['created']} created, "
                f"{counts['existing']} existing, {counts['refused']} refused",
                err=True,
            )
    except CliFailure as failure:
        # Batches already sent are committed: record them, and mark the rest
        # as not sent, so the import can be resumed from the result file.
        rest = [(r, {"result": NOT_SENT}) for r in records[done:]]
        write_results(target, [*outcome, *rest])
        resume = f" --import {import_id}" if import_id is not None else ""
        raise CliFailure(
            f"{failure.message}\nrows {done + 1}-{total} were not sent (results in {target}); "
            f"send them again with `cleanfeed entries import FILE.csv{resume}`",
            failure.exit_code,
        ) from failure
    write_results(target, outcome)
    summary = {**counts, "rows": total, "import": import_id, "results_file": str(target)}
    emit(
        api,
        summary,
        lambda: click.echo(
            f"{total} rows: {counts['created']} created, {counts['existing']} existing, "
            f"{counts['refused']} refused; results in {target}"
            + (
                f"\nimport {import_id}: approve it with "
                f"`cleanfeed entries approve --import {import_id}`"
                if import_id is not None
                else ""
            )
        ),
    )
    if counts["refused"]:
        _exit(EXIT_PARTIAL)


# --- approve ----------------------------------------------------------------------


@entries_group.command("approve", epilog=HELP_EPILOG)
@click.argument("ids", nargs=-1, type=click.IntRange(min=1))
@click.option(
    "--import",
    "import_id",
    type=click.IntRange(min=1),
    default=None,
    help="Approve every entry this import added.",
)
@common_options
def approve_command(ids: tuple[int, ...], import_id: int | None, **common: Any) -> None:
    """Approve colleagues' entries by id, or a whole import with --import ID.

    Four-eyes applies per entry: your own entries are refused
    (self_approval) and the rest are approved. Every entry's result is
    printed; the exit code is 3 when any was refused.
    """
    if bool(ids) == (import_id is not None):
        raise CliFailure("give entry ids or --import ID (one of the two)", EXIT_USAGE)
    api = open_api(**common)
    results: list[dict[str, Any]] = []
    if import_id is not None:
        cursor: int | None = None
        while True:
            body: dict[str, Any] = {"import": import_id}
            if cursor is not None:
                body["cursor"] = cursor
            answer = api.call("POST", api.path("/entries/approve"), json=body)
            results.extend(answer.get("results", []))
            cursor = answer.get("next")
            if cursor is None:
                break
    else:
        unique = list(dict.fromkeys(ids))
        for start in range(0, len(unique), MAX_BATCH_ROWS):
            chunk = unique[start : start + MAX_BATCH_ROWS]
            answer = api.call("POST", api.path("/entries/approve"), json={"ids": chunk})
            results.extend(answer.get("results", []))
    approved = sum(1 for r in results if r.get("status") == "approved")
    activated = sum(
        1 for r in results if r.get("status") == "approved" and r.get("entry_status") == "active"
    )
    refused = len(results) - approved
    document = {
        "results": results,
        "approved": approved,
        "activated": activated,
        "refused": refused,
        "import": import_id,
    }

    def text() -> None:
        for r in results:
            if r.get("status") == "approved":
                click.echo(f"{r['id']}: approved ({r.get('entry_status')})")
            else:
                click.echo(f"{r['id']}: refused {r.get('code')}: {r.get('message')}")
        click.echo(f"{approved} approved ({activated} now active), {refused} refused")

    emit(api, document, text)
    if refused:
        _exit(EXIT_PARTIAL)


# --- expire, show, search ---------------------------------------------------------


@entries_group.command("expire", epilog=HELP_EPILOG)
@click.argument("entry_id", metavar="ID", type=click.IntRange(min=1))
@click.option("--reason", required=True, help="Why it comes off (kept in the audit log).")
@click.option(
    "--at", "at", default=None, help="Expire at this future time (RFC 3339) instead of now."
)
@common_options
def expire_command(entry_id: int, reason: str, at: str | None, **common: Any) -> None:
    """Take an entry off the list now (or at --at); one analyst suffices."""
    api = open_api(**common)
    body: dict[str, Any] = {"reason": reason}
    if at is not None:
        body["at"] = at
    entry = api.call("POST", api.path(f"/entries/{entry_id}/expire"), json=body)
    emit(
        api,
        entry,
        lambda: click.echo(
            f"entry {entry['id']} {entry['status']} (expires_at {entry.get('expires_at')})"
        ),
    )


@entries_group.command("refer", epilog=HELP_EPILOG)
@click.argument("entry_id", metavar="ID", type=click.IntRange(min=1))
@click.option("--reason", required=True, help="Why (kept in the audit log).")
@common_options
def refer_command(entry_id: int, reason: str, **common: Any) -> None:
    """Refer an entry to takedown and the police: state referred, never listed.

    For material hosted in the list's home country (`cleanfeed entries
    referrals` shows the proposals); one analyst suffices.
    """
    api = open_api(**common)
    entry = api.call("POST", api.path(f"/entries/{entry_id}/refer"), json={"reason": reason})
    emit(api, entry, lambda: click.echo(f"entry {entry['id']} {entry['status']}"))


@entries_group.command("referrals", epilog=HELP_EPILOG)
@common_options
def referrals_command(**common: Any) -> None:
    """List the entries proposed for referral (observed home-country hosting)."""
    api = open_api(**common)
    out = api.call("GET", api.path("/referrals"))

    def text() -> None:
        for e in out.get("entries", []):
            countries = ",".join((e.get("hosting") or {}).get("countries") or []) or "?"
            click.echo(f"{e['id']:>8}  {e['status']:<8} {countries:<8} {e.get('expression')}")

    emit(api, out, text)


@entries_group.command("show", epilog=HELP_EPILOG)
@click.argument("entry_id", metavar="ID", type=click.IntRange(min=1))
@common_options
def show_command(entry_id: int, **common: Any) -> None:
    """Show an entry with its approvals and history."""
    api = open_api(**common)
    entry = api.call("GET", api.path(f"/entries/{entry_id}"))

    def text() -> None:
        for key in (
            "id", "expression", "scope", "status", "listed", "reason", "reference",
            "category", "created_by", "created_at", "expires_at", "hash",
        ):  # fmt: skip
            click.echo(f"{key + ':':12} {entry.get(key)}")
        guard = entry.get("guard")
        if guard:
            approved = guard.get("approved_by") or "not yet (an admin must guard-approve)"
            click.echo(f"{'guard:':12} {guard.get('rule')}; approved by {approved}")
        hosting = entry.get("hosting")
        if hosting:
            where = ", ".join(hosting.get("countries") or []) or "unknown"
            state = (
                "verified" if hosting.get("verified") else f"unverified ({hosting.get('error')})"
            )
            click.echo(f"{'hosting:':12} {where}, {state}, {hosting.get('database')}")
        if entry.get("referral"):
            click.echo(f"{'referral:':12} {entry['referral']}")
        if entry.get("awaiting"):
            click.echo(f"{'awaiting:':12} {', '.join(entry['awaiting'])}")
        for a in entry.get("approvals", []):
            click.echo(f"approved by {a['actor']} (round {a['round']}) at {a['at']}")
        for record in entry.get("history", []):
            click.echo(f"  {record['time']}  {record['actor']}  {record['action']}")

    emit(api, entry, text)


@entries_group.command("search", epilog=HELP_EPILOG)
@click.option("--url", default=None, help="Entries whose lookups this URL hits.")
@click.option("--host", default=None, help="Entries on this host or its subdomains.")
@click.option("--hash", "digest", default=None, help="Base64 or 64 hex digits.")
@click.option(
    "--status",
    type=click.Choice(["pending", "active", "expired", "removed", "referred"]),
    default=None,
)
@click.option("--reference", default=None, help="Case reference.")
@click.option(
    "--limit", type=click.IntRange(1, 500), default=50, show_default=True, help="Page size."
)
@click.option("--all", "every_page", is_flag=True, help="Follow every page, not only the first.")
@common_options
def search_command(
    url: str | None,
    host: str | None,
    digest: str | None,
    status: str | None,
    reference: str | None,
    limit: int,
    every_page: bool,
    **common: Any,
) -> None:
    """Find entries (filters combine with AND; the URL travels in the body, never in logs)."""
    api = open_api(**common)
    body: dict[str, Any] = {"limit": limit}
    for key, value in (
        ("url", url),
        ("host", host),
        ("hash", digest),
        ("status", status),
        ("reference", reference),
    ):
        if value is not None:
            body[key] = value
    found: list[dict[str, Any]] = []
    while True:
        page = api.call("POST", api.path("/entries/search"), json=body)
        found.extend(page.get("entries", []))
        next_cursor = page.get("next")
        if next_cursor is None or not every_page:
            break
        body["cursor"] = next_cursor

    def text() -> None:
        for e in found:
            click.echo(f"{e['id']}\t{e['status']}\t{e['scope']}\t{e.get('expression')}")
        if next_cursor is not None:
            click.echo("(more: --all, or search again with a narrower filter)", err=True)

    emit(api, {"entries": found, "next": next_cursor}, text)


# --- publish ---------------------------------------------------------------------


@click.command("publish", epilog=HELP_EPILOG)
@common_options
def publish_command(**common: Any) -> None:
    """Cut a version now from everything approved (analyst or admin token)."""
    api = open_api(**common)
    out = api.call("POST", api.path("/publish"), expect=(200, 202))

    def text() -> None:
        if out.get("pending"):
            click.echo(f"queued (request {out.get('request')}); the signer has not answered yet")
        elif out.get("published"):
            click.echo(f"published version {out['version']} ({out.get('count')} entries)")
        else:
            click.echo(f"nothing pending; version {out['version']} stays current")

    emit(api, out, text)
