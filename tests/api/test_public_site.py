"""The public web site: every figure shown is the public report's, in Vietnamese notation;
nothing is fetched from elsewhere; charts are SVG with text alternatives."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET  # our own SVG, not untrusted input
from decimal import Decimal

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from tests.helpers.public_site import Site, build_site

SVG_NS = "{http://www.w3.org/2000/svg}"


@pytest.fixture
async def world(session: AsyncSession) -> Site:
    return await build_site(session)


def vn(value: str | None) -> str:
    return "—" if value is None else value.replace(".", ",")


def cells(html: str, row_attr: str, key: str) -> dict[str, tuple[str, str]]:
    """field → (data-value, shown text) of the table row marked row_attr="key"."""
    row = re.search(rf'<tr {row_attr}="{re.escape(key)}">(.*?)</tr>', html, re.S)
    assert row, f"no row {row_attr}={key}"
    return {
        m[0]: (m[1], m[2].strip())
        for m in re.findall(r'data-field="([^"]+)" data-value="([^"]*)">([^<]*)<', row[1])
    }


def assert_self_contained(response: httpx.Response) -> None:
    html = response.text
    assert "<script" not in html
    assert not re.search(r'(src|href)="(https?:)?//', html), "a reference to another host"
    assert "@import" not in html
    assert "@font-face" not in html
    csp = response.headers["content-security-policy"]
    assert "default-src 'none'" in csp


async def test_the_province_page_shows_the_public_report(
    client: httpx.AsyncClient, world: Site
) -> None:
    page = await client.get("/public")
    assert page.status_code == 200, page.text
    assert page.headers["content-type"].startswith("text/html")
    assert_self_contained(page)
    html = page.text
    assert '<html lang="vi">' in html
    assert 'name="viewport"' in html
    data = (await client.get(f"/public/v1/reports/{world.r2020.id}")).json()
    assert "Chỉ số SIPAS năm 2020" in html
    total = data["total"]["index"]
    assert f'data-field="overall" data-value="{total["value"]}">{vn(total["value"])}<' in html
    for element in total["children"]:
        shown = cells(html, "data-element", element["id"])["element"]
        assert shown == (element["value"], vn(element["value"]))
    rows = data["rankings"]["district"]
    assert {r["agency_code"] for r in rows} >= {world.a.code, world.new.code, world.small.code}
    for r in rows:
        got = cells(html, "data-agency", r["agency_code"])
        assert got["value"][0] == (r["value"] or "")
        assert got["value"][1] == ("không công bố" if r["suppressed"] else vn(r["value"]))
        assert got["rank"][0] == ("" if r["rank"] is None else str(r["rank"]))
        assert got["n"][0] == str(r["n_respondents"])
        assert got["ci"][0] == f"{r['ci_low'] or ''}|{r['ci_high'] or ''}"
    # The suppressed agency's own values are nowhere.
    for value in ("66,67", "33,33", "58,33", "66.67", "33.33"):
        assert value not in html
    assert "Số nhà 12" not in html
    marked = [r for r in rows if r["not_distinguishable_from"]]
    assert marked, "the test data must have agencies whose intervals overlap"
    for r in marked:
        row = re.search(rf'<tr data-agency="{r["agency_code"]}">(.*?)</tr>', html, re.S)
        assert row
        assert "không phân biệt được" in row[1]
    # Change against 2019, NEW followed back to OLD through the successor link.
    before = (await client.get(f"/public/v1/reports/{world.r2019.id}")).json()
    points = Decimal(total["value"]) - Decimal(before["total"]["index"]["value"])
    assert f'data-field="overall_points" data-value="{points}"' in html
    old_row = next(r for r in before["rankings"]["district"] if r["agency_code"] == world.old.code)
    new_row = next(r for r in rows if r["agency_code"] == world.new.code)
    change = cells(html, "data-change", world.new.code)
    assert change["previous"][0] == old_row["value"]
    assert change["points"][0] == str(Decimal(new_row["value"]) - Decimal(old_row["value"]))
    assert f"kế thừa {world.old.code}" in html
    # Downloads and inline charts with text alternatives.
    assert f'href="/public/v1/reports/{world.r2020.id}/export.csv"' in html
    assert html.count("<svg") == 1 + len(data["rankings"])
    assert '<title id="elements-title">' in html
    assert '<desc id="elements-desc">' in html
    # An earlier report's page is reachable too.
    assert (await client.get(f"/public/reports/{world.r2019.id}")).status_code == 200


async def test_the_agency_page_orders_criteria_and_shows_the_trend(
    client: httpx.AsyncClient, world: Site
) -> None:
    url = f"/public/reports/{world.r2020.id}/agencies/{world.new.code}"
    page = await client.get(url)
    assert page.status_code == 200, page.text
    assert_self_contained(page)
    html = page.text
    summary = (
        await client.get(f"/public/v1/reports/{world.r2020.id}/agencies/{world.new.code}")
    ).json()
    assert f'data-field="overall" data-value="{summary["overall"]}"' in html
    shown_order = re.findall(r'<tr data-criterion="([^"]+)">', html)
    assert shown_order == [c["id"] for c in summary["criteria"]]
    values = [Decimal(c["value"]) for c in summary["criteria"]]
    assert values == sorted(values, reverse=True)
    for c in summary["criteria"]:
        got = cells(html, "data-criterion", c["id"])
        assert got["value"] == (c["value"], vn(c["value"]))
        assert got["province"][0] == c["province_value"]
        assert got["difference"][0] == c["difference"]
    # 2019 through the predecessor, 2020 its own.
    years = re.findall(r'<tr data-year="(\d+)">', html)
    assert years == ["2019", "2020"]
    old = (
        await client.get(f"/public/v1/reports/{world.r2019.id}/agencies/{world.old.code}")
    ).json()
    assert cells(html, "data-year", "2019")["trend"][0] == old["overall"]
    assert cells(html, "data-year", "2020")["trend"][0] == summary["overall"]
    plan = re.search(r'<section aria-labelledby="plan">(.*?)</section>', html, re.S)
    assert plan
    assert "Kế hoạch đang chờ Sở Nội vụ xem xét; chưa có hành động nào." in plan[1]
    assert "<li>Giao tiếp lịch sự</li>" in plan[1]
    assert "<iframe" not in html.replace("&lt;iframe", "")
    assert f"/public/embed/agencies/{world.new.code}" in html


async def test_standalone_charts_badge_and_embed(client: httpx.AsyncClient, world: Site) -> None:
    rid = world.r2020.id
    for url in (
        f"/public/charts/reports/{rid}/elements.svg",
        f"/public/charts/reports/{rid}/ranking-district.svg",
        f"/public/charts/reports/{rid}/agencies/{world.a.code}/criteria.svg",
        f"/public/charts/agencies/{world.new.code}/trend.svg",
        f"/public/badges/agencies/{world.a.code}.svg",
    ):
        got = await client.get(url)
        assert got.status_code == 200, url
        assert got.headers["content-type"].startswith("image/svg+xml")
        root = ET.fromstring(got.content)  # noqa: S314
        assert root.tag == f"{SVG_NS}svg"
        assert root.find(f"{SVG_NS}title") is not None
        assert "http" not in got.text.replace("http://www.w3.org/2000/svg", "")
    summary = (await client.get(f"/public/v1/reports/{rid}/agencies/{world.a.code}")).json()
    chart = (await client.get(f"/public/charts/reports/{rid}/elements.svg")).content
    desc = ET.fromstring(chart).find(f"{SVG_NS}desc")  # noqa: S314
    assert desc is not None
    assert desc.text
    assert "khoảng tin cậy 95%" in desc.text
    embed = await client.get(f"/public/embed/agencies/{world.a.code}")
    assert embed.status_code == 200
    assert_self_contained(embed)
    assert "frame-ancestors *" in embed.headers["content-security-policy"]
    assert "x-frame-options" not in embed.headers
    assert f'data-value="{summary["overall"]}">{vn(summary["overall"])}<' in embed.text
    assert (await client.get("/public/embed/agencies/NO-SUCH")).status_code == 404
    assert (
        await client.get(f"/public/charts/reports/{rid}/ranking-nowhere.svg")
    ).status_code == 404
    page = await client.get("/public")
    assert (
        await client.get("/public", headers={"If-None-Match": page.headers["etag"]})
    ).status_code == 304


async def test_an_empty_site_says_nothing_is_published(client: httpx.AsyncClient) -> None:
    page = await client.get("/public")
    assert page.status_code == 200
    assert "Chưa có kết quả nào được công bố" in page.text
