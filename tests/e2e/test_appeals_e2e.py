"""End to end on loopback: an appeal from the block reference to the ISP's filter and back.

Issue 17, "Done when", first bullet, with real processes (``cleanfeed
serve`` with its embedded signer, ``cleanfeed isp sync`` and ``isp check``):

1. an entry (alice adds, bob approves) is published; the ISP syncs and
   ``isp check --json`` gives the URL's ``block_ref``;
2. an appeal with it is filed without a token, and so is one with an
   unknown reference: both get the same answer shape and status pages that
   differ only in their numbers and secrets;
3. the entry's creator and approver are refused as reviewers; carol
   suspends it; that publishes at once; the ISP syncs and the URL is no
   longer listed;
4. carol's ``upheld`` reinstates it as pending (four-eyes); bob approves;
   after the next publish and sync the URL is listed again;
5. the status page shows the outcome and nothing more (no URL, no entry).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.e2e_helpers import (
    LIST,
    Server,
    add_and_approve,
    auth,
    cli,
    isp_sync,
    publish,
    token,
)

from blocklist.blockref import block_ref

pytestmark = pytest.mark.e2e

PAGE = "http://blocked.example.com/path/page.html"
UNKNOWN_REF = block_ref(bytes(range(32)))


def _check(state: Path) -> tuple[int, dict[str, Any]]:
    proc = cli("isp", "check", "--state-dir", str(state), "--json", PAGE)
    assert proc.stdout.strip(), proc.stderr
    out: dict[str, Any] = json.loads(proc.stdout)
    return proc.returncode, out


def _decide(server: Server, who: str, appeal: int, outcome: str) -> httpx.Response:
    return httpx.post(
        f"{server.base}/v1/lists/{LIST}/appeals/{appeal}/decide",
        json={"outcome": outcome, "reason": "independent review"},
        headers=auth(who),
        timeout=60,
    )


def _status_page(server: Server, filed: dict[str, Any]) -> str:
    assert filed["status_url"].startswith(server.base + "/appeal/status/")
    r = httpx.get(filed["status_url"], timeout=30)
    assert r.status_code == 200
    assert r.headers["referrer-policy"] == "no-referrer"
    return r.text


def _masked(text: str, filed: dict[str, Any]) -> str:
    return re.sub(rf"<strong>{filed['appeal']}</strong>", "<strong>N</strong>", text)


def test_an_appeal_from_block_ref_to_the_isp_and_back(server: Server, tmp_path: Path) -> None:
    alice = token(server, name="alice", role="analyst", lists=[LIST])
    bob = token(server, name="bob", role="analyst", lists=[LIST])
    carol = token(server, name="carol", role="analyst", lists=[LIST])
    isp = token(server, name="isp-one", role="isp", lists=[LIST])
    root_vkey = server.root_vkey
    state = tmp_path / "isp"

    add_and_approve(server, alice, bob, PAGE, "page")
    assert publish(server, alice).status_code == 200
    code, _ = isp_sync(server, isp, root_vkey, state)
    assert code == 0
    code, checked = _check(state)
    assert code == 0
    ref = checked["results"][0]["block_ref"]

    # 2. Filed without a token; an unknown reference gets the same answers.
    filed = httpx.post(
        f"{server.base}/v1/appeals", json={"block_ref": ref, "message": "my club's page"}
    )
    other = httpx.post(
        f"{server.base}/v1/appeals", json={"block_ref": UNKNOWN_REF, "message": "my page"}
    )
    assert (filed.status_code, other.status_code) == (202, 202)
    assert sorted(filed.json()) == sorted(other.json()) == ["appeal", "status_url"]
    page_a = _status_page(server, filed.json())
    page_b = _status_page(server, other.json())
    assert _masked(page_a, filed.json()) == _masked(page_b, other.json())
    appeal = filed.json()["appeal"]

    # 3. Creator and approver refused; an eligible analyst suspends.
    for who in (alice, bob):
        refused = _decide(server, who, appeal, "suspended")
        assert refused.status_code == 403
        assert refused.json()["code"] == "appeal_reviewer_ineligible"
    suspended = _decide(server, carol, appeal, "suspended")
    assert suspended.status_code == 200, suspended.text
    code, outcome = isp_sync(server, isp, root_vkey, state)
    assert code == 0, outcome
    code, checked = _check(state)
    assert code == 1
    assert checked["results"][0]["listed"] is False
    assert "suspended while your appeal" in _status_page(server, filed.json())

    # 4. Upheld: back through four-eyes.
    upheld = _decide(server, carol, appeal, "upheld")
    assert upheld.status_code == 200
    entry_id = upheld.json()["entry"]["id"]
    assert upheld.json()["entry"]["status"] == "pending"
    own = httpx.post(
        f"{server.base}/v1/lists/{LIST}/entries/{entry_id}/approve", headers=auth(carol)
    )
    assert own.status_code == 403
    ok = httpx.post(f"{server.base}/v1/lists/{LIST}/entries/{entry_id}/approve", headers=auth(bob))
    assert ok.status_code == 200
    assert publish(server, alice).status_code == 200
    code, _ = isp_sync(server, isp, root_vkey, state)
    assert code == 0
    code, checked = _check(state)
    assert code == 0
    assert checked["results"][0]["block_ref"] == ref

    # 5. The outcome, and nothing more.
    final = _status_page(server, filed.json())
    assert "The list was not changed." in final
    for leaked in (PAGE, "blocked.example.com", ref, "carol", "independent review"):
        assert leaked not in final
    # The unknown reference's appeal is still waiting, in the same words as before.
    assert _masked(_status_page(server, other.json()), other.json()) == _masked(
        page_b, other.json()
    )
