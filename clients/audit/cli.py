"""``cleanfeed audit …``: the auditor's command line.

Commands (DESIGN.md, "Interfaces other programs rely on"):

- ``fetch --server URL --token T | --token-file F --list L --output FILE
  [--full]``: download a bundle (token also from ``CLEANFEED_TOKEN``).
  Exit 0 written; 1 the server sent something that is not a bundle (or too
  much); 2 network, access or local problem.
- ``verify FILE --root-key VKEY|@file [--checkpoint FILE]… [--json]``:
  offline verification. Exit 0 only when everything verifies; 1 when a
  check fails (the first failure is printed with its version and reason);
  2 when the command cannot run (unreadable file, bad root key).
- ``prove --bundle FILE (--hash H | --url URL) [--at DATE] [--json]``: when
  the hash (or any lookup expression of the URL) was added and removed,
  with inclusion proofs. Exit 0 when listed (at ``--at``, or ever), 1 when
  not, 2 on error.
- ``witness …``: verify the log's checkpoint against the last one cosigned
  and cosign it. Exit 0 cosigned; 1 refused (rollback, equivocation: the
  evidence file is named); 2 the witness could not run.
- ``witness-key --name NAME --output FILE``: generate the witness's key and
  print its cosigner vkey (type 0x04) for ISPs to configure.

Every command that prints a report accepts ``--json`` (one JSON object).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Final, NoReturn, TypeVar

import click

from blocklist.errors import BlocklistError, FormatError
from clients.common.credentials import TOKEN_ENV, read_token_file, read_vkey
from clients.common.http import check_server_url
from clients.errors import BadData, ClientError, ConfigError

__all__ = [
    "EXIT_ERROR",
    "EXIT_FAILED",
    "EXIT_OK",
    "ISP_CHECKPOINTS_FORMAT",
    "MAX_CHECKPOINT_FILE_BYTES",
    "audit_group",
    "fetch_command",
    "prove_command",
    "verify_command",
    "witness_command",
    "witness_key_command",
]

_F = TypeVar("_F", bound=Callable[..., Any])

#: Exit statuses shared by the audit commands.
EXIT_OK: Final = 0
EXIT_FAILED: Final = 1
EXIT_ERROR: Final = 2

#: Largest ``--checkpoint`` file read: an ISP's exported checkpoints with
#: their keyrings are a few hundred KB; more is not a checkpoint file.
MAX_CHECKPOINT_FILE_BYTES: Final = 16 * 1024 * 1024

#: ``format`` of ``cleanfeed isp checkpoints`` exports, accepted by
#: ``verify --checkpoint`` besides plain note files.
ISP_CHECKPOINTS_FORMAT: Final = "cleanfeed-isp-checkpoints/v1"


#: A file option or argument (never a directory).
_FILE: Final = click.Path(dir_okay=False, path_type=Path)

#: A file that must already exist (a passphrase).
_EXISTING_FILE: Final = click.Path(exists=True, dir_okay=False, path_type=Path)


def _emit(obj: dict[str, Any]) -> None:
    click.echo(json.dumps(obj, sort_keys=True))


def _exit(status: int, message: str) -> NoReturn:
    """Print ``message`` on stderr and exit with ``status``."""
    click.echo(message, err=True)
    sys.exit(status)


def _failed(message: str) -> NoReturn:
    """The command could not run: ``failed: MESSAGE``, exit 2."""
    _exit(EXIT_ERROR, f"failed: {message}")


def _json_option(what: str) -> Callable[[_F], _F]:
    """``--json``: print ``what`` as one JSON object."""
    return click.option("--json", "as_json", is_flag=True, help=f"Print {what} as JSON.")


def _root_key_option(
    help_text: str = "Pinned root vkey, or @FILE (repeatable).",
) -> Callable[[_F], _F]:
    return click.option("--root-key", "root_keys", multiple=True, help=help_text)


def _passphrase_option(help_text: str) -> Callable[[_F], _F]:
    return click.option("--passphrase-file", type=_EXISTING_FILE, default=None, help=help_text)


def _token(token: str | None, token_file: Path | None) -> str | None:
    if token is not None and token_file is not None:
        raise click.UsageError("give --token or --token-file, not both")
    if token_file is not None:
        try:
            return read_token_file(token_file)
        except ClientError as e:
            raise click.UsageError(str(e)) from e
    return token or os.environ.get(TOKEN_ENV) or None


def _root_keys(values: Sequence[str]) -> list[str]:
    if not values:
        raise click.UsageError("--root-key is required (the pinned root vkey, or @FILE)")
    try:
        return [read_vkey(v) for v in values]
    except ClientError as e:
        raise click.UsageError(str(e)) from e


def _server(url: str, *, allow_insecure_http: bool = False) -> str:
    """The checked ``--server`` (the shared URL policy of both clients).

    Raises:
        click.UsageError: not an http(s) base URL, credentials inside it, or
            clear-text ``http://`` off loopback without ``--allow-insecure-http``.
    """
    try:
        return check_server_url(url, allow_insecure_http=allow_insecure_http)
    except ConfigError as e:
        raise click.UsageError(f"--server: {e}") from e


_token_options = [
    click.option("--server", required=True, help="Server base URL, e.g. https://hotline.example."),
    click.option(
        "--token", default=None, help=f"Auditor bearer token (prefer --token-file or {TOKEN_ENV})."
    ),
    click.option(
        "--token-file",
        type=_FILE,
        default=None,
        help="File holding the bearer token.",
    ),
    click.option("--list", "list_name", required=True, help="List name."),
]


def _with(options: list[Callable[[_F], _F]]) -> Callable[[_F], _F]:
    def decorate(f: _F) -> _F:
        for option in reversed(options):
            f = option(f)
        return f

    return decorate


@click.group("audit", context_settings={"help_option_names": ["-h", "--help"]})
def audit_group() -> None:
    """Offline audit: fetch bundles, verify them, prove entries, witness the log."""


# --- fetch ---------------------------------------------------------------------


@audit_group.command("fetch")
@_with(_token_options)
@click.option("--output", required=True, type=_FILE, help="Bundle file.")
@click.option("--full", is_flag=True, help="Full bundle: audit log and entries with plaintext.")
@click.option(
    "--max-bytes", type=click.IntRange(min=1), default=None, help="Download cap in bytes."
)
@click.option(
    "--deadline",
    type=click.FloatRange(min=0.001),
    default=None,
    help="Overall seconds for the download (default 3600): connect, headers and body.",
)
@click.option(
    "--allow-insecure-http",
    is_flag=True,
    help="Accept a clear-text http:// server off loopback (the token travels unencrypted).",
)
@_json_option("the outcome")
def fetch_command(
    server: str,
    token: str | None,
    token_file: Path | None,
    list_name: str,
    output: Path,
    full: bool,
    max_bytes: int | None,
    deadline: float | None,
    allow_insecure_http: bool,
    as_json: bool,
) -> None:
    """Download a list's audit bundle (written atomically, mode 0600)."""
    from clients.audit.bundle import MAX_BUNDLE_BYTES
    from clients.audit.fetch import (
        DEFAULT_TIMEOUTS,
        build_http_client,
        fetch_bundle,
        progress_reporter,
    )

    base = _server(server, allow_insecure_http=allow_insecure_http)
    bearer = _token(token, token_file)
    try:
        with build_http_client() as client, progress_reporter() as progress:
            result = fetch_bundle(
                client,
                server=base,
                list_name=list_name,
                token=bearer,
                output=output,
                full=full,
                max_bytes=max_bytes or MAX_BUNDLE_BYTES,
                progress=progress,
                deadline=deadline or DEFAULT_TIMEOUTS.deadline,
                allow_insecure_http=allow_insecure_http,
            )
    except BadData as e:
        _exit(EXIT_FAILED, f"rejected: {e.reason}: {e}")
    except ClientError as e:
        _failed(f"{e.reason}: {e}")
    except OSError as e:
        _failed(f"cannot write {output}: {e.strerror}")
    if as_json:
        _emit(
            {
                "path": str(result.path),
                "bytes": result.bytes,
                "kind": result.kind,
                "list": result.list_name,
                "origin": result.origin,
                "statements": result.statements,
                "seconds": round(result.seconds, 3),
            }
        )
    else:
        click.echo(
            f"wrote {result.path}: {result.kind} bundle of {result.list_name} "
            f"({result.statements} versions, {result.bytes} bytes)"
        )


# --- verify --------------------------------------------------------------------


def _checkpoint_notes(path: Path) -> list[str]:
    """Notes of a ``--checkpoint`` file: one note, or an ISP checkpoints export."""
    try:
        with path.open("rb") as f:
            raw = f.read(MAX_CHECKPOINT_FILE_BYTES + 1)
    except OSError as e:
        raise click.UsageError(f"cannot read {path}: {e.strerror}") from e
    if len(raw) > MAX_CHECKPOINT_FILE_BYTES:
        raise click.UsageError(f"{path} is too large to be a checkpoint file")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise click.UsageError(f"{path} is not UTF-8") from e
    if not text.lstrip().startswith("{"):
        return [text]
    try:
        doc = json.loads(text)
    except ValueError as e:
        raise click.UsageError(f"{path} is neither a note nor JSON") from e
    if not isinstance(doc, dict) or doc.get("format") != ISP_CHECKPOINTS_FORMAT:
        raise click.UsageError(f"{path}: JSON but not a {ISP_CHECKPOINTS_FORMAT} export")
    notes: list[str] = []
    for item in doc.get("checkpoints") or []:
        if isinstance(item, dict) and isinstance(item.get("note"), str):
            notes.append(item["note"])
    for item in doc.get("evidence") or []:
        # Equivocation evidence an ISP kept: both notes go to the auditor.
        if isinstance(item, dict) and item.get("kind") == "checkpoint":
            notes.extend(
                n for n in (item.get("held_note"), item.get("new_note")) if isinstance(n, str)
            )
    return notes


@audit_group.command("verify")
@click.argument("bundle_file", type=_FILE)
@_root_key_option()
@click.option(
    "--checkpoint",
    "checkpoint_files",
    multiple=True,
    type=_FILE,
    help="A signed checkpoint note (or an 'isp checkpoints' export) to check against the log.",
)
@click.option("--origin", default=None, help="Pinned list origin (optional).")
@click.option("--workers", type=click.IntRange(min=1), default=None, help="Worker processes.")
@click.option(
    "--max-bytes", type=click.IntRange(min=1), default=None, help="Bundle size cap in bytes."
)
@_json_option("the report")
def verify_command(
    bundle_file: Path,
    root_keys: tuple[str, ...],
    checkpoint_files: tuple[Path, ...],
    origin: str | None,
    workers: int | None,
    max_bytes: int | None,
    as_json: bool,
) -> None:
    """Verify a bundle offline; exit 0 only when everything verifies."""
    from clients.audit.bundle import MAX_BUNDLE_BYTES, load
    from clients.audit.report import CHECK_BUNDLE, AuditReport, Failure
    from clients.audit.report_table import print_report
    from clients.audit.verify import verify_bundle
    from clients.errors import BundleError

    roots = _root_keys(root_keys)
    sources: list[str] = []
    extras: list[str] = []
    for path in checkpoint_files:
        for note in _checkpoint_notes(path):
            sources.append(str(path))
            extras.append(note)
    try:
        bundle = load(bundle_file, max_bytes=max_bytes or MAX_BUNDLE_BYTES)
    except OSError as e:
        _failed(f"cannot read {bundle_file}: {e.strerror}")
    except BundleError as e:
        report = AuditReport("", "", "", failure=Failure(CHECK_BUNDLE, str(e)))
    else:
        report = verify_bundle(
            bundle, roots, extra_checkpoints=extras, origin=origin, workers=workers
        )
    if as_json:
        doc = report.to_json()
        doc["bundle_file"] = str(bundle_file)
        doc["extra_sources"] = sources
        _emit(doc)
    else:
        print_report(report, sources, bundle_file)
    sys.exit(EXIT_OK if report.ok else EXIT_FAILED)


# --- prove ---------------------------------------------------------------------


@audit_group.command("prove")
@click.option(
    "--bundle",
    "bundle_file",
    required=True,
    type=_FILE,
    help="Bundle file.",
)
@click.option("--hash", "hash_text", default=None, help="Entry hash: 64 hex digits or base64.")
@click.option("--url", default=None, help="A URL: all its lookup expressions are checked.")
@click.option("--at", "at_text", default=None, help="YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ.")
@_root_key_option("Pinned root vkey (or @FILE): verify the bundle first (recommended).")
@_json_option("the proof")
def prove_command(
    bundle_file: Path,
    hash_text: str | None,
    url: str | None,
    at_text: str | None,
    root_keys: tuple[str, ...],
    as_json: bool,
) -> None:
    """When a hash or URL was listed, with inclusion proofs (exit 0 listed, 1 not)."""
    from clients.audit.bundle import load
    from clients.audit.prove import parse_at, prove

    if (hash_text is None) == (url is None):
        raise click.UsageError("give exactly one of --hash and --url")
    query: str
    if hash_text is not None:
        from clients.audit.prove import targets_for

        query = hash_text.strip()
        if targets_for(query)[0].startswith("url "):
            raise click.UsageError("--hash takes 64 hex digits or the 44-character base64")
    else:
        assert url is not None
        query = url
    roots = [read_vkey(v) for v in root_keys] if root_keys else []
    try:
        at = parse_at(at_text) if at_text is not None else None
    except FormatError as e:
        raise click.UsageError(str(e)) from e
    try:
        bundle = load(bundle_file)
        proof = prove(bundle, query, at, root_vkeys=roots)
    except OSError as e:
        _failed(f"cannot read {bundle_file}: {e.strerror}")
    except (ClientError, BlocklistError, ValueError) as e:
        reason = getattr(e, "reason", None) or getattr(e, "code", "error")
        _failed(f"{reason}: {e}")
    if as_json:
        _emit(proof.to_json())
    else:
        click.echo(proof.to_text(), nl=False)
    sys.exit(EXIT_OK if proof.listed else EXIT_FAILED)


# --- witness -------------------------------------------------------------------


def _passphrase(path: Path | None) -> bytes | None:
    if path is None:
        return None
    raw = path.read_bytes()
    raw = raw[:-2] if raw.endswith(b"\r\n") else raw[:-1] if raw.endswith(b"\n") else raw
    if not raw:
        raise click.UsageError(f"{path} is empty")
    return raw


@audit_group.command("witness")
@_with(_token_options)
@_root_key_option()
@click.option(
    "--key",
    "key_file",
    required=True,
    type=_FILE,
    help="The witness's key file (see 'witness-key').",
)
@_passphrase_option("File holding the key's passphrase.")
@click.option(
    "--state",
    "state_file",
    required=True,
    type=_FILE,
    help="State file: the keyring and the last checkpoint cosigned.",
)
@click.option(
    "--evidence-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where equivocation evidence goes (default: beside the state file).",
)
@click.option("--post", is_flag=True, help="POST the cosignature to the server.")
@click.option(
    "--post-token-file",
    type=_FILE,
    default=None,
    help="File holding the auditor token that posts (default: the reading token).",
)
@_json_option("the outcome")
def witness_command(
    server: str,
    token: str | None,
    token_file: Path | None,
    list_name: str,
    root_keys: tuple[str, ...],
    key_file: Path,
    passphrase_file: Path | None,
    state_file: Path,
    evidence_dir: Path | None,
    post: bool,
    post_token_file: Path | None,
    as_json: bool,
) -> None:
    """Check the log only grew since the last run and cosign its checkpoint.

    The reading token (--token, --token-file or CLEANFEED_TOKEN) must read
    the list's keyring, checkpoint and proofs (an ISP token, or none for a
    public list); --post-token-file names the auditor token that posts.
    """
    from clients.audit.fetch import build_http_client
    from clients.audit.witness import Witness
    from clients.errors import CosignRefused
    from signer.errors import SignerError
    from signer.keys import load_key

    roots = _root_keys(root_keys)
    bearer = _token(token, token_file)
    post_bearer = _token(None, post_token_file) if post_token_file is not None else None
    try:
        key = load_key(key_file, _passphrase(passphrase_file))
    except (SignerError, OSError) as e:
        _failed(f"cannot load the witness key: {e}")
    try:
        with build_http_client() as client:
            result = Witness(
                client,
                server=_server(server),
                list_name=list_name,
                token=bearer,
                key=key,
                root_vkeys=roots,
                state_path=state_file,
                evidence_dir=evidence_dir,
                post_token=post_bearer,
            ).run_once(post=post)
    except CosignRefused as e:
        if as_json:
            _emit(
                {
                    "status": "refused",
                    "detail": e.detail,
                    "message": str(e),
                    "evidence": e.evidence,
                }
            )
        else:
            click.echo(f"refused: {e.detail}: {e}", err=True)
            if e.evidence:
                click.echo(f"evidence saved to {e.evidence}", err=True)
        sys.exit(EXIT_FAILED)
    except ClientError as e:
        _failed(f"{e.reason}: {e}")
    except OSError as e:
        _failed(str(e))
    if as_json:
        _emit(result.to_json())
    else:
        old = "first sighting" if result.old_size is None else f"extends size {result.old_size}"
        click.echo(
            f"cosigned {result.origin} size {result.size} ({old})"
            + ("; posted" if result.posted else "")
        )
        click.echo(result.line)


@audit_group.command("witness-key")
@click.option("--name", required=True, help="Key name, e.g. witness.example.org.")
@click.option("--output", required=True, type=_FILE, help="Key file.")
@_passphrase_option("Encrypt the key with this passphrase.")
@_json_option("the vkey")
def witness_key_command(
    name: str, output: Path, passphrase_file: Path | None, as_json: bool
) -> None:
    """Generate the witness's Ed25519 key (file mode 0600); print its cosigner vkey."""
    from clients.audit.witness import cosigner_vkey
    from signer.errors import SignerError
    from signer.keys import SecretKey, save_key

    try:
        key = SecretKey.generate(name)
        save_key(output, key, _passphrase(passphrase_file))
    except ValueError as e:
        raise click.UsageError(str(e)) from e
    except (SignerError, OSError) as e:
        _failed(str(e))
    vkey = cosigner_vkey(key)
    if as_json:
        _emit({"name": name, "vkey": vkey, "path": str(output)})
    else:
        click.echo(vkey)


# --- transparency reports (issue 17) ---------------------------------------------

#: Largest report or keyring note file read (a note is at most a few KiB).
_MAX_NOTE_FILE_BYTES: Final = 1024 * 1024


def _read_note(path: Path) -> str:
    try:
        data = path.read_bytes()[: _MAX_NOTE_FILE_BYTES + 1]
    except OSError as e:
        _failed(f"cannot read {path}: {e.strerror}")
    if len(data) > _MAX_NOTE_FILE_BYTES:
        _failed(f"{path} is larger than a note can be")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        _failed(f"{path} is not UTF-8 text")


@audit_group.command("verify-report")
@click.argument("note_file", type=_FILE)
@_root_key_option()
@click.option(
    "--bundle",
    "bundle_file",
    type=_FILE,
    default=None,
    help="The list's audit bundle: its keyrings are used; a full one lets every figure be "
    "recomputed.",
)
@click.option(
    "--keyrings",
    "keyring_files",
    multiple=True,
    type=_FILE,
    help="Keyring note files in serial order (instead of --bundle; repeatable).",
)
@_json_option("the result")
def verify_report_command(
    note_file: Path,
    root_keys: tuple[str, ...],
    bundle_file: Path | None,
    keyring_files: tuple[Path, ...],
    as_json: bool,
) -> None:
    """Verify a transparency report NOTE_FILE offline; exit 0 only when it verifies.

    The note must be signed by the online key valid for the version it
    names, per keyrings verified from the pinned root key. With a full
    bundle every figure is recomputed from the audit log and any
    difference fails (exit 1).
    """
    from clients.audit.bundle import load
    from clients.audit.transparency import ReportInvalid, verify_report
    from clients.errors import BundleError

    roots = _root_keys(root_keys)
    if (bundle_file is None) == (not keyring_files):
        raise click.UsageError("give --bundle FILE or --keyrings FILE... (one of the two)")
    note = _read_note(note_file)
    bundle = None
    if bundle_file is not None:
        try:
            bundle = load(bundle_file)
        except OSError as e:
            _failed(f"cannot read {bundle_file}: {e.strerror}")
        except BundleError as e:
            _failed(str(e))
    keyrings = [_read_note(p) for p in keyring_files]
    try:
        check = verify_report(note, roots, keyrings=keyrings, bundle=bundle)
    except ReportInvalid as e:
        if as_json:
            _emit({"ok": False, "check": e.check, "reason": e.reason})
        else:
            click.echo(f"NOT VERIFIED: {e}")
        sys.exit(EXIT_FAILED)
    report = check.report
    if as_json:
        _emit(
            {
                "ok": True,
                "origin": report.origin,
                "period": report.period,
                "version": report.version,
                "audit_seq": report.audit_seq,
                "keyring_serial": check.keyring_serial,
                "signer": check.signer,
                "bundle_verified": check.bundle_verified,
                "figures_recomputed": check.figures_recomputed,
                "figures": dict(report.figures),
                "warnings": check.warnings,
            }
        )
    else:
        click.echo(
            f"VERIFIED: {report.origin} {report.period}, version {report.version}, signed by "
            f"{check.signer} (keyring serial {check.keyring_serial})"
        )
        if check.figures_recomputed:
            click.echo("every figure equals its recomputation from the full bundle")
        for warning in check.warnings:
            click.echo(f"warning: {warning}")
    sys.exit(EXIT_OK)
