"""Downloading an audit bundle: ``cleanfeed audit fetch``.

``GET /v1/lists/{list}/audit/bundle[?full=true]`` with an auditor token
(docs/architecture.md, "Wire details"). The one seam for the network is an
injectable :class:`httpx.Client` (STYLE.md), so tests run this against the
real app in-process. What this module guarantees:

- the token travels in the ``Authorization`` header, never in the URL;
- the server URL follows the shared policy (no clear-text ``http://`` off
  loopback unless allowed, no credentials in it);
- the download has one overall deadline (connect, headers, any 1xx
  interim responses, body) besides per-read timeouts, and all of this is
  the shared floor of both clients, :mod:`clients.common.http`;
- the body is read with a byte cap (endless-data protection), refused
  before a byte is read when ``Content-Length`` already exceeds it; the
  request asks for ``identity`` encoding and a compressed answer is
  refused, so a gzip bomb cannot expand behind the cap;
- the download must be a well-formed bundle of the requested kind
  (:func:`clients.audit.bundle.loads`) before anything is written, and it
  is written exactly as received, atomically, readable by its owner only
  (a full bundle holds plaintext): an interrupted download never leaves a
  truncated bundle behind;
- progress is reported to a callback (:func:`progress_reporter` draws a
  rich progress bar on a terminal, plain lines otherwise).

Nothing here verifies signatures: that is :mod:`clients.audit.verify`,
offline.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final, TextIO
from urllib.parse import quote

import httpx

from cleanfeed import __version__
from clients.audit.bundle import KIND_FULL, KIND_HASH_ONLY, MAX_BUNDLE_BYTES, loads, save_bytes
from clients.common import http
from clients.common.http import Progress, check_server_url, insecure_http_warning
from clients.common.limits import Timeouts
from clients.errors import BundleError, BundleTooLarge, ClientError

log = logging.getLogger("cleanfeed.audit")

__all__ = [
    "DEFAULT_TIMEOUTS",
    "FetchResult",
    "Progress",
    "build_http_client",
    "bundle_url",
    "fetch_bundle",
    "progress_reporter",
]

#: Per-operation timeouts and the overall deadline (slow-retrieval
#: protection: a server that stops sending fails after ``read`` seconds, one
#: that drips fails at the deadline). The deadline is generous: the largest
#: bundle (2 GiB, MAX_BUNDLE_BYTES) takes about half an hour at 10 Mbit/s.
DEFAULT_TIMEOUTS: Final = Timeouts(connect=10.0, read=60.0, write=30.0, pool=10.0, deadline=3600.0)

#: Plain-text progress: one line per this many bytes at most (a log file
#: must not receive a line per chunk).
PLAIN_PROGRESS_STEP: Final = 16 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class FetchResult:
    """What was downloaded and where it was written."""

    path: Path
    bytes: int
    kind: str
    list_name: str
    origin: str
    statements: int
    seconds: float


def build_http_client(timeouts: Timeouts = DEFAULT_TIMEOUTS) -> httpx.Client:
    """The production HTTP client (:func:`clients.common.http.build_http_client`):
    TLS verified, proxies from the environment, redirects not followed, every
    socket wait bounded by the overall deadline."""
    return http.build_http_client(timeouts)


def bundle_url(server: str, list_name: str) -> str:
    """The bundle endpoint of a list (the list name is path-escaped)."""
    return f"{server.rstrip('/')}/v1/lists/{quote(list_name, safe='')}/audit/bundle"


def fetch_bundle(
    client: httpx.Client,
    *,
    server: str,
    list_name: str,
    token: str | None,
    output: Path,
    full: bool = False,
    max_bytes: int = MAX_BUNDLE_BYTES,
    progress: Progress | None = None,
    deadline: float = DEFAULT_TIMEOUTS.deadline,
    allow_insecure_http: bool = False,
) -> FetchResult:
    """Download a list's bundle, check its shape, and write it atomically.

    Args:
        client: the HTTP client (production: :func:`build_http_client`).
        server: the server's base URL.
        list_name: the list.
        token: the auditor bearer token (``None`` only for a public list).
        output: the file to write (replaced atomically, mode 0600).
        full: ask for the full bundle (audit log and entries).
        max_bytes: the download cap.
        progress: called with (bytes received, total or None) per chunk.
        deadline: overall seconds for the download (connect, headers, any
            1xx interim responses, body).
        allow_insecure_http: accept clear-text ``http://`` off loopback.

    Returns:
        Where the bundle went and what it holds.

    Raises:
        ServerUrlRefused: clear-text ``http://`` off loopback (without
            ``allow_insecure_http``) or credentials in ``server``.
        TransportError: network failure, timeout, 5xx or 429 (retry later).
        RequestRejected: 401/403/404 or another 4xx.
        BundleTooLarge: over ``max_bytes``.
        BundleError: not a bundle, or not of the requested kind.
        MalformedData: a compressed answer although identity was asked, or
            an undecodable header (:class:`~clients.errors.Undecodable`).
        OSError: the output cannot be written.
    """
    started = time.monotonic()
    base = check_server_url(server, allow_insecure_http=allow_insecure_http)
    insecure = insecure_http_warning(base)
    if insecure is not None:
        log.warning("%s", insecure)
    headers = {
        "Accept": "application/json",
        "Accept-Encoding": "identity",
        "User-Agent": f"cleanfeed-audit/{__version__}",
    }
    if token:
        headers["Authorization"] = f"Bearer {token}"
    answer = http.fetch(
        client,
        bundle_url(base, list_name),
        cap=max_bytes,
        seconds=deadline,
        what="the bundle",
        params={"full": "true"} if full else {},
        headers=headers,
        # Identity only: a compressed body could expand far beyond the cap
        # before it could be counted (gzip bomb).
        decode=False,
        oversize=BundleTooLarge,
        progress=progress,
    )
    data = answer.body
    bundle = loads(data, max_bytes=max_bytes)
    wanted = KIND_FULL if full else KIND_HASH_ONLY
    if bundle.kind != wanted:
        raise BundleError(f"asked for a {wanted} bundle, got {bundle.kind}")
    if bundle.list_name != list_name:
        raise BundleError(f"asked for list {list_name!r}, got {bundle.list_name!r}")
    save_bytes(data, output)
    return FetchResult(
        path=Path(output),
        bytes=len(data),
        kind=bundle.kind,
        list_name=bundle.list_name,
        origin=bundle.origin,
        statements=len(bundle.statements),
        seconds=time.monotonic() - started,
    )


@contextlib.contextmanager
def progress_reporter(stream: TextIO | None = None) -> Iterator[Progress]:
    """A progress callback: a rich bar on a terminal, plain lines otherwise.

    Plain lines are written at most every :data:`PLAIN_PROGRESS_STEP` bytes,
    so a log file does not get a line per chunk.
    """
    out = stream if stream is not None else sys.stderr
    if out.isatty():
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )
        from rich.progress import (
            Progress as RichProgress,
        )

        bar = RichProgress(
            "[progress.description]{task.description}",
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=Console(file=out),
            transient=True,
        )
        task = bar.add_task("bundle", total=None)

        def update(received: int, total: int | None) -> None:
            bar.update(task, completed=received, total=total)

        with bar:
            yield update
        return

    last = [0]

    def plain(received: int, total: int | None) -> None:
        if received - last[0] < PLAIN_PROGRESS_STEP and received != total:
            return
        last[0] = received
        of = f" of {total / 1e6:.1f} MB" if total else ""
        print(f"fetched {received / 1e6:.1f} MB{of}", file=out, flush=True)

    yield plain


def describe(error: ClientError) -> str:
    """One line for the CLI: ``<reason>: <message>``."""
    return f"{error.reason}: {error}"
