"""The real app on a loopback socket whose answer on one path stalls.

For the slow-retrieval tests of the ISP client (a read timeout must end the
sync and keep the last good list): uvicorn serves the app on 127.0.0.1 on a
free port, and every response on a path ending with the given suffix sends
its status and one byte, then nothing until the server is stopped.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

#: Longest wait for uvicorn to start listening or to stop.
SERVER_DEADLINE_SECONDS = 30.0


class Stall:
    """ASGI wrapper: responses on ``suffix`` send ``first``, then nothing until released."""

    def __init__(self, app: Any, suffix: str, first: bytes) -> None:
        self.app = app
        self.suffix = suffix
        self.first = first
        self.release = threading.Event()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"].endswith(self.suffix):
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": self.first, "more_body": True})
            while not self.release.is_set():
                await asyncio.sleep(0.05)
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return
        await self.app(scope, receive, send)


@contextmanager
def stalling_server(app: Any, suffix: str, first: bytes) -> Iterator[str]:
    """Serve ``app`` on loopback with :class:`Stall` on ``suffix``; yield its base URL."""
    uvicorn = pytest.importorskip("uvicorn")
    stall = Stall(app, suffix, first)
    server = uvicorn.Server(
        uvicorn.Config(stall, host="127.0.0.1", port=0, lifespan="off", log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + SERVER_DEADLINE_SECONDS
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        assert server.started
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{port}"
    finally:
        stall.release.set()
        server.should_exit = True
        thread.join(timeout=SERVER_DEADLINE_SECONDS)
