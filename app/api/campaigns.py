"""Campaigns: lifecycle, scope, strata and targets, progress."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Annotated

from fastapi import APIRouter, Depends, Query, status

from app.api.ids import CampaignId
from app.api.paging import PageDep
from app.api.problems import AUTHED, CONFLICT, NOT_FOUND
from app.context import current_request
from app.deps import (
    CampaignsReader,
    CampaignsWriter,
    ProgressReader,
    SessionDep,
)
from app.models.campaign import (
    AllocateRequest,
    AllocationPublic,
    CampaignCreate,
    CampaignPage,
    CampaignPublic,
    CampaignState,
    CampaignUpdate,
    ProgressPublic,
    StrataReplace,
    StratumPublic,
    TransitionRequest,
)
from app.services import campaigns

router = APIRouter(prefix="/campaigns", tags=["campaigns"], responses=AUTHED)


@dataclass
class CampaignFilters:
    state: CampaignState | None = None
    year: Annotated[int | None, Query(ge=1900, le=2200)] = None


LIFECYCLE = """
States: `draft` → `open` → `closed` → `published` → `archived`, and `closed` → `open` (reopen)
before publishing. Opening freezes the questionnaire version. In `draft` everything may change;
while `open` only `name` and `fieldwork_end`; while `closed` only `name`; nothing once published.
Archiving purges the frame's contact data.
"""


@router.get(
    "",
    description="Paged with `limit` and `cursor`; filter by `state` and `year`.",
    summary="List campaigns",
    response_model=CampaignPage,
)
async def list_campaigns(
    session: SessionDep,
    principal: CampaignsReader,
    page: PageDep,
    filters: Annotated[CampaignFilters, Depends()],
) -> CampaignPage:
    return await campaigns.list_campaigns(session, principal, **asdict(page), **asdict(filters))


@router.post(
    "",
    summary="Create a campaign (draft)",
    description="A campaign starts as a draft on a questionnaire version, with its period and "
    "scope. Audited.",
    status_code=status.HTTP_201_CREATED,
    response_model=CampaignPublic,
    responses=CONFLICT,
)
async def create_campaign(
    session: SessionDep, actor: CampaignsWriter, body: CampaignCreate
) -> CampaignPublic:
    campaign = await campaigns.create_campaign(session, actor, body)
    return await campaigns.public(session, campaign)


@router.get(
    "/{campaign_id}",
    description="The campaign, its state, questionnaire and scope; 404 outside the caller's scope.",
    summary="One campaign",
    response_model=CampaignPublic,
    responses=NOT_FOUND,
)
async def get_campaign(
    session: SessionDep, principal: CampaignsReader, campaign_id: CampaignId
) -> CampaignPublic:
    return await campaigns.public(
        session, await campaigns.get_campaign(session, principal, campaign_id)
    )


@router.patch(
    "/{campaign_id}",
    summary="Change a campaign, within what its state allows",
    description=LIFECYCLE,
    response_model=CampaignPublic,
    responses={**NOT_FOUND, **CONFLICT},
)
async def update_campaign(
    session: SessionDep, actor: CampaignsWriter, campaign_id: CampaignId, body: CampaignUpdate
) -> CampaignPublic:
    campaign = await campaigns.update_campaign(session, actor, campaign_id, body)
    return await campaigns.public(session, campaign)


@router.post(
    "/{campaign_id}/transition",
    summary="Move a campaign to another state (audited, with a reason)",
    description=LIFECYCLE
    + "\nThe reason comes from the body's `reason` or the `X-Action-Reason` header.",
    response_model=CampaignPublic,
    responses={**NOT_FOUND, **CONFLICT},
)
async def transition(
    session: SessionDep, actor: CampaignsWriter, campaign_id: CampaignId, body: TransitionRequest
) -> CampaignPublic:
    ctx = current_request()
    reason = body.reason or (ctx.reason if ctx else None)
    campaign = await campaigns.transition(session, actor, campaign_id, body.to, reason)
    return await campaigns.public(session, campaign)


@router.get(
    "/{campaign_id}/strata",
    summary="The campaign's strata: frame size N_h and target n_h",
    description="One row per stratum (agency, or agency and sector) with its frame size and "
    "target. An agency manager or agency-bound client sees only the strata of its subtree.",
    response_model=list[StratumPublic],
    responses=NOT_FOUND,
)
async def list_strata(
    session: SessionDep, principal: CampaignsReader, campaign_id: CampaignId
) -> list[StratumPublic]:
    found = await campaigns.list_strata(session, principal, campaign_id)
    return [campaigns.stratum_public(s) for s in found]


@router.put(
    "/{campaign_id}/strata",
    summary="Replace the strata (agency, or agency x sector), with optional hand-set targets",
    description="The list sent becomes the whole set; refused (409) once fieldwork has started. "
    "Audited.",
    response_model=list[StratumPublic],
    responses={**NOT_FOUND, **CONFLICT},
)
async def replace_strata(
    session: SessionDep, actor: CampaignsWriter, campaign_id: CampaignId, body: StrataReplace
) -> list[StratumPublic]:
    rows = await campaigns.replace_strata(session, actor, campaign_id, body)
    return [campaigns.stratum_public(s) for s in rows]


@router.post(
    "/{campaign_id}/strata/allocate",
    summary="Compute targets: n = ceil(N / (1 + N·e²)), allocated in proportion to N_h",
    description="Each stratum gets at least min(N_h, min_per_stratum); the largest remainder "
    "makes the parts sum to the total. Hand-set targets are kept and counted first.",
    response_model=AllocationPublic,
    responses={**NOT_FOUND, **CONFLICT},
)
async def allocate(
    session: SessionDep, actor: CampaignsWriter, campaign_id: CampaignId, body: AllocateRequest
) -> AllocationPublic:
    return await campaigns.allocate_targets(session, actor, campaign_id, body)


@router.get(
    "/{campaign_id}/progress",
    summary="Fieldwork progress per stratum: received, valid, rejected, target, completion",
    description="An agency manager sees only the strata of its own subtree.",
    response_model=ProgressPublic,
    responses=NOT_FOUND,
)
async def progress(
    session: SessionDep, principal: ProgressReader, campaign_id: CampaignId
) -> ProgressPublic:
    return await campaigns.progress(session, principal, campaign_id)
