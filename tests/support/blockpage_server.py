"""The ISP block page server (clients.isp.blockpage) running for a test.

The server is asyncio code; the tests are synchronous. :class:`Running`
keeps it in its own event loop thread on a free loopback port.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from typing import Any

from clients.isp.blockpage import BlockPageConfig, BlockPageServer, open_server

#: Longest wait for the server to start, answer a call or stop.
CALL_TIMEOUT_SECONDS = 30


class Running:
    """A block page server in its own event loop thread."""

    def __init__(self, config: BlockPageConfig, host: str = "127.0.0.1") -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.host = host
        self.server: BlockPageServer = self.call(open_server(config, host, 0))
        self.base = f"http://{host}:{self.server.port}"

    def call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(
            timeout=CALL_TIMEOUT_SECONDS
        )

    def close(self) -> None:
        self.call(self.server.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=CALL_TIMEOUT_SECONDS)
        self.loop.close()


@contextlib.contextmanager
def running(config: BlockPageConfig, host: str = "127.0.0.1") -> Iterator[Running]:
    """A :class:`Running` server for the ``with`` block."""
    r = Running(config, host)
    try:
        yield r
    finally:
        r.close()
