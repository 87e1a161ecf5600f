"""``/metrics`` and ``/readyz`` tell anyone which lists exist and how far they are.

Issue 12, item 9. Without a token (or with an ISP or auditor token) both
endpoints named every list, including lists an ISP token cannot read and
must not learn exist, with their versions, checkpoint ages and pending
changes. Now only an admin token gets those; everyone else gets request
counters by route template from ``/metrics`` and ready-or-not from
``/readyz``.
"""

from __future__ import annotations

from support.api_testing import OTHER
from support.attack_helpers import World

#: Words that would reveal lists, versions or backlog.
LEAKS = (OTHER, "cleanfeed_list_version", "cleanfeed_pending_changes", "checkpoint_age")


def test_metrics_and_readyz_reveal_no_lists_without_admin_token(world: World) -> None:
    world.add(world.url("one"))
    world.publish()
    for who, token in (
        ("anonymous", None),
        ("isp", world.tokens.isp),
        ("auditor", world.tokens.auditor),
        ("analyst", world.tokens.alice),
    ):
        metrics = world.call("GET", "/metrics", token)
        assert metrics.status_code == 200
        ready = world.call("GET", "/readyz", token)
        assert ready.status_code == 200
        assert ready.json() == {"status": "ok", "checks": {}}, (who, ready.text)
        for leak in LEAKS:
            assert leak not in metrics.text, (who, leak)
            assert leak not in ready.text, (who, leak)
        assert "cleanfeed_http_requests_total" in metrics.text
    # The operator still sees everything.
    admin_metrics = world.call("GET", "/metrics", world.tokens.admin).text
    assert f'cleanfeed_list_version{{list="{OTHER}"}}' in admin_metrics
    admin_ready = world.call("GET", "/readyz", world.tokens.admin).json()
    assert admin_ready["checks"][f"checkpoint:{OTHER}"] in ("fresh", "missing")
