"""Hypothesis over every parser of untrusted input: only the documented errors, ever.

Each parser gets arbitrary input (text with surrogates and control
characters, raw bytes) and mutations of valid documents taken from a real
signed log (bytes flipped, ranges cut or duplicated, lines swapped, dropped,
repeated or replaced, garbage appended). Whatever the input, the parser
returns or raises one of the error types its docstring documents; anything
else (``IndexError``, ``KeyError``, ``UnicodeError``, a bare ``ValueError``)
is a bug, because callers only catch the documented types and an
unexpected one turns bad data from the network into a crash.

Where the format says "canonical spelling only", an accepted document must
also re-serialise to exactly the input (a parser that accepts two
spellings would let two different signed texts mean the same thing).

Parsers covered: URL canonicalisation and expressions
(:mod:`blocklist.canonical`, :func:`blocklist.entries.plan_entry`), the
encodings of :mod:`blocklist.encoding`, signed notes and vkeys
(:mod:`signer.note`), statements, checkpoints and keyrings, Merkle proof
and compact-range verification, keyring updates, the ISP client's trusted
state, and audit bundles (loading, then :func:`verify_bundle`, which must
never raise for bad content).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.memory_log import MemoryLog

from blocklist.canonical import canonicalize, expression, expressions, split_expression
from blocklist.checkpoint import Checkpoint
from blocklist.encoding import b64decode, hash_from_hex, parse_decimal, parse_time
from blocklist.entries import plan_entry
from blocklist.errors import BlocklistError, FormatError, InvalidEntry, InvalidURL, ProofError
from blocklist.keyring import Keyring, parse_vkey
from blocklist.merkle import (
    CompactRange,
    MemoryHashStore,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    tree_root,
    verify_consistency,
    verify_inclusion,
)
from blocklist.statement import Statement
from clients.audit.bundle import KIND_HASH_ONLY, Bundle, loads
from clients.audit.verify import verify_bundle
from clients.errors import BundleError, ClientError
from clients.isp.trusted import TrustedState
from signer.errors import KeyringError, NoteError
from signer.keyring import verify_keyring_update
from signer.note import Verifier, parse_note, verify_cosignature, verify_note

#: Examples per property in the CI run and under @slow.
CI_EXAMPLES = 300
SLOW_EXAMPLES = 5_000

NOW = datetime(2026, 11, 28, 12, 0, 0, tzinfo=UTC)
ORIGIN = "cleanfeed.invalid/fuzz"


# --- a real signed log to mutate --------------------------------------------------------


@dataclass(frozen=True)
class Corpus:
    log: MemoryLog
    keyring_note: str
    statement_notes: tuple[str, ...]
    checkpoint_note: str
    bundle_json: str
    #: Version 1 for the ISP client's snapshot path: checkpoint, proof, range, hashes.
    first_checkpoint: str
    first_proof: tuple[bytes, ...]
    first_range: tuple[bytes, ...]
    first_snapshot: bytes

    def text(self, note: str) -> str:
        return parse_note(note).text


def _h(i: int) -> bytes:
    return hashlib.sha256(f"example.com/fuzz/{i}".encode()).digest()


def _build_corpus() -> Corpus:
    log = MemoryLog(ORIGIN, now=NOW)
    log.publish([_h(i) for i in range(6)], now=NOW)
    first = (
        log.checkpoint(NOW),
        tuple(log.inclusion_proof(1, 1)),
        tuple(log.range_hashes(1)),
        b"".join(log.snapshot(1)),
    )
    log.publish([_h(6), _h(7)], [_h(0), _h(1)], now=NOW + timedelta(minutes=1))
    log.publish([_h(8)], [_h(2)], now=NOW + timedelta(minutes=2))
    checkpoint = log.checkpoint(NOW + timedelta(minutes=3))
    bundle = Bundle(
        kind=KIND_HASH_ONLY,
        list_name="fuzz",
        origin=ORIGIN,
        approvals_required=1,
        keyrings=tuple(log.keyrings),
        statements=tuple(log.statements),
        checkpoints=(checkpoint,),
    )
    return Corpus(
        log,
        log.keyrings[0],
        tuple(log.statements),
        checkpoint,
        json.dumps(bundle.to_json(), separators=(",", ":")),
        *first,
    )


CORPUS = _build_corpus()
CHECK_TIME = (NOW + timedelta(minutes=4)).timestamp()


# --- strategies --------------------------------------------------------------------------

#: Any code point, surrogates included (Hypothesis leaves them out by default).
any_char = st.one_of(
    st.characters(),
    st.characters(categories=["Cs"]),
    st.characters(categories=["Cc"]),
    st.sampled_from(["\n", "\t", "\r", "\x00", "\u2014", " ", "+", "%", "/", ".", "=", "\x85"]),
)
any_text = st.text(any_char, max_size=200)


@st.composite
def mutated(draw: st.DrawFn, valid: str) -> str:
    """``valid`` with one to three random edits."""
    text = valid
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(
            st.sampled_from(
                [
                    "flip",
                    "cut",
                    "insert",
                    "dup-range",
                    "swap-lines",
                    "drop-line",
                    "dup-line",
                    "replace-line",
                    "append",
                    "truncate",
                ]
            )
        )
        lines = text.split("\n")
        if kind == "flip" and text:
            raw = bytearray(text.encode("utf-8", "surrogatepass"))
            i = draw(st.integers(0, len(raw) - 1))
            raw[i] ^= 1 << draw(st.integers(0, 7))
            text = raw.decode("utf-8", "replace")
        elif kind == "cut" and text:
            i = draw(st.integers(0, len(text) - 1))
            j = draw(st.integers(i, min(len(text), i + 40)))
            text = text[:i] + text[j:]
        elif kind == "insert":
            i = draw(st.integers(0, len(text)))
            text = text[:i] + draw(any_text) + text[i:]
        elif kind == "dup-range" and text:
            i = draw(st.integers(0, len(text) - 1))
            j = draw(st.integers(i, min(len(text), i + 60)))
            text = text[:j] + text[i:j] + text[j:]
        elif kind == "swap-lines" and len(lines) > 1:
            i, j = draw(st.integers(0, len(lines) - 1)), draw(st.integers(0, len(lines) - 1))
            lines[i], lines[j] = lines[j], lines[i]
            text = "\n".join(lines)
        elif kind == "drop-line" and len(lines) > 1:
            del lines[draw(st.integers(0, len(lines) - 1))]
            text = "\n".join(lines)
        elif kind == "dup-line":
            i = draw(st.integers(0, len(lines) - 1))
            lines.insert(i, lines[i])
            text = "\n".join(lines)
        elif kind == "replace-line":
            lines[draw(st.integers(0, len(lines) - 1))] = draw(any_text)
            text = "\n".join(lines)
        elif kind == "append":
            text += draw(any_text)
        elif kind == "truncate":
            text = text[: draw(st.integers(0, len(text)))]
    return text


def docs(*valid: str) -> st.SearchStrategy[str]:
    """Arbitrary text, the valid documents themselves, and mutations of them."""
    originals = st.sampled_from(list(valid))
    return st.one_of(any_text, originals, originals.flatmap(mutated))


# URL pieces that reach the corners of canonicalisation (SB v4 rules).
schemes = st.sampled_from(["http", "https", "ftp", "HTTP", "Https", "mailto", "javascript", ""])
hosts = st.one_of(
    st.sampled_from(
        [
            "example.com",
            "EXAMPLE.org.",
            "..example.com..",
            "203.0.113.7",
            "0xcb.0x0.0x71.7",
            "3405803783",
            "0313.0.0161.07",
            "4294967296",
            "[2001:db8::1]",
            "[::ffff:192.0.2.1]",
            "[64:ff9b::c000:201]",
            "[2001:db8::g]",
            "xn--nxasmq6b.example",
            "bücher.example",
            "faß.example",
            "%31%39%32.0.2.1",
            "a..b",
            "",
            "[",
            "]",
            "%",
            "%zz.example",
            "\u0660.example",
            "\ufe0f.example",
            "xn--.example",
        ]
    ),
    st.text(any_char, max_size=30),
)
paths = st.one_of(
    st.sampled_from(
        [
            "/",
            "",
            "/a/./b/../c",
            "//a//b",
            "/%2e%2e/x",
            "/%25%32%35",
            "/a b\t\r\n",
            "/%",
            "/%%%",
            "/%ZZ",
            "/\u00e9",
            "/a?b#c",
            "/../../..",
        ]
    ),
    st.text(any_char, max_size=60).map(lambda p: "/" + p),
)


@st.composite
def urls(draw: st.DrawFn) -> str | bytes:
    scheme = draw(schemes)
    userinfo = draw(st.sampled_from(["", "user@", "user:pw@", "@", "a@b@"]))
    port = draw(st.sampled_from(["", ":80", ":", ":99999", ":x", ":-1"]))
    query = draw(st.sampled_from(["", "?", "?a=1&b=%20", "?#"]))
    fragment = draw(st.sampled_from(["", "#", "#frag", "#a#b"]))
    sep = draw(st.sampled_from(["://", ":", ":/", ":///", ""]))
    url = f"{scheme}{sep}{userinfo}{draw(hosts)}{port}{draw(paths)}{query}{fragment}"
    if draw(st.booleans()):
        return url
    raw = url.encode("utf-8", "surrogatepass")
    return raw + draw(st.binary(max_size=10))


# --- the harness -------------------------------------------------------------------------


def _fuzz(strategy: st.SearchStrategy[Any], prop: Callable[[Any], None], examples: int) -> None:
    @settings(
        max_examples=examples,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(strategy)
    def run(value: Any) -> None:
        prop(value)

    run()


# --- the properties ----------------------------------------------------------------------


def prop_canonicalize(url: str | bytes) -> None:
    try:
        canonical = canonicalize(url)
    except InvalidURL:
        return
    # The canonical form is a fixed point (SB v4 canonicalisation is idempotent).
    assert canonicalize(canonical) == canonical
    for scope in ("page", "prefix", "host"):
        expr = expression(url, scope)
        split_expression(expr)
    found = expressions(url)
    assert 1 <= len(found) <= 30
    assert len(set(found)) == len(found)


def prop_expression_scopes(args: tuple[str | bytes, str]) -> None:
    url, scope = args
    with contextlib.suppress(InvalidURL, InvalidEntry):
        expression(url, scope)


def prop_plan_entry(args: tuple[str | bytes, str, str | None, str | None]) -> None:
    url, scope, hosting, home = args
    try:
        planned = plan_entry(url, scope, hosting_country=hosting, home_country=home)
    except BlocklistError:
        return
    assert planned.hash == hashlib.sha256(planned.expression.encode("utf-8")).digest()


def prop_split_expression(text: str) -> None:
    try:
        host, rest = split_expression(text)
    except InvalidEntry:
        return
    assert host + rest == text


def prop_encodings(text: str) -> None:
    for parse in (
        lambda t: b64decode(t, what="fuzz"),
        lambda t: b64decode(t, length=32, what="fuzz"),
        lambda t: parse_decimal(t, what="fuzz"),
        lambda t: parse_time(t, what="fuzz"),
        hash_from_hex,
    ):
        with contextlib.suppress(FormatError):
            parse(text)


def prop_parse_note(data: str | bytes) -> None:
    try:
        note = parse_note(data)
    except NoteError:
        return
    assert note.text.endswith("\n")


def prop_verify_note(data: str) -> None:
    verifiers = [
        Verifier.from_vkey(CORPUS.log.online_key.vkey),
        Verifier.from_vkey(CORPUS.log.root_vkey),
    ]
    try:
        verified = verify_note(data, verifiers)
    except NoteError:
        return
    # Only the untouched text can carry a valid signature.
    assert verified.text in {CORPUS.text(n) for n in _NOTES}
    with contextlib.suppress(NoteError):
        verify_cosignature(data, verifiers[0])


def prop_vkey(text: str) -> None:
    with contextlib.suppress(FormatError):
        parse_vkey(text)
    with contextlib.suppress(FormatError):
        Verifier.from_vkey(text)


def _roundtrip(parse: Callable[[str], Any], text: str) -> None:
    try:
        parsed = parse(text)
    except FormatError:
        return
    # Canonical spelling only: what is accepted re-serialises to itself.
    assert parsed.to_text() == text


def prop_statement(text: str) -> None:
    _roundtrip(Statement.parse, text)


def prop_checkpoint(text: str) -> None:
    _roundtrip(Checkpoint.parse, text)


def prop_keyring(text: str) -> None:
    _roundtrip(Keyring.parse, text)


def prop_keyring_update(note: str) -> None:
    with contextlib.suppress(KeyringError, NoteError, FormatError):
        verify_keyring_update(note, held=None, pinned_roots=[CORPUS.log.root_vkey], now=NOW)


# Merkle proofs over a real 11-leaf tree.
_LEAVES = [leaf_hash(f"leaf {i}".encode()) for i in range(11)]
_STORE = MemoryHashStore()
for _leaf in _LEAVES:
    _STORE.append_leaf_hash(_leaf)
hashes = st.one_of(
    st.sampled_from(_LEAVES), st.binary(min_size=32, max_size=32), st.binary(max_size=40)
)
sizes = st.one_of(st.integers(-3, 14), st.integers(-(2**70), 2**70))


@st.composite
def inclusion_cases(draw: st.DrawFn) -> tuple[bytes, int, int, list[bytes], bytes]:
    size = draw(st.integers(1, 11))
    index = draw(st.integers(0, size - 1))
    proof = list(inclusion_proof(index, size, _STORE))
    root = tree_root(size, _STORE)
    leaf = _LEAVES[index]
    if draw(st.booleans()):  # tamper with one part
        which = draw(st.sampled_from(["leaf", "index", "size", "proof", "root"]))
        if which == "leaf":
            leaf = draw(hashes)
        elif which == "index":
            index = draw(sizes)
        elif which == "size":
            size = draw(sizes)
        elif which == "proof":
            proof = draw(st.lists(hashes, max_size=6))
        else:
            root = draw(hashes)
    return leaf, index, size, proof, root


def prop_inclusion(args: tuple[bytes, int, int, list[bytes], bytes]) -> None:
    leaf, index, size, proof, root = args
    honest = (
        isinstance(size, int)
        and 1 <= size <= 11
        and 0 <= index < size
        and leaf == _LEAVES[index]
        and root == tree_root(size, _STORE)
        and proof == list(inclusion_proof(index, size, _STORE))
    )
    try:
        verify_inclusion(leaf, index, size, proof, root)
    except ProofError:
        assert not honest, "a correct inclusion proof was refused"
        return


@st.composite
def consistency_cases(draw: st.DrawFn) -> tuple[int, int, bytes, bytes, list[bytes]]:
    n = draw(st.integers(0, 11))
    m = draw(st.integers(0, n))
    proof = list(consistency_proof(m, n, _STORE))
    root_m, root_n = tree_root(m, _STORE), tree_root(n, _STORE)
    if draw(st.booleans()):
        which = draw(st.sampled_from(["m", "n", "root_m", "root_n", "proof"]))
        if which == "m":
            m = draw(sizes)
        elif which == "n":
            n = draw(sizes)
        elif which == "root_m":
            root_m = draw(hashes)
        elif which == "root_n":
            root_n = draw(hashes)
        else:
            proof = draw(st.lists(hashes, max_size=6))
    return m, n, root_m, root_n, proof


def prop_consistency(args: tuple[int, int, bytes, bytes, list[bytes]]) -> None:
    m, n, root_m, root_n, proof = args
    with contextlib.suppress(ProofError):
        verify_consistency(m, n, root_m, root_n, proof)


def prop_compact_range(args: tuple[int, list[bytes], bytes]) -> None:
    size, range_hashes, root = args
    try:
        compact = CompactRange(size, range_hashes)
        compact.verify(root)
    except ProofError:
        pass


compact_cases = st.tuples(sizes, st.lists(hashes, max_size=6), hashes)


def prop_trusted_checkpoint(note: str) -> None:
    state = TrustedState([CORPUS.log.root_vkey])
    state.update_keyring(CORPUS.keyring_note, CHECK_TIME)
    with contextlib.suppress(ClientError):
        state.update_checkpoint(note, CHECK_TIME)


def _state_at_version_1() -> TrustedState:
    """A client that took the snapshot path at version 1, targeting the latest checkpoint."""
    state = TrustedState([CORPUS.log.root_vkey])
    state.update_keyring(CORPUS.keyring_note, CHECK_TIME)
    state.apply_snapshot(
        CORPUS.first_checkpoint,
        CORPUS.statement_notes[0],
        list(CORPUS.first_proof),
        list(CORPUS.first_range),
        CORPUS.first_snapshot,
        now=CHECK_TIME,
    )
    state.update_checkpoint(CORPUS.checkpoint_note, CHECK_TIME)
    return state


def prop_trusted_statements(notes: list[str]) -> None:
    state = _state_at_version_1()
    with contextlib.suppress(ClientError):
        state.apply_statements(notes)


def prop_bundle(data: str) -> None:
    try:
        bundle = loads(data)
    except BundleError:
        return
    # Loaded: verification reports, it never raises for bad content.
    report = verify_bundle(bundle, [CORPUS.log.root_vkey], now=NOW + timedelta(minutes=5))
    if data == CORPUS.bundle_json:
        assert report.ok, report.failure


@st.composite
def bundle_json_mutations(draw: st.DrawFn) -> str:
    """Structural edits of the bundle document: a field replaced, dropped or retyped."""
    doc = json.loads(CORPUS.bundle_json)
    key = draw(st.sampled_from(sorted(doc)))
    edit = draw(st.sampled_from(["drop", "replace", "list-edit"]))
    values = st.recursive(
        st.none() | st.booleans() | st.integers() | any_text,
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(any_text, inner, max_size=3),
        max_leaves=6,
    )
    if edit == "drop":
        del doc[key]
    elif edit == "replace":
        doc[key] = draw(values)
    elif isinstance(doc[key], list) and doc[key]:
        i = draw(st.integers(0, len(doc[key]) - 1))
        op = draw(st.sampled_from(["del", "dup", "mutate", "swap"]))
        if op == "del":
            del doc[key][i]
        elif op == "dup":
            doc[key].insert(i, doc[key][i])
        elif op == "swap":
            doc[key].reverse()
        elif isinstance(doc[key][i], str):
            doc[key][i] = draw(mutated(doc[key][i]))
    return json.dumps(doc, ensure_ascii=draw(st.booleans()))


# --- the tests ---------------------------------------------------------------------------

_STATEMENT_TEXTS = [CORPUS.text(n) for n in CORPUS.statement_notes]
_NOTES = [*CORPUS.statement_notes, CORPUS.checkpoint_note, CORPUS.keyring_note]

PROPERTIES: dict[str, tuple[st.SearchStrategy[Any], Callable[[Any], None]]] = {
    "canonicalize": (st.one_of(urls(), any_text, st.binary(max_size=80)), prop_canonicalize),
    "expression_scopes": (
        st.tuples(urls(), st.sampled_from(["page", "prefix", "host", "", "PAGE", "domain"])),
        prop_expression_scopes,
    ),
    "plan_entry": (
        st.tuples(
            urls(),
            st.sampled_from(["page", "prefix", "host", "x"]),
            st.sampled_from([None, "GB", "gb", "", "G", "GBR", "\u00c9\u00c9"]),
            st.sampled_from([None, "GB", "CA"]),
        ),
        prop_plan_entry,
    ),
    "split_expression": (any_text, prop_split_expression),
    "encodings": (
        docs("AAAA", "YWJj", "0", "12", "2026-11-28T12:00:00Z", "ab" * 32, "=" * 4),
        prop_encodings,
    ),
    "parse_note": (st.one_of(docs(*_NOTES), st.binary(max_size=300)), prop_parse_note),
    "verify_note": (docs(*_NOTES), prop_verify_note),
    "vkey": (docs(CORPUS.log.root_vkey, CORPUS.log.online_key.vkey), prop_vkey),
    "statement": (docs(*_STATEMENT_TEXTS), prop_statement),
    "checkpoint": (docs(CORPUS.text(CORPUS.checkpoint_note)), prop_checkpoint),
    "keyring": (docs(CORPUS.text(CORPUS.keyring_note)), prop_keyring),
    "keyring_update": (docs(CORPUS.keyring_note), prop_keyring_update),
    "inclusion_proof": (inclusion_cases(), prop_inclusion),
    "consistency_proof": (consistency_cases(), prop_consistency),
    "compact_range": (compact_cases, prop_compact_range),
    "trusted_checkpoint": (docs(CORPUS.checkpoint_note), prop_trusted_checkpoint),
    "trusted_statements": (
        st.one_of(
            st.lists(docs(*CORPUS.statement_notes), min_size=1, max_size=4),
            st.permutations(list(CORPUS.statement_notes)),
        ),
        prop_trusted_statements,
    ),
    "bundle": (st.one_of(docs(CORPUS.bundle_json), bundle_json_mutations()), prop_bundle),
}


def test_the_corpus_is_valid() -> None:
    """The unmutated documents pass every parser (else the mutations prove nothing)."""
    for text in _STATEMENT_TEXTS:
        prop_statement(text)
        assert Statement.parse(text).to_text() == text
    assert Checkpoint.parse(CORPUS.text(CORPUS.checkpoint_note)).to_text()
    assert Keyring.parse(CORPUS.text(CORPUS.keyring_note)).to_text()
    verify_keyring_update(
        CORPUS.keyring_note, held=None, pinned_roots=[CORPUS.log.root_vkey], now=NOW
    )
    state = _state_at_version_1()
    assert state.apply_statements(CORPUS.statement_notes[1:]) == len(CORPUS.statement_notes) - 1
    prop_bundle(CORPUS.bundle_json)


@pytest.mark.parametrize("name", sorted(PROPERTIES))
def test_parser_raises_only_documented_errors(name: str) -> None:
    strategy, prop = PROPERTIES[name]
    _fuzz(strategy, prop, CI_EXAMPLES)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(PROPERTIES))
def test_parser_raises_only_documented_errors_long(name: str) -> None:
    strategy, prop = PROPERTIES[name]
    _fuzz(strategy, prop, SLOW_EXAMPLES)
