"""End to end: retention on a running ``cleanfeed serve`` (docs/operations.md, "Retention").

1. ``cleanfeed serve`` runs (embedded SQLite); version 1 lists the canary
   and two pages, version 2 takes page A off, version 3 adds page C. An ISP
   syncs to version 3.
2. The history is made old: versions 1 and 2 and page A's removal are
   moved 60 days back in the database (the one thing a test cannot wait
   for). Nothing else is touched.
3. ``cleanfeed signer prune --dry-run`` with 30-day periods reports the
   snapshot floor 2, one membership row and one entry's plaintext, and
   changes nothing; without ``--dry-run`` it prunes exactly that.
4. Then, over HTTP: the snapshot of version 1 is 410 ``pruned``, those of
   versions 2 and 3 are served; page A shows no plaintext; a new ISP's
   first sync (snapshot path) and the old ISP's sync both verify; a full
   audit bundle fetched with ``cleanfeed audit fetch --full`` verifies with
   ``cleanfeed audit verify``, which counts the entry without plaintext.
5. A second run prunes nothing; adding page A's URL again restores it.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from pathlib import Path

import httpx
import pytest
from support.e2e_helpers import (
    DB_FILE,
    LIST,
    Server,
    add_and_approve,
    auth,
    cli,
    isp_sync,
    publish,
    token,
)

pytestmark = pytest.mark.e2e

PAGE_A = "http://retired.example.com/old/page.html"
PAGE_B = "http://kept.example.com/page.html"
PAGE_C = "http://recent.example.org/new/page.html"
RETENTION = ("--snapshot-retention-days", "30", "--plaintext-retention-days", "30")


def _entry_id(server: Server, analyst: str, url: str) -> int:
    r = httpx.post(
        f"{server.base}/v1/lists/{LIST}/entries/search",
        json={"url": url},
        headers=auth(analyst),
        timeout=30,
    )
    assert r.status_code == 200, r.text
    items = r.json()["entries"]
    assert len(items) == 1, items
    entry_id: int = items[0]["id"]
    return entry_id


def _snapshot_status(server: Server, isp: str, version: int) -> httpx.Response:
    return httpx.get(
        f"{server.base}/v1/lists/{LIST}/snapshot",
        params={"version": version},
        headers=auth(isp),
        timeout=30,
    )


def _age(data_dir: Path, days: int, *, versions: tuple[int, ...], entry_id: int) -> None:
    """Move the given versions' times and the entry's removal ``days`` into the past."""
    shift = f"-{days} days"
    with contextlib.closing(sqlite3.connect(data_dir / DB_FILE)) as db, db:
        marks = ",".join("?" * len(versions))
        # strftime keeps the stored format (microseconds included).
        db.execute(
            f"UPDATE versions SET time = strftime('%Y-%m-%d %H:%M:%f', time, ?) "  # noqa: S608
            f"WHERE version IN ({marks})",
            (shift, *versions),
        )
        db.execute(
            "UPDATE entries SET expires_at = strftime('%Y-%m-%d %H:%M:%f', expires_at, ?) "
            "WHERE id = ?",
            (shift, entry_id),
        )


def _prune(data_dir: Path, *extra: str) -> dict[str, object]:
    proc = cli("signer", "prune", "--data-dir", str(data_dir), *RETENTION, *extra)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1, proc.stdout
    result: dict[str, object] = json.loads(lines[0])
    return result


def test_prune_a_running_deployment_and_everything_still_verifies(
    server: Server, tmp_path: Path
) -> None:
    alice = token(server, name="alice", role="analyst", lists=[LIST])
    bob = token(server, name="bob", role="analyst", lists=[LIST])
    isp = token(server, name="isp-one", role="isp", lists=[LIST])
    auditor = token(server, name="audit", role="auditor", lists=[LIST], full_audit=True)
    root_vkey = server.root_vkey

    add_and_approve(server, alice, bob, PAGE_A, "page")
    add_and_approve(server, alice, bob, PAGE_B, "page")
    assert publish(server, alice).json()["version"] == 1
    page_a = _entry_id(server, alice, PAGE_A)
    expired = httpx.post(
        f"{server.base}/v1/lists/{LIST}/entries/{page_a}/expire",
        json={"reason": "taken down"},
        headers=auth(alice),
        timeout=30,
    )
    assert expired.status_code == 200, expired.text
    assert publish(server, alice).json()["version"] == 2
    add_and_approve(server, alice, bob, PAGE_C, "page")
    assert publish(server, alice).json()["version"] == 3
    held = tmp_path / "isp-held"
    code, outcome = isp_sync(server, isp, root_vkey, held)
    assert (code, outcome["version_after"]) == (0, 3), outcome
    before = {v: _snapshot_status(server, isp, v).content for v in (1, 2, 3)}

    _age(server.data_dir, 60, versions=(1, 2), entry_id=page_a)

    dry = _prune(server.data_dir, "--dry-run")
    assert dry["dry_run"] is True
    assert (dry["previous_floor"], dry["snapshot_floor"]) == (0, 2)
    assert (dry["memberships_deleted"], dry["plaintext_pruned"]) == (1, 1)
    assert _snapshot_status(server, isp, 1).content == before[1]

    done = _prune(server.data_dir)
    assert done["dry_run"] is False
    assert (done["snapshot_floor"], done["memberships_deleted"], done["plaintext_pruned"]) == (
        2,
        1,
        1,
    )

    gone = _snapshot_status(server, isp, 1)
    assert gone.status_code == 410, gone.text
    assert gone.json()["code"] == "pruned"
    for version in (2, 3):
        kept = _snapshot_status(server, isp, version)
        assert kept.status_code == 200, kept.text
        assert kept.content == before[version]

    entry = httpx.get(
        f"{server.base}/v1/lists/{LIST}/entries/{page_a}", headers=auth(alice), timeout=30
    ).json()
    assert entry["expression"] is None
    assert entry["url"] is None
    assert entry["plaintext_pruned_at"] is not None
    assert entry["status"] == "expired"

    code, outcome = isp_sync(server, isp, root_vkey, held)
    assert (code, outcome["status"], outcome["version_after"]) == (0, "current", 3), outcome
    code, outcome = isp_sync(server, isp, root_vkey, tmp_path / "isp-new")
    assert (code, outcome["version_after"]) == (0, 3), outcome

    bundle = tmp_path / "bundle.json"
    fetched = cli(
        "audit", "fetch", "--server", server.base, "--token", auditor, "--list", LIST,
        "--full", "--output", str(bundle),
    )  # fmt: skip
    assert fetched.returncode == 0, fetched.stderr
    entries = {e["id"]: e for e in json.loads(bundle.read_text())["entries"]}
    assert (entries[page_a]["expression"], entries[page_a]["url"]) == (None, None)
    verified = cli("audit", "verify", "--root-key", root_vkey, "--json", str(bundle))
    assert verified.returncode == 0, verified.stdout + verified.stderr
    report = json.loads(verified.stdout)
    assert report["ok"] is True
    assert report["counts"]["entries_pruned"] == 1

    again = _prune(server.data_dir)
    assert (again["memberships_deleted"], again["plaintext_pruned"]) == (0, 0)
    assert again["snapshot_floor"] == 2

    # The analyst meets the URL again: adding it restores the plaintext.
    readd = httpx.post(
        f"{server.base}/v1/lists/{LIST}/entries",
        json={"url": PAGE_A, "scope": "page", "reason": "seen again"},
        headers=auth(bob),
        timeout=30,
    )
    assert readd.status_code == 200, readd.text
    assert readd.json()["id"] == page_a
    assert readd.json()["url"] == PAGE_A
    assert readd.json()["plaintext_pruned_at"] is None


def test_prune_without_a_period_is_a_usage_error(server: Server) -> None:
    proc = cli("signer", "prune", "--data-dir", str(server.data_dir))
    assert proc.returncode == 2
    assert "--snapshot-retention-days" in proc.stderr


def test_prune_an_unknown_list_fails_and_names_it(server: Server) -> None:
    proc = cli("signer", "prune", "--data-dir", str(server.data_dir), "--list", "nope", *RETENTION)
    assert proc.returncode == 1
    assert "nope" in proc.stderr
