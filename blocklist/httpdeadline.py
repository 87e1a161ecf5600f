"""I/O corner (docs/adr/0004-blocklist-io-corners.md): one overall deadline per HTTP exchange.

httpx's timeouts bound each socket operation, not the exchange, so a peer
that sends one header line, one body byte or one ``100 Continue`` just
before each read timeout would hold the caller forever (h11 and httpcore
loop over any number of 1xx interim responses, RFC 9110 15.2; h11 allows a
64 KiB header section). Two callers meet such peers:

- the clients' network floor (``clients.common.http``): a hostile server or
  hop in front of ``cleanfeed isp`` and ``cleanfeed audit``;
- the signer's re-verification job (``signer.reverify``): a listed site,
  which is an adversary by definition.

The signer and the clients may not import each other (docs/architecture.md),
so this backend lives here, where both may, and nowhere else. It imports
only the standard library, httpx and httpcore; no pure module of
``blocklist`` imports it, and only those two modules do
(tests/test_layering.py).

How: :func:`install_deadline` wraps httpcore's network backend of every
transport of an ``httpx.Client``, so every connect, TLS handshake, read and
write waits at most until the deadline set by the innermost enclosing
:func:`deadline` block of the current context (thread or task); outside
any block the per-operation timeouts apply unchanged.
"""

from __future__ import annotations

import contextlib
import contextvars
import ssl
import time
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import httpcore
import httpx

__all__ = ["deadline", "install_deadline"]

#: Monotonic time by which the exchange being made must be complete. A
#: context variable, so each thread of a worker pool (and each asyncio
#: task) has its own.
_DEADLINE: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "cleanfeed_http_deadline", default=None
)


@contextlib.contextmanager
def deadline(seconds: float) -> Iterator[float]:
    """Bound every network wait inside the block to ``seconds`` from now.

    Nested blocks keep the earlier deadline. Yields the absolute monotonic
    deadline.
    """
    end = time.monotonic() + seconds
    outer = _DEADLINE.get()
    if outer is not None:
        end = min(end, outer)
    token = _DEADLINE.set(end)
    try:
        yield end
    finally:
        _DEADLINE.reset(token)


def _clamp(timeout: float | None, error: type[Exception]) -> float | None:
    """``timeout`` shortened to what is left of the deadline; raise ``error`` once it passed.

    Outside a :func:`deadline` block ``timeout`` is returned unchanged.
    """
    end = _DEADLINE.get()
    if end is None:
        return timeout
    left = end - time.monotonic()
    if left <= 0:
        raise error("the overall deadline of the response passed")
    return left if timeout is None else min(timeout, left)


class _DeadlineStream(httpcore.NetworkStream):
    """A socket stream whose every wait ends at the current deadline."""

    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, _clamp(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, _clamp(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        tls = self._inner.start_tls(
            ssl_context, server_hostname, _clamp(timeout, httpcore.ConnectTimeout)
        )
        return _DeadlineStream(tls)

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _DeadlineBackend(httpcore.NetworkBackend):
    """httpcore's network backend, with every connection a :class:`_DeadlineStream`."""

    def __init__(self, inner: httpcore.NetworkBackend) -> None:
        self._inner = inner

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        stream = self._inner.connect_tcp(
            host,
            port,
            _clamp(timeout, httpcore.ConnectTimeout),
            local_address,
            socket_options,
        )
        return _DeadlineStream(stream)

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        stream = self._inner.connect_unix_socket(
            path, _clamp(timeout, httpcore.ConnectTimeout), socket_options
        )
        return _DeadlineStream(stream)

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


def install_deadline(client: httpx.Client) -> None:
    """Wrap the network backend of every transport of ``client``.

    httpx builds its transports (the direct one and one per proxy mount)
    without a way to pass a network backend, so the backend attribute of
    each connection pool is wrapped after construction. Should httpx ever
    change that layout, this fails loudly (and the deadline tests with it)
    instead of silently running without a deadline. Installing twice is
    harmless.

    Raises:
        RuntimeError: a transport without the expected connection pool.
    """
    mounts: Mapping[Any, Any] = getattr(client, "_mounts", {})
    for transport in (getattr(client, "_transport", None), *mounts.values()):
        if transport is None:  # a NO_PROXY mount: requests use the default transport
            continue
        pool = getattr(transport, "_pool", None)
        backend = getattr(pool, "_network_backend", None)
        if pool is None or backend is None:
            raise RuntimeError("cannot install the overall response deadline on this httpx")
        if not isinstance(backend, _DeadlineBackend):
            pool._network_backend = _DeadlineBackend(backend)
