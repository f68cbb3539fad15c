"""The public web site: Vietnamese pages rendered on the server, charts as SVG, an embed.

No JavaScript, font, script or style is fetched from anywhere (the Content-Security-Policy
says so to the browser too): the pages work on a provincial intranet and on a phone.
The site is not part of the OpenAPI document; its data is, under `/public/v1`.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi import Path as PathParam
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup
from sqlalchemy.ext.asyncio import AsyncSession

from app.api.etag import conditional
from app.api.ids import ReportId
from app.api.public import limit_source
from app.deps import ReaderDep
from app.errors import NotFound
from app.models.public import PublicAgencySummary, PublicRankingRow, PublicReport
from app.services import charts, public, site
from app.services.site import TrendPoint

HTML = "text/html; charset=utf-8"
SVG = "image/svg+xml"
PAGES = "public, max-age=300"
# Nothing from elsewhere: inline styles and same-origin images only.
CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; base-uri 'none'; "
    "form-action 'none'"
)

router = APIRouter(prefix="/public", include_in_schema=False, dependencies=[Depends(limit_source)])
Code = Annotated[str, PathParam(max_length=64)]


def _vn(value: Decimal | float | None) -> str:
    return charts.number(value)


def _signed(value: Decimal | None) -> str:
    if value is None:
        return "—"
    return ("+" if value > 0 else "") + charts.number(value)


def _vnint(value: float | int | None) -> str:
    return "—" if value is None else f"{int(value):,}".replace(",", ".")


def _vndate(value: str | date | datetime) -> str:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.strftime("%d/%m/%Y")


templates = Environment(
    loader=FileSystemLoader(Path(__file__).parents[1] / "templates"),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)
templates.filters.update(vn=_vn, signed=_signed, vnint=_vnint, vndate=_vndate)


def _page(request: Request, template: str, *, frame: str = "'self'", **context: Any) -> Response:
    body = templates.get_template(template).render(**context).encode()
    response = conditional(request, body, HTML, cache_control=PAGES)
    response.headers["Content-Security-Policy"] = f"{CSP}; frame-ancestors {frame}"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def _svg(request: Request, body: str) -> Response:
    response = conditional(request, body.encode(), SVG, cache_control=PAGES)
    response.headers["Content-Security-Policy"] = "default-src 'none'; style-src 'unsafe-inline'"
    return response


def _bars_svg(request: Request, title: str, bars: list[charts.Bar]) -> Response:
    """A standalone interval-bar chart."""
    return _svg(request, charts.interval_bars(title, bars))


def _names(report: PublicReport) -> Any:
    by_code = {r.agency_code: r.agency_name for rows in report.rankings.values() for r in rows}

    def names(codes: list[str]) -> str:
        return ", ".join(by_code.get(c, c) for c in codes)

    return names


def _elements(report: PublicReport) -> tuple[str, list[charts.Bar]]:
    """The title and bars of the province's elements chart, on its page and as an SVG alone."""
    return f"Chỉ số các yếu tố — {report.campaign.name}", site.element_bars(report)


def _ranking(
    report: PublicReport, level: str, rows: list[PublicRankingRow]
) -> tuple[str, list[charts.Bar]]:
    """The title and bars of one level's ranking chart, on the province's page and as an SVG
    alone."""
    level_name = site.LEVELS_VI.get(level, level).lower()
    return f"Xếp hạng {level_name} — {report.campaign.name}", site.ranking_bars(rows)


def _criteria(agency: PublicAgencySummary) -> tuple[str, list[charts.Bar]]:
    """The title and bars of an agency's criteria chart, on its page and as an SVG alone."""
    return f"Các tiêu chí — {agency.name}", site.criterion_bars(agency)


def _trend(agency: PublicAgencySummary, points: list[TrendPoint]) -> tuple[str, list[charts.Bar]]:
    """The title and bars of an agency's trend chart, on its page and as an SVG alone."""
    return f"Chỉ số chung qua các kỳ — {agency.name}", site.trend_bars(points)


def _chart(title: str, bars: list[charts.Bar], chart_id: str) -> Markup:
    return Markup(charts.interval_bars(title, bars, chart_id=chart_id, fluid=True))  # noqa: S704 - escaped


async def _province(request: Request, session: AsyncSession, report: PublicReport) -> Response:
    base = f"/public/charts/reports/{report.id}"
    links = {
        **public.links(report.id),
        "elements_svg": f"{base}/elements.svg",
        "ranking_svg": {level: f"{base}/ranking-{level}.svg" for level in report.rankings},
    }
    rendered = {
        "elements": _chart(*_elements(report), "elements"),
        "rankings": {
            level: _chart(*_ranking(report, level, rows), f"ranking-{level}")
            for level, rows in report.rankings.items()
        },
    }
    others = [r for r in await site.latest_reports(session) if r.id != report.id]
    return _page(
        request,
        "public/province.html",
        report=report,
        elements=site.elements_of(report.total.index),
        charts=rendered,
        links=links,
        levels=site.LEVELS_VI,
        change=await site.change(session, report),
        others=others,
        names=_names(report),
        agency_url=lambda code: f"/public/reports/{report.id}/agencies/{code}",
    )


@router.get("")
@router.get("/")
async def home(request: Request, session: ReaderDep) -> Response:
    """The newest public report's province page."""
    latest = await site.latest_reports(session)
    if not latest:
        return _page(request, "public/empty.html")
    return await _province(request, session, await site.load(session, latest[0].id))


@router.get("/reports/{report_id}")
async def province_page(request: Request, session: ReaderDep, report_id: ReportId) -> Response:
    return await _province(request, session, await site.load(session, report_id))


@router.get("/reports/{report_id}/agencies/{code}")
async def agency_page(
    request: Request, session: ReaderDep, report_id: ReportId, code: Code
) -> Response:
    report = await site.load(session, report_id)
    agency = await site.agency(session, report_id, code)
    trend = await site.trend(session, agency.agency_id)
    links = {
        "criteria_svg": f"/public/charts/reports/{report_id}/agencies/{code}/criteria.svg",
        "trend_svg": f"/public/charts/agencies/{code}/trend.svg",
        "badge": f"/public/badges/agencies/{code}.svg",
        "embed_absolute": str(request.base_url).rstrip("/") + f"/public/embed/agencies/{code}",
    }
    rendered = {
        "criteria": _chart(*_criteria(agency), "criteria"),
        "trend": _chart(*_trend(agency, trend), "trend"),
    }
    plan = await site.plan_status(session, report.campaign.id, agency.agency_id)
    return _page(
        request,
        "public/agency.html",
        plan=plan,
        report=report,
        agency=agency,
        trend=trend,
        charts=rendered,
        links=links,
        levels=site.LEVELS_VI,
        names=_names(report),
    )


@router.get("/embed/agencies/{code}")
async def embed(request: Request, session: ReaderDep, code: Code) -> Response:
    """A small page for an agency's own portal to frame: its newest public index."""
    summary, agency = await site.latest_with_agency(session, code)
    return _page(request, "public/embed.html", frame="*", summary=summary, agency=agency)


@router.get("/badges/agencies/{code}.svg")
async def badge(request: Request, session: ReaderDep, code: Code) -> Response:
    summary, agency = await site.latest_with_agency(session, code)
    return _svg(request, charts.badge(agency.name, agency.overall, summary.campaign.name))


@router.get("/charts/reports/{report_id}/elements.svg")
async def elements_chart(request: Request, session: ReaderDep, report_id: ReportId) -> Response:
    return _bars_svg(request, *_elements(await site.load(session, report_id)))


@router.get("/charts/reports/{report_id}/ranking-{level}.svg")
async def ranking_chart(
    request: Request, session: ReaderDep, report_id: ReportId, level: Code
) -> Response:
    report = await site.load(session, report_id)
    rows = report.rankings.get(level)
    if rows is None:
        raise NotFound("ranking")
    return _bars_svg(request, *_ranking(report, level, rows))


@router.get("/charts/reports/{report_id}/agencies/{code}/criteria.svg")
async def criteria_chart(
    request: Request, session: ReaderDep, report_id: ReportId, code: Code
) -> Response:
    agency = await site.agency(session, report_id, code)
    return _bars_svg(request, *_criteria(agency))


@router.get("/charts/agencies/{code}/trend.svg")
async def trend_chart(request: Request, session: ReaderDep, code: Code) -> Response:
    _, agency = await site.latest_with_agency(session, code)
    points = await site.trend(session, agency.agency_id)
    return _bars_svg(request, *_trend(agency, points))
