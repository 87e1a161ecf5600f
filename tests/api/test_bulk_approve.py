"""Bulk work an analyst can do (issue 13, items 7 and 9).

- a bulk add returns an import id; further batches join it with ``?import=``;
- ``POST …/entries/approve`` approves ``{"ids": [...]}`` or ``{"import": id}``
  with a result per entry, four-eyes per entry;
- the JSON bulk body cap holds the documented 10,000 rows;
- ``GET …/entries`` points to search instead of a bare 405.
"""

from __future__ import annotations

import csv
import io

import pytest
from support.api_testing import MAIN, OTHER, ApiClient, Deployment, Tokens, db_state, publish

from api.middleware import MAX_JSON_BODY_BYTES
from api.route_caps import MAX_BULK_JSON_BODY_BYTES, MAX_BULK_ROW_JSON_BYTES
from blocklist.store.imports import MAX_BULK_ROWS

ENTRIES = f"/v1/lists/{MAIN}/entries"
APPROVE = f"{ENTRIES}/approve"


def csv_body(urls: list[str]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["url", "scope", "reason", "reference"])
    for i, url in enumerate(urls):
        writer.writerow([url, "page", "hotline report", f"case-{i}"])
    return out.getvalue().encode()


def urls(n: int, start: int = 0, host: str = "bulk.example.com") -> list[str]:
    return [f"http://{host}/g/{i}.html" for i in range(start, start + n)]


def test_ten_thousand_imported_entries_are_approved_in_a_few_calls(
    client: ApiClient, tokens: Tokens, deployment: Deployment
) -> None:
    # Two batches of one import: a CSV upload, then JSON joining it.
    first = client.post(
        f"{ENTRIES}/bulk.csv",
        content=csv_body(urls(6_000)),
        headers={"Content-Type": "text/csv"},
        token=tokens.alice,
    )
    assert first.status_code == 200, first.text
    import_id = first.json()["import"]
    assert isinstance(import_id, int)
    rows = [{"url": u, "scope": "page", "reason": "hotline report"} for u in urls(4_000, 6_000)]
    second = client.post(
        f"{ENTRIES}/bulk", params={"import": import_id}, json=rows, token=tokens.alice
    )
    assert second.status_code == 200, second.text
    assert second.json()["import"] == import_id
    assert first.json()["added"] + second.json()["added"] == 10_000

    # Four-eyes per entry: alice cannot approve her own import; nothing changes.
    before = db_state(deployment.db)
    own = client.post(APPROVE, json={"import": import_id}, token=tokens.alice)
    assert own.status_code == 200, own.text
    body = own.json()
    assert (body["approved"], body["refused"]) == (0, 10_000)
    assert {r["code"] for r in body["results"]} == {"self_approval"}
    assert "added or reinstated" in body["results"][0]["message"]
    assert db_state(deployment.db) == before

    # A colleague approves the whole import in one call.
    ok = client.post(APPROVE, json={"import": import_id}, token=tokens.bob)
    assert ok.status_code == 200, ok.text
    body = ok.json()
    assert (body["approved"], body["activated"], body["refused"]) == (10_000, 10_000, 0)
    assert body["next"] is None
    assert len(body["results"]) == 10_000
    assert {r["entry_status"] for r in body["results"]} == {"active"}
    assert publish(client, tokens.alice)["count"] == 10_001  # and the canary


def test_approving_ids_mixes_approved_and_refused_rows(client: ApiClient, tokens: Tokens) -> None:
    alices = client.post(
        f"{ENTRIES}/bulk",
        json=[{"url": u, "scope": "page", "reason": "r"} for u in urls(3)],
        token=tokens.alice,
    ).json()
    bobs = client.post(
        f"{ENTRIES}/bulk",
        json=[{"url": u, "scope": "page", "reason": "r"} for u in urls(2, 100)],
        token=tokens.bob,
    ).json()
    assert alices["import"] != bobs["import"]
    ids = [r["id"] for r in alices["results"]] + [r["id"] for r in bobs["results"]]
    r = client.post(APPROVE, json={"ids": [*ids, 987_654]}, token=tokens.bob)
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert [x["id"] for x in results] == [*ids, 987_654]
    assert [x["status"] for x in results] == ["approved"] * 3 + ["refused"] * 3
    assert [x["code"] for x in results[3:]] == ["self_approval", "self_approval", "not_found"]
    # The single-entry view agrees.
    assert client.get(f"{ENTRIES}/{ids[0]}", token=tokens.bob).json()["status"] == "active"
    assert client.get(f"{ENTRIES}/{ids[3]}", token=tokens.bob).json()["status"] == "pending"


def test_bulk_approval_refusals_change_nothing(
    client: ApiClient, tokens: Tokens, deployment: Deployment
) -> None:
    added = client.post(
        f"{ENTRIES}/bulk",
        json=[{"url": u, "scope": "page", "reason": "r"} for u in urls(2)],
        token=tokens.alice,
    ).json()
    import_id = added["import"]
    before = db_state(deployment.db)
    cases = [
        (tokens.admin, {"import": import_id}, 403, "admin_cannot_approve"),
        (tokens.isp, {"import": import_id}, 403, "forbidden"),
        (tokens.bob, {"ids": [1, 1]}, 422, "validation_error"),
        (tokens.bob, {"ids": [1], "import": import_id}, 422, "validation_error"),
        (tokens.bob, {}, 422, "validation_error"),
        (tokens.bob, {"ids": []}, 422, "validation_error"),
        (tokens.bob, {"ids": list(range(1, MAX_BULK_ROWS + 2))}, 422, "validation_error"),
        (tokens.bob, {"ids": [1], "cursor": 3}, 422, "validation_error"),
        (tokens.bob, {"import": 999}, 404, "not_found"),
    ]
    for token, payload, status, code in cases:
        r = client.post(APPROVE, json=payload, token=token)
        assert (r.status_code, r.json()["code"]) == (status, code), (payload, r.text)
    # An import is only found on its own list.
    r = client.post(
        f"/v1/lists/{OTHER}/entries/approve", json={"import": import_id}, token=tokens.bob
    )
    assert (r.status_code, r.json()["code"]) == (404, "not_found")
    # Only its creator adds batches to an import.
    r = client.post(
        f"{ENTRIES}/bulk",
        params={"import": import_id},
        json=[{"url": "http://example.com/x.html", "scope": "page", "reason": "r"}],
        token=tokens.bob,
    )
    assert (r.status_code, r.json()["code"]) == (403, "permission_denied")
    assert db_state(deployment.db) == before


def test_a_batch_that_adds_nothing_has_no_import(client: ApiClient, tokens: Tokens) -> None:
    rows = [{"url": "javascript:alert(1)", "scope": "page", "reason": "r"}]
    r = client.post(f"{ENTRIES}/bulk", json=rows, token=tokens.alice)
    assert r.status_code == 200
    assert r.json()["import"] is None


def test_json_bulk_body_cap_holds_the_row_cap(client: ApiClient, tokens: Tokens) -> None:
    # The cap is the row cap times the largest row the model accepts.
    assert MAX_BULK_JSON_BODY_BYTES >= MAX_BULK_ROWS * MAX_BULK_ROW_JSON_BYTES
    assert MAX_BULK_ROW_JSON_BYTES > 8192 + 2000  # url and reason at their caps
    # 10,000 ordinary rows are well over the 1 MiB cap of other JSON bodies.
    reason = "reported by the public; analyst confirmed; case notes in the case system " * 2
    rows = [{"url": u, "scope": "page", "reason": reason} for u in urls(MAX_BULK_ROWS)]
    import json

    body = json.dumps(rows).encode()
    assert len(body) > MAX_JSON_BODY_BYTES
    r = client.post(
        f"{ENTRIES}/bulk",
        content=body,
        headers={"Content-Type": "application/json"},
        token=tokens.alice,
    )
    assert r.status_code == 200, r.text[:300]
    assert r.json()["added"] == MAX_BULK_ROWS


def test_other_json_routes_keep_the_small_cap(client: ApiClient, tokens: Tokens) -> None:
    big = b'{"ids": [' + b"1," * (MAX_JSON_BODY_BYTES // 2) + b"1]}"
    r = client.post(
        APPROVE, content=big, headers={"Content-Type": "application/json"}, token=tokens.bob
    )
    assert (r.status_code, r.json()["code"]) == (413, "body_too_large")


def test_get_entries_points_to_search(client: ApiClient, tokens: Tokens) -> None:
    r = client.get(ENTRIES, token=tokens.alice)
    assert r.status_code == 405
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.headers["allow"] == "POST"
    body = r.json()
    assert body["code"] == "method_not_allowed"
    assert body["search"] == f"{ENTRIES}/search"
    assert f"POST {ENTRIES}/search" in body["detail"]


def test_a_bulk_approved_import_verifies_offline_as_backed_decisions(
    client: ApiClient, tokens: Tokens, deployment: Deployment
) -> None:
    from clients.audit.bundle import loads
    from clients.audit.verify import verify_bundle

    added = client.post(
        f"{ENTRIES}/bulk",
        json=[{"url": u, "scope": "page", "reason": "r"} for u in urls(20)],
        token=tokens.alice,
    ).json()
    # bob approves the import, including a repeat of an id in a second call.
    assert (
        client.post(APPROVE, json={"import": added["import"]}, token=tokens.bob).json()["approved"]
        == 20
    )
    again = client.post(APPROVE, json={"ids": [added["results"][0]["id"]]}, token=tokens.bob)
    assert again.json()["results"][0]["code"] == "invalid_state"
    assert publish(client, tokens.alice)["count"] == 21
    r = client.get(
        f"/v1/lists/{MAIN}/audit/bundle", params={"full": "true"}, token=tokens.auditor_full
    )
    assert r.status_code == 200
    report = verify_bundle(loads(r.content), [deployment.init.root_vkey], workers=1)
    assert report.ok, report.failure


def test_a_large_import_is_approved_page_by_page(
    client: ApiClient, tokens: Tokens, monkeypatch: pytest.MonkeyPatch
) -> None:
    from blocklist.store import imports as store_imports

    added = client.post(
        f"{ENTRIES}/bulk",
        json=[{"url": u, "scope": "page", "reason": "r"} for u in urls(5)],
        token=tokens.alice,
    ).json()
    monkeypatch.setattr(store_imports, "MAX_APPROVE_ROWS", 2)  # pages of 2, not 10,000
    seen: list[int] = []
    body: dict[str, int] = {"import": added["import"]}
    for _ in range(5):
        answer = client.post(APPROVE, json=body, token=tokens.bob).json()
        seen += [r["id"] for r in answer["results"]]
        if answer["next"] is None:
            break
        assert len(answer["results"]) == 2
        body = {"import": added["import"], "cursor": answer["next"]}
    assert seen == [r["id"] for r in added["results"]]
