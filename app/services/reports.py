"""Publishing: an immutable snapshot of every figure, and its renderings (JSON, CSV, XLSX).

The snapshot is computed once, when the campaign is published (or re-published, which makes a
new version). Reading a report never touches the forms again: the figures, the ETag and the
exports all come from the stored snapshot.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import uuid
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, NamedTuple

import sqlalchemy as sa
from openpyxl import Workbook
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.errors import NotFound
from app.models.campaign import Campaign
from app.models.identity import Role, Scope
from app.models.questionnaire import Questionnaire
from app.models.report import Report, ReportPage, ReportSummary
from app.services import access, audit, plans
from app.services.index.compute import campaign_index
from app.services.index.rankings import ranking
from app.services.paging import cursor_int, decode_cursor, keyset_page
from app.services.principal import Principal

BREAKDOWNS: dict[str, str] = {
    "agency": "Theo cơ quan, đơn vị",
    "level": "Theo cấp hành chính",
    "sector": "Theo lĩnh vực",
    "channel": "Theo kênh thu phiếu",
    "respondent_type": "Theo đối tượng",
}
RANKED_LEVELS = ("department", "district", "commune")


def canonical(content: Any) -> bytes:
    return json.dumps(content, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()


async def _inputs(
    session: AsyncSession, campaign_id: uuid.UUID, q: Questionnaire
) -> tuple[str, int]:
    """A hash of exactly what was counted: every valid form's id and version, and the
    questionnaire definition. Two snapshots with the same hash were computed from the same data."""
    row = (
        await session.execute(
            sa.text(
                """SELECT count(*),
                          encode(sha256(convert_to(coalesce(
                              string_agg(id::text || ':' || version::text, ',' ORDER BY id),
                              ''), 'UTF8')), 'hex')
                   FROM submissions WHERE campaign_id = :c AND state = 'valid'"""
            ),
            {"c": campaign_id},
        )
    ).one()
    definition = hashlib.sha256(canonical(q.definition)).hexdigest()
    return hashlib.sha256(f"{row[1]}:{definition}".encode()).hexdigest(), int(row[0])


# Computes the snapshot with every right: a report is the whole campaign, whoever publishes it.
SYSTEM = Principal(
    kind="user", id=uuid.UUID(int=0), name="system", scopes=frozenset(Scope), role=Role.admin
)


async def snapshot(
    session: AsyncSession, actor: Principal | None, campaign: Campaign, reason: str | None
) -> Report:
    """The next version of a published campaign's report, computed over the whole campaign.

    Called by the campaigns service when a campaign is published or re-published (the state
    rules live there). `actor` None is the system (the demo loader)."""
    q = await session.get(Questionnaire, campaign.questionnaire_id)
    if q is None:  # pragma: no cover - a foreign key guarantees it
        raise NotFound("questionnaire")
    cutoff = datetime.now(UTC)
    inputs_hash, forms = await _inputs(session, campaign.id, q)
    unscoped = SYSTEM
    total = await campaign_index(session, unscoped, campaign.id)
    content: dict[str, Any] = {
        "campaign": {
            "id": str(campaign.id),
            "code": campaign.code,
            "name": campaign.name,
            "year": campaign.year,
            "period_start": campaign.period_start.isoformat(),
            "period_end": campaign.period_end.isoformat(),
            "map_date": campaign.map_date.isoformat(),
        },
        "method": total.method,
        "questionnaire": {"code": total.questionnaire_code, "version": total.questionnaire_version},
        "thresholds": total.thresholds,
        "data_cutoff": cutoff.isoformat(),
        "inputs_hash": inputs_hash,
        "forms_counted": forms,
        "total": total.total.model_dump(mode="json"),
        "breakdowns": {},
        "rankings": {},
    }
    for group_by in BREAKDOWNS:
        result = await campaign_index(session, unscoped, campaign.id, group_by=group_by)
        content["breakdowns"][group_by] = [c.model_dump(mode="json") for c in result.groups]
    for level in RANKED_LEVELS:
        ranked = await ranking(session, unscoped, campaign.id, level)
        if ranked.rows:
            content["rankings"][level] = [r.model_dump(mode="json") for r in ranked.rows]
    version = 1 + int(
        await session.scalar(
            sa.select(sa.func.coalesce(sa.func.max(col(Report.version)), 0)).where(
                col(Report.campaign_id) == campaign.id
            )
        )
        or 0
    )
    content["version"] = version
    report = Report(
        campaign_id=campaign.id,
        version=version,
        method=total.method,
        questionnaire_code=total.questionnaire_code,
        questionnaire_version=total.questionnaire_version,
        data_cutoff=cutoff,
        inputs_hash=inputs_hash,
        forms_counted=forms,
        content=content,
        etag='"' + hashlib.sha256(canonical(content)).hexdigest()[:32] + '"',
        published_by=actor.id if actor is not None else None,
    )
    session.add(report)
    await session.flush()
    await audit.record(
        session,
        actor,
        "report.publish",
        object_type="report",
        object_id=report.id,
        summary={
            "campaign_id": str(campaign.id),
            "version": version,
            "inputs_hash": inputs_hash,
            "reason": reason,
        },
    )
    # Every measured agency gets its improvement plan, targets proposed from this version.
    await plans.propose(session, actor, campaign, report)
    return report


class ReportRef(NamedTuple):
    """What a read needs before the body: whether the caller may see it, and its ETag."""

    id: uuid.UUID
    campaign_id: uuid.UUID
    etag: str


def _refs(principal: Principal) -> sa.Select[uuid.UUID, uuid.UUID, str]:
    return access.readable_reports(principal).with_only_columns(
        col(Report.id), col(Report.campaign_id), col(Report.etag)
    )


async def reference(session: AsyncSession, principal: Principal, report_id: uuid.UUID) -> ReportRef:
    row = (await session.execute(_refs(principal).where(col(Report.id) == report_id))).first()
    if row is None:
        raise NotFound("report")
    return ReportRef(*row)


async def latest(session: AsyncSession, principal: Principal, campaign_id: uuid.UUID) -> ReportRef:
    await access.require_campaign(session, principal, campaign_id)
    row = (
        await session.execute(
            _refs(principal)
            .where(col(Report.campaign_id) == campaign_id)
            .order_by(col(Report.version).desc())
            .limit(1)
        )
    ).first()
    if row is None:
        raise NotFound("report")
    return ReportRef(*row)


async def list_reports(
    session: AsyncSession,
    principal: Principal,
    campaign_id: uuid.UUID,
    *,
    limit: int,
    cursor: str | None,
) -> ReportPage:
    await access.require_campaign(session, principal, campaign_id)
    query = (
        access.readable_reports(principal)
        .where(col(Report.campaign_id) == campaign_id)
        .order_by(col(Report.version))
    )
    after = decode_cursor(cursor)
    if after is not None:
        query = query.where(col(Report.version) > cursor_int(after, "version"))
    rows, next_cursor = await keyset_page(
        session, query, limit=limit, key=lambda r: {"version": r.version}
    )
    return ReportPage(
        items=[ReportSummary.model_validate(r, from_attributes=True) for r in rows],
        next_cursor=next_cursor,
    )


# ---- renderings --------------------------------------------------------------------------------

COLUMNS = [
    "breakdown",
    "cell_key",
    "cell_label",
    "n_respondents",
    "node_id",
    "node_kind",
    "label_vi",
    "value",
    "ci_low",
    "ci_high",
    "n",
    "low_reliability",
    "suppressed",
]
HEADINGS_VI = [
    "Nhóm",
    "Mã nhóm",
    "Tên nhóm",
    "Số phiếu",
    "Mã chỉ số",
    "Loại chỉ số",
    "Tên chỉ số",
    "Giá trị (%)",
    "Cận dưới 95%",
    "Cận trên 95%",
    "Số trả lời hợp lệ",
    "Độ tin cậy thấp",
    "Bị ẩn",
]
KINDS_VI = {
    "overall": "Chỉ số chung",
    "pillar": "Trụ cột",
    "element": "Yếu tố",
    "criterion": "Tiêu chí",
}


def _number(value: Any) -> float | None:
    return None if value is None else float(value)


def _rows(breakdown: str, cell: dict[str, Any]) -> list[list[Any]]:
    out: list[list[Any]] = []

    def walk(node: dict[str, Any] | None) -> None:
        if node is None:
            return
        out.append(
            [
                breakdown,
                cell["key"],
                cell["label"],
                cell["n_respondents"],
                node["id"],
                node["kind"],
                node["label_vi"],
                _number(node["value"]),
                _number(node["ci_low"]),
                _number(node["ci_high"]),
                node["n"],
                node["low_reliability"],
                node["suppressed"],
            ]
        )
        for child in node["children"]:
            walk(child)

    walk(cell.get("index"))
    return out


def table(content: dict[str, Any]) -> list[list[Any]]:
    rows = _rows("total", content["total"])
    for breakdown, cells in content["breakdowns"].items():
        for cell in cells:
            rows.extend(_rows(breakdown, cell))
    return rows


def to_csv(content: dict[str, Any]) -> bytes:
    """UTF-8 with a BOM, so Excel opens the Vietnamese text correctly; values to 2 decimals."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    for row in table(content):
        writer.writerow(
            [
                "" if v is None else (f"{v:.2f}" if isinstance(v, float) and i in (7, 8, 9) else v)
                for i, v in enumerate(row)
            ]
        )
    return ("\ufeff" + buffer.getvalue()).encode("utf-8")


def to_xlsx(content: dict[str, Any]) -> bytes:
    """One sheet per breakdown (and per ranking), Vietnamese headings, numbers as numbers."""
    book = Workbook()
    book.remove(book.worksheets[0])
    first = book.create_sheet("Tổng hợp")
    sheets = [(first, "total", [content["total"]])]
    for breakdown, cells in content["breakdowns"].items():
        sheets.append(
            (book.create_sheet(BREAKDOWNS.get(breakdown, breakdown)[:31]), breakdown, cells)
        )
    for sheet, breakdown, cells in sheets:
        sheet.append(HEADINGS_VI)
        for cell in cells:
            for row in _rows(breakdown, cell):
                row[5] = KINDS_VI.get(row[5], row[5])
                row[11] = "Có" if row[11] else "Không"
                row[12] = "Có" if row[12] else "Không"
                sheet.append(row)
        for column in ("H", "I", "J"):
            for c in sheet[column][1:]:
                c.number_format = "0.00"
    for level, rows in content["rankings"].items():
        sheet = book.create_sheet(f"Xếp hạng {level}"[:31])
        sheet.append(
            [
                "Hạng",
                "Mã đơn vị",
                "Tên đơn vị",
                "Giá trị (%)",
                "Cận dưới 95%",
                "Cận trên 95%",
                "Số phiếu",
                "Phân biệt được với đơn vị sau",
            ]
        )
        for r in rows:
            sheet.append(
                [
                    r["rank"],
                    r["agency_code"],
                    r["agency_name"],
                    _number(r["value"]),
                    _number(r["ci_low"]),
                    _number(r["ci_high"]),
                    r["n_respondents"],
                    {True: "Có", False: "Không", None: ""}[r["distinguishable_from_next"]],
                ]
            )
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


# Reports never change once stored (a trigger refuses it), so each rendering is made once per
# process and kept, least recently used first out, within a byte budget: a fetcher polling a
# province's report is answered from memory, not by decoding and re-encoding the snapshot.
_RENDERINGS: OrderedDict[tuple[uuid.UUID, str, str], bytes] = OrderedDict()
RENDERINGS_BUDGET = 64 * 2**20
_RENDERERS: dict[str, Callable[[dict[str, Any]], bytes]] = {
    "json": canonical,
    "csv": to_csv,
    "xlsx": to_xlsx,
}


async def rendering(session: AsyncSession, ref: ReportRef, fmt: str) -> bytes:
    """The report as `json` (canonical), `csv` or `xlsx` bytes."""
    key = (ref.id, ref.etag, fmt)
    body = _RENDERINGS.get(key)
    if body is not None:
        _RENDERINGS.move_to_end(key)
        return body
    content = await session.scalar(sa.select(col(Report.content)).where(col(Report.id) == ref.id))
    if content is None:  # pragma: no cover - the reference was just read
        raise NotFound("report")
    body = _RENDERERS[fmt](content)
    _RENDERINGS[key] = body
    total = sum(len(b) for b in _RENDERINGS.values())
    while total > RENDERINGS_BUDGET and len(_RENDERINGS) > 1:
        _, dropped = _RENDERINGS.popitem(last=False)
        total -= len(dropped)
    return body
