"""Operations: health, readiness, metrics, OpenAPI, gzip, settings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import update
from support.api_testing import MAIN, ApiClient, Deployment, Tokens, add_approved, publish

from api.errors import PROBLEM_MEDIA_TYPE
from api.ratelimit import MIN_WAIT_HEADER
from api.settings import MAX_AUTH_CACHE_TTL_SECONDS, SettingsError, load_settings
from blocklist.store.models import CheckpointRow


def test_healthz_and_readyz(deployment: Deployment, client: ApiClient, tokens: Tokens) -> None:
    assert client.get("/healthz").json() == {"status": "ok", "checks": {}}
    ready = client.get("/readyz", token=tokens.admin)
    assert ready.status_code == 200
    assert ready.json()["checks"] == {
        "database": "ok",
        "checkpoint:main": "fresh",
        "checkpoint:other": "fresh",
    }
    stale = datetime.now(UTC) - timedelta(seconds=3 * deployment.settings.checkpoint_interval)
    with deployment.db.transaction() as session:
        session.execute(
            update(CheckpointRow).where(CheckpointRow.list_id == 1).values(signed_at=stale)
        )
    not_ready = client.get("/readyz", token=tokens.admin)
    assert not_ready.status_code == 503
    assert not_ready.headers["retry-after"]
    assert not_ready.json()["checks"]["checkpoint:main"].startswith("stale")
    # Without an admin token: only ready or not.
    assert client.get("/readyz").json() == {"status": "unavailable", "checks": {}}


def test_readyz_when_database_is_gone(
    deployment: Deployment, client: ApiClient, tokens: Tokens
) -> None:
    ctx = deployment.app.state.cf
    from blocklist.store.db import Database

    # The admin token is looked up (and cached) while the database is there.
    assert client.get("/readyz", token=tokens.admin).status_code == 200
    ctx.db = Database("sqlite:////nonexistent-dir/cleanfeed.db")
    try:
        r = client.get("/readyz", token=tokens.admin)
        assert r.status_code == 503
        assert r.json()["checks"]["database"].startswith("unavailable")
        assert client.get("/healthz").status_code == 200
    finally:
        ctx.db.dispose()
        ctx.db = deployment.db


def test_metrics_per_isp_only_for_admin(
    deployment: Deployment, client: ApiClient, tokens: Tokens
) -> None:
    add_approved(client, tokens)
    publish(client, tokens.alice)
    client.get(f"/v1/lists/{MAIN}/statements", token=tokens.isp)
    deployment.app.state.cf.usage.flush(deployment.db)
    public = client.get("/metrics").text
    assert "cleanfeed_http_requests_total" in public
    assert 'route="/v1/lists/{list}/statements"' in public
    assert "cleanfeed_list_version" not in public
    assert "isp-a" not in public
    assert "isp-a" not in client.get("/metrics", token=tokens.auditor).text
    admin = client.get("/metrics", token=tokens.admin).text
    assert 'cleanfeed_list_version{list="main"} 1.0' in admin
    assert "cleanfeed_checkpoint_age_seconds" in admin
    assert 'cleanfeed_isp_last_seen_version{isp="isp-a",list="main"} 1.0' in admin
    assert client.get("/metrics", token="cf_admin_" + "B" * 43).status_code == 401


def test_openapi_describes_every_endpoint_and_error(client: ApiClient) -> None:
    spec = client.get("/openapi.json").json()
    assert "ProblemOut" in spec["components"]["schemas"]
    for path, operations in spec["paths"].items():
        if not path.startswith("/v1"):
            continue
        for method, op in operations.items():
            assert op.get("summary"), (method, path)
            responses = op["responses"]
            for status in ("401", "422", "429"):
                assert PROBLEM_MEDIA_TYPE in responses[status]["content"], (method, path, status)
    entries = spec["paths"]["/v1/lists/{list}/entries"]["post"]
    schema_ref = entries["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    entry_in = spec["components"]["schemas"][schema_ref.rsplit("/", 1)[1]]
    assert entry_in["additionalProperties"] is False
    csv = spec["paths"]["/v1/lists/{list}/entries/bulk.csv"]["post"]["requestBody"]
    assert "text/csv" in csv["content"]
    assert client.get("/docs").status_code == 200


def test_min_wait_on_every_v1_response(client: ApiClient, tokens: Tokens) -> None:
    for r in (
        client.get(f"/v1/lists/{MAIN}/checkpoint", token=tokens.isp),
        client.get(f"/v1/lists/{MAIN}/checkpoint"),
        client.get("/v1/nowhere"),
        client.post("/v1/tokens", json={}, token=tokens.isp),
    ):
        assert r.headers[MIN_WAIT_HEADER] == "60"
    assert MIN_WAIT_HEADER not in client.get("/healthz").headers


def test_unknown_path_and_method_are_problems(client: ApiClient, tokens: Tokens) -> None:
    missing = client.get("/v1/nowhere")
    assert missing.status_code == 404
    assert missing.headers["content-type"].startswith(PROBLEM_MEDIA_TYPE)
    wrong = client.request("DELETE", f"/v1/lists/{MAIN}/checkpoint", token=tokens.isp)
    assert wrong.status_code == 405
    assert wrong.json()["code"] == "method_not_allowed"


def test_large_responses_are_gzipped_small_ones_not(client: ApiClient, tokens: Tokens) -> None:
    for i in range(12):
        add_approved(client, tokens, f"http://example.com/g/{i}.html")
        publish(client, tokens.alice)
    headers = {"Accept-Encoding": "gzip"}
    statements = client.get(f"/v1/lists/{MAIN}/statements", token=tokens.isp, headers=headers)
    assert statements.headers.get("content-encoding") == "gzip"
    assert len(statements.json()["statements"]) == 12  # httpx decoded it
    # A full page: the second answer comes from memory, gzipped beforehand.
    full = [
        client.get(
            f"/v1/lists/{MAIN}/statements",
            params={"limit": 12},
            token=tokens.isp,
            headers=headers,
        )
        for _ in range(2)
    ]
    for r in full:
        assert r.headers["content-encoding"] == "gzip"
        assert r.json() == {"statements": statements.json()["statements"], "next": 12}
    assert full[0].content == full[1].content
    plain = client.get(
        f"/v1/lists/{MAIN}/statements",
        params={"limit": 12},
        token=tokens.isp,
        headers={"Accept-Encoding": "identity"},
    )
    assert "content-encoding" not in plain.headers
    assert plain.json() == full[0].json()
    checkpoint = client.get(f"/v1/lists/{MAIN}/checkpoint", token=tokens.isp, headers=headers)
    assert "content-encoding" not in checkpoint.headers
    not_modified = client.get(
        f"/v1/lists/{MAIN}/checkpoint",
        token=tokens.isp,
        headers={**headers, "If-None-Match": checkpoint.headers["etag"]},
    )
    assert not_modified.status_code == 304
    assert "content-encoding" not in not_modified.headers


def test_settings_refuse_dev_defaults_in_production(tmp_path: Path) -> None:
    with pytest.raises(SettingsError) as info:
        load_settings(tmp_path, environment="production")
    message = str(info.value)
    assert "CLEANFEED_DATABASE_URL" in message
    assert "CLEANFEED_SIGNER" in message
    ok = load_settings(
        tmp_path,
        environment="production",
        signer=False,
        database_url="postgresql+psycopg://cleanfeed@db.example/cleanfeed",
    )
    assert ok.signer is False


def test_settings_bounds_and_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(SettingsError) as info:
        load_settings(tmp_path, auth_cache_ttl=MAX_AUTH_CACHE_TTL_SECONDS + 1)
    assert "CLEANFEED_AUTH_CACHE_TTL" in str(info.value)
    with pytest.raises(SettingsError):
        load_settings(tmp_path, no_such_setting=1)
    (tmp_path / "settings.toml").write_text("min_wait_seconds = 120\npublish_interval = 30\n")
    assert load_settings(tmp_path).min_wait_seconds == 120
    monkeypatch.setenv("CLEANFEED_MIN_WAIT_SECONDS", "90")
    assert load_settings(tmp_path).min_wait_seconds == 90  # environment beats the file
    assert load_settings(tmp_path, min_wait_seconds=30).min_wait_seconds == 30  # flags beat both
    assert load_settings(tmp_path).publish_interval == 30
    (tmp_path / "settings.toml").write_text("min_wait_seconds = [\n")
    with pytest.raises(SettingsError, match="TOML"):
        load_settings(tmp_path)


def test_readyz_reports_a_failing_embedded_signer_until_it_recovers(
    deployment: Deployment, client: ApiClient, tokens: Tokens, monkeypatch: pytest.MonkeyPatch
) -> None:
    from blocklist.store.errors import StoreUnavailable
    from signer.publisher import Publisher

    def full_disk(self: Publisher) -> None:
        raise StoreUnavailable("database or disk is full")

    add_approved(client, tokens)
    with monkeypatch.context() as m:
        m.setattr(Publisher, "publish_once", full_disk)
        failed = client.post(f"/v1/lists/{MAIN}/publish", token=tokens.alice)
        assert failed.status_code == 503
        assert failed.json()["code"] == "store_unavailable"
        not_ready = client.get("/readyz", token=tokens.admin)
        assert not_ready.status_code == 503
        assert not_ready.json()["checks"]["signer:main"] == "failing: store_unavailable"
    # The fault cleared: readiness retries the publish, which now succeeds.
    ready = client.get("/readyz", token=tokens.admin)
    assert ready.status_code == 200, ready.text
    assert "signer:main" not in ready.json()["checks"]
    assert client.get(f"/v1/lists/{MAIN}/statements/1", token=tokens.isp).status_code == 200
