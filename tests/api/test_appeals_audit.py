"""Appeals in full audit bundles (issue 17 item 4), checked by the offline auditor."""

from __future__ import annotations

import base64
from typing import Any

from support.api_testing import (
    MAIN,
    URL_B,
    ApiClient,
    Deployment,
    Tokens,
    add_approved,
    decide_appeal,
    publish,
)

from blocklist.auditlog import Action
from blocklist.blockref import block_ref
from blocklist.store import appeals as store_appeals
from blocklist.store import audit as store_audit
from clients.audit.bundle import Bundle, loads
from clients.audit.report import CHECK_APPEAL
from clients.audit.verify import verify_bundle


def _full(client: ApiClient, tokens: Tokens) -> Bundle:
    r = client.get(
        f"/v1/lists/{MAIN}/audit/bundle", params={"full": "true"}, token=tokens.auditor_full
    )
    assert r.status_code == 200, r.text
    return loads(r.content)


def _appeal(client: ApiClient, entry: dict[str, Any]) -> dict[str, Any]:
    ref = block_ref(base64.b64decode(entry["hash"]))
    r = client.post("/v1/appeals", json={"block_ref": ref, "message": "wrong block"})
    assert r.status_code == 202
    out: dict[str, Any] = r.json()
    return out


def test_every_appeal_step_is_in_the_full_bundle_and_verifies(
    deployment: Deployment, client: ApiClient, tokens: Tokens
) -> None:
    entry = add_approved(client, tokens)
    gone = add_approved(client, tokens, URL_B)
    publish(client, tokens.alice)
    first = _appeal(client, entry)["appeal"]
    second = _appeal(client, gone)["appeal"]
    decide_appeal(client, tokens.carol, first, "suspended")
    decide_appeal(client, tokens.carol, first, "upheld")
    client.post(f"/v1/lists/{MAIN}/entries/{entry['id']}/approve", token=tokens.bob)
    decide_appeal(client, tokens.carol, second, "removed")
    publish(client, tokens.alice)
    # Erasure leaves every chain verifying.
    with deployment.db.transaction() as s:
        assert store_appeals.erase(s, first, actor="admin", why="request")
    bundle = _full(client, tokens)
    actions = [r.action for r in bundle.audit_log or ()]
    assert actions.count(Action.APPEAL_ATTACH) == 2
    assert actions.count(Action.APPEAL_DECIDE) == 3
    assert Action.ENTRY_SUSPEND in actions
    global_actions = [r.action for r in bundle.global_log or ()]
    assert global_actions.count(Action.APPEAL_FILE) == 2
    assert Action.APPEAL_ERASE in global_actions
    report = verify_bundle(bundle, [deployment.init.root_vkey], workers=1)
    assert report.ok, report.failure


def test_a_decision_by_the_entrys_approver_fails_verification(
    deployment: Deployment, client: ApiClient, tokens: Tokens
) -> None:
    entry = add_approved(client, tokens)  # bob approved it
    publish(client, tokens.alice)
    appeal = _appeal(client, entry)["appeal"]
    # A server that skipped the reviewer rule: bob's decision goes in the log.
    with deployment.db.transaction() as s:
        store_audit.append(
            s,
            list_id=1,
            actor="bob",
            action=Action.APPEAL_DECIDE,
            entry_id=entry["id"],
            details={
                "appeal": appeal,
                "hash": entry["hash"],
                "outcome": "upheld",
                "reason": "fine",
            },
        )
    publish(client, tokens.alice)
    report = verify_bundle(_full(client, tokens), [deployment.init.root_vkey], workers=1)
    assert not report.ok
    assert report.failure is not None
    assert report.failure.check == CHECK_APPEAL
    assert "approved the entry" in report.failure.reason


def test_a_removal_citing_an_appeal_without_a_decision_fails_verification(
    deployment: Deployment, client: ApiClient, tokens: Tokens
) -> None:
    entry = add_approved(client, tokens)
    publish(client, tokens.alice)
    appeal = _appeal(client, entry)["appeal"]
    with deployment.db.transaction() as s:
        store_audit.append(
            s,
            list_id=1,
            actor="carol",
            action=Action.ENTRY_EXPIRE,
            entry_id=entry["id"],
            details={
                "hash": entry["hash"],
                "reason": "appeal",
                "appeal": appeal,
                "at": "2026-12-06T00:00:00Z",
                "status": "expired",
            },
        )
    publish(client, tokens.alice)
    report = verify_bundle(_full(client, tokens), [deployment.init.root_vkey], workers=1)
    assert report.failure is not None
    assert report.failure.check == CHECK_APPEAL
