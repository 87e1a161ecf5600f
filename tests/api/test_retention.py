"""Retention through the API: settings, the embedded signer's job, 410 and null plaintext.

The store's pruning rules are the contract suite's (tests/store/
test_contract_retention.py); here the settings reach the embedded signer,
its scheduled job prunes, and the API answers for what is gone.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import update
from support.api_testing import (
    MAIN,
    URL_A,
    URL_B,
    Deployment,
    add_approved,
    close_deployment,
    deployment_client,
    make_deployment,
    publish,
)

from api.settings import SettingsError, load_settings
from blocklist.auditlog import Action
from blocklist.store.models import EntryRow, VersionRow
from blocklist.store.retention import RetentionPolicy

DAYS = 30


@pytest.fixture
def retained(tmp_path: Path) -> Iterator[Deployment]:
    deployment = make_deployment(
        tmp_path, snapshot_retention_days=DAYS, plaintext_retention_days=DAYS
    )
    try:
        yield deployment
    finally:
        close_deployment(deployment)


def test_settings_read_the_periods_and_refuse_bad_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert load_settings(tmp_path).retention == RetentionPolicy()
    monkeypatch.setenv("CLEANFEED_SNAPSHOT_RETENTION_DAYS", "90")
    monkeypatch.setenv("CLEANFEED_PLAINTEXT_RETENTION_DAYS", "365")
    assert load_settings(tmp_path).retention == RetentionPolicy(90, 365)
    monkeypatch.setenv("CLEANFEED_PLAINTEXT_RETENTION_DAYS", "0")
    with pytest.raises(SettingsError, match="CLEANFEED_PLAINTEXT_RETENTION_DAYS"):
        load_settings(tmp_path)


@pytest.mark.parametrize(
    ("env", "toml"),
    [
        ({}, ""),
        ({"CLEANFEED_SNAPSHOT_RETENTION_DAYS": "90"}, ""),
        ({}, "plaintext_retention_days = 365\n"),
        ({"CLEANFEED_PLAINTEXT_RETENTION_DAYS": "30"}, "plaintext_retention_days = 365\n"),
        ({}, "snapshot_retention_days = 7\nplaintext_retention_days = 14\n"),
    ],
)
def test_the_signer_process_reads_retention_as_the_api_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, env: dict[str, str], toml: str
) -> None:
    """`cleanfeed signer run` and `serve` resolve one deployment's retention alike.

    Before issue 14 the signer's options read only the environment, so a
    period set in settings.toml pruned under `serve` and never under a
    separate signer.
    """
    from signer.datadir import resolve_retention

    for name in ("CLEANFEED_SNAPSHOT_RETENTION_DAYS", "CLEANFEED_PLAINTEXT_RETENTION_DAYS"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    if toml:
        (tmp_path / "settings.toml").write_text(toml, encoding="utf-8")
    assert resolve_retention(tmp_path) == load_settings(tmp_path).retention
    # A command-line period wins over both, as an override does for the API.
    assert resolve_retention(tmp_path, snapshot_days=3).snapshot_days == 3


def test_the_signer_refuses_a_bad_period_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from signer.datadir import resolve_retention
    from signer.errors import SignerError

    monkeypatch.setenv("CLEANFEED_SNAPSHOT_RETENTION_DAYS", "ninety")
    with pytest.raises(SignerError, match="CLEANFEED_SNAPSHOT_RETENTION_DAYS"):
        resolve_retention(tmp_path)
    monkeypatch.setenv("CLEANFEED_SNAPSHOT_RETENTION_DAYS", "0")
    with pytest.raises(SignerError, match="snapshot_days must be 1"):
        resolve_retention(tmp_path)


def _age(deployment: Deployment, *, versions: list[int], entry_id: int) -> None:
    """Move versions' times and an entry's removal 60 days back (tests cannot wait)."""
    shift = timedelta(days=2 * DAYS)
    with deployment.db.transaction() as s:
        for version in versions:
            row = s.get(VersionRow, (1, version))
            assert row is not None
            row.time = row.time - shift
        entry = s.get(EntryRow, entry_id)
        assert entry is not None
        assert entry.expires_at is not None
        s.execute(
            update(EntryRow)
            .where(EntryRow.id == entry_id)
            .values(expires_at=entry.expires_at - shift)
        )


def test_the_embedded_signer_prunes_and_the_api_answers_for_it(retained: Deployment) -> None:
    tokens = retained.tokens
    with deployment_client(retained) as client:
        gone = add_approved(client, tokens, URL_A)["id"]
        add_approved(client, tokens, URL_B)
        assert publish(client, tokens.alice)["version"] == 1
        off = client.post(f"/v1/lists/{MAIN}/entries/{gone}/expire", json={}, token=tokens.alice)
        assert off.status_code == 200, off.text
        assert publish(client, tokens.alice)["version"] == 2
        _age(retained, versions=[1], entry_id=gone)

        signer = retained.app.state.cf.signer
        assert signer is not None
        assert signer.retention == RetentionPolicy(DAYS, DAYS)
        signer.prune_all()  # the hourly job, run once

        snapshot = client.get(f"/v1/lists/{MAIN}/snapshot?version=0", token=tokens.isp)
        assert snapshot.status_code == 410, snapshot.text
        assert snapshot.json()["code"] == "pruned"
        assert "kept from version 1" in snapshot.json()["detail"]
        assert (
            client.get(f"/v1/lists/{MAIN}/snapshot?version=1", token=tokens.isp).status_code == 200
        )

        entry = client.get(f"/v1/lists/{MAIN}/entries/{gone}", token=tokens.alice).json()
        assert (entry["expression"], entry["url"]) == (None, None)
        assert entry["plaintext_pruned_at"] is not None
        assert entry["history"][-1]["action"] == Action.ENTRY_PRUNE_PLAINTEXT

        refused = client.post(
            f"/v1/lists/{MAIN}/entries/{gone}/reinstate", json={}, token=tokens.bob
        )
        assert refused.status_code == 409, refused.text
        assert "pruned by retention" in refused.json()["detail"]


def test_without_a_policy_nothing_old_is_pruned(tmp_path: Path) -> None:
    deployment = make_deployment(tmp_path)
    tokens = deployment.tokens
    try:
        signer = deployment.app.state.cf.signer
        assert signer is not None
        with deployment_client(deployment) as client:
            gone = add_approved(client, tokens, URL_A)["id"]
            publish(client, tokens.alice)
            client.post(f"/v1/lists/{MAIN}/entries/{gone}/expire", json={}, token=tokens.alice)
            publish(client, tokens.alice)
            _age(deployment, versions=[1], entry_id=gone)
            signer.prune_all()
            old = client.get(f"/v1/lists/{MAIN}/snapshot?version=0", token=tokens.isp)
            entry = client.get(f"/v1/lists/{MAIN}/entries/{gone}", token=tokens.alice).json()
        assert old.status_code == 200
        assert entry["url"] == URL_A
        assert entry["plaintext_pruned_at"] is None
    finally:
        close_deployment(deployment)
