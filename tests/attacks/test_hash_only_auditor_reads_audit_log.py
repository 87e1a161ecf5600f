"""A hash-only auditor reads the free text of the audit log.

Issue 12, item 10. A hash-only auditor token (no ``--full-audit``) may not
fetch a full bundle, whose audit log carries reasons, references,
categories, analyst names and hosting countries; ``GET …/audit/log``
served the same records to it. The log now needs the same entitlement as a
full bundle (403 ``not_entitled``); full auditors and admins still read it.
"""

from __future__ import annotations

from support.api_testing import MAIN
from support.attack_helpers import World

#: Free text an analyst types that a hash-only auditor must not see.
SECRET_REASON = "report from case officer Alice, reference HOTLINE-4711"


def test_hash_only_auditor_cannot_read_audit_log_free_text(world: World) -> None:
    r = world.call(
        "POST",
        f"/v1/lists/{MAIN}/entries",
        world.tokens.alice,
        json={"url": world.url("log"), "scope": "page", "reason": SECRET_REASON},
    )
    assert r.status_code == 201, r.text
    log = f"/v1/lists/{MAIN}/audit/log"
    hash_only = world.call("GET", log, world.tokens.auditor)
    assert hash_only.status_code == 403, hash_only.text[:300]
    assert hash_only.json()["code"] == "not_entitled"
    assert "Alice" not in hash_only.text
    # Same rule as the bundle: the hash-only bundle works, the full one does not.
    bundle = f"/v1/lists/{MAIN}/audit/bundle"
    assert world.call("GET", bundle, world.tokens.auditor).status_code == 200
    full = world.call("GET", bundle, world.tokens.auditor, params={"full": "true"})
    assert full.status_code == 403
    # Entitled readers still get the log, free text included.
    for token in (world.tokens.auditor_full, world.tokens.admin):
        entitled = world.call("GET", log, token)
        assert entitled.status_code == 200, entitled.text[:300]
        assert SECRET_REASON in entitled.text
