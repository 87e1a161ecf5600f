"""Plaintext confidentiality: no expression leaves through a hash-only channel.

The list is a directory of abuse material (Clayton, PET 2005): only ISP
tokens with the plaintext entitlement (and analysts, full auditors) may see
an expression. Everything else the service emits, to anyone, must carry
hashes only: every route of the app's OpenAPI called with an ISP token
without the entitlement (or none, or another list's), the hash-only
documents and bundles, ``/metrics``, problem documents, and
the structured JSON logs of the server and of the ISP client. Each text is
searched for every test URL in every spelling: the original URL, the
expression, percent-escaped, punycode and Unicode host, JSON-escaped, and
hex or base64 of the bytes. Every test URL carries :data:`MARKER` in its
host and path, an ASCII string that survives all of these but hex and
base64, which are searched separately.

The canary (a reserved URL every ISP is told so it can test its blocking)
is not secret and not searched. Host hashes can be reversed by hashing a
list of known domains: docs/security.md says so; that is out of scope here.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import re
import sqlite3
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from support.api_testing import MAIN, OTHER
from support.attack_helpers import MARKER, World, sha

from api.logging import JsonFormatter
from clients.isp.config import ExportSpec
from clients.isp.store import DB_NAME

#: Reserved-name test URLs, each a different kind of entry.
URLS = {
    "page": f"http://{MARKER}-page.example.org/{MARKER}/gallery/1.html?id={MARKER}7",
    "prefix": f"http://{MARKER}-files.example.net/{MARKER}-dump/",
    "host": f"http://{MARKER}-only.example.com/",
    "idn": f"http://{MARKER}-b\u00fccher.example/{MARKER}/\u00e4.html",
    "ip": f"http://203.0.113.77/{MARKER}/photo.jpg",
}


def spellings(text: str) -> set[str]:
    """Textual spellings of ``text`` a leak might take."""
    out = {text, quote(text, safe=""), quote(text, safe="/:?=&"), json.dumps(text)[1:-1]}
    # (Unicode and punycode hosts: the URLs carry one, the expressions the other.)
    out.add(json.dumps(text, ensure_ascii=True)[1:-1])
    return {s for s in out if s}


def encodings(data: bytes) -> set[str]:
    """Hex and base64 spellings (base64 at each of the three alignments, edges cut)."""
    out = {data.hex(), data.hex().upper()}
    for shift in range(3):
        b64 = base64.b64encode(b"\x00" * shift + data).decode()
        out.add(b64[4 : len(b64) - 4])
    return {s for s in out if len(s) >= 8}


class Secrets:
    """Every spelling of every listed URL and expression."""

    def __init__(self, urls: dict[str, str], expressions: list[str]) -> None:
        self.texts: set[str] = set()
        for value in [*urls.values(), *expressions]:
            self.texts |= spellings(value)
            self.texts |= encodings(value.encode("utf-8"))
        self.expressions = expressions

    def find(self, content: str | bytes) -> list[str]:
        """The secrets present in ``content``.

        The marker is matched case-sensitively: canonical hosts and paths
        keep its lower case, and seven random base64 or binary characters
        match it by chance with probability about 2^-42 per position.
        """
        if isinstance(content, bytes):
            found = [e for e in self.expressions if e.encode() in content]
            content = content.decode("utf-8", "replace")
        else:
            found = []
        if MARKER in content:
            found.append(MARKER)
        found += [t for t in self.texts if t in content]
        return sorted(set(found))


@pytest.fixture
def logs() -> Iterator[io.StringIO]:
    """The JSON log lines of every cleanfeed logger (server and ISP client)."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.setLevel(logging.DEBUG)
    root = logging.getLogger("cleanfeed")
    old = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(old)


@pytest.fixture
def listed(world: World) -> tuple[World, Secrets]:
    """Every kind of entry listed and published, one expired, one pending."""
    w = world
    expressions = []
    for kind, url in URLS.items():
        scope = kind if kind in ("prefix", "host") else "page"
        r = w.call(
            "POST",
            f"/v1/lists/{MAIN}/entries",
            w.tokens.alice,
            json={"url": url, "scope": scope, "reason": "r", "reference": "case-1"},
        )
        assert r.status_code == 201, r.text
        expressions.append(r.json()["expression"])
        w.entries[url] = r.json()["id"]
        if kind != "ip":  # left pending: never published, still secret
            assert (
                w.call(
                    "POST", f"/v1/lists/{MAIN}/entries/{r.json()['id']}/approve", w.tokens.bob
                ).status_code
                == 200
            )
    assert w.publish() == 1
    w.expire(URLS["prefix"])
    assert w.publish() == 2
    assert any("xn--" in e for e in expressions)
    return w, Secrets(URLS, expressions)


def _fill(path: str, w: World) -> str:
    values = {
        "list": MAIN,
        "entry_id": str(w.entries[URLS["page"]]),
        "n": "1",
        "request_id": "1",
        "token_id": str(w.tokens.ids["isp"]),
        "witness_id": "1",
        # Appeals (issue 17): a status secret nobody holds, the first appeal.
        "secret": "s" * 43,
        "appeal_id": "1",
        # Accounts (issue 15): an account and a pending grant nobody created.
        "name": "nobody",
        "grant_id": "1",
    }
    return re.sub(r"\{(\w+)\}", lambda m: values[m.group(1)], path)


#: Query values for every query parameter of the app (from its OpenAPI).
QUERY = {
    "version": 1,
    "size": 2,
    "from": 1,
    "to": 2,
    "since": 0,
    "serial": 1,
    "full": "true",
    "limit": 10,
    "all_or_nothing": "false",
    "period": "2020-01",
}


def _routes(w: World) -> list[tuple[str, str, dict[str, Any]]]:
    calls = []
    for path, operations in w.d.app.openapi()["paths"].items():
        for method, op in operations.items():
            params = {
                p["name"]: QUERY[p["name"]]
                for p in op.get("parameters", ())
                if p["in"] == "query" and p["name"] in QUERY
            }
            kwargs: dict[str, Any] = {"params": params}
            if method.upper() == "POST":
                kwargs["json"] = {"url": URLS["page"], "hash": base64.b64encode(sha("x")).decode()}
            calls.append((method.upper(), _fill(path, w), kwargs))
    return calls


@pytest.mark.parametrize("who", ["isp", "anonymous", "isp_other", "auditor", "analyst_other"])
def test_no_route_gives_an_unentitled_caller_an_expression(
    listed: tuple[World, Secrets], who: str
) -> None:
    """ISP tokens without the entitlement, no token, another list's ISP, a
    hash-only auditor (``full=true`` included), an analyst of another list."""
    w, secrets = listed
    token = None if who == "anonymous" else getattr(w.tokens, who)
    calls = _routes(w)
    assert len(calls) >= 30  # every route of the app, not a hand-picked few
    leaks = []
    for method, path, kwargs in calls:
        if method == "POST":
            # The request itself names a listed URL: an answer echoing it
            # would leak nothing new, so send a body without one.
            kwargs = {**kwargs, "json": {"hash": kwargs["json"]["hash"]}}
        r = w.call(method, path, token, **kwargs)
        assert r.status_code < 500, (method, path, r.status_code)
        found = secrets.find(r.content) + secrets.find(str(r.headers))
        if found:
            leaks.append((method, path, r.status_code, found[:3]))
    assert not leaks, leaks


def test_entitled_isp_does_get_expressions(listed: tuple[World, Secrets]) -> None:
    # Control: the search above finds the expressions where they are served.
    w, secrets = listed
    r = w.call("GET", f"/v1/lists/{MAIN}/plaintext", w.tokens.isp_plain)
    assert r.status_code == 200
    assert r.headers["cache-control"] == "no-store"
    assert secrets.find(r.content)


def test_hash_only_documents_logs_and_metrics_hold_no_expression(
    listed: tuple[World, Secrets], logs: io.StringIO
) -> None:
    w, secrets = listed
    texts: dict[str, bytes] = {}
    # Analysts' traffic, including refusals that name listed URLs.
    w.call(
        "POST",
        f"/v1/lists/{MAIN}/entries/search",
        w.tokens.alice,
        json={"url": URLS["page"]},
    )
    w.call(
        "POST",
        f"/v1/lists/{MAIN}/entries",
        w.tokens.alice,
        json={"url": URLS["page"] + "#x", "scope": "prefix", "reason": "r"},
    )
    w.call(
        "POST",
        f"/v1/lists/{OTHER}/entries",
        w.tokens.alice,
        json={"url": URLS["host"], "scope": "host", "reason": "r", "hosting_country": "GB"},
    )
    w.call("POST", f"/v1/lists/{MAIN}/entries/preview", w.tokens.alice, json={"url": URLS["idn"]})
    # The ISP clients: hash-only, and entitled with a plaintext export.
    assert w.sync().status == "updated"
    plain_config = w.configured(
        token=w.tokens.isp_plain,
        plaintext=True,
        state_dir=w.tmp / "plain-isp",
        exports=(ExportSpec("urls", w.tmp / "plain-export" / "urls.txt"),),
    )
    (w.tmp / "plain-export").mkdir()
    plain = w.sync(config=plain_config)
    assert plain.status == "updated", plain
    assert not plain.problems, plain
    # Everything hash-only the service serves.
    for name, (path, params) in {
        "checkpoint": ("/checkpoint", {}),
        "keyring": ("/keyring", {}),
        "statements": ("/statements", {}),
        "statement": ("/statements/2", {}),
        "snapshot": ("/snapshot", {}),
        "range": ("/proofs/range", {"size": 2}),
        "inclusion": ("/proofs/inclusion", {"version": 1, "size": 2}),
        "consistency": ("/proofs/consistency", {"from": 1, "to": 2}),
    }.items():
        texts[name] = w.get(path, **params).content
    for name, (path, token) in {
        "hash-only bundle": ("/audit/bundle", w.tokens.auditor),
    }.items():
        r = w.call("GET", f"/v1/lists/{MAIN}{path}", token)
        assert r.status_code == 200, r.text
        texts[name] = r.content
    texts["metrics"] = w.call("GET", "/metrics").content
    texts["metrics (admin)"] = w.call("GET", "/metrics", w.tokens.admin).content
    texts["hash-only isp state"] = (w.state_dir / DB_NAME).read_bytes()
    texts["hash-only isp export"] = w.export_path.read_bytes()
    lines = logs.getvalue()
    texts["json logs"] = lines.encode()
    assert '"event": "isp_fetch"' in lines
    # The sync no longer logs its own outcome (the CLI prints it, the daemon
    # logs it): what they would write is the outcome's text.
    texts["sync outcome"] = str(w.sync()).encode()
    leaks = {name: secrets.find(text) for name, text in texts.items()}
    assert not {k: v for k, v in leaks.items() if v}, leaks
    # Control: the entitled client did store the expressions, where they belong.
    assert secrets.find((w.tmp / "plain-export" / "urls.txt").read_bytes())


def test_database_error_during_an_analyst_write_logs_no_expression(
    world: World, logs: io.StringIO
) -> None:
    """A failing insert (disk full, a constraint, a bug) must not log the URL.

    SQLAlchemy puts a failed statement's parameters in its error message;
    the API logs unexpected errors with their traceback (api/errors.py).
    """
    w = world
    with sqlite3.connect(w.d.data_dir / "cleanfeed.db") as db:
        db.execute(
            "CREATE TRIGGER attack_insert_fails BEFORE INSERT ON entries "
            "BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END"
        )
    db.close()
    url = URLS["page"]
    r = _post_tolerating_errors(
        w, f"/v1/lists/{MAIN}/entries", {"url": url, "scope": "page", "reason": "r"}
    )
    assert r.status_code >= 500
    lines = logs.getvalue()
    assert "attack_insert_fails" in lines or "disk is full" in lines  # the failure was logged
    secrets = Secrets({"page": url}, [sha_expression(url)])
    assert not secrets.find(lines), secrets.find(lines)
    assert not secrets.find(r.content)


def sha_expression(url: str) -> str:
    from blocklist.canonical import expression

    return expression(url, "page")


def _post_tolerating_errors(w: World, path: str, body: dict[str, Any]) -> httpx.Response:
    """POST through a transport that returns the app's 500 instead of raising."""
    import asyncio

    async def call() -> httpx.Response:
        transport = httpx.ASGITransport(app=w.d.app, raise_app_exceptions=False)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://cleanfeed.test"
        ) as client:
            return await client.post(
                path, json=body, headers={"Authorization": f"Bearer {w.tokens.alice}"}
            )

    return asyncio.run(call())
