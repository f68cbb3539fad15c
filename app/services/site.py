"""What the public web site shows: the province page, the agency pages and their charts.

Built only from public reports (`app.services.public`), so the site can never show more than
`/public/v1` does. The change against the previous campaign compares two published snapshots;
agencies renamed or merged since are followed through successor links.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.errors import NotFound
from app.models.campaign import Campaign
from app.models.plans import ActionStatus, ImprovementPlan, PlanAction
from app.models.public import (
    PublicAgencySummary,
    PublicIndexNode,
    PublicRankingRow,
    PublicReport,
    PublicReportSummary,
)
from app.services import access, public
from app.services.charts import Bar
from app.services.index import formulas as fx
from app.services.index.rankings import successor_links

LEVELS_VI = {
    "province": "Cấp tỉnh",
    "department": "Sở, ban, ngành",
    "district": "Ủy ban nhân dân cấp huyện",
    "commune": "Ủy ban nhân dân cấp xã",
}


def overlaps(
    a_low: Decimal | None, a_high: Decimal | None, b_low: Decimal | None, b_high: Decimal | None
) -> bool | None:
    """Whether two 95% intervals overlap; None when either is unknown."""
    if None in (a_low, a_high, b_low, b_high):
        return None
    return not (a_high < b_low or b_high < a_low)  # type: ignore[operator]


def significance_vi(overlap: bool | None) -> str:
    if overlap is None:
        return "không đánh giá được"
    return "trong phạm vi sai số" if overlap else "khác biệt có ý nghĩa"


async def latest_reports(session: AsyncSession) -> list[PublicReportSummary]:
    """The newest public version of each campaign, newest campaign first."""
    seen: set[uuid.UUID] = set()
    out = []
    for r in await public.list_public(session):
        if r.campaign.id not in seen:
            seen.add(r.campaign.id)
            out.append(r)
    return out


async def load(session: AsyncSession, report_id: uuid.UUID) -> PublicReport:
    return await public.load(session, await public.reference(session, report_id))


@dataclass
class ChangeRow:
    code: str
    name: str
    level: str
    value: Decimal | None
    previous: Decimal | None
    points: Decimal | None
    significance: str
    note: str = ""


@dataclass
class Change:
    previous: PublicReportSummary
    overall_now: Decimal | None
    overall_before: Decimal | None
    points: Decimal | None
    significance: str
    rows: list[ChangeRow] = field(default_factory=list)


def _points(now: Decimal | None, before: Decimal | None) -> Decimal | None:
    return None if now is None or before is None else Decimal(now) - Decimal(before)


async def _links(
    session: AsyncSession, before: uuid.UUID, after: uuid.UUID
) -> dict[uuid.UUID, uuid.UUID]:
    old, new = await session.get(Campaign, before), await session.get(Campaign, after)
    if old is None or new is None:  # pragma: no cover - reports keep their campaigns
        return {}
    return await successor_links(session, old.map_date, new.map_date)


async def previous_of(session: AsyncSession, report: PublicReport) -> PublicReportSummary | None:
    """The newest public report of an earlier year."""
    earlier = [r for r in await latest_reports(session) if r.campaign.year < report.campaign.year]
    return earlier[0] if earlier else None


async def change(session: AsyncSession, report: PublicReport) -> Change | None:
    """The change against the previous public campaign, per ranked agency."""
    prev_summary = await previous_of(session, report)
    if prev_summary is None:
        return None
    before = await load(session, prev_summary.id)
    links = await _links(session, before.campaign.id, report.campaign.id)
    old_rows: dict[uuid.UUID, PublicRankingRow] = {
        r.agency_id: r for rows in before.rankings.values() for r in rows
    }
    carried: dict[uuid.UUID, list[PublicRankingRow]] = {}
    for unit, row in old_rows.items():
        carried.setdefault(fx.successor_of(unit, links), []).append(row)
    now, was = report.total.index, before.total.index
    result = Change(
        previous=prev_summary,
        overall_now=now.value if now else None,
        overall_before=was.value if was else None,
        points=_points(now.value if now else None, was.value if was else None),
        significance=significance_vi(
            overlaps(
                now.ci_low if now else None,
                now.ci_high if now else None,
                was.ci_low if was else None,
                was.ci_high if was else None,
            )
        ),
    )
    for level, rows in report.rankings.items():
        for r in rows:
            olds = carried.get(r.agency_id, [])
            note = ""
            old = None
            if len(olds) == 1:
                old = olds[0]
                if old.agency_id != r.agency_id:
                    note = f"kế thừa {old.agency_code}"
            elif len(olds) > 1:
                codes = ", ".join(sorted(o.agency_code for o in olds))
                note = f"hợp nhất từ {codes}: không so sánh trên số liệu đã công bố"
            result.rows.append(
                ChangeRow(
                    code=r.agency_code,
                    name=r.agency_name,
                    level=level,
                    value=r.value,
                    previous=old.value if old else None,
                    points=_points(r.value, old.value if old else None),
                    significance=significance_vi(
                        overlaps(r.ci_low, r.ci_high, old.ci_low, old.ci_high) if old else None
                    ),
                    note=note,
                )
            )
    return result


# ---- agencies ----------------------------------------------------------------------------------


async def agency(session: AsyncSession, report_id: uuid.UUID, code: str) -> PublicAgencySummary:
    ref = await public.reference(session, report_id)
    found = next((a for a in (await public.agencies(session, ref)).items if a.code == code), None)
    if found is None:
        raise NotFound("agency")
    return found


@dataclass
class TrendPoint:
    year: int
    campaign: str
    report_id: uuid.UUID
    value: Decimal | None
    low: Decimal | None
    high: Decimal | None
    note: str = ""


async def trend(session: AsyncSession, agency_id: uuid.UUID) -> list[TrendPoint]:
    """The agency's overall index in every public campaign, oldest first; in campaigns before
    a rename or merger, its one predecessor's (several predecessors: no value)."""
    reports = list(reversed(await latest_reports(session)))
    points = []
    for summary in reports:
        report = await load(session, summary.id)
        cells = {c.key: c for c in report.breakdowns.get("agency", [])}
        cell = cells.get(str(agency_id))
        note = ""
        if cell is None and reports:
            links = await _links(session, report.campaign.id, reports[-1].campaign.id)
            preds = [
                cells[str(u)]
                for u in links
                if str(u) in cells and fx.successor_of(u, links) == agency_id
            ]
            if len(preds) == 1:
                cell, note = preds[0], f"số liệu của {preds[0].label}"
            elif preds:
                note = "hợp nhất từ nhiều đơn vị"
        if cell is None and not note:
            continue
        node = cell.index if cell else None
        points.append(
            TrendPoint(
                year=report.campaign.year,
                campaign=report.campaign.name,
                report_id=report.id,
                value=node.value if node else None,
                low=node.ci_low if node else None,
                high=node.ci_high if node else None,
                note=note,
            )
        )
    return points


async def latest_with_agency(
    session: AsyncSession, code: str
) -> tuple[PublicReportSummary, PublicAgencySummary]:
    """The newest public report that has this agency (for the embed and the badge)."""
    for summary in await latest_reports(session):
        ref = await public.reference(session, summary.id)
        for a in (await public.agencies(session, ref)).items:
            if a.code == code:
                return summary, a
    raise NotFound("agency")


@dataclass
class PlanStatus:
    review_status: str
    status: str
    targets: list[str]
    actions: int
    done: int


REVIEW_VI = {
    "pending": "đang chờ Sở Nội vụ xem xét",
    "approved": "đã được Sở Nội vụ chấp thuận",
    "changes_requested": "Sở Nội vụ đề nghị bổ sung, điều chỉnh",
}
STATUS_VI = {
    "no_actions": "chưa có hành động nào",
    "in_progress": "đang thực hiện",
    "completed": "đã hoàn thành",
}


async def plan_status(
    session: AsyncSession, campaign_id: uuid.UUID, agency_id: uuid.UUID
) -> PlanStatus | None:
    """The public face of an agency's improvement plan: status and targets, no free text."""
    plan = await session.scalar(
        access.readable_public_plans().where(
            col(ImprovementPlan.campaign_id) == campaign_id,
            col(ImprovementPlan.agency_id) == agency_id,
        )
    )
    if plan is None:
        return None
    statuses = (
        await session.scalars(
            sa.select(col(PlanAction.status)).where(col(PlanAction.plan_id) == plan.id)
        )
    ).all()
    if not statuses:
        status = "no_actions"
    elif all(s in (ActionStatus.done, ActionStatus.cancelled) for s in statuses):
        status = "completed"
    else:
        status = "in_progress"
    return PlanStatus(
        review_status=REVIEW_VI.get(plan.review_status, plan.review_status),
        status=STATUS_VI[status],
        targets=[t["label_vi"] for t in plan.targets],
        actions=len(statuses),
        done=sum(1 for s in statuses if s == ActionStatus.done),
    )


# ---- chart rows --------------------------------------------------------------------------------


def _note(node: PublicIndexNode | PublicRankingRow) -> str:
    return "độ tin cậy thấp" if node.low_reliability and not node.suppressed else ""


def element_bars(report: PublicReport) -> list[Bar]:
    return [
        Bar(e.label_vi, e.value, e.ci_low, e.ci_high, _note(e))
        for e in public.elements(report.total.index)
    ]


def ranking_bars(rows: list[PublicRankingRow]) -> list[Bar]:
    return [
        Bar(
            f"{r.rank or '—'}. {r.agency_name}",
            r.value,
            r.ci_low,
            r.ci_high,
            _note(r),
        )
        for r in rows
    ]


def criterion_bars(summary: PublicAgencySummary) -> list[Bar]:
    return [Bar(c.label_vi, c.value, c.ci_low, c.ci_high) for c in summary.criteria]


def trend_bars(points: list[TrendPoint]) -> list[Bar]:
    return [Bar(str(p.year), p.value, p.low, p.high, p.note) for p in points]


elements_of = public.elements
