"""Improvement plans and dissemination records: what agencies do with a published index."""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass
from typing import Annotated

from fastapi import APIRouter, Depends, Query, status

from app.api.ids import ActionId, PlanId, RecordId
from app.api.paging import PageDep
from app.api.problems import AUTHED, CONFLICT, NOT_FOUND
from app.deps import (
    PlansReader,
    PlansReviewer,
    PlansWriter,
    SessionDep,
)
from app.models.plans import (
    ActionIn,
    ActionPatch,
    ActionPublic,
    DisseminationIn,
    DisseminationPage,
    DisseminationPatch,
    DisseminationPublic,
    PlanPage,
    PlanPublic,
    ReviewIn,
)
from app.services import plans

# Two tags, one router each; both are included in `router` at the end of the module.
router = APIRouter(responses=AUTHED)
plan_routes = APIRouter(tags=["plans"])
record_routes = APIRouter(tags=["dissemination"])
TAGS = [
    {
        "name": "plans",
        "description": "Improvement plans: after publishing, each agency's plan with the "
        "targets the service proposes; actions by the agency, review by the Department.",
    },
    {
        "name": "dissemination",
        "description": "How each agency made the published index known (meetings, notices, "
        "portal posts, media), for the administrative-reform report.",
    },
]


@dataclass
class PlanFilters:
    """What both lists keep: one campaign's, one agency's."""

    campaign_id: Annotated[uuid.UUID | None, Query(description="Only this campaign's.")] = None
    agency_id: Annotated[uuid.UUID | None, Query(description="Only this agency's.")] = None


PlanFiltersDep = Annotated[PlanFilters, Depends()]


@plan_routes.get(
    "/plans",
    summary="Improvement plans",
    description="The plans of the caller's agencies, with their status and review.",
    response_model=PlanPage,
)
async def list_plans(
    session: SessionDep, principal: PlansReader, filters: PlanFiltersDep, page: PageDep
) -> PlanPage:
    return await plans.list_plans(session, principal, **asdict(filters), **asdict(page))


@plan_routes.get(
    "/plans/{plan_id}",
    summary="One improvement plan",
    description="Its proposed targets (and why each was proposed), actions, the Department's "
    "comments, and, once a later campaign is published, each target's change with its "
    "significance.",
    response_model=PlanPublic,
    responses=NOT_FOUND,
)
async def get_plan(session: SessionDep, principal: PlansReader, plan_id: PlanId) -> PlanPublic:
    return await plans.read_plan(session, principal, plan_id)


@plan_routes.post(
    "/plans/{plan_id}/actions",
    operation_id="plans_actions_create",
    summary="Add an action to a plan",
    description="What will be done, by whom, by when, its status and evidence (text or link). "
    "An agency manager writes only the plans of its own subtree.",
    status_code=status.HTTP_201_CREATED,
    response_model=ActionPublic,
    responses=NOT_FOUND,
)
async def add_action(
    session: SessionDep, actor: PlansWriter, plan_id: PlanId, body: ActionIn
) -> ActionPublic:
    return await plans.add_action(session, actor, plan_id, body)


@plan_routes.patch(
    "/plans/{plan_id}/actions/{action_id}",
    operation_id="plans_actions_update",
    summary="Change an action",
    description="Only the fields sent change (status, evidence, due date, ...).",
    response_model=ActionPublic,
    responses=NOT_FOUND,
)
async def update_action(
    session: SessionDep,
    actor: PlansWriter,
    plan_id: PlanId,
    action_id: ActionId,
    body: ActionPatch,
) -> ActionPublic:
    return await plans.update_action(session, actor, plan_id, action_id, body)


@plan_routes.post(
    "/plans/{plan_id}/review",
    summary="Review a plan",
    description="The Department approves the plan or asks for changes, with a comment.",
    response_model=PlanPublic,
    responses=NOT_FOUND,
)
async def review(
    session: SessionDep, actor: PlansReviewer, plan_id: PlanId, body: ReviewIn
) -> PlanPublic:
    return await plans.review(session, actor, plan_id, body)


@record_routes.post(
    "/dissemination-records",
    summary="Record how an agency made the index known",
    description="Only for a published campaign, and an agency manager only for its subtree.",
    status_code=status.HTTP_201_CREATED,
    response_model=DisseminationPublic,
    responses={**NOT_FOUND, **CONFLICT},
)
async def create_dissemination(
    session: SessionDep, actor: PlansWriter, body: DisseminationIn
) -> DisseminationPublic:
    return await plans.add_dissemination(session, actor, body)


@record_routes.get(
    "/dissemination-records",
    summary="Dissemination records",
    description="The records of the caller's agencies, in a stable order; page on with "
    "`next_cursor`.",
    response_model=DisseminationPage,
)
async def list_dissemination(
    session: SessionDep, principal: PlansReader, filters: PlanFiltersDep, page: PageDep
) -> DisseminationPage:
    return await plans.list_dissemination(session, principal, **asdict(filters), **asdict(page))


@record_routes.get(
    "/dissemination-records/{record_id}",
    summary="One dissemination record",
    description="As listed.",
    response_model=DisseminationPublic,
    responses=NOT_FOUND,
)
async def get_dissemination(
    session: SessionDep, principal: PlansReader, record_id: RecordId
) -> DisseminationPublic:
    return await plans.read_dissemination(session, principal, record_id)


@record_routes.patch(
    "/dissemination-records/{record_id}",
    summary="Change a dissemination record",
    description="Only the fields sent change.",
    response_model=DisseminationPublic,
    responses=NOT_FOUND,
)
async def update_dissemination(
    session: SessionDep, actor: PlansWriter, record_id: RecordId, body: DisseminationPatch
) -> DisseminationPublic:
    return await plans.update_dissemination(session, actor, record_id, body)


router.include_router(plan_routes)
router.include_router(record_routes)
