"""``cleanfeed isp …``: the ISP client's command line.

Commands (DESIGN.md, "Interfaces other programs rely on"):

- ``sync --once``: one verified sync. Exit 0 when the list is updated or
  already current; otherwise one line ``<status>: <reason>: <message>`` on
  stderr and exit 1 (bad data rejected), 2 (transport, access, local or
  configuration problem) or 3 (the list was committed, but plaintext, an
  export or a reload hook failed). After a verified sync, one line per
  configured export says what it enforces and what it cannot.
- ``run``: the daemon (:mod:`clients.isp.daemon`).
- ``export --state-dir DIR --format F --output PATH``: write one export now
  and report how many entries the format cannot enforce.
- ``check --state-dir DIR URL…`` (``-`` reads URLs from stdin): exit 0 if
  any URL is listed, 1 if none, 2 on error.
- ``status``: version, checkpoint age, last success and error, counters.
- ``checkpoints``: the held checkpoints, keyrings and equivocation evidence
  as one JSON document, for auditors comparing views.
- ``squid-helper --state-dir DIR``: Squid external ACL helper over the
  verified set (:mod:`clients.isp.squid_helper`).
- ``squid-template --output DIR``: Squid's ERR_CLEANFEED block page
  (:mod:`clients.isp.squid_template`).

Common options: ``--server URL --token T | --token-file F`` (or env
``CLEANFEED_TOKEN``) ``--list L --root-key VKEY|@file --state-dir DIR
[--config FILE]``. Every command that prints a report accepts ``--json``.

Exit status 1 means only "the hotline's data was rejected" (``sync``) or
"not listed" (``check``): monitoring pages on it. Every command exits 2 on a
configuration error (a missing token file, a malformed ``--root-key``, a
server URL without a scheme, a root key the state never trusted, ...) or a
local-state error, with one line ``failed: <reason>: <message>`` (``sync``,
``run``) or ``error: <reason>: <message>`` (the others) on stderr.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import click

from blocklist.blockref import block_ref
from blocklist.canonical import expressions
from blocklist.errors import InvalidURL
from clients.common.workers import pool_context
from clients.errors import ClientError
from clients.isp.cli_filters import (
    blockpage_command,
    squid_helper_command,
    squid_template_command,
)
from clients.isp.cli_options import (
    EXIT_FAILED,
    EXIT_POST_COMMIT,
    EXIT_REJECTED,
    CommandError,
    IspGroup,
    common_options,
    config_from,
    echo_exports,
    emit_json,
    iso_time,
    open_store,
    setup_logging,
)
from clients.isp.dnsserve.cli import dns_serve_command
from clients.isp.lookup import (
    BatchMatches,
    HashIndex,
    MatchResult,
    init_match_worker,
    match_batch,
    match_in_worker,
)
from clients.isp.store import StateStore

__all__ = [
    "CHECK_ERROR",
    "CHECK_LISTED",
    "CHECK_NOT_LISTED",
    "INDEX_PROBE_MAX_URLS",
    "MAX_CHECK_URLS",
    "MAX_CHECK_WORKERS",
    "PARALLEL_CHUNK",
    "PARALLEL_MIN_URLS",
    "StoreMatcher",
    "check_command",
    "checkpoints_command",
    "export_command",
    "isp_group",
    "run_command",
    "status_command",
    "sync_command",
]

#: Exit statuses of ``check``.
CHECK_LISTED: Final = 0
CHECK_NOT_LISTED: Final = 1
CHECK_ERROR: Final = 2

#: Most URLs read from stdin by ``check -`` in one run (bounded memory).
MAX_CHECK_URLS: Final = 1_000_000


@click.group("isp", cls=IspGroup, context_settings={"help_option_names": ["-h", "--help"]})
def isp_group() -> None:
    """ISP client: sync the signed list, verify it, export it, check URLs."""


# --- sync / run ------------------------------------------------------------------


@isp_group.command("sync")
@common_options
@click.option("--once", is_flag=True, help="Run one sync and exit (the only mode; see 'run').")
@click.option("--json", "as_json", is_flag=True, help="Print the outcome as JSON.")
@click.option("-v", "--verbose", is_flag=True, help="Log progress to stderr.")
def sync_command(once: bool, as_json: bool, verbose: bool, **common: Any) -> None:
    """Fetch, verify and apply the latest version once.

    Exit status: 0 updated or already current; 1 rejected (bad data, the
    last good list stays); 2 failed (network, access, local state or
    configuration, such as a missing token file, a malformed or unpinned
    --root-key or a server URL without a scheme); 3 committed, but
    plaintext, an export or a hook failed. After a verified sync, one line
    per configured export says how many entries it enforces and how many
    page, prefix or host entries it cannot.
    """
    from clients.isp.fetcher import build_http_client
    from clients.isp.sync import Syncer

    setup_logging(verbose)
    config = config_from(**common)
    try:
        config.require_sync()
        with build_http_client(config) as client:
            outcome = Syncer(config, client).sync_once()
    except ClientError as e:
        click.echo(f"failed: {e.reason}: {e}", err=True)
        sys.exit(EXIT_FAILED)
    if as_json:
        emit_json(
            {
                "status": outcome.status,
                "reason": outcome.reason,
                "message": outcome.message,
                "version_before": outcome.version_before,
                "version_after": outcome.version_after,
                "problems": [{"reason": r, "message": m} for r, m in outcome.problems],
                "exports_changed": list(outcome.exports_changed),
                "exports": [r.to_json() for r in outcome.exports],
            }
        )
    if outcome.ok:
        if not as_json:
            click.echo(f"{outcome.status}: {outcome.message}")
            echo_exports(outcome.exports)
        if outcome.problems:
            for reason, message in outcome.problems:
                click.echo(f"warning: {reason}: {message}", err=True)
            sys.exit(EXIT_POST_COMMIT)
        return
    click.echo(f"{outcome.status}: {outcome.reason}: {outcome.message}", err=True)
    sys.exit(EXIT_REJECTED if outcome.status == "rejected" else EXIT_FAILED)


@isp_group.command("run")
@common_options
@click.option(
    "--prometheus-textfile",
    type=click.Path(path_type=Path),
    default=None,
    help="Rewrite this Prometheus text file after every sync.",
)
@click.option(
    "--long-poll",
    type=click.IntRange(0, 55),
    default=None,
    metavar="SECONDS",
    help="Between scheduled syncs, let the server hold a checkpoint request this long and "
    "sync as soon as it reports a new version (default 55, or long_poll in the file; "
    "0: plain polling). Servers without long-poll get plain polling.",
)
@click.option("-v", "--verbose", is_flag=True, help="Log every sync (default: warnings only).")
def run_command(
    prometheus_textfile: Path | None, long_poll: int | None, verbose: bool, **common: Any
) -> None:
    """Sync on a schedule until SIGTERM or SIGINT.

    Between syncs, long-polls the server (GET …/checkpoint?wait=S) so a new
    version is verified and applied seconds after its publish; the regular
    schedule (interval) still runs, and is all there is against a server
    that does not long-poll.

    With ``[hits] enabled = true`` in the configuration file (off by
    default), also posts the block page's hit counts of each completed
    week (counts of at least ``k`` only) after a sync, then forgets them.

    Exits 2 at once on a configuration error, including a --root-key the
    existing state never trusted.
    """
    from clients.isp.daemon import Daemon
    from clients.isp.fetcher import build_http_client
    from clients.isp.hits import hits_poster
    from clients.isp.sync import Syncer

    setup_logging(verbose)
    config = config_from(**common, prometheus_textfile=prometheus_textfile, long_poll=long_poll)
    try:
        config.require_sync()
        with build_http_client(config) as client:
            syncer = Syncer(config, client)
            syncer.check_state()
            post_hits = hits_poster(config, client)
            daemon = Daemon(config, syncer.sync_once, post_hits=post_hits, watch=syncer.watch)
            sys.exit(daemon.run())
    except ClientError as e:
        click.echo(f"failed: {e.reason}: {e}", err=True)
        sys.exit(EXIT_FAILED)


# --- export ----------------------------------------------------------------------


@isp_group.command("export")
@common_options
@click.option(
    "--format", "fmt", required=True, help="hashes, urls, squid, rpz, unbound, dnsmasq or hosts."
)
@click.option(
    "--output",
    required=True,
    type=click.Path(path_type=Path),
    help="File to write (squid: base path of two files).",
)
@click.option(
    "--blockpage",
    "blockpage",
    multiple=True,
    metavar="ADDR",
    help="DNS formats: answer blocked hosts with this address of `cleanfeed isp "
    "blockpage` instead of NXDOMAIN (repeat for IPv4 and IPv6).",
)
@click.option(
    "--ede",
    metavar="CODE",
    help="rpz: RFC 8914 Extended DNS Error, 15 (blocked) or 16 (censored), "
    "written as a BIND 9.20+ response-policy statement to OUTPUT.named.conf.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def export_command(
    fmt: str,
    output: Path,
    blockpage: tuple[str, ...],
    ede: str | None,
    as_json: bool,
    **common: Any,
) -> None:
    """Write one export of the verified list, atomically.

    Reports how many entries the format enforces and how many page, prefix
    or host entries it cannot (DNS formats carry only whole-host entries;
    hosts files cannot match subdomains).
    """
    from clients.isp.config import ExportSpec
    from clients.isp.exports.formats import ExportInput, check_blockpage, check_ede
    from clients.isp.exports.output import write_export
    from clients.isp.sync import export_report

    code: int | None = None
    try:
        # Checked before the store is opened: a bad option changes nothing.
        addresses = check_blockpage(fmt, blockpage) if blockpage else ()
        if ede is not None:
            code = check_ede(fmt, int(ede) if ede.isdigit() else ede)
    except ClientError as e:
        raise CommandError.of(e) from e
    config = config_from(**common)
    store = open_store(config)
    try:
        with store:
            with store.reading():
                status = store.status()
                if status.version is None:
                    raise CommandError("not_initialised", "no verified list yet: run a sync")
                data = ExportInput(
                    version=status.version,
                    hashes=list(store.iter_hashes()),
                    expressions=None if fmt == "hashes" else dict(store.expressions()) or None,
                    list_name=config.list or "",
                    origin=status.origin or "",
                    generated=datetime.now(UTC),
                )
            result = write_export(fmt, data, output, blockpage=addresses, ede=code)
    except ClientError as e:
        raise CommandError.of(e) from e
    report = export_report(ExportSpec(fmt, output), data.version, result)
    if as_json:
        emit_json({**report.to_json(), "changed": result.changed})
        return
    click.echo(f"{report.summary()}{'' if result.changed else ' (files unchanged)'}")
    for note in report.notes:
        click.echo(f"  {note}")


# --- check -----------------------------------------------------------------------


class StoreMatcher:
    """Looks URLs up in the persisted set: the same expressions as
    :class:`clients.isp.lookup.Matcher`, membership by index (no full load)."""

    def __init__(self, store: StateStore) -> None:
        self._table = store.hash_table()

    def match(self, url: str | bytes) -> MatchResult:
        """Look one URL up.

        Raises:
            InvalidURL: the URL cannot be canonicalised.
        """
        for expr in expressions(url):
            h = hashlib.sha256(expr.encode("utf-8")).digest()
            if h in self._table:
                return MatchResult(listed=True, expression=expr, hash=h)
        return MatchResult(listed=False, expression=None, hash=None)


def _urls(args: Sequence[str]) -> Iterable[str]:
    for arg in args:
        if arg == "-":
            for n, line in enumerate(sys.stdin):
                if n >= MAX_CHECK_URLS:
                    # Exit 2, never 1 ("not listed").
                    raise CommandError("too_many_urls", f"more than {MAX_CHECK_URLS} URLs on stdin")
                url = line.strip()
                if url:
                    yield url
        else:
            yield arg


#: A stdin batch of at most this many URLs probes the on-disk index, about
#: 80 µs a URL (a dozen indexed queries); a larger one loads every hash at
#: once (about 0.15 s for a million entries), after which a membership test
#: costs next to nothing.
INDEX_PROBE_MAX_URLS = 2_000

#: A stdin batch at least this large is matched by several processes:
#: canonicalisation and hashing dominate and are CPU-bound pure Python.
PARALLEL_MIN_URLS = 20_000

#: URLs matched (by one worker) and written at a time.
PARALLEL_CHUNK = 2_000

#: Most worker processes (each one is a core busy with pure Python).
MAX_CHECK_WORKERS = 4


def _match_loaded(hashes: HashIndex, urls: list[str]) -> Iterator[tuple[int, int, BatchMatches]]:
    """Match ``urls`` in chunks, in order: ``(start, stop, matches of urls[start:stop])``.

    A large batch is spread over every core (:mod:`clients.common.workers`):
    each worker receives the loaded hashes once and then chunks of URLs,
    and sends back only the listed URLs and errors of each chunk, by
    position.
    """
    bounds = [
        (start, min(start + PARALLEL_CHUNK, len(urls)))
        for start in range(0, len(urls), PARALLEL_CHUNK)
    ]
    cores = os.cpu_count() or 1
    if cores < 2 or len(urls) < PARALLEL_MIN_URLS:
        for start, stop in bounds:
            yield start, stop, match_batch(urls[start:stop], hashes)
        return
    with pool_context(preload=("clients.isp.lookup",)).Pool(
        processes=min(cores, MAX_CHECK_WORKERS),
        initializer=init_match_worker,
        initargs=(hashes,),
    ) as pool:
        chunks = (urls[start:stop] for start, stop in bounds)
        for (start, stop), matches in zip(bounds, pool.imap(match_in_worker, chunks), strict=True):
            yield start, stop, matches


def _match_probing(matcher: StoreMatcher, urls: list[str]) -> BatchMatches:
    """Match ``urls`` one by one against the on-disk index."""
    listed: list[tuple[int, str, bytes]] = []
    errors: list[tuple[int, str]] = []
    for i, url in enumerate(urls):
        try:
            result = matcher.match(url)
        except InvalidURL as e:
            errors.append((i, str(e)))
            continue
        if result.listed and result.expression is not None and result.hash is not None:
            listed.append((i, result.expression, result.hash))
    return BatchMatches(listed, errors)


@isp_group.command("check")
@common_options
@click.argument("urls", nargs=-1, required=True)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def check_command(urls: tuple[str, ...], as_json: bool, **common: Any) -> None:
    """Check URLs against the verified list ('-' reads URLs from stdin).

    Exit status: 0 if any URL is listed, 1 if none, 2 on error.
    """
    config = config_from(**common)
    store = open_store(config)
    results: list[dict[str, Any]] = []
    listed = errors = 0
    with store:
        status = store.status()
        if status.version is None:
            raise CommandError("not_initialised", "no verified list yet: run a sync")
        pending = list(_urls(urls))
        chunks: Iterable[tuple[int, int, BatchMatches]]
        blob = store.hash_blob() if "-" in urls and len(pending) > INDEX_PROBE_MAX_URLS else None
        if blob is not None:
            # A large batch from stdin loads the set into memory at once (one
            # query, so one version).
            chunks = _match_loaded(HashIndex(blob), pending)
        else:
            # A few URLs (or any batch when the list cannot be one blob: see
            # StateStore.hash_blob) probe the index, in one read transaction
            # so that they all see one version too.
            with store.reading():
                chunks = [(0, len(pending), _match_probing(StoreMatcher(store), pending))]
        for start, stop, matches in chunks:
            listed += len(matches.listed)
            errors += len(matches.errors)
            if as_json:
                _json_items(results, pending, start, stop, matches)
            else:
                sys.stdout.write(_text_lines(pending, start, stop, matches))
        sys.stdout.flush()
    if as_json:
        emit_json(
            {"version": status.version, "listed": listed, "errors": errors, "results": results}
        )
    if listed:
        sys.exit(CHECK_LISTED)
    sys.exit(CHECK_ERROR if errors else CHECK_NOT_LISTED)


def _text_lines(urls: list[str], start: int, stop: int, matches: BatchMatches) -> str:
    """The report lines of ``urls[start:stop]``: one line per URL, in order."""
    lines = [f"not listed\t{url}\n" for url in urls[start:stop]]
    for i, expr, h in matches.listed:
        lines[i] = f"listed\t{urls[start + i]}\t{expr}\t{h.hex()}\n"
    for i, message in matches.errors:
        lines[i] = f"error\t{urls[start + i]}\t{message}\n"
    return "".join(lines)


def _json_items(
    results: list[dict[str, Any]], urls: list[str], start: int, stop: int, matches: BatchMatches
) -> None:
    """Append the JSON results of ``urls[start:stop]``, in order."""
    items: list[dict[str, Any]] = [{"url": url, "listed": False} for url in urls[start:stop]]
    for i, expr, h in matches.listed:
        items[i].update(
            {"listed": True, "expression": expr, "hash": h.hex(), "block_ref": block_ref(h)}
        )
    for i, message in matches.errors:
        items[i]["error"] = message
    results.extend(items)


# --- status / checkpoints ----------------------------------------------------------


@isp_group.command("status")
@common_options
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--prometheus", is_flag=True, help="Print Prometheus text exposition.")
def status_command(as_json: bool, prometheus: bool, **common: Any) -> None:
    """Show the version in force, checkpoint age, last success and error."""
    config = config_from(**common)
    store = open_store(config)
    with store:
        status = store.status()
        evidence = len(store.evidence())
    now = time.time()
    if prometheus:
        from clients.isp.daemon import render_metrics

        ok = None if status.last_attempt is None else status.last_attempt == status.last_success
        click.echo(render_metrics(status, last_ok=ok), nl=False)
        return
    age = None if status.checkpoint_time is None else max(0.0, now - status.checkpoint_time)
    stale = age is None or age > config.max_age
    doc = {
        "version": status.version,
        "entries": status.count,
        "origin": status.origin,
        "checkpoint_time": iso_time(status.checkpoint_time),
        "checkpoint_age_seconds": None if age is None else int(age),
        "stale": stale,
        "last_attempt": iso_time(status.last_attempt),
        "last_success": iso_time(status.last_success),
        "last_error": status.last_error,
        "last_error_reason": status.last_error_reason,
        "last_error_time": iso_time(status.last_error_time),
        "plaintext_complete": status.plaintext_complete,
        "plaintext_error": status.plaintext_error,
        "equivocation_evidence": evidence,
        "counters": status.counters,
        "exports": [r.to_json() for r in status.exports],
    }
    if as_json:
        emit_json(doc)
        return
    for key, value in doc.items():
        if key == "counters":
            counters = ", ".join(f"{k}={v}" for k, v in sorted(status.counters.items()))
            click.echo(f"counters: {counters or '-'}")
        elif key == "exports":
            click.echo(f"exports: {len(status.exports) or '-'}")
            for report in status.exports:
                click.echo(f"  {report.summary()}")
        else:
            click.echo(f"{key.replace('_', ' ')}: {'-' if value is None else value}")


@isp_group.command("checkpoints")
@common_options
@click.option(
    "--output",
    type=click.Path(path_type=Path),
    default=None,
    help="Write to this file instead of stdout.",
)
def checkpoints_command(output: Path | None, **common: Any) -> None:
    """Export the held checkpoints, keyrings and equivocation evidence (JSON)."""
    config = config_from(**common)
    store = open_store(config)
    with store:
        status = store.status()
        doc = {
            "format": "cleanfeed-isp-checkpoints/v1",
            "origin": status.origin,
            "version": status.version,
            "keyrings": store.keyring_notes(),
            "checkpoints": [
                {"size": size, "note": note, "seen_at": iso_time(seen)}
                for size, note, seen in store.checkpoint_notes()
            ],
            "evidence": [
                {
                    "kind": e.kind,
                    "held_note": e.held_note,
                    "new_note": e.new_note,
                    "detail": e.detail,
                    "observed_at": iso_time(e.observed_at),
                }
                for e in store.evidence()
            ],
        }
    text = json.dumps(doc, indent=2, sort_keys=True) + "\n"
    if output is None:
        click.echo(text, nl=False)
    else:
        from clients.common.files import write_atomic

        write_atomic(output, text.encode("utf-8"), mode=0o644)


# --- serving a filter (clients.isp.cli_filters) -----------------------------------

for _command in (squid_helper_command, squid_template_command, blockpage_command):
    isp_group.add_command(_command)

# --- serving the RPZ zone to secondaries (clients.isp.dnsserve) --------------------

isp_group.add_command(dns_serve_command)
