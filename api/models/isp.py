"""Models of the ISPs' routes: statement pages, plaintext expressions, Merkle proofs."""

from __future__ import annotations

from api.models.common import Out

__all__ = ["ExpressionOut", "PlaintextOut", "ProofOut", "StatementsOut"]


class StatementsOut(Out):
    """A page of statements ``since+1 ...`` (DESIGN.md interface table)."""

    statements: list[str]
    next: int | None


class ExpressionOut(Out):
    """An expression with its base64 hash."""

    hash: str
    expression: str


class PlaintextOut(Out):
    """Expressions of entries added after ``since`` and still listed."""

    expressions: list[ExpressionOut]
    next: int | None


class ProofOut(Out):
    """A Merkle proof or range (base64 hashes)."""

    hashes: list[str]
