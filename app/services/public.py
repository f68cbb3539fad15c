"""Public results: published reports as anyone may read them, without a token.

Which reports are public is decided in `access.readable_public_reports`. What a public read
shows is decided here, by building each output from a whitelist of the snapshot's fields: the
figures of the index tree, the rankings, the counts of respondents. Anything else in the
snapshot (item shares, dossier ratings, full-precision values, anything added later) is left
out by construction, and a suppressed figure's value and interval are always null.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from decimal import Decimal
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app import cache as caches
from app.cache import Cache
from app.errors import NotFound
from app.models.agency import Agency
from app.models.campaign import Campaign
from app.models.public import (
    PublicAgencyList,
    PublicAgencySummary,
    PublicCampaign,
    PublicCell,
    PublicCriterion,
    PublicIndexNode,
    PublicityOut,
    PublicRankingRow,
    PublicReport,
    PublicReportSummary,
    ReportPublicity,
)
from app.models.report import Report
from app.services import access, audit, report_files, reports
from app.services.principal import Principal

PREFIX = "/public/v1"


class PublicRef(NamedTuple):
    id: uuid.UUID
    campaign_id: uuid.UUID
    etag: str


# ---- publicity (staff) -------------------------------------------------------------------------


async def _default_public(session: AsyncSession, campaign_id: uuid.UUID) -> bool:
    return bool(
        await session.scalar(
            sa.select(access.province_wide(col(Campaign.id), col(Campaign.map_date))).where(
                col(Campaign.id) == campaign_id
            )
        )
    )


async def publicity(
    session: AsyncSession, principal: Principal, report_id: uuid.UUID
) -> PublicityOut:
    ref = await reports.reference(session, principal, report_id)
    row = await session.get(ReportPublicity, report_id)
    if row is None:
        return PublicityOut(
            report_id=report_id,
            is_public=await _default_public(session, ref.campaign_id),
            explicit=False,
        )
    return PublicityOut(
        report_id=report_id,
        is_public=row.is_public,
        explicit=True,
        reason=row.reason,
        set_by=row.set_by,
        set_at=row.set_at,
    )


async def set_publicity(
    session: AsyncSession,
    actor: Principal,
    report_id: uuid.UUID,
    is_public: bool,
    reason: str | None,
) -> PublicityOut:
    """Make a published report public or not (audited as `report.publicity`)."""
    await reports.reference(session, actor, report_id)
    row = await session.get(ReportPublicity, report_id, with_for_update=True)
    before = None if row is None else row.is_public
    if row is None:
        row = ReportPublicity(report_id=report_id, is_public=is_public)
        session.add(row)
    row.is_public = is_public
    row.reason = reason
    row.set_by = actor.id
    row.set_at = sa.func.now()  # type: ignore[assignment]
    await session.flush()
    await session.refresh(row)
    await audit.record(
        session,
        actor,
        "report.publicity",
        object_type="report",
        object_id=report_id,
        summary={"is_public": is_public, "before": before, "reason": reason},
    )
    return await publicity(session, actor, report_id)


# ---- what a public read shows ------------------------------------------------------------------


def _node(node: dict[str, Any], hidden: bool) -> PublicIndexNode:
    hide = hidden or bool(node["suppressed"])
    return PublicIndexNode(
        id=node["id"],
        kind=node["kind"],
        label_vi=node["label_vi"],
        value=None if hide else report_files.published(node, "value"),
        ci_low=None if hide else report_files.published(node, "ci_low"),
        ci_high=None if hide else report_files.published(node, "ci_high"),
        n=node["n"],
        low_reliability=node["low_reliability"],
        suppressed=hide,
        children=[_node(c, hide) for c in node.get("children", [])],
    )


def _cell(cell: dict[str, Any]) -> PublicCell:
    index = cell.get("index")
    return PublicCell(
        key=cell["key"],
        label=cell["label"],
        n_respondents=cell["n_respondents"],
        low_reliability=cell["low_reliability"],
        suppressed=cell["suppressed"],
        index=None if index is None else _node(index, bool(cell["suppressed"])),
    )


def _ranking_row(r: dict[str, Any]) -> PublicRankingRow:
    hide = bool(r["suppressed"])
    return PublicRankingRow(
        agency_id=r["agency_id"],
        agency_code=r["agency_code"],
        agency_name=r["agency_name"],
        rank=None if hide else r["rank"],
        value=None if hide else report_files.published(r, "value"),
        ci_low=None if hide else report_files.published(r, "ci_low"),
        ci_high=None if hide else report_files.published(r, "ci_high"),
        n_respondents=r["n_respondents"],
        distinguishable_from_next=None if hide else r["distinguishable_from_next"],
        not_distinguishable_from=[] if hide else list(r["not_distinguishable_from"]),
        low_reliability=r["low_reliability"],
        suppressed=hide,
    )


def public_report(report_id: uuid.UUID, content: dict[str, Any]) -> PublicReport:
    return PublicReport(
        id=report_id,
        version=content["version"],
        campaign=PublicCampaign.model_validate(content["campaign"]),
        method=content["method"],
        questionnaire=dict(content["questionnaire"]),
        thresholds=dict(content["thresholds"]),
        data_cutoff=content["data_cutoff"],
        forms_counted=content["forms_counted"],
        total=_cell(content["total"]),
        breakdowns={
            name: [_cell(c) for c in content["breakdowns"].get(name, [])]
            for name in report_files.BREAKDOWNS
            if name in content["breakdowns"]
        },
        rankings={
            level: [_ranking_row(r) for r in rows] for level, rows in content["rankings"].items()
        },
    )


def links(report_id: uuid.UUID) -> dict[str, str]:
    base = f"{PREFIX}/reports/{report_id}"
    return {
        "json": base,
        "csv": f"{base}/export.csv",
        "xlsx": f"{base}/export.xlsx",
        "agencies": f"{base}/agencies",
        "html": f"/public/reports/{report_id}",
    }


# ---- reads -------------------------------------------------------------------------------------


async def list_public(session: AsyncSession) -> list[PublicReportSummary]:
    rows = (
        await session.execute(
            access.readable_public_reports()
            .with_only_columns(
                col(Report.id),
                col(Report.version),
                col(Report.published_at),
                col(Report.forms_counted),
                col(Report.content)["campaign"],
                col(Report.content)["total"]["index"],
            )
            .order_by(col(Campaign.year).desc(), col(Campaign.code), col(Report.version).desc())
        )
    ).all()
    out = []
    for rid, version, published_at, forms, campaign, index in rows:
        hide = index is None or index["suppressed"]
        out.append(
            PublicReportSummary(
                id=rid,
                version=version,
                campaign=PublicCampaign.model_validate(campaign),
                published_at=published_at,
                forms_counted=forms,
                overall=None if hide else report_files.published(index, "value"),
                ci_low=None if hide else report_files.published(index, "ci_low"),
                ci_high=None if hide else report_files.published(index, "ci_high"),
                links=links(rid),
            )
        )
    return out


async def reference(session: AsyncSession, report_id: uuid.UUID) -> PublicRef:
    row = (
        await session.execute(
            access.readable_public_reports()
            .with_only_columns(col(Report.id), col(Report.campaign_id), col(Report.etag))
            .where(col(Report.id) == report_id)
        )
    ).first()
    if row is None:
        raise NotFound("report")
    return PublicRef(*row)


async def latest_of_campaign(session: AsyncSession, campaign_id: uuid.UUID) -> PublicRef | None:
    row = (
        await session.execute(
            access.readable_public_reports()
            .with_only_columns(col(Report.id), col(Report.campaign_id), col(Report.etag))
            .where(col(Report.campaign_id) == campaign_id)
            .order_by(col(Report.version).desc())
            .limit(1)
        )
    ).first()
    return None if row is None else PublicRef(*row)


def _weigh(report: PublicReport) -> int:
    """What a public report weighs: about the length of its JSON (paid once, on a miss)."""
    return len(report.model_dump_json())


_CACHE: Cache[tuple[uuid.UUID, str], PublicReport] = caches.named("public.reports", _weigh)


async def load(session: AsyncSession, ref: PublicRef) -> PublicReport:
    """The public shape of a report (kept in memory: reports never change)."""
    key = (ref.id, ref.etag)
    found = _CACHE.get(key)
    if found is not None:
        return found
    report = public_report(ref.id, await reports.stored_content(session, ref.id))
    _CACHE.put(key, report)
    return report


def etag(ref: PublicRef, fmt: str) -> str:
    return ref.etag[:-1] + f'-public-{fmt}"'


async def rendering(session: AsyncSession, ref: PublicRef, fmt: str) -> bytes:
    report = await load(session, ref)
    if fmt == "json":
        return report.model_dump_json().encode()
    content = report.model_dump(mode="json")
    codes = await reports.cell_codes(session, content)
    if fmt == "csv":
        return report_files.to_csv(content, codes)
    return report_files.to_xlsx(content, codes)


def _criteria(node: PublicIndexNode) -> list[tuple[str, PublicIndexNode]]:
    """(element id, criterion) for every criterion under `node`."""
    out: list[tuple[str, PublicIndexNode]] = []
    for child in node.children:
        if child.kind == "criterion":
            out.append((node.id, child))
        else:
            out.extend(_criteria(child))
    return out


def elements(node: PublicIndexNode | None) -> list[PublicIndexNode]:
    if node is None:
        return []
    out: list[PublicIndexNode] = []
    for child in node.children:
        if child.kind == "element":
            out.append(child.model_copy(update={"children": []}))
        elif child.kind == "pillar":
            out.extend(elements(child))
    return out


def _summary(
    agency: Agency,
    cell: PublicCell,
    ranked: tuple[PublicRankingRow, int] | None,
    province: Mapping[str, PublicIndexNode],
) -> PublicAgencySummary:
    """One agency's summary from its cell of the report: the figures (none where the cell is
    suppressed), its rank among the `ranked` agencies of its level, and its criteria against
    the `province`'s."""
    node = cell.index
    hide = node is None or node.suppressed
    rank_row, among = ranked or (None, None)
    criteria = []
    for element_id, c in _criteria(node) if node else []:
        p = province.get(c.id)
        pv = p.value if p is not None else None
        diff = None if c.value is None or pv is None else Decimal(c.value) - Decimal(pv)
        criteria.append(  # the criterion's own figures, its element and the province's
            PublicCriterion(
                **c.model_dump(), element_id=element_id, province_value=pv, difference=diff
            )
        )
    criteria.sort(key=lambda c: (c.value is None, -(c.value or 0), c.id))
    return PublicAgencySummary(
        agency_id=agency.id,
        code=agency.code,
        name=agency.name,
        level=agency.level,
        n_respondents=cell.n_respondents,
        low_reliability=cell.low_reliability,
        suppressed=cell.suppressed,
        overall=None if hide or node is None else node.value,
        ci_low=None if hide or node is None else node.ci_low,
        ci_high=None if hide or node is None else node.ci_high,
        rank=rank_row.rank if rank_row else None,
        ranked_among=among if rank_row else None,
        not_distinguishable_from=rank_row.not_distinguishable_from if rank_row else [],
        elements=elements(node),
        criteria=criteria,
    )


async def agencies(session: AsyncSession, ref: PublicRef) -> PublicAgencyList:
    """Per-agency summaries: the overall index, the elements, the rank among the agencies of
    its level, and the criteria from strongest to weakest against the province."""
    report = await load(session, ref)
    cells = report.breakdowns.get("agency", [])
    ids = [uuid.UUID(c.key) for c in cells]
    found = {
        a.id: a
        for a in (await session.scalars(sa.select(Agency).where(col(Agency.id).in_(ids)))).all()
    }
    ranked: dict[str, tuple[PublicRankingRow, int]] = {}
    for rows in report.rankings.values():
        for row in rows:
            ranked[str(row.agency_id)] = (row, len(rows))
    province = {c.id: c for _, c in (_criteria(report.total.index) if report.total.index else [])}
    items = []
    for cell in cells:
        agency = found.get(uuid.UUID(cell.key))
        if agency is None:  # pragma: no cover - a report's agencies are never deleted
            continue
        items.append(_summary(agency, cell, ranked.get(cell.key), province))
    items.sort(key=lambda a: a.code)
    return PublicAgencyList(report_id=ref.id, items=items)
