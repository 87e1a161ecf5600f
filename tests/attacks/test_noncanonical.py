"""Non-canonical encodings are refused, even when the signature verifies.

Every signed text has exactly one spelling (protocol section 1): texts are
hashed into the ``previous`` chain and the Merkle log, so a parser that
accepted two spellings of one value would let two different texts mean the
same thing. Each document below is signed by the list's real key (a buggy
or compromised signer) and is otherwise valid: the forged statement's
state, count and the checkpoint's root all match, so a lenient parser would
*accept* it. Only the canonical-encoding rules reject it.

Parser-level tests of the same rules: ``tests/blocklist/test_statement.py``,
``test_checkpoint.py``, ``test_keyring_format.py``, ``tests/signer/test_note.py``.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from support.attack_helpers import (
    Forger,
    World,
    raw_note,
    replacing,
    sha,
    stray_bits,
    text_of,
)

from blocklist.encoding import b64encode
from blocklist.keyring import Keyring
from clients.audit.bundle import loads
from clients.audit.verify import verify_bundle
from clients.errors import BundleError
from signer.keys import SecretKey
from signer.note import sign_note

#: A new entry whose base64 holds a ``+`` or ``/`` (to respell in the URL-safe alphabet).
NEW = next(
    h
    for h in (sha(f"example.org/new-entry/{i}") for i in range(1000))
    if set(b64encode(h)) & {"+", "/"}
)


def _line(keyword: str, edit: Callable[[str], str]) -> Callable[[str], str]:
    """Edit the value of the first line starting with ``keyword ``."""

    def apply(text: str) -> str:
        pattern = re.compile(rf"^{keyword} (.*)$", re.MULTILINE)
        match = pattern.search(text)
        assert match is not None, keyword
        return text[: match.start(1)] + edit(match.group(1)) + text[match.end(1) :]

    return apply


STATEMENT_EDITS: dict[str, Callable[[str], str]] = {
    "stray bits in an added hash": _line("add", stray_bits),
    "stray bits in the state": _line("state", stray_bits),
    "stray bits in previous": _line("previous", stray_bits),
    "url-safe base64": _line("add", lambda v: v.replace("+", "-").replace("/", "_")),
    "unpadded base64": _line("add", lambda v: v.rstrip("=")),
    "leading zero in version": _line("version", lambda v: "0" + v),
    "leading zero in count": _line("count", lambda v: "0" + v),
    "plus sign in count": _line("count", lambda v: "+" + v),
    "leading zero in keyring": _line("keyring", lambda v: "0" + v),
    "fraction of a second": _line("time", lambda v: v[:-1] + ".000Z"),
    "lower-case time": _line("time", lambda v: v.lower()),
    "two spaces": _line("count", lambda v: " " + v),
    "unknown line": lambda t: t + "note this line means nothing\n",
    "repeated line": lambda t: t.replace("keyring ", "keyring 1\nkeyring ", 1),
    "empty line": lambda t: t.replace("\nadd ", "\n\nadd ", 1),
}


@pytest.mark.parametrize("case", list(STATEMENT_EDITS))
def test_statement(synced: World, case: str) -> None:
    w = synced
    before = w.held()
    forger = Forger(w)
    stmt = forger.statement([NEW], text=STATEMENT_EDITS[case])
    assert text_of(stmt) != text_of(forger.statement([NEW]))
    w.proxy.tamper = replacing(
        checkpoint=forger.checkpoint([stmt]), statements={"statements": [stmt], "next": None}
    )
    w.assert_rejected(w.sync(), "format_error", before)


@pytest.mark.parametrize("ending", ["\r\n", "\r"])
def test_statement_with_carriage_returns(synced: World, ending: str) -> None:
    w = synced
    before = w.held()
    forger = Forger(w)
    text = text_of(forger.statement([NEW])).replace("\n", ending)
    text = text if text.endswith("\n") else text + "\n"
    stmt = raw_note(text, w.online_key())
    w.proxy.tamper = replacing(
        checkpoint=forger.checkpoint(texts=[text]), statements={"statements": [stmt], "next": None}
    )
    w.assert_rejected(w.sync(), "format_error", before)


def test_control_sample_statement_is_accepted(synced: World) -> None:
    # Control: the same forged statement, canonically written, is applied;
    # the rejections above are about the spelling only.
    w = synced
    forger = Forger(w)
    stmt = forger.statement([NEW])
    w.proxy.tamper = replacing(
        checkpoint=forger.checkpoint([stmt]), statements={"statements": [stmt], "next": None}
    )
    assert w.sync().version_after == 3


CHECKPOINT_EDITS: dict[str, Callable[[str], str]] = {
    "leading zero in the size": lambda t: t.replace("\n2\n", "\n02\n", 1),
    "stray bits in the root": lambda t: _nth_line(t, 2, stray_bits),
    "unpadded root": lambda t: _nth_line(t, 2, lambda v: v.rstrip("=")),
    "space after the size": lambda t: t.replace("\n2\n", "\n2 \n", 1),
}


def _nth_line(text: str, n: int, edit: Callable[[str], str]) -> str:
    lines = text.split("\n")
    lines[n] = edit(lines[n])
    return "\n".join(lines)


@pytest.mark.parametrize("case", list(CHECKPOINT_EDITS))
def test_checkpoint(synced: World, case: str) -> None:
    w = synced
    before = w.held()
    w.proxy.tamper = replacing(checkpoint=Forger(w).checkpoint(text=CHECKPOINT_EDITS[case]))
    w.assert_rejected(w.sync(), "format_error", before)


def test_checkpoint_extension_line_is_carried_but_means_nothing(synced: World) -> None:
    """C2SP tlog-checkpoint allows extension lines; cleanfeed gives them no meaning.

    The documented exception (protocol section 7.1): accepted, the list is
    exactly what it was; the note is kept byte for byte as evidence.
    """
    w = synced
    hashes = w.hashes()
    note = Forger(w).checkpoint(text=lambda t: t + "extension: anything\n")
    w.proxy.tamper = replacing(checkpoint=note)
    outcome = w.sync()
    assert outcome.status == "current", outcome
    assert w.hashes() == hashes
    assert w.held().version == 2


@pytest.mark.parametrize("kind", ["statement", "checkpoint"])
def test_stray_bits_in_a_signature_line(synced: World, kind: str) -> None:
    w = synced
    before = w.held()
    forger = Forger(w)
    stmt = forger.statement([NEW])
    head = forger.checkpoint([stmt])

    def respell(note: str) -> str:
        lines = note.split("\n")
        i = next(i for i, line in enumerate(lines) if line.startswith("\u2014 "))
        name, blob = lines[i][2:].rsplit(" ", 1)
        lines[i] = f"\u2014 {name} {stray_bits(blob)}"
        return "\n".join(lines)

    if kind == "statement":
        stmt = respell(stmt)
    else:
        head = respell(head)
    w.proxy.tamper = replacing(checkpoint=head, statements={"statements": [stmt], "next": None})
    w.assert_rejected(w.sync(), "format_error", before)


def _keyring_2(w: World) -> Keyring:
    held = w.keyring()
    return Keyring.create(
        origin=held.origin,
        serial=2,
        expires=datetime.now(UTC).replace(microsecond=0) + timedelta(days=30),
        threshold=held.threshold,
        roots=held.roots,
        keys=held.keys,
    )


def _upper_key_id(vkey: str) -> str:
    """The vkey with its hex key id in upper case (c2sp.org/signed-note: lower-case hex).

    A key id of digits only (about 2 % of random keys) has no upper-case
    spelling: the case does not apply to this run's keys.
    """
    name, key_id, rest = vkey.split("+", 2)
    if key_id.upper() == key_id:
        pytest.skip(f"key id {key_id} has no hex letter to upper-case")
    return f"{name}+{key_id.upper()}+{rest}"


KEYRING_EDITS: dict[str, Callable[[str], str]] = {
    "leading zero in the serial": _line("serial", lambda v: "0" + v),
    "leading zero in the threshold": _line("threshold", lambda v: "0" + v),
    "fraction in expires": _line("expires", lambda v: v[:-1] + ".0Z"),
    "offset in expires": _line("expires", lambda v: v[:-1] + "+00:00"),
    # (a vkey's base64 encodes 33 bytes: it has no unused bits to set)
    "upper-case root key id": _line("root", _upper_key_id),
    "upper-case key id": _line("key", _upper_key_id),
    "leading zero in a range": _line("key", lambda v: v.replace(" 1 ", " 01 ", 1)),
    "unknown line": lambda t: t + "comment nothing\n",
    "repeated line": lambda t: t.replace("threshold ", "threshold 1\nthreshold ", 1),
}


@pytest.mark.parametrize("case", list(KEYRING_EDITS))
def test_keyring(synced: World, case: str) -> None:
    w = synced
    before = w.held()
    text = KEYRING_EDITS[case](_keyring_2(w).to_text())
    assert text != _keyring_2(w).to_text()
    note = sign_note(text, [w.root_key()])
    w.proxy.tamper = replacing(keyring=note)
    w.assert_rejected(w.sync(), "format_error", before)


def test_keyring_roots_out_of_order(synced: World) -> None:
    w = synced
    before = w.held()
    second = SecretKey.generate(w.origin + "/root-b")
    held = w.keyring()
    two = Keyring.create(
        origin=held.origin,
        serial=2,
        expires=datetime.now(UTC).replace(microsecond=0) + timedelta(days=30),
        threshold=1,
        roots=[*held.roots, second.vkey],
        keys=held.keys,
    )
    lines = two.to_text().split("\n")
    roots = [i for i, line in enumerate(lines) if line.startswith("root ")]
    lines[roots[0]], lines[roots[1]] = lines[roots[1]], lines[roots[0]]
    note = sign_note("\n".join(lines), [w.root_key(), second])
    w.proxy.tamper = replacing(keyring=note)
    w.assert_rejected(w.sync(), "format_error", before)


PROOF_EDITS: dict[str, Callable[[list[str]], dict[str, object]]] = {
    "stray bits": lambda h: {"hashes": [stray_bits(h[0]), *h[1:]]},
    "unpadded": lambda h: {"hashes": [h[0].rstrip("="), *h[1:]]},
    "hex instead of base64": lambda h: {"hashes": [base64.b64decode(x).hex() for x in h]},
    "not a list": lambda h: {"hashes": h[0]},
    "numbers": lambda h: {"hashes": [1]},
}


@pytest.mark.parametrize("endpoint", ["proofs_inclusion", "proofs_range"])
@pytest.mark.parametrize("case", list(PROOF_EDITS))
def test_proof_json(world: World, endpoint: str, case: str) -> None:
    w = world
    for label in ("a", "b"):
        w.add(w.url(label))
        w.publish()  # versions 1 and 2: both proofs of statement 2 in tree 2 are one hash
    before = w.held()

    def edit(request: httpx.Request, response: httpx.Response) -> object:
        hashes = response.json()["hashes"]
        assert hashes, "the proof must have a hash to respell"
        return PROOF_EDITS[case](hashes)

    w.proxy.tamper = replacing(**{endpoint: edit})
    w.assert_rejected(w.sync(), "format_error", before)


def test_proof_json_unknown_member_is_ignored(world: World) -> None:
    # JSON answers are extended, never changed (protocol section 12): a new
    # member means nothing to this client; the proof itself still decides.
    w = world
    w.add(w.url("a"))
    w.publish()
    w.add(w.url("b"))
    w.publish()

    def extend(request: httpx.Request, response: httpx.Response) -> object:
        return {**response.json(), "comment": "ignored"}

    w.proxy.tamper = replacing(proofs_inclusion=extend, proofs_range=extend)
    assert w.sync().version_after == 2


def test_plaintext_hash_with_stray_bits_is_not_stored(synced: World) -> None:
    w = synced
    config = w.configured(token=w.tokens.isp_plain, plaintext=True)

    def respell(request: httpx.Request, response: httpx.Response) -> object:
        doc = response.json()
        doc["expressions"][0]["hash"] = stray_bits(doc["expressions"][0]["hash"])
        return doc

    w.proxy.tamper = replacing(plaintext=respell)
    outcome = w.sync(config=config)
    assert outcome.ok, outcome
    assert [reason for reason, _ in outcome.problems] == ["format_error"], outcome


def test_bundle_statement_respelled_and_resigned(synced: World) -> None:
    w = synced
    raw = w.call("GET", "/v1/lists/main/audit/bundle", w.tokens.auditor).content
    bundle = loads(raw)
    assert verify_bundle(bundle, [w.root_vkey]).ok
    doc = json.loads(raw)
    first = doc["statements"][0]
    respelled = _line("state", stray_bits)(text_of(first))
    doc["statements"][0] = sign_note(respelled, [_key_of_version_1(w)])
    report = verify_bundle(loads(json.dumps(doc)), [w.root_vkey])
    assert report.failure is not None
    assert report.failure.check == "statement.format", report.failure


def _key_of_version_1(w: World) -> SecretKey:
    return w.online_key()  # no rotation in this world: the open key signed version 1


def test_bundle_audit_hash_with_stray_bits(synced: World) -> None:
    w = synced
    raw = w.call("GET", "/v1/lists/main/audit/bundle?full=true", w.tokens.auditor_full).content
    doc = json.loads(raw)
    assert doc["audit_log"], "a full bundle has audit records"
    doc["audit_log"][0]["hash"] = stray_bits(doc["audit_log"][0]["hash"])
    with pytest.raises(BundleError):
        loads(json.dumps(doc))
