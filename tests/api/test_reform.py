"""The reform-report section: JSON and a DOCX read back, figures and Vietnamese text exact."""

from __future__ import annotations

import io
import unicodedata
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from docx import Document
from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.models.identity import Role
from tests.factories import bearer, make_user
from tests.helpers.problems import assert_problem
from tests.helpers.public_site import Site, build_site

API = "/api/v1"
URL = f"{API}/reform-reports/sipas"
AUDIENCE = "Cán bộ, công chức bộ phận một cửa và Nhân dân"
FONT = "Times New Roman"


@pytest.fixture
async def world(client: httpx.AsyncClient, session: AsyncSession, settings: Settings) -> Site:
    site = await build_site(session)
    admin = bearer(settings, await make_user(session, Role.admin))
    manager = bearer(settings, await make_user(session, Role.agency_manager, agency=site.a))
    c2020 = str(site.r2020.campaign_id)
    for headers, agency, method, held_on, audience in (
        (manager, site.a, "meeting", "2020-03-15", unicodedata.normalize("NFD", AUDIENCE)),
        (admin, site.new, "portal", "2020-08-01", "Người dân, doanh nghiệp"),
        (admin, site.new, "media", "2021-01-10", "Báo Tuyên Quang"),
    ):
        made = await client.post(
            f"{API}/dissemination-records",
            json={
                "campaign_id": c2020,
                "agency_id": str(agency.id),
                "method": method,
                "held_on": held_on,
                "audience": audience,
                "participants": 45 if method == "meeting" else None,
            },
            headers=headers,
        )
        assert made.status_code == 201, made.text
    plans = (await client.get(f"{API}/plans", params={"campaign_id": c2020}, headers=admin)).json()[
        "items"
    ]
    mine = next(p for p in plans if p["agency_code"] == site.a.code)
    action = await client.post(
        f"{API}/plans/{mine['id']}/actions",
        json={
            "criterion_id": "E1.C1",
            "what": "Bố trí thêm ghế chờ",
            "owner": "Văn phòng",
            "due_on": "2020-06-30",
            "status": "done",
        },
        headers=manager,
    )
    assert action.status_code == 201, action.text
    overdue = await client.post(
        f"{API}/plans/{mine['id']}/actions",
        json={"what": "Tập huấn giao tiếp", "owner": "Phòng Nội vụ", "due_on": "2020-09-30"},
        headers=manager,
    )
    assert overdue.status_code == 201
    reviewed = await client.post(
        f"{API}/plans/{mine['id']}/review",
        json={"status": "approved", "comment": "Đồng ý"},
        headers=admin,
    )
    assert reviewed.status_code == 200
    return site


def vn(value: str | None) -> str:
    return "—" if value is None else f"{Decimal(value):.2f}".replace(".", ",")


async def test_the_json_section_for_a_year(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, world: Site
) -> None:
    analyst = bearer(settings, await make_user(session, Role.analyst))
    got = await client.get(URL, params={"period": "2020"}, headers=analyst)
    assert got.status_code == 200, got.text
    body = got.json()
    report = (await client.get(f"{API}/reports/{world.r2020.id}", headers=analyst)).json()
    before = (await client.get(f"{API}/reports/{world.r2019.id}", headers=analyst)).json()
    assert body["period"] == {
        "code": "2020",
        "label_vi": "năm 2020",
        "start": "2020-01-01",
        "end": "2020-12-31",
    }
    assert body["report_id"] == str(world.r2020.id)
    assert body["index"]["value"] == report["total"]["index"]["value_display"]
    assert body["change"]["previous_year"] == 2019
    assert Decimal(body["change"]["points"]) == Decimal(
        report["total"]["index"]["value_display"]
    ) - Decimal(before["total"]["index"]["value_display"])
    ranked = [(r["agency_code"], r["value_display"]) for r in report["rankings"]["district"]]
    assert [(r["agency_code"], r["value"]) for r in body["rankings"][0]["rows"]] == ranked
    province = sorted(
        (c for e in report["total"]["index"]["children"] for c in e["children"]),
        key=lambda c: (Decimal(c["value"]), c["id"]),
    )
    assert [c["id"] for c in body["weakest_criteria"]] == [c["id"] for c in province]
    # Held in 2020 only; the 2021 one is the next report's.
    assert [(d["method"], d["held_on"]) for d in body["dissemination"]] == [
        ("meeting", "2020-03-15"),
        ("portal", "2020-08-01"),
    ]
    assert body["dissemination"][0]["audience"] == AUDIENCE
    plans = {p["agency_code"]: p for p in body["plans"]}
    assert set(plans) == {world.a.code, world.new.code}
    assert plans[world.a.code]["review_status"] == "approved"
    assert (plans[world.a.code]["actions"], plans[world.a.code]["done"]) == (2, 1)
    assert plans[world.a.code]["overdue"] == 1
    assert body["plans_by_review"] == {"approved": 1, "pending": 1}


async def test_quarters_half_years_and_bad_periods(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, world: Site
) -> None:
    analyst = bearer(settings, await make_user(session, Role.analyst))

    async def section(period: str) -> dict[str, Any]:
        got = await client.get(URL, params={"period": period}, headers=analyst)
        assert got.status_code == 200, got.text
        result: dict[str, Any] = got.json()
        return result

    q1 = await section("2020-Q1")
    assert q1["period"]["label_vi"] == "quý I năm 2020"
    assert (q1["period"]["start"], q1["period"]["end"]) == ("2020-01-01", "2020-03-31")
    assert [d["held_on"] for d in q1["dissemination"]] == ["2020-03-15"]
    q4 = await section("2020-Q4")
    assert q4["period"]["end"] == "2020-12-31"
    assert q4["dissemination"] == []
    h2 = await section("2020-H2")
    assert h2["period"]["label_vi"] == "6 tháng cuối năm 2020"
    assert [d["held_on"] for d in h2["dissemination"]] == ["2020-08-01"]
    a = next(p for p in h2["plans"] if p["agency_code"] == world.a.code)
    assert a["overdue"] == 1
    h1 = await section("2020-H1")
    assert next(p for p in h1["plans"] if p["agency_code"] == world.a.code)["overdue"] == 0
    # 2019: the 2019 campaign, no earlier one to compare with.
    y2019 = await section("2019")
    assert y2019["report_id"] == str(world.r2019.id)
    assert y2019["change"] is None
    for bad in ("2020-Q5", "20", "2020-H3", "năm 2020"):
        got = await client.get(URL, params={"period": bad}, headers=analyst)
        assert_problem(got, 422, "invalid")
        assert got.json()["errors"][0]["pointer"] == "/query/period"
    assert_problem(await client.get(URL, params={"period": "2020"}), 401, "unauthorized")
    surveyor = bearer(settings, await make_user(session, Role.surveyor))
    assert_problem(
        await client.get(URL, params={"period": "2020"}, headers=surveyor), 403, "forbidden"
    )
    # An agency manager's section holds its own subtree's plans and records only.
    manager = bearer(settings, await make_user(session, Role.agency_manager, agency=world.a))
    own = (await client.get(URL, params={"period": "2020"}, headers=manager)).json()
    assert [p["agency_code"] for p in own["plans"]] == [world.a.code]
    assert [d["held_on"] for d in own["dissemination"]] == ["2020-03-15"]


async def test_the_docx_reads_back_with_the_figures_and_exact_vietnamese(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, world: Site
) -> None:
    analyst = bearer(settings, await make_user(session, Role.analyst))
    body = (await client.get(URL, params={"period": "2020"}, headers=analyst)).json()
    got = await client.get(URL, params={"period": "2020", "format": "docx"}, headers=analyst)
    assert got.status_code == 200, got.text
    assert got.headers["content-type"].startswith(
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
    )
    today = datetime.now(UTC) + timedelta(hours=7)
    doc = Document(io.BytesIO(got.content))
    head = doc.tables[0]
    left = [p.text for p in head.rows[0].cells[0].paragraphs]
    right = [p.text for p in head.rows[0].cells[1].paragraphs]
    assert left == ["ỦY BAN NHÂN DÂN TỈNH TUYÊN QUANG", "SỞ NỘI VỤ", "Số:        /BC-SNV"]
    assert right == [
        "CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM",
        "Độc lập - Tự do - Hạnh phúc",
        f"Tuyên Quang, ngày {today.day:02d} tháng {today.month:02d} năm {today.year}",
    ]
    assert head.rows[0].cells[1].paragraphs[0].runs[0].bold
    assert head.rows[0].cells[1].paragraphs[2].runs[0].italic
    assert doc.styles["Normal"].font.name == FONT
    runs = [r for p in doc.paragraphs for r in p.runs] + [
        r
        for t in doc.tables
        for row in t.rows
        for c in row.cells
        for p in c.paragraphs
        for r in p.runs
    ]
    assert runs
    assert {r.font.name for r in runs} == {FONT}
    text = "\n".join(p.text for p in doc.paragraphs)
    assert "BÁO CÁO" in text
    assert "trong công tác cải cách hành chính năm 2020" in text
    index = body["index"]
    assert (
        f"Chỉ số hài lòng chung của tỉnh đạt {vn(index['value'])}% (khoảng tin cậy 95%: "
        f"{vn(index['ci_low'])} – {vn(index['ci_high'])})." in text
    )
    change = body["change"]
    sign = "+" if Decimal(change["points"]) > 0 else ""
    assert f"chỉ số thay đổi {sign}{vn(change['points'])} điểm phần trăm" in text
    assert "Trong năm 2020, các cơ quan, đơn vị đã tổ chức 2 hoạt động công bố" in text

    def rows(table_index: int) -> list[list[str]]:
        return [[c.text for c in row.cells] for row in doc.tables[table_index].rows[1:]]

    # Tables after the heading block: elements, one ranking per level, weakest, dissemination,
    # plans.
    elements = rows(1)
    assert elements == [
        [e["label_vi"], vn(e["value"]), f"{vn(e['ci_low'])} – {vn(e['ci_high'])}"]
        for e in body["elements"]
    ]
    ranking = rows(2)
    assert [(r[0], r[1], r[2]) for r in ranking] == [
        ("—" if r["rank"] is None else str(r["rank"]), r["agency_name"], vn(r["value"]))
        for r in body["rankings"][0]["rows"]
    ]
    weakest = rows(3)
    assert [r[0] for r in weakest] == [c["label_vi"] for c in body["weakest_criteria"]]
    dissemination = rows(4)
    assert dissemination[0] == [
        "UBND huyện Na Hang",
        "Hội nghị, cuộc họp",
        "15/03/2020",
        AUDIENCE,
        "45",
    ]
    assert unicodedata.is_normalized("NFC", dissemination[0][3])
    plans = rows(5)
    assert ["UBND huyện Na Hang", "Đã chấp thuận", "Đang thực hiện", "3", "2", "1", "1"] in plans
    assert len(plans) == len(body["plans"])
