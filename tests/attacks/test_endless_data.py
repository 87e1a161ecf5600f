"""Endless data and slow retrieval (TUF's names for them).

A hostile server or proxy answers with more bytes than any valid document
can have, compresses a huge body into a small gzip bomb, drips its answer
slowly, or makes the client walk or page without end. The client reads
every body with a cap on the *decoded* bytes (``clients.isp.config.Limits``,
protocol section 12.4; the snapshot is capped at ``count x 32`` from the
verified statement), times out slow reads, and bounds how many keyrings,
pages and bytes one sync may fetch. The last good list stays in force.

Covered elsewhere and referenced from docs/security.md: the fetcher's own
cap and decoder tests (``tests/clients/isp/test_fetcher.py``), its overall
per-response deadline against a server dribbling one byte per read timeout
(``::test_overall_deadline_against_a_dribbling_server``).
"""

from __future__ import annotations

import base64
import gzip
import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from support.attack_helpers import World, replacing, sha
from support.isp_helpers import raw_response
from support.stalling_server import stalling_server

from clients.isp.config import Limits, Timeouts
from clients.isp.fetcher import build_http_client

DEFAULTS = Limits()

#: A gzip body that decodes to 64 MiB of spaces (about 64 KiB compressed),
#: larger than every decoded cap of the client.
BOMB_SIZE = 64 * 1024 * 1024


@pytest.fixture(scope="module")
def bomb() -> bytes:
    return gzip.compress(b" " * BOMB_SIZE, compresslevel=9)


#: endpoint suffix -> (cap in bytes, sync that reaches it)
ENDPOINTS: dict[str, tuple[int, str]] = {
    "keyring": (DEFAULTS.keyring, "incremental"),
    "checkpoint": (DEFAULTS.checkpoint, "incremental"),
    "statements": (DEFAULTS.statements_page, "incremental"),
    "statements_1": (DEFAULTS.statement, "first"),
    "proofs_inclusion": (DEFAULTS.proof, "first"),
    "proofs_range": (DEFAULTS.proof, "first"),
    "snapshot": (5 * 32, "first"),  # count x 32 of the signed statement 1
}

Body = Callable[[int, bytes], httpx.Response]

FORMS: dict[str, Body] = {
    # Declared: Content-Length says it all; refused before a byte is read.
    "declared": lambda cap, bomb: raw_response(
        200, b"x" * (cap + 1), {"Content-Length": str(cap + 1)}
    ),
    # Streamed without a length: counted while reading.
    "streamed": lambda cap, bomb: raw_response(200, b"x" * (cap + 1)),
    # A gzip bomb: the cap applies to what it decodes to.
    "gzip bomb": lambda cap, bomb: raw_response(200, bomb, {"Content-Encoding": "gzip"}),
}


def _prepare(w: World, kind: str) -> None:
    for label in ("a", "b", "c", "d"):
        w.add(w.url(label))
    assert w.publish() == 1
    if kind == "incremental":
        assert w.sync().version_after == 1
        w.add(w.url("e"))
        assert w.publish() == 2


@pytest.mark.parametrize("form", list(FORMS))
@pytest.mark.parametrize("endpoint", list(ENDPOINTS))
def test_response_over_the_size_cap(world: World, bomb: bytes, endpoint: str, form: str) -> None:
    w = world
    cap, kind = ENDPOINTS[endpoint]
    _prepare(w, kind)
    before = w.held()
    body = FORMS[form](cap, bomb)
    w.proxy.tamper = replacing(**{endpoint: lambda req, resp: body})
    w.assert_rejected(w.sync(), "oversize", before)


def test_statements_beyond_the_per_sync_total(synced: World) -> None:
    w = synced
    for i in range(4):
        w.add(w.url(f"many-{i}"))
        w.publish()
    before = w.held()
    one = len(w.statement_note(3))
    # Every page and statement is under its own cap; the sum is not.
    config = w.configured(limits=Limits(statements_total=3 * one))
    w.assert_rejected(w.sync(config=config), "oversize", before)


def test_keyring_claiming_a_far_later_serial_is_not_walked(synced: World) -> None:
    w = synced
    before = w.held()
    held = w.keyring_note(1)
    far = held.replace("serial 1\n", "serial 1000000000\n", 1)
    w.proxy.tamper = replacing(keyring=far)
    w.proxy.requests.clear()
    w.assert_rejected(w.sync(), "format_error", before)
    keyring_requests = [r for r in w.proxy.requests if r.url.path.endswith("/keyring")]
    assert len(keyring_requests) == 1  # only the latest: no walk of a billion serials


def test_deeply_nested_statements_page(synced: World) -> None:
    w = synced
    w.add(w.url("more"))
    w.publish()
    before = w.held()
    w.proxy.tamper = replacing(statements=b"[" * 100_000 + b"]" * 100_000)
    w.assert_rejected(w.sync(), "format_error", before)


def test_proof_with_more_hashes_than_any_tree_has(world: World) -> None:
    w = world
    _prepare(w, "first")
    before = w.held()
    long_proof = {"hashes": [base64.b64encode(bytes(32)).decode()] * 65}
    w.proxy.tamper = replacing(proofs_inclusion=long_proof)
    w.assert_rejected(w.sync(), "format_error", before)


def _plaintext_world(w: World) -> Any:
    config = w.configured(token=w.tokens.isp_plain, plaintext=True)
    outcome = w.sync(config=config)
    assert outcome.ok, outcome
    assert not outcome.problems, outcome
    return config


def test_plaintext_page_over_its_cap_keeps_the_list(synced: World, bomb: bytes) -> None:
    w = synced
    config = _plaintext_world(w)
    w.add(w.url("after"))
    w.publish()
    w.proxy.tamper = replacing(
        plaintext=lambda req, resp: raw_response(200, bomb, {"Content-Encoding": "gzip"})
    )
    outcome = w.sync(config=config)
    # The list itself verified and is applied; only the plaintext is refused.
    assert outcome.status == "updated", outcome
    assert ("oversize", outcome.problems[0][1]) in outcome.problems


def test_plaintext_pages_without_end(synced: World) -> None:
    """A server whose plaintext pages never end on the verified version.

    Pages end on version boundaries and ``next`` is the ``since`` of the
    next page (protocol section 10), so a page of a list at version V can
    never point past V. Here the server keeps answering ``next = since + 1``
    with a valid (hash, expression) pair that is simply not listed, which
    the client ignores, for 200 pages. The client must stop at its verified
    version instead of fetching (at most 100,000 pages of 16 MiB).
    """
    w = synced
    config = _plaintext_world(w)
    version = w.held().version
    assert version == 2
    served: list[int] = []

    def endless(request: httpx.Request, response: httpx.Response) -> httpx.Response:
        since = int(request.url.params.get("since", "0"))
        served.append(since)
        expr = f"example.org/junk/{since}"
        item = {"hash": base64.b64encode(sha(expr)).decode(), "expression": expr}
        nxt = since + 1 if since < 200 else None
        return as_json({"expressions": [item], "next": nxt})

    w.proxy.tamper = replacing(plaintext=endless)
    w.sync(config=config)
    assert len(served) <= version + 1, f"{len(served)} plaintext pages fetched at version {version}"


def as_json(doc: Any) -> httpx.Response:
    """A JSON body as a response."""
    return httpx.Response(200, content=json.dumps(doc).encode())


# --- slow retrieval on a real socket --------------------------------------------------


def test_slow_retrieval_times_out_and_keeps_the_list(synced: World) -> None:
    w = synced
    w.add(w.url("more"))
    w.publish()
    before = w.held()
    with stalling_server(w.d.app, "/statements", b"{") as base:
        config = w.configured(server=base, timeouts=Timeouts(read=0.5))
        # The production HTTP client, built from the configuration's timeouts.
        with build_http_client(config) as client:
            outcome = w.sync(config=config, client=client)
        w.assert_rejected(outcome, "timeout", before, status="failed")
