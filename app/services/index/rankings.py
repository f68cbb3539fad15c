"""Rankings of agencies of one level (2.12) and change against a baseline campaign (2.13)."""

from __future__ import annotations

import uuid
from datetime import date

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.errors import FieldError, Invalid, NotFound
from app.models.agency import Agency, AgencySuccessor
from app.models.campaign import Campaign
from app.models.index import ChangeReport, ChangeRow, IndexNode, Ranking, RankingRow
from app.models.questionnaire import Questionnaire
from app.services import access, instrument
from app.services.index import counts as sql
from app.services.index import formulas as fx
from app.services.index import rollups
from app.services.index.compute import OVERALL, Plan, _works, campaign_index
from app.services.principal import Principal


def find(node: IndexNode | None, node_id: str) -> IndexNode | None:
    if node is None:
        return None
    if node.id == node_id:
        return node
    for child in node.children:
        found = find(child, node_id)
        if found is not None:
            return found
    return None


async def _agencies(session: AsyncSession, ids: list[uuid.UUID]) -> dict[uuid.UUID, Agency]:
    rows = (await session.scalars(sa.select(Agency).where(col(Agency.id).in_(ids)))).all()
    return {a.id: a for a in rows}


async def ranking(
    session: AsyncSession,
    principal: Principal,
    campaign_id: uuid.UUID,
    level: str,
    node: str = OVERALL,
) -> Ranking:
    result = await campaign_index(session, principal, campaign_id, group_by="agency")
    if result.total.index is not None and find(result.total.index, node) is None:
        raise Invalid(
            "No such index node.",
            [FieldError("/query/node", "overall, a pillar, element or criterion id")],
        )
    agencies = await _agencies(session, [uuid.UUID(c.key) for c in result.groups])
    values: dict[str, float | None] = {}
    intervals: dict[str, tuple[float, float] | None] = {}
    cells = {}
    for c in result.groups:
        agency = agencies.get(uuid.UUID(c.key))
        if agency is None or agency.level != level or not agency.is_measured:
            continue
        n = find(c.index, node)
        cells[c.key] = (agency, c, n)
        values[c.key] = n.value if n is not None else None
        intervals[c.key] = (
            (n.ci_low, n.ci_high)
            if n is not None and n.ci_low is not None and n.ci_high is not None
            else None
        )
    ranked = fx.rank(values, intervals)
    rows = []
    for r in ranked:
        agency, c, n = cells[r.unit]
        rows.append(
            RankingRow(
                agency_id=agency.id,
                agency_code=agency.code,
                agency_name=agency.name,
                value=r.value,
                value_display=fx.display_text(r.value),
                exact=r.value,
                ci_low=n.ci_low if n else None,
                ci_low_display=n.ci_low_display if n else None,
                ci_high=n.ci_high if n else None,
                ci_high_display=n.ci_high_display if n else None,
                n_respondents=c.n_respondents,
                rank=r.rank,
                distinguishable_from_next=r.distinguishable_from_next,
                not_distinguishable_from=[cells[u][0].code for u in r.not_distinguishable_from],
                low_reliability=c.low_reliability,
                suppressed=c.suppressed,
            )
        )
    return Ranking(
        campaign_id=campaign_id, level=level, node=node, provisional=result.provisional, rows=rows
    )


async def successor_links(
    session: AsyncSession, after: date, until: date
) -> dict[uuid.UUID, uuid.UUID]:
    """Predecessor → successor for the links that took effect between two map dates. A unit
    split into several keeps no single successor and is left out."""
    rows = await session.execute(
        sa.select(col(AgencySuccessor.predecessor_id), col(AgencySuccessor.successor_id)).where(
            col(AgencySuccessor.effective_on) > after,
            col(AgencySuccessor.effective_on) <= until,
            col(AgencySuccessor.kind) != "split_into",
        )
    )
    return dict(rows.all())


async def change(
    session: AsyncSession,
    principal: Principal,
    campaign_id: uuid.UUID,
    baseline_id: uuid.UUID,
    level: str,
    node: str = OVERALL,
) -> ChangeReport:
    """Difference in points and in rank per current unit; baseline units that were merged or
    renamed are folded into their successor by pooling their counts (2.8, 2.13)."""
    current = await ranking(session, principal, campaign_id, level, node)
    base_campaign = await access.readable_campaign(session, principal, baseline_id)
    this_campaign = await session.get(Campaign, campaign_id)
    if this_campaign is None:  # pragma: no cover - ranking found it
        raise NotFound("campaign")
    row = await session.get(Questionnaire, base_campaign.questionnaire_id)
    if row is None:  # pragma: no cover
        raise NotFound("questionnaire")
    plan = Plan.of(instrument.parsed(row))
    if plan.structure is None:
        raise Invalid(
            "The baseline campaign has no index.", [FieldError("/query/baseline", "no index")]
        )
    f = sql.Filters(readable_root=access.readable_root(principal))
    source = (
        await rollups.load(session, base_campaign.id, "agency", False)
        if await rollups.version(session, base_campaign.id) is not None
        else None
    )
    works, _ = await _works(session, plan, base_campaign, "agency", f, False, source)
    base_agencies = await _agencies(session, [uuid.UUID(k) for k in works])
    links = await successor_links(session, base_campaign.map_date, this_campaign.map_date)
    chosen = {
        uuid.UUID(k): w.items
        for k, w in works.items()
        if (a := base_agencies.get(uuid.UUID(k))) is not None and a.level == level and a.is_measured
    }
    merged = fx.merge_baseline(chosen, links)
    predecessors: dict[uuid.UUID, list[uuid.UUID]] = {}
    for unit in chosen:
        predecessors.setdefault(fx.successor_of(unit, links), []).append(unit)
    base_values: dict[uuid.UUID, float | None] = {}
    for unit, items in merged.items():
        indices = fx.compute_indices(plan.structure, items)
        base_values[unit] = _node_value(indices, node)
    base_ranked = {r.unit: r for r in fx.rank(base_values)}
    now_ranked = [
        fx.Ranked(r.agency_id, r.value, r.rank, r.distinguishable_from_next, ())
        for r in current.rows
    ]
    deltas = fx.changes(now_ranked, list(base_ranked.values()))
    codes = await _agencies(session, [u for ps in predecessors.values() for u in ps])
    rows = []
    for r in current.rows:
        b = base_ranked.get(r.agency_id)
        d = deltas[r.agency_id]
        rows.append(
            ChangeRow(
                **r.model_dump(),  # the agency, its value and its rank now
                baseline_value=b.value if b else None,
                baseline_value_display=fx.display_text(b.value) if b else None,
                points=d.points,
                points_display=fx.display_text(d.points),
                points_exact=d.points,
                baseline_rank=b.rank if b else None,
                rank_change=d.rank_change,
                predecessors=sorted(
                    codes[u].code
                    for u in predecessors.get(r.agency_id, [])
                    if u != r.agency_id and u in codes
                ),
            )
        )
    return ChangeReport(
        campaign_id=campaign_id, baseline_campaign_id=baseline_id, level=level, node=node, rows=rows
    )


def _node_value(indices: fx.Indices, node: str) -> float | None:
    if node == OVERALL:
        return indices.overall
    for table in (indices.pillars, indices.elements, indices.criteria):
        if node in table:
            return table[node]
    return None
