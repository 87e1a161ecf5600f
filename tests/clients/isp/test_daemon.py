"""The daemon: delays (interval, min-wait, back-off with full jitter), stop, SIGTERM."""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from clients.isp.config import IspConfig
from clients.isp.daemon import (
    BACKOFF_BASE,
    INTERVAL_SPREAD,
    MIN_ERROR_DELAY,
    Daemon,
    next_delay,
    render_metrics,
)
from clients.isp.records import Status
from clients.isp.sync import SyncOutcome
from signer.keys import SecretKey

OK = SyncOutcome("updated", 1, 2, "success", "ok")
FAILED = SyncOutcome("failed", 2, 2, "network_error", "down")


def delays(outcome: SyncOutcome, failures: int, n: int = 500, **kw: float | None) -> list[float]:
    rng = random.Random(7)
    args: dict[str, float | None] = {"interval": 600.0, "max_backoff": 900.0, "min_wait": None}
    args.update(kw)
    return [
        next_delay(outcome, failures=failures, rng=rng, **args)  # type: ignore[arg-type]
        for _ in range(n)
    ]


def test_success_waits_the_interval_with_a_small_spread() -> None:
    ds = delays(OK, 0)
    assert min(ds) >= 600
    assert max(ds) <= 600 * (1 + INTERVAL_SPREAD)
    assert len(set(ds)) > 1  # jittered, so ISPs do not poll in lockstep


def test_never_faster_than_the_server_min_wait() -> None:
    assert min(delays(OK, 0, min_wait=1800.0)) >= 1800
    assert min(delays(FAILED, 1, min_wait=300.0)) >= 300


def test_error_backoff_grows_with_full_jitter_and_is_capped() -> None:
    first = delays(FAILED, 1)
    assert min(first) >= MIN_ERROR_DELAY
    assert max(first) <= BACKOFF_BASE
    fifth = delays(FAILED, 5)
    assert max(fifth) > BACKOFF_BASE  # grew
    assert max(fifth) <= BACKOFF_BASE * 2**4
    capped = delays(FAILED, 40)
    assert max(capped) <= 900
    assert min(capped) < 450  # full jitter: anywhere in [floor, cap]


def test_retry_after_is_honoured() -> None:
    busy = SyncOutcome("failed", 2, 2, "server_error", "busy", retry_after=700.0)
    assert min(delays(busy, 1)) >= 700


def test_stop_from_inside_a_run(tmp_path: Path) -> None:
    config = IspConfig(state_dir=tmp_path, first_poll_jitter=0.0)
    calls: list[int] = []
    daemon: Daemon

    def sync() -> SyncOutcome:
        calls.append(1)
        daemon.stop()
        return OK

    daemon = Daemon(config, sync, rng=random.Random(1))
    assert daemon.run(install_signal_handlers=False) == 0
    assert calls == [1]


def test_metrics_text() -> None:
    status = Status(
        version=7,
        count=3,
        origin="o",
        checkpoint_time=1000,
        last_attempt=2000.0,
        last_success=2000.0,
        last_error=None,
        last_error_reason=None,
        last_error_time=None,
        plaintext_complete=None,
        plaintext_error=None,
        counters={"success": 4, "rollback": 1},
    )
    text = render_metrics(status, last_ok=True)
    assert 'cleanfeed_isp_sync_total{reason="rollback"} 1\n' in text
    assert "cleanfeed_isp_version 7\n" in text
    assert "cleanfeed_isp_last_sync_ok 1\n" in text
    assert "cleanfeed_isp_plaintext_complete" not in text  # unknown: not reported


def test_run_exits_cleanly_on_sigterm(tmp_path: Path) -> None:
    with socket.socket() as s:  # a loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    metrics = tmp_path / "cleanfeed.prom"
    config = tmp_path / "isp.toml"
    config.write_text(f'first_poll_jitter = 0\nprometheus_textfile = "{metrics}"\n')
    root = SecretKey.generate("cleanfeed.invalid/main/root").vkey
    cmd = [
        sys.executable, "-m", "cleanfeed", "isp", "run", "--config", str(config),
        "--server", f"http://127.0.0.1:{port}", "--list", "main", "--root-key", root,
        "--state-dir", str(tmp_path / "state"), "--token", "cf_t",
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLEANFEED_")}
    with subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE) as proc:
        deadline = time.monotonic() + 60
        while not metrics.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert metrics.exists(), "the first (jitter-free) poll did not complete"
        assert 'reason="network_error"' in metrics.read_text()
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err.decode()
