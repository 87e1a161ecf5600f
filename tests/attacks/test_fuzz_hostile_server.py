"""Fuzzing the clients against a hostile HTTP server on loopback (issue 12, item 7).

Hypothesis writes raw HTTP/1.x answers (``hostile_server``): any status code
including 1xx interim responses and nonsense, header names and values of
any bytes (non-ASCII, control characters, line breaks), correct, wrong or
missing ``Content-Length``, valid and broken chunked framing, gzip and
deflate bodies (valid, corrupt, bombs), truncation at any byte, bodies sent
in pieces with pauses, and stalls past the overall deadline. The clients
use their production HTTP client over a real socket.

The properties:

- **no traceback**: the fetcher (every endpoint) and ``audit fetch`` return
  or raise a :class:`~clients.errors.ClientError`; ``sync_once`` returns an
  outcome with a documented reason;
- **the list in force is unchanged** by every rejected case: the ISP
  client's list, checkpoint, keyrings and exports are what they were
  (the sync-level campaign answers one request of a real sync, against a
  log one version ahead, with the fuzzed bytes and the others with the
  genuine answers recorded from the real service).

``test_*`` run a short campaign in the normal run (850 cases, under a
minute); the ``slow`` variants run four times as many (3,400), which keeps
CI's long phase short.
"""

from __future__ import annotations

import contextlib
import gzip
import itertools
import shutil
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.attack_helpers import World
from support.hostile_server import Conn, HostileServer

from clients.audit.fetch import fetch_bundle
from clients.common.fetcher import Fetcher
from clients.common.http import build_http_client
from clients.common.limits import Limits, Timeouts
from clients.errors import ClientError
from clients.isp.sync import SUCCESS, UP_TO_DATE, SyncOutcome

#: Short per-case timeouts: a stalled case costs at most the deadline.
TIMEOUTS = Timeouts(connect=2.0, read=0.5, write=2.0, pool=2.0, deadline=0.2)
#: Small caps, so bombs and long bodies meet them cheaply.
LIMITS = Limits(
    keyring=4096,
    checkpoint=4096,
    statements_page=8192,
    statement=4096,
    plaintext_page=8192,
    proof=4096,
)
#: Cases per campaign: the normal run and the ``slow`` variant.
FETCH_EXAMPLES = 500
SYNC_EXAMPLES = 150
AUDIT_EXAMPLES = 200
SLOW_FACTOR = 4


#: Every reason an outcome may carry: the error tree's and the two successes.
def _reasons() -> frozenset[str]:
    seen: set[str] = {SUCCESS, UP_TO_DATE}
    stack: list[type[ClientError]] = [ClientError]
    while stack:
        cls = stack.pop()
        seen.add(cls.reason)
        stack.extend(cls.__subclasses__())
    return frozenset(seen)


REASONS = _reasons()

# --- the hostile answers ----------------------------------------------------------------

_BOMB = gzip.compress(b"\0" * (1 << 20), compresslevel=9)

INTERIM = [
    b"HTTP/1.1 100 Continue\r\n\r\n",
    b"HTTP/1.1 102 Processing\r\n\r\n",
    b"HTTP/1.1 103 Early Hints\r\nLink: </x>; rel=preload\r\n\r\n",
    b"HTTP/1.1 199 Odd\r\nX: \xff\r\n\r\n",
]
#: Rarely drawn: interim responses and header names that break the framing.
BROKEN_INTERIM = [b"HTTP/1.1 100 Continue\r\n", b"HTTP/1.1 100\r\n\r\n"]
BAD_NAMES = [b"X-\xff", b"Bad Name", b"", b"X:Y", b"Content-Length", b"Transfer-Encoding"]
STATUSES = [100, 101, 103, 200, 201, 204, 206, 301, 302, 304, 400, 401, 403, 404, 429, 431]
STATUSES += [500, 502, 503, 599, 0, 99, 600, 999]
NAMES = [
    b"ETag",
    b"Retry-After",
    b"Cleanfeed-Min-Wait",
    b"Cleanfeed-Version",
    b"Content-Encoding",
    b"Content-Type",
    b"Location",
    b"Connection",
]
VALUES = [
    b'"abc"',
    b'W/"abc"',
    b'"' + b"e" * 300 + b'"',
    b"gzip",
    b"deflate",
    b"br",
    b"identity",
    b"gzip, gzip",
    b"chunked",
    b"0",
    b"-1",
    b"12",
    b"99999999999999999999999",
    "\u00b2".encode(),
    "\u0661".encode(),
    b"caf\xc3\xa9",
    b"caf\xe9",
    b"Wed, 21 Oct 2015 07:28:00 GMT",
    b"Fri, 31 Dec 9999 23:59:59 GMT",
    b"Mon, 01 Jan 0001 00:00:00 GMT",
    b"https://elsewhere.invalid/",
]
BODIES = [
    b"",
    b"{}",
    b'{"statements": ["x"], "next": 1}',
    b'{"statements": [], "next": null}',
    b'{"expressions": [{"hash": "AAAA", "expression": "x"}], "next": 0}',
    b'{"hashes": ["AAAA"]}',
    b'{"code": "rate_limited", "title": "\\u0000\\ud800"}',
    b"[" * 5000,
    b"\xff\xfe\xfd",
    b"example.test - 1\n\n\xe2\x80\x94 example.test AAAA\n",
]


@dataclass
class Case:
    """One hostile answer: the bytes, how they are split and paced, and a stall."""

    pieces: list[bytes]
    pauses: list[float]
    stall: bool
    #: The answer is complete and framed: the connection may be reused.
    framed: bool

    def play(self, conn: Conn) -> None:
        conn.keep_open = self.framed and not self.stall
        for piece, pause in zip(self.pieces, self.pauses, strict=True):
            if not conn.send(piece):
                return
            if pause and not conn.pause(pause):
                return
        if self.stall:
            # Silent past the deadline (and the read timeout's share of it).
            conn.pause(TIMEOUTS.deadline + 0.2)


def _chunked(body: bytes, broken: bool) -> bytes:
    out = b""
    for i in range(0, len(body), 64):
        part = body[i : i + 64]
        out += f"{len(part) + (3 if broken else 0):x}\r\n".encode() + part + b"\r\n"
    return out + (b"zz\r\n" if broken else b"0\r\n\r\n")


@st.composite
def cases(draw: st.DrawFn) -> Case:
    interim = draw(st.lists(st.sampled_from(INTERIM), max_size=3))
    if not draw(st.integers(0, 19)):
        interim.append(draw(st.sampled_from(BROKEN_INTERIM)))
    version = draw(st.sampled_from([b"HTTP/1.1"] * 8 + [b"HTTP/1.0", b"HTX/1"]))
    status = draw(
        st.sampled_from([200] * 12 + STATUSES) if draw(st.integers(0, 9)) else st.integers(0, 999)
    )
    reason = draw(st.sampled_from([b"OK", b"", b"Whatever", b"caf\xc3\xa9", b"\xff"]))
    headers = draw(
        st.lists(
            st.tuples(
                st.sampled_from(NAMES) if draw(st.integers(0, 19)) else st.sampled_from(BAD_NAMES),
                st.sampled_from(VALUES) if draw(st.integers(0, 4)) else st.binary(max_size=40),
            ),
            max_size=4,
        )
    )
    body = draw(st.one_of(st.sampled_from(BODIES), st.binary(max_size=600)))
    encoding = draw(st.sampled_from([None, None, None, "gzip", "deflate", "corrupt", "bomb"]))
    if encoding == "gzip":
        body = gzip.compress(body)
    elif encoding == "deflate":
        body = zlib.compress(body)
    elif encoding == "corrupt":
        body = gzip.compress(body)[:-5] + b"\x00garbage"
    elif encoding == "bomb":
        body = _BOMB
    if encoding is not None:
        headers.append((b"Content-Encoding", b"deflate" if encoding == "deflate" else b"gzip"))
    framing = draw(st.sampled_from(["length"] * 4 + ["chunked"] * 2 + ["wrong", "none", "broken"]))
    if framing == "length":
        headers.append((b"Content-Length", str(len(body)).encode()))
    elif framing == "wrong":
        delta = draw(st.integers(-10, 10))
        headers.append((b"Content-Length", str(max(0, len(body) + delta)).encode()))
    elif framing in ("chunked", "broken"):
        headers.append((b"Transfer-Encoding", b"chunked"))
        body = _chunked(body, framing == "broken")
    head = version + b" " + str(status).encode() + b" " + reason + b"\r\n"
    head += b"".join(k + b": " + v + b"\r\n" for k, v in headers) + b"\r\n"
    data = b"".join(interim) + head + body
    truncate = draw(st.integers(0, len(data))) if not draw(st.integers(0, 7)) else None
    if truncate is not None:
        data = data[:truncate]
    cuts = sorted(draw(st.lists(st.integers(0, len(data)), max_size=3)))
    bounds = [0, *cuts, len(data)]
    pieces = [data[a:b] for a, b in itertools.pairwise(bounds) if b > a] or [b""]
    pauses = [draw(st.sampled_from([0.0, 0.0, 0.0, 0.0, 0.0, 0.005])) for _ in pieces]
    stall = not draw(st.integers(0, 99))
    framed = truncate is None and framing in ("length", "chunked") and version == b"HTTP/1.1"
    return Case(pieces, pauses, stall, framed)


def _campaign(strategy: st.SearchStrategy[Any], prop: Callable[[Any], None], n: int) -> None:
    @settings(
        max_examples=n,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.function_scoped_fixture,
        ],
    )
    @given(strategy)
    def run(value: Any) -> None:
        prop(value)

    run()


@dataclass
class Stage:
    """The hostile server and what it answers: a fuzzed case, genuine answers else."""

    case: Case | None = None
    #: Request targets (path suffix) answered with ``case``; empty: every request.
    only: str = ""
    genuine: dict[str, tuple[int, list[tuple[str, str]], bytes]] = field(default_factory=dict)

    def script(self, conn: Conn) -> None:
        path, _, query = conn.target.partition("?")
        fuzzed = not self.only or (path == self.only and "serial=" not in query)
        if fuzzed and self.case is not None:
            self.case.play(conn)
            return
        status, headers, body = self.genuine.get(conn.target, (404, [], b""))
        head = f"HTTP/1.1 {status} X\r\n".encode()
        head += b"".join(f"{k}: {v}\r\n".encode() for k, v in headers)
        head += f"Content-Length: {len(body)}\r\n\r\n".encode()
        conn.keep_open = True
        conn.send(head + body)


@pytest.fixture
def stage() -> Iterator[tuple[Stage, HostileServer]]:
    s = Stage()
    server = HostileServer(s.script)
    try:
        yield s, server
    finally:
        server.close()


# --- the fetcher: every endpoint, no traceback -------------------------------------------

ENDPOINTS: dict[str, Callable[[Fetcher], object]] = {
    "keyring": lambda f: f.keyring(),
    "checkpoint": lambda f: f.checkpoint('"held"'),
    "statements": lambda f: f.statements_page(0),
    "statement": lambda f: f.statement(1),
    "snapshot": lambda f: f.snapshot(1, 160),
    "plaintext": lambda f: f.plaintext_page(0),
    "proof": lambda f: f.consistency_proof(1, 2),
}


def _fetch_campaign(stage: tuple[Stage, HostileServer], n: int) -> None:
    s, server = stage
    seen: dict[str, int] = {}
    with build_http_client(TIMEOUTS) as client:
        fetcher = Fetcher(
            client,
            server=server.url,
            list_name="main",
            token="cf_t",
            limits=LIMITS,
            response_deadline=TIMEOUTS.deadline,
        )

        def prop(value: tuple[Case, str]) -> None:
            s.case, endpoint = value
            try:
                ENDPOINTS[endpoint](fetcher)
                seen["returned"] = seen.get("returned", 0) + 1
            except ClientError as e:  # typed; anything else fails the test
                seen[e.reason] = seen.get(e.reason, 0) + 1

        _campaign(st.tuples(cases(), st.sampled_from(sorted(ENDPOINTS))), prop, n)
    # The campaign reached the defences it is about, not only one of them.
    for reason in ("timeout", "network_error", "oversize", "undecodable", "format_error"):
        assert seen.get(reason), (reason, seen)


def test_fetcher_against_hostile_bytes(stage: tuple[Stage, HostileServer]) -> None:
    _fetch_campaign(stage, FETCH_EXAMPLES)


@pytest.mark.slow
def test_fetcher_against_hostile_bytes_long(stage: tuple[Stage, HostileServer]) -> None:
    _fetch_campaign(stage, FETCH_EXAMPLES * SLOW_FACTOR)


# --- audit fetch ---------------------------------------------------------------------------


def _audit_campaign(stage: tuple[Stage, HostileServer], tmp_path: Path, n: int) -> None:
    s, server = stage
    output = tmp_path / "bundle.json"

    def prop(case: Case) -> None:
        s.case = case
        with contextlib.suppress(ClientError):
            fetch_bundle(
                client,
                server=server.url,
                list_name="main",
                token="cf_t",
                output=output,
                max_bytes=8192,
                deadline=TIMEOUTS.deadline,
            )
        # Nothing is ever written from a hostile answer (none is a bundle).
        assert not output.exists()

    with build_http_client(TIMEOUTS) as client:
        _campaign(cases(), prop, n)


def test_audit_fetch_against_hostile_bytes(
    stage: tuple[Stage, HostileServer], tmp_path: Path
) -> None:
    _audit_campaign(stage, tmp_path, AUDIT_EXAMPLES)


@pytest.mark.slow
def test_audit_fetch_against_hostile_bytes_long(
    stage: tuple[Stage, HostileServer], tmp_path: Path
) -> None:
    _audit_campaign(stage, tmp_path, AUDIT_EXAMPLES * SLOW_FACTOR)


# --- the sync: the list in force never changes --------------------------------------------


class Recorder(httpx.BaseTransport):
    """Records the genuine answers (decoded) of one honest sync, by request target."""

    def __init__(self, inner: httpx.BaseTransport, into: dict[str, Any]) -> None:
        self.inner = inner
        self.into = into

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        body = response.read()
        keep = [
            (k, v)
            for k, v in response.headers.items()
            if k.lower() not in ("content-encoding", "content-length", "transfer-encoding")
        ]
        self.into[request.url.raw_path.decode("ascii")] = (response.status_code, keep, body)
        return httpx.Response(response.status_code, headers=keep, content=body)


def _sync_campaign(synced: World, stage: tuple[Stage, HostileServer], n: int) -> None:
    w = synced
    s, server = stage
    # The log is one version ahead of the client: a sync has work to do.
    w.add(w.url("ahead"))
    assert w.publish() == 3
    # Record the genuine answers of an honest sync from a copy of the state.
    copy = w.state_dir.parent / "recording"
    shutil.copytree(w.state_dir, copy)
    recorded = w.sync(config=w.configured(state_dir=copy), http=Recorder(w.proxy, s.genuine))
    assert recorded.status == "updated", recorded
    config = w.configured(server=server.url, timeouts=TIMEOUTS)
    before = w.held()
    outcomes: dict[str, int] = {}

    def prop(value: tuple[Case, str]) -> None:
        s.case, s.only = value
        outcome: SyncOutcome = w.sync(config=config, client=client)
        outcomes[outcome.reason] = outcomes.get(outcome.reason, 0) + 1
        assert outcome.reason in REASONS, outcome
        assert outcome.status != "updated", outcome
        after = w.held()
        assert after.fingerprint == before.fingerprint, outcome
        assert after.version == before.version == 2
        assert after.checkpoint_note == before.checkpoint_note
        assert after.keyrings == before.keyrings
        assert after.exports == before.exports

    # Each request of the honest sync but the keyring walk's (a 404 ends the
    # walk normally), answered with the fuzzed bytes in turn.
    paths = sorted({t.partition("?")[0] for t in s.genuine if "serial=" not in t})
    assert any(p.endswith("/statements") for p in paths), paths
    targets = st.sampled_from(paths)
    with build_http_client(TIMEOUTS) as client:
        _campaign(st.tuples(cases(), targets), prop, n)
        # The genuine answers alone do update: the fuzzed one made the difference.
        s.case = None
        assert w.sync(config=config, client=client).status == "updated"
    assert len(outcomes) > 3, outcomes


def test_sync_against_hostile_bytes_keeps_the_list(
    synced: World, stage: tuple[Stage, HostileServer]
) -> None:
    _sync_campaign(synced, stage, SYNC_EXAMPLES)


@pytest.mark.slow
def test_sync_against_hostile_bytes_keeps_the_list_long(
    synced: World, stage: tuple[Stage, HostileServer]
) -> None:
    _sync_campaign(synced, stage, SYNC_EXAMPLES * SLOW_FACTOR)
