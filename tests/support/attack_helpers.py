"""The attack suite's world: the real service, the real ISP client, a hostile proxy.

:class:`World` builds a deployment exactly as ``cleanfeed init`` does
(``api_testing.make_deployment``: lists ``main`` and ``other``, a token per
role), runs the real app (``api.app.create_app``) in-process behind an ASGI
bridge, and runs the real ISP client (``clients.isp.sync.Syncer``) against
it through :class:`isp_helpers.TamperTransport`, a malicious proxy that can
replace any response. Nothing under test is mocked: the attacker only
controls bytes on the wire and, where a test says so, keys it stole.

:class:`Forger` is what an attacker holding a signing key (a compromised
online key, or a buggy signer) can produce: statements and checkpoints that
extend the real log, signed with whatever key and text the test asks for.

:meth:`World.assert_rejected` is the one definition of "rejected" used by
every test (issue 7): the outcome says why (a stable reason), the client's
list, checkpoint, keyrings and exports are byte-for-byte what they were,
and the outcome counter of that reason went up by exactly one.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from blocklist.checkpoint import Checkpoint
from blocklist.encoding import b64decode
from blocklist.keyring import Keyring
from blocklist.merkle import CompactRange, leaf_hash
from blocklist.statedigest import StateDigest
from blocklist.statement import Statement
from clients.isp.config import ExportSpec, IspConfig
from clients.isp.store import DB_NAME, StateStore
from clients.isp.sync import Syncer, SyncOutcome
from signer.datadir import online_key_path, root_key_path
from signer.keys import SecretKey, load_key
from signer.log import checkpoint_timestamp, sign_checkpoint
from signer.note import (
    NoteSigner,
    ed25519_key_id,
    parse_note,
    sign_note,
    verify_cosignature,
)
from support.api_testing import MAIN, Deployment, close_deployment, make_deployment
from support.asgi_bridge import ASGIBridge
from support.isp_helpers import TamperTransport

#: Base URL of the in-process service (no socket is opened).
BASE = "https://cleanfeed.test"

#: A marker in every test URL's host and path: a leak of any spelling of a
#: listed URL (plain, percent-escaped, punycode, JSON-escaped) contains it.
MARKER = "zqxvjkw"


def sha(text: str) -> bytes:
    """SHA-256 of an expression (its entry hash)."""
    return hashlib.sha256(text.encode("utf-8")).digest()


def text_of(note: str) -> str:
    """The signed text of a note."""
    return parse_note(note).text


def statement_of(note: str) -> Statement:
    """The parsed statement of a note."""
    return Statement.parse(text_of(note))


def checkpoint_of(note: str) -> Checkpoint:
    """The parsed checkpoint of a note."""
    return Checkpoint.parse(text_of(note))


def timestamp_of(note: str, key: SecretKey) -> int:
    """The 0x04 timestamp ``key`` put on a checkpoint note."""
    return verify_cosignature(note, key.verifier)


Tamper = Callable[[httpx.Request, httpx.Response], httpx.Response]
Replacement = str | bytes | httpx.Response | Callable[[httpx.Request, httpx.Response], Any]


def replacing(**by_suffix: Replacement) -> Tamper:
    """A proxy that answers requests whose path ends in a key with its value.

    Keys are path suffixes with ``_`` for ``/`` (``checkpoint``,
    ``statements``, ``statements_3``, ``proofs_range``...). A value is a
    text or bytes body (200), a ready response, or a function of the request
    and the real response returning any of those (or the real response).
    """
    table = {"/" + k.replace("_", "/"): v for k, v in by_suffix.items()}

    def tamper(request: httpx.Request, response: httpx.Response) -> httpx.Response:
        for suffix, value in table.items():
            if request.url.path.endswith(suffix):
                out = value(request, response) if callable(value) else value
                return as_response(out)
        return response

    return tamper


def as_response(value: Any) -> httpx.Response:
    """A body (text, bytes, JSON document) or a response, as a response."""
    if isinstance(value, httpx.Response):
        return value
    if isinstance(value, bytes):
        return httpx.Response(200, content=value)
    if isinstance(value, str):
        return httpx.Response(200, text=value)
    return httpx.Response(200, content=json.dumps(value).encode())


@dataclass(frozen=True)
class Held:
    """Everything observable about the ISP client's state directory."""

    fingerprint: bytes
    version: int | None
    checkpoint_note: str | None
    keyrings: tuple[str, ...]
    exports: Mapping[str, bytes | None]
    counters: Mapping[str, int]
    evidence: int


class World:
    """A deployment, the real app in-process, and an ISP client behind a proxy."""

    def __init__(self, tmp_path: Path, **settings: Any) -> None:
        self.tmp = tmp_path
        self.d: Deployment = make_deployment(tmp_path, **settings)
        self.tokens = self.d.tokens
        self.origin = self.d.init.origin
        self.root_vkey = self.d.init.root_vkey
        self.keys_dir = self.d.data_dir / "keys"
        self.bridge = ASGIBridge(self.d.app)
        self.proxy = TamperTransport(self.bridge)
        self.http = httpx.Client(transport=self.bridge, base_url=BASE)
        self.state_dir = tmp_path / "isp-state"
        self.export_path = tmp_path / "exports" / "hashes.txt"
        self.export_path.parent.mkdir()
        self.config = IspConfig(
            server=BASE,
            list=MAIN,
            token=self.tokens.isp,
            root_keys=(self.root_vkey,),
            origin=self.origin,
            state_dir=self.state_dir,
            lock_timeout=5.0,
            exports=(ExportSpec("hashes", self.export_path),),
        )
        self.entries: dict[str, int] = {}

    def close(self) -> None:
        """Stop the app and dispose its engines."""
        self.http.close()
        self.bridge.close()
        close_deployment(self.d)

    # --- test data -------------------------------------------------------------

    @staticmethod
    def url(label: str) -> str:
        """A reserved-name URL carrying :data:`MARKER` in its host and path."""
        return f"http://{MARKER}-{label}.example.org/{MARKER}/{label}.html"

    # --- analysts ---------------------------------------------------------------

    def call(
        self, method: str, path: str, token: str | None = None, **kwargs: Any
    ) -> httpx.Response:
        """One request to the app (not through the proxy)."""
        headers = dict(kwargs.pop("headers", None) or {})
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return self.http.request(method, path, headers=headers, **kwargs)

    def _post(self, path: str, token: str, body: Any = None) -> dict[str, Any]:
        r = self.call("POST", f"/v1/lists/{MAIN}{path}", token, json=body or {})
        assert r.status_code in (200, 201), r.text
        out: dict[str, Any] = r.json()
        return out

    def add(self, url: str, scope: str = "page") -> int:
        """Add ``url`` as alice and approve it as bob; return the entry id."""
        entry = self._post(
            "/entries", self.tokens.alice, {"url": url, "scope": scope, "reason": "r"}
        )
        self._post(f"/entries/{entry['id']}/approve", self.tokens.bob)
        self.entries[url] = int(entry["id"])
        return int(entry["id"])

    def expire(self, url: str) -> None:
        """Expire the entry of ``url`` now."""
        self._post(f"/entries/{self.entries[url]}/expire", self.tokens.alice)

    def publish(self) -> int:
        """Publish now; return the version after."""
        return int(self._post("/publish", self.tokens.alice)["version"])

    # --- what the real app serves to an ISP ---------------------------------------

    def get(self, path: str, **params: Any) -> httpx.Response:
        """GET an ISP document of list main with the ISP token (not through the proxy)."""
        r = self.call("GET", f"/v1/lists/{MAIN}{path}", self.tokens.isp, params=params)
        assert r.status_code == 200, r.text
        return r

    def checkpoint_note(self) -> str:
        """The checkpoint the app serves now."""
        return self.get("/checkpoint").text

    def statement_note(self, n: int) -> str:
        """Statement ``n`` as the app serves it."""
        return self.get(f"/statements/{n}").text

    def statements_page(self, since: int) -> dict[str, Any]:
        """One statements page as the app serves it."""
        doc: dict[str, Any] = self.get("/statements", since=since).json()
        return doc

    def keyring_note(self, serial: int | None = None) -> str:
        """The latest keyring, or serial ``serial``."""
        if serial is None:
            return self.get("/keyring").text
        return self.get("/keyring", serial=serial).text

    def keyring(self) -> Keyring:
        """The latest keyring, parsed."""
        return Keyring.parse(text_of(self.keyring_note()))

    def snapshot(self, version: int) -> bytes:
        """The raw snapshot at ``version``."""
        return self.get("/snapshot", version=version).content

    def range_hashes(self, size: int) -> list[bytes]:
        """The compact range at ``size``."""
        doc = self.get("/proofs/range", size=size).json()
        return [b64decode(h, length=32) for h in doc["hashes"]]

    # --- keys an attacker may have stolen ---------------------------------------

    def online_key(self) -> SecretKey:
        """The online key the latest keyring has open (a compromised online key)."""
        (vkey,) = self.keyring().open_keys()
        return load_key(online_key_path(self.keys_dir, MAIN, vkey))

    def root_key(self) -> SecretKey:
        """The embedded root key (a compromised root key: out of scope but a test tool)."""
        return load_key(root_key_path(self.keys_dir, MAIN))

    # --- the ISP client -------------------------------------------------------------

    def sync(
        self,
        *,
        at: float | None = None,
        offset: float = 0.0,
        config: IspConfig | None = None,
        http: httpx.BaseTransport | None = None,
        client: httpx.Client | None = None,
    ) -> SyncOutcome:
        """One ``sync_once`` of the real client through the proxy.

        Args:
            at: the client's clock (POSIX seconds); default now + ``offset``.
            offset: seconds added to the real clock.
            config: another configuration (default :attr:`config`).
            http: another transport (default the tampering proxy).
            client: a ready HTTP client (e.g. the production one on loopback).
        """

        def clock() -> float:
            return at if at is not None else time.time() + offset

        if client is not None:
            return Syncer(config or self.config, client, clock=clock).sync_once()
        with httpx.Client(transport=http or self.proxy) as own:
            return Syncer(config or self.config, own, clock=clock).sync_once()

    def configured(self, **changes: Any) -> IspConfig:
        """The client configuration with some fields changed."""
        return replace(self.config, **changes)

    def held(self) -> Held:
        """What the client holds now."""
        exports = {
            p.name: (p.read_bytes() if p.exists() else None)
            for p in sorted(self.export_path.parent.iterdir())
        }
        if not (self.state_dir / DB_NAME).exists():
            # What an empty state directory holds (StateStore.fingerprint of nothing).
            return Held(hashlib.sha256().digest(), None, None, (), exports, {}, 0)
        with StateStore(self.state_dir, create=False) as store:
            record = store.load_record()
            return Held(
                fingerprint=store.fingerprint(),
                version=None if record is None else record.version,
                checkpoint_note=None if record is None else record.checkpoint_note,
                keyrings=tuple(store.keyring_notes()),
                exports=exports,
                counters=dict(store.counters()),
                evidence=len(store.evidence()),
            )

    def hashes(self) -> frozenset[bytes]:
        """The hashes the client holds."""
        with StateStore(self.state_dir) as store:
            return frozenset(store.iter_hashes())

    def evidence(self) -> list[Any]:
        """The equivocation evidence the client kept."""
        with StateStore(self.state_dir) as store:
            return store.evidence()

    def assert_rejected(
        self, outcome: SyncOutcome, reason: str, before: Held, *, status: str = "rejected"
    ) -> None:
        """Issue 7's "rejected": says why, keeps the last good state, counts it.

        ``status`` is ``rejected`` for bad data from the server and ``failed``
        for transport or access problems (python-tuf's split); either way the
        last good list stays in force.
        """
        assert outcome.status == status, outcome
        assert outcome.reason == reason, outcome
        assert outcome.message, outcome
        assert outcome.version_after == outcome.version_before == (before.version or 0)
        after = self.held()
        assert after.fingerprint == before.fingerprint, "the held list or checkpoint changed"
        assert after.version == before.version
        assert after.checkpoint_note == before.checkpoint_note
        assert after.keyrings == before.keyrings
        assert after.exports == before.exports, "an export was rewritten"
        expected = dict(before.counters)
        expected[reason] = expected.get(reason, 0) + 1
        assert after.counters == expected, (after.counters, expected)
        with StateStore(self.state_dir, create=False) as store:
            st = store.status()
        assert st.last_error_reason == reason
        assert st.last_error


class Forger:
    """What a holder of a signing key can make: the real log's next versions.

    Reads the real log's tip from the app (statement N, the snapshot and the
    compact range at N) so forged statements chain from it exactly as the
    real signer's would; every field can be forced.
    """

    def __init__(self, world: World, key: NoteSigner | None = None) -> None:
        self.world = world
        self.key = key if key is not None else world.online_key()
        self.version = int(checkpoint_of(world.checkpoint_note()).size)
        tip = statement_of(world.statement_note(self.version))
        self.tip = tip
        self.tip_text_hash = hashlib.sha256(
            text_of(world.statement_note(self.version)).encode()
        ).digest()
        raw = world.snapshot(self.version)
        self.members = [raw[i : i + 32] for i in range(0, len(raw), 32)]
        self.digest = StateDigest.from_hashes(self.members)
        self.range = CompactRange(self.version, world.range_hashes(self.version))

    def statement(
        self,
        adds: Sequence[bytes] = (),
        removes: Sequence[bytes] = (),
        *,
        key: NoteSigner | None = None,
        text: Callable[[str], str] | None = None,
        **fields: Any,
    ) -> str:
        """Statement N+1 after the real tip, signed (``fields`` override any line)."""
        digest = self.digest.copy()
        digest.update(sorted(adds), sorted(removes))
        values: dict[str, Any] = {
            "origin": self.tip.origin,
            "version": self.version + 1,
            "previous": self.tip_text_hash,
            "keyring": self.tip.keyring,
            "audit": self.tip.audit,
            "state": digest.digest(),
            "count": self.tip.count + len(adds) - len(removes),
            "time": datetime.now(UTC).replace(microsecond=0),
            "adds": tuple(sorted(adds)),
            "removes": tuple(sorted(removes)),
        }
        values.update(fields)
        body = Statement._unchecked(**values).to_text()
        if text is not None:
            body = text(body)
        return sign_note(body, [key or self.key])

    def checkpoint(
        self,
        statements: Sequence[str] = (),
        *,
        key: NoteSigner | None = None,
        when: datetime | None = None,
        origin: str | None = None,
        size: int | None = None,
        root: bytes | None = None,
        text: Callable[[str], str] | None = None,
        texts: Sequence[str] = (),
    ) -> str:
        """A checkpoint over the real log extended by ``statements`` (leaves), signed.

        ``texts`` are further leaves given as statement texts (for notes the
        strict parser would not even open). ``text`` edits the checkpoint
        text before it is signed (0x01 and 0x04 lines, as the real signer
        signs).
        """
        rng = self.range.copy()
        for leaf in [text_of(note) for note in statements] + list(texts):
            rng.append(leaf_hash(leaf.encode("utf-8")))
        when = when or datetime.now(UTC)
        signer = key or self.key
        body = Checkpoint(
            origin or self.world.origin,
            rng.size if size is None else size,
            rng.root() if root is None else root,
        ).to_text()
        if text is None:
            return sign_checkpoint(
                origin or self.world.origin,
                rng.size if size is None else size,
                rng.root() if root is None else root,
                signer,
                when,
            )
        return sign_note(
            text(body), [signer], cosigners=[signer], timestamp=checkpoint_timestamp(when)
        )


def raw_note(text: str, key: NoteSigner) -> str:
    """A note signed over exactly ``text``, without :func:`sign_note`'s checks.

    What a buggy signer could emit: CR, control characters or any other
    bytes the strict parser must refuse although the signature verifies.
    """
    signature = key.sign(text.encode("utf-8"))
    blob = base64.b64encode(ed25519_key_id(key.name, key.public_key) + signature).decode()
    return f"{text}\n\u2014 {key.name} {blob}\n"


def stray_bits(b64: str) -> str:
    """The same bytes in base64 with non-zero unused low bits (a non-canonical spelling).

    RFC 4648 section 3.5: lenient decoders ignore these bits, so the text
    decodes to the very same bytes; canonical decoders must refuse it.
    """
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    data = b64.rstrip("=")
    pad = len(b64) - len(data)
    assert pad in (1, 2), "only a padded value has unused bits"
    unused = 2 if pad == 1 else 4
    last = alphabet.index(data[-1])
    assert last & ((1 << unused) - 1) == 0, "already non-canonical"
    spelled = data[:-1] + alphabet[last | 1] + "=" * pad
    assert base64.b64decode(spelled) == base64.b64decode(b64)
    return spelled
