"""``cleanfeed entries …`` and ``cleanfeed publish``: what analysts do from scripts.

Every command talks to the HTTP API with httpx (docs/quickstart.md, "From a
shell"). Common options, each also an environment variable:

- ``--server URL`` (``CLEANFEED_SERVER``);
- the token from ``--token-file FILE`` (``CLEANFEED_TOKEN_FILE``) or the
  ``CLEANFEED_TOKEN`` variable; never as a command-line argument, where it
  would land in shell history and the process table;
- ``--list NAME`` (``CLEANFEED_LIST``, default ``main``);
- ``--json``: print one JSON document instead of text.

Exit codes (:data:`EXIT_CODES`): 0 done; 1 the server refused the request
(its problem code is printed) or ``add`` was not confirmed; 2 a usage or
configuration error (no token, a server URL without a scheme, an unreadable
file); 3 a bulk command finished but some rows were refused (see the
per-row results); 4 the server could not be reached or answered something
that is not the API.

Why this is one file of more than 800 lines: it is one command group, and
its commands share the option set, the client, the error-to-exit-code
mapping and the text/JSON output rules above; each command is a thin
mapping of options onto one API route. The parts with logic of their own
(CSV reading and the reach preview) are small functions here because no
other package uses them.
"""

from __future__ import annotations

import csv
import io
import json
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, NoReturn
from urllib.parse import quote, urlsplit

import click
import httpx

from cleanfeed import __version__
from clients.common.credentials import read_token_file
from clients.common.files import PLAINTEXT_MODE, write_atomic
from clients.errors import ConfigError

__all__ = [
    "DEFAULT_TIMEOUT",
    "EXIT_CODES",
    "EXIT_OK",
    "EXIT_PARTIAL",
    "EXIT_REFUSED",
    "EXIT_UNREACHABLE",
    "EXIT_USAGE",
    "LIST_ENV",
    "MAX_BATCH_BYTES",
    "MAX_BATCH_ROWS",
    "MAX_IMPORT_FILE_BYTES",
    "MAX_RATE_RETRIES",
    "MAX_RETRY_AFTER",
    "NOT_SENT",
    "RESULT_BY_STATUS",
    "RESULT_COLUMNS",
    "SERVER_ENV",
    "TOKEN_ENV",
    "TOKEN_FILE_ENV",
    "Api",
    "CliFailure",
    "add_command",
    "approve_command",
    "entries_group",
    "expire_command",
    "import_command",
    "publish_command",
    "search_command",
    "show_command",
]

#: Environment variables of the common options.
SERVER_ENV: Final = "CLEANFEED_SERVER"
TOKEN_ENV: Final = "CLEANFEED_TOKEN"  # noqa: S105 - a variable name, not a secret
TOKEN_FILE_ENV: Final = "CLEANFEED_TOKEN_FILE"  # noqa: S105 - a variable name
LIST_ENV: Final = "CLEANFEED_LIST"

EXIT_OK: Final = 0
EXIT_REFUSED: Final = 1
EXIT_USAGE: Final = 2
EXIT_PARTIAL: Final = 3
EXIT_UNREACHABLE: Final = 4

#: Documented exit codes (``--help`` and docs/quickstart.md print this table).
EXIT_CODES: Final = {
    EXIT_OK: "done",
    EXIT_REFUSED: "the server refused the request (problem code printed), or add not confirmed",
    EXIT_USAGE: "usage or configuration error (token, server URL, input file)",
    EXIT_PARTIAL: "a bulk command finished, but some rows were refused (see the results)",
    EXIT_UNREACHABLE: "the server could not be reached or did not answer as the API",
}

#: Rows per upload of ``entries import`` and ids per ``entries approve``
#: call: the server's cap per bulk call (MAX_BULK_ROWS).
MAX_BATCH_ROWS: Final = 10_000

#: Bytes of CSV per upload, below the server's 16 MiB cap for CSV bodies.
MAX_BATCH_BYTES: Final = 8 * 1024 * 1024

#: Largest CSV file ``entries import`` reads (bounded memory).
MAX_IMPORT_FILE_BYTES: Final = 1024 * 1024 * 1024

#: Seconds per request: a bulk call of 10,000 rows takes a few seconds.
DEFAULT_TIMEOUT: Final = 120.0

#: 429 answers waited out per request before giving up (each waits the
#: server's Retry-After, at most MAX_RETRY_AFTER seconds).
MAX_RATE_RETRIES: Final = 5
MAX_RETRY_AFTER: Final = 60.0

#: Result words of the per-row result file of ``entries import``.
RESULT_BY_STATUS: Final = {"added": "created", "existing": "existing", "failed": "refused"}

_HELP_EPILOG: Final = "Exit codes: " + "; ".join(f"{k} {v}" for k, v in EXIT_CODES.items()) + "."


class CliFailure(click.ClickException):
    """An error printed once to stderr with its exit code."""

    def __init__(self, message: str, exit_code: int) -> None:
        """Create a failure exiting with ``exit_code``."""
        super().__init__(message)
        self.exit_code = exit_code  # type: ignore[misc]  # click reads it per instance


@dataclass
class Api:
    """An authenticated client of one server and list."""

    server: str
    list_name: str
    client: httpx.Client
    as_json: bool

    def path(self, suffix: str) -> str:
        """``/v1/lists/<list><suffix>``."""
        return f"/v1/lists/{quote(self.list_name, safe='')}{suffix}"

    def call(self, method: str, path: str, *, expect: Sequence[int] = (200,), **kwargs: Any) -> Any:
        """Send one request and return its JSON body.

        A 429 is waited out (its ``Retry-After``, bounded) and retried.

        Raises:
            CliFailure: a problem answer (exit 1), an unreachable server or
                an answer that is not the API's (exit 4).
        """
        for attempt in range(MAX_RATE_RETRIES + 1):
            try:
                response = self.client.request(method, path, **kwargs)
            except httpx.HTTPError as e:
                raise CliFailure(
                    f"cannot reach {self.server}: {type(e).__name__}: {e}", EXIT_UNREACHABLE
                ) from e
            if response.status_code == 429 and attempt < MAX_RATE_RETRIES:
                wait = _retry_after(response)
                click.echo(f"rate limited: retrying in {wait:g} s", err=True)
                time.sleep(wait)
                continue
            break
        if response.status_code in expect:
            try:
                return response.json()
            except ValueError as e:
                raise CliFailure(
                    f"{self.server} answered {response.status_code} without JSON", EXIT_UNREACHABLE
                ) from e
        raise _problem_failure(self.server, response)


def _retry_after(response: httpx.Response) -> float:
    try:
        return min(MAX_RETRY_AFTER, max(1.0, float(response.headers.get("retry-after", "1"))))
    except ValueError:
        return 1.0


def _problem_failure(server: str, response: httpx.Response) -> CliFailure:
    """Describe an error answer: ``error: <code>: <detail>`` for a problem document."""
    media = response.headers.get("content-type", "").split(";", 1)[0].strip()
    if media == "application/problem+json":
        try:
            problem = response.json()
        except ValueError:
            problem = None
        if isinstance(problem, dict) and isinstance(problem.get("code"), str):
            detail = str(problem.get("detail", ""))
            return CliFailure(f"{problem['code']} ({response.status_code}): {detail}", EXIT_REFUSED)
    return CliFailure(
        f"{server} answered {response.status_code} {response.reason_phrase}; is this a "
        "cleanfeed server?",
        EXIT_UNREACHABLE,
    )


def _check_server(url: str | None) -> str:
    if not url:
        raise CliFailure(
            f"no server: pass --server URL or set {SERVER_ENV} (e.g. https://hotline.example)",
            EXIT_USAGE,
        )
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise CliFailure(
            f"--server must be an http(s) URL such as https://hotline.example, got {url!r}",
            EXIT_USAGE,
        )
    if parts.query or parts.fragment:
        raise CliFailure("--server must not carry a query or fragment", EXIT_USAGE)
    return url.rstrip("/")


def _token(token_file: Path | None) -> str:
    if token_file is not None:
        try:
            return read_token_file(token_file)
        except ConfigError as e:
            raise CliFailure(str(e), EXIT_USAGE) from e
    token = os.environ.get(TOKEN_ENV, "").strip()
    if not token:
        raise CliFailure(
            f"no token: pass --token-file FILE or set {TOKEN_FILE_ENV} or {TOKEN_ENV}",
            EXIT_USAGE,
        )
    return token


def _common(f: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option(
            "--server",
            envvar=SERVER_ENV,
            default=None,
            help=f"Server base URL, e.g. https://hotline.example (env {SERVER_ENV}).",
        ),
        click.option(
            "--token-file",
            envvar=TOKEN_FILE_ENV,
            type=click.Path(path_type=Path, dir_okay=False),
            default=None,
            help=f"File holding the analyst token (env {TOKEN_FILE_ENV}; or the token "
            f"itself in {TOKEN_ENV}).",
        ),
        click.option(
            "--list",
            "list_name",
            envvar=LIST_ENV,
            default="main",
            show_default=True,
            help=f"List name (env {LIST_ENV}).",
        ),
        click.option("--json", "as_json", is_flag=True, help="Print one JSON document."),
        click.option(
            "--timeout",
            type=click.FloatRange(min=1, max=3600),
            default=DEFAULT_TIMEOUT,
            show_default=True,
            help="Seconds per request.",
        ),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def _api(
    server: str | None, token_file: Path | None, list_name: str, as_json: bool, timeout: float
) -> Api:
    base = _check_server(server)
    token = _token(token_file)
    client = httpx.Client(
        base_url=base,
        headers={
            "Authorization": f"Bearer {token}",
            "User-Agent": f"cleanfeed-analyst/{__version__}",
        },
        timeout=timeout,
        follow_redirects=False,
    )
    # Closed when the command ends, whatever way it ends.
    click.get_current_context().call_on_close(client.close)
    return Api(server=base, list_name=list_name, client=client, as_json=as_json)


def _emit(api: Api, document: Any, text: Callable[[], None]) -> None:
    if api.as_json:
        click.echo(json.dumps(document, indent=2, sort_keys=True))
    else:
        text()


def _exit(code: int) -> NoReturn:
    sys.exit(code)


@click.group(
    "entries",
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog=_HELP_EPILOG,
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


@entries_group.command("add", epilog=_HELP_EPILOG)
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
@_common
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
    api = _api(**common)
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
    _emit(
        api,
        {"preview": preview, "entry": entry},
        lambda: click.echo(
            f"entry {entry['id']} {entry['status']} (hash {entry['hash']}); "
            f"approve with: cleanfeed entries approve {entry['id']}"
        ),
    )


# --- import ---------------------------------------------------------------------


@dataclass(frozen=True)
class _Record:
    row: int  # 1-based data row number (header excluded, blank lines skipped)
    line: int  # line of the file where the record starts
    cells: list[str]


def _read_csv(path: Path) -> tuple[list[str], list[_Record]]:
    """Read the header and records of an import file (the bulk.csv format).

    Raises:
        CliFailure: unreadable, too large, not UTF-8, not CSV, or no header.
    """
    try:
        size = path.stat().st_size
        if size > MAX_IMPORT_FILE_BYTES:
            raise CliFailure(f"{path}: larger than {MAX_IMPORT_FILE_BYTES} bytes", EXIT_USAGE)
        text = path.read_bytes().decode("utf-8-sig")
    except OSError as e:
        raise CliFailure(f"cannot read {path}: {e.strerror}", EXIT_USAGE) from e
    except UnicodeDecodeError as e:
        raise CliFailure(f"{path}: not UTF-8 text", EXIT_USAGE) from e
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        raise CliFailure(f"{path}: empty file (expected a header row)", EXIT_USAGE) from None
    except csv.Error as e:
        raise CliFailure(f"{path}: CSV: {e}", EXIT_USAGE) from e
    records: list[_Record] = []
    start = reader.line_num + 1
    try:
        for cells in reader:
            line = start
            start = reader.line_num + 1
            if not any(c.strip() for c in cells):
                continue
            records.append(_Record(row=len(records) + 1, line=line, cells=cells))
    except csv.Error as e:
        raise CliFailure(f"{path}: CSV near line {reader.line_num}: {e}", EXIT_USAGE) from e
    if not records:
        raise CliFailure(f"{path}: no rows after the header", EXIT_USAGE)
    return header, records


def _batches(header: list[str], records: list[_Record], rows: int) -> Iterator[list[_Record]]:
    batch: list[_Record] = []
    size = 0
    header_bytes = len(_csv_bytes([header]))
    for record in records:
        cost = len(_csv_bytes([record.cells]))
        if batch and (len(batch) >= rows or header_bytes + size + cost > MAX_BATCH_BYTES):
            yield batch
            batch, size = [], 0
        batch.append(record)
        size += cost
    if batch:
        yield batch


def _csv_bytes(rows: Sequence[Sequence[str]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerows(rows)
    return out.getvalue().encode("utf-8")


RESULT_COLUMNS: Final = ("row", "line", "result", "id", "hash", "code", "message")

#: Result of the rows an interrupted import did not send.
NOT_SENT: Final = "not_sent"


def _write_results(target: Path, outcome: Sequence[tuple[_Record, dict[str, Any]]]) -> None:
    """Write the per-row result file (atomically).

    Raises:
        CliFailure: the file cannot be written (exit 2).
    """
    table = [list(RESULT_COLUMNS)] + [
        [
            str(record.row),
            str(record.line),
            result["result"],
            "" if result.get("id") is None else str(result["id"]),
            result.get("hash") or "",
            result.get("code") or "",
            result.get("message") or "",
        ]
        for record, result in outcome
    ]
    try:
        # The result rows name URLs: owner-only, like the ISP's plaintext files.
        write_atomic(target, _csv_bytes(table), mode=PLAINTEXT_MODE)
    except OSError as e:
        raise CliFailure(f"cannot write {target}: {e.strerror}", EXIT_USAGE) from e


@entries_group.command("import", epilog=_HELP_EPILOG)
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
@_common
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
    api = _api(**common)
    header, records = _read_csv(csv_file)
    target = results_file or csv_file.with_name(csv_file.name + ".results.csv")
    if not target.parent.is_dir():
        raise CliFailure(f"cannot write {target}: no directory {target.parent}", EXIT_USAGE)
    outcome: list[tuple[_Record, dict[str, Any]]] = []
    counts = {"created": 0, "existing": 0, "refused": 0}
    total = len(records)
    done = 0
    try:
        for batch in _batches(header, records, batch_size):
            params = {"import": str(import_id)} if import_id is not None else {}
            answer = api.call(
                "POST",
                api.path("/entries/bulk.csv"),
                content=_csv_bytes([header, *(r.cells for r in batch)]),
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
        _write_results(target, [*outcome, *rest])
        resume = f" --import {import_id}" if import_id is not None else ""
        raise CliFailure(
            f"{failure.message}\nrows {done + 1}-{total} were not sent (results in {target}); "
            f"send them again with `cleanfeed entries import FILE.csv{resume}`",
            failure.exit_code,
        ) from failure
    _write_results(target, outcome)
    summary = {**counts, "rows": total, "import": import_id, "results_file": str(target)}
    _emit(
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


@entries_group.command("approve", epilog=_HELP_EPILOG)
@click.argument("ids", nargs=-1, type=click.IntRange(min=1))
@click.option(
    "--import",
    "import_id",
    type=click.IntRange(min=1),
    default=None,
    help="Approve every entry this import added.",
)
@_common
def approve_command(ids: tuple[int, ...], import_id: int | None, **common: Any) -> None:
    """Approve colleagues' entries by id, or a whole import with --import ID.

    Four-eyes applies per entry: your own entries are refused
    (self_approval) and the rest are approved. Every entry's result is
    printed; the exit code is 3 when any was refused.
    """
    if bool(ids) == (import_id is not None):
        raise CliFailure("give entry ids or --import ID (one of the two)", EXIT_USAGE)
    api = _api(**common)
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

    _emit(api, document, text)
    if refused:
        _exit(EXIT_PARTIAL)


# --- expire, show, search ---------------------------------------------------------


@entries_group.command("expire", epilog=_HELP_EPILOG)
@click.argument("entry_id", metavar="ID", type=click.IntRange(min=1))
@click.option("--reason", required=True, help="Why it comes off (kept in the audit log).")
@click.option(
    "--at", "at", default=None, help="Expire at this future time (RFC 3339) instead of now."
)
@_common
def expire_command(entry_id: int, reason: str, at: str | None, **common: Any) -> None:
    """Take an entry off the list now (or at --at); one analyst suffices."""
    api = _api(**common)
    body: dict[str, Any] = {"reason": reason}
    if at is not None:
        body["at"] = at
    entry = api.call("POST", api.path(f"/entries/{entry_id}/expire"), json=body)
    _emit(
        api,
        entry,
        lambda: click.echo(
            f"entry {entry['id']} {entry['status']} (expires_at {entry.get('expires_at')})"
        ),
    )


@entries_group.command("refer", epilog=_HELP_EPILOG)
@click.argument("entry_id", metavar="ID", type=click.IntRange(min=1))
@click.option("--reason", required=True, help="Why (kept in the audit log).")
@_common
def refer_command(entry_id: int, reason: str, **common: Any) -> None:
    """Refer an entry to takedown and the police: state referred, never listed.

    For material hosted in the list's home country (`cleanfeed entries
    referrals` shows the proposals); one analyst suffices.
    """
    api = _api(**common)
    entry = api.call("POST", api.path(f"/entries/{entry_id}/refer"), json={"reason": reason})
    _emit(api, entry, lambda: click.echo(f"entry {entry['id']} {entry['status']}"))


@entries_group.command("referrals", epilog=_HELP_EPILOG)
@_common
def referrals_command(**common: Any) -> None:
    """List the entries proposed for referral (observed home-country hosting)."""
    api = _api(**common)
    out = api.call("GET", api.path("/referrals"))

    def text() -> None:
        for e in out.get("entries", []):
            countries = ",".join((e.get("hosting") or {}).get("countries") or []) or "?"
            click.echo(f"{e['id']:>8}  {e['status']:<8} {countries:<8} {e.get('expression')}")

    _emit(api, out, text)


@entries_group.command("show", epilog=_HELP_EPILOG)
@click.argument("entry_id", metavar="ID", type=click.IntRange(min=1))
@_common
def show_command(entry_id: int, **common: Any) -> None:
    """Show an entry with its approvals and history."""
    api = _api(**common)
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

    _emit(api, entry, text)


@entries_group.command("search", epilog=_HELP_EPILOG)
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
@_common
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
    api = _api(**common)
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

    _emit(api, {"entries": found, "next": next_cursor}, text)


# --- publish ---------------------------------------------------------------------


@click.command("publish", epilog=_HELP_EPILOG)
@_common
def publish_command(**common: Any) -> None:
    """Cut a version now from everything approved (analyst or admin token)."""
    api = _api(**common)
    out = api.call("POST", api.path("/publish"), expect=(200, 202))

    def text() -> None:
        if out.get("pending"):
            click.echo(f"queued (request {out.get('request')}); the signer has not answered yet")
        elif out.get("published"):
            click.echo(f"published version {out['version']} ({out.get('count')} entries)")
        else:
            click.echo(f"nothing pending; version {out['version']} stays current")

    _emit(api, out, text)
