"""The public JSON API: published reports anyone may read, without a token (`/public/v1`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request, Response
from pydantic import BaseModel

from app.api.etag import JSON, NOT_MODIFIED, conditional
from app.api.files import XLSX, download, rendering
from app.api.ids import ReportId
from app.api.problems import INVALID, NOT_FOUND, TOO_MANY, Responses
from app.deps import DatabaseDep, RateLimiterDep, ReaderDep, SettingsDep
from app.errors import NotFound
from app.models.public import (
    PublicAgencyList,
    PublicAgencySummary,
    PublicReport,
    PublicReportList,
)
from app.services import public

TAG = {
    "name": "public",
    "description": "Published results anyone may read without a token: the reports an admin or "
    "analyst made public (by default those of campaigns covering a whole province). Figures "
    "only: never a suppressed value, free text or contact data. Rate-limited per source "
    "address; gzip on request; every answer carries an ETag.",
}
# A report version never changes (a new version gets a new id); the list changes on publishing.
IMMUTABLE = "public, max-age=31536000, immutable"
LISTING = "public, max-age=300"


async def limit_source(
    request: Request, db: DatabaseDep, settings: SettingsDep, limiter: RateLimiterDep
) -> None:
    """429 once one source address passes its requests-per-minute budget."""
    source = request.client.host if request.client else "unknown"
    await limiter.enforce_key(db.side, f"rate:public:{source}", settings.public_requests_per_minute)


PUBLIC_ERRORS: Responses = {**INVALID, **TOO_MANY}
router = APIRouter(
    prefix=public.PREFIX,
    tags=["public"],
    dependencies=[Depends(limit_source)],
    responses=PUBLIC_ERRORS,
)


def _ok(model: type, description: str) -> Responses:
    return {200: {"model": model, "description": description}}


def _json(
    request: Request, body: BaseModel, cache_control: str, etag: str | None = None
) -> Response:
    """`body` as JSON, or a 304 when the caller holds its tag (the body's hash unless given)."""
    return conditional(
        request, body.model_dump_json().encode(), JSON, etag=etag, cache_control=cache_control
    )


@router.get(
    "/reports",
    operation_id="public_reports_list",
    summary="Public reports",
    description="Every public report, newest campaign first, with its overall index and the "
    "links to its renderings.",
    response_model=PublicReportList,
    responses=NOT_MODIFIED,
)
async def list_reports(request: Request, session: ReaderDep) -> Response:
    body = PublicReportList(items=await public.list_public(session))
    return _json(request, body, LISTING)


def _read(fmt: str) -> Callable[..., Awaitable[Response]]:
    """The read of one rendering (json, csv or xlsx) of a public report, or a 304 when the
    caller holds it; each is registered on its own path below."""

    async def read(request: Request, session: ReaderDep, report_id: ReportId) -> Response:
        ref = await public.reference(session, report_id)
        return await rendering(
            request,
            lambda: public.rendering(session, ref, fmt),
            fmt,
            filename=f"sipas-{ref.id}",
            etag=public.etag(ref, fmt),
            cache_control=IMMUTABLE,
        )

    return read


router.add_api_route(
    "/reports/{report_id}",
    _read("json"),
    name="get_report",
    operation_id="public_reports_get",
    summary="One public report",
    description="The report's figures: the index tree of the province and of every breakdown "
    "cell, and the rankings. Suppressed figures have null values and intervals.",
    response_model=None,
    responses={**_ok(PublicReport, "The public report."), **NOT_FOUND, **NOT_MODIFIED},
)
router.add_api_route(
    "/reports/{report_id}/export.csv",
    _read("csv"),
    name="export_csv",
    operation_id="public_reports_csv",
    summary="One public report as CSV",
    description="UTF-8 with a BOM (Excel reads the Vietnamese text), one row per figure and "
    "cell; suppressed figures are empty.",
    response_model=None,
    responses={**download("text/csv", description="The CSV file."), **NOT_FOUND, **NOT_MODIFIED},
)
router.add_api_route(
    "/reports/{report_id}/export.xlsx",
    _read("xlsx"),
    name="export_xlsx",
    operation_id="public_reports_xlsx",
    summary="One public report as XLSX",
    description="One sheet per breakdown and per ranking, Vietnamese headings.",
    response_model=None,
    responses={**download(XLSX, description="The workbook."), **NOT_FOUND, **NOT_MODIFIED},
)


@router.get(
    "/reports/{report_id}/agencies",
    operation_id="public_reports_agencies",
    summary="Per-agency summaries of a public report",
    description="For every agency of the report: its overall index and interval, its elements, "
    "its rank among the agencies of its level and the agencies it is not distinguishable from, "
    "and its criteria from strongest to weakest against the province.",
    response_model=None,
    responses={**_ok(PublicAgencyList, "The summaries."), **NOT_FOUND, **NOT_MODIFIED},
)
async def agencies(request: Request, session: ReaderDep, report_id: ReportId) -> Response:
    ref = await public.reference(session, report_id)
    body = await public.agencies(session, ref)
    return _json(request, body, IMMUTABLE, public.etag(ref, "agencies"))


@router.get(
    "/reports/{report_id}/agencies/{code}",
    operation_id="public_reports_agency",
    summary="One agency's summary in a public report",
    description="As in the list of summaries, for the agency with this code.",
    response_model=None,
    responses={**_ok(PublicAgencySummary, "The summary."), **NOT_FOUND, **NOT_MODIFIED},
)
async def agency(
    request: Request,
    session: ReaderDep,
    report_id: ReportId,
    code: Annotated[str, Path(max_length=64, description="The agency's code.")],
) -> Response:
    ref = await public.reference(session, report_id)
    found = next((a for a in (await public.agencies(session, ref)).items if a.code == code), None)
    if found is None:
        raise NotFound("agency")
    return _json(request, found, IMMUTABLE, public.etag(ref, f"agency-{found.agency_id}"))
