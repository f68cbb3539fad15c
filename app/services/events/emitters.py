"""The event of each change, built from what the service already holds: one line per hook."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.models.event import EventType
from app.services.events.outbox import NewEvent, emit

if TYPE_CHECKING:
    from app.models.campaign import Campaign
    from app.models.dossier import Invitation
    from app.models.report import Report
    from app.models.submission import Submission


def invitation_used(
    form: dict[str, Any],
    invitation_id: uuid.UUID | None,
    submission_id: uuid.UUID,
    dossier_id: uuid.UUID | None,
    used_at: datetime,
) -> NewEvent:
    """`form` is the stored form's columns (submissions.Prepared.values)."""
    return NewEvent(
        EventType.invitation_used,
        {
            "invitation_id": invitation_id,
            "dossier_id": dossier_id,
            "submission_id": submission_id,
            "campaign_id": form["campaign_id"],
            "agency_id": form["agency_id"],
            "procedure_id": form["procedure_id"],
            "used_at": used_at,
        },
        agency_id=form["agency_id"],
        campaign_id=form["campaign_id"],
    )


async def submission_reviewed(session: AsyncSession, row: Submission, previous: str) -> None:
    await emit(
        session,
        type=EventType.submission_reviewed,
        payload={
            "id": row.id,
            "submission_id": row.client_submission_id,
            "campaign_id": row.campaign_id,
            "agency_id": row.agency_id,
            "from": previous,
            "to": row.state,
            "reason": row.review_reason,
            "reviewed_at": row.updated_at,
        },
        agency_id=row.agency_id,
        campaign_id=row.campaign_id,
    )


async def dossier_received(
    session: AsyncSession,
    dossier_id: uuid.UUID,
    code: str,
    agency_id: uuid.UUID,
    procedure_id: uuid.UUID,
    returned_at: datetime,
    invitations: list[Invitation],
) -> None:
    await emit(
        session,
        type=EventType.dossier_received,
        payload={
            "dossier_id": dossier_id,
            "code": code,
            "agency_id": agency_id,
            "procedure_id": procedure_id,
            "returned_at": returned_at,
            "invitations": [
                {"invitation_id": i.id, "campaign_id": i.campaign_id, "expires_at": i.expires_at}
                for i in invitations
            ],
        },
        agency_id=agency_id,
    )


async def campaign_transitioned(
    session: AsyncSession, campaign: Campaign, previous: str, reason: str | None
) -> None:
    await emit(
        session,
        type=EventType.campaign_transitioned,
        payload={
            "campaign_id": campaign.id,
            "code": campaign.code,
            "from": previous,
            "to": campaign.state,
            "reason": reason,
        },
        campaign_id=campaign.id,
    )


async def report_published(session: AsyncSession, report: Report) -> None:
    await emit(
        session,
        type=EventType.report_published,
        payload={
            "report_id": report.id,
            "campaign_id": report.campaign_id,
            "version": report.version,
            "etag": report.etag,
            "data_cutoff": report.data_cutoff,
            "forms_counted": report.forms_counted,
            "url": f"/api/v1/reports/{report.id}",
        },
        campaign_id=report.campaign_id,
    )
