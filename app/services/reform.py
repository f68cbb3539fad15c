"""The SIPAS section of the administrative-reform report, as JSON and as a DOCX document.

The period is a year (`2020`), a quarter (`2020-Q1`..`Q4`) or a half-year (`2020-H1`, `H2`).
The index reported is that of the newest published campaign of the period's year or earlier
(the results in force during the period), with its change against the previous published
campaign; dissemination counts the records held within the period; the plans are those of the
reported campaign, with their actions' progress at the end of the period.
"""

from __future__ import annotations

import io
import re
import uuid
from collections import Counter
from collections.abc import Sequence
from datetime import date
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from docx import Document
from docx.enum.table import WD_TABLE_ALIGNMENT
from docx.enum.text import WD_ALIGN_PARAGRAPH
from docx.oxml.ns import qn
from docx.shared import Cm, Pt
from docx.table import Table
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.errors import FieldError, Invalid
from app.models.agency import Agency
from app.models.campaign import Campaign, CampaignAgency, CampaignState
from app.models.plans import ActionStatus, DisseminationRecord, ImprovementPlan, PlanAction
from app.models.reform import (
    ReformChange,
    ReformDissemination,
    ReformFigure,
    ReformPeriod,
    ReformPlan,
    ReformRanking,
    ReformRankingRow,
    ReformReport,
)
from app.models.report import Report
from app.services import access, report_files
from app.services.plans import apart, criteria_of
from app.services.principal import Principal

FONT = "Times New Roman"
PERIOD = re.compile(r"^(\d{4})(?:-(Q[1-4]|H[12]))?$")
QUARTERS_VI = {"Q1": "I", "Q2": "II", "Q3": "III", "Q4": "IV"}
LEVELS_VI = {
    "department": "Sở, ban, ngành",
    "district": "Ủy ban nhân dân cấp huyện",
    "commune": "Ủy ban nhân dân cấp xã",
}
METHODS_VI = {
    "meeting": "Hội nghị, cuộc họp",
    "notice": "Văn bản thông báo",
    "portal": "Đăng trên cổng thông tin",
    "media": "Báo chí, phát thanh, truyền hình",
}
REVIEW_VI = {
    "pending": "Chờ xem xét",
    "approved": "Đã chấp thuận",
    "changes_requested": "Đề nghị điều chỉnh",
}
STATUS_VI = {
    "no_actions": "Chưa có hành động",
    "in_progress": "Đang thực hiện",
    "completed": "Đã hoàn thành",
}
WEAKEST = 5
_REPORTED = (CampaignState.published, CampaignState.archived)


def parse_period(text: str) -> ReformPeriod:
    match = PERIOD.match(text)
    if match is None or not 1900 <= int(match[1]) <= 2999:
        raise Invalid(
            "The period is a year, a quarter or a half-year: 2020, 2020-Q1..2020-Q4, "
            "2020-H1 or 2020-H2.",
            [FieldError("/query/period", "not a period (2020, 2020-Q1, 2020-H1)")],
        )
    year, part = int(match[1]), match[2]
    if part is None:
        return ReformPeriod(
            code=text, label_vi=f"năm {year}", start=date(year, 1, 1), end=date(year, 12, 31)
        )
    if part.startswith("Q"):
        q = int(part[1])
        start = date(year, 3 * q - 2, 1)
        end = date(year + 1, 1, 1) if q == 4 else date(year, 3 * q + 1, 1)
        return ReformPeriod(
            code=text,
            label_vi=f"quý {QUARTERS_VI[part]} năm {year}",
            start=start,
            end=date.fromordinal(end.toordinal() - 1),
        )
    first = part == "H1"
    return ReformPeriod(
        code=text,
        label_vi=f"6 tháng {'đầu' if first else 'cuối'} năm {year}",
        start=date(year, 1 if first else 7, 1),
        end=date(year, 6, 30) if first else date(year, 12, 31),
    )


def _figure(node: dict[str, Any]) -> ReformFigure:
    hide = bool(node.get("suppressed"))
    return ReformFigure(
        id=node["id"],
        label_vi=node["label_vi"],
        value=None if hide else report_files.published(node, "value"),
        ci_low=None if hide else report_files.published(node, "ci_low"),
        ci_high=None if hide else report_files.published(node, "ci_high"),
    )


def _elements(node: dict[str, Any] | None) -> list[dict[str, Any]]:
    if node is None:
        return []
    out: list[dict[str, Any]] = []
    for child in node.get("children", []):
        if child["kind"] == "element":
            out.append(child)
        elif child["kind"] == "pillar":
            out.extend(_elements(child))
    return out


async def _reported(
    session: AsyncSession, principal: Principal, year: int, *, before: bool = False
) -> tuple[Report, Campaign] | None:
    """The latest report of the newest published campaign of `year` or earlier (before
    `year` with `before`)."""
    years = col(Campaign.year) < year if before else col(Campaign.year) <= year
    row = (
        await session.execute(
            access.readable_reports(principal)
            .add_columns(Campaign)
            .join(Campaign, col(Campaign.id) == col(Report.campaign_id))
            .where(years, col(Campaign.state).in_(_REPORTED))
            .order_by(col(Campaign.year).desc(), col(Report.published_at).desc())
            .limit(1)
        )
    ).first()
    return None if row is None else (row[0], row[1])


async def _bodies(session: AsyncSession, campaign: Campaign | None) -> tuple[str, str]:
    """(parent body in capitals, place) from the province at the top of the campaign."""
    if campaign is None:
        return "ỦY BAN NHÂN DÂN TỈNH", ""
    name = await session.scalar(
        sa.select(col(Agency.name))
        .join(CampaignAgency, col(CampaignAgency.agency_id) == col(Agency.id))
        .where(
            col(CampaignAgency.campaign_id) == campaign.id,
            col(Agency.level) == "province",
            col(Agency.parent_id).is_(None),
        )
        .order_by(col(Agency.code))
        .limit(1)
    )
    if not name:
        return "ỦY BAN NHÂN DÂN TỈNH", ""
    place = re.split(r"\btỉnh\s+", name, maxsplit=1, flags=re.IGNORECASE)
    where = place[1].strip() if len(place) == 2 else ""
    return ("ỦY BAN NHÂN DÂN TỈNH " + where).upper() if where else name.upper(), where


async def build(session: AsyncSession, principal: Principal, period_code: str) -> ReformReport:
    period = parse_period(period_code)
    found = await _reported(session, principal, period.start.year)
    report, campaign = found if found else (None, None)
    parent, place = await _bodies(session, campaign)
    content: dict[str, Any] = report.content if report else {}
    total = content.get("total", {}).get("index") if content else None
    change = None
    if campaign is not None and total is not None:
        prev = await _reported(session, principal, campaign.year, before=True)
        prev_total = prev[0].content["total"].get("index") if prev else None
        if prev is not None and prev_total is not None:
            now, was = _figure(total).value, _figure(prev_total).value
            change = ReformChange(
                previous_campaign=prev[1].name,
                previous_year=prev[1].year,
                previous_value=was,
                points=None if now is None or was is None else now - was,
                significant=apart(total, prev_total),
            )
    criteria = [_figure(c) for _, c in criteria_of(total)]
    weakest = sorted((c for c in criteria if c.value is not None), key=lambda c: (c.value, c.id))[
        :WEAKEST
    ]
    rankings = [
        ReformRanking(
            level=level,
            label_vi=LEVELS_VI.get(level, level),
            rows=[
                ReformRankingRow(
                    rank=None if r["suppressed"] else r["rank"],
                    agency_code=r["agency_code"],
                    agency_name=r["agency_name"],
                    value=None if r["suppressed"] else report_files.published(r, "value"),
                    ci_low=None if r["suppressed"] else report_files.published(r, "ci_low"),
                    ci_high=None if r["suppressed"] else report_files.published(r, "ci_high"),
                    n_respondents=r["n_respondents"],
                    not_distinguishable_from=[]
                    if r["suppressed"]
                    else r["not_distinguishable_from"],
                )
                for r in rows
            ],
        )
        for level, rows in content.get("rankings", {}).items()
    ]
    records = (
        await session.execute(
            access.readable_dissemination(principal)
            .add_columns(col(Agency.name))
            .join(Agency, col(Agency.id) == col(DisseminationRecord.agency_id))
            .where(
                col(DisseminationRecord.held_on) >= period.start,
                col(DisseminationRecord.held_on) <= period.end,
            )
            .order_by(
                col(DisseminationRecord.held_on), col(Agency.name), col(DisseminationRecord.id)
            )
        )
    ).all()
    dissemination = [
        ReformDissemination(
            agency_name=name,
            method=r.method,
            method_vi=METHODS_VI[r.method],
            held_on=r.held_on,
            audience=r.audience,
            participants=r.participants,
        )
        for r, name in records
    ]
    plans: list[ReformPlan] = []
    if campaign is not None:
        rows = (
            await session.execute(
                access.readable_plans(principal)
                .add_columns(col(Agency.code), col(Agency.name))
                .join(Agency, col(Agency.id) == col(ImprovementPlan.agency_id))
                .where(col(ImprovementPlan.campaign_id) == campaign.id)
                .order_by(col(Agency.code))
            )
        ).all()
        actions: dict[uuid.UUID, list[PlanAction]] = {}
        ids = [p.id for p, _, _ in rows]
        for a in (
            await session.scalars(sa.select(PlanAction).where(col(PlanAction.plan_id).in_(ids)))
        ).all():
            actions.setdefault(a.plan_id, []).append(a)
        finished = (ActionStatus.done, ActionStatus.cancelled)
        for plan, code, name in rows:
            mine = actions.get(plan.id, [])
            status = (
                "no_actions"
                if not mine
                else "completed"
                if all(a.status in finished for a in mine)
                else "in_progress"
            )
            plans.append(
                ReformPlan(
                    agency_code=code,
                    agency_name=name,
                    review_status=plan.review_status,
                    review_vi=REVIEW_VI[plan.review_status],
                    status=status,
                    status_vi=STATUS_VI[status],
                    targets=len(plan.targets),
                    actions=len(mine),
                    done=sum(1 for a in mine if a.status == ActionStatus.done),
                    overdue=sum(
                        1 for a in mine if a.status not in finished and a.due_on <= period.end
                    ),
                )
            )
    return ReformReport(
        period=period,
        issuing_body="SỞ NỘI VỤ",
        parent_body=parent,
        place=place,
        campaign_id=campaign.id if campaign else None,
        campaign_name=campaign.name if campaign else None,
        report_id=report.id if report else None,
        forms_counted=report.forms_counted if report else None,
        index=_figure(total) if total else None,
        change=change,
        elements=[_figure(e) for e in _elements(total)],
        rankings=rankings,
        weakest_criteria=weakest,
        dissemination=dissemination,
        dissemination_by_method=dict(Counter(d.method for d in dissemination)),
        plans=plans,
        plans_by_review=dict(Counter(p.review_status for p in plans)),
    )


# ---- DOCX --------------------------------------------------------------------------------------


def number(value: Decimal | None) -> str:
    return "—" if value is None else f"{value:.2f}".replace(".", ",")


def interval(f: ReformFigure | ReformRankingRow) -> str:
    if f.ci_low is None or f.ci_high is None:
        return "—"
    return f"{number(f.ci_low)} – {number(f.ci_high)}"


def _font(run: Any, size: float | None = None, bold: bool = False, italic: bool = False) -> None:
    run.font.name = FONT
    run._element.get_or_add_rPr().get_or_add_rFonts().set(qn("w:eastAsia"), FONT)
    if size:
        run.font.size = Pt(size)
    run.bold = bold or None
    run.italic = italic or None


def _para(
    cell_or_doc: Any,
    text: str,
    *,
    bold: bool = False,
    italic: bool = False,
    size: float | None = None,
    align: Any = None,
    first: bool = False,
) -> Any:
    p = cell_or_doc.paragraphs[0] if first else cell_or_doc.add_paragraph()
    run = p.add_run(text)
    _font(run, size, bold, italic)
    if align is not None:
        p.alignment = align
    return p


def _table(doc: Any, headings: list[str], rows: list[list[str]]) -> Table:
    table: Table = doc.add_table(rows=1, cols=len(headings))
    table.style = "Table Grid"
    table.alignment = WD_TABLE_ALIGNMENT.CENTER
    for cell, text in zip(table.rows[0].cells, headings, strict=True):
        _para(cell, text, bold=True, size=12, first=True, align=WD_ALIGN_PARAGRAPH.CENTER)
    for row in rows:
        cells = table.add_row().cells  # type: ignore[no-untyped-call]
        for cell, text in zip(cells, row, strict=True):
            _para(cell, text, size=12, first=True)
    return table


def _figures_table(doc: Any, label_heading: str, figures: Sequence[ReformFigure]) -> Table:
    """A table of labelled indices, each with its 95% confidence interval."""
    return _table(
        doc,
        [label_heading, "Chỉ số (%)", "Khoảng tin cậy 95%"],
        [[f.label_vi, number(f.value), interval(f)] for f in figures],
    )


def to_docx(r: ReformReport, issued: date) -> bytes:
    doc = Document()
    normal = doc.styles["Normal"]
    normal.font.name = FONT
    normal.font.size = Pt(13)
    normal.element.get_or_add_rPr().get_or_add_rFonts().set(qn("w:eastAsia"), FONT)
    for section in doc.sections:
        section.page_width, section.page_height = Cm(21), Cm(29.7)
        section.top_margin = section.bottom_margin = Cm(2)
        section.left_margin, section.right_margin = Cm(3), Cm(2)

    # The heading block: the issuing body, number on the left; the national motto and the
    # place and date on the right.
    head = doc.add_table(rows=1, cols=2)
    left, right = head.rows[0].cells
    center = WD_ALIGN_PARAGRAPH.CENTER
    _para(left, r.parent_body, size=13, first=True, align=center)
    _para(left, r.issuing_body, bold=True, size=13, align=center)
    _para(left, "Số:        /BC-SNV", size=13, align=center)
    _para(right, "CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM", bold=True, size=12, first=True, align=center)
    _para(right, "Độc lập - Tự do - Hạnh phúc", bold=True, size=13, align=center)
    where = f"{r.place}, " if r.place else ""
    _para(
        right,
        f"{where}ngày {issued.day:02d} tháng {issued.month:02d} năm {issued.year}",
        italic=True,
        size=13,
        align=center,
    )

    _para(doc, "BÁO CÁO", bold=True, size=14, align=center)
    _para(
        doc,
        "Kết quả Chỉ số hài lòng về sự phục vụ hành chính (SIPAS) "
        f"trong công tác cải cách hành chính {r.period.label_vi}",
        bold=True,
        size=13,
        align=center,
    )

    _para(doc, "I. CHỈ SỐ HÀI LÒNG CHUNG", bold=True)
    if r.index is None or r.campaign_name is None:
        _para(doc, "Trong kỳ báo cáo chưa có kết quả Chỉ số SIPAS được công bố.")
    else:
        forms = f"{r.forms_counted:,}".replace(",", ".") if r.forms_counted else "0"
        _para(
            doc,
            f"Theo kết quả {r.campaign_name} ({forms} phiếu hợp lệ), Chỉ số hài lòng chung "
            f"của tỉnh đạt {number(r.index.value)}% (khoảng tin cậy 95%: {interval(r.index)}).",
        )
        if r.change is not None:
            verdict = {
                True: "khác biệt có ý nghĩa thống kê",
                False: "trong phạm vi sai số",
                None: "chưa đánh giá được ý nghĩa thống kê",
            }[r.change.significant]
            points = r.change.points
            sign = "" if points is None or points <= 0 else "+"
            _para(
                doc,
                f"So với {r.change.previous_campaign} ({number(r.change.previous_value)}%), "
                f"chỉ số thay đổi {sign}{number(points)} điểm phần trăm ({verdict}).",
            )

    _para(doc, "II. KẾT QUẢ THEO CÁC YẾU TỐ", bold=True)
    _figures_table(doc, "Yếu tố", r.elements)

    _para(doc, "III. XẾP HẠNG CÁC CƠ QUAN, ĐƠN VỊ", bold=True)
    for ranking in r.rankings:
        _para(doc, ranking.label_vi, italic=True)
        names = {row.agency_code: row.agency_name for row in ranking.rows}
        _table(
            doc,
            ["Hạng", "Cơ quan, đơn vị", "Chỉ số (%)", "Khoảng tin cậy 95%", "Ghi chú"],
            [
                [
                    "—" if row.rank is None else str(row.rank),
                    row.agency_name,
                    number(row.value),
                    interval(row),
                    (
                        "Không phân biệt được với "
                        + ", ".join(names.get(c, c) for c in row.not_distinguishable_from)
                    )
                    if row.not_distinguishable_from
                    else "",
                ]
                for row in ranking.rows
            ],
        )

    _para(doc, "IV. CÁC TIÊU CHÍ CÓ CHỈ SỐ THẤP NHẤT TOÀN TỈNH", bold=True)
    _figures_table(doc, "Tiêu chí", r.weakest_criteria)

    _para(doc, "V. CÔNG TÁC THÔNG TIN, TUYÊN TRUYỀN KẾT QUẢ", bold=True)
    _para(
        doc,
        f"Trong {r.period.label_vi}, các cơ quan, đơn vị đã tổ chức {len(r.dissemination)} "
        "hoạt động công bố, phổ biến kết quả Chỉ số SIPAS.",
    )
    _table(
        doc,
        ["Cơ quan, đơn vị", "Hình thức", "Ngày", "Đối tượng", "Số người"],
        [
            [
                d.agency_name,
                d.method_vi,
                d.held_on.strftime("%d/%m/%Y"),
                d.audience,
                "" if d.participants is None else str(d.participants),
            ]
            for d in r.dissemination
        ],
    )

    _para(doc, "VI. KẾ HOẠCH CẢI THIỆN CỦA CÁC CƠ QUAN, ĐƠN VỊ", bold=True)
    _para(
        doc,
        f"{len(r.plans)} cơ quan, đơn vị có kế hoạch cải thiện; "
        f"{r.plans_by_review.get('approved', 0)} kế hoạch đã được Sở Nội vụ chấp thuận.",
    )
    _table(
        doc,
        ["Cơ quan, đơn vị", "Xem xét", "Tình trạng", "Tiêu chí", "Hành động", "Đã xong", "Quá hạn"],
        [
            [
                p.agency_name,
                p.review_vi,
                p.status_vi,
                str(p.targets),
                str(p.actions),
                str(p.done),
                str(p.overdue),
            ]
            for p in r.plans
        ],
    )
    buffer = io.BytesIO()
    doc.save(buffer)
    return buffer.getvalue()
