"""Two signer processes against one database produce one consistent log.

DESIGN.md, "Processes": one active signer per list; a database lock makes a
second signer wait, never fork the log. Real separate processes (spawned,
each with its own engine and connections) publish in tight loops while two
more processes add and approve entries. Afterwards: every version number was
cut by exactly one process, the chain, signatures and state digests verify
(log_verifier.py), the checkpoint's root is the RFC 6962 root of all
statements, every approved entry is published, and the shared high-water
mark sits at the final tree.
"""

from __future__ import annotations

import multiprocessing

from support.concurrency_workers import adder, publisher_loop
from support.log_verifier import verify_checkpoint_note, verify_log
from support.publish_helpers import START, Deployment, published

from blocklist.canonical import expression_hash
from signer.highwater import HighWaterMark

PUBLISHERS = 2
ADDERS = 2
ENTRIES_PER_ADDER = 15

#: Generous bound for a child to finish; reached only if something hangs.
JOIN_TIMEOUT = 300


def test_two_signer_processes_on_one_database_never_fork(deployment: Deployment) -> None:
    dep = deployment
    ctx = multiprocessing.get_context("spawn")
    results = ctx.Queue()
    done = ctx.Event()
    url = dep.init.database_url
    adders = [
        ctx.Process(target=adder, args=(url, i * ENTRIES_PER_ADDER, ENTRIES_PER_ADDER, results))
        for i in range(ADDERS)
    ]
    publishers = [
        ctx.Process(target=publisher_loop, args=(str(dep.data_dir), url, done, results, f"p{i}"))
        for i in range(PUBLISHERS)
    ]
    for p in publishers + adders:
        p.start()
    outcomes = []
    for p in adders:
        p.join(JOIN_TIMEOUT)
    # Every adder has committed everything: the publishers may drain and stop.
    done.set()
    for p in publishers:
        p.join(JOIN_TIMEOUT)
    while not results.empty() or len(outcomes) < ADDERS + PUBLISHERS:
        outcomes.append(results.get(timeout=JOIN_TIMEOUT))
    errors = [o for o in outcomes if o[1] != "ok"]
    assert not errors, errors
    for p in publishers + adders:
        assert p.exitcode == 0, (p.name, p.exitcode)

    cut_by = {name: versions for name, status, versions in outcomes if name.startswith("p")}
    all_cut = [v for versions in cut_by.values() for v in versions]
    pub = published(dep.db)
    # Every version number was cut once, by exactly one process.
    assert sorted(all_cut) == list(range(1, len(pub.statements) + 1))

    log = verify_log(
        pub.keyrings,
        pub.statements,
        root_vkey=dep.init.root_vkey,
        origin=dep.init.origin,
        now=START,
    )
    checkpoint, _ = verify_checkpoint_note(pub.checkpoint, log.keyring)
    assert (checkpoint.size, checkpoint.root) == (len(pub.statements), log.root)
    expected = {expression_hash("canary.example.org/canary.html")} | {
        expression_hash(f"example.com/concurrent/{i}.html")
        for i in range(ADDERS * ENTRIES_PER_ADDER)
    }
    assert log.members == expected
    assert dep.publisher.highwater.read() == HighWaterMark(
        dep.init.origin, len(pub.statements), log.root
    )
