"""Whether a published report is public: read and set by the Department's staff."""

from __future__ import annotations

from fastapi import APIRouter

from app.api.ids import ReportId
from app.api.problems import AUTHED, NOT_FOUND
from app.deps import ReportsReader, ReportsWriter, SessionDep
from app.models.public import PublicityIn, PublicityOut
from app.services import public

router = APIRouter(tags=["reports"], responses=AUTHED)


@router.get(
    "/reports/{report_id}/publicity",
    operation_id="reports_publicity_get",
    summary="Whether the report is public",
    description="Public reports are readable by anyone under `/public/v1` and on the public "
    "site. Until an admin or analyst decides, a report is public when its campaign covers a "
    "whole province.",
    response_model=PublicityOut,
    responses=NOT_FOUND,
)
async def get_publicity(
    session: SessionDep, principal: ReportsReader, report_id: ReportId
) -> PublicityOut:
    return await public.publicity(session, principal, report_id)


@router.post(
    "/reports/{report_id}/publicity",
    operation_id="reports_publicity_set",
    summary="Make the report public, or not",
    description="Audited as `report.publicity`. Public reads never show suppressed figures, "
    "free text or contact data, whatever is set here.",
    response_model=PublicityOut,
    responses=NOT_FOUND,
)
async def set_publicity(
    session: SessionDep, actor: ReportsWriter, report_id: ReportId, body: PublicityIn
) -> PublicityOut:
    return await public.set_publicity(session, actor, report_id, body.is_public, body.reason)
