"""Every single-bit flip, truncation and trailing garbage: rejected or harmless.

transparency-dev/merkle's proof tests and STYLE.md's "mutation loops": each
document the real app serves an ISP (keyring, checkpoint, statements page,
statement, inclusion proof, compact range, snapshot) and the auditor's
bundle is mutated in every single bit, cut at every length and extended
with garbage. Every mutation must be *rejected* with one of the client's
typed errors (never another exception: that would be a crash on hostile
input) or be *harmless*: accepted with exactly the list, checkpoint and
keyrings the genuine document gives (an appended signature line of an
unknown key, JSON whitespace).

The documents are small (a few hundred bytes to a few KB), so the loops
are exhaustive. They run the client's real verification code (the fetcher's
parsing and caps, the trusted state, the syncer's keyring walk and snapshot
path) on the bytes; a sample of the same mutations then goes through the
whole client (``Syncer.sync_once`` with its state directory) against the
real app behind the tampering proxy, where a rejection must also leave the
stored list untouched and be counted.

Parser-level mutation loops of the same formats: ``tests/signer/test_note.py``
(``test_every_bit_flip_is_rejected_or_harmless`` …),
``tests/blocklist/test_statement.py``, ``test_checkpoint.py``,
``tests/blocklist/test_merkle.py`` (``test_inclusion_mutations_rejected``),
``tests/clients/audit/test_verify.py``
(``test_every_single_byte_change_of_a_small_bundle_is_detected_or_irrelevant``).
"""

from __future__ import annotations

import random
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.attack_helpers import BASE, World, replacing, text_of, timestamp_of

from blocklist.keyring import Keyring
from clients.audit.bundle import Bundle, loads
from clients.audit.report import AuditReport
from clients.audit.verify import verify_bundle
from clients.errors import BadData, BundleError
from clients.isp.config import IspConfig
from clients.isp.fetcher import Fetcher
from clients.isp.store import StateStore
from clients.isp.sync import Syncer
from clients.isp.trusted import CheckpointOutcome, StateRecord, TrustedState
from signer.keyring import sign_keyring

#: Garbage appended to a document.
GARBAGE = [
    b"\n",
    b" ",
    b"\x00",
    b"x",
    b"\n\n",
    b"}",
    b"\xff",
    b"\n\xe2\x80\x94 attacker.example AAAAAAAA\n",
    b"\xe2\x80\x94 attacker.example AAAAAAAA\n",
    b"add AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n",
    bytes(32),
]

#: Mutations per document sent through the whole client against the real app.
END_TO_END_SAMPLE = 12


def mutations(data: bytes) -> Iterator[tuple[str, bytes]]:
    """Every single-bit flip, every truncation, and each garbage suffix."""
    for i in range(len(data)):
        for bit in range(8):
            yield f"flip {i}.{bit}", data[:i] + bytes([data[i] ^ (1 << bit)]) + data[i + 1 :]
    for n in range(len(data)):
        yield f"truncate {n}", data[:n]
    for g in GARBAGE:
        yield f"append {g!r}", data + g


State = tuple[Any, ...]


def state_of(ts: TrustedState) -> State:
    """What a verified sync leaves the client trusting."""
    cp = ts.checkpoint
    assert cp is not None
    return (
        ts.version,
        ts.count,
        ts.digest,
        frozenset(ts.hashes()),
        (cp.size, cp.root),
        tuple(Keyring.parse(text_of(n)) for n in ts.keyring_notes),
    )


@dataclass
class Fixture:
    """Documents captured from the real app, and the client's base state."""

    world: World
    now: float
    docs: dict[str, bytes]
    base: tuple[StateRecord, frozenset[bytes]]
    keyring_2: bytes
    bundle: bytes
    results: dict[str, State] = field(default_factory=dict)
    served: Served = field(default_factory=lambda: Served())
    syncer: Any = None

    def config(self, state_dir: Path) -> IspConfig:
        return IspConfig(
            server=BASE,
            list="main",
            token=self.world.tokens.isp,
            root_keys=(self.world.root_vkey,),
            origin=self.world.origin,
            state_dir=state_dir,
        )


class Served:
    """An in-memory server of fixed documents (path -> bytes) for the fetcher."""

    def __init__(self) -> None:
        self.docs: dict[str, bytes] = {}
        self.client = httpx.Client(transport=httpx.MockTransport(self.handle))

    def handle(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path.removeprefix("/v1/lists/main")
        if path == "/keyring" and "serial" in request.url.params:
            path = f"/keyring?serial={request.url.params['serial']}"
        body = self.docs.get(path)
        if body is None:
            return httpx.Response(404)
        headers = {"Cleanfeed-Version": "2"} if path == "/snapshot" else {}
        return httpx.Response(200, content=body, headers=headers)


def _client_run(fx: Fixture, docs: dict[str, bytes], *, first: bool) -> State:
    """The client's verification of ``docs``: incremental from v1, or a first sync."""
    fx.served.docs = docs
    syncer, fetcher = (
        fx.syncer,
        Fetcher(fx.served.client, server=BASE, list_name="main", token=None),
    )
    if first:
        ts = TrustedState([fx.world.root_vkey], origin=fx.world.origin)
    else:
        record, hashes = fx.base
        ts = TrustedState(
            [fx.world.root_vkey], origin=fx.world.origin, record=record, hashes=hashes
        )
    syncer._walk_keyrings(ts, fetcher, fx.now)
    note = fetcher.checkpoint(None).note
    assert note is not None
    result = ts.update_checkpoint(note, fx.now)
    if first:
        syncer._snapshot_path(ts, fetcher, note, fx.now)
    elif result is CheckpointOutcome.NEWER:
        target = ts.target
        assert target is not None
        ts.apply_statements(fetcher.iter_statements(ts.version, target.size))
    return state_of(ts)


@pytest.fixture(scope="module")
def fx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fixture]:
    w = World(tmp_path_factory.mktemp("flips"))
    try:
        for label in ("a", "b", "c"):
            w.add(w.url(label))
        assert w.publish() == 1
        assert w.sync().version_after == 1
        with StateStore(w.state_dir, create=False) as store:
            record = store.load_record()
            assert record is not None
            base = (record, frozenset(store.iter_hashes()))
        w.add(w.url("d"))
        w.expire(w.url("a"))
        assert w.publish() == 2
        held = w.keyring()
        keyring_2 = sign_keyring(
            Keyring.create(
                origin=held.origin,
                serial=2,
                expires=datetime.now(UTC).replace(microsecond=0) + timedelta(days=30),
                threshold=held.threshold,
                roots=held.roots,
                keys=held.keys,
            ),
            [w.root_key()],
        ).encode()
        checkpoint = w.checkpoint_note()
        docs = {
            "/keyring": w.keyring_note().encode(),
            "/keyring?serial=1": w.keyring_note(1).encode(),
            "/checkpoint": checkpoint.encode(),
            "/statements": w.get("/statements", since=1, limit=1).content,
            "/statements/2": w.statement_note(2).encode(),
            "/proofs/inclusion": w.get("/proofs/inclusion", version=2, size=2).content,
            "/proofs/range": w.get("/proofs/range", size=2).content,
            "/proofs/consistency": w.get("/proofs/consistency", **{"from": 1, "to": 2}).content,
            "/snapshot": w.snapshot(2),
        }
        bundle = w.call("GET", "/v1/lists/main/audit/bundle", w.tokens.auditor).content
        now = timestamp_of(checkpoint, w.online_key()) + 60
        f = Fixture(w, now, docs, base, keyring_2, bundle)
        # Only its keyring walk and snapshot path are used, with the fetcher above.
        f.syncer = Syncer(f.config(w.tmp / "unused"), f.served.client)
        f.results["incremental"] = _client_run(f, docs, first=False)
        f.results["first"] = _client_run(f, docs, first=True)
        f.results["keyring"] = _client_run(
            f, {**docs, "/keyring": keyring_2, "/keyring?serial=2": keyring_2}, first=False
        )
        assert f.results["incremental"][0] == f.results["first"][0] == 2
        yield f
    finally:
        w.close()


#: document -> (path served, path to mutate, which run, which genuine result)
DOCUMENTS: dict[str, tuple[str, bool, str]] = {
    "checkpoint": ("/checkpoint", False, "incremental"),
    "statements page": ("/statements", False, "incremental"),
    "keyring": ("/keyring", False, "keyring"),
    "statement": ("/statements/2", True, "first"),
    "inclusion proof": ("/proofs/inclusion", True, "first"),
    "compact range": ("/proofs/range", True, "first"),
    "snapshot": ("/snapshot", True, "first"),
}


def _docs_for(fx: Fixture, document: str) -> dict[str, bytes]:
    if document == "keyring":
        return {**fx.docs, "/keyring": fx.keyring_2, "/keyring?serial=2": fx.keyring_2}
    return dict(fx.docs)


@pytest.mark.slow
@pytest.mark.parametrize("document", list(DOCUMENTS))
def test_every_mutation_of_a_served_document(fx: Fixture, document: str) -> None:
    path, first, genuine = DOCUMENTS[document]
    docs = _docs_for(fx, document)
    original = docs[path]
    expected = fx.results[genuine]
    outcomes: dict[str, int] = {}
    harmful: list[str] = []
    for label, mutated in mutations(original):
        served = {**docs, path: mutated}
        if document == "keyring":
            served["/keyring?serial=2"] = mutated
        try:
            got = _client_run(fx, served, first=first)
        except BadData as e:
            outcomes[e.reason] = outcomes.get(e.reason, 0) + 1
            continue
        # Any other ClientError (or exception) propagates: a failed test.
        if got == expected:
            outcomes["harmless"] = outcomes.get("harmless", 0) + 1
        else:
            harmful.append(label)
    assert not harmful, f"{document}: accepted with another result: {harmful[:20]}"
    total = sum(outcomes.values())
    assert total == 9 * len(original) + len(GARBAGE)
    # Almost everything is refused outright; harmless mutations are rare.
    assert outcomes.get("harmless", 0) < total // 10, outcomes


def _bundle_view(bundle: Bundle, report: AuditReport) -> tuple[Any, ...]:
    """What a verified bundle vouches for (everything but unauthenticated labels)."""
    return (
        bundle.origin,
        bundle.kind,
        bundle.keyrings,
        bundle.statements,
        bundle.checkpoints,
        report.version,
        report.count,
        report.state,
    )


@pytest.mark.slow
def test_every_mutation_of_a_hash_only_bundle(fx: Fixture) -> None:
    genuine = loads(fx.bundle)
    report = verify_bundle(genuine, [fx.world.root_vkey])
    assert report.ok, report.failure
    expected = _bundle_view(genuine, report)
    unauthenticated = set(report.unauthenticated)
    assert unauthenticated == {"list", "approvals_required"}
    outcomes = {"detected": 0, "harmless": 0, "label": 0}
    harmful: list[str] = []
    for label, mutated in mutations(fx.bundle):
        try:
            bundle = loads(mutated)
        except BundleError:
            outcomes["detected"] += 1
            continue
        result = verify_bundle(bundle, [fx.world.root_vkey], workers=1)
        if not result.ok:
            outcomes["detected"] += 1
        elif _bundle_view(bundle, result) != expected:
            harmful.append(label)
        elif (bundle.list_name, bundle.approvals_required) != (
            genuine.list_name,
            genuine.approvals_required,
        ):
            outcomes["label"] += 1  # reported as unauthenticated by the auditor
        else:
            outcomes["harmless"] += 1
    assert not harmful, f"accepted with other content: {harmful[:20]}"
    assert outcomes["detected"] > 0.9 * sum(outcomes.values()), outcomes


# --- a sample through the whole client against the real app ------------------------------


@pytest.mark.parametrize("document", list(DOCUMENTS))
def test_sampled_mutations_through_the_real_client_and_app(
    fx: Fixture, document: str, tmp_path: Path
) -> None:
    w = fx.world
    path, first, _ = DOCUMENTS[document]
    docs = _docs_for(fx, document)
    original = docs[path]
    everything = list(mutations(original))
    rnd = random.Random(f"{document}-7")
    sample = rnd.sample(everything, min(END_TO_END_SAMPLE, len(everything)))
    rejected = 0
    for i, (label, mutated) in enumerate(sample):
        state_dir = tmp_path / f"s{i}"
        if not first:
            shutil.copytree(w.state_dir, state_dir)  # the client at version 1
        config = fx.config(state_dir)
        w.state_dir, saved = state_dir, w.state_dir
        try:
            before = w.held()
            suffix = path.removeprefix("/").replace("/", "_")
            table: dict[str, Callable[..., Any]] = {suffix: lambda req, resp, m=mutated: m}
            if document == "keyring":
                # The real app's latest is serial 1: serve the (mutated) serial 2 as latest.
                table = {
                    "keyring": lambda req, resp, m=mutated: (
                        m if req.url.params.get("serial") in (None, "2") else resp
                    )
                }
            w.proxy.tamper = replacing(**table)
            outcome = w.sync(at=fx.now, config=config)
            if outcome.status == "rejected":
                w.assert_rejected(outcome, outcome.reason, before)
                rejected += 1
            else:
                # Harmless: the same version 2 as the genuine document gives.
                assert outcome.ok, (label, outcome)
                assert outcome.version_after == 2, (label, outcome)
        finally:
            w.proxy.tamper = None
            w.state_dir = saved
    assert rejected >= len(sample) - 2, f"{rejected} of {len(sample)} rejected"
