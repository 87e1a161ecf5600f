"""Operations: liveness, readiness, Prometheus metrics."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from api.auth import ADMIN, ContextDep, OptionalPrincipalDep
from api.context import AppContext
from api.metrics import METRICS_MEDIA_TYPE
from api.models.ops import HealthOut
from api.routes.common import problems
from blocklist.store import versions as store_versions
from blocklist.store.errors import StoreError

__all__ = [
    "healthz",
    "metrics",
    "readiness",
    "readyz",
    "router",
]

router = APIRouter(tags=["ops"])


@router.get(
    "/healthz",
    response_model=HealthOut,
    responses=problems(),
    summary="Liveness: the process is up",
)
async def healthz() -> HealthOut:
    """Answer 200 while the process runs (no dependency is checked)."""
    return HealthOut(status="ok")


def readiness(ctx: AppContext) -> tuple[bool, dict[str, str]]:
    """Check the database, the embedded signer and, per list, the checkpoint.

    A checkpoint older than twice the checkpoint interval means no signer
    keeps it fresh, and ISPs would soon freeze (DESIGN.md item 4). A failed
    embedded-signer operation is retried here once; still failing means
    not ready.
    """
    checks: dict[str, str] = {}
    try:
        ctx.db.check()
        with ctx.db.read() as session:
            states = store_versions.list_states(session)
    except StoreError as e:
        return False, {"database": f"unavailable: {e.code}"}
    except Exception:
        return False, {"database": "unavailable"}
    checks["database"] = "ok"
    ready = True
    if ctx.signer is not None:
        # The embedded signer's last operation failed (disk full, read-only
        # database, a missing key): not ready until a retry succeeds.
        for name, code in sorted(ctx.signer.retry_failed().items()):
            checks[f"signer:{name}"] = f"failing: {code}"
            ready = False
    limit = 2 * ctx.settings.checkpoint_interval
    now = datetime.now(UTC)
    for state in states:
        age = state.checkpoint_age_seconds(now)
        if age is None:
            checks[f"checkpoint:{state.name}"] = "missing"
            ready = False
        elif age > limit:
            checks[f"checkpoint:{state.name}"] = f"stale ({age:.0f} s > {limit:.0f} s)"
            ready = False
        else:
            checks[f"checkpoint:{state.name}"] = "fresh"
    return ready, checks


@router.get(
    "/readyz",
    response_model=HealthOut,
    responses=problems(401, extra={503: {"model": HealthOut, "description": "Not ready"}}),
    summary="Readiness: database reachable and checkpoints fresh (checks only for admins)",
)
async def readyz(ctx: ContextDep, p: OptionalPrincipalDep) -> Response:
    """200 when the database answers and every checkpoint is fresh, else 503.

    Without an admin token the answer says only ready or not: the checks
    name every list (issue 12, item 9: an ISP must not learn which lists
    exist) and the signer's failures.
    """
    ready, checks = await run_in_threadpool(readiness, ctx)
    admin = p is not None and p.role == ADMIN
    body = HealthOut(status="ok" if ready else "unavailable", checks=checks if admin else {})
    headers = {"Cache-Control": "no-store"}
    if not ready:
        headers["Retry-After"] = "5"
    return JSONResponse(
        body.model_dump(mode="json"), status_code=200 if ready else 503, headers=headers
    )


@router.get(
    "/metrics",
    response_class=Response,
    responses=problems(
        extra={200: {"content": {METRICS_MEDIA_TYPE: {}}, "description": "Prometheus metrics"}}
    ),
    summary="Prometheus metrics (per-list and per-ISP gauges only with an admin token)",
)
async def metrics(ctx: ContextDep, p: OptionalPrincipalDep) -> Response:
    """Render the metrics; an admin token adds the per-list gauges and per-ISP versions."""
    admin = p is not None and p.role == ADMIN
    body = await run_in_threadpool(ctx.metrics.render, admin=admin)
    return Response(
        content=body,
        media_type=METRICS_MEDIA_TYPE,
        headers={"Cache-Control": "no-store"},
    )
