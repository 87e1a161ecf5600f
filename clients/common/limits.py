"""Response size caps and network timeouts shared by both clients.

Endless-data and slow-retrieval protection (TUF's names): every response is
read with a cap on its decoded bytes and within an overall deadline.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Limits", "Timeouts"]


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Network timeouts in seconds (slow-retrieval protection).

    ``connect``, ``read``, ``write`` and ``pool`` are httpx's per-operation
    timeouts: each bounds one wait, so a server that sends one byte (or one
    header line, or one ``100 Continue``) just before each expires would
    hold the client forever. ``deadline`` bounds the whole exchange of one
    response, from connecting to the last body byte, whatever the server
    sends (:mod:`clients.common.http`).
    """

    connect: float = 10.0
    read: float = 30.0
    write: float = 30.0
    pool: float = 10.0
    #: Overall seconds for one response (connect, headers, any number of
    #: 1xx interim responses, body): the largest legitimate response (a
    #: 16 MiB plaintext page) takes well under a minute on a slow link.
    deadline: float = 600.0


@dataclass(frozen=True, slots=True)
class Limits:
    """Response size caps in decoded bytes (endless-data protection).

    The snapshot has no fixed cap: it is bounded by ``count x 32`` bytes from
    the verified statement (docs/architecture.md).
    """

    #: one keyring note: the keyring text cap (256 KiB) plus signature lines.
    keyring: int = 512 * 1024
    #: one checkpoint note with its own and witness signature lines.
    checkpoint: int = 64 * 1024
    #: one statements page: the server caps pages at 4 MiB of notes; JSON
    #: escaping of newlines and quotes adds a little.
    statements_page: int = 8 * 1024 * 1024
    #: one statement note: 10,000 changes of about 50 bytes, with headroom.
    statement: int = 1024 * 1024
    #: all statements of one sync, summed: beyond this the sync fails closed.
    statements_total: int = 512 * 1024 * 1024
    #: one plaintext page.
    plaintext_page: int = 16 * 1024 * 1024
    #: one proof or compact range document (at most 64 hashes of 44 chars).
    proof: int = 64 * 1024
    #: Most keyrings walked in one sync (a rotation a day for years).
    keyring_walk: int = 10_000
