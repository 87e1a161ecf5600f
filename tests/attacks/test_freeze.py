"""Freeze: a validly signed but old view served forever is detected.

An attacker who cannot forge anything can still replay the last checkpoint
it saw (or answer ``304 Not Modified`` to every poll), hiding every later
version: the removal of a wrongly listed site, or new abuse URLs. The
online key's 0x04 timestamp states when the checkpoint was signed; the
client rejects it once it is older than its configured max age, or dated
too far in the future, and it refuses any checkpoint while its keyring has
expired.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from support.attack_helpers import Forger, World, replacing, timestamp_of
from support.isp_helpers import sign_cp

from clients.isp.config import MAX_FUTURE_SKEW
from clients.isp.store import StateStore

#: A max age other than the default, to show the configured one is used.
MAX_AGE = 900


@pytest.mark.parametrize("served", ["replayed note", "304 forever"])
def test_checkpoint_replayed_past_the_configured_max_age(synced: World, served: str) -> None:
    w = synced
    config = w.configured(max_age=MAX_AGE)
    note = w.checkpoint_note()
    signed_at = timestamp_of(note, w.online_key())
    if served == "replayed note":
        # Always the full note, whatever If-None-Match says.
        w.proxy.tamper = replacing(checkpoint=note)
    # else: the real app answers 304 to the client's If-None-Match (the signer
    # is not scheduled in these tests, so the head is never re-signed).
    assert w.sync(at=signed_at + MAX_AGE - 1, config=config).status == "current"
    before = w.held()
    outcome = w.sync(at=signed_at + MAX_AGE + 1, config=config)
    w.assert_rejected(outcome, "stale", before)
    assert "freeze" in outcome.message


def test_checkpoint_dated_in_the_future(synced: World) -> None:
    w = synced
    before = w.held()
    ahead = datetime.now(UTC) + timedelta(seconds=MAX_FUTURE_SKEW + 120)
    w.proxy.tamper = replacing(checkpoint=Forger(w).checkpoint(when=ahead))
    w.assert_rejected(w.sync(), "stale", before)


def test_checkpoint_without_its_timestamp_line(synced: World) -> None:
    w = synced
    before = w.held()
    note = w.checkpoint_note()
    # Keep the text, the blank line and the plain 0x01 line; drop the 0x04 line.
    head, _, signatures = note.rpartition("\n\n")
    plain = signatures.split("\n")[0]
    w.proxy.tamper = replacing(checkpoint=f"{head}\n\n{plain}\n")
    w.assert_rejected(w.sync(), "stale", before)


def test_expired_keyring_refuses_even_a_fresh_checkpoint(synced: World) -> None:
    w = synced
    before = w.held()
    expires = w.keyring().expires
    later = expires + timedelta(days=1)
    # The online key itself signs a perfectly fresh head: the keyring that
    # vouches for that key has expired and nobody published a new one.
    forger = Forger(w)
    fresh = sign_cp(w.origin, forger.version, forger.range.root(), w.online_key(), later)
    w.proxy.tamper = replacing(checkpoint=fresh)
    outcome = w.sync(at=later.timestamp())
    w.assert_rejected(outcome, "stale", before)
    assert "keyring" in outcome.message


def test_an_older_timestamp_never_moves_freshness_back(synced: World) -> None:
    w = synced
    forger = Forger(w)
    now = datetime.now(UTC).replace(microsecond=0)
    newer = forger.checkpoint(when=now + timedelta(seconds=120))
    older = forger.checkpoint(when=now)
    w.proxy.tamper = replacing(checkpoint=newer)
    assert w.sync(at=now.timestamp() + 130).status == "current"
    w.proxy.tamper = replacing(checkpoint=older)
    assert w.sync(at=now.timestamp() + 140).status == "current"
    with StateStore(w.state_dir, create=False) as store:
        assert store.status().checkpoint_time == int(now.timestamp()) + 120
        record = store.load_record()
    assert record is not None
    assert record.checkpoint_note == newer


def test_witness_line_replaying_the_logs_own_older_cosignature(synced: World) -> None:
    """An auditor token must not be able to freeze every ISP.

    A checkpoint is re-signed with the same text and a new timestamp every
    checkpoint interval, so anyone polling has the log key's 0x04 lines of
    the current text with *older* timestamps. Submitted as a "witness"
    cosignature under the log's own vkey, such a line is appended by
    ``GET …/checkpoint``; the note then carries two cosignatures of the log
    key with different times, which clients must reject as ambiguous
    freshness (protocol section 3.3) on every poll until the text changes.
    Whatever the API answers, ISPs must keep accepting the log's checkpoint.
    """
    w = synced
    served = w.checkpoint_note()
    signed_at = timestamp_of(served, w.online_key())
    recorded = Forger(w).checkpoint(when=datetime.fromtimestamp(signed_at - 600, UTC))
    old_line = [line for line in recorded.split("\n") if line.startswith("\u2014 ")][1]
    w.call(
        "POST",
        "/v1/lists/main/checkpoint/cosignatures",
        w.tokens.auditor,
        json={"vkey": w.online_key().vkey, "signature": old_line},
    )
    outcome = w.sync()
    assert outcome.ok, outcome
