"""Published reports: stable URLs, ETags, JSON, CSV and XLSX from the stored snapshot."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Request, Response, status

from app.api.etag import NOT_MODIFIED, conditional_from
from app.api.problems import AUTHED, CONFLICT, NOT_FOUND
from app.deps import (
    DEFAULT_PAGE,
    CampaignsWriter,
    Cursor,
    Limit,
    ReportsReader,
    ReportsWriter,
    SessionDep,
)
from app.models.report import (
    MethodsPublic,
    PublishRequest,
    ReportDocument,
    ReportPage,
    ReportSummary,
    TallyIn,
    TallyPublic,
)
from app.services import reports, tallies
from app.services.methods import list_methods

router = APIRouter(tags=["reports"], responses=AUTHED)

# Reports never change once stored; a new version gets a new id.
IMMUTABLE = "private, max-age=86400, immutable"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


async def _rendered(
    request: Request,
    session: SessionDep,
    ref: reports.ReportRef,
    fmt: str,
    *,
    cache_control: str = IMMUTABLE,
) -> Response:
    """The report in `fmt`, or a 304 before anything is rendered or read when the caller holds
    this version. Exports carry their own tags (the format suffixed to the snapshot's)."""
    media = {"json": "application/json", "csv": "text/csv; charset=utf-8", "xlsx": XLSX}[fmt]
    etag = ref.etag if fmt == "json" else ref.etag[:-1] + f'-{fmt}"'
    headers = (
        {}
        if fmt == "json"
        else {"Content-Disposition": f'attachment; filename="sipas-report-{ref.id}.{fmt}"'}
    )
    return await conditional_from(
        request,
        lambda: reports.rendering(session, ref, fmt),
        media,
        headers,
        etag=etag,
        cache_control=cache_control,
    )


@router.post(
    "/campaigns/{campaign_id}/reports",
    summary="Publish the campaign: store an immutable snapshot of every figure",
    description="A closed campaign becomes published with version 1; publishing a published "
    "campaign again stores a new version. The snapshot records the method and questionnaire "
    "versions, the data cut-off and a hash of the counted forms.",
    status_code=status.HTTP_201_CREATED,
    response_model=ReportSummary,
    responses={**NOT_FOUND, **CONFLICT},
)
async def publish(
    session: SessionDep, actor: ReportsWriter, campaign_id: uuid.UUID, body: PublishRequest
) -> ReportSummary:
    report = await reports.publish(session, actor, campaign_id, body.reason)
    return ReportSummary.model_validate(report, from_attributes=True)


@router.get(
    "/campaigns/{campaign_id}/reports",
    summary="The campaign's published versions",
    description="Every stored report version of the campaign, in version order, paged.",
    response_model=ReportPage,
    responses=NOT_FOUND,
)
async def list_reports(
    session: SessionDep,
    principal: ReportsReader,
    campaign_id: uuid.UUID,
    limit: Limit = DEFAULT_PAGE,
    cursor: Cursor = None,
) -> ReportPage:
    return await reports.list_reports(session, principal, campaign_id, limit=limit, cursor=cursor)


@router.get(
    "/campaigns/{campaign_id}/reports/latest",
    summary="The latest published version (a stable URL for fetchers)",
    description="The newest report of the campaign, as `GET /reports/{report_id}` shows it. "
    "Answers with an ETag; a caller holding it gets 304, so polling is cheap.",
    response_model=ReportDocument,
    responses={**NOT_FOUND, **NOT_MODIFIED},
)
async def latest(
    request: Request, session: SessionDep, principal: ReportsReader, campaign_id: uuid.UUID
) -> Response:
    ref = await reports.latest(session, principal, campaign_id)
    return await _rendered(request, session, ref, "json", cache_control="private, no-cache")


@router.get(
    "/reports/{report_id}",
    summary="A published report as JSON",
    description="The stored snapshot: the campaign, its method and questionnaire, every figure of"
    " the whole and of each breakdown, and the rankings. Immutable: its ETag never "
    "changes.",
    response_model=ReportDocument,
    responses={**NOT_FOUND, **NOT_MODIFIED},
)
async def get_report(
    request: Request, session: SessionDep, principal: ReportsReader, report_id: uuid.UUID
) -> Response:
    return await _rendered(
        request, session, await reports.reference(session, principal, report_id), "json"
    )


@router.get(
    "/reports/{report_id}/export.csv",
    summary="A published report as CSV (UTF-8 with BOM)",
    description="One row per figure and cell, from the stored snapshot. Answers with an ETag; a "
    "caller holding it gets 304.",
    responses={**NOT_FOUND, **NOT_MODIFIED, 200: {"content": {"text/csv": {}}}},
)
async def export_csv(
    request: Request, session: SessionDep, principal: ReportsReader, report_id: uuid.UUID
) -> Response:
    return await _rendered(
        request, session, await reports.reference(session, principal, report_id), "csv"
    )


@router.get(
    "/reports/{report_id}/export.xlsx",
    summary="A published report as XLSX (one sheet per breakdown, Vietnamese headings)",
    description="The same figures as the CSV in a workbook. Answers with an ETag; a caller "
    "holding it gets 304.",
    responses={**NOT_FOUND, **NOT_MODIFIED, 200: {"content": {XLSX: {}}}},
)
async def export_xlsx(
    request: Request, session: SessionDep, principal: ReportsReader, report_id: uuid.UUID
) -> Response:
    return await _rendered(
        request, session, await reports.reference(session, principal, report_id), "xlsx"
    )


@router.get(
    "/methods",
    summary="The formulas, weights and thresholds of every method version",
    description="Everything needed to check a published number: the formulas of the method, and "
    "for each questionnaire version its structure, weights, positive sets and thresholds.",
)
async def methods(session: SessionDep, _: ReportsReader) -> MethodsPublic:
    return MethodsPublic.model_validate(await list_methods(session))


@router.post(
    "/campaigns/{campaign_id}/tallies",
    summary="Import an aggregate tally of paper forms (counts per item and answer)",
    description="Refused when any item is answered more often than forms were returned, or "
    "names an unknown item or answer. The response shows the tally's own criterion indices.",
    status_code=status.HTTP_201_CREATED,
    response_model=TallyPublic,
    responses={**NOT_FOUND},
)
async def import_tally(
    session: SessionDep, actor: CampaignsWriter, campaign_id: uuid.UUID, body: TallyIn
) -> TallyPublic:
    return await tallies.import_tally(session, actor, campaign_id, body)
