"""Dissemination records: how an agency made a published campaign's results known (a meeting,
a notice, the portal, the media), kept so the reform report can show it.
"""

from __future__ import annotations

import uuid
from typing import Unpack

from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.errors import ConflictError
from app.models.base import touch
from app.models.campaign import CampaignState
from app.models.plans import (
    DisseminationIn,
    DisseminationPage,
    DisseminationPatch,
    DisseminationPublic,
    DisseminationRecord,
)
from app.services import access, audit, rows, updates
from app.services.paging import CampaignAgencyWindow, campaign_agency_page
from app.services.principal import Principal

_REPORTED = (CampaignState.published, CampaignState.archived)


def public(record: DisseminationRecord) -> DisseminationPublic:
    return DisseminationPublic.model_validate(record)


async def add_dissemination(
    session: AsyncSession, actor: Principal, body: DisseminationIn
) -> DisseminationPublic:
    campaign = await access.readable_campaign(session, actor, body.campaign_id)
    await access.require_agency(session, actor, body.agency_id)
    if CampaignState(campaign.state) not in _REPORTED:
        raise ConflictError(
            "campaign_not_published", "Only the results of a published campaign are made known."
        )
    record = DisseminationRecord(created_by=actor.id, **body.model_dump())
    session.add(record)
    await session.flush()
    await session.refresh(record)
    await audit.record(
        session,
        actor,
        "dissemination.create",
        object_type="dissemination_record",
        object_id=record.id,
        summary=body.model_dump(mode="json"),
    )
    return public(record)


async def _record(
    session: AsyncSession, principal: Principal, record_id: uuid.UUID, *, lock: bool = False
) -> DisseminationRecord:
    query = access.readable_dissemination(principal).where(col(DisseminationRecord.id) == record_id)
    return await rows.one(session, query, "dissemination record", lock=lock)


async def read_dissemination(
    session: AsyncSession, principal: Principal, record_id: uuid.UUID
) -> DisseminationPublic:
    record = await _record(session, principal, record_id)
    return public(record)


async def update_dissemination(
    session: AsyncSession, actor: Principal, record_id: uuid.UUID, body: DisseminationPatch
) -> DisseminationPublic:
    record = await _record(session, actor, record_id, lock=True)
    updates.apply_changes(record, body)
    touch(record)
    await audit.record_change(
        session,
        actor,
        record,
        "dissemination.update",
        object_type="dissemination_record",
        summary=body.model_dump(mode="json", exclude_unset=True),
    )
    return public(record)


async def list_dissemination(
    session: AsyncSession, principal: Principal, **window: Unpack[CampaignAgencyWindow]
) -> DisseminationPage:
    found, next_cursor = await campaign_agency_page(
        session, access.readable_dissemination(principal), DisseminationRecord, **window
    )
    return DisseminationPage(
        items=[public(r) for r in found],
        next_cursor=next_cursor,
    )


async def all_dissemination(
    session: AsyncSession, principal: Principal, campaign_ids: list[uuid.UUID]
) -> list[DisseminationRecord]:
    return list(
        (
            await session.scalars(
                access.readable_dissemination(principal)
                .where(col(DisseminationRecord.campaign_id).in_(campaign_ids))
                .order_by(col(DisseminationRecord.held_on), col(DisseminationRecord.id))
            )
        ).all()
    )
