"""The public site in a real browser: every page type at desktop and phone widths, every shown
figure against the JSON, no console error, no request to another host; screenshots saved under
bench/screenshots/ for people to look at."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from tests.browser.conftest import ARGS, DESKTOP, PHONE, SCREENSHOTS, Served

# One worker starts the served app and the browser once and runs every page (make test:
# --dist loadgroup); split across workers, each would seed its own demo province.
pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("browser")]

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page, ViewportSize


def vn(value: str | None) -> str:
    return "—" if value is None else f"{Decimal(value):.2f}".replace(".", ",")


def vnint(value: int | float) -> str:
    return f"{int(value):,}".replace(",", ".")


def interval(low: str | None, high: str | None) -> str:
    return "—" if low is None or high is None else f"{vn(low)} – {vn(high)}"


@dataclass
class Visit:
    page: Page
    errors: list[str] = field(default_factory=list)
    foreign: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
def browser(chromium_path: str) -> Iterator[Browser]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium_path, args=ARGS, headless=True)
        yield b
        b.close()


def visit(browser: Browser, served: Served, path: str, name: str, viewport: ViewportSize) -> Visit:
    """Open `path`, refusing (and recording) any request that leaves the host; a screenshot of
    the whole page is saved as bench/screenshots/<name>-<width>.png."""
    context = browser.new_context(viewport=viewport, java_script_enabled=True)
    page = context.new_page()
    seen = Visit(page)

    def route(r: Any) -> None:
        url = r.request.url
        if url.startswith(served.base) or url.startswith(("data:", "about:")):
            r.continue_()
        else:
            seen.foreign.append(url)
            r.abort()

    context.route("**/*", route)
    page.on("console", lambda m: seen.errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: seen.errors.append(str(e)))
    response = page.goto(served.base + path, wait_until="networkidle")
    assert response is not None
    assert response.status == 200, path
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    shot = SCREENSHOTS / f"{name}-{viewport['width']}.png"
    if path.endswith(".svg"):
        # Chromium does not screenshot a bare SVG document: show it as an image on a page.
        viewer = context.new_page()
        viewer.set_content(f'<img src="{served.base}{path}" alt="">', wait_until="load")
        viewer.screenshot(path=str(shot), full_page=True)
        viewer.close()
    else:
        page.screenshot(path=str(shot), full_page=True)
        page.screenshot(path=str(SCREENSHOTS / f"{name}-{viewport['width']}-first-screen.png"))
    return seen


def check_clean(seen: Visit, viewport: ViewportSize) -> None:
    assert seen.errors == []
    assert seen.foreign == []
    if viewport["width"] <= 400:
        # Usable on a phone: the page itself never scrolls sideways (wide tables scroll inside).
        overflow = seen.page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0, f"the page is {overflow}px wider than a {viewport['width']}px screen"


def _luminance(rgb: str) -> float:
    def channel(c: float) -> float:
        c = c / 255
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (float(x) for x in re.findall(r"[\d.]+", rgb)[:3])
    return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b)


def contrast(page: Page, selector: str) -> float:
    color = page.eval_on_selector(selector, "e => getComputedStyle(e).color")
    lighter, darker = sorted((_luminance(color), 1.0), reverse=True)  # on white
    return (lighter + 0.05) / (darker + 0.05)


def text(page: Page, selector: str) -> str:
    return page.locator(selector).first.inner_text().strip()


@pytest.fixture(scope="module")
def published(served: Served) -> dict[str, Any]:
    assert served.reports, "the demo must publish a report"
    latest = served.reports[0]
    report: dict[str, Any] = served.get(f"/public/v1/reports/{latest['id']}")
    return report


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_province_page(
    browser: Browser, served: Served, published: dict[str, Any], viewport: ViewportSize
) -> None:
    seen = visit(browser, served, "/public", "province", viewport)
    check_clean(seen, viewport)
    page = seen.page
    assert page.locator("html").get_attribute("lang") == "vi"
    total = published["total"]["index"]
    assert text(page, '[data-field="overall"]') == vn(total["value"])
    assert text(page, '[data-field="overall_ci"]') == interval(total["ci_low"], total["ci_high"])
    assert text(page, '[data-field="forms_counted"]') == vnint(published["forms_counted"])
    elements = [c for c in total["children"] if c["kind"] == "element"]
    assert len(elements) == 5
    for e in elements:
        assert text(page, f'tr[data-element="{e["id"]}"] [data-field="element"]') == vn(e["value"])
    shown = 0
    for rows in published["rankings"].values():
        for r in rows:
            row = f'tr[data-agency="{r["agency_code"]}"]'
            expected = "không công bố" if r["suppressed"] else vn(r["value"])
            assert text(page, f'{row} [data-field="value"]') == expected
            assert text(page, f'{row} [data-field="rank"]') == (
                "—" if r["rank"] is None else str(r["rank"])
            )
            assert text(page, f'{row} [data-field="ci"]') == interval(r["ci_low"], r["ci_high"])
            assert text(page, f'{row} [data-field="n"]') == vnint(r["n_respondents"])
            marked = "không phân biệt được" in page.locator(row).first.inner_text()
            assert marked == bool(r["not_distinguishable_from"])
            shown += 1
    assert page.locator("tr[data-agency]").count() == shown > 0
    # Charts: inline SVG with a title and a description, one per chart.
    assert page.locator("svg title").count() == page.locator("svg").count() >= 2
    assert page.locator("svg desc").count() == page.locator("svg").count()
    # Semantic tables; readable contrast on white.
    assert page.locator("table caption").count() == page.locator("table").count()
    assert page.locator('th[scope="col"]').count() > 0
    for selector in ("main p", "main a", ".muted", "td.num"):
        assert contrast(page, selector) >= 4.5, selector


def test_the_csv_download_matches_the_staff_report(
    served: Served, published: dict[str, Any]
) -> None:
    token = httpx.post(
        served.base + "/api/v1/auth/token",
        data={"grant_type": "password", "username": "admin", "password": "demo-admin-2026"},
    ).json()["access_token"]
    staff = httpx.get(
        f"{served.base}/api/v1/reports/{published['id']}",
        headers={"Authorization": f"Bearer {token}"},
    ).json()
    page = httpx.get(served.base + "/public").text
    href = re.search(r'href="([^"]+export\.csv)"', page)
    assert href
    rows = list(
        csv.DictReader(io.StringIO(httpx.get(served.base + href[1]).content.decode("utf-8-sig")))
    )
    overall = next(r for r in rows if r["breakdown"] == "total" and r["node_id"] == "overall")
    assert overall["value"] == staff["total"]["index"]["value_display"]
    # Agencies by code on both sides: the staff CSV of the same report.
    staff_csv = httpx.get(
        f"{served.base}/api/v1/reports/{published['id']}/export.csv",
        headers={"Authorization": f"Bearer {token}"},
    ).content.decode("utf-8-sig")
    by_agency = {
        r["cell_code"]: r["value"]
        for r in csv.DictReader(io.StringIO(staff_csv))
        if r["breakdown"] == "agency" and r["node_id"] == "overall"
    }
    public = {
        r["cell_code"]: r["value"]
        for r in rows
        if r["breakdown"] == "agency" and r["node_id"] == "overall"
    }
    assert public
    assert public == by_agency


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_agency_page(
    browser: Browser, served: Served, published: dict[str, Any], viewport: ViewportSize
) -> None:
    rows = next(iter(published["rankings"].values()))
    code = rows[0]["agency_code"]
    summary = served.get(f"/public/v1/reports/{published['id']}/agencies/{code}")
    seen = visit(
        browser, served, f"/public/reports/{published['id']}/agencies/{code}", "agency", viewport
    )
    check_clean(seen, viewport)
    page = seen.page
    assert text(page, "h1") == summary["name"]
    assert text(page, '[data-field="overall"]') == vn(summary["overall"])
    assert text(page, '[data-field="rank"]') == str(summary["rank"])
    shown = [
        page.locator("tr[data-criterion]").nth(i).get_attribute("data-criterion")
        for i in range(page.locator("tr[data-criterion]").count())
    ]
    assert shown == [c["id"] for c in summary["criteria"]]
    for c in summary["criteria"]:
        row = f'tr[data-criterion="{c["id"]}"]'
        assert text(page, f'{row} [data-field="value"]') == vn(c["value"])
        assert text(page, f'{row} [data-field="province"]') == vn(c["province_value"])
        difference = c["difference"]
        signed = (
            "—" if difference is None else ("+" if Decimal(difference) > 0 else "") + vn(difference)
        )
        assert text(page, f'{row} [data-field="difference"]') == signed
    assert page.locator("tr[data-year]").count() >= 1
    assert "Kế hoạch" in text(page, 'section[aria-labelledby="plan"]')


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_embed_chart_and_badge(
    browser: Browser, served: Served, published: dict[str, Any], viewport: ViewportSize
) -> None:
    rows = next(iter(published["rankings"].values()))
    code = rows[0]["agency_code"]
    summary = served.get(f"/public/v1/reports/{published['id']}/agencies/{code}")
    embed = visit(browser, served, f"/public/embed/agencies/{code}", "embed", viewport)
    check_clean(embed, viewport)
    assert text(embed.page, '[data-field="overall"]') == vn(summary["overall"])
    chart = visit(
        browser,
        served,
        f"/public/charts/reports/{published['id']}/elements.svg",
        "chart-elements",
        viewport,
    )
    assert chart.errors == []
    assert chart.foreign == []
    desc = chart.page.locator("desc").first.text_content() or ""
    for e in published["total"]["index"]["children"]:
        assert f"{e['label_vi']}: {vn(e['value'])}" in desc
    badge = visit(browser, served, f"/public/badges/agencies/{code}.svg", "badge", viewport)
    assert badge.errors == []
    assert vn(summary["overall"]) in (badge.page.locator("svg").first.text_content() or "")
