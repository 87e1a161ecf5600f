"""Downloading an audit bundle: ``cleanfeed audit fetch``.

``GET /v1/lists/{list}/audit/bundle[?full=true]`` with an auditor token
(docs/architecture.md, "Wire details"). The one seam for the network is an
injectable :class:`httpx.Client` (STYLE.md), so tests run this against the
real app in-process. What this module guarantees:

- the token travels in the ``Authorization`` header, never in the URL;
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
import json
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final, TextIO
from urllib.parse import quote

import httpx

from cleanfeed import __version__
from clients.audit.bundle import KIND_FULL, KIND_HASH_ONLY, MAX_BUNDLE_BYTES, loads, save_bytes
from clients.audit.errors import BundleError, BundleTooLarge
from clients.errors import (
    AccessDenied,
    ClientError,
    MalformedData,
    NetworkError,
    NotFound,
    RateLimited,
    RequestRejected,
    ServerError,
    Timeout,
)

__all__ = [
    "DEFAULT_TIMEOUT",
    "FetchResult",
    "Progress",
    "build_http_client",
    "bundle_url",
    "fetch_bundle",
    "progress_reporter",
    "raise_for_status",
]

#: Per-operation timeouts (slow-retrieval protection: a server that stops
#: sending fails after ``read`` seconds). No overall deadline: a large full
#: bundle legitimately takes minutes on a slow link.
DEFAULT_TIMEOUT: Final = httpx.Timeout(connect=10.0, read=60.0, write=30.0, pool=10.0)

#: Bytes of an error body read for its problem code (problem+json is small).
MAX_ERROR_BODY: Final = 4096

#: Plain-text progress: one line per this many bytes at most (a log file
#: must not receive a line per chunk).
PLAIN_PROGRESS_STEP: Final = 16 * 1024 * 1024

#: A progress callback: bytes received so far and the announced total (None
#: when the server sent no ``Content-Length``).
Progress = Callable[[int, int | None], None]


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


def build_http_client(timeout: httpx.Timeout = DEFAULT_TIMEOUT) -> httpx.Client:
    """The production HTTP client: TLS verified, proxies from the environment,
    redirects not followed (a redirect could carry the token elsewhere)."""
    return httpx.Client(verify=True, trust_env=True, follow_redirects=False, timeout=timeout)


def bundle_url(server: str, list_name: str) -> str:
    """The bundle endpoint of a list (the list name is path-escaped)."""
    return f"{server.rstrip('/')}/v1/lists/{quote(list_name, safe='')}/audit/bundle"


def _wait_hint(value: str | None) -> float | None:
    if value is None or not value.strip().isdigit() or len(value.strip()) > 12:
        return None
    return float(int(value.strip()))


def raise_for_status(response: httpx.Response) -> None:
    """Map a non-2xx answer to the client error tree (the body must be read).

    Raises:
        RateLimited: 429 (``retry_after`` from ``Retry-After``).
        ServerError: 5xx.
        AccessDenied: 401 or 403.
        NotFound: 404 (no such list, or the token may not read it).
        RequestRejected: any other 4xx or unexpected status.
    """
    status = response.status_code
    if 200 <= status < 300:
        return
    detail = ""
    with contextlib.suppress(ValueError, UnicodeDecodeError):
        doc = json.loads(response.content[:MAX_ERROR_BODY])
        if isinstance(doc, dict):
            detail = str(doc.get("code") or doc.get("title") or "")[:80]
    suffix = f" ({detail})" if detail else ""
    retry_after = _wait_hint(response.headers.get("Retry-After"))
    if status == 429:
        raise RateLimited(f"rate limited (429){suffix}", retry_after=retry_after)
    if status >= 500:
        raise ServerError(f"server error {status}{suffix}", retry_after=retry_after)
    if status in (401, 403):
        raise AccessDenied(f"access denied ({status}){suffix}: check the token", status=status)
    if status == 404:
        raise NotFound(
            f"not found (404){suffix}: no such list, or the token may not read it", status=status
        )
    raise RequestRejected(f"unexpected HTTP status {status}{suffix}", status=status)


def _read_error(response: httpx.Response) -> httpx.Response:
    """A copy of an error answer with at most MAX_ERROR_BODY bytes of body."""
    body = b""
    if response.is_stream_consumed:  # an in-memory transport read it already
        body = response.content
    else:
        for chunk in response.iter_raw():
            body += chunk
            if len(body) >= MAX_ERROR_BODY:
                break
    return httpx.Response(
        response.status_code, headers=response.headers, content=body[:MAX_ERROR_BODY]
    )


def _download(
    client: httpx.Client,
    url: str,
    *,
    params: dict[str, str],
    headers: dict[str, str],
    max_bytes: int,
    progress: Progress | None,
) -> bytes:
    with client.stream("GET", url, params=params, headers=headers) as r:
        if r.status_code != 200:
            raise_for_status(_read_error(r))
            raise RequestRejected(f"unexpected HTTP status {r.status_code}", status=r.status_code)
        encoding = r.headers.get("Content-Encoding", "identity").strip().lower()
        if encoding not in ("", "identity"):
            # We asked for identity: a compressed body could expand far
            # beyond the cap before we could count it (gzip bomb).
            raise MalformedData(f"bundle sent with Content-Encoding {encoding!r}; asked identity")
        declared = r.headers.get("Content-Length")
        total = int(declared) if declared is not None and declared.isdigit() else None
        if total is not None and total > max_bytes:
            raise BundleTooLarge(
                f"bundle of {total} bytes announced, over the cap of {max_bytes} bytes"
            )
        if r.is_stream_consumed:
            # A transport that hands back an already-read body (an in-memory
            # test transport): only the cap can apply.
            if len(r.content) > max_bytes:
                raise BundleTooLarge(f"bundle exceeds the cap of {max_bytes} bytes")
            if progress is not None:
                progress(len(r.content), total)
            return r.content
        parts: list[bytes] = []
        received = 0
        for chunk in r.iter_raw():
            received += len(chunk)
            if received > max_bytes:
                raise BundleTooLarge(f"bundle exceeds the cap of {max_bytes} bytes")
            parts.append(chunk)
            if progress is not None:
                progress(received, total)
        return b"".join(parts)


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

    Returns:
        Where the bundle went and what it holds.

    Raises:
        TransportError: network failure, timeout, 5xx or 429 (retry later).
        RequestRejected: 401/403/404 or another 4xx.
        BundleTooLarge: over ``max_bytes``.
        BundleError: not a bundle, or not of the requested kind.
        MalformedData: a compressed answer although identity was asked.
        OSError: the output cannot be written.
    """
    started = time.monotonic()
    headers = {
        "Accept": "application/json",
        "Accept-Encoding": "identity",
        "User-Agent": f"cleanfeed-audit/{__version__}",
    }
    if token:
        headers["Authorization"] = f"Bearer {token}"
    params = {"full": "true"} if full else {}
    try:
        data = _download(
            client,
            bundle_url(server, list_name),
            params=params,
            headers=headers,
            max_bytes=max_bytes,
            progress=progress,
        )
    except httpx.TimeoutException as e:
        raise Timeout(f"timed out fetching the bundle: {type(e).__name__}") from e
    except httpx.RequestError as e:
        raise NetworkError(f"network error fetching the bundle: {type(e).__name__}: {e}") from e
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
