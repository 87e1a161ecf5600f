"""An independent witness: ``cleanfeed audit witness``.

A witness (c2sp.org/tlog-witness, in spirit) remembers the latest checkpoint
it cosigned and cosigns a new one only if the log *extends* it. ISPs that
require a quorum of witness cosignatures (DESIGN.md, ISP sync step 8) then
cannot be shown a split view the witnesses have not seen, and an auditor's
witness turns the log's promise "append only" into something checked from
outside the operator.

One run (:meth:`Witness.run_once`):

1. walk the list's keyrings from the held one (or from serial 1 with the
   pinned root keys) with :func:`signer.keyring.verify_keyring_chain`: the
   latest must not be expired;
2. fetch the checkpoint; it must be signed by a key with an open range in
   that keyring, carry that key's timestamped cosignature (not more than
   5 minutes in the future), and have the list's origin;
3. against the held checkpoint: a smaller tree is a rollback (refused); the
   same size with another root, or a larger tree whose consistency proof
   (``GET …/proofs/consistency``) does not verify, is equivocation: refused,
   and both notes are saved as evidence next to the state file;
4. cosign: a type 0x04 line (c2sp.org/tlog-cosignature) with the witness's
   own key over the checkpoint text and the current time, added to the
   note; the state file is updated atomically; optionally the line is
   ``POST``ed to ``/v1/lists/{list}/checkpoint/cosignatures``.

The first run trusts the first checkpoint it sees (after verifying its
signature): a witness protects from the moment it starts. The decision
logic (:func:`check_update`, :func:`cosign`) is pure; the network goes
through an injectable :class:`httpx.Client`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote

import httpx

from blocklist.checkpoint import Checkpoint
from blocklist.encoding import b64encode
from blocklist.errors import FormatError, ProofError
from blocklist.keyring import SIG_TYPE_COSIGNATURE_V1, Keyring, format_vkey
from blocklist.merkle import verify_consistency
from clients.common.fetcher import Fetcher
from clients.common.files import write_atomic
from clients.common.http import deadline, raise_for_status
from clients.common.limits import Limits, Timeouts
from clients.errors import CosignRefused, MalformedData, NetworkError, Timeout, WitnessStateError
from signer.errors import KeyringError, NoteError
from signer.keyring import (
    check_not_expired,
    verifiers_for_checkpoint,
    verify_keyring_chain,
    verify_keyring_update,
)
from signer.note import (
    NoteSigner,
    cosigner_key_id,
    parse_note,
    sign_note,
    verify_cosignature,
    verify_note,
)

__all__ = [
    "EVIDENCE_FORMAT",
    "STATE_FORMAT",
    "CosignResult",
    "Witness",
    "WitnessState",
    "check_update",
    "cosign",
    "cosigner_vkey",
    "load_state",
    "save_state",
]

#: ``format`` of the witness state file.
STATE_FORMAT: Final = "cleanfeed-witness-state/v1"
#: ``format`` of an equivocation evidence file.
EVIDENCE_FORMAT: Final = "cleanfeed-equivocation/v1"

#: Largest state file read: a keyring note and a checkpoint note are a few
#: KB; more is not a state file (a wrong path).
MAX_STATE_BYTES: Final = 1024 * 1024

#: A log timestamp further in the future than this is refused (DESIGN.md:
#: clients treat more than 5 minutes as stale, a pre-signed "fresh" note).
MAX_FUTURE_SKEW: Final = 5 * 60

#: Most keyrings walked in one run (a rotation a day for decades); bounds
#: the work a hostile server can cause.
MAX_KEYRING_WALK: Final = Limits().keyring_walk


@dataclass(frozen=True, slots=True)
class WitnessState:
    """What the witness remembers between runs."""

    origin: str
    keyring: str
    checkpoint: str | None

    def to_json(self) -> dict[str, Any]:
        """The state as the JSON object of its file."""
        return {
            "format": STATE_FORMAT,
            "origin": self.origin,
            "keyring": self.keyring,
            "checkpoint": self.checkpoint,
        }


def load_state(path: Path) -> WitnessState | None:
    """Read the state file; None when it does not exist (first run).

    Raises:
        WitnessStateError: unreadable, oversized or malformed.
    """
    try:
        with path.open("rb") as f:
            raw = f.read(MAX_STATE_BYTES + 1)
    except FileNotFoundError:
        return None
    except OSError as e:
        raise WitnessStateError(f"cannot read witness state {path}: {e.strerror}") from e
    if len(raw) > MAX_STATE_BYTES:
        raise WitnessStateError(f"witness state {path} is too large")
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as e:
        raise WitnessStateError(f"witness state {path} is not JSON") from e
    ok = (
        isinstance(doc, dict)
        and doc.get("format") == STATE_FORMAT
        and isinstance(doc.get("origin"), str)
        and isinstance(doc.get("keyring"), str)
        and (doc.get("checkpoint") is None or isinstance(doc.get("checkpoint"), str))
    )
    if not ok:
        raise WitnessStateError(f"witness state {path} is not a {STATE_FORMAT} document")
    return WitnessState(doc["origin"], doc["keyring"], doc["checkpoint"])


def save_state(path: Path, state: WitnessState) -> None:
    """Write the state file atomically.

    Raises:
        OSError: it cannot be written (the previous one is untouched).
    """
    data = json.dumps(state.to_json(), indent=2, sort_keys=True) + "\n"
    write_atomic(path, data.encode("utf-8"), mode=0o644)


# --- pure decision logic --------------------------------------------------------


def _held_checkpoint(note: str | None) -> Checkpoint | None:
    if note is None:
        return None
    try:
        return Checkpoint.parse(parse_note(note).text)
    except (NoteError, FormatError) as e:
        raise WitnessStateError(f"the held checkpoint does not parse: {e}") from e


def check_update(
    held_note: str | None,
    new_note: str,
    keyring: Keyring,
    proof: Sequence[bytes],
    now: float,
) -> Checkpoint:
    """Decide whether ``new_note`` may be cosigned after ``held_note``.

    Args:
        held_note: the checkpoint cosigned last (None on the first run).
        new_note: the checkpoint the log serves now.
        keyring: the verified keyring in force.
        proof: the RFC 9162 consistency proof from the held size to the new
            one (ignored when not needed).
        now: the witness's clock, POSIX seconds.

    Returns:
        The new checkpoint.

    Raises:
        CosignRefused: ``detail`` is ``signature``, ``format``, ``origin``,
            ``future``, ``rollback`` or ``equivocation``.
        WitnessStateError: the held checkpoint does not parse.
    """
    try:
        verified = verify_note(new_note, verifiers_for_checkpoint(keyring))
    except (NoteError, KeyringError) as e:
        raise CosignRefused(
            f"checkpoint not signed by an open-range key of keyring {keyring.serial}: {e}",
            detail="signature",
        ) from e
    try:
        new = Checkpoint.parse(verified.text)
    except FormatError as e:
        raise CosignRefused(f"checkpoint does not parse: {e}", detail="format") from e
    if new.origin != keyring.origin:
        raise CosignRefused(
            f"checkpoint of origin {new.origin!r}, expected {keyring.origin!r}", detail="origin"
        )
    try:
        stamp = verify_cosignature(new_note, verified.verifiers[0])
    except NoteError as e:
        raise CosignRefused(
            f"checkpoint has no valid log timestamp: {e}", detail="signature"
        ) from e
    if stamp > now + MAX_FUTURE_SKEW:
        raise CosignRefused(
            f"checkpoint timestamped {stamp}, more than {MAX_FUTURE_SKEW} s in the future",
            detail="future",
        )
    held = _held_checkpoint(held_note)
    if held is None:
        return new  # trust on first use: protection starts now
    if new.size < held.size:
        raise CosignRefused(
            f"rollback: the log shows size {new.size}, the witness cosigned {held.size}",
            detail="rollback",
        )
    try:
        verify_consistency(held.size, new.size, held.root, new.root, proof)
    except ProofError as e:
        raise CosignRefused(
            f"equivocation: size {new.size} is not consistent with the cosigned size "
            f"{held.size}: {e}",
            detail="equivocation",
        ) from e
    return new


def cosign(note: str, key: NoteSigner, timestamp: int) -> tuple[str, str]:
    """Add the witness's timestamped cosignature (type 0x04) to a checkpoint note.

    c2sp.org/tlog-cosignature: the key signs ``cosignature/v1\\ntime <t>\\n``
    followed by the checkpoint text; the existing signature lines are kept.

    Returns:
        The cosigned note and the witness's signature line (no newline).

    Raises:
        MalformedNote: the note does not parse, or already holds a line by
            this key that would clash.
    """
    parsed = parse_note(note)
    signed = sign_note(
        parsed.text, [], cosigners=[key], timestamp=timestamp, existing=parsed.signatures
    )
    wanted = cosigner_key_id(key.name, key.public_key)
    line = next(
        s.line for s in parse_note(signed).signatures if s.name == key.name and s.key_id == wanted
    )
    return signed, line.rstrip("\n")


# --- the run ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CosignResult:
    """One cosigned checkpoint."""

    origin: str
    size: int
    root: bytes
    old_size: int | None
    timestamp: int
    line: str
    note: str
    posted: bool

    def to_json(self) -> dict[str, Any]:
        """The result as a JSON object (the ``--json`` output of ``witness``)."""
        return {
            "status": "cosigned",
            "origin": self.origin,
            "size": self.size,
            "root": b64encode(self.root),
            "old_size": self.old_size,
            "timestamp": self.timestamp,
            "cosignature": self.line,
            "note": self.note,
            "posted": self.posted,
        }


class Witness:
    """Runs the witness against one list of one server.

    Args:
        client: the HTTP client (tests: a transport on the real app).
        server: the server's base URL.
        list_name: the list.
        token: the token that reads the keyring, checkpoint and proofs
            (the ISP endpoints: an ``isp`` token of the list, or ``None``
            for a public list).
        post_token: the token that posts cosignatures (an ``auditor`` token
            of the list); default: ``token``.
        key: the witness's own signing key (``signer.keys.SecretKey``).
        root_vkeys: the list's pinned root vkeys.
        state_path: the state file (created on the first run).
        evidence_dir: where equivocation evidence goes (default: beside the
            state file).
        clock: POSIX seconds (injectable for tests).
    """

    def __init__(
        self,
        client: httpx.Client,
        *,
        server: str,
        list_name: str,
        token: str | None,
        key: NoteSigner,
        root_vkeys: Sequence[str],
        state_path: Path,
        evidence_dir: Path | None = None,
        clock: Callable[[], float] = time.time,
        post_token: str | None = None,
    ) -> None:
        self._client = client
        self._post_token = post_token if post_token is not None else token
        self._server = server.rstrip("/")
        self._list = list_name
        self._token = token
        self._key = key
        self._roots = list(root_vkeys)
        self.state_path = Path(state_path)
        self.evidence_dir = (
            Path(evidence_dir) if evidence_dir is not None else self.state_path.parent
        )
        self._clock = clock
        self._fetcher = Fetcher(client, server=server, list_name=list_name, token=token)

    def _keyring(
        self, held_note: str | None, origin: str | None, now: float
    ) -> tuple[Keyring, str]:
        """Walk the keyrings from the held one; return the latest and its note."""
        when = datetime.fromtimestamp(now, tz=UTC)
        held = None
        if held_note is not None:
            try:
                held = Keyring.parse(parse_note(held_note).text)
            except (NoteError, FormatError) as e:
                raise WitnessStateError(f"the held keyring does not parse: {e}") from e
        latest_note = self._fetcher.keyring()
        try:
            # Only the serial is read before verification, to know what to walk.
            latest = Keyring.parse(parse_note(latest_note).text)
        except (NoteError, FormatError) as e:
            raise CosignRefused(f"the served keyring does not parse: {e}", detail="keyring") from e
        try:
            if held is not None and held_note is not None and latest.serial <= held.serial:
                if latest.serial < held.serial:
                    raise CosignRefused(
                        f"keyring rollback: serial {latest.serial} served, {held.serial} held",
                        detail="rollback",
                    )
                if latest == held:
                    check_not_expired(held, when)
                    return held, held_note
                # Same serial, other content: verify_keyring_update says
                # "equivocation" only when the roots really signed it.
                try:
                    verify_keyring_update(
                        latest_note, held=held, pinned_roots=self._roots, now=when, origin=origin
                    )
                except KeyringError as e:
                    if e.reason == "equivocation":
                        evidence = self._evidence("keyring", held_note, latest_note, str(e))
                        raise CosignRefused(
                            f"keyring equivocation: {e}", detail="equivocation", evidence=evidence
                        ) from e
                    raise
                raise CosignRefused("keyring serial did not advance", detail="keyring")
            start = 1 if held is None else held.serial + 1
            if latest.serial - start + 1 > MAX_KEYRING_WALK:
                raise CosignRefused("too many keyrings to walk", detail="keyring")
            notes = [self._fetcher.keyring(serial) for serial in range(start, latest.serial)]
            notes.append(latest_note)
            keyring = verify_keyring_chain(notes, self._roots, when, held=held, origin=origin)
        except KeyringError as e:
            raise CosignRefused(f"keyring rejected: {e}", detail="keyring") from e
        return keyring, notes[-1]

    def _evidence(self, kind: str, held: str, new: str, detail: str) -> str:
        self.evidence_dir.mkdir(parents=True, exist_ok=True)
        now = self._clock()
        path = self.evidence_dir / f"{self.state_path.stem}-{kind}-equivocation-{int(now)}.json"
        doc = {
            "format": EVIDENCE_FORMAT,
            "kind": kind,
            "list": self._list,
            "server": self._server,
            "held_note": held,
            "new_note": new,
            "detail": detail,
            "observed_at": datetime.fromtimestamp(now, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        write_atomic(path, (json.dumps(doc, indent=2) + "\n").encode("utf-8"), mode=0o644)
        return str(path)

    def run_once(self, *, post: bool = False) -> CosignResult:
        """Verify the current checkpoint against the held one and cosign it.

        Raises:
            CosignRefused: rollback, equivocation (evidence saved, its path in
                ``evidence``), a bad signature, keyring or origin.
            WitnessStateError: the state file is unusable or for another list.
            TransportError, RequestRejected, MalformedData, Oversize: the
                server could not be asked, refused, or sent garbage.
            OSError: the state file cannot be written.
        """
        now = self._clock()
        state = load_state(self.state_path)
        origin = state.origin if state is not None else None
        keyring, keyring_note = self._keyring(state.keyring if state else None, origin, now)
        if state is not None and keyring.origin != state.origin:
            raise WitnessStateError(
                f"the state file is for {state.origin!r}, the server's list is {keyring.origin!r}"
            )
        note = self._fetcher.checkpoint().note
        if note is None:  # pragma: no cover - no If-None-Match was sent
            raise MalformedData("the server answered 304 to an unconditional request")
        held_note = state.checkpoint if state is not None else None
        held = _held_checkpoint(held_note)
        proof: list[bytes] = []
        new_size = self._size_of(note)
        if held is not None and 0 < held.size < new_size:
            proof = self._fetcher.consistency_proof(held.size, new_size)
        try:
            checkpoint = check_update(held_note, note, keyring, proof, now)
        except CosignRefused as e:
            if e.detail == "equivocation" and held_note is not None:
                e.evidence = self._evidence("checkpoint", held_note, note, str(e))
            raise
        timestamp = int(now)
        signed, line = cosign(note, self._key, timestamp)
        save_state(self.state_path, WitnessState(keyring.origin, keyring_note, note))
        posted = False
        if post:
            self._post(line)
            posted = True
        return CosignResult(
            origin=keyring.origin,
            size=checkpoint.size,
            root=checkpoint.root,
            old_size=None if held is None else held.size,
            timestamp=timestamp,
            line=line,
            note=signed,
            posted=posted,
        )

    @staticmethod
    def _size_of(note: str) -> int:
        try:
            return Checkpoint.parse(parse_note(note).text).size
        except (NoteError, FormatError) as e:
            raise CosignRefused(f"checkpoint does not parse: {e}", detail="format") from e

    def _post(self, line: str) -> None:
        url = f"{self._server}/v1/lists/{quote(self._list, safe='')}/checkpoint/cosignatures"
        token = self._post_token
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        vkey = cosigner_vkey(self._key)
        try:
            # The same overall deadline as every read (clients.common.http).
            with deadline(Timeouts().deadline):
                r = self._client.post(url, json={"vkey": vkey, "signature": line}, headers=headers)
        except httpx.TimeoutException as e:
            raise Timeout(f"timed out posting the cosignature: {type(e).__name__}") from e
        except httpx.RequestError as e:
            raise NetworkError(f"network error posting the cosignature: {e}") from e
        raise_for_status(r)


def cosigner_vkey(key: NoteSigner) -> str:
    """The type-0x04 vkey of a witness key: what ISPs configure as a witness."""
    return format_vkey(key.name, SIG_TYPE_COSIGNATURE_V1, key.public_key)
