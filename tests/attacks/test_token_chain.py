"""Token records reach the lists' chains (issue 12, item 13).

Before the fix, token management (who minted which identity) lived only in
the global audit chain, which no statement committed to and no bundle
exported: an operator could mint an analyst token, approve entries with
it, then rewrite or drop its ``token.create`` record, and no auditor could
tell. Two tokens could also share one name, so an actor name in the log did
not name one token.

Now the publisher records the global chain's head in the list's chain
(``global.head``) at each publish, full bundles carry the global records,
and ``cleanfeed audit verify`` fails a rewritten global record
(``global.chain``), a consistently rewritten global chain or a forged
recorded head (``global.head``). Token names are unique per role and list
among tokens not revoked (409 ``token_name_taken``).
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from click.testing import CliRunner
from support.api_testing import MAIN, OTHER
from support.attack_helpers import World

from blocklist.auditlog import AUDIT_ZERO, Action, Actor, AuditRecord, chain_hash
from blocklist.encoding import b64encode
from cleanfeed.cli import main
from clients.audit.bundle import Bundle, loads, save
from clients.audit.report import AuditReport
from clients.audit.verify import verify_bundle


def _full_bundle(w: World) -> Bundle:
    r = w.call(
        "GET", f"/v1/lists/{MAIN}/audit/bundle", w.tokens.auditor_full, params={"full": "true"}
    )
    assert r.status_code == 200, r.text
    return loads(r.content)


def _verify(w: World, bundle: Bundle) -> AuditReport:
    return verify_bundle(bundle, [w.root_vkey], workers=1)


def _rechain(records: tuple[AuditRecord, ...]) -> tuple[AuditRecord, ...]:
    """Renumber and re-hash records: what a server rewriting a chain would do."""
    out, prev = [], AUDIT_ZERO
    for i, r in enumerate(records, start=1):
        r = replace(r, seq=i, hash=None)
        prev = chain_hash(prev, r)
        out.append(replace(r, hash=prev))
    return tuple(out)


def _mint(w: World, name: str, role: str = "analyst", lists: list[str] | None = None) -> Any:
    body: dict[str, Any] = {"name": name, "role": role}
    if lists is not None:
        body["lists"] = lists
    return w.call("POST", "/v1/tokens", w.tokens.admin, json=body)


def _published_with_a_new_token(w: World) -> Bundle:
    minted = _mint(w, "mallory")
    assert minted.status_code == 201, minted.text
    w.add(w.url("after-mint"))
    w.publish()
    return _full_bundle(w)


def test_the_list_chain_commits_to_the_global_head(world: World) -> None:
    w = world
    bundle = _published_with_a_new_token(w)
    assert bundle.global_log is not None
    assert bundle.audit_log is not None
    minted = [r for r in bundle.global_log if r.action == Action.TOKEN_CREATE]
    assert ("admin", "mallory") in {(r.actor, r.details["name"]) for r in minted}
    heads = [r for r in bundle.audit_log if r.action == Action.GLOBAL_HEAD]
    assert heads, "the publish recorded no global head in the list's chain"
    assert heads[-1].details == {
        "chain": "global",
        "seq": len(bundle.global_log),
        "hash": b64encode(bundle.global_log[-1].hash or b""),
    }
    assert heads[-1].actor == Actor.PUBLISHER
    # The statement cut by that publish commits to the record (its audit
    # line is the list head after it): the ordinary audit.head check.
    report = _verify(w, bundle)
    assert report.ok, report.failure
    assert report.counts.global_records == len(bundle.global_log)
    assert report.counts.global_committed == len(bundle.global_log)
    # Nothing new globally: the next publish records no second head.
    w.add(w.url("second"))
    w.publish()
    again = _full_bundle(w)
    assert again.audit_log is not None
    assert [r.seq for r in again.audit_log if r.action == Action.GLOBAL_HEAD] == [
        r.seq for r in heads
    ]


def test_a_broken_global_record_fails_global_chain(world: World) -> None:
    w = world
    bundle = _published_with_a_new_token(w)
    assert bundle.global_log is not None
    forged = tuple(
        replace(r, actor="someone-else") if r.details.get("name") == "mallory" else r
        for r in bundle.global_log
    )
    report = _verify(w, replace(bundle, global_log=forged))
    assert not report.ok
    assert report.failure is not None
    assert report.failure.check == "global.chain"


def test_a_rewritten_global_chain_fails_global_head(world: World) -> None:
    w = world
    bundle = _published_with_a_new_token(w)
    assert bundle.global_log is not None
    # Drop who minted mallory and re-hash the chain: internally consistent,
    # but no longer the chain the list's statements committed to.
    hidden = _rechain(tuple(r for r in bundle.global_log if r.details.get("name") != "mallory"))
    report = _verify(w, replace(bundle, global_log=hidden))
    assert report.failure is not None
    assert report.failure.check == "global.head", report.failure
    # Leaving the global records out altogether fails the same check.
    report = _verify(w, replace(bundle, global_log=None))
    assert report.failure is not None
    assert report.failure.check == "global.head", report.failure


def test_a_broken_recorded_head_fails_global_head(world: World, tmp_path: Path) -> None:
    w = world
    bundle = _published_with_a_new_token(w)
    assert bundle.audit_log is not None
    bogus = b64encode(bytes(range(32)))
    forged = _rechain(
        tuple(
            replace(r, details={**r.details, "hash": bogus})
            if r.action == Action.GLOBAL_HEAD
            else r
            for r in bundle.audit_log
        )
    )
    report = _verify(w, replace(bundle, audit_log=forged))
    assert report.failure is not None
    assert report.failure.check == "global.head", report.failure
    # The command line says the same, and prints the global rows.
    save(replace(bundle, audit_log=forged), tmp_path / "forged.json")
    save(bundle, tmp_path / "good.json")
    for name, code in (("good.json", 0), ("forged.json", 1)):
        result = CliRunner().invoke(
            main,
            ["audit", "verify", str(tmp_path / name), "--root-key", w.root_vkey, "--json"],
        )
        assert result.exit_code == code, result.output
        failure = json.loads(result.output)["failure"]
        assert (failure and failure["check"]) == (None if code == 0 else "global.head")
    human = CliRunner().invoke(
        main, ["audit", "verify", str(tmp_path / "good.json"), "--root-key", w.root_vkey]
    )
    assert "Global records" in human.output


def test_token_names_are_unique_per_role_and_list(world: World) -> None:
    w = world
    first = _mint(w, "isp-z", role="isp", lists=[MAIN])
    assert first.status_code == 201, first.text
    again = _mint(w, "isp-z", role="isp", lists=[MAIN, OTHER])
    assert again.status_code == 409, again.text
    assert again.json()["code"] == "token_name_taken"
    # Another list, or another role, may use the name.
    assert _mint(w, "isp-z", role="isp", lists=[OTHER]).status_code == 201
    assert _mint(w, "isp-z", role="auditor", lists=[MAIN]).status_code == 201
    # An analyst for every list clashes with an analyst of one list.
    assert _mint(w, "alice", role="analyst", lists=[OTHER]).json()["code"] == "token_name_taken"
    # A revoked token's name is free again (the global chain says who held it when).
    revoked = w.call("POST", f"/v1/tokens/{first.json()['id']}/revoke", w.tokens.admin)
    assert revoked.status_code == 200
    assert _mint(w, "isp-z", role="isp", lists=[MAIN]).status_code == 201

    # The CLI gives the same specific refusal.
    result = CliRunner().invoke(
        main,
        ["token", "create", "--data-dir", str(w.d.data_dir), "--role", "analyst",
         "--name", "bob", "--json"],
    )  # fmt: skip
    assert result.exit_code != 0
    assert "[token_name_taken]" in result.output
    listed = w.call("GET", "/v1/tokens", w.tokens.admin).json()
    active = [(t["name"], t["role"]) for t in listed if t["revoked_at"] is None]
    assert active.count(("bob", "analyst")) == 1
    assert json.dumps(listed).count('"isp-z"') == 4  # three active and the revoked one
