"""The listed expressions as exports see them: parsed, classified, counted.

Each renderer starts here: the entry hashes are checked, their expressions
looked up (plaintext tier), split into host / prefix / page entries, hosts
checked as DNS names and pruned when another entry covers them, and every
entry a format cannot enforce counted by scope with a note. Also the
comment header every export file starts with.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Literal

from blocklist.canonical import (
    expression_hash,
    is_ip_host,
    split_expression,
)
from blocklist.errors import BlocklistError
from clients.errors import PlaintextMismatch
from clients.isp.exports.formats import (
    HASH_SIZE,
    MAX_LABEL_OCTETS,
    MAX_NAME_TEXT,
    MAX_PREFIX_DEPTH,
    MAX_SUFFIX_LABELS,
    SCOPE_OTHER,
    ExportError,
    ExportInput,
    ExportResult,
    MissingPlaintext,
)

__all__: list[str] = []

_DNS_LABEL_RE = re.compile(rf"[a-z0-9_-]{{1,{MAX_LABEL_OCTETS}}}")


# Characters of a comment header; anything else in an origin is replaced.
_HEADER_SAFE_RE = re.compile(r"[^\x21-\x7e ]")


@dataclass(frozen=True, slots=True)
class _Entry:
    expression: str
    host: str
    path: str  # "/path?query"
    scope: Literal["host", "prefix", "page"]
    ip: bool
    labels: int


class _Counter:
    """Counts entries left out, by reason and by scope, and turns them into notes."""

    def __init__(self) -> None:
        self.enforced = 0
        self.skipped: dict[str, int] = {}
        self.by_scope: dict[str, int] = {}

    def skip(self, reason: str, scope: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1
        self.by_scope[scope] = self.by_scope.get(scope, 0) + 1

    def result(
        self, files: dict[str, bytes], notes: list[str] | None = None, *, partial: int = 0
    ) -> ExportResult:
        """The export result with this counter's counts."""
        return ExportResult(
            files,
            self.enforced,
            self.not_enforceable,
            self.notes() if notes is None else notes,
            left_out={scope: n for scope, n in self.by_scope.items() if n},
            partial=partial,
        )

    @property
    def not_enforceable(self) -> int:
        return sum(self.skipped.values())

    def notes(self) -> list[str]:
        return [f"{n} {reason}" for reason, n in sorted(self.skipped.items())]


def _check_hashes(hashes: Collection[bytes]) -> list[bytes]:
    unique = set(hashes)
    for h in unique:
        if type(h) is not bytes or len(h) != HASH_SIZE:
            raise ExportError(f"listed hashes must be {HASH_SIZE} raw bytes")
    return sorted(unique)


def _expressions_for(fmt: str, data: ExportInput, hashes: list[bytes]) -> list[str]:
    """Every hash's expression, checked against its hash.

    Raises:
        MissingPlaintext: hash-only tier, or some hash lacks its expression.
        PlaintextMismatch: an expression does not hash to its key.
    """
    mapping = data.expressions
    if mapping is None:
        raise MissingPlaintext(fmt, missing=len(hashes), total=len(hashes))
    missing = sum(1 for h in hashes if h not in mapping)
    if missing:
        raise MissingPlaintext(fmt, missing=missing, total=len(hashes))
    out: list[str] = []
    for h in hashes:
        expr = mapping[h]
        # Defence in depth: the store only accepts expressions whose SHA-256
        # is in the verified set; an export never writes one that is not.
        if expression_hash(expr) != h:
            raise PlaintextMismatch(f"expression stored for {h.hex()} does not hash to it")
        out.append(expr)
    return out


def _parse_entry(expr: str) -> _Entry | None:
    """Split an expression and classify its scope as the lookups see it."""
    if not expr or any(not 0x21 <= ord(c) <= 0x7E for c in expr):
        return None  # not canonical: canonical expressions are printable ASCII
    try:
        host, path = split_expression(expr)
    except (BlocklistError, ValueError):
        return None
    if not host or path.endswith("?"):
        # Lookups try a query only when it is non-empty: "p?" is never tried.
        return None
    scope: Literal["host", "prefix", "page"]
    if path == "/":
        scope = "host"
    elif "?" not in path and path.endswith("/") and path.count("/") - 1 <= MAX_PREFIX_DEPTH:
        scope = "prefix"
    else:
        # A page, or a prefix deeper than the lookups reach: exact path only.
        scope = "page"
    ip = is_ip_host(host)
    return _Entry(expr, host, path, scope, ip, 1 if ip else host.count(".") + 1)


def _parse_entries(
    fmt: str, data: ExportInput, hashes: list[bytes], counter: _Counter
) -> list[_Entry]:
    entries: list[_Entry] = []
    for expr in _expressions_for(fmt, data, hashes):
        entry = _parse_entry(expr)
        if entry is None:
            counter.skip("entries are not canonical expressions and were left out", SCOPE_OTHER)
        else:
            entries.append(entry)
    return entries


def _covers_subdomains(entry: _Entry) -> bool:
    """Whether lookups match this entry's host on subdomains too."""
    return not entry.ip and 2 <= entry.labels <= MAX_SUFFIX_LABELS


def _valid_dns_name(host: str) -> bool:
    if len(host) > MAX_NAME_TEXT:
        return False
    return all(_DNS_LABEL_RE.fullmatch(label) for label in host.split("."))


def _covered(name: str, wildcards: set[str]) -> bool:
    """Whether a proper parent domain of ``name`` is in ``wildcards``."""
    rest = name
    while "." in rest:
        rest = rest.split(".", 1)[1]
        if rest in wildcards:
            return True
    return False


def _header(data: ExportInput, comment: str) -> str:
    origin = _HEADER_SAFE_RE.sub("?", data.origin)
    name = _HEADER_SAFE_RE.sub("?", data.list_name)
    return (
        f"{comment} cleanfeed list {name} ({origin}), version {data.version}\n"
        f"{comment} generated by cleanfeed; do not edit: rewritten on every update\n"
    )


def _dns_hosts(
    entries: Iterable[_Entry], counter: _Counter, *, max_text: int = MAX_NAME_TEXT
) -> list[_Entry]:
    """The whole-host entries a DNS format can carry; count the others."""
    out: list[_Entry] = []
    for e in entries:
        if e.scope != "host":
            counter.skip(
                "page/prefix entries cannot be enforced by DNS "
                "(use the squid export or the external ACL helper)",
                e.scope,
            )
        elif e.ip:
            counter.skip("IP-address hosts cannot be enforced by DNS (no name is resolved)", "host")
        elif e.labels < 2:
            counter.skip("single-label hosts were left out (they would block a whole TLD)", "host")
        elif len(e.host) > max_text or not _valid_dns_name(e.host):
            counter.skip("hosts are not valid DNS names (or too long) and were left out", "host")
        else:
            out.append(e)
    return out


def _prune_covered(entries: list[_Entry]) -> tuple[list[_Entry], int]:
    """Drop entries whose name lies under another subdomain-covering entry."""
    wildcards = {e.host for e in entries if _covers_subdomains(e)}
    kept = [e for e in entries if e.ip or not _covered(e.host, wildcards)]
    return kept, len(entries) - len(kept)
