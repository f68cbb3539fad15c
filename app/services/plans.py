"""Improvement plans: targets proposed from a published report, actions, review. The
dissemination records are `app.services.dissemination` (re-exported here).

When a campaign is published (each snapshot), every measured agency below the province with a
publishable index gets a plan (or its plan's targets are proposed again from the new version).
A criterion becomes a target when it is among the agency's three lowest, when it is below the
province's value, or when it is among the three that fell most since the previous campaign on
the same questionnaire (the 95% intervals tell whether a fall is real). Agencies renamed or
merged since are followed through successor links.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any, Unpack

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.errors import FieldError, Invalid
from app.models.agency import Agency
from app.models.base import touch
from app.models.campaign import Campaign
from app.models.plans import (
    ActionIn,
    ActionPatch,
    ActionPublic,
    ActionStatus,
    CommentPublic,
    ImprovementPlan,
    PlanAction,
    PlanComment,
    PlanPage,
    PlanPublic,
    PlanSummary,
    PlanTarget,
    ReviewIn,
    TargetOutcome,
)
from app.models.report import Report
from app.services import access, audit, events, report_files, rows, updates
from app.services.dissemination import (
    add_dissemination,
    all_dissemination,
    list_dissemination,
    read_dissemination,
    update_dissemination,
)
from app.services.index import formulas as fx
from app.services.index.rankings import successor_links
from app.services.paging import CampaignAgencyWindow, campaign_agency_page
from app.services.principal import Principal

__all__ = [
    "add_action",
    "add_dissemination",
    "all_dissemination",
    "apart",
    "criteria_of",
    "list_dissemination",
    "list_plans",
    "outcomes",
    "propose",
    "propose_targets",
    "public",
    "read_dissemination",
    "read_plan",
    "review",
    "summaries",
    "update_action",
    "update_dissemination",
]

LOWEST = 3
FELL = 3


# ---- reading a snapshot ------------------------------------------------------------------------


def criteria_of(index: dict[str, Any] | None) -> Iterator[tuple[str, dict[str, Any]]]:
    """(element id, criterion node) for every criterion of an index tree (snapshot JSON)."""
    if index is None:
        return

    def walk(node: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
        for child in node.get("children", []):
            if child["kind"] == "criterion":
                yield node["id"], child
            else:
                yield from walk(child)

    yield from walk(index)


def _shown(node: dict[str, Any] | None) -> Decimal | None:
    if node is None or node.get("suppressed") or node.get("value") is None:
        return None
    return report_files.published(node, "value")


def apart(a: dict[str, Any], b: dict[str, Any]) -> bool | None:
    """True when two figures' 95% intervals do not overlap (the difference is real)."""
    lows = [report_files.published(a, "ci_low"), report_files.published(b, "ci_low")]
    highs = [report_files.published(a, "ci_high"), report_files.published(b, "ci_high")]
    if None in lows or None in highs:
        return None
    return bool(highs[0] < lows[1] or highs[1] < lows[0])  # type: ignore[operator]


def _agency_cells(content: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["key"]: c for c in content["breakdowns"].get("agency", [])}


def _carried(
    cells: dict[str, dict[str, Any]], links: dict[uuid.UUID, uuid.UUID], agency_id: uuid.UUID
) -> dict[str, Any] | None:
    """The agency's cell in an earlier snapshot: its own, or its single predecessor's."""
    if str(agency_id) in cells:
        return cells[str(agency_id)]
    preds = [
        cells[str(u)] for u in links if str(u) in cells and fx.successor_of(u, links) == agency_id
    ]
    return preds[0] if len(preds) == 1 else None


def propose_targets(
    cell: dict[str, Any],
    province: dict[str, Any],
    previous: dict[str, Any] | None,
    *,
    lowest: int = LOWEST,
    fell: int = FELL,
) -> list[PlanTarget]:
    """The targets of one agency's plan, weakest first (see the module's rules)."""
    mine = [(e, c) for e, c in criteria_of(cell.get("index")) if _shown(c) is not None]
    prov = {c["id"]: c for _, c in criteria_of(province.get("index"))}
    before = {c["id"]: c for _, c in criteria_of(previous.get("index"))} if previous else {}
    reasons: dict[str, list[str]] = {}
    for _, c in sorted(mine, key=lambda ec: (_shown(ec[1]), ec[1]["id"]))[:lowest]:
        reasons.setdefault(c["id"], []).append("lowest")
    for _, c in mine:
        p = _shown(prov.get(c["id"]))
        if p is not None and (_shown(c) or Decimal(0)) < p:
            reasons.setdefault(c["id"], []).append("below_province")
    falls = []
    for _, c in mine:
        was = _shown(before.get(c["id"]))
        now = _shown(c)
        if was is not None and now is not None and now < was:
            falls.append((now - was, c["id"]))
    for _, cid in sorted(falls)[:fell]:
        reasons.setdefault(cid, []).append("fell")
    targets = []
    for element, c in mine:
        if c["id"] not in reasons:
            continue
        old = before.get(c["id"])
        was = _shown(old)
        now = _shown(c)
        targets.append(
            PlanTarget(
                criterion_id=c["id"],
                label_vi=c["label_vi"],
                element_id=element,
                value=now,
                ci_low=report_files.published(c, "ci_low"),
                ci_high=report_files.published(c, "ci_high"),
                province_value=_shown(prov.get(c["id"])),
                previous_value=was,
                change_points=None if was is None or now is None else now - was,
                change_significant=apart(c, old) if old is not None and was is not None else None,
                reasons=reasons[c["id"]],
            )
        )
    targets.sort(key=lambda t: (t.value, t.criterion_id))
    return targets


async def _neighbour_report(
    session: AsyncSession, campaign: Campaign, questionnaire_code: str, *, earlier: bool
) -> tuple[Report, Campaign] | None:
    """The latest report of the nearest campaign before (or after) this one, same questionnaire."""
    year = col(Campaign.year)
    query = (
        sa.select(Report, Campaign)
        .join(Campaign, col(Campaign.id) == col(Report.campaign_id))
        .where(
            col(Report.questionnaire_code) == questionnaire_code,
            year < campaign.year if earlier else year > campaign.year,
        )
        .order_by(year.desc() if earlier else year.asc(), col(Report.version).desc())
        .limit(1)
    )
    row = (await session.execute(query)).first()
    return None if row is None else (row[0], row[1])


async def propose(
    session: AsyncSession, actor: Principal | None, campaign: Campaign, report: Report
) -> int:
    """Make or refresh the plan of every measured agency of a new report; returns how many."""
    content = report.content
    cells = _agency_cells(content)
    ids = [uuid.UUID(k) for k in cells]
    agencies = {
        a.id: a
        for a in (await session.scalars(sa.select(Agency).where(col(Agency.id).in_(ids)))).all()
    }
    prev = await _neighbour_report(session, campaign, report.questionnaire_code, earlier=True)
    prev_cells: dict[str, dict[str, Any]] = {}
    links: dict[uuid.UUID, uuid.UUID] = {}
    if prev is not None:
        prev_cells = _agency_cells(prev[0].content)
        links = await successor_links(session, prev[1].map_date, campaign.map_date)
    existing = {
        p.agency_id: p
        for p in (
            await session.scalars(
                sa.select(ImprovementPlan).where(col(ImprovementPlan.campaign_id) == campaign.id)
            )
        ).all()
    }
    made: list[ImprovementPlan] = []
    for key, cell in cells.items():
        agency = agencies.get(uuid.UUID(key))
        if (
            agency is None
            or agency.level == "province"
            or not agency.is_measured
            or _shown(cell.get("index")) is None
        ):
            continue
        previous = _carried(prev_cells, links, agency.id) if prev_cells else None
        targets = [
            t.model_dump(mode="json") for t in propose_targets(cell, content["total"], previous)
        ]
        plan = existing.get(agency.id)
        if plan is None:
            plan = ImprovementPlan(
                campaign_id=campaign.id, agency_id=agency.id, report_id=report.id, targets=targets
            )
            session.add(plan)
        else:
            plan.targets, plan.report_id = targets, report.id
            touch(plan)
        made.append(plan)
    if made:
        await audit.record_change(
            session,
            actor,
            campaign,
            "plan.propose",
            object_type="campaign",
            summary={"report_id": str(report.id), "plans": len(made)},
        )
        await events.emit_many(session, [events.plan_updated(p, "proposed") for p in made])
    return len(made)


# ---- plans -------------------------------------------------------------------------------------


def _status(actions: list[PlanAction]) -> str:
    if not actions:
        return "no_actions"
    finished = (ActionStatus.done, ActionStatus.cancelled)
    return "completed" if all(a.status in finished for a in actions) else "in_progress"


async def _plan(
    session: AsyncSession, principal: Principal, plan_id: uuid.UUID, *, lock: bool = False
) -> ImprovementPlan:
    query = access.readable_plans(principal).where(col(ImprovementPlan.id) == plan_id)
    return await rows.one(session, query, "plan", lock=lock)


async def _actions(session: AsyncSession, plan_id: uuid.UUID) -> list[PlanAction]:
    return list(
        (
            await session.scalars(
                sa.select(PlanAction)
                .where(col(PlanAction.plan_id) == plan_id)
                .order_by(col(PlanAction.due_on), col(PlanAction.created_at), col(PlanAction.id))
            )
        ).all()
    )


async def outcomes(session: AsyncSession, plan: ImprovementPlan) -> list[TargetOutcome]:
    """Each target's criterion at the next published campaign on the same questionnaire."""
    campaign = await session.get(Campaign, plan.campaign_id)
    report = await session.get(Report, plan.report_id)
    if campaign is None or report is None:  # pragma: no cover - foreign keys
        return []
    nxt = await _neighbour_report(session, campaign, report.questionnaire_code, earlier=False)
    if nxt is None:
        return []
    later, later_campaign = nxt
    links = await successor_links(session, campaign.map_date, later_campaign.map_date)
    target_id = fx.successor_of(plan.agency_id, links)
    cell = _agency_cells(later.content).get(str(target_id))
    now = {c["id"]: c for _, c in criteria_of(cell.get("index") if cell else None)}
    then = {
        c["id"]: c
        for _, c in criteria_of(
            _agency_cells(report.content).get(str(plan.agency_id), {}).get("index")
        )
    }
    out = []
    for t in plan.targets:
        c = now.get(t["criterion_id"])
        value = _shown(c)
        before = _shown(then.get(t["criterion_id"]))
        out.append(
            TargetOutcome(
                criterion_id=t["criterion_id"],
                campaign_id=later_campaign.id,
                report_id=later.id,
                value=value,
                change_points=None if value is None or before is None else value - before,
                significant=(
                    apart(c, then[t["criterion_id"]])
                    if c is not None and value is not None and before is not None
                    else None
                ),
            )
        )
    return out


async def read_plan(session: AsyncSession, principal: Principal, plan_id: uuid.UUID) -> PlanPublic:
    plan = await _plan(session, principal, plan_id)
    return await public(session, plan)


async def public(session: AsyncSession, plan: ImprovementPlan) -> PlanPublic:
    agency = await session.get(Agency, plan.agency_id)
    actions = await _actions(session, plan.id)
    comments = (
        await session.scalars(
            sa.select(PlanComment)
            .where(col(PlanComment.plan_id) == plan.id)
            .order_by(col(PlanComment.created_at), col(PlanComment.id))
        )
    ).all()
    return PlanPublic(
        id=plan.id,
        campaign_id=plan.campaign_id,
        agency_id=plan.agency_id,
        agency_code=agency.code if agency else "",
        agency_name=agency.name if agency else "",
        report_id=plan.report_id,
        review_status=plan.review_status,
        status=_status(actions),
        targets=[PlanTarget.model_validate(t) for t in plan.targets],
        actions=[ActionPublic.model_validate(a) for a in actions],
        comments=[CommentPublic.model_validate(c) for c in comments],
        outcomes=await outcomes(session, plan),
        created_at=plan.created_at,
        updated_at=plan.updated_at,
    )


async def summaries(
    session: AsyncSession, principal: Principal, campaign_id: uuid.UUID | None = None
) -> list[PlanSummary]:
    """Every readable plan (of one campaign), by agency code."""
    query = access.readable_plans(principal)
    if campaign_id is not None:
        query = query.where(col(ImprovementPlan.campaign_id) == campaign_id)
    plans = list((await session.scalars(query)).all())
    return await _summaries(session, plans)


async def _summaries(session: AsyncSession, plans: list[ImprovementPlan]) -> list[PlanSummary]:
    if not plans:
        return []
    agencies = {
        a.id: a
        for a in (
            await session.scalars(
                sa.select(Agency).where(col(Agency.id).in_({p.agency_id for p in plans}))
            )
        ).all()
    }
    actions: dict[uuid.UUID, list[PlanAction]] = {}
    for a in (
        await session.scalars(
            sa.select(PlanAction).where(col(PlanAction.plan_id).in_([p.id for p in plans]))
        )
    ).all():
        actions.setdefault(a.plan_id, []).append(a)
    out = [
        PlanSummary(
            id=p.id,
            campaign_id=p.campaign_id,
            agency_id=p.agency_id,
            agency_code=agencies[p.agency_id].code,
            agency_name=agencies[p.agency_id].name,
            review_status=p.review_status,
            status=_status(actions.get(p.id, [])),
            targets=len(p.targets),
            actions=len(actions.get(p.id, [])),
            actions_done=sum(1 for a in actions.get(p.id, []) if a.status == ActionStatus.done),
        )
        for p in plans
    ]
    out.sort(key=lambda s: (s.agency_code, str(s.campaign_id)))
    return out


async def list_plans(
    session: AsyncSession, principal: Principal, **window: Unpack[CampaignAgencyWindow]
) -> PlanPage:
    plans, next_cursor = await campaign_agency_page(
        session, access.readable_plans(principal), ImprovementPlan, **window
    )
    items = await _summaries(session, plans)
    order = {p.id: i for i, p in enumerate(plans)}
    items.sort(key=lambda s: order[s.id])
    return PlanPage(items=items, next_cursor=next_cursor)


async def add_action(
    session: AsyncSession, actor: Principal, plan_id: uuid.UUID, body: ActionIn
) -> ActionPublic:
    plan = await _plan(session, actor, plan_id, lock=True)
    targets = {t["criterion_id"] for t in plan.targets}
    if body.criterion_id is not None and body.criterion_id not in targets:
        raise Invalid(
            "The action must name one of the plan's targets, or none.",
            [FieldError("/body/criterion_id", f"not a target of this plan: {sorted(targets)}")],
        )
    action = PlanAction(plan_id=plan.id, created_by=actor.id, **body.model_dump())
    session.add(action)
    touch(plan)
    await session.flush()
    await session.refresh(action)
    await audit.record(
        session,
        actor,
        "plan.action.create",
        object_type="plan_action",
        object_id=action.id,
        summary={"plan_id": str(plan.id), **body.model_dump(mode="json")},
    )
    await events.emit_many(session, [events.plan_updated(plan, "action_added", action.id)])
    return ActionPublic.model_validate(action)


async def update_action(
    session: AsyncSession,
    actor: Principal,
    plan_id: uuid.UUID,
    action_id: uuid.UUID,
    body: ActionPatch,
) -> ActionPublic:
    plan = await _plan(session, actor, plan_id, lock=True)
    query = sa.select(PlanAction).where(
        col(PlanAction.id) == action_id, col(PlanAction.plan_id) == plan.id
    )
    action = await rows.one(session, query, "action", lock=True)
    changes = updates.sent(body)
    changed = updates.apply_changes(action, changes, lambda a: {k: getattr(a, k) for k in changes})
    touch(action, plan)
    await audit.record_change(
        session,
        actor,
        action,
        "plan.action.update",
        object_type="plan_action",
        summary={
            "plan_id": str(plan.id),
            "before": {k: str(v) if v is not None else None for k, v in changed.before.items()},
            "after": body.model_dump(mode="json", exclude_unset=True),
        },
    )
    await events.emit_many(session, [events.plan_updated(plan, "action_changed", action.id)])
    return ActionPublic.model_validate(action)


async def review(
    session: AsyncSession, actor: Principal, plan_id: uuid.UUID, body: ReviewIn
) -> PlanPublic:
    """The Department's review: a status and a comment (kept, in order)."""
    plan = await _plan(session, actor, plan_id, lock=True)
    plan.review_status = body.status
    touch(plan)
    session.add(
        PlanComment(
            plan_id=plan.id,
            author_id=actor.id,
            author_name=actor.name,
            review_status=body.status.value,
            body=body.comment,
        )
    )
    await audit.record_change(
        session,
        actor,
        plan,
        "plan.review",
        object_type="plan",
        summary={"status": body.status.value, "comment": body.comment},
    )
    await events.emit_many(session, [events.plan_updated(plan, "reviewed")])
    return await public(session, plan)
