"""Slow retrieval below the body: headers dripped, ``100 Continue`` forever (issue 12, items 2, 6).

httpx's timeouts bound each socket read, not the exchange. A server (or a
hop) that sends one header line just before each read timeout, or an
endless stream of ``100 Continue`` interim responses (h11 and httpcore skip
any number of them, RFC 9110 15.2), would hold ``cleanfeed isp`` (and its
state lock) or ``cleanfeed audit fetch`` forever. One overall deadline per
response covers connect, headers, interim responses and body
(``clients.common.http``): the client is cut off at it, the lock is
released, the outcome is recorded as ``timeout``, and the list in force
stays.

The server here is a raw socket on loopback and the client is the
production HTTP client built from the configuration. Each hostile script
is bounded (``hostile_server.MAX_SCRIPT_SECONDS``): without the deadline
the client would wait out the script and fail with a network error, never
with ``timeout``.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from support.attack_helpers import World
from support.hostile_server import Conn, hostile

from clients.audit.fetch import build_http_client as audit_http_client
from clients.audit.fetch import fetch_bundle
from clients.common.limits import Timeouts
from clients.errors import Timeout
from clients.isp.fetcher import build_http_client
from clients.isp.store import StateStore

#: Per-read timeout far above the drip interval: only the deadline can fire.
READ = 5.0
#: The overall deadline under test (seconds).
DEADLINE = 1.0
#: Seconds between two hostile pieces.
DRIP = 0.05


def header_lines() -> Iterator[bytes]:
    """A status line, then one header line per piece, never the blank line."""
    yield b"HTTP/1.1 200 OK\r\n"
    for i in itertools.count():
        yield f"X-Drip-{i}: x\r\n".encode()


def continues() -> Iterator[bytes]:
    """``100 Continue`` interim responses without end (RFC 9110 15.2.1)."""
    while True:
        yield b"HTTP/1.1 100 Continue\r\n\r\n"


def body_bytes() -> Iterator[bytes]:
    """Complete headers, then a body one byte at a time without end."""
    yield b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n{"
    while True:
        yield b" "


SCRIPTS: dict[str, Callable[[], Iterator[bytes]]] = {
    "header drip": header_lines,
    "100 continue forever": continues,
    "body drip": body_bytes,
}


def _drip(pieces: Callable[[], Iterator[bytes]]) -> Callable[[Conn], None]:
    def script(conn: Conn) -> None:
        conn.drip(pieces(), DRIP)

    return script


def _lock_is_free(state_dir: Path) -> bool:
    with StateStore(state_dir, create=False) as store, store.lock(0):
        return True


@pytest.mark.parametrize("attack", list(SCRIPTS))
def test_isp_sync_is_cut_off_at_the_deadline(synced: World, attack: str) -> None:
    w = synced
    before = w.held()
    with hostile(_drip(SCRIPTS[attack])) as server:
        config = w.configured(server=server.url, timeouts=Timeouts(read=READ, deadline=DEADLINE))
        with build_http_client(config) as client:
            outcome = w.sync(config=config, client=client)
        assert server.targets, "the client never reached the hostile server"
    # Cut off, recorded (counter, last error) and the list kept.
    w.assert_rejected(outcome, "timeout", before, status="failed")
    assert "deadline" in outcome.message or "Timeout" in outcome.message
    # The state lock was released: another sync may run at once.
    assert _lock_is_free(w.state_dir)
    assert w.sync().ok


@pytest.mark.parametrize("attack", list(SCRIPTS))
def test_audit_fetch_is_cut_off_at_the_deadline(tmp_path: Path, attack: str) -> None:
    output = tmp_path / "bundle.json"
    with (
        hostile(_drip(SCRIPTS[attack])) as server,
        audit_http_client(Timeouts(read=READ, deadline=DEADLINE)) as client,
        pytest.raises(Timeout),
    ):
        fetch_bundle(
            client,
            server=server.url,
            list_name="main",
            token="cf_t",
            output=output,
            deadline=DEADLINE,
        )
    assert not output.exists()
