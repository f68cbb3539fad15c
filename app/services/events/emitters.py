"""The event of each change, built from what the service already holds: one line per hook."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.models.event import EventType
from app.services.events.outbox import NewEvent, emit, emit_many

if TYPE_CHECKING:
    from app.models.campaign import Campaign
    from app.models.dossier import Invitation
    from app.models.plans import ImprovementPlan
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
            "procedure_id": form["procedure_id"],
            "used_at": used_at,
        },
        agency_id=form["agency_id"],
        campaign_id=form["campaign_id"],
    )


def reviewed(
    form: tuple[uuid.UUID, uuid.UUID],
    scope: tuple[uuid.UUID, uuid.UUID],
    change: tuple[str, str, str | None],
    reviewed_at: datetime,
) -> NewEvent:
    """A form's review: `form` is its (id, client submission id), `scope` its (campaign,
    agency), `change` its (previous state, new state, reason). One review or many alike."""
    (form_id, client_id), (campaign_id, agency_id), (previous, to, reason) = form, scope, change
    return NewEvent(
        EventType.submission_reviewed,
        {
            "id": form_id,
            "submission_id": client_id,
            "from": previous,
            "to": to,
            "reason": reason,
            "reviewed_at": reviewed_at,
        },
        agency_id=agency_id,
        campaign_id=campaign_id,
    )


async def submission_reviewed(session: AsyncSession, row: Submission, previous: str) -> None:
    await emit_many(
        session,
        [
            reviewed(
                (row.id, row.client_submission_id),
                (row.campaign_id, row.agency_id),
                (previous, row.state, row.review_reason),
                row.updated_at,
            )
        ],
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
        payload={"code": campaign.code, "from": previous, "to": campaign.state, "reason": reason},
        campaign_id=campaign.id,
    )


async def report_published(session: AsyncSession, report: Report) -> None:
    await emit(
        session,
        type=EventType.report_published,
        payload={
            "report_id": report.id,
            "version": report.version,
            "etag": report.etag,
            "data_cutoff": report.data_cutoff,
            "forms_counted": report.forms_counted,
            "url": f"/api/v1/reports/{report.id}",
        },
        campaign_id=report.campaign_id,
    )


def plan_updated(
    plan: ImprovementPlan, change: str, action_id: uuid.UUID | None = None
) -> NewEvent:
    """`change` is `proposed` (made or refreshed from a newly published report), `action_added`,
    `action_changed` (then `action_id` names the action) or `reviewed`."""
    return NewEvent(
        EventType.plan_updated,
        {
            "plan_id": plan.id,
            "change": change,
            "action_id": action_id,
            "report_id": plan.report_id,
            "review_status": plan.review_status,
            "updated_at": plan.updated_at,
        },
        agency_id=plan.agency_id,
        campaign_id=plan.campaign_id,
    )
