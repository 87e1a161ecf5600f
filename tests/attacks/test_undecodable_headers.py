"""Undecodable bytes in the headers the client reads (issue 12, item 4).

A hostile hop answers with a header value that is not ASCII (RFC 9110 5.5
allows only visible ASCII, space and tab; obs-text has no defined
decoding). Today a non-ASCII ``ETag`` is decoded as UTF-8, stored, and the
next sync crashes with ``UnicodeEncodeError`` when it is sent back (exit
1, nothing recorded). Now every header the client reads is decoded
strictly: anything else is the typed rejection ``undecodable``, recorded in
``isp status`` and the metrics, and the list in force stays.
"""

from __future__ import annotations

import httpx
import pytest
from support.asgi_bridge import ChunkStream
from support.attack_helpers import World, replacing

from clients.isp.daemon import render_metrics
from clients.isp.store import StateStore

#: Header values that are not visible ASCII: UTF-8, Latin-1, control bytes.
VALUES = {
    "utf-8": '"caf\u00e9"'.encode(),
    "latin-1": b'"caf\xe9"',
    "control": b'"a\x01b"',
}


def _checkpoint_with(w: World, name: bytes, value: bytes) -> httpx.Response:
    body = w.checkpoint_note().encode()
    return httpx.Response(200, headers=[(name, value)], stream=ChunkStream(body))


@pytest.mark.parametrize("value", list(VALUES))
@pytest.mark.parametrize("header", ["ETag", "Content-Encoding"])
def test_non_ascii_header_is_a_typed_rejection(synced: World, header: str, value: str) -> None:
    w = synced
    before = w.held()
    response = _checkpoint_with(w, header.encode(), VALUES[value])
    w.proxy.tamper = replacing(checkpoint=lambda req, resp: response)
    w.assert_rejected(w.sync(), "undecodable", before)
    # Shown by `isp status` (the store's status) and exported as a metric.
    with StateStore(w.state_dir, create=False) as store:
        status = store.status()
    assert status.last_error_reason == "undecodable"
    assert 'cleanfeed_isp_sync_total{reason="undecodable"} 1' in render_metrics(
        status, last_ok=False
    )
    # Nothing poisoned was kept: the next honest poll succeeds.
    w.proxy.tamper = None
    outcome = w.sync()
    assert outcome.ok, outcome


def test_non_ascii_snapshot_version_header_is_a_typed_rejection(world: World) -> None:
    w = world
    w.add(w.url("a"))
    assert w.publish() == 1
    before = w.held()

    def hostile(request: httpx.Request, response: httpx.Response) -> httpx.Response:
        headers = [(b"Cleanfeed-Version", "\u0661".encode())]  # ARABIC-INDIC DIGIT ONE
        return httpx.Response(200, headers=headers, stream=ChunkStream(response.content))

    w.proxy.tamper = replacing(snapshot=hostile)
    w.assert_rejected(w.sync(), "undecodable", before)
