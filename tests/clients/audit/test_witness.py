"""The witness cosigns only checkpoints that extend the one it cosigned last."""

from __future__ import annotations

import dataclasses
import json
from datetime import timedelta
from pathlib import Path

import pytest
from support.audit_helpers import LIST, ORIGIN, T0, LogServer, sha
from support.memory_log import MemoryLog

from blocklist.checkpoint import Checkpoint
from clients.audit.witness import (
    EVIDENCE_FORMAT,
    Witness,
    WitnessState,
    check_update,
    cosign,
    cosigner_vkey,
    load_state,
    save_state,
)
from clients.errors import CosignRefused, WitnessStateError
from signer.keyring import sign_keyring
from signer.keys import SecretKey
from signer.log import sign_checkpoint
from signer.note import CosignatureVerifier, Verifier, parse_note, verify_cosignature, verify_note

NOW = (T0 + timedelta(days=1)).timestamp()


@pytest.fixture
def key() -> SecretKey:
    return SecretKey.generate("witness.example.org")


def grown_log(versions: int = 3) -> MemoryLog:
    log = MemoryLog(ORIGIN, now=T0)
    for i in range(versions):
        log.publish([sha(f"example.org/{i}")], now=T0 + timedelta(minutes=i))
    return log


def witness(server: LogServer, key: SecretKey, tmp_path: Path, now: float = NOW) -> Witness:
    return Witness(
        server.client(),
        server="https://log.test",
        list_name=LIST,
        token="cf_auditor_test",
        key=key,
        root_vkeys=[server.log.root_vkey],
        state_path=tmp_path / "witness.json",
        clock=lambda: now,
    )


def test_first_run_cosigns_and_remembers(key: SecretKey, tmp_path: Path) -> None:
    server = LogServer(grown_log())
    result = witness(server, key, tmp_path).run_once()
    assert (result.size, result.old_size) == (3, None)
    assert result.root == server.log.root()
    # The cosigned note keeps the log's own signatures and adds a valid 0x04 line.
    online = Verifier.from_vkey(server.log.online_key.vkey)
    verify_note(result.note, [online])
    assert verify_cosignature(result.note, online) == int(NOW)
    cosigner = CosignatureVerifier.from_vkey(cosigner_vkey(key))
    assert verify_cosignature(result.note, cosigner) == int(NOW)
    assert result.line in result.note
    state = load_state(tmp_path / "witness.json")
    assert state is not None
    assert state.origin == ORIGIN
    assert state.checkpoint is not None
    assert Checkpoint.parse(parse_note(state.checkpoint).text).size == 3


def test_consistent_growth_is_cosigned_with_a_fetched_proof(key: SecretKey, tmp_path: Path) -> None:
    server = LogServer(grown_log())
    witness(server, key, tmp_path).run_once()
    server.log.publish([sha("example.org/more")], now=T0 + timedelta(hours=1))
    result = witness(server, key, tmp_path, NOW + 60).run_once()
    assert (result.old_size, result.size) == (3, 4)
    asked = [r.url for r in server.requests if r.url.path.endswith("/proofs/consistency")]
    assert [(u.params["from"], u.params["to"]) for u in asked] == [("3", "4")]


def test_unchanged_log_is_cosigned_again(key: SecretKey, tmp_path: Path) -> None:
    server = LogServer(grown_log())
    witness(server, key, tmp_path).run_once()
    result = witness(server, key, tmp_path, NOW + 600).run_once()
    assert (result.old_size, result.size, result.timestamp) == (3, 3, int(NOW + 600))


def test_rollback_is_refused(key: SecretKey, tmp_path: Path) -> None:
    server = LogServer(grown_log())
    old = server.log.checkpoint(now=T0 + timedelta(hours=1))
    server.log.publish([sha("example.org/more")], now=T0 + timedelta(hours=2))
    witness(server, key, tmp_path).run_once()
    before = (tmp_path / "witness.json").read_bytes()
    server.checkpoint = old
    with pytest.raises(CosignRefused, match="rollback") as e:
        witness(server, key, tmp_path).run_once()
    assert e.value.detail == "rollback"
    assert (tmp_path / "witness.json").read_bytes() == before


def forked(log: MemoryLog) -> MemoryLog:
    """Same keys and first versions, then another history (a split view)."""
    fork = MemoryLog(ORIGIN, now=T0, root_key=log.root_key, online_key=log.online_key)
    fork.keyrings = list(log.keyrings)
    fork.keyring = log.keyring
    for note in log.statements[:2]:
        from support.audit_helpers import statement_of

        st = statement_of(note)
        fork.publish(st.adds, st.removes, now=st.time)
    fork.publish([sha("example.org/only-in-the-fork")], now=T0)
    fork.publish([sha("example.org/fork-2")], now=T0)
    return fork


def test_equivocation_is_refused_and_kept_as_evidence(key: SecretKey, tmp_path: Path) -> None:
    server = LogServer(grown_log())
    first = witness(server, key, tmp_path).run_once()
    before = (tmp_path / "witness.json").read_bytes()
    fork = forked(server.log)  # size 4, not an extension of size 3
    server.checkpoint = fork.checkpoint(now=T0 + timedelta(days=1))
    server.proof_log = fork
    with pytest.raises(CosignRefused, match="equivocation") as e:
        witness(server, key, tmp_path).run_once()
    assert e.value.detail == "equivocation"
    assert e.value.evidence is not None
    evidence = json.loads(Path(e.value.evidence).read_text())
    assert evidence["format"] == EVIDENCE_FORMAT
    assert evidence["kind"] == "checkpoint"
    assert evidence["new_note"] == server.checkpoint
    assert Checkpoint.parse(parse_note(evidence["held_note"]).text).root == first.root
    assert (tmp_path / "witness.json").read_bytes() == before


def test_same_size_other_root_is_equivocation(key: SecretKey, tmp_path: Path) -> None:
    server = LogServer(grown_log())
    witness(server, key, tmp_path).run_once()
    server.checkpoint = sign_checkpoint(ORIGIN, 3, b"\x07" * 32, server.log.online_key, T0)
    with pytest.raises(CosignRefused, match="different roots") as e:
        witness(server, key, tmp_path).run_once()
    assert e.value.detail == "equivocation"
    assert e.value.evidence is not None


def test_checkpoint_by_an_unknown_key_is_refused(key: SecretKey, tmp_path: Path) -> None:
    server = LogServer(grown_log())
    intruder = SecretKey.generate(ORIGIN)
    server.checkpoint = sign_checkpoint(ORIGIN, 3, server.log.root(), intruder, T0)
    with pytest.raises(CosignRefused) as e:
        witness(server, key, tmp_path).run_once()
    assert e.value.detail == "signature"
    assert not (tmp_path / "witness.json").exists()


def test_checkpoint_from_the_future_is_refused(key: SecretKey, tmp_path: Path) -> None:
    server = LogServer(grown_log())
    server.now = T0 + timedelta(days=1, minutes=6)
    with pytest.raises(CosignRefused, match="future"):
        witness(server, key, tmp_path).run_once()


def test_follows_an_online_key_rotation(key: SecretKey, tmp_path: Path) -> None:
    server = LogServer(grown_log())
    witness(server, key, tmp_path).run_once()
    server.log.rotate_online_key(now=T0)
    server.log.publish([sha("example.org/after")], now=T0 + timedelta(hours=1))
    result = witness(server, key, tmp_path).run_once()
    assert (result.old_size, result.size) == (3, 4)
    state = load_state(tmp_path / "witness.json")
    assert state is not None
    assert state.keyring == server.log.keyrings[-1]


def test_keyring_equivocation_is_refused(key: SecretKey, tmp_path: Path) -> None:
    server = LogServer(grown_log())
    witness(server, key, tmp_path).run_once()
    other = dataclasses.replace(
        server.log.keyring, expires=server.log.keyring.expires + timedelta(1)
    )
    server.keyring = sign_keyring(other, [server.log.root_key])
    with pytest.raises(CosignRefused, match="keyring equivocation") as e:
        witness(server, key, tmp_path).run_once()
    assert e.value.evidence is not None
    assert json.loads(Path(e.value.evidence).read_text())["kind"] == "keyring"


def test_state_of_another_log_is_refused(key: SecretKey, tmp_path: Path) -> None:
    server = LogServer(grown_log())
    other = MemoryLog("cleanfeed.invalid/other", now=T0, root_key=server.log.root_key)
    save_state(tmp_path / "witness.json", WitnessState(other.origin, other.keyrings[0], None))
    with pytest.raises(CosignRefused, match="origin_mismatch") as e:
        witness(server, key, tmp_path).run_once()
    assert e.value.detail == "keyring"
    (tmp_path / "witness.json").write_text("{}")
    with pytest.raises(WitnessStateError):
        witness(server, key, tmp_path).run_once()


def test_posts_the_cosignature(key: SecretKey, tmp_path: Path) -> None:
    server = LogServer(grown_log())
    result = witness(server, key, tmp_path).run_once(post=True)
    assert result.posted
    assert server.posted == [{"vkey": cosigner_vkey(key), "signature": result.line}]
    post = next(r for r in server.requests if r.method == "POST")
    assert post.headers["Authorization"] == "Bearer cf_auditor_test"
    assert "cf_auditor_test" not in str(post.url)


def test_check_update_pure_rules(key: SecretKey) -> None:
    log = grown_log()
    held = log.checkpoint(now=T0)
    log.publish([sha("example.org/x")], now=T0)
    new = log.checkpoint(now=T0)
    proof = log.consistency_proof(3, 4)
    assert check_update(held, new, log.keyring, proof, NOW).size == 4
    with pytest.raises(CosignRefused, match="equivocation"):
        check_update(held, new, log.keyring, [b"\x00" * 32] * len(proof), NOW)
    with pytest.raises(CosignRefused, match="rollback"):
        check_update(new, held, log.keyring, [], NOW)
    signed, line = cosign(new, key, 1_700_000_000)
    assert line.startswith(f"— {key.name} ")
    assert signed.endswith(line + "\n")


def test_cosignature_accepted_by_the_real_service(key: SecretKey, tmp_path: Path) -> None:
    from support.audit_service import BASE, service

    with service(tmp_path) as s:
        # Only a witness the administrator registered may post (issue 12 item 1).
        added = s.http.post(
            f"/v1/lists/{LIST}/witnesses",
            json={"vkey": cosigner_vkey(key)},
            headers={"Authorization": f"Bearer {s.deployment.tokens.admin}"},
        )
        assert added.status_code == 201, added.text
        w = Witness(
            s.http,
            server=BASE,
            list_name=LIST,
            token=s.deployment.tokens.isp,
            post_token=s.deployment.tokens.auditor,
            key=key,
            root_vkeys=[s.root_vkey],
            state_path=tmp_path / "witness.json",
        )
        result = w.run_once(post=True)
        assert result.posted
        r = s.http.get(
            f"/v1/lists/{LIST}/checkpoint",
            headers={"Authorization": f"Bearer {s.deployment.tokens.isp}"},
        )
        assert r.status_code == 200
        cosigner = CosignatureVerifier.from_vkey(cosigner_vkey(key))
        assert verify_cosignature(r.text, cosigner) == result.timestamp
