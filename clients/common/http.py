"""The HTTP floor of both clients: one place for what a hostile server meets.

``cleanfeed isp`` and ``cleanfeed audit`` (fetch and witness) reach the
server through this module only, so the defences below hold for both
(issue 12, items 2 to 6; issue 14, item 2):

- **Server URL policy** (:func:`check_server_url`): ``https://``, or
  ``http://`` on loopback; clear-text ``http://`` elsewhere only with an
  explicit ``allow_insecure_http`` (a warning on every use,
  :func:`insecure_http_warning`); credentials inside the URL are refused.
  The bearer token and plaintext pages never travel in clear by default.
- **One overall deadline** per response (:func:`deadline`): httpx's
  timeouts bound each socket operation, not the exchange, so a server that
  sends one header line, one body byte or one ``100 Continue`` just before
  each read timeout would hold the client forever (h11 and httpcore loop
  over any number of 1xx interim responses, RFC 9110 15.2). The production
  client (:func:`build_http_client`) wraps httpcore's network backend
  (:mod:`blocklist.httpdeadline`, shared with the signer's re-verification
  job) so every connect, TLS handshake, read and write waits at most until
  the deadline of the response being fetched; :func:`fetch` also checks it
  between body chunks, which covers in-memory test transports.
- **Caps** on the *decoded* body, decompressed here chunk by chunk with a
  bounded output (gzip bombs, TUF "endless data"); a ``Content-Length``
  over the cap is refused before a byte is read.
- **Statuses** map to the typed errors of :mod:`clients.errors`
  (:func:`raise_for_status`), with ``Retry-After`` parsed by one function
  (:func:`parse_wait_header`).
- **Headers the client reads** are strict ASCII (:func:`header`): anything
  else is :class:`~clients.errors.Undecodable`, a typed rejection, never a
  ``UnicodeError`` traceback.
- **Validators**: an ``ETag`` is kept only if it is a well-formed RFC 9110
  entity tag of at most :data:`MAX_ETAG_BYTES` (:func:`check_etag`), so a
  hostile hop cannot plant a validator the server would refuse forever.
- **Redirects** are never followed (one could carry the token elsewhere).
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import re
import ssl
import time
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

import httpx

from blocklist.httpdeadline import deadline, install_deadline
from clients.common.limits import Timeouts
from clients.errors import (
    AccessDenied,
    ClientError,
    ConfigError,
    MalformedData,
    NetworkError,
    NotFound,
    Oversize,
    RateLimited,
    RequestRejected,
    ServerError,
    ServerUrlRefused,
    Timeout,
    Undecodable,
)

__all__ = [
    "MAX_ERROR_BODY",
    "MAX_ETAG_BYTES",
    "MAX_SERVER_WAIT",
    "Answer",
    "BoundedDecoder",
    "build_http_client",
    "check_etag",
    "check_server_url",
    "deadline",
    "fetch",
    "header",
    "insecure_http_warning",
    "is_loopback_host",
    "parse_wait_header",
    "raise_for_status",
    "wait_hint",
]

#: A server hint longer than this is capped: a hostile or misconfigured server
#: must not be able to silence a client for days (it would go stale unnoticed).
MAX_SERVER_WAIT: Final = 3600.0
#: Bytes of an error body read for the message (problem+json is small).
MAX_ERROR_BODY: Final = 4096
#: Longest validator kept. The server's ETags are a quoted hash (under 100
#: bytes); nginx refuses request headers beyond its buffer (8 KiB by default,
#: often less in front of an API), so one oversized ETag from a hostile hop,
#: stored and sent back in ``If-None-Match``, would stop every later sync.
MAX_ETAG_BYTES: Final = 256
#: Decompressed bytes produced per step, bounding memory of a gzip bomb.
_DECODE_STEP: Final = 64 * 1024
#: Digits of a ``Retry-After`` delay we parse (beyond: not a sane hint).
_MAX_DELAY_DIGITS: Final = 12

#: RFC 9110 8.8.3: entity-tag = [ "W/" ] DQUOTE *etagc DQUOTE, etagc = %x21 /
#: %x23-7E / obs-text. obs-text (bytes >= 0x80) is left out on purpose: it
#: has no defined decoding and httpx refuses to send it back.
_ETAG_RE: Final = re.compile(r'(?:W/)?"[\x21\x23-\x7e]*"')
#: RFC 9110 10.2.3: delay-seconds = 1*DIGIT (ASCII digits only: ``str.isdigit``
#: also accepts other scripts' digits and superscripts, which ``int`` refuses).
_DELAY_RE: Final = re.compile(r"[0-9]{1,12}")
#: RFC 9110 5.5: a field value is visible ASCII, space and tab (obs-text and
#: control characters are not decoded by this client).
_FIELD_VALUE_RE: Final = re.compile(rb"[\x20-\x7e\t]*")


# --- the server URL policy (issue 12, item 5) ----------------------------------------


def is_loopback_host(host: str) -> bool:
    """Whether ``host`` is this machine: ``localhost`` or a loopback address.

    RFC 6761 6.3: ``localhost`` names the loopback interface; literal
    addresses in 127.0.0.0/8 and ``::1`` are loopback (RFC 1122 3.2.1.3,
    RFC 4291 2.5.3). Traffic to them never leaves the machine, so clear-text
    HTTP there (a local TLS-terminating proxy, tests) exposes nothing.
    """
    name = host.strip("[]").rstrip(".").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def check_server_url(url: str, *, allow_insecure_http: bool = False) -> str:
    """Check a configured server base URL; return it without a trailing slash.

    Args:
        url: the base URL, e.g. ``https://hotline.example``.
        allow_insecure_http: accept ``http://`` to a host that is not
            loopback (the token and plaintext then travel in clear; the
            caller logs :func:`insecure_http_warning` on every use).

    Raises:
        ServerUrlRefused: credentials in the URL, or clear-text ``http://``
            off loopback without ``allow_insecure_http``.
        ConfigError: not an absolute http(s) URL, or one with a query or
            fragment.
    """
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError as e:
        raise ConfigError(f"server is not a valid URL: {e}") from e
    if "@" in parts.netloc:
        # RFC 9110 4.2.4: userinfo in an http(s) URI is deprecated; here it
        # would put a secret into every log line that names the server. The
        # URL is not repeated in the message for the same reason.
        raise ServerUrlRefused(
            "server URL must not contain credentials (user:password@); "
            "give the token with --token-file or CLEANFEED_TOKEN"
        )
    if parts.scheme not in ("http", "https") or not host:
        raise ConfigError(f"server must be an absolute http(s) URL: {url!r}")
    if parts.query or parts.fragment:
        raise ConfigError("server URL must not carry a query or fragment (tokens never go there)")
    if parts.scheme == "http" and not is_loopback_host(host) and not allow_insecure_http:
        raise ServerUrlRefused(
            f"refusing clear-text http:// to {host}: the bearer token and plaintext would "
            "travel unencrypted; use https://, or set allow_insecure_http = true "
            "(a warning is logged on every sync)"
        )
    return url.rstrip("/")


def insecure_http_warning(url: str) -> str | None:
    """The warning to log for a clear-text URL off loopback, else ``None``."""
    parts = urlsplit(url)
    if parts.scheme == "http" and not is_loopback_host(parts.hostname or ""):
        return (
            f"allow_insecure_http: talking to {parts.hostname} over clear-text http://; "
            "the bearer token and the list travel unencrypted"
        )
    return None


# --- the production client and its overall deadline (issue 12, items 2 and 6) ---------

# The deadline backend itself is blocklist.httpdeadline, shared with the
# signer's re-verification job (docs/adr/0004-blocklist-io-corners.md).
# `deadline` is offered here too, on purpose: this module is the clients'
# one door to the network, and the layering test allows no other client
# module to import blocklist.httpdeadline.


def build_http_client(
    timeouts: Timeouts, *, ca_bundle: Path | None = None, proxy: str | None = None
) -> httpx.Client:
    """Build the production HTTP client of both clients.

    TLS verification is always on (a custom CA bundle may be given);
    ``HTTPS_PROXY``/``HTTP_PROXY``/``NO_PROXY`` are honoured (``trust_env``)
    unless ``proxy`` is set; redirects are not followed (the API never
    redirects, and a redirect could carry the token elsewhere); every socket
    wait respects the overall deadline of :func:`deadline`.

    Raises:
        ClientError: the CA bundle cannot be loaded.
    """
    verify: ssl.SSLContext | bool = True
    if ca_bundle is not None:
        try:
            verify = ssl.create_default_context(cafile=str(ca_bundle))
        except (OSError, ssl.SSLError) as e:
            raise ClientError(f"cannot load CA bundle {ca_bundle}: {e}") from e
    t = timeouts
    client = httpx.Client(
        verify=verify,
        trust_env=True,
        proxy=proxy,
        follow_redirects=False,
        timeout=httpx.Timeout(connect=t.connect, read=t.read, write=t.write, pool=t.pool),
    )
    install_deadline(client)
    return client


# --- headers, hints and validators (issue 12, items 3 and 4) ----------------------------


def header(response: httpx.Response, name: str) -> str | None:
    """The value of a single-valued header the client reads, strictly decoded.

    Raises:
        Undecodable: the value holds bytes other than visible ASCII, space
            and tab (RFC 9110 5.5), or the header is repeated with different
            values.
    """
    wanted = name.lower().encode("ascii")
    values = {v for k, v in response.headers.raw if k.lower() == wanted}
    if not values:
        return None
    if len(values) > 1:
        raise Undecodable(f"header {name} sent more than once with different values")
    (raw,) = values
    if _FIELD_VALUE_RE.fullmatch(raw) is None:
        raise Undecodable(f"header {name} holds bytes that are not visible ASCII")
    return raw.decode("ascii").strip(" \t")


def wait_hint(response: httpx.Response, name: str) -> float | None:
    """An advisory wait header; an undecodable one is ignored, not trusted."""
    try:
        return parse_wait_header(header(response, name))
    except Undecodable:
        return None


def parse_wait_header(value: str | None, *, now: float | None = None) -> float | None:
    """Parse ``Retry-After`` (RFC 9110 10.2.3: seconds or HTTP-date) or ``Cleanfeed-Min-Wait``.

    Returns seconds, capped at :data:`MAX_SERVER_WAIT`, or ``None`` when the
    header is absent or unparseable (an unparseable hint is ignored, not
    trusted).
    """
    if value is None:
        return None
    value = value.strip()
    seconds: float
    if _DELAY_RE.fullmatch(value):
        seconds = float(int(value))
    else:
        try:
            when = parsedate_to_datetime(value)
            if when.tzinfo is None:
                return None
            seconds = when.timestamp() - (time.time() if now is None else now)
        except (TypeError, ValueError, OverflowError, IndexError, OSError):
            return None
    return max(0.0, min(seconds, MAX_SERVER_WAIT))


def check_etag(value: str | None) -> str | None:
    """``value`` if it is a validator worth storing, else ``None``.

    RFC 9110 8.8.3 syntax, ASCII only, at most :data:`MAX_ETAG_BYTES`: a
    validator is sent back verbatim in ``If-None-Match``, so one the server
    (or a proxy) would refuse must never be stored.
    """
    if value is None or len(value) > MAX_ETAG_BYTES or _ETAG_RE.fullmatch(value) is None:
        return None
    return value


# --- statuses ---------------------------------------------------------------------------


def raise_for_status(response: httpx.Response, body: bytes | None = None) -> None:
    """Map a non-2xx answer to the client error tree.

    Args:
        response: the answer.
        body: its (capped) body; default: ``response.content`` (read).

    Raises:
        RateLimited: 429 (``retry_after`` from ``Retry-After``).
        ServerError: 5xx.
        AccessDenied: 401 or 403.
        NotFound: 404 (no such list, or the token may not read it).
        RequestRejected: any other 4xx, a redirect, or an unexpected status.
    """
    status = response.status_code
    if 200 <= status < 300:
        return
    raw = response.content if body is None else body
    detail = ""
    with contextlib.suppress(ValueError, UnicodeDecodeError, RecursionError):
        doc = json.loads(raw[:MAX_ERROR_BODY])
        if isinstance(doc, dict):
            found = doc.get("code") or doc.get("title") or ""
            # Printable text only: the detail ends up on a terminal and in logs.
            detail = "".join(c for c in str(found)[:80] if c.isprintable())
    suffix = f" ({detail})" if detail else ""
    retry_after = wait_hint(response, "Retry-After")
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


# --- bodies -----------------------------------------------------------------------------


class BoundedDecoder:
    """Content-Encoding decoder with a bounded output per step (gzip bombs)."""

    def __init__(self, encoding: str) -> None:
        """Prepare a decoder for ``encoding``.

        Raises:
            MalformedData: an encoding this client does not accept.
        """
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
        """Decode ``data``; stop producing once more than ``room`` bytes came out.

        Raises:
            MalformedData: corrupt compressed data.
        """
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
        """The decoder's remaining output.

        Raises:
            MalformedData: corrupt compressed data.
        """
        if self._z is None:
            return b""
        try:
            return bytes(self._z.flush(_DECODE_STEP))
        except zlib.error as e:
            raise MalformedData(f"corrupt compressed body: {e}") from e


@dataclass(frozen=True, slots=True)
class Answer:
    """A response read by :func:`fetch`: status, headers and decoded body."""

    status: int
    response: httpx.Response
    body: bytes

    def header(self, name: str) -> str | None:
        """A header the client reads, strictly decoded (see :func:`header`).

        Raises:
            Undecodable: not visible ASCII, or repeated with different values.
        """
        return header(self.response, name)


#: Called with (bytes received so far, announced total or None) per chunk.
Progress = Callable[[int, int | None], None]


def _read_body(
    r: httpx.Response,
    *,
    cap: int,
    end: float,
    clock: Callable[[], float],
    what: str,
    decode: bool,
    oversize: type[Oversize],
    progress: Progress | None,
) -> bytes:
    encoding = header(r, "Content-Encoding") or ""
    if not decode and encoding.strip().lower() not in ("", "identity"):
        # We asked for identity: a compressed body could expand far beyond
        # the cap before we could count it (gzip bomb).
        raise MalformedData(f"{what} sent with Content-Encoding {encoding!r}; asked identity")
    declared = header(r, "Content-Length")
    total = int(declared) if declared is not None and declared.isdigit() else None
    if total is not None and not encoding and total > cap:
        # Endless-data protection: refuse before reading a byte.
        raise oversize(
            f"{what}: Content-Length {declared} announced, exceeds the cap of {cap} bytes"
        )
    if r.is_stream_consumed:
        # A transport that hands back an already-read (decoded) body, such
        # as an in-memory test transport: only the cap can apply.
        if len(r.content) > cap:
            raise oversize(f"{what}: response exceeds the cap of {cap} bytes")
        if progress is not None:
            progress(len(r.content), total)
        return r.content
    decoder = BoundedDecoder(encoding)
    parts: list[bytes] = []
    size = 0
    received = 0
    for chunk in r.iter_raw():
        if clock() > end:
            raise Timeout(f"{what}: response not complete by its overall deadline")
        received += len(chunk)
        for out in decoder.feed(chunk, cap - size):
            size += len(out)
            if size > cap:
                raise oversize(f"{what}: response exceeds the cap of {cap} bytes")
            parts.append(out)
        if progress is not None:
            progress(received, total)
    tail = decoder.flush()
    size += len(tail)
    if size > cap:
        raise oversize(f"{what}: response exceeds the cap of {cap} bytes")
    parts.append(tail)
    return b"".join(parts)


def fetch(
    client: httpx.Client,
    url: str,
    *,
    cap: int,
    seconds: float,
    what: str,
    params: Mapping[str, int | str] | None = None,
    headers: Mapping[str, str] | None = None,
    pass_statuses: frozenset[int] = frozenset(),
    decode: bool = True,
    oversize: type[Oversize] = Oversize,
    progress: Progress | None = None,
    on_headers: Callable[[httpx.Response], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
    timeout: httpx.Timeout | None = None,
) -> Answer:
    """GET ``url`` within an overall deadline and read its decoded body with a cap.

    Args:
        client: the HTTP client (production: :func:`build_http_client`).
        url: the absolute URL.
        cap: most decoded body bytes accepted.
        seconds: the overall deadline: connect, headers, any 1xx interim
            responses and the body.
        what: names the resource in error messages.
        params: query parameters.
        headers: request headers (values must be ASCII).
        pass_statuses: statuses returned as they are, without a body
            (e.g. 304 for a conditional request).
        decode: accept ``gzip``/``deflate`` bodies (decoded here, capped);
            when False, anything but identity is refused.
        oversize: the error class raised over the cap.
        progress: called per chunk with (bytes received, announced total).
        on_headers: called with the response once its headers arrived (for
            hints such as ``Cleanfeed-Min-Wait``), whatever the status.
        clock: the monotonic clock of the body-chunk deadline check.
        timeout: per-operation timeouts of this request instead of the
            client's (a long-poll waits longer for its headers).

    Returns:
        The 200 answer (or one of ``pass_statuses``) with its decoded body.

    Raises:
        Timeout: a per-operation timeout or the overall deadline.
        NetworkError: connection failure or an HTTP protocol violation.
        Undecodable: a header the client reads is not ASCII, or a request
            header could not be encoded.
        Oversize: the body exceeds ``cap`` (``oversize``).
        MalformedData: corrupt compressed data or an unexpected encoding.
        TransportError, RequestRejected: a non-200 status
            (:func:`raise_for_status`).
    """
    end = clock() + seconds
    try:
        with (
            deadline(seconds),
            client.stream(
                "GET",
                url,
                params=params,
                headers=headers,
                timeout=httpx.USE_CLIENT_DEFAULT if timeout is None else timeout,
            ) as r,
        ):
            if on_headers is not None:
                on_headers(r)
            if r.status_code in pass_statuses:
                return Answer(r.status_code, r, b"")
            if r.status_code != 200:
                try:
                    body = _read_body(
                        r,
                        cap=MAX_ERROR_BODY,
                        end=end,
                        clock=clock,
                        what="error body",
                        decode=decode,
                        oversize=Oversize,
                        progress=None,
                    )
                except (ClientError, httpx.HTTPError):
                    body = b""
                raise_for_status(r, body)
                status = r.status_code
                raise RequestRejected(f"unexpected HTTP status {status}", status=status)
            body = _read_body(
                r,
                cap=cap,
                end=end,
                clock=clock,
                what=what,
                decode=decode,
                oversize=oversize,
                progress=progress,
            )
            return Answer(200, r, body)
    except httpx.TimeoutException as e:
        raise Timeout(f"timed out fetching {what}: {type(e).__name__}") from e
    except httpx.RequestError as e:
        raise NetworkError(f"network error fetching {what}: {type(e).__name__}: {e}") from e
    except UnicodeError as e:
        # httpx encodes request header values as ASCII and may decode
        # response parts: either way the bytes are not ours to guess.
        raise Undecodable(f"{what}: undecodable header or URL ({type(e).__name__})") from e
