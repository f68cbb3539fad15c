"""Published reports: stable URLs, ETags, JSON, CSV and XLSX from the stored snapshot."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response, status

from app.api.etag import NOT_MODIFIED, json_with_etag
from app.api.files import XLSX, download, rendering
from app.api.ids import CampaignId, ReportId
from app.api.paging import PageDep
from app.api.problems import AUTHED, CONFLICT, NOT_FOUND, REPLAYED
from app.deps import (
    CampaignsWriter,
    ReaderDep,
    ReportsReader,
    ReportsWriter,
    SessionDep,
)
from app.models.report import (
    MethodsPublic,
    PublishRequest,
    ReportDocument,
    ReportListPage,
    ReportPage,
    ReportSummary,
    TallyIn,
    TallyPublic,
)
from app.services import campaigns, report_files, reports, tallies
from app.services.methods import list_methods

router = APIRouter(tags=["reports"], responses=AUTHED)

# Reports never change once stored; a new version gets a new id.
IMMUTABLE = "private, max-age=86400, immutable"


async def _rendered(
    request: Request,
    session: ReaderDep,
    ref: reports.ReportRef,
    fmt: str,
    *,
    cache_control: str = IMMUTABLE,
) -> Response:
    """The report in `fmt`, or a 304 before anything is rendered or read when the caller holds
    this version. Exports carry their own tags (the format suffixed to the snapshot's)."""
    etag = ref.etag if fmt == "json" else ref.etag[:-1] + f'-{fmt}{report_files.RENDERING_VERSION}"'
    return await rendering(
        request,
        lambda: reports.rendering(session, ref, fmt),
        fmt,
        filename=f"sipas-report-{ref.id}",
        etag=etag,
        cache_control=cache_control,
    )


async def _by_id(
    session: ReaderDep, principal: ReportsReader, report_id: ReportId
) -> reports.ReportRef:
    return await reports.reference(session, principal, report_id)


# The version `report_id` names, if the caller may read it (404 otherwise).
ReportById = Annotated[reports.ReportRef, Depends(_by_id)]


@router.post(
    "/campaigns/{campaign_id}/reports",
    summary="Publish the campaign: store an immutable snapshot of every figure",
    description="A closed campaign becomes published with version 1 (201). Publishing a "
    "published campaign again stores a new version (201) when its inputs changed; over "
    "identical inputs (the latest version's `inputs_hash`: the counted forms and their "
    "versions, the questionnaire, the agency map and sectors) nothing is stored and the latest "
    "version is answered with 200 and `Idempotent-Replayed: true`. The snapshot records the "
    "method and questionnaire versions, the data cut-off and the inputs hash.",
    status_code=status.HTTP_201_CREATED,
    response_model=ReportSummary,
    responses={
        200: {
            "model": ReportSummary,
            "description": "Inputs unchanged: the latest version, nothing stored.",
            "headers": {REPLAYED: {"schema": {"type": "string", "enum": ["true"]}}},
        },
        **NOT_FOUND,
        **CONFLICT,
    },
)
async def publish(
    response: Response,
    session: SessionDep,
    actor: ReportsWriter,
    campaign_id: CampaignId,
    body: PublishRequest,
) -> ReportSummary:
    report, created = await campaigns.publish_once(session, actor, campaign_id, body.reason)
    if not created:
        response.status_code = status.HTTP_200_OK
        response.headers[REPLAYED] = "true"
    return ReportSummary.model_validate(report)


@router.get(
    "/campaigns/{campaign_id}/reports",
    summary="The campaign's published versions",
    description="Every stored report version of the campaign, in version order, paged.",
    response_model=ReportPage,
    responses=NOT_FOUND,
)
async def list_reports(
    session: ReaderDep,
    principal: ReportsReader,
    campaign_id: CampaignId,
    page: PageDep,
) -> ReportPage:
    return await reports.list_reports(session, principal, campaign_id, **asdict(page))


@dataclass
class ReportFilters:
    since: Annotated[
        datetime | None, Query(description="Published after this moment (UTC if no offset).")
    ] = None
    agency: Annotated[str | None, Query(max_length=64, description="An agency's code or id.")] = (
        None
    )
    campaign: Annotated[
        str | None, Query(max_length=64, description="A campaign's code or id.")
    ] = None


@router.get(
    "/reports",
    summary="Published report versions across campaigns, for fetchers",
    description="Every version the caller may read, oldest publication first, paged by "
    "cursor. `since` keeps those published after a moment (a fetcher passes the "
    "`published_at` of the last version it holds); `agency` (code or id) keeps the reports "
    "whose campaign covers that agency (its scope holds the agency or an ancestor); "
    "`campaign` (code or id) keeps one campaign's. An unknown agency or campaign answers 422. "
    "The list carries an ETag: poll with `If-None-Match` and get 304 until something new is "
    "published.",
    response_model=ReportListPage,
    responses=NOT_MODIFIED,
)
async def list_all_reports(
    request: Request,
    session: ReaderDep,
    principal: ReportsReader,
    filters: Annotated[ReportFilters, Depends()],
    page: PageDep,
) -> Response:
    found = await reports.list_all(session, principal, **asdict(filters), **asdict(page))
    return json_with_etag(request, found)


@router.get(
    "/campaigns/{campaign_id}/reports/latest",
    summary="The latest published version (a stable URL for fetchers)",
    description="The newest report of the campaign, as `GET /reports/{report_id}` shows it. "
    "Answers with an ETag; a caller holding it gets 304, so polling is cheap.",
    response_model=ReportDocument,
    responses={**NOT_FOUND, **NOT_MODIFIED},
)
async def latest(
    request: Request, session: ReaderDep, principal: ReportsReader, campaign_id: CampaignId
) -> Response:
    ref = await reports.latest(session, principal, campaign_id)
    return await _rendered(request, session, ref, "json", cache_control="private, no-cache")


def _read(fmt: str) -> Callable[..., Awaitable[Response]]:
    """The read of one rendering of a report version; each is registered on its own path."""

    async def read(request: Request, session: ReaderDep, ref: ReportById) -> Response:
        return await _rendered(request, session, ref, fmt)

    return read


router.add_api_route(
    "/reports/{report_id}",
    _read("json"),
    name="get_report",
    summary="A published report as JSON",
    description="The stored snapshot: the campaign, its method and questionnaire, every figure of"
    " the whole and of each breakdown, and the rankings. Immutable: its ETag never "
    "changes.",
    response_model=ReportDocument,
    responses={**NOT_FOUND, **NOT_MODIFIED},
)
router.add_api_route(
    "/reports/{report_id}/export.csv",
    _read("csv"),
    name="export_csv",
    summary="A published report as CSV (UTF-8 with BOM)",
    description="One row per figure and cell, from the stored snapshot. Answers with an ETag; a "
    "caller holding it gets 304.",
    responses={**NOT_FOUND, **NOT_MODIFIED, **download("text/csv")},
)
router.add_api_route(
    "/reports/{report_id}/export.xlsx",
    _read("xlsx"),
    name="export_xlsx",
    summary="A published report as XLSX (one sheet per breakdown, Vietnamese headings)",
    description="The same figures as the CSV in a workbook. Answers with an ETag; a caller "
    "holding it gets 304.",
    responses={**NOT_FOUND, **NOT_MODIFIED, **download(XLSX)},
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
    session: SessionDep, actor: CampaignsWriter, campaign_id: CampaignId, body: TallyIn
) -> TallyPublic:
    return await tallies.import_tally(session, actor, campaign_id, body)
