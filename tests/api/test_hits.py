"""``POST``/``GET /v1/lists/{list}/hits`` (issue 18 item 5), in-process.

ISPs post a completed week's counts with their token; the hotline reads
per-entry totals across ISPs, never one ISP's figures. The last test runs
the ISP daemon's post (``cleanfeed isp run``) into the same app.
"""

from __future__ import annotations

import hashlib
import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.api_testing import (
    MAIN,
    OTHER,
    URL_A,
    URL_B,
    ApiClient,
    Deployment,
    Tokens,
    add_approved,
    add_entry,
    publish,
    row_counts,
)
from support.asgi_bridge import ASGIBridge

from blocklist.blockref import block_ref
from clients.isp.config import IspConfig
from clients.isp.daemon import Daemon
from clients.isp.hits import HitsConfig, HitStore, hits_poster
from clients.isp.sync import SyncOutcome

NOW = datetime.now(UTC)
LAST_WEEK = "{:04d}-W{:02d}".format(*(NOW - timedelta(weeks=1)).isocalendar()[:2])
THIS_WEEK = "{:04d}-W{:02d}".format(*NOW.isocalendar()[:2])


def ref_of(entry: dict[str, Any]) -> str:
    return block_ref(hashlib.sha256(entry["expression"].encode()).digest())


@pytest.fixture
def refs(client: ApiClient, tokens: Tokens) -> tuple[str, str]:
    """Two published entries of MAIN."""
    a = add_approved(client, tokens, URL_A)
    b = add_approved(client, tokens, URL_B)
    publish(client, tokens.alice)
    return ref_of(a), ref_of(b)


def post(client: ApiClient, token: str, body: Any, list_name: str = MAIN) -> httpx.Response:
    if isinstance(body, (dict, list)):
        return client.post(f"/v1/lists/{list_name}/hits", json=body, token=token)
    return client.post(
        f"/v1/lists/{list_name}/hits",
        content=body,
        headers={"Content-Type": "application/json"},
        token=token,
    )


def counts(*pairs: tuple[str, int], week: str = LAST_WEEK) -> dict[str, Any]:
    return {"week": week, "counts": [{"block_ref": r, "count": n} for r, n in pairs]}


def totals(client: ApiClient, token: str, week: str = LAST_WEEK) -> httpx.Response:
    return client.get(f"/v1/lists/{MAIN}/hits", params={"week": week}, token=token)


def test_two_isps_are_summed_and_neither_is_revealed(
    client: ApiClient, tokens: Tokens, refs: tuple[str, str]
) -> None:
    ra, rb = refs
    first = post(client, tokens.isp, counts((ra, 12), (rb, 40)))
    assert first.status_code == 200, first.text
    assert first.json() == {
        "list": MAIN,
        "week": LAST_WEEK,
        "entries": 2,
        "total": 52,
        "replaced": False,
        "dropped_canary": 0,
    }
    assert post(client, tokens.isp_plain, counts((ra, 15))).status_code == 200
    for reader in (tokens.alice, tokens.admin):
        r = totals(client, reader)
        assert r.status_code == 200, r.text
        doc = r.json()
        assert doc["isps"] == 2
        assert [(e["block_ref"], e["count"]) for e in doc["entries"]] == [(rb, 40), (ra, 27)]
        # Only totals: no token, ISP name or per-ISP figure anywhere.
        assert set(doc) == {"list", "week", "isps", "entries"}
        assert all(set(e) == {"entry", "block_ref", "count"} for e in doc["entries"])
        assert "isp-a" not in r.text
        assert "isp-plain" not in r.text
        assert ":12" not in r.text.replace(" ", "")
    # A re-post of the same week by the same ISP replaces its earlier post.
    again = post(client, tokens.isp, counts((ra, 20)))
    assert again.json()["replaced"] is True
    assert [
        (e["block_ref"], e["count"]) for e in totals(client, tokens.alice).json()["entries"]
    ] == [(ra, 35)]
    assert totals(client, tokens.alice, week=THIS_WEEK).json()["entries"] == []


def test_who_may_post_and_read(
    client: ApiClient, tokens: Tokens, refs: tuple[str, str], deployment: Deployment
) -> None:
    ra, _ = refs
    body = counts((ra, 12))
    before = row_counts(deployment.db)
    # An ISP token of another list: the same 404 as a list that does not exist.
    other = post(client, tokens.isp_other, body)
    assert other.status_code == 404
    assert other.json()["code"] == "not_found"
    assert post(client, tokens.isp, body, list_name="nope").json()["code"] == "not_found"
    for token in (tokens.alice, tokens.admin, tokens.auditor):
        assert post(client, token, body).json()["code"] == "forbidden"
    assert client.post(f"/v1/lists/{MAIN}/hits", json=body).status_code == 401
    assert row_counts(deployment.db) == before
    # Readers: analysts and admins of the list; never an ISP or an auditor.
    assert totals(client, tokens.isp).json()["code"] == "forbidden"
    assert totals(client, tokens.auditor).json()["code"] == "forbidden"
    assert totals(client, tokens.analyst_other).status_code == 404


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b"{not json", 422, "validation_error"),
        ([], 422, "validation_error"),
        ({"counts": []}, 422, "validation_error"),
        ({"week": "2026-49", "counts": []}, 422, "validation_error"),
        ({"week": LAST_WEEK, "counts": {}}, 422, "validation_error"),
        ({"week": LAST_WEEK, "counts": [], "isp": "x"}, 422, "validation_error"),
        ({"week": LAST_WEEK, "counts": [{"block_ref": "R", "count": 0}]}, 422, "validation_error"),
        (
            {"week": LAST_WEEK, "counts": [{"block_ref": "R", "count": "9"}]},
            422,
            "validation_error",
        ),
        (
            {"week": LAST_WEEK, "counts": [{"block_ref": "R", "count": 12, "url": "x"}]},
            422,
            "validation_error",
        ),
        (
            {"week": LAST_WEEK, "counts": [{"block_ref": "CF1-nope", "count": 12}]},
            400,
            "invalid_block_ref",
        ),
        ({"week": "2026-W54", "counts": []}, 422, "invalid_field"),
        ({"week": THIS_WEEK, "counts": []}, 422, "week_not_over"),
    ],
)
def test_malformed_bodies_get_clear_problems(
    client: ApiClient,
    tokens: Tokens,
    deployment: Deployment,
    body: Any,
    status: int,
    code: str | None,
) -> None:
    before = row_counts(deployment.db)
    r = post(client, tokens.isp, body)
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    if code is not None:
        assert r.json()["code"] == code
    assert r.json()["detail"]
    assert row_counts(deployment.db) == before


def test_counts_below_k_and_unknown_references_are_refused(
    client: ApiClient, tokens: Tokens, refs: tuple[str, str], deployment: Deployment
) -> None:
    ra, rb = refs
    before = row_counts(deployment.db)
    low = post(client, tokens.isp, counts((ra, 12), (rb, 9)))  # the server's k is 10
    assert low.status_code == 422
    assert low.json()["code"] == "hits_below_threshold"
    unknown = post(client, tokens.isp, counts((ra, 12), (block_ref(bytes(32)), 50)))
    assert unknown.json()["code"] == "unknown_block_ref"
    # An entry of another list is no entry of this one.
    other = add_entry(client, tokens.alice, "http://other.example.org/x.html", list_name=OTHER)
    foreign = ref_of(other.json())
    assert post(client, tokens.isp, counts((foreign, 50))).json()["code"] == "unknown_block_ref"
    # A pending entry of this list never reached an ISP: the same answer.
    pending = add_entry(client, tokens.alice, "http://pending.example.org/x.html")
    assert post(client, tokens.isp, counts((ref_of(pending.json()), 50))).json()["code"] == (
        "unknown_block_ref"
    )
    many = post(client, tokens.isp, counts(*[(ra, 12)] * 10_001))
    assert many.status_code == 422
    assert many.json()["code"] == "validation_error"
    assert row_counts(deployment.db)["hit_counts"] == before["hit_counts"] == 0


def test_the_daemon_posts_into_the_app(
    client: ApiClient, tokens: Tokens, refs: tuple[str, str], deployment: Deployment, tmp_path: Path
) -> None:
    ra, rb = refs
    state = tmp_path / "state"
    state.mkdir()
    with HitStore(state) as store:
        # What the block page would have counted (k = 10 on the ISP too).
        store.add({(LAST_WEEK, ra): 31, (LAST_WEEK, rb): 4, (THIS_WEEK, ra): 50})
    config = IspConfig(
        server="http://cleanfeed.test",
        list=MAIN,
        token=tokens.isp,
        state_dir=state,
        hits=HitsConfig(enabled=True, k=10),
    )
    transport = ASGIBridge(deployment.app)
    try:
        with httpx.Client(transport=transport) as http:
            ok = SyncOutcome("current", 1, 1, "up_to_date", "nothing new")
            daemon = Daemon(
                config, lambda: ok, rng=random.Random(1), post_hits=hits_poster(config, http)
            )
            daemon._run_once()  # what the scheduler runs: a sync, then the post
            daemon.stop()
    finally:
        transport.close()
    doc = totals(client, tokens.alice).json()
    assert [(e["block_ref"], e["count"]) for e in doc["entries"]] == [(ra, 31)]
    assert doc["isps"] == 1
    with HitStore(state) as store:  # posted: forgotten; the running week stays
        assert store.rows() == [(THIS_WEEK, ra, 50)]
    assert json.dumps(doc).count(ra) == 1
