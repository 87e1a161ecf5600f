"""Helpers shared by the ISP client tests: hashes, crafted notes, state fingerprints."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

from blocklist.checkpoint import Checkpoint
from blocklist.statement import Statement
from clients.isp.trusted import TrustedState
from signer.keys import SecretKey
from signer.log import checkpoint_timestamp
from signer.note import NoteSigner, parse_note, sign_note
from support.memory_log import MemoryLog

ORIGIN = "cleanfeed.invalid/test"
NOW = datetime(2026, 11, 28, 12, 0, 0, tzinfo=UTC)
T = NOW.timestamp()


def h(i: int | str) -> bytes:
    """The hash of a reserved test expression."""
    return hashlib.sha256(f"example.com/page-{i}".encode()).digest()


def hashes(*ids: int | str) -> list[bytes]:
    return [h(i) for i in ids]


def new_log(origin: str = ORIGIN, **kwargs: object) -> MemoryLog:
    return MemoryLog(origin, now=NOW, **kwargs)  # type: ignore[arg-type]


def text_of(note: str) -> str:
    return parse_note(note).text


def sign_cp(origin: str, size: int, root: bytes, key: NoteSigner, when: datetime = NOW) -> str:
    """A checkpoint signed like the server does (0x01 + timestamped 0x04 line)."""
    text = Checkpoint(origin, size, root).to_text()
    return sign_note(text, [key], cosigners=[key], timestamp=checkpoint_timestamp(when))


def craft_statement(
    log: MemoryLog,
    *,
    version: int | None = None,
    previous: bytes | None = None,
    adds: list[bytes] | tuple[bytes, ...] = (),
    removes: list[bytes] | tuple[bytes, ...] = (),
    state: bytes | None = None,
    count: int | None = None,
    origin: str | None = None,
    key: NoteSigner | None = None,
) -> str:
    """A statement after the log's tip, signed by its online key, with any field forced."""
    tip = log.tip
    digest = tip.state.copy()
    digest.update(sorted(adds), sorted(removes))
    stmt = Statement(
        origin=origin or log.origin,
        version=tip.version + 1 if version is None else version,
        previous=tip.text_hash if previous is None else previous,
        keyring=log.keyring.serial,
        audit=tip.audit_head,
        state=digest.digest() if state is None else state,
        count=tip.count + len(adds) - len(removes) if count is None else count,
        time=NOW,
        adds=tuple(sorted(adds)),
        removes=tuple(sorted(removes)),
    )
    return sign_note(stmt.to_text(), [key or log.online_key])


def trusted_for(log: MemoryLog, **kwargs: object) -> TrustedState:
    """A fresh client state pinned to the log's root key, keyring 1 accepted."""
    ts = TrustedState([log.root_vkey], **kwargs)  # type: ignore[arg-type]
    ts.update_keyring(log.keyrings[0], T)
    return ts


def synced(log: MemoryLog, **kwargs: object) -> TrustedState:
    """A client state that took the snapshot path at the log's current version."""
    ts = TrustedState([log.root_vkey], **kwargs)  # type: ignore[arg-type]
    for i, note in enumerate(log.keyrings):
        ts.update_keyring(note, T, final=i == len(log.keyrings) - 1)
    size = log.version
    cp = log.checkpoint(NOW)
    if size == 0:
        ts.update_checkpoint(cp, T)
        return ts
    ts.apply_snapshot(
        cp,
        log.statements[size - 1],
        log.inclusion_proof(size, size),
        log.range_hashes(size),
        b"".join(log.snapshot(size)),
        now=T,
    )
    return ts


def fingerprint(ts: TrustedState) -> tuple[object, ...]:
    """Everything observable about a trusted state (to assert 'unchanged')."""
    record = ts.record() if ts.initialised else None
    return (
        record,
        ts.changes(),
        ts.target,
        ts.keyring_notes,
        ts.origin,
        ts.version,
        ts.count,
        ts.digest,
        sorted(ts.hashes()),
        ts.dirty,
    )


def other_key(name: str = ORIGIN) -> SecretKey:
    return SecretKey.generate(name)


def later(seconds: float) -> datetime:
    return NOW + timedelta(seconds=seconds)


# --- an in-memory server over a MemoryLog (httpx.MockTransport) -------------------

import json  # noqa: E402
from collections.abc import Callable  # noqa: E402

import httpx  # noqa: E402

from blocklist.encoding import b64encode  # noqa: E402
from support.asgi_bridge import ChunkStream  # noqa: E402

LIST = "main"
SERVER = "https://isp.test"


def raw_response(
    status: int, body: bytes = b"", headers: dict[str, str] | None = None
) -> httpx.Response:
    """A streaming response whose body bytes are sent exactly as given (no encoding)."""
    return httpx.Response(status, headers=headers or {}, stream=ChunkStream(body))


class MemoryServer:
    """The ISP endpoints of DESIGN.md served from a MemoryLog, for MockTransport.

    An independent, minimal implementation of the wire contract: the client
    tests run against it and against the real app alike.
    """

    def __init__(self, log: MemoryLog, *, expressions: dict[bytes, str] | None = None) -> None:
        self.log = log
        self.now = NOW
        self.expressions = expressions or {}
        self.requests: list[httpx.Request] = []
        self.tamper: Callable[[httpx.Request, httpx.Response], httpx.Response] | None = None
        self.min_wait = 60

    def checkpoint_note(self) -> str:
        return self.log.checkpoint(self.now)

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def client(self) -> httpx.Client:
        return httpx.Client(transport=self.transport())

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        response = self._route(request)
        response.headers["Cleanfeed-Min-Wait"] = str(self.min_wait)
        if self.tamper is not None:
            response = self.tamper(request, response)
        if isinstance(response.stream, ChunkStream):
            return response
        # Stream the (already rendered) body like a real server would.
        headers = {k: v for k, v in response.headers.items() if k.lower() != "content-encoding"}
        return raw_response(response.status_code, response.content, headers)

    def _route(self, request: httpx.Request) -> httpx.Response:
        prefix = f"/v1/lists/{LIST}"
        path = request.url.path
        q = request.url.params
        if not path.startswith(prefix):
            return httpx.Response(404)
        rest = path[len(prefix) :]
        log = self.log
        if rest == "/keyring":
            serial = int(q["serial"]) if "serial" in q else len(log.keyrings)
            if not 1 <= serial <= len(log.keyrings):
                return httpx.Response(404)
            return httpx.Response(200, text=log.keyrings[serial - 1])
        if rest == "/checkpoint":
            note = self.checkpoint_note()
            etag = '"' + hashlib.sha256(note.encode()).hexdigest() + '"'
            if request.headers.get("if-none-match") == etag:
                return httpx.Response(304, headers={"ETag": etag})
            return httpx.Response(200, text=note, headers={"ETag": etag})
        if rest == "/statements":
            since, limit = int(q.get("since", "0")), int(q.get("limit", "1000"))
            page = log.statements[since : since + limit]
            last = since + len(page)
            nxt = last if last < log.version else None
            return httpx.Response(200, json={"statements": page, "next": nxt})
        if rest.startswith("/statements/"):
            n = int(rest.rsplit("/", 1)[1])
            return httpx.Response(200, text=log.statements[n - 1])
        if rest == "/snapshot":
            version = int(q.get("version", str(log.version)))
            body = b"".join(log.snapshot(version))
            return httpx.Response(200, content=body, headers={"Cleanfeed-Version": str(version)})
        if rest == "/plaintext":
            since = int(q.get("since", "0"))
            added: set[bytes] = set()
            for note in log.statements[since:]:
                added |= set(Statement.parse(text_of(note)).adds)
            items = [
                {"hash": b64encode(x), "expression": self.expressions[x]}
                for x in sorted(added & log.members)
                if x in self.expressions
            ]
            return httpx.Response(200, json={"expressions": items, "next": None})
        if rest == "/proofs/inclusion":
            proof = log.inclusion_proof(int(q["version"]), int(q["size"]))
            return httpx.Response(200, json={"hashes": [b64encode(x) for x in proof]})
        if rest == "/proofs/consistency":
            proof = log.consistency_proof(int(q["from"]), int(q["to"]))
            return httpx.Response(200, json={"hashes": [b64encode(x) for x in proof]})
        if rest == "/proofs/range":
            rng = log.range_hashes(int(q["size"]))
            return httpx.Response(200, json={"hashes": [b64encode(x) for x in rng]})
        return httpx.Response(404, content=json.dumps({"code": "not_found"}).encode())


def expression_hash_of(expr: str) -> bytes:
    return hashlib.sha256(expr.encode()).digest()


class TamperTransport(httpx.BaseTransport):
    """A malicious proxy between the client and the real app."""

    def __init__(self, inner: httpx.BaseTransport) -> None:
        self.inner = inner
        self.tamper: Callable[[httpx.Request, httpx.Response], httpx.Response] | None = None
        self.requests: list[httpx.Request] = []
        #: (path, Content-Encoding) of every response passed through.
        self.encodings: list[tuple[str, str | None]] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        response = self.inner.handle_request(request)
        self.encodings.append((request.url.path, response.headers.get("content-encoding")))
        if self.tamper is None:
            return response
        response.read()
        tampered = self.tamper(request, response)
        if isinstance(tampered.stream, ChunkStream):
            return tampered
        headers = {k: v for k, v in tampered.headers.items() if k.lower() != "content-encoding"}
        return raw_response(tampered.status_code, tampered.content, headers)


# --- a MemoryServer on a real loopback socket: the CLI as a subprocess ----------------

import threading  # noqa: E402
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer  # noqa: E402
from types import TracebackType  # noqa: E402
from typing import Any  # noqa: E402

#: Longest wait for the loopback server's thread to finish after shutdown.
LOOPBACK_JOIN_SECONDS = 10.0


class LoopbackServer:
    """Serves a :class:`MemoryServer` over HTTP on 127.0.0.1 (a random free port).

    For tests that run ``cleanfeed isp …`` exactly as the docs print it, in
    a child process: the child can reach no in-process transport. Use as a
    context manager; leaving it stops the server (bounded lifetime).
    """

    def __init__(self, server: MemoryServer) -> None:
        self.server = server
        memory = server

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                request = httpx.Request(
                    "GET", f"http://127.0.0.1{self.path}", headers=dict(self.headers.items())
                )
                response = memory.handle(request)
                body = response.read()
                self.send_response(response.status_code)
                for name, value in response.headers.items():
                    if name.lower() not in ("content-length", "transfer-encoding", "connection"):
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # quiet: the tests assert on the client's output

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.base = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def __enter__(self) -> LoopbackServer:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(LOOPBACK_JOIN_SECONDS)


# --- a published list and the ISP configuration that syncs it ----------------------

from collections.abc import Iterable  # noqa: E402
from pathlib import Path  # noqa: E402

from clients.isp.config import IspConfig  # noqa: E402

#: A full check interval no test reaches: the syncs under test are all incremental.
NO_FULL_CHECK_SECONDS = 10 * 365 * 86400.0


def serve_published(log: MemoryLog, expressions: Iterable[str]) -> MemoryServer:
    """Publish ``expressions`` as one version of ``log`` and serve it, plaintext included."""
    listed = list(expressions)
    log.publish(sorted(expression_hash_of(e) for e in listed), now=NOW)
    return MemoryServer(log, expressions={expression_hash_of(e): e for e in listed})


def isp_config(
    log: MemoryLog, state_dir: Path, *, plaintext: bool = False, **overrides: Any
) -> IspConfig:
    """The configuration of an ISP that syncs ``log`` from :data:`SERVER`.

    ``plaintext``: fetch the expressions too; ``overrides`` are further
    :class:`IspConfig` fields (exports, for one).
    """
    return IspConfig(
        server=SERVER,
        list=LIST,
        token="cf_isp_test",
        root_keys=(log.root_vkey,),
        state_dir=state_dir,
        plaintext=plaintext,
        lock_timeout=5.0,
        full_check_interval=NO_FULL_CHECK_SECONDS,
        **overrides,
    )
