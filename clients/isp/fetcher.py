"""The ISP client's only network code.

STYLE.md, "One seam for the network": the fetcher takes an injectable
:class:`httpx.Client`, so tests run the real client against the real app
in-process (an ASGI transport) or against a function (``MockTransport``),
and production builds one with :func:`build_http_client`.

Everything here is transport: the fetcher returns bytes and texts exactly as
served and verifies nothing cryptographic (that is :mod:`clients.isp.trusted`).
What it does guarantee:

- every response is read with a byte cap on the *decoded* body; bodies are
  decompressed here, chunk by chunk with a bounded output, so a gzip bomb
  fails with :class:`~clients.errors.Oversize` after at most cap + 1 bytes
  (TUF "endless data");
- every response has an overall deadline besides httpx's per-operation
  timeouts (TUF "slow retrieval": a server dribbling one byte per read
  timeout would otherwise hold the client forever);
- statuses map to typed errors: 429 and 5xx are :class:`TransportError`
  with ``retry_after``; 401/403/404 are :class:`RequestRejected`;
- the server's ``Cleanfeed-Min-Wait`` hint is remembered in
  :attr:`Fetcher.min_wait`;
- the bearer token goes in the ``Authorization`` header, never in a URL.
"""

from __future__ import annotations

import json
import ssl
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any, Final
from urllib.parse import quote

import httpx

from blocklist.encoding import b64decode
from blocklist.errors import FormatError
from cleanfeed import __version__
from clients.errors import (
    AccessDenied,
    ClientError,
    MalformedData,
    NetworkError,
    NotFound,
    Oversize,
    RateLimited,
    RequestRejected,
    ServerError,
    Timeout,
)
from clients.isp.config import IspConfig, Limits

#: Header carrying the server's minimum poll interval (docs/architecture.md).
MIN_WAIT_HEADER: Final = "Cleanfeed-Min-Wait"
#: Header naming the version of a snapshot (DESIGN.md interfaces table).
VERSION_HEADER: Final = "Cleanfeed-Version"
#: A server hint longer than this is capped: a hostile or misconfigured server
#: must not be able to silence a client for days (it would go stale unnoticed).
MAX_SERVER_WAIT: Final = 3600.0
#: Statements asked per page; the server caps pages at 1000 (architecture.md).
STATEMENTS_PAGE_LIMIT: Final = 1000
#: Bytes of an error body read for the message (problem+json is small).
MAX_ERROR_BODY: Final = 4096
#: Most hashes in a proof or compact range: a tree of at most 2^63 leaves
#: has at most 63 levels (RFC 9162 2.1.3) -- anything longer is garbage.
MAX_PROOF_HASHES: Final = 64
#: Overall deadline per response, on top of httpx's per-read timeout.
DEFAULT_RESPONSE_DEADLINE: Final = 600.0
#: Decompressed bytes produced per step, bounding memory of a gzip bomb.
_DECODE_STEP: Final = 64 * 1024
#: Hash size on the wire.
_HASH_SIZE: Final = 32


def build_http_client(config: IspConfig) -> httpx.Client:
    """Build the production HTTP client from the configuration.

    TLS verification is always on (a custom CA bundle may be given);
    ``HTTPS_PROXY``/``HTTP_PROXY``/``NO_PROXY`` are honoured (``trust_env``)
    unless ``proxy`` is set explicitly; redirects are not followed (the API
    never redirects, and a redirect could carry the token elsewhere).

    Raises:
        ClientError: the CA bundle cannot be loaded.
    """
    verify: ssl.SSLContext | bool = True
    if config.ca_bundle is not None:
        try:
            verify = ssl.create_default_context(cafile=str(config.ca_bundle))
        except (OSError, ssl.SSLError) as e:
            raise ClientError(f"cannot load CA bundle {config.ca_bundle}: {e}") from e
    t = config.timeouts
    return httpx.Client(
        verify=verify,
        trust_env=True,
        proxy=config.proxy,
        follow_redirects=False,
        timeout=httpx.Timeout(connect=t.connect, read=t.read, write=t.write, pool=t.pool),
    )


def parse_wait_header(value: str | None, *, now: float | None = None) -> float | None:
    """Parse ``Retry-After`` (seconds or HTTP-date) or ``Cleanfeed-Min-Wait``.

    Returns seconds, capped at :data:`MAX_SERVER_WAIT`, or ``None`` when the
    header is absent or unparseable (an unparseable hint is ignored, not
    trusted).
    """
    if value is None:
        return None
    value = value.strip()
    seconds: float
    if value.isdigit() and len(value) <= 12:
        seconds = float(int(value))
    else:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    return max(0.0, min(seconds, MAX_SERVER_WAIT))


@dataclass(frozen=True, slots=True)
class CheckpointResponse:
    """A checkpoint answer: ``note`` is ``None`` on 304 Not Modified."""

    note: str | None
    etag: str | None


@dataclass(frozen=True, slots=True)
class StatementsPage:
    """One page of ``GET …/statements``."""

    statements: list[str]
    next: int | None


@dataclass(frozen=True, slots=True)
class PlaintextPage:
    """One page of ``GET …/plaintext``: (hash, expression) pairs, unverified."""

    expressions: list[tuple[bytes, str]]
    next: int | None


class _BoundedDecoder:
    """Content-Encoding decoder with a bounded output per step."""

    def __init__(self, encoding: str) -> None:
        enc = encoding.strip().lower()
        if enc in ("", "identity"):
            self._z: Any = None
        elif enc in ("gzip", "x-gzip"):
            self._z = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif enc == "deflate":
            self._z = zlib.decompressobj()
        else:
            raise MalformedData(f"unsupported Content-Encoding {encoding!r}")

    def feed(self, data: bytes, room: int) -> Iterator[bytes]:
        """Decode ``data``; stop producing once more than ``room`` bytes came out."""
        if self._z is None:
            yield data
            return
        produced = 0
        try:
            out = self._z.decompress(data, _DECODE_STEP)
            while True:
                produced += len(out)
                yield out
                if produced > room:
                    return
                if not self._z.unconsumed_tail:
                    return
                out = self._z.decompress(self._z.unconsumed_tail, _DECODE_STEP)
        except zlib.error as e:
            raise MalformedData(f"corrupt compressed body: {e}") from e

    def flush(self) -> bytes:
        if self._z is None:
            return b""
        try:
            return bytes(self._z.flush(_DECODE_STEP))
        except zlib.error as e:
            raise MalformedData(f"corrupt compressed body: {e}") from e


class Fetcher:
    """Typed, capped access to one list's ISP endpoints (DESIGN.md, "API shape").

    Args:
        client: the HTTP client (production: :func:`build_http_client`).
        server: base URL of the server, e.g. ``https://hotline.example``.
        list_name: the list name as in the URL path.
        token: bearer token, or ``None`` for a public list.
        limits: response size caps.
        response_deadline: overall seconds allowed per response.
        clock: monotonic clock (injectable for tests of the deadline).
    """

    def __init__(
        self,
        client: httpx.Client,
        *,
        server: str,
        list_name: str,
        token: str | None,
        limits: Limits | None = None,
        response_deadline: float = DEFAULT_RESPONSE_DEADLINE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._base = f"{server.rstrip('/')}/v1/lists/{quote(list_name, safe='')}"
        self._headers = {
            "Accept-Encoding": "gzip, deflate",
            "User-Agent": f"cleanfeed-isp/{__version__}",
        }
        if token:
            self._headers["Authorization"] = f"Bearer {token}"
        self.limits = limits or Limits()
        self._deadline = response_deadline
        self._clock = clock
        #: The last ``Cleanfeed-Min-Wait`` the server sent (seconds), if any.
        self.min_wait: float | None = None

    # --- plumbing -------------------------------------------------------------

    def _get(
        self,
        path: str,
        *,
        cap: int,
        params: dict[str, int | str] | None = None,
        headers: dict[str, str] | None = None,
        allow_304: bool = False,
    ) -> httpx.Response:
        """GET ``path`` and read its decoded body with a cap.

        Returns a response whose ``content`` is the decoded body.
        """
        url = self._base + path
        all_headers = dict(self._headers)
        if headers:
            all_headers.update(headers)
        started = self._clock()
        try:
            with self._client.stream("GET", url, params=params, headers=all_headers) as r:
                hint = parse_wait_header(r.headers.get(MIN_WAIT_HEADER))
                if hint is not None:
                    self.min_wait = hint
                if r.status_code == 304 and allow_304:
                    return httpx.Response(304, headers=r.headers, request=r.request)
                if r.status_code != 200:
                    self._raise_for_status(r, started)
                body = self._read_capped(r, cap, started, what=path)
                # The body is decoded now: drop the headers that describe the
                # encoded form, or httpx would try to decode it again.
                decoded_headers = [
                    (k, v)
                    for k, v in r.headers.multi_items()
                    if k.lower() not in ("content-encoding", "content-length", "transfer-encoding")
                ]
                return httpx.Response(200, headers=decoded_headers, content=body, request=r.request)
        except httpx.TimeoutException as e:
            raise Timeout(f"timed out fetching {path}: {type(e).__name__}") from e
        except httpx.RequestError as e:
            raise NetworkError(f"network error fetching {path}: {type(e).__name__}: {e}") from e

    def _read_capped(self, r: httpx.Response, cap: int, started: float, *, what: str) -> bytes:
        declared = r.headers.get("Content-Length")
        encoding = r.headers.get("Content-Encoding", "")
        if declared is not None and declared.isdigit() and not encoding and int(declared) > cap:
            # Endless-data protection: refuse before reading a byte.
            raise Oversize(f"{what}: Content-Length {declared} exceeds the cap of {cap} bytes")
        if r.is_stream_consumed:
            # A transport that hands back an already-read (decoded) body,
            # such as an in-memory test transport: only the cap can apply.
            if len(r.content) > cap:
                raise Oversize(f"{what}: response exceeds the cap of {cap} bytes")
            return r.content
        decoder = _BoundedDecoder(encoding)
        parts: list[bytes] = []
        total = 0
        for chunk in r.iter_raw():
            if self._clock() - started > self._deadline:
                raise Timeout(f"{what}: response not complete after {self._deadline:g} s")
            for out in decoder.feed(chunk, cap - total):
                total += len(out)
                if total > cap:
                    raise Oversize(f"{what}: response exceeds the cap of {cap} bytes")
                parts.append(out)
        tail = decoder.flush()
        total += len(tail)
        if total > cap:
            raise Oversize(f"{what}: response exceeds the cap of {cap} bytes")
        parts.append(tail)
        return b"".join(parts)

    def _raise_for_status(self, r: httpx.Response, started: float) -> None:
        status = r.status_code
        detail = ""
        try:
            raw = self._read_capped(r, MAX_ERROR_BODY, started, what="error body")
            doc = json.loads(raw)
            if isinstance(doc, dict):
                detail = str(doc.get("code") or doc.get("title") or "")[:80]
        except (ClientError, ValueError, UnicodeDecodeError):
            detail = ""
        suffix = f" ({detail})" if detail else ""
        retry_after = parse_wait_header(r.headers.get("Retry-After"))
        if status == 429:
            raise RateLimited(f"rate limited (429){suffix}", retry_after=retry_after)
        if status >= 500:
            raise ServerError(f"server error {status}{suffix}", retry_after=retry_after)
        if status in (401, 403):
            raise AccessDenied(f"access denied ({status}){suffix}: check the token", status=status)
        if status == 404:
            raise NotFound(
                f"not found (404){suffix}: no such list, or the token may not read it",
                status=status,
            )
        raise RequestRejected(f"unexpected HTTP status {status}{suffix}", status=status)

    @staticmethod
    def _text(body: bytes, what: str) -> str:
        try:
            return body.decode("utf-8")
        except UnicodeDecodeError as e:
            raise MalformedData(f"{what}: not UTF-8") from e

    @staticmethod
    def _json(body: bytes, what: str) -> dict[str, Any]:
        try:
            doc = json.loads(body)
        except (ValueError, UnicodeDecodeError, RecursionError) as e:
            raise MalformedData(f"{what}: invalid JSON") from e
        if not isinstance(doc, dict):
            raise MalformedData(f"{what}: expected a JSON object")
        return doc

    @staticmethod
    def _next(doc: dict[str, Any], what: str) -> int | None:
        value = doc.get("next")
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise MalformedData(f"{what}: 'next' must be a non-negative integer or null")
        return value

    # --- endpoints ------------------------------------------------------------

    def keyring(self, serial: int | None = None) -> str:
        """Fetch the latest keyring note, or the one with ``serial``.

        Raises:
            TransportError, RequestRejected, Oversize, MalformedData.
        """
        params: dict[str, int | str] | None = None if serial is None else {"serial": serial}
        r = self._get("/keyring", cap=self.limits.keyring, params=params)
        return self._text(r.content, "keyring")

    def checkpoint(self, etag: str | None = None) -> CheckpointResponse:
        """Fetch the checkpoint note (``If-None-Match`` when ``etag`` is given).

        Raises:
            TransportError, RequestRejected, Oversize, MalformedData.
        """
        headers = {"If-None-Match": etag} if etag else None
        r = self._get("/checkpoint", cap=self.limits.checkpoint, headers=headers, allow_304=True)
        new_etag = r.headers.get("ETag")
        if r.status_code == 304:
            return CheckpointResponse(note=None, etag=etag)
        return CheckpointResponse(note=self._text(r.content, "checkpoint"), etag=new_etag)

    def statements_page(self, since: int, limit: int = STATEMENTS_PAGE_LIMIT) -> StatementsPage:
        """Fetch one page of statements after version ``since``.

        Raises:
            TransportError, RequestRejected, Oversize, MalformedData.
        """
        r = self._get(
            "/statements",
            cap=self.limits.statements_page,
            params={"since": since, "limit": limit},
        )
        doc = self._json(r.content, "statements")
        notes = doc.get("statements")
        if not isinstance(notes, list) or not all(isinstance(n, str) for n in notes):
            raise MalformedData("statements: 'statements' must be a list of strings")
        if any(len(n) > self.limits.statement for n in notes):
            raise Oversize(f"statements: a note exceeds {self.limits.statement} bytes")
        return StatementsPage(statements=list(notes), next=self._next(doc, "statements"))

    def iter_statements(self, since: int, until: int) -> Iterator[str]:
        """Yield the statement notes of versions ``since+1 .. until``, paging.

        Stops early when the server has no more (the trusted state then
        rejects the short chain). Statements beyond ``until`` (published
        after the checkpoint was fetched) are not yielded.

        Raises:
            TransportError, RequestRejected, Oversize, MalformedData.
        """
        position = since
        total = 0
        while position < until:
            page = self.statements_page(position, min(STATEMENTS_PAGE_LIMIT, until - position))
            if not page.statements:
                return
            for note in page.statements:
                total += len(note)
                if total > self.limits.statements_total:
                    raise Oversize(
                        f"statements: more than {self.limits.statements_total} bytes in one sync"
                    )
                yield note
                position += 1
                if position >= until:
                    return
            if page.next is None:
                return
            if page.next != position:
                raise MalformedData(
                    f"statements: 'next' is {page.next}, expected {position} after this page"
                )

    def statement(self, version: int) -> str:
        """Fetch statement ``version``'s note.

        Raises:
            TransportError, RequestRejected, Oversize, MalformedData.
        """
        r = self._get(f"/statements/{version}", cap=self.limits.statement)
        return self._text(r.content, "statement")

    def snapshot(self, version: int, max_bytes: int) -> bytes:
        """Fetch the raw sorted hashes at ``version``, at most ``max_bytes``.

        ``max_bytes`` comes from the verified statement's ``count`` (x 32):
        the snapshot has no signature of its own, so its size is bounded by
        what was signed.

        Raises:
            TransportError, RequestRejected, Oversize, MalformedData.
        """
        r = self._get("/snapshot", cap=max_bytes, params={"version": version})
        served = r.headers.get(VERSION_HEADER)
        if served is not None and served != str(version):
            raise MalformedData(f"snapshot: asked for version {version}, served {served!r}")
        return r.content

    def plaintext_page(self, since: int) -> PlaintextPage:
        """Fetch one page of expressions for entries added after ``since``.

        Nothing is verified here: the sync accepts an expression only if its
        SHA-256 is the given hash and is in the verified set.

        Raises:
            TransportError, RequestRejected, Oversize, MalformedData.
        """
        r = self._get("/plaintext", cap=self.limits.plaintext_page, params={"since": since})
        doc = self._json(r.content, "plaintext")
        items = doc.get("expressions")
        if not isinstance(items, list):
            raise MalformedData("plaintext: 'expressions' must be a list")
        pairs: list[tuple[bytes, str]] = []
        for item in items:
            if not isinstance(item, dict):
                raise MalformedData("plaintext: each item must be an object")
            h, expr = item.get("hash"), item.get("expression")
            if not isinstance(h, str) or not isinstance(expr, str):
                raise MalformedData("plaintext: 'hash' and 'expression' must be strings")
            try:
                pairs.append((b64decode(h, length=_HASH_SIZE, what="plaintext hash"), expr))
            except FormatError as e:
                raise MalformedData(str(e)) from e
        return PlaintextPage(expressions=pairs, next=self._next(doc, "plaintext"))

    def _hashes(self, path: str, params: dict[str, int | str]) -> list[bytes]:
        r = self._get(path, cap=self.limits.proof, params=params)
        doc = self._json(r.content, path)
        items = doc.get("hashes")
        if not isinstance(items, list) or len(items) > MAX_PROOF_HASHES:
            raise MalformedData(f"{path}: 'hashes' must be a list of at most 64 hashes")
        out: list[bytes] = []
        for item in items:
            if not isinstance(item, str):
                raise MalformedData(f"{path}: hashes must be base64 strings")
            try:
                out.append(b64decode(item, length=_HASH_SIZE, what=path))
            except FormatError as e:
                raise MalformedData(str(e)) from e
        return out

    def inclusion_proof(self, version: int, size: int) -> list[bytes]:
        """Fetch the RFC 9162 inclusion proof of leaf ``version - 1`` in tree ``size``.

        Raises:
            TransportError, RequestRejected, Oversize, MalformedData.
        """
        return self._hashes("/proofs/inclusion", {"version": version, "size": size})

    def consistency_proof(self, old_size: int, new_size: int) -> list[bytes]:
        """Fetch the RFC 9162 consistency proof between two tree sizes.

        Raises:
            TransportError, RequestRejected, Oversize, MalformedData.
        """
        return self._hashes("/proofs/consistency", {"from": old_size, "to": new_size})

    def range_hashes(self, size: int) -> list[bytes]:
        """Fetch the compact range (maximal perfect subtree roots) at ``size``.

        Raises:
            TransportError, RequestRejected, Oversize, MalformedData.
        """
        return self._hashes("/proofs/range", {"size": size})
