"""Load: 500 simulated ISPs polling one API worker (issue 7, shortened for CI).

The same driver as ``bench/load.py`` (whose 60-second run and latency
percentiles are recorded in docs/benchmarks.md) runs here for a bounded
time against a real ``cleanfeed serve`` on loopback, while two analysts add,
approve and publish. It asserts the property, not a speed: every response
is a success, a 304, or a 429 that carries ``Retry-After``; every ISP keeps
up with the published versions.
"""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

from bench import deploy  # noqa: E402
from bench import load as load_bench  # noqa: E402
from bench.common import cleanfeed_server  # noqa: E402

pytestmark = pytest.mark.e2e

#: Seconds of load in CI; bench/load.py runs 60 s.
DURATION = 12.0


def test_500_isps_polling_one_worker_get_no_error_but_429_with_retry_after(
    tmp_path: Path,
) -> None:
    dep = deploy.create(tmp_path / "data")
    deploy.curate(dep, 20)
    deploy.publish(dep)
    tokens = dep.tokens("isp", "isp-load", load_bench.ISPS)
    adder = dep.token("analyst", "analyst-load-a", lists=())
    approver = dep.token("analyst", "analyst-load-b", lists=())
    dep.close()
    with cleanfeed_server(dep.data_dir, tmp_path / "server.log") as server:
        stats = load_bench._run_loop(
            load_bench._drive("127.0.0.1", server.port, tokens, adder, approver, DURATION)
        )
    total = sum(stats.statuses.values())
    assert total > len(tokens), f"only {total} responses: the load did not run"
    assert stats.errors == 0, stats.error_examples
    # the greedy ISPs poll without pausing: the limiter must have answered
    assert stats.rate_limited > 0
    assert "checkpoint 304" in stats.latencies
