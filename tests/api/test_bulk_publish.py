"""Bulk add (JSON and CSV) and publishing, embedded and with an external signer."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.api_testing import (
    MAIN,
    URL_A,
    ApiClient,
    Deployment,
    Tokens,
    add_approved,
    add_entry,
    close_deployment,
    db_state,
    deployment_client,
    make_deployment,
)

from api.middleware import MAX_CSV_BODY_BYTES
from api.signer_service import SignerService
from signer import keyring_ops as signer_keyring_ops
from signer import keys as signer_keys
from signer import publisher as signer_publisher


def _refuse_key_read(*args: object, **kwargs: object) -> None:
    raise AssertionError("the API read a private key")


def test_bulk_json_per_row_results(client: ApiClient, tokens: Tokens) -> None:
    existing = add_entry(client, tokens.alice, URL_A).json()
    rows = [
        {"url": "http://example.com/1.html", "scope": "page", "reason": "r"},
        {"url": URL_A, "scope": "page", "reason": "r"},
        {"url": "javascript:alert(1)", "scope": "page", "reason": "r"},
        {"url": "http://example.com/1.html#again", "scope": "page", "reason": "r"},
    ]
    r = client.post(f"/v1/lists/{MAIN}/entries/bulk", json=rows, token=tokens.bob)
    assert r.status_code == 200, r.text
    body = r.json()
    statuses = [row["status"] for row in body["results"]]
    assert statuses == ["added", "existing", "failed", "existing"]
    assert body["results"][1]["id"] == existing["id"]
    assert body["results"][2]["code"] == "invalid_url"
    assert body["results"][3]["id"] == body["results"][0]["id"]
    assert (body["added"], body["existing"], body["failed"]) == (1, 2, 1)


def test_bulk_all_or_nothing_stores_nothing(
    client: ApiClient, tokens: Tokens, deployment: Deployment
) -> None:
    before = db_state(deployment.db)
    rows = [
        {"url": "http://example.com/ok.html", "scope": "page", "reason": "r"},
        {"url": "http://example.com/dir/", "scope": "page", "reason": "r"},
    ]
    r = client.post(
        f"/v1/lists/{MAIN}/entries/bulk?all_or_nothing=true", json=rows, token=tokens.bob
    )
    assert r.status_code == 422
    body = r.json()
    assert body["code"] == "bulk_rejected"
    assert [x["status"] for x in body["results"]] == ["skipped", "failed"]
    assert db_state(deployment.db) == before


def test_bulk_json_rejects_unknown_fields_and_empty(
    client: ApiClient, tokens: Tokens, deployment: Deployment
) -> None:
    before = db_state(deployment.db)
    bad = [{"url": URL_A, "scope": "page", "reason": "r", "created_by": "x"}]
    assert (
        client.post(f"/v1/lists/{MAIN}/entries/bulk", json=bad, token=tokens.bob).status_code == 422
    )
    assert (
        client.post(f"/v1/lists/{MAIN}/entries/bulk", json=[], token=tokens.bob).status_code == 422
    )
    assert db_state(deployment.db) == before


def _csv(client: ApiClient, token: str, text: str, query: str = "", **kw: object) -> object:
    headers = kw.pop("headers", {"Content-Type": "text/csv"})
    return client.post(
        f"/v1/lists/{MAIN}/entries/bulk.csv{query}",
        content=text.encode("utf-8"),
        headers=headers,
        token=token,
    )


def test_bulk_csv(client: ApiClient, tokens: Tokens) -> None:
    text = (
        "\ufeffurl,scope,reason,reference,expires_at\n"
        "http://example.com/c1.html,page,report,case-1,\n"
        "http://example.com/c2.html,page,report,,2999-01-01T00:00:00Z\n"
        "http://example.com/c3.html,page,report,,not-a-time\n"
        "\n"
        "mailto:x@example.com,page,report,,\n"
    )
    r = _csv(client, tokens.alice, text)
    assert r.status_code == 200, r.text  # type: ignore[attr-defined]
    results = r.json()["results"]  # type: ignore[attr-defined]
    assert [x["status"] for x in results] == ["added", "added", "failed", "failed"]
    assert results[2]["code"] == "validation_error"
    assert results[3]["code"] == "invalid_url"
    found = client.post(
        f"/v1/lists/{MAIN}/entries/search", json={"reference": "case-1"}, token=tokens.bob
    ).json()["entries"]
    assert [e["expression"] for e in found] == ["example.com/c1.html"]


def test_bulk_csv_refusals_store_nothing(
    client: ApiClient, tokens: Tokens, deployment: Deployment
) -> None:
    before = db_state(deployment.db)
    unknown_column = "url,scope,reason,status\nhttp://example.com/x.html,page,r,active\n"
    assert _csv(client, tokens.alice, unknown_column).status_code == 422  # type: ignore[attr-defined]
    missing_column = "url,scope\nhttp://example.com/x.html,page\n"
    assert _csv(client, tokens.alice, missing_column).status_code == 422  # type: ignore[attr-defined]
    wrong_type = _csv(
        client, tokens.alice, "url,scope,reason\n", headers={"Content-Type": "application/json"}
    )
    assert wrong_type.status_code == 415  # type: ignore[attr-defined]
    one_bad = "url,scope,reason\nhttp://example.com/x.html,page,r\nftp-nope,page,r\n"
    rejected = _csv(client, tokens.alice, one_bad, "?all_or_nothing=true")
    assert rejected.status_code == 422  # type: ignore[attr-defined]
    assert rejected.json()["code"] == "bulk_rejected"  # type: ignore[attr-defined]
    too_big = "url,scope,reason\n" + "x" * (MAX_CSV_BODY_BYTES + 1)
    assert _csv(client, tokens.alice, too_big).status_code == 413  # type: ignore[attr-defined]
    assert db_state(deployment.db) == before


def test_publish_embedded_returns_new_version(client: ApiClient, tokens: Tokens) -> None:
    add_approved(client, tokens)
    r = client.post(f"/v1/lists/{MAIN}/publish", token=tokens.alice)
    assert r.status_code == 200
    body = r.json()
    assert body["version"] == 1
    assert body["published"] is True
    assert body["count"] == 2  # the canary and the entry
    statement = client.get(f"/v1/lists/{MAIN}/statements/1", token=tokens.isp)
    assert statement.status_code == 200
    assert "\nversion 1\n" in statement.text


def test_publish_without_signer_queues_then_completes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    d = make_deployment(tmp_path, signer=False, publish_wait_timeout=0)
    try:
        assert d.app.state.cf.signer is None
        with deployment_client(d) as client:
            # --no-signer: the API process never reads a private key.
            with monkeypatch.context() as m:
                for module in (signer_keys, signer_publisher, signer_keyring_ops):
                    m.setattr(module, "load_key", _refuse_key_read)
                add_approved(client, d.tokens)
                queued = client.post(f"/v1/lists/{MAIN}/publish", token=d.tokens.alice)
                assert client.get(f"/v1/lists/{MAIN}/checkpoint", token=d.tokens.isp).is_success
            assert queued.status_code == 202
            assert queued.json()["pending"] is True
            location = queued.headers["location"]
            assert location == f"/v1/lists/{MAIN}/publish/requests/{queued.json()['request']}"
            polled = client.get(location, token=d.tokens.alice)
            assert polled.json()["pending"] is True
            # The separate signer process (here: its service, same code path).
            signer = SignerService(
                d.db, d.settings.keys_dir, publish_interval=60, checkpoint_interval=600
            )
            served = signer.serve(MAIN)
            assert served is not None
            assert served.version_after == 1
            done = client.get(location, token=d.tokens.alice).json()
            assert done["pending"] is False
            assert done["version"] == 1
            # A publish request arriving when the signer already served it.
            again = client.post(f"/v1/lists/{MAIN}/publish", token=d.tokens.admin)
            assert again.status_code == 202
            signer.serve(MAIN)
            assert (
                client.get(again.headers["location"], token=d.tokens.admin).json()["version"] == 1
            )
    finally:
        close_deployment(d)


def test_no_signer_refuses_list_creation(tmp_path: Path) -> None:
    d = make_deployment(tmp_path, signer=False)
    try:
        with deployment_client(d) as client:
            before = db_state(d.db)
            r = client.post("/v1/lists", json={"name": "third"}, token=d.tokens.admin)
            assert r.status_code == 503
            assert db_state(d.db) == before
            assert not (d.settings.keys_dir / "third").exists()
    finally:
        close_deployment(d)
