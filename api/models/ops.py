"""Models of the operations routes: liveness and readiness."""

from __future__ import annotations

from typing import Literal

from api.models.common import Out

__all__ = ["HealthOut"]


class HealthOut(Out):
    """Liveness or readiness."""

    status: Literal["ok", "unavailable"]
    checks: dict[str, str] = {}  # noqa: RUF012 (pydantic copies a field default)
