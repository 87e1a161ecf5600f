"""Auditor endpoints: bundles verify offline; plaintext stays where it belongs.

The bundles are checked by the offline auditor (``clients.audit.verify``)
with only the pinned root key, as an auditor would.
"""

from __future__ import annotations

import base64
import hashlib
import io
import logging

import nacl.signing
from support.api_testing import (
    MAIN,
    ApiClient,
    Deployment,
    Tokens,
    add_approved,
    add_entry,
    publish,
)

from blocklist.canonical import expression
from clients.audit.bundle import loads
from clients.audit.verify import verify_bundle
from signer.note import parse_note

URLS = [f"http://203.0.113.{i}/secret/page{i}.html" for i in range(1, 5)]


def _history(client: ApiClient, tokens: Tokens) -> list[str]:
    """Two versions with additions and one with a removal; return the expressions."""
    first = add_approved(client, tokens, URLS[0])
    add_approved(client, tokens, URLS[1])
    publish(client, tokens.alice)
    add_approved(client, tokens, URLS[2])
    add_entry(client, tokens.alice, URLS[3])  # pending: never published
    publish(client, tokens.alice)
    client.post(
        f"/v1/lists/{MAIN}/entries/{first['id']}/expire", json={"reason": "gone"}, token=tokens.bob
    )
    publish(client, tokens.alice)
    return [expression(u) for u in URLS]


def test_hash_only_bundle_verifies_and_holds_no_plaintext(
    deployment: Deployment, client: ApiClient, tokens: Tokens
) -> None:
    expressions = _history(client, tokens)
    r = client.get(f"/v1/lists/{MAIN}/audit/bundle", token=tokens.auditor)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/json")
    for expr in expressions:
        assert expr not in r.text
        assert "203.0.113" not in r.text
    bundle = loads(r.content)
    assert bundle.kind == "hash-only"
    assert len(bundle.statements) == 3
    report = verify_bundle(bundle, [deployment.init.root_vkey], workers=1)
    assert report.ok, report.failure


def test_full_bundle_verifies_decisions(
    deployment: Deployment, client: ApiClient, tokens: Tokens
) -> None:
    expressions = _history(client, tokens)
    assert (
        client.get(
            f"/v1/lists/{MAIN}/audit/bundle", params={"full": "true"}, token=tokens.auditor
        ).status_code
        == 403
    )
    r = client.get(
        f"/v1/lists/{MAIN}/audit/bundle", params={"full": "true"}, token=tokens.auditor_full
    )
    assert r.status_code == 200
    assert r.headers["cache-control"] == "no-store"
    bundle = loads(r.content)
    assert bundle.kind == "full"
    assert {e.expression for e in bundle.entries} >= set(expressions)
    report = verify_bundle(bundle, [deployment.init.root_vkey], workers=1)
    assert report.ok, report.failure


def test_no_plaintext_in_isp_documents_logs_or_metrics(
    deployment: Deployment, client: ApiClient, tokens: Tokens
) -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    loggers = [logging.getLogger(n) for n in ("cleanfeed", "cleanfeed.api", "cleanfeed.isp")]
    for lg in loggers:
        lg.addHandler(handler)
    try:
        expressions = _history(client, tokens)
        texts = [
            client.get(f"/v1/lists/{MAIN}/checkpoint", token=tokens.isp).text,
            client.get(f"/v1/lists/{MAIN}/statements", token=tokens.isp).text,
            client.get(f"/v1/lists/{MAIN}/keyring", token=tokens.isp).text,
            client.get(f"/v1/lists/{MAIN}/audit/log", token=tokens.auditor_full).text,
            client.get("/metrics").text,
            client.get("/metrics", token=tokens.admin).text,
            client.get(f"/v1/lists/{MAIN}/plaintext", token=tokens.isp).text,
        ]
        client.post(f"/v1/lists/{MAIN}/entries/search", json={"url": URLS[0]}, token=tokens.alice)
    finally:
        for lg in loggers:
            lg.removeHandler(handler)
    texts.append(stream.getvalue())
    assert "isp fetch" in stream.getvalue()
    for text in texts:
        for expr in expressions:
            assert expr not in text
        assert "203.0.113" not in text


def test_isp_fetch_is_logged_per_token(client: ApiClient, tokens: Tokens) -> None:
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    keep = Keep()
    logging.getLogger("cleanfeed.isp").addHandler(keep)
    try:
        add_approved(client, tokens)
        publish(client, tokens.alice)
        client.get(f"/v1/lists/{MAIN}/statements", token=tokens.isp)
    finally:
        logging.getLogger("cleanfeed.isp").removeHandler(keep)
    fetches = [r for r in records if getattr(r, "event", None) == "isp_fetch"]
    assert [(r.token, r.list, r.version, r.resource) for r in fetches] == [  # type: ignore[attr-defined]
        ("isp-a", MAIN, 1, "statements")
    ]


def test_audit_log_paging(client: ApiClient, tokens: Tokens) -> None:
    for i in range(3):
        add_entry(client, tokens.alice, f"http://example.com/log/{i}.html")
    seqs: list[int] = []
    since = 0
    while True:
        page = client.get(
            f"/v1/lists/{MAIN}/audit/log", params={"since": since, "limit": 2}, token=tokens.admin
        ).json()
        seqs += [r["seq"] for r in page["records"]]
        if page["next"] is None:
            break
        since = page["next"]
    assert seqs == list(range(1, len(seqs) + 1))
    assert len(seqs) >= 5  # list.create, canary add, three adds


def _witness_line(text: str, name: str = "witness.example") -> tuple[str, str]:
    key = nacl.signing.SigningKey.generate()
    public = bytes(key.verify_key)
    key_id = hashlib.sha256(name.encode() + b"\n\x04" + public).digest()[:4]
    timestamp = 1_900_000_000
    signature = key.sign(f"cosignature/v1\ntime {timestamp}\n{text}".encode()).signature
    line = (
        f"\u2014 {name} "
        + base64.b64encode(key_id + timestamp.to_bytes(8, "big") + signature).decode()
    )
    vkey = f"{name}+{key_id.hex()}+" + base64.b64encode(b"\x04" + public).decode()
    return vkey, line


def test_witness_cosignature_is_verified_stored_and_served(
    client: ApiClient, tokens: Tokens
) -> None:
    note = client.get(f"/v1/lists/{MAIN}/checkpoint", token=tokens.isp).text
    text = parse_note(note).text
    vkey, line = _witness_line(text)
    path = f"/v1/lists/{MAIN}/checkpoint/cosignatures"
    # A line over another text, or checked against another key, is refused.
    _, wrong_text = _witness_line(text.replace("\n0\n", "\n1\n"))
    other_vkey, _ = _witness_line(text)
    # Only a registered witness may post (issue 12, item 1).
    unregistered = client.post(path, json={"vkey": vkey, "signature": line}, token=tokens.auditor)
    assert unregistered.status_code == 403
    assert unregistered.json()["code"] == "witness_not_registered"
    for key in (vkey, other_vkey):
        added = client.post(f"/v1/lists/{MAIN}/witnesses", json={"vkey": key}, token=tokens.admin)
        assert added.status_code == 201, added.text
    assert (
        client.post(
            path, json={"vkey": vkey, "signature": wrong_text}, token=tokens.auditor
        ).status_code
        == 422
    )
    assert (
        client.post(
            path, json={"vkey": other_vkey, "signature": line}, token=tokens.auditor
        ).status_code
        == 422
    )
    assert client.post(
        path, json={"vkey": "nonsense", "signature": line}, token=tokens.auditor
    ).status_code in (400, 422)
    ok = client.post(path, json={"vkey": vkey, "signature": line}, token=tokens.auditor)
    assert ok.status_code == 201, ok.text
    assert ok.json()["timestamp"] == 1_900_000_000
    served = client.get(f"/v1/lists/{MAIN}/checkpoint", token=tokens.isp).text
    assert served == note + line + "\n"
    # A new tree: the old cosignature no longer matches and is not served.
    add_approved(client, tokens)
    publish(client, tokens.alice)
    assert line not in client.get(f"/v1/lists/{MAIN}/checkpoint", token=tokens.isp).text


def test_log_key_cannot_pose_as_a_witness(client: ApiClient, tokens: Tokens) -> None:
    note = client.get(f"/v1/lists/{MAIN}/checkpoint", token=tokens.isp).text
    keyring = client.get(f"/v1/lists/{MAIN}/keyring", token=tokens.isp).text
    online_vkey = next(line.split()[1] for line in keyring.splitlines() if line.startswith("key "))
    own_cosignature = [line for line in note.splitlines() if line.startswith("\u2014 ")][1]
    r = client.post(
        f"/v1/lists/{MAIN}/checkpoint/cosignatures",
        json={"vkey": online_vkey, "signature": own_cosignature},
        token=tokens.auditor,
    )
    assert r.status_code == 422
    assert r.json()["code"] == "witness_refused"
    assert client.get(f"/v1/lists/{MAIN}/checkpoint", token=tokens.isp).text == note
