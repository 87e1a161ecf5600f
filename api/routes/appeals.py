"""Appeals: the public intake and status page, reviewers' queue and decisions.

DESIGN.md part 2, "Appeals and transparency" (issue 17 items 2 and 3):

- ``GET /appeal`` (the form; ``?block_ref=`` fills it in, as the block page
  links it), ``POST /appeal`` (the form's post), ``GET
  /appeal/status/{secret}`` (the status page) and ``POST /v1/appeals``
  (JSON), all without a token. Bodies are capped at
  :data:`api.bodygate.PUBLIC_BODY_BYTES` before anything is parsed; a burst
  limit applies per client address (a token bucket keyed by an HMAC of the
  address, in memory only); a global cap per hour and day and
  de-duplication apply in the store. Answers never say whether anything
  matched: the same 202 shape, the same status words.
- ``GET /v1/lists/{list}/appeals?status=open`` (analyst): the list's
  appeals with the matched entry and ``overdue``; ``POST
  /v1/lists/{list}/appeals/{id}/decide`` (analyst who neither created nor
  approved the entry): ``upheld``, ``removed``, ``suspended`` (published at
  once).
- ``GET /v1/admin/appeals`` (admin): appeals that matched no list;
  ``POST /v1/admin/appeals/{id}/close``.
"""

from __future__ import annotations

import builtins
import hashlib
import hmac
import html
from datetime import UTC, datetime, timedelta
from typing import Annotated, Final, Literal
from urllib.parse import parse_qsl, quote

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool

from api.auth import AdminDep, AnalystDep, ContextDep, authorised_list, rate_limited_problem
from api.context import AppContext, ListInfo
from api.errors import ApiProblem
from api.models.common import MAX_INT
from api.models.entries import EntryOut, entry_out
from api.public.pages import page, render
from api.routes.common import ListPath, problems
from blocklist.blockref import MAX_INPUT_CHARS
from blocklist.errors import BlocklistError
from blocklist.store import appeals as store_appeals
from blocklist.store import versions as store_versions
from blocklist.store.models import EntryRow
from blocklist.store.submissions import MAX_REASON_CHARS, MAX_URL_CHARS

__all__ = [
    "FORM_PATH",
    "STATUS_PATH",
    "AdminAppealOut",
    "AdminAppealsOut",
    "AppealIn",
    "AppealLinkOut",
    "AppealsOut",
    "CloseIn",
    "DecideIn",
    "FiledOut",
    "StatusOut",
    "router",
]

router = APIRouter(tags=["appeals"])

#: The public form (the block page's ``appeal_url`` points here).
FORM_PATH: Final = "/appeal"
#: The status page; the secret follows.
STATUS_PATH: Final = "/appeal/status"

_FORM_FIELDS: Final = frozenset({"block_ref", "url", "message", "contact"})


class AppealIn(BaseModel):
    """An appeal: a block reference or a URL (or both), and why the block is wrong."""

    model_config = ConfigDict(extra="forbid", strict=True)

    block_ref: str | None = Field(
        default=None,
        max_length=MAX_INPUT_CHARS,
        description="the reference the block page showed",
        examples=["CF1-OPMY-NYAJ-AZPR-QLAQ-3"],
    )
    url: str | None = Field(default=None, max_length=MAX_URL_CHARS)
    message: str = Field(min_length=1, max_length=store_appeals.MAX_MESSAGE_CHARS)
    contact: str | None = Field(default=None, max_length=store_appeals.MAX_CONTACT_CHARS)


class FiledOut(BaseModel):
    """What filing answers, matched or not."""

    appeal: int
    status_url: str


class StatusOut(BaseModel):
    """An appeal's public state."""

    appeal: int
    state: Literal["received", "suspended", "no_change", "removed"]
    text: str


class AppealLinkOut(BaseModel):
    """An appeal attached to an entry of the list (reviewers)."""

    id: int
    block_ref: str
    entry: EntryOut
    status: str
    overdue: bool
    attached_at: datetime
    decided_at: datetime | None
    decided_by: str | None
    reason: str | None
    message: str | None = Field(description="null once erased")
    contact: str | None
    url: str | None
    ref: str | None = Field(description="the reference the appellant gave, if any")


class AppealsOut(BaseModel):
    """A list's appeals."""

    list: str
    appeals: builtins.list[AppealLinkOut]


class DecideIn(BaseModel):
    """A reviewer's decision."""

    model_config = ConfigDict(extra="forbid", strict=True)

    outcome: Literal["upheld", "removed", "suspended"]
    reason: str = Field(min_length=1, max_length=MAX_REASON_CHARS)
    entry: int | None = Field(
        default=None, ge=1, le=MAX_INT, description="needed when several entries matched"
    )


class CloseIn(BaseModel):
    """An admin closing an appeal that matched no list."""

    model_config = ConfigDict(extra="forbid", strict=True)

    reason: str = Field(min_length=1, max_length=MAX_REASON_CHARS)


class AdminAppealOut(BaseModel):
    """An appeal in the admins' queue."""

    id: int
    filed_at: datetime
    closed_at: datetime | None
    overdue: bool
    duplicates: int
    ref: str | None
    message: str | None
    contact: str | None
    url: str | None


class AdminAppealsOut(BaseModel):
    """Appeals that matched no list."""

    appeals: builtins.list[AdminAppealOut]


# --- intake ------------------------------------------------------------------


def _limit_address(request: Request, ctx: AppContext) -> None:
    """The burst limit per client address (issue 17: not a strict per-address cap).

    Raises:
        ApiProblem: 429 with ``Retry-After``.
    """
    client = request.client.host if request.client else "unknown"
    key = hmac.new(ctx.appeal_address_key, client.encode("utf-8"), hashlib.sha256).hexdigest()
    wait = ctx.appeal_limiter.acquire(key)
    if wait > 0:
        ctx.metrics.rate_limited.inc()
        problem = rate_limited_problem(ctx, None, wait)
        raise ApiProblem(
            "rate_limited",
            f"this address filed several appeals in a short time; retry after "
            f"{problem.headers['Retry-After']} s (appeals already filed are kept)",
            headers=problem.headers,
        )


def _file(ctx: AppContext, body: AppealIn) -> store_appeals.Filed:
    settings = ctx.settings
    with ctx.db.transaction() as session:
        return store_appeals.file_appeal(
            session,
            block_ref_text=body.block_ref or None,
            url=body.url or None,
            message=body.message,
            contact=body.contact or None,
            dedup_window=timedelta(hours=settings.appeal_dedup_hours),
            cap_per_hour=settings.appeal_cap_per_hour,
            cap_per_day=settings.appeal_cap_per_day,
        )


def _status_url(request: Request, secret: str) -> str:
    return str(request.base_url).rstrip("/") + f"{STATUS_PATH}/{quote(secret, safe='')}"


@router.post(
    "/v1/appeals",
    response_model=FiledOut,
    status_code=202,
    responses=problems(413, 429),
    summary="File an appeal against a block (no token)",
)
async def file_appeal(ctx: ContextDep, request: Request, body: AppealIn) -> JSONResponse:
    """Accept an appeal; the answer is the same whether or not it matched an entry."""
    _limit_address(request, ctx)
    filed = await run_in_threadpool(_file, ctx, body)
    out = FiledOut(appeal=filed.appeal_id, status_url=_status_url(request, filed.secret))
    return JSONResponse(out.model_dump(), status_code=202, headers={"Cache-Control": "no-store"})


def _state(ctx: AppContext, secret: str) -> tuple[int, str] | None:
    with ctx.db.read() as session:
        return store_appeals.public_state(session, secret)


_SecretPath = Annotated[str, Path(min_length=1, max_length=2 * store_appeals.SECRET_BYTES)]


@router.get(
    "/v1/appeals/status/{secret}",
    response_model=StatusOut,
    responses=problems(404),
    summary="An appeal's state, by the secret of its status URL (no token)",
)
async def appeal_status(ctx: ContextDep, secret: _SecretPath) -> JSONResponse:
    """The state in the words of the status page, and nothing more."""
    found = await run_in_threadpool(_state, ctx, secret)
    if found is None:
        raise ApiProblem("not_found", "no appeal has this status secret")
    appeal_id, state = found
    out = StatusOut(
        appeal=appeal_id,
        state=state,  # type: ignore[arg-type]
        text=store_appeals.PUBLIC_STATES[state],
    )
    return JSONResponse(out.model_dump(), headers={"Cache-Control": "no-store"})


# --- the HTML form and status page --------------------------------------------


def _form_page(values: dict[str, str], error: str | None, *, status: int = 200) -> HTMLResponse:
    error_html = (
        f'<p class="error" role="alert">{html.escape(error, quote=True)}</p>' if error else ""
    )
    body = render(
        "form.html",
        action=FORM_PATH,
        error_html=error_html,
        block_ref=values.get("block_ref", ""),
        url=values.get("url", ""),
        message=values.get("message", ""),
        contact=values.get("contact", ""),
    )
    return page("Appeal a block", body, status=status)


@router.get(FORM_PATH, response_class=HTMLResponse, include_in_schema=False)
async def appeal_form(
    block_ref: Annotated[str, Query(max_length=MAX_INPUT_CHARS)] = "",
) -> HTMLResponse:
    """The appeal form, with the block page's reference filled in."""
    return _form_page({"block_ref": block_ref}, None)


def _form_error(error: BaseException) -> str:
    if isinstance(error, store_appeals.AppealRefMistyped):
        return (
            "The block reference does not check out: a character was mistyped or two were "
            "swapped. Compare it with the block page."
        )
    if isinstance(error, BlocklistError):
        return str(error)
    return "The appeal could not be read."


@router.post(FORM_PATH, response_class=HTMLResponse, include_in_schema=False)
async def appeal_form_post(ctx: ContextDep, request: Request) -> Response:
    """The form's post: the same checks and limits as ``POST /v1/appeals``."""
    raw = await request.body()
    try:
        pairs = parse_qsl(raw.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
    except UnicodeDecodeError:
        return _form_page({}, "The form was not sent as UTF-8 text.", status=400)
    values: dict[str, str] = {}
    for key, value in pairs:
        if key not in _FORM_FIELDS or key in values:
            return _form_page({}, f"Unexpected form field {key[:32]!r}.", status=400)
        values[key] = value
    try:
        body = AppealIn(
            block_ref=values.get("block_ref", "").strip() or None,
            url=values.get("url", "").strip() or None,
            message=values.get("message", ""),
            contact=values.get("contact", "").strip() or None,
        )
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        return _form_page(values, f"{where}: {first.get('msg', 'invalid')}", status=422)
    try:
        _limit_address(request, ctx)
    except ApiProblem as problem:
        response = _form_page(values, problem.detail, status=429)
        response.headers.update(problem.headers)
        return response
    try:
        filed = await run_in_threadpool(_file, ctx, body)
    except store_appeals.AppealCapReached as e:
        response = _form_page(values, str(e), status=429)
        response.headers["Retry-After"] = str(e.retry_after)
        return response
    except BlocklistError as e:
        return _form_page(values, _form_error(e), status=422)
    status_path = f"{STATUS_PATH}/{quote(filed.secret, safe='')}"
    text = render(
        "filed.html",
        appeal=str(filed.appeal_id),
        status_url=_status_url(request, filed.secret),
        status_path=status_path,
    )
    return page("Appeal received", text, status=202)


@router.get(STATUS_PATH + "/{secret}", response_class=HTMLResponse, include_in_schema=False)
async def appeal_status_page(ctx: ContextDep, secret: _SecretPath) -> HTMLResponse:
    """The status page: the appeal's state in words, nothing more."""
    found = await run_in_threadpool(_state, ctx, secret)
    if found is None:
        return page("Appeal not found", render("unknown.html"), status=404)
    appeal_id, state = found
    body = render("status.html", appeal=str(appeal_id), state=store_appeals.PUBLIC_STATES[state])
    return page("Your appeal", body)


# --- reviewers -----------------------------------------------------------------


def _link_out(
    link: store_appeals.LinkView, entry: EntryRow, list_name: str, overdue_before: datetime
) -> AppealLinkOut:
    return AppealLinkOut(
        id=link.appeal_id,
        block_ref=link.block_ref,
        entry=entry_out(entry, list_name),
        status=link.status,
        overdue=link.status in ("open", "suspended") and link.attached_at < overdue_before,
        attached_at=link.attached_at,
        decided_at=link.decided_at,
        decided_by=link.decided_by,
        reason=link.reason,
        message=link.message,
        contact=link.contact,
        url=link.url,
        ref=link.ref,
    )


def _overdue_before(ctx: AppContext) -> datetime:
    return datetime.now(UTC) - timedelta(days=ctx.settings.appeal_overdue_days)


@router.get(
    "/v1/lists/{list}/appeals",
    response_model=AppealsOut,
    responses=problems(403, 404),
    summary="A list's appeals with the matched entries (analyst)",
)
async def list_appeals(
    ctx: ContextDep,
    p: AnalystDep,
    list_name: ListPath,
    status: Annotated[
        Literal["open", "upheld", "removed", "suspended", "all"],
        Query(description="open: still under review (open or suspended)"),
    ] = "open",
) -> AppealsOut:
    """Appeals attached to the list's entries, oldest first; ``overdue`` marks the late ones."""
    info = await authorised_list(ctx, p, list_name)
    before = _overdue_before(ctx)

    def work() -> AppealsOut:
        with ctx.db.read() as session:
            links = store_appeals.list_links(
                session, info.id, status=None if status == "all" else status
            )
            out = []
            for link in links:
                entry = session.get(EntryRow, link.entry_id)
                assert entry is not None
                out.append(_link_out(link, entry, info.name, before))
            return AppealsOut(list=info.name, appeals=out)

    return await run_in_threadpool(work)


async def _urgent_publish(ctx: AppContext, info: ListInfo, actor: str) -> None:
    """Publish at once (a suspension): embedded signer now, else a publish request."""
    if ctx.signer is not None:
        await run_in_threadpool(ctx.signer.publish_now, info.name)
        ctx.checkpoints.invalidate(info.id)
        return

    def record() -> None:
        with ctx.db.transaction() as session:
            store_versions.request_publish(session, info.id, actor=actor)

    await run_in_threadpool(record)


@router.post(
    "/v1/lists/{list}/appeals/{appeal_id}/decide",
    response_model=AppealLinkOut,
    responses=problems(403, 404, 409),
    summary="Decide an appeal: upheld, removed or suspended (analyst, not the entry's "
    "creator or approver)",
)
async def decide_appeal(
    ctx: ContextDep,
    p: AnalystDep,
    list_name: ListPath,
    appeal_id: Annotated[int, Path(ge=1, le=MAX_INT)],
    body: DecideIn,
) -> AppealLinkOut:
    """Record the decision; a suspension takes the entry off and publishes at once."""
    info = await authorised_list(ctx, p, list_name)
    before = _overdue_before(ctx)

    def work() -> tuple[AppealLinkOut, bool]:
        with ctx.db.transaction() as session:
            done = store_appeals.decide(
                session,
                info.id,
                appeal_id,
                actor=p.name,
                outcome=body.outcome,
                reason=body.reason,
                entry_id=body.entry,
                person=p.account_id,
            )
            entry = session.get(EntryRow, done.link.entry_id)
            assert entry is not None
            return _link_out(done.link, entry, info.name, before), done.publish_now

    out, publish_now = await run_in_threadpool(work)
    if publish_now:
        await _urgent_publish(ctx, info, p.name)
    return out


# --- admins: the unmatched queue -------------------------------------------------


def _admin_out(view: store_appeals.AppealView, before: datetime) -> AdminAppealOut:
    return AdminAppealOut(
        id=view.appeal_id,
        filed_at=view.filed_at,
        closed_at=view.closed_at,
        overdue=view.closed_at is None and view.filed_at < before,
        duplicates=view.duplicates,
        ref=view.ref,
        message=view.message,
        contact=view.contact,
        url=view.url,
    )


@router.get(
    "/v1/admin/appeals",
    response_model=AdminAppealsOut,
    responses=problems(403),
    summary="Appeals that matched no list (admin)",
)
async def unmatched_appeals(
    ctx: ContextDep,
    p: AdminDep,
    status: Annotated[Literal["open", "all"], Query()] = "open",
) -> AdminAppealsOut:
    """The admins' queue, oldest first."""
    before = _overdue_before(ctx)

    def work() -> AdminAppealsOut:
        with ctx.db.read() as session:
            views = store_appeals.unmatched_appeals(session, open_only=status == "open")
            return AdminAppealsOut(appeals=[_admin_out(v, before) for v in views])

    return await run_in_threadpool(work)


@router.post(
    "/v1/admin/appeals/{appeal_id}/close",
    response_model=AdminAppealOut,
    responses=problems(403, 404, 409),
    summary="Close an appeal that matched no list (admin)",
)
async def close_appeal(
    ctx: ContextDep,
    p: AdminDep,
    appeal_id: Annotated[int, Path(ge=1, le=MAX_INT)],
    body: CloseIn,
) -> AdminAppealOut:
    """The appellant's status page then reads "reviewed, not changed"."""
    before = _overdue_before(ctx)

    def work() -> AdminAppealOut:
        with ctx.db.transaction() as session:
            view = store_appeals.close_unmatched(
                session, appeal_id, actor=p.name, reason=body.reason
            )
            return _admin_out(view, before)

    return await run_in_threadpool(work)
