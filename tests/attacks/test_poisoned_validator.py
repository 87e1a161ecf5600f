"""A poisoned validator: one ETag a hostile hop plants to stop every later sync (issue 12, item 3).

The client sends its stored ETag back in ``If-None-Match``. Today one
oversized ETag from a hostile hop (or a broken proxy) is stored as served;
nginx then refuses the request header (400/431) on every poll, and the
client never syncs again. Validators are now checked before they are stored
(RFC 9110 8.8.3 syntax, at most 256 bytes), and a stored validator that
meets a 4xx is dropped, so the next poll is unconditional.
"""

from __future__ import annotations

import httpx
from support.asgi_bridge import ChunkStream
from support.attack_helpers import World

from clients.common.http import MAX_ETAG_BYTES
from clients.isp.store import StateStore

#: nginx's answer to a request header beyond its buffer.
TOO_LARGE = httpx.Response(400, content=b"<html>400 Request Header Or Cookie Too Large</html>")


def _stored_etag(w: World) -> str | None:
    with StateStore(w.state_dir, create=False) as store:
        return store.etag()


def _checkpoint_requests(w: World) -> list[httpx.Request]:
    return [r for r in w.proxy.requests if r.url.path.endswith("/checkpoint")]


def _with_etag(w: World, etag: bytes) -> httpx.Response:
    """The genuine checkpoint note, with a hostile ETag header (raw bytes)."""
    body = w.checkpoint_note().encode()
    return httpx.Response(200, headers=[(b"ETag", etag)], stream=ChunkStream(body))


def _nginx_like(w: World, planted: httpx.Response | None) -> None:
    """A proxy that refuses oversized request headers, optionally planting an ETag first."""

    def tamper(request: httpx.Request, response: httpx.Response) -> httpx.Response:
        if len(request.headers.get("If-None-Match", "")) > MAX_ETAG_BYTES:
            return TOO_LARGE
        if planted is not None and request.url.path.endswith("/checkpoint"):
            return planted
        return response

    w.proxy.tamper = tamper


def test_oversized_etag_is_never_stored(synced: World) -> None:
    w = synced
    huge = b'"' + b"a" * 4096 + b'"'
    _nginx_like(w, _with_etag(w, huge))
    outcome = w.sync()
    assert outcome.ok, outcome  # the checkpoint itself verifies
    assert _stored_etag(w) != huge.decode()
    # Later polls go through the same proxy and are not refused.
    _nginx_like(w, None)
    w.proxy.requests.clear()
    for _ in range(2):
        outcome = w.sync()
        assert outcome.ok, outcome
    for request in _checkpoint_requests(w):
        assert len(request.headers.get("If-None-Match", "")) <= MAX_ETAG_BYTES


def test_malformed_etag_is_never_stored(synced: World) -> None:
    w = synced
    held = _stored_etag(w)
    # Not a quoted entity-tag (RFC 9110 8.8.3): a bare token with a quote inside.
    _nginx_like(w, _with_etag(w, b'abc"def'))
    assert w.sync().ok
    assert _stored_etag(w) == held


def test_stored_validator_meeting_a_4xx_is_dropped(synced: World) -> None:
    """A validator that a proxy refuses (planted before, or by an older client)."""
    w = synced
    poisoned = '"' + "p" * 300 + '"'
    with StateStore(w.state_dir, create=False) as store:
        store.set_etag(poisoned[:200] + '"')  # within the syntax and size rules
    planted = _stored_etag(w)
    assert planted is not None

    def refuse_it(request: httpx.Request, response: httpx.Response) -> httpx.Response:
        if request.headers.get("If-None-Match") == planted:
            return httpx.Response(400, content=b"bad validator")
        return response

    w.proxy.tamper = refuse_it
    before = w.held()
    w.assert_rejected(w.sync(), "request_rejected", before, status="failed")
    assert _stored_etag(w) is None
    # The next poll is unconditional and succeeds through the same proxy.
    w.proxy.requests.clear()
    outcome = w.sync()
    assert outcome.ok, outcome
    (first, *_) = _checkpoint_requests(w)
    assert "If-None-Match" not in first.headers
