"""The SIPAS section of the administrative-reform report, as JSON or DOCX."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from enum import StrEnum
from typing import Annotated

from fastapi import APIRouter, Query, Response

from app.api.files import attachment
from app.api.problems import AUTHED
from app.deps import SessionDep, scoped
from app.models.identity import Scope
from app.models.reform import ReformReport
from app.services import reform
from app.services.principal import Principal

# Dates on Vietnamese documents are local dates (UTC+7, no daylight saving).
VIETNAM = timezone(timedelta(hours=7))
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
TAG = {
    "name": "reform",
    "description": "The SIPAS section of the administrative-reform (cải cách hành chính) report "
    "the Department of Home Affairs sends each period.",
}
router = APIRouter(tags=[TAG["name"]], responses=AUTHED)
ReformReader = Annotated[Principal, scoped(Scope.reports_read, Scope.plans_read)]


class Format(StrEnum):
    json = "json"
    docx = "docx"


@router.get(
    "/reform-reports/sipas",
    summary="The SIPAS section of the administrative-reform report",
    description="For a year (`2020`), a quarter (`2020-Q1`..`2020-Q4`) or a half-year "
    "(`2020-H1`, `2020-H2`): the index in force and its change, the ranking, the weakest "
    "criteria province-wide, the dissemination held in the period, and the improvement plans "
    "with their progress. `format=docx` renders it as a Vietnamese administrative document.",
    response_model=ReformReport,
    responses={200: {"content": {DOCX: {}}, "description": "The report (JSON or DOCX)."}},
)
async def sipas_section(
    session: SessionDep,
    principal: ReformReader,
    period: Annotated[str, Query(max_length=16, examples=["2020", "2020-Q1", "2020-H2"])],
    format: Annotated[Format, Query(description="json (default) or docx")] = Format.json,
) -> Response | ReformReport:
    report = await reform.build(session, principal, period)
    if format is Format.json:
        return report
    body = reform.to_docx(report, datetime.now(VIETNAM).date())
    return Response(
        body,
        media_type=DOCX,
        headers=attachment(f"bao-cao-cchc-sipas-{period}.docx"),
    )
