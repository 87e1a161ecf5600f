"""A deployment on PostgreSQL with separate API and signer processes.

Used by the fault-injection suites that restart PostgreSQL or run several
API workers beside the signer.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from blocklist.store import Database
from support.processes import (
    child_env,
    cleanfeed_argv,
    free_port,
    signer_argv,
    spawn_logged,
    stop_process,
    wait_ready,
)


@dataclass
class PgDeployment:
    """An initialised data directory whose database is PostgreSQL, and its tokens."""

    data_dir: Path
    url: str
    root_vkey: str
    origin: str
    analysts: list[str]
    isp: str
    admin: str

    def database(self) -> Database:
        return Database(self.url)


def init_pg_deployment(data_dir: Path, url: str, *, analysts: int) -> PgDeployment:
    """``cleanfeed init`` on ``url`` (list ``main``, one approval), plus tokens."""
    from blocklist.store import tokens as store_tokens
    from signer.datadir import init_data_dir

    init = init_data_dir(data_dir, database_url=url, list_name="main")
    db = Database(url)
    try:
        with db.transaction() as s:
            names = [
                store_tokens.create_token(s, name=f"analyst{i}", role="analyst", actor="test")[0]
                for i in range(analysts)
            ]
            isp, _ = store_tokens.create_token(
                s, name="isp-load", role="isp", lists=["main"], actor="test"
            )
    finally:
        db.dispose()
    return PgDeployment(data_dir, url, init.root_vkey, init.origin, names, isp, init.admin_token)


def serve_env(dep: PgDeployment) -> dict[str, str]:
    """Environment of API and signer processes: no rate limit, JSON logs."""
    return child_env(
        CLEANFEED_DATABASE_URL=dep.url,
        CLEANFEED_RATE_LIMIT_PER_SECOND="0",
        CLEANFEED_ANALYST_RATE_LIMIT_PER_SECOND="0",
        CLEANFEED_AUDITOR_RATE_LIMIT_PER_SECOND="0",
        CLEANFEED_ADMIN_RATE_LIMIT_PER_SECOND="0",
        CLEANFEED_JSON_LOGS="true",
        CLEANFEED_PUBLISH_WAIT_TIMEOUT="5",
        CLEANFEED_LOG_LEVEL="WARNING",
    )


def start_api(dep: PgDeployment, log: Path, *, workers: int) -> tuple[subprocess.Popen[bytes], str]:
    """``cleanfeed serve --no-signer --workers N`` on a free loopback port."""
    port = free_port()
    proc = spawn_logged(
        cleanfeed_argv(
            "serve",
            "--no-signer",
            "--data-dir",
            str(dep.data_dir),
            "--database-url",
            dep.url,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(workers),
        ),
        log,
        serve_env(dep),
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base, proc, log)
    except AssertionError:
        stop_process(proc)
        raise
    return proc, base


def start_signer(
    data_dir: Path, dep: PgDeployment, log: Path, *, checkpoint_interval: float = 5.0
) -> subprocess.Popen[bytes]:
    """``cleanfeed signer run`` against the deployment's database, publishing every second."""
    return spawn_logged(
        signer_argv(
            "run",
            "--data-dir",
            str(data_dir),
            "--database-url",
            dep.url,
            "--publish-interval",
            "1",
            "--checkpoint-interval",
            str(checkpoint_interval),
            "--log-level",
            "WARNING",
        ),
        log,
        serve_env(dep),
    )
