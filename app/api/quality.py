"""Field quality: screening config and flags, bulk review, the review queue, re-checks,
schedule progress and supervisors' observations."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Query, status

from app.api.ids import CampaignId, ObservationId, RecheckId
from app.api.problems import AUTHED, CONFLICT, NOT_FOUND
from app.deps import (
    CampaignsReader,
    CampaignsWriter,
    ObservationsWriter,
    ProgressReader,
    QualityReader,
    RechecksWriter,
    SessionDep,
    SubmissionsReviewer,
)
from app.models.quality import (
    BulkReviewIn,
    BulkReviewResult,
    ObservationAnswerIn,
    ObservationIn,
    ObservationPublic,
    QualityConfig,
    RecheckDrawIn,
    RecheckDrawResult,
    RecheckOutcomeIn,
    RecheckPublic,
    RecheckSummary,
    ReviewQueue,
    ScheduleProgress,
)
from app.services.quality import rechecks, review, supervision

# Every route names a campaign, re-check or observation the caller may not see (404).
router = APIRouter(tags=["quality"], responses={**AUTHED, **NOT_FOUND})


@router.get(
    "/campaigns/{campaign_id}/quality",
    summary="The campaign's screening and review config",
    description="Every rule's threshold, the review policy (`manual` by default for a new "
    "campaign; `auto` makes a form that passes screening valid at once), the contradiction "
    "rules, the re-check share and the publication gate.",
    response_model=QualityConfig,
)
async def get_config(
    session: SessionDep, principal: CampaignsReader, campaign_id: CampaignId
) -> QualityConfig:
    return await supervision.get_config(session, principal, campaign_id)


@router.put(
    "/campaigns/{campaign_id}/quality",
    summary="Replace the campaign's screening and review config",
    description="Fields left out take their defaults. Applies to forms stored from now on. "
    "Audited.",
    response_model=QualityConfig,
)
async def put_config(
    session: SessionDep, actor: CampaignsWriter, campaign_id: CampaignId, body: QualityConfig
) -> QualityConfig:
    return await supervision.put_config(session, actor, campaign_id, body)


@router.get(
    "/campaigns/{campaign_id}/flags",
    summary="How many forms each screening rule flagged, by state",
    description="`{rule: {state: forms}}` over the forms the caller may see; no answers.",
    response_model=dict[str, dict[str, int]],
)
async def flag_counts(
    session: SessionDep, principal: QualityReader, campaign_id: CampaignId
) -> dict[str, dict[str, int]]:
    return await supervision.flag_counts(session, principal, campaign_id)


@router.post(
    "/campaigns/{campaign_id}/submissions/review",
    summary="Review many forms at once, by ids or by a filter",
    description="One transaction; one audit event and one `submission.reviewed` event per "
    "form changed; a result per item (`reviewed`, `not_allowed`, `not_found`). A filter "
    "selects by agency (with its subtree), surveyor, flag, clean/flagged, state (default "
    "`received`) and received_at range.",
    response_model=BulkReviewResult,
    responses=CONFLICT,
)
async def review_many(
    session: SessionDep, actor: SubmissionsReviewer, campaign_id: CampaignId, body: BulkReviewIn
) -> BulkReviewResult:
    return await review.bulk_review(session, actor, campaign_id, body)


@router.get(
    "/campaigns/{campaign_id}/review-queue",
    summary="Forms waiting for review, riskiest first",
    description="Received and flagged forms, ordered by their number of screening flags "
    "(highest first), then oldest first.",
    response_model=ReviewQueue,
)
async def review_queue(
    session: SessionDep,
    principal: SubmissionsReviewer,
    campaign_id: CampaignId,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> ReviewQueue:
    return await review.review_queue(session, principal, campaign_id, limit=limit)


@router.post(
    "/campaigns/{campaign_id}/rechecks",
    summary="Draw re-checks (phúc tra): a seeded share of each surveyor's forms and every "
    "flagged form",
    description="The same seed over the same forms draws the same list; a form is re-checked "
    "at most once, so drawing again adds only new forms. Assigned to a re-check worker. "
    "Audited.",
    response_model=RecheckDrawResult,
    status_code=status.HTTP_201_CREATED,
)
async def draw_rechecks(
    session: SessionDep, actor: SubmissionsReviewer, campaign_id: CampaignId, body: RecheckDrawIn
) -> RecheckDrawResult:
    return await rechecks.draw(session, actor, campaign_id, body)


@router.get(
    "/campaigns/{campaign_id}/rechecks",
    summary="The campaign's re-checks and their outcomes",
    description="Oldest first; `pending=true` lists those without an outcome.",
    response_model=list[RecheckPublic],
)
async def list_rechecks(
    session: SessionDep,
    principal: QualityReader,
    campaign_id: CampaignId,
    pending: bool | None = None,
) -> list[RecheckPublic]:
    return await rechecks.list_rechecks(session, principal, campaign_id, pending=pending)


@router.get(
    "/campaigns/{campaign_id}/rechecks/summary",
    summary="Re-check outcomes and each surveyor's confirmation rate",
    description="Per surveyor: re-checks, done, confirmed, and 100 · confirmed / done.",
    response_model=RecheckSummary,
)
async def recheck_summary(
    session: SessionDep, principal: QualityReader, campaign_id: CampaignId
) -> RecheckSummary:
    return await rechecks.summary(session, principal, campaign_id)


@router.put(
    "/rechecks/{recheck_id}",
    summary="Record a re-check's outcome",
    description="confirmed, not_confirmed or unreachable, with a note. A re-check assigned to "
    "another worker is refused (409). Audited.",
    response_model=RecheckPublic,
    responses=CONFLICT,
)
async def record_recheck(
    session: SessionDep, actor: RechecksWriter, recheck_id: RecheckId, body: RecheckOutcomeIn
) -> RecheckPublic:
    return await rechecks.record(session, actor, recheck_id, body)


@router.get(
    "/campaigns/{campaign_id}/schedule",
    summary="Fieldwork progress against targets and the deadline, with forecasts",
    description="Per agency (targets from the strata) and per surveyor (targets from the "
    "quality config): forms so far, and the day the target is met at the pace so far. "
    "`as_of` defaults to today.",
    response_model=ScheduleProgress,
)
async def schedule(
    session: SessionDep,
    principal: ProgressReader,
    campaign_id: CampaignId,
    as_of: date | None = None,
) -> ScheduleProgress:
    return await supervision.schedule(session, principal, campaign_id, as_of)


@router.post(
    "/campaigns/{campaign_id}/observations",
    summary="File a supervisor's observation",
    description="The Department must answer it. Audited.",
    response_model=ObservationPublic,
    status_code=status.HTTP_201_CREATED,
)
async def file_observation(
    session: SessionDep, actor: ObservationsWriter, campaign_id: CampaignId, body: ObservationIn
) -> ObservationPublic:
    return await supervision.file_observation(session, actor, campaign_id, body)


@router.get(
    "/campaigns/{campaign_id}/observations",
    summary="The campaign's observations and their answers",
    description="Oldest first; `open=true` lists those not answered yet.",
    response_model=list[ObservationPublic],
)
async def list_observations(
    session: SessionDep,
    principal: QualityReader,
    campaign_id: CampaignId,
    open: bool = False,
) -> list[ObservationPublic]:
    return await supervision.list_observations(session, principal, campaign_id, open)


@router.post(
    "/observations/{observation_id}/answer",
    summary="The Department answers an observation",
    description="Once; a second answer is refused (409). Audited.",
    response_model=ObservationPublic,
    responses=CONFLICT,
)
async def answer_observation(
    session: SessionDep,
    actor: SubmissionsReviewer,
    observation_id: ObservationId,
    body: ObservationAnswerIn,
) -> ObservationPublic:
    return await supervision.answer_observation(session, actor, observation_id, body)
