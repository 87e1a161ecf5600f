"""The problem document (RFC 9457) every error response carries, as OpenAPI shows it."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from api.models.entries import BulkResultOut

__all__ = ["ProblemOut", "ValidationIssueOut"]


class ValidationIssueOut(BaseModel):
    """One reason a request failed validation (the input itself is not echoed)."""

    loc: list[str]
    msg: str
    type: str | None = None


class ProblemOut(BaseModel):
    """An RFC 9457 problem (the shape of every error response).

    RFC 9457 3.2 allows extension members; the API uses ``errors``
    (``validation_error``), ``results`` (``bulk_rejected``), ``reason``
    (``keyring_error``), ``role`` (``rate_limited``: whose limit) and
    ``search`` (``method_not_allowed`` on ``GET …/entries``: the search route).
    """

    model_config = ConfigDict(extra="allow")

    type: str
    title: str
    status: int
    detail: str
    code: str
    instance: str | None = None
    errors: list[ValidationIssueOut] | None = None
    results: list[BulkResultOut] | None = None
    reason: str | None = None
    role: str | None = None
    search: str | None = None
