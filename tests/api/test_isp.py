"""ISP endpoints: documents, caching headers, paging, proofs, plaintext.

Proofs and snapshots are checked with the pure verification code of
``blocklist`` against the signed checkpoint, not against the server's own
arithmetic; the real ISP client (``clients.isp.sync``) also syncs from the
app in-process.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import httpx
from sqlalchemy import update
from support.api_testing import (
    MAIN,
    OTHER,
    ApiClient,
    Deployment,
    Tokens,
    add_approved,
    close_deployment,
    deployment_client,
    make_deployment,
    publish,
)
from support.asgi_bridge import ASGIBridge

from api.ratelimit import MIN_WAIT_HEADER
from api.routes.common import IMMUTABLE_MAX_AGE
from blocklist import merkle
from blocklist.canonical import expression
from blocklist.checkpoint import Checkpoint
from blocklist.encoding import b64decode
from blocklist.statedigest import StateDigest
from blocklist.statement import Statement
from blocklist.store.models import ListRow
from signer.note import parse_note

IMMUTABLE = f"max-age={IMMUTABLE_MAX_AGE}, immutable"


def _publish_versions(client: ApiClient, tokens: Tokens, n: int) -> None:
    for i in range(n):
        add_approved(client, tokens, f"http://example.com/v{i}/page.html")
        publish(client, tokens.alice)


def _checkpoint(client: ApiClient, token: str | None) -> Checkpoint:
    r = client.get(f"/v1/lists/{MAIN}/checkpoint", token=token)
    assert r.status_code == 200, r.text
    return Checkpoint.parse(parse_note(r.text).text)


def test_checkpoint_etag_and_304(client: ApiClient, tokens: Tokens) -> None:
    r = client.get(f"/v1/lists/{MAIN}/checkpoint", token=tokens.isp)
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/plain; charset=utf-8"
    assert r.headers["cache-control"] == "private, no-cache"
    assert r.headers[MIN_WAIT_HEADER] == str(60)
    etag = r.headers["etag"]
    # The ETag covers the whole note, signatures included.
    assert etag.strip('"') == hashlib.sha256(r.content).hexdigest()[:32]
    same = client.get(
        f"/v1/lists/{MAIN}/checkpoint", token=tokens.isp, headers={"If-None-Match": etag}
    )
    assert same.status_code == 304
    assert same.content == b""
    assert same.headers["etag"] == etag
    weak = client.get(
        f"/v1/lists/{MAIN}/checkpoint",
        token=tokens.isp,
        headers={"If-None-Match": f'"other", W/{etag}'},
    )
    assert weak.status_code == 304
    add_approved(client, tokens)
    publish(client, tokens.alice)
    changed = client.get(
        f"/v1/lists/{MAIN}/checkpoint", token=tokens.isp, headers={"If-None-Match": etag}
    )
    assert changed.status_code == 200
    assert changed.headers["etag"] != etag
    assert Checkpoint.parse(parse_note(changed.text).text).size == 1


def test_checkpoint_cache_invalidated_on_publish(tmp_path: Path) -> None:
    d = make_deployment(tmp_path, checkpoint_cache_ttl=5)
    try:
        with deployment_client(d) as client:
            first = client.get(f"/v1/lists/{MAIN}/checkpoint", token=d.tokens.isp)
            add_approved(client, d.tokens)
            publish(client, d.tokens.alice)
            after = client.get(f"/v1/lists/{MAIN}/checkpoint", token=d.tokens.isp)
            assert after.text != first.text
            assert Checkpoint.parse(parse_note(after.text).text).size == 1
    finally:
        close_deployment(d)


def test_statements_paging_and_cache_headers(client: ApiClient, tokens: Tokens) -> None:
    _publish_versions(client, tokens, 3)
    path = f"/v1/lists/{MAIN}/statements"
    first = client.get(path, params={"since": 0, "limit": 2}, token=tokens.isp)
    body = first.json()
    assert body["next"] == 2
    assert len(body["statements"]) == 2
    assert first.headers["cache-control"] == f"private, {IMMUTABLE}"
    last = client.get(path, params={"since": 2, "limit": 2}, token=tokens.isp)
    assert last.json()["next"] is None
    assert len(last.json()["statements"]) == 1
    assert last.headers["cache-control"] == "private, no-cache"
    versions = [
        Statement.parse(parse_note(n).text).version
        for n in body["statements"] + last.json()["statements"]
    ]
    assert versions == [1, 2, 3]
    # A full page is immutable even at the end: its next may be an empty page.
    full_at_end = client.get(path, params={"since": 1, "limit": 2}, token=tokens.isp)
    assert full_at_end.json()["next"] == 3
    assert full_at_end.headers["cache-control"] == f"private, {IMMUTABLE}"
    empty = client.get(path, params={"since": 3}, token=tokens.isp).json()
    assert empty == {"statements": [], "next": None}
    assert client.get(path, params={"limit": 1001}, token=tokens.isp).status_code == 422
    assert client.get(path, params={"since": -1}, token=tokens.isp).status_code == 422
    assert client.get(path, params={"since": "9" * 40}, token=tokens.isp).status_code == 422
    single = client.get(f"{path}/2", token=tokens.isp)
    assert single.text == body["statements"][1]
    assert single.headers["cache-control"] == f"private, {IMMUTABLE}"
    assert client.get(f"{path}/4", token=tokens.isp).status_code == 404


def test_snapshot_matches_signed_state(client: ApiClient, tokens: Tokens) -> None:
    _publish_versions(client, tokens, 2)
    note = client.get(f"/v1/lists/{MAIN}/statements/2", token=tokens.isp).text
    statement = Statement.parse(parse_note(note).text)
    r = client.get(f"/v1/lists/{MAIN}/snapshot", token=tokens.isp)
    assert r.headers["content-type"] == "application/octet-stream"
    assert r.headers["cleanfeed-version"] == "2"
    assert r.headers["cache-control"] == "private, no-cache"
    hashes = [r.content[i : i + 32] for i in range(0, len(r.content), 32)]
    assert hashes == sorted(hashes)
    assert len(hashes) == statement.count
    assert StateDigest.from_hashes(hashes).digest() == statement.state
    older = client.get(f"/v1/lists/{MAIN}/snapshot", params={"version": 1}, token=tokens.isp)
    assert older.headers["cleanfeed-version"] == "1"
    assert older.headers["cache-control"] == f"private, {IMMUTABLE}"
    assert len(older.content) == 32 * (statement.count - 1)
    zero = client.get(f"/v1/lists/{MAIN}/snapshot", params={"version": 0}, token=tokens.isp)
    assert zero.content == b""
    assert (
        client.get(
            f"/v1/lists/{MAIN}/snapshot", params={"version": 3}, token=tokens.isp
        ).status_code
        == 404
    )


def test_proofs_verify_against_checkpoint(client: ApiClient, tokens: Tokens) -> None:
    _publish_versions(client, tokens, 5)
    cp = _checkpoint(client, tokens.isp)
    assert cp.size == 5
    base = f"/v1/lists/{MAIN}/proofs"
    notes = client.get(f"/v1/lists/{MAIN}/statements", token=tokens.isp).json()["statements"]
    for version in range(1, 6):
        r = client.get(
            f"{base}/inclusion", params={"version": version, "size": 5}, token=tokens.isp
        )
        proof = [b64decode(h, length=32) for h in r.json()["hashes"]]
        leaf = merkle.leaf_hash(parse_note(notes[version - 1]).text.encode())
        merkle.verify_inclusion(leaf, version - 1, 5, proof, cp.root)
    # Consistency from every older size, checked against roots from leaves.
    for m in range(0, 6):
        r = client.get(f"{base}/consistency", params={"from": m, "to": 5}, token=tokens.isp)
        proof = [b64decode(h, length=32) for h in r.json()["hashes"]]
        tree = merkle.MemoryHashStore()
        for note in notes[:m]:
            tree.append(parse_note(note).text.encode())
        merkle.verify_consistency(m, 5, tree.root(), cp.root, proof)
    rng = client.get(f"{base}/range", params={"size": 5}, token=tokens.isp).json()["hashes"]
    compact = merkle.CompactRange(5, [b64decode(h, length=32) for h in rng])
    assert compact.root() == cp.root
    bad = [
        ("inclusion", {"version": 6, "size": 5}),
        ("inclusion", {"version": 1, "size": 6}),
        ("inclusion", {"version": 0, "size": 5}),
        ("consistency", {"from": 4, "to": 3}),
        ("consistency", {"from": 1, "to": 9}),
        ("range", {"size": 6}),
    ]
    for kind, params in bad:
        r = client.get(f"{base}/{kind}", params=params, token=tokens.isp)
        assert r.status_code in (400, 422), (kind, params, r.text)


def test_keyring_latest_and_by_serial(client: ApiClient, tokens: Tokens) -> None:
    latest = client.get(f"/v1/lists/{MAIN}/keyring", token=tokens.isp)
    assert latest.status_code == 200
    assert latest.text.startswith("cleanfeed-keyring/v1\n")
    assert latest.headers["cache-control"] == "private, no-cache"
    one = client.get(f"/v1/lists/{MAIN}/keyring", params={"serial": 1}, token=tokens.isp)
    assert one.text == latest.text
    assert one.headers["cache-control"] == f"private, {IMMUTABLE}"
    assert (
        client.get(f"/v1/lists/{MAIN}/keyring", params={"serial": 2}, token=tokens.isp).status_code
        == 404
    )


def test_plaintext_for_entitled_tokens_only(client: ApiClient, tokens: Tokens) -> None:
    _publish_versions(client, tokens, 2)
    r = client.get(f"/v1/lists/{MAIN}/plaintext", params={"since": 0}, token=tokens.isp_plain)
    assert r.status_code == 200
    assert r.headers["cache-control"] == "no-store"
    items = r.json()["expressions"]
    assert r.json()["next"] is None
    for item in items:
        assert hashlib.sha256(item["expression"].encode()).digest() == b64decode(
            item["hash"], length=32
        )
    expressions = {item["expression"] for item in items}
    assert expression("http://example.com/v1/page.html") in expressions
    since_one = client.get(
        f"/v1/lists/{MAIN}/plaintext", params={"since": 1}, token=tokens.isp_plain
    ).json()["expressions"]
    assert [x["expression"] for x in since_one] == ["example.com/v1/page.html"]
    denied = client.get(f"/v1/lists/{MAIN}/plaintext", token=tokens.isp)
    assert denied.status_code == 403
    assert "example.com" not in denied.text


def test_plaintext_pages_end_on_version_boundaries(
    client: ApiClient, tokens: Tokens, monkeypatch: object
) -> None:
    from blocklist.store import versions as store_versions

    _publish_versions(client, tokens, 3)  # versions 1 (canary + 1), 2, 3
    monkeypatch.setattr(store_versions, "PLAINTEXT_PAGE_ROWS", 1)  # type: ignore[attr-defined]
    seen: list[str] = []
    since = 0
    pages = 0
    while True:
        body = client.get(
            f"/v1/lists/{MAIN}/plaintext", params={"since": since}, token=tokens.isp_plain
        ).json()
        seen += [x["expression"] for x in body["expressions"]]
        pages += 1
        if body["next"] is None:
            break
        assert body["next"] > since
        since = body["next"]
    assert pages == 3
    assert len(seen) == len(set(seen)) == 4


def test_public_list_without_token(
    deployment: Deployment, client: ApiClient, tokens: Tokens
) -> None:
    assert client.get(f"/v1/lists/{MAIN}/checkpoint").status_code == 401
    with deployment.db.transaction() as session:
        session.execute(update(ListRow).where(ListRow.name == MAIN).values(public=True))
    deployment.app.state.cf.lists.clear()
    anon = client.get(f"/v1/lists/{MAIN}/checkpoint")
    assert anon.status_code == 200
    assert anon.headers["cache-control"] == "public, no-cache"
    one = client.get(f"/v1/lists/{MAIN}/keyring", params={"serial": 1})
    assert one.headers["cache-control"] == f"public, {IMMUTABLE}"
    with_token = client.get(f"/v1/lists/{MAIN}/checkpoint", token=tokens.isp)
    assert with_token.headers["cache-control"] == "private, no-cache"
    # Plaintext is never public; OTHER stays private.
    assert client.get(f"/v1/lists/{MAIN}/plaintext").status_code == 401
    assert client.get(f"/v1/lists/{OTHER}/checkpoint").status_code == 401
    # A bad token is not ignored on a public list.
    assert client.get(f"/v1/lists/{MAIN}/checkpoint", token="cf_isp_" + "A" * 43).status_code == 401


def test_isp_versions_recorded_off_request_path(
    deployment: Deployment, client: ApiClient, tokens: Tokens
) -> None:
    _publish_versions(client, tokens, 2)
    client.get(f"/v1/lists/{MAIN}/statements", params={"since": 0}, token=tokens.isp)
    ctx = deployment.app.state.cf
    from blocklist.store import versions as store_versions

    with deployment.db.read() as session:
        assert store_versions.isp_versions(session, 1) == []  # not written on the request
    listed = client.get(f"/v1/lists/{MAIN}/isps", token=tokens.admin).json()
    assert [(x["name"], x["version"]) for x in listed["isps"]] == [("isp-a", 2)]
    ctx.usage.flush(deployment.db)
    with deployment.db.read() as session:
        rows = store_versions.isp_versions(session, 1)
    assert [(r.token_name, r.version) for r in rows] == [("isp-a", 2)]


def test_real_isp_client_syncs_from_the_app(
    deployment: Deployment, client: ApiClient, tokens: Tokens, tmp_path: Path
) -> None:
    from clients.isp.config import IspConfig
    from clients.isp.sync import Syncer

    _publish_versions(client, tokens, 3)
    config = IspConfig(
        server="https://cleanfeed.test",
        token=tokens.isp_plain,
        list=MAIN,
        root_keys=(deployment.init.root_vkey,),
        state_dir=tmp_path / "isp-state",
        plaintext=True,
    )
    with httpx.Client(transport=ASGIBridge(deployment.app)) as http:
        outcome = Syncer(config, http).sync_once()
        assert outcome.status == "updated", outcome
        assert outcome.version_after == 3
        assert outcome.problems == ()
        again = Syncer(config, http).sync_once()
    assert again.status == "current", again


def _scope(path: str, headers: dict[str, str], query: bytes = b"") -> dict[str, object]:
    return {
        "type": "http",
        "method": "GET",
        "path": path,
        "query_string": query,
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 40000),
    }


def test_checkpoint_fast_path_answers_exactly_like_the_route(tmp_path: Path) -> None:
    from api.context import UsageRecorder
    from api.ratelimit import RateLimiter
    from api.routes.isp import fast_isp

    d = make_deployment(tmp_path, checkpoint_cache_ttl=5)
    try:
        ctx = d.app.state.cf
        path = f"/v1/lists/{MAIN}/checkpoint"
        auth = {"Authorization": f"Bearer {d.tokens.isp}"}
        # Cold caches: the fast path declines and the route answers.
        assert fast_isp(ctx, _scope(path, auth)) is None  # type: ignore[arg-type]
        with deployment_client(d) as client:
            slow = client.get(path, token=d.tokens.isp)
            etag = slow.headers["etag"]
            slow_304 = client.get(path, token=d.tokens.isp, headers={"If-None-Match": etag})
        fast = fast_isp(ctx, _scope(path, auth))  # type: ignore[arg-type]
        assert fast is not None
        assert fast.status_code == 200
        assert fast.body == slow.content
        for header in ("etag", "cache-control", "content-type"):
            assert fast.headers[header] == slow.headers[header]
        ctx.usage = UsageRecorder()
        fast_304 = fast_isp(ctx, _scope(path, {**auth, "If-None-Match": etag}))  # type: ignore[arg-type]
        assert fast_304 is not None
        assert fast_304.status_code == slow_304.status_code == 304
        assert fast_304.headers["etag"] == etag
        # The ISP's version is recorded from the fast 304 too.
        assert ctx.usage.pending_isp_seen()[(d.tokens.ids["isp"], 1)][0] == 0
        # The rate limit applies on the fast path too.
        ctx.limiter = RateLimiter(1.0, 1, clock=lambda: 5.0)
        assert fast_isp(ctx, _scope(path, auth)).status_code == 200  # type: ignore[arg-type, union-attr]
        limited = fast_isp(ctx, _scope(path, auth))  # type: ignore[arg-type]
        assert limited is not None
        assert limited.status_code == 429
        assert limited.headers["retry-after"] == "1"
        ctx.limiter = RateLimiter(0, 1)
        # Full statement pages: cached by the route, then served from memory.
        with deployment_client(d) as client:
            add_approved(client, d.tokens, "http://example.com/f/1.html")
            publish(client, d.tokens.alice)
            add_approved(client, d.tokens, "http://example.com/f/2.html")
            publish(client, d.tokens.alice)
            pages = f"/v1/lists/{MAIN}/statements"
            assert fast_isp(ctx, _scope(pages, auth, b"since=0&limit=1")) is None  # cold
            slow_page = client.get(pages, params={"since": 0, "limit": 1}, token=d.tokens.isp)
            partial = client.get(pages, params={"since": 1, "limit": 5}, token=d.tokens.isp)
            assert partial.json()["next"] is None
        fast_page = fast_isp(ctx, _scope(pages, auth, b"since=0&limit=1"))  # type: ignore[arg-type]
        assert fast_page is not None
        assert fast_page.body == slow_page.content
        assert fast_page.headers["cache-control"] == slow_page.headers["cache-control"]
        # The partial last page is never cached: it changes with the next version.
        assert fast_isp(ctx, _scope(pages, auth, b"since=1&limit=5")) is None  # type: ignore[arg-type]
        for odd in (b"since=00&limit=1", b"since=0&limit=1&x=1", b"since=0&since=0&limit=1"):
            assert fast_isp(ctx, _scope(pages, auth, odd)) is None  # type: ignore[arg-type]
        # Everything the fast path does not decide goes to the route.
        declined = [
            _scope(path, {}),  # no token, private list: 401 from the route
            _scope(path, {"Authorization": f"Bearer {d.tokens.alice}"}),  # 403
            _scope(path, {"Authorization": f"Bearer {d.tokens.isp_other}"}),  # 404
            _scope(path, {"Authorization": "Bearer cf_isp_" + "Z" * 43}),  # 401
            _scope(path, {"Authorization": "Basic abc"}),
            _scope(path, auth, query=b"token=x"),
            _scope(f"/v1/lists/{OTHER}/checkpoint", auth),
        ]
        for scope in declined:
            assert fast_isp(ctx, scope) is None  # type: ignore[arg-type]
        # A revocation through the API evicts the cached token at once.
        with deployment_client(d) as client:
            client.post(f"/v1/tokens/{d.tokens.ids['isp']}/revoke", token=d.tokens.admin)
            assert fast_isp(ctx, _scope(path, auth)) is None  # type: ignore[arg-type]
            assert client.get(path, token=d.tokens.isp).status_code == 401
    finally:
        close_deployment(d)
