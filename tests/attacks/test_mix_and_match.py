"""Mix-and-match: validly signed documents from another list, origin or version.

TUF's mix-and-match attack combines metadata that are each genuine but were
never meant to go together. Here: another list's keyring, checkpoint,
statements or snapshot served as this list's; a text of another origin
signed by this list's own key (a buggy or compromised signer); statement
or snapshot of another version than the checkpoint's. The auditor's side:
``tests/clients/audit/test_verify.py::test_statement_of_another_list_mix_and_match``
and ``::test_pinned_origin_mismatch``.
"""

from __future__ import annotations

import httpx
from support.api_testing import OTHER
from support.attack_helpers import Forger, World, replacing, sha, statement_of, text_of

from signer.note import sign_note


def _other(w: World, path: str, **params: object) -> str | bytes:
    """A document of list ``other``, fetched with its own ISP token."""
    r = w.call("GET", f"/v1/lists/{OTHER}{path}", w.tokens.isp_other, params=params)
    assert r.status_code == 200, r.text
    return r.content if path == "/snapshot" else r.text


def _publish_other(w: World) -> None:
    """Give list ``other`` a version 1 (its canary needs no approvals)."""
    r = w.call("POST", f"/v1/lists/{OTHER}/publish", w.tokens.alice)
    assert r.status_code == 200, r.text


def test_other_lists_checkpoint(synced: World) -> None:
    w = synced
    _publish_other(w)
    before = w.held()
    w.proxy.tamper = replacing(checkpoint=_other(w, "/checkpoint"))
    w.assert_rejected(w.sync(), "unknown_key", before)


def test_other_lists_keyring(synced: World) -> None:
    w = synced
    before = w.held()
    w.proxy.tamper = replacing(keyring=_other(w, "/keyring"))
    outcome = w.sync()
    # Signed by the other list's root, which this client never trusted.
    w.assert_rejected(outcome, "keyring_rejected", before)
    assert "threshold" in outcome.message


def test_other_lists_statements(synced: World) -> None:
    w = synced
    _publish_other(w)
    w.add(w.url("more"))
    assert w.publish() == 3
    before = w.held()
    page = w.call(
        "GET", f"/v1/lists/{OTHER}/statements", w.tokens.isp_other, params={"since": 0}
    ).json()
    # The genuine checkpoint of size 3, with list other's statement in place of 3.
    w.proxy.tamper = replacing(statements={"statements": page["statements"][:1], "next": None})
    w.assert_rejected(w.sync(), "unknown_key", before)


def test_other_lists_snapshot_on_first_sync(world: World) -> None:
    w = world
    w.add(w.url("a"))
    w.publish()
    _publish_other(w)
    before = w.held()
    w.proxy.tamper = replacing(snapshot=_other(w, "/snapshot"))
    w.assert_rejected(w.sync(), "state_mismatch", before)
    assert w.held().version is None


def test_checkpoint_of_another_origin_signed_by_this_lists_key(synced: World) -> None:
    w = synced
    before = w.held()
    forger = Forger(w)
    stmt = forger.statement([sha("example.org/forged")])
    # A buggy or compromised signer signs a head for another log under this
    # list's key: the signature verifies, the origin does not match.
    w.proxy.tamper = replacing(
        checkpoint=forger.checkpoint([stmt], origin="hotline.example/cleanfeed/other"),
        statements={"statements": [stmt], "next": None},
    )
    w.assert_rejected(w.sync(), "wrong_origin", before)


def test_statement_of_another_origin_signed_by_this_lists_key(synced: World) -> None:
    w = synced
    before = w.held()
    forger = Forger(w)
    stmt = forger.statement([sha("example.org/forged")], origin="hotline.example/cleanfeed/other")
    w.proxy.tamper = replacing(
        checkpoint=forger.checkpoint([stmt]),
        statements={"statements": [stmt], "next": None},
    )
    w.assert_rejected(w.sync(), "wrong_origin", before)


def test_older_statement_under_a_newer_checkpoint_on_the_snapshot_path(world: World) -> None:
    w = world
    w.add(w.url("a"))
    w.publish()
    w.add(w.url("b"))
    assert w.publish() == 2
    before = w.held()
    # Checkpoint 2 with statement 1, its inclusion proof and snapshot: each genuine.
    old = w.statement_note(1)
    assert statement_of(old).version == 1
    snapshot_1 = w.snapshot(1)
    w.proxy.tamper = replacing(
        statements_2=old,
        proofs_inclusion=w.get("/proofs/inclusion", version=1, size=1).json(),
        snapshot=lambda req, resp: _relabel(snapshot_1, resp),
    )
    w.assert_rejected(w.sync(), "proof_mismatch", before)
    assert w.held().version is None


def test_older_snapshot_under_a_newer_checkpoint(world: World) -> None:
    w = world
    w.add(w.url("a"))
    w.publish()
    w.add(w.url("b"))
    assert w.publish() == 2
    before = w.held()
    old = w.snapshot(1)
    # Snapshot 1 padded with one more hash, sorted, so that its size matches
    # statement 2's count: only the state digest can tell.
    hashes = sorted([old[i : i + 32] for i in range(0, len(old), 32)] + [sha("example.org/pad")])
    w.proxy.tamper = replacing(snapshot=lambda req, resp: _relabel(b"".join(hashes), resp))
    w.assert_rejected(w.sync(), "state_mismatch", before)


def test_snapshot_labelled_with_another_version(world: World) -> None:
    w = world
    w.add(w.url("a"))
    w.publish()
    before = w.held()

    def relabel(request: httpx.Request, response: httpx.Response) -> httpx.Response:
        return httpx.Response(200, content=response.content, headers={"Cleanfeed-Version": "7"})

    w.proxy.tamper = replacing(snapshot=relabel)
    w.assert_rejected(w.sync(), "format_error", before)


def test_statement_of_another_list_resigned_by_this_lists_key_is_still_its_text(
    synced: World,
) -> None:
    # The other list's statement text, re-signed by main's key: the origin
    # line still names list other, so it is refused as another origin's.
    w = synced
    _publish_other(w)
    before = w.held()
    other_text = _other(w, "/statements/1")
    assert isinstance(other_text, str)
    resigned = sign_note(text_of(other_text), [w.online_key()])
    forger = Forger(w)
    w.proxy.tamper = replacing(
        checkpoint=forger.checkpoint([resigned]),
        statements={"statements": [resigned], "next": None},
    )
    assert statement_of(resigned).origin != w.origin
    w.assert_rejected(w.sync(), "wrong_origin", before)


def _relabel(body: bytes, response: httpx.Response) -> httpx.Response:
    """Another body under the real answer's ``Cleanfeed-Version``."""
    return httpx.Response(
        200, content=body, headers={"Cleanfeed-Version": response.headers["Cleanfeed-Version"]}
    )
