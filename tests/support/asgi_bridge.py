"""The real app in-process behind a synchronous httpx client: the one bridge.

``httpx.ASGITransport`` is async-only, while the ISP client, the auditor and
the hit poster use a synchronous ``httpx.Client``. :class:`ASGIBridge` is the
single transport every suite uses for that (the attack world, the ISP sync
tests, the auditor's in-process service, the API tests of the ISP
endpoints); :class:`support.api_testing.ApiClient` remains the analysts'
asynchronous facade.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import anyio.from_thread
import httpx


class ChunkStream(httpx.SyncByteStream):
    """A response body streamed in chunks, as a socket would deliver it."""

    def __init__(self, body: bytes, chunk: int = 65536) -> None:
        self._body = body
        self._chunk = chunk

    def __iter__(self) -> Iterator[bytes]:
        for i in range(0, len(self._body), self._chunk):
            yield self._body[i : i + self._chunk]


class ASGIBridge(httpx.BaseTransport):
    """Runs an ASGI app (with its lifespan) behind a synchronous httpx client.

    httpx.ASGITransport is async-only and the ISP client is synchronous: the
    app runs in an anyio blocking portal (its own event loop thread), and
    each request goes through httpx.ASGITransport there. The body is handed
    back raw (still gzip-encoded if the app compressed it), streamed in
    chunks, so the client's own bounded decoding is what runs.
    """

    def __init__(self, app: Any) -> None:
        self._stack = contextlib.ExitStack()
        self.portal = self._stack.enter_context(anyio.from_thread.start_blocking_portal())
        self._stack.enter_context(
            self.portal.wrap_async_context_manager(app.router.lifespan_context(app))
        )
        self._inner = httpx.ASGITransport(app=app)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        body = request.read()

        async def call() -> tuple[int, list[tuple[bytes, bytes]], bytes]:
            req = httpx.Request(request.method, request.url, headers=request.headers, content=body)
            resp = await self._inner.handle_async_request(req)
            raw = b"".join([chunk async for chunk in resp.aiter_raw()])
            await resp.aclose()
            return resp.status_code, resp.headers.raw, raw

        status, headers, raw = self.portal.call(call)
        return httpx.Response(status, headers=headers, stream=ChunkStream(raw))

    def close(self) -> None:
        self._stack.close()
