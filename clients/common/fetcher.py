"""Typed, capped reads of a list's log endpoints, for both clients.

STYLE.md, "One seam for the network": the fetcher takes an injectable
:class:`httpx.Client`, so tests run the real client against the real app
in-process (an ASGI transport) or against a function (``MockTransport``),
and production builds one with :func:`clients.common.http.build_http_client`.

The ISP sync (:mod:`clients.isp.sync`) and the witness
(:mod:`clients.audit.witness`) read keyrings, checkpoints, statements and
proofs through this class. Everything here is transport: it returns bytes
and texts exactly as served and verifies nothing cryptographic (that is
:mod:`clients.isp.trusted` and the witness). Through
:func:`clients.common.http.fetch` every response has an overall deadline and
a cap on its decoded body, statuses map to typed errors, and the headers read
are strict ASCII. On top of that:

- the server URL is checked (:func:`~clients.common.http.check_server_url`:
  no clear-text ``http://`` off loopback unless allowed, no credentials);
- an ``ETag`` is kept only when it is a valid, short validator;
- the server's ``Cleanfeed-Min-Wait`` hint is remembered in
  :attr:`Fetcher.min_wait`;
- the bearer token goes in the ``Authorization`` header, never in a URL.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import quote

import httpx

from blocklist.encoding import b64decode
from blocklist.errors import FormatError
from cleanfeed import __version__
from clients.common.http import Answer, check_etag, check_server_url, fetch, wait_hint
from clients.common.limits import Limits, Timeouts
from clients.errors import ClientError, MalformedData, Oversize

__all__ = [
    "DEFAULT_RESPONSE_DEADLINE",
    "LONG_POLL_MARGIN_SECONDS",
    "MAX_LONG_POLL_SECONDS",
    "MAX_PROOF_HASHES",
    "MIN_WAIT_HEADER",
    "STATEMENTS_PAGE_LIMIT",
    "VERSION_HEADER",
    "WAIT_HEADER",
    "CheckpointResponse",
    "Fetcher",
    "PlaintextPage",
    "StatementsPage",
]

log = logging.getLogger("cleanfeed.http")

#: Header carrying the server's minimum poll interval (docs/architecture.md).
MIN_WAIT_HEADER: Final = "Cleanfeed-Min-Wait"
#: Header naming the version of a snapshot (DESIGN.md interfaces table).
VERSION_HEADER: Final = "Cleanfeed-Version"
#: Statements asked per page; the server caps pages at 1000 (architecture.md).
STATEMENTS_PAGE_LIMIT: Final = 1000
#: Most hashes in a proof or compact range: a tree of at most 2^63 leaves
#: has at most 63 levels (RFC 9162 2.1.3) -- anything longer is garbage.
MAX_PROOF_HASHES: Final = 64
#: Overall deadline per response (connect, headers, 1xx, body).
DEFAULT_RESPONSE_DEADLINE: Final = Timeouts().deadline
#: Header a long-polling server echoes (DESIGN.md, "Freshness").
WAIT_HEADER: Final = "Cleanfeed-Wait"
#: Longest hold a client asks for (DESIGN.md: S <= 55).
MAX_LONG_POLL_SECONDS: Final = 55
#: Extra seconds a long-poll's timeouts allow beyond the hold: the server's
#: answer after S seconds still has to reach us through proxies.
LONG_POLL_MARGIN_SECONDS: Final = 15.0
_WAIT_RE: Final = re.compile(r"\A[0-9]{1,2}\Z")
#: Hash size on the wire.
_HASH_SIZE: Final = 32


@dataclass(frozen=True, slots=True)
class CheckpointResponse:
    """A checkpoint answer: ``note`` is ``None`` on 304 Not Modified.

    ``wait`` is the server's ``Cleanfeed-Wait`` echo of a long-poll (the
    seconds it was prepared to hold the request; 0: it declined), or
    ``None`` when the server sent none (it does not long-poll).
    """

    note: str | None
    etag: str | None
    wait: int | None = None


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
        allow_insecure_http: accept clear-text ``http://`` off loopback.

    Raises:
        ServerUrlRefused: ``server`` is clear-text off loopback (without
            ``allow_insecure_http``) or carries credentials.
        ConfigError: ``server`` is not an http(s) base URL.
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
        allow_insecure_http: bool = False,
    ) -> None:
        self._client = client
        # Checked here, where the token is about to be sent, not only when a
        # configuration file is loaded: every caller gets the same policy.
        base = check_server_url(server, allow_insecure_http=allow_insecure_http)
        self._base = f"{base}/v1/lists/{quote(list_name, safe='')}"
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

    def _remember_hint(self, r: httpx.Response) -> None:
        hint = wait_hint(r, MIN_WAIT_HEADER)
        if hint is not None:
            self.min_wait = hint

    def _get(
        self,
        path: str,
        *,
        cap: int,
        params: dict[str, int | str] | None = None,
        headers: dict[str, str] | None = None,
        allow_304: bool = False,
        hold: float = 0.0,
    ) -> Answer:
        """GET ``path`` within the deadline and read its decoded body with a cap.

        ``hold``: seconds the server may legitimately keep the request
        before answering (a long-poll); the read timeout and the overall
        deadline of this request grow by it plus a margin.

        Raises:
            TransportError, RequestRejected, Oversize, MalformedData.
        """
        all_headers = dict(self._headers)
        if headers:
            all_headers.update(headers)
        seconds = self._deadline
        timeout: httpx.Timeout | None = None
        if hold > 0:
            extra = hold + LONG_POLL_MARGIN_SECONDS
            seconds += extra
            base = self._client.timeout
            timeout = httpx.Timeout(
                connect=base.connect,
                read=None if base.read is None else base.read + extra,
                write=base.write,
                pool=base.pool,
            )
        return fetch(
            self._client,
            self._base + path,
            cap=cap,
            seconds=seconds,
            timeout=timeout,
            what=path,
            params=params,
            headers=all_headers,
            pass_statuses=frozenset({304}) if allow_304 else frozenset(),
            on_headers=self._remember_hint,
            clock=self._clock,
        )

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
        return self._text(r.body, "keyring")

    def checkpoint(self, etag: str | None = None, *, wait: int = 0) -> CheckpointResponse:
        """Fetch the checkpoint note (``If-None-Match`` when ``etag`` is given).

        Args:
            etag: the validator of the checkpoint held.
            wait: long-poll (with ``etag``): ask the server to hold the
                request up to this many seconds (at most
                :data:`MAX_LONG_POLL_SECONDS`) until another checkpoint
                exists; this request's timeouts grow to cover it.

        Raises:
            TransportError, RequestRejected, Oversize, MalformedData.
            ValueError: ``wait`` out of range.
        """
        if not 0 <= wait <= MAX_LONG_POLL_SECONDS:
            raise ValueError(f"wait must be 0..{MAX_LONG_POLL_SECONDS} seconds")
        headers = {"If-None-Match": etag} if etag else None
        params: dict[str, int | str] | None = {"wait": wait} if wait else None
        r = self._get(
            "/checkpoint",
            cap=self.limits.checkpoint,
            headers=headers,
            params=params,
            allow_304=True,
            hold=wait,
        )
        echoed = self._wait_echo(r) if wait else None
        if r.status == 304:
            return CheckpointResponse(note=None, etag=etag, wait=echoed)
        served_etag = r.header("ETag")
        new_etag = check_etag(served_etag)
        if served_etag is not None and new_etag is None:
            # Not stored: sent back in If-None-Match it could make the server
            # or a proxy refuse every later poll (RFC 9110 8.8.3).
            log.warning("ignoring a malformed or oversized ETag (%d bytes)", len(served_etag))
        return CheckpointResponse(note=self._text(r.body, "checkpoint"), etag=new_etag, wait=echoed)

    @staticmethod
    def _wait_echo(r: Answer) -> int | None:
        """The ``Cleanfeed-Wait`` echo, if well formed; anything else counts as absent."""
        try:
            value = r.header(WAIT_HEADER)
        except ClientError:
            return None
        if value is None or not _WAIT_RE.match(value.strip()):
            return None
        return min(int(value.strip()), MAX_LONG_POLL_SECONDS)

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
        doc = self._json(r.body, "statements")
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
        return self._text(r.body, "statement")

    def snapshot(self, version: int, max_bytes: int) -> bytes:
        """Fetch the raw sorted hashes at ``version``, at most ``max_bytes``.

        ``max_bytes`` comes from the verified statement's ``count`` (x 32):
        the snapshot has no signature of its own, so its size is bounded by
        what was signed.

        Raises:
            TransportError, RequestRejected, Oversize, MalformedData.
        """
        r = self._get("/snapshot", cap=max_bytes, params={"version": version})
        served = r.header(VERSION_HEADER)
        if served is not None and served != str(version):
            raise MalformedData(f"snapshot: asked for version {version}, served {served!r}")
        return r.body

    def plaintext_page(self, since: int) -> PlaintextPage:
        """Fetch one page of expressions for entries added after ``since``.

        Nothing is verified here: the sync accepts an expression only if its
        SHA-256 is the given hash and is in the verified set.

        Raises:
            TransportError, RequestRejected, Oversize, MalformedData.
        """
        r = self._get("/plaintext", cap=self.limits.plaintext_page, params={"since": since})
        doc = self._json(r.body, "plaintext")
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
        doc = self._json(r.body, path)
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
