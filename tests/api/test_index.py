"""Acceptance tests of the index through the real API on real PostgreSQL.

Forms are inserted straight as Submission rows. Every expected number is computed by hand (in a
comment) or by the small, deliberately naive re-computation below, which works on the raw answer
dicts and never calls the implementation's formulas.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hyp_settings
from hypothesis import strategies as st
from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.errors import AppError
from app.models.agency import Agency, AgencyKind, AgencySuccessor, SuccessionKind
from app.models.campaign import Campaign, CampaignState, Stratum
from app.models.identity import Role, Scope
from app.models.submission import Channel, Submission, SubmissionState
from app.services.index import rollups
from app.services.index.compute import campaign_index
from app.services.principal import Principal
from tests.factories import (
    bearer,
    make_agency,
    make_campaign,
    make_client,
    make_user,
    role_headers,
    unique,
)

Form = dict[str, Any]
Json = dict[str, Any]

# The structure of TEST_DEFINITION, written out again by hand.
ELEMENTS: dict[str, list[str]] = {"E1": ["E1.C1", "E1.C2"], "E2": ["E2.C1"]}
ELEMENT_WEIGHT = {"E1": 0.5, "E2": 0.5}
CRITERIA = [c for cs in ELEMENTS.values() for c in cs]
Z = 1.959964  # the one z of every interval (method 2.10), Wilson's and the composites'


# ---- set-up helpers ----------------------------------------------------------------------------


async def campaign_for(
    session: AsyncSession,
    agencies: list[Agency],
    state: CampaignState = CampaignState.open,
) -> Campaign:
    return await make_campaign(session, agencies=agencies, state=state)


async def add_forms(
    session: AsyncSession,
    campaign: Campaign,
    agency: Agency,
    forms: Iterable[Form],
    *,
    state: SubmissionState = SubmissionState.valid,
    channel: Channel = Channel.web,
    stratum: Stratum | None = None,
) -> None:
    for answers in forms:
        session.add(
            Submission(
                campaign_id=campaign.id,
                client_submission_id=uuid.uuid4(),
                request_hash="x",
                agency_id=agency.id,
                stratum_id=stratum.id if stratum else None,
                channel=channel,
                state=state,
                answers=answers,
                received_at=datetime.now(UTC),
            )
        )
    await session.flush()


def same(value: int | None, gender: str = "nam") -> Form:
    """A form giving the same answer to every criterion."""
    return dict.fromkeys(CRITERIA, value) | {"R.GENDER": gender}


def satisfied_forms(satisfied: int, total: int) -> list[Form]:
    """`total` forms of which `satisfied` answer 5 everywhere and the rest 2."""
    return [same(5) for _ in range(satisfied)] + [same(2) for _ in range(total - satisfied)]


async def index(
    client: httpx.AsyncClient, headers: Mapping[str, str], campaign: Campaign, **params: Any
) -> Json:
    response = await client.get(
        f"/api/v1/campaigns/{campaign.id}/index", params=params, headers=dict(headers)
    )
    assert response.status_code == 200, response.text
    body: Json = response.json()
    return body


def node(cell: Json, node_id: str) -> Json:
    def walk(n: Json) -> Json | None:
        if n["id"] == node_id:
            return n
        for child in n["children"]:
            found = walk(child)
            if found is not None:
                return found
        return None

    assert cell["index"] is not None
    found = walk(cell["index"])
    assert found is not None, node_id
    return found


def groups(body: Json) -> dict[str, Json]:
    return {g["key"]: g for g in body["groups"]}


def assert_shown(api: Any, expected: float | None) -> None:
    """A figure (a JSON number at full precision) against an independent computation."""
    if expected is None:
        assert api is None
        return
    assert isinstance(api, float | int)
    assert abs(api - expected) <= 1e-9, (api, expected)


# ---- the naive re-computation from raw forms ---------------------------------------------------


def valid_answers(forms: Sequence[Form], item: str) -> list[Any]:
    return [f[item] for f in forms if f.get(item) is not None]


def ci(forms: Sequence[Form], item: str) -> float | None:
    values = valid_answers(forms, item)
    if not values:
        return None
    return 100.0 * sum(1 for v in values if v >= 4) / len(values)


def element(forms: Sequence[Form], element_id: str) -> float | None:
    values = [v for v in (ci(forms, c) for c in ELEMENTS[element_id]) if v is not None]
    return sum(values) / len(values) if values else None


def overall(forms: Sequence[Form]) -> float | None:
    values = {e: element(forms, e) for e in ELEMENTS}
    if any(v is None for v in values.values()):
        return None  # the documented default: a null element makes the overall null
    return sum(ELEMENT_WEIGHT[e] * v for e, v in values.items() if v is not None)


def linear_coefficients(forms: Sequence[Form], composite: str) -> dict[str, float]:
    def of_element(e: str) -> dict[str, float]:
        live = [c for c in ELEMENTS[e] if valid_answers(forms, c)]
        return {c: 1.0 / len(live) for c in live}

    if composite in ELEMENTS:
        return of_element(composite)
    out: dict[str, float] = {}
    for e, w in ELEMENT_WEIGHT.items():
        for c, v in of_element(e).items():
            out[c] = out.get(c, 0.0) + w * v
    return out


def linearised_interval(
    forms: Sequence[Form], composite: str, weights: Sequence[float] | None = None
) -> tuple[float, float]:
    """Method 2.10 from the rows: z_r = Σ_i c_i·a_ri·(y_ri − p_i)/n_i,
    SE = 100·sqrt(n/(n−1)·Σ z_r²), I ± z·SE clipped to [0, 100]. With weights, every
    count is a weighted sum and each row's term is multiplied by its w_r."""
    w = list(weights) if weights is not None else [1.0] * len(forms)
    c = linear_coefficients(forms, composite)
    n_i = {i: sum(wr for f, wr in zip(forms, w, strict=True) if f.get(i) is not None) for i in c}
    s_i = {
        i: sum(wr for f, wr in zip(forms, w, strict=True) if f.get(i) is not None and f[i] >= 4)
        for i in c
    }
    p_i = {i: s_i[i] / n_i[i] for i in c}
    value = 100.0 * sum(c[i] * p_i[i] for i in c)
    total = 0.0
    for form, wr in zip(forms, w, strict=True):
        z = 0.0
        for i in c:
            if form.get(i) is not None:
                y = 1.0 if form[i] >= 4 else 0.0
                z += c[i] * wr * (y - p_i[i]) / n_i[i]
        total += z * z
    n = len(forms)
    se = 100.0 * math.sqrt(n / (n - 1) * total)
    return max(0.0, value - Z * se), min(100.0, value + Z * se)


def wilson(s: float, n: float, m: float | None = None) -> tuple[float, float]:
    """Wilson 95% of s/n in percent; `m` replaces n as the sample size (weighted counts)."""
    p, z2 = s / n, Z**2
    n = n if m is None else m
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = Z / (1 + z2 / n) * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    return 100 * max(0.0, centre - half), 100 * min(1.0, centre + half)


def level_counts(forms: Sequence[Form], item: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for v in valid_answers(forms, item):
        out[str(v)] = out.get(str(v), 0.0) + 1
    return out


# ---- section 3: the 31-form case ---------------------------------------------------------------


async def test_31_forms_criterion_is_83_87(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    agency = await make_agency(session)
    campaign = await campaign_for(session, [agency])
    # Only E1.C1 is answered; the other criteria of E1 (and E2) stay null.
    forms = [{"E1.C1": v, "R.GENDER": "nam"} for v in [5] * 10 + [4] * 16 + [3] * 5]
    await add_forms(session, campaign, agency, forms)

    body = await index(client, await role_headers(session, settings), campaign)
    total = body["total"]
    c11 = node(total, "E1.C1")
    # a JSON number at full precision beside the published string
    assert c11["value"] == pytest.approx(2600 / 31, abs=1e-12)
    assert c11["value_display"] == "83.87"
    assert c11["exact"] == pytest.approx(2600 / 31, abs=1e-12)  # 100 · 26 / 31
    assert c11["n"] == 31
    assert c11["counts"] == {"3": 5, "4": 16, "5": 10}
    assert total["n_respondents"] == 31
    e1 = node(total, "E1")
    assert e1["exact"] == pytest.approx(2600 / 31, abs=1e-12)  # E1.C2 null: E1 = E1.C1
    assert e1["value_display"] == "83.87"
    assert node(total, "E1.C2")["value"] is None
    assert node(total, "E1.C2")["n"] == 0
    assert node(total, "E2")["value"] is None
    assert node(total, "overall")["value"] is None  # E2 is null
    assert node(total, "overall")["ci_low"] is None
    # Wilson 95% of 26/31, computed independently.
    low, high = wilson(26, 31)
    assert_shown(c11["ci_low"], low)
    assert_shown(c11["ci_high"], high)


# ---- empty cells, single answers, states -------------------------------------------------------


async def test_empty_campaign_has_null_index(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    agency = await make_agency(session)
    campaign = await campaign_for(session, [agency])
    body = await index(client, await role_headers(session, settings), campaign, group_by="agency")
    total = body["total"]
    assert total["n_respondents"] == 0
    assert total["index"] is None or total["index"]["value"] is None
    assert body["groups"] == []


async def test_all_no_answer_criterion_is_null_and_element_is_mean_of_others(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    agency = await make_agency(session)
    campaign = await campaign_for(session, [agency])
    # 6 forms: E1.C1 always "no answer" (null); E1.C2 5,5,4,3,2,1 → 3/6 = 50;
    # E2.C1 5 × 6 → 100. E1 = mean of the non-null criteria = 50, overall = 0.5·50 + 0.5·100 = 75.
    forms = [{"E1.C1": None, "E1.C2": v, "E2.C1": 5, "R.GENDER": "nu"} for v in (5, 5, 4, 3, 2, 1)]
    await add_forms(session, campaign, agency, forms)
    total = (await index(client, await role_headers(session, settings), campaign))["total"]
    c11 = node(total, "E1.C1")
    assert c11["value"] is None
    assert c11["exact"] is None
    assert c11["n"] == 0
    assert c11["ci_low"] is None
    assert node(total, "E1.C2")["exact"] == pytest.approx(50.0)
    assert node(total, "E1")["exact"] == pytest.approx(50.0)
    assert node(total, "E2")["exact"] == pytest.approx(100.0)
    assert node(total, "overall")["exact"] == pytest.approx(75.0)


async def test_single_answer_and_states_that_do_not_count(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    agency = await make_agency(session)
    campaign = await campaign_for(session, [agency])
    # One valid form answering E1.C1 = 4, four more valid forms with no criterion answered
    # (so the cell is not suppressed), and forms in every other state, all 1s, that must not
    # count.
    await add_forms(session, campaign, agency, [{"E1.C1": 4, "R.GENDER": "nam"}])
    await add_forms(session, campaign, agency, [{"R.GENDER": "nam"}] * 4)
    for state in (SubmissionState.received, SubmissionState.flagged, SubmissionState.rejected):
        await add_forms(session, campaign, agency, [same(1)] * 3, state=state)
    total = (await index(client, await role_headers(session, settings), campaign))["total"]
    assert total["n_respondents"] == 5
    c11 = node(total, "E1.C1")
    assert c11["exact"] == pytest.approx(100.0)  # 1 / 1
    assert c11["n"] == 1
    assert c11["counts"] == {"4": 1}
    low, high = wilson(1, 1)
    assert_shown(c11["ci_low"], low)
    assert_shown(c11["ci_high"], high)
    assert node(total, "E1.C2")["n"] == 0


# ---- composites and their intervals ------------------------------------------------------------


@pytest.mark.parametrize("silent", [0, 5, 25])
async def test_composite_n_and_interval_run_over_every_respondent(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, silent: int
) -> None:
    # 10 forms answer every criterion (8 all 5s, 2 all 2s) and `silent` more answer none. Each
    # criterion and composite is 80; a composite's z_r = (y_r − .8)/10 for the answering forms
    # and 0 for the silent ones: Σ z² = (8·.04 + 2·.64)/100 = .016, and with n = 10 + silent,
    # SE = 100·sqrt(n/(n−1)·.016). The composites report that n; the criteria their 10 answers.
    agency = await make_agency(session)
    campaign = await campaign_for(session, [agency])
    forms = satisfied_forms(8, 10) + [{"R.GENDER": "nu"} for _ in range(silent)]
    await add_forms(session, campaign, agency, forms)
    headers = await role_headers(session, settings)
    n = 10 + silent
    se = 100 * math.sqrt(n / (n - 1) * 0.016)
    from_forms = (await index(client, headers, campaign))["total"]
    for composite in ("overall", "E1", "E2"):
        figure = node(from_forms, composite)
        assert figure["n"] == n
        assert figure["value"] == pytest.approx(80.0, abs=1e-9)
        assert_shown(figure["ci_low"], 80 - Z * se)
        assert_shown(figure["ci_high"], min(100.0, 80 + Z * se))
        assert (figure["ci_low"], figure["ci_high"]) == pytest.approx(
            linearised_interval(forms, composite), abs=1e-9
        )
    assert node(from_forms, "E1.C1")["n"] == 10
    # The roll-ups (the database's counts) give the same figures as the scan of the forms.
    assert await rollups.install(session, campaign.id)
    from_rollups = (await index(client, headers, campaign))["total"]
    assert same_figures(from_rollups, from_forms)


def same_figures(a: Any, b: Any) -> bool:
    """Equal JSON, numbers to 1e-9 (two summation orders differ in the last bits)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_figures(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same_figures(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) or isinstance(b, float):
        return isinstance(a, int | float) and isinstance(b, int | float) and abs(a - b) <= 1e-9
    return bool(a == b)


# A small hand case: 8 forms.
COMPOSITE_FORMS: list[Form] = [
    {"E1.C1": 5, "E1.C2": 4, "E2.C1": 5},
    {"E1.C1": 4, "E1.C2": 2, "E2.C1": 3},
    {"E1.C1": 3, "E1.C2": 5, "E2.C1": 4},
    {"E1.C1": 5, "E1.C2": None, "E2.C1": 5},
    {"E1.C1": 1, "E1.C2": 4, "E2.C1": None},
    {"E1.C1": 4, "E1.C2": 3},
    {"E1.C1": 2, "E1.C2": 5, "E2.C1": 2},
    {"E1.C2": 4, "E2.C1": 5},
]
# E1.C1: 7 valid, satisfied 5,4,5,4 → 4/7; E1.C2: 7 valid, satisfied 4,5,4,5,4 → 5/7;
# E2.C1: 6 valid, satisfied 5,4,5,5 → 4/6.
# E1 = (400/7 + 500/7) / 2 = 450/7; E2 = 400/6; overall = 0.5·450/7 + 0.5·400/6.


async def test_overall_is_weighted_mean_of_elements_with_linearised_intervals(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    agency = await make_agency(session)
    campaign = await campaign_for(session, [agency])
    forms = [f | {"R.GENDER": "nam"} for f in COMPOSITE_FORMS]
    await add_forms(session, campaign, agency, forms)
    total = (await index(client, await role_headers(session, settings), campaign))["total"]

    assert node(total, "E1.C1")["exact"] == pytest.approx(400 / 7, abs=1e-9)
    assert node(total, "E1.C2")["exact"] == pytest.approx(500 / 7, abs=1e-9)
    assert node(total, "E2.C1")["exact"] == pytest.approx(400 / 6, abs=1e-9)
    assert node(total, "E1")["exact"] == pytest.approx(450 / 7, abs=1e-9)
    assert node(total, "E2")["exact"] == pytest.approx(400 / 6, abs=1e-9)
    assert node(total, "overall")["exact"] == pytest.approx(0.5 * 450 / 7 + 0.5 * 400 / 6, abs=1e-9)
    for composite in ("E1", "E2", "overall"):
        low, high = linearised_interval(forms, composite)
        figure = node(total, composite)
        assert_shown(figure["ci_low"], low)
        assert_shown(figure["ci_high"], high)
        assert figure["n"] == 8  # composites carry the respondents
    low, high = wilson(4, 7)
    assert_shown(node(total, "E1.C1")["ci_low"], low)
    assert_shown(node(total, "E1.C1")["ci_high"], high)


async def test_overall_is_null_when_an_element_is_null(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    agency = await make_agency(session)
    campaign = await campaign_for(session, [agency])
    forms = [{"E1.C1": 5, "E1.C2": 4, "E2.C1": None, "R.GENDER": "nam"}] * 6
    await add_forms(session, campaign, agency, forms)
    total = (await index(client, await role_headers(session, settings), campaign))["total"]
    assert node(total, "E1")["exact"] == pytest.approx(100.0)
    assert node(total, "E2")["value"] is None
    assert node(total, "overall")["value"] is None
    assert node(total, "overall")["exact"] is None


# ---- breakdowns and filters --------------------------------------------------------------------


async def test_breakdowns_roll_up_subtrees_and_filter(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    district = await make_agency(session, level="district", kind=AgencyKind.people_committee)
    c1 = await make_agency(
        session, parent=district, level="commune", kind=AgencyKind.people_committee
    )
    c2 = await make_agency(
        session, parent=district, level="commune", kind=AgencyKind.people_committee
    )
    campaign = await campaign_for(session, [district, c1, c2])
    own = [same(5), same(4, "nu"), same(3), same(2, "nu"), same(5)]
    in_c1 = [same(5, "nu"), same(1), same(4), same(4, "nu"), same(3), same(5)]
    in_c2 = [same(2), same(2), same(5, "nu"), same(4), same(1), same(1, "nu"), same(5)]
    kiosk = [same(4), same(4), same(3, "nu"), same(5), same(2)]
    await add_forms(session, campaign, district, own)
    await add_forms(session, campaign, c1, in_c1)
    await add_forms(session, campaign, c2, in_c2)
    await add_forms(session, campaign, c2, kiosk, channel=Channel.kiosk)
    c2_all = in_c2 + kiosk
    everything = own + in_c1 + c2_all
    headers = await role_headers(session, settings)

    by_agency = groups(await index(client, headers, campaign, group_by="agency"))
    assert set(by_agency) == {str(district.id), str(c1.id), str(c2.id)}
    parent = by_agency[str(district.id)]
    assert parent["n_respondents"] == len(own) + len(in_c1) + len(c2_all) == 23
    for item in CRITERIA:
        # the parent's counts = its own + each child's
        summed: dict[str, float] = {}
        for part in (own, in_c1, c2_all):
            for code, n in level_counts(part, item).items():
                summed[code] = summed.get(code, 0) + n
        assert node(parent, item)["counts"] == summed
        assert node(by_agency[str(c1.id)], item)["counts"] == level_counts(in_c1, item)
    assert node(parent, "overall")["exact"] == pytest.approx(overall(everything), abs=1e-9)
    assert node(by_agency[str(c2.id)], "overall")["exact"] == pytest.approx(
        overall(c2_all), abs=1e-9
    )

    by_level = groups(await index(client, headers, campaign, group_by="level"))
    assert set(by_level) == {"district", "commune"}
    assert by_level["district"]["n_respondents"] == 5
    assert by_level["commune"]["n_respondents"] == 18
    assert node(by_level["commune"], "E1.C1")["exact"] == pytest.approx(
        ci(in_c1 + c2_all, "E1.C1"), abs=1e-9
    )

    by_channel = groups(await index(client, headers, campaign, group_by="channel"))
    assert set(by_channel) == {"web", "kiosk"}
    assert by_channel["kiosk"]["n_respondents"] == 5
    # kiosk: 4,4,3,5,2 → 3/5 = 60 everywhere
    assert node(by_channel["kiosk"], "overall")["exact"] == pytest.approx(60.0)

    by_gender = groups(await index(client, headers, campaign, group_by="item:R.GENDER"))
    women = [f for f in everything if f["R.GENDER"] == "nu"]
    men = [f for f in everything if f["R.GENDER"] == "nam"]
    assert by_gender["nu"]["n_respondents"] == len(women) == 7
    assert by_gender["nam"]["n_respondents"] == len(men) == 16
    assert by_gender["nu"]["label"] == "Lựa chọn nu"
    assert node(by_gender["nu"], "E2.C1")["exact"] == pytest.approx(ci(women, "E2.C1"))
    assert node(by_gender["nam"], "E2.C1")["exact"] == pytest.approx(ci(men, "E2.C1"))

    only_c2 = await index(client, headers, campaign, agency_id=str(c2.id))
    assert only_c2["filters"] == {"agency_id": str(c2.id)}
    assert only_c2["total"]["n_respondents"] == 12
    assert node(only_c2["total"], "overall")["exact"] == pytest.approx(overall(c2_all))
    subtree = await index(client, headers, campaign, agency_id=str(district.id))
    assert subtree["total"]["n_respondents"] == 23
    kiosk_only = await index(client, headers, campaign, channel="kiosk", group_by="agency")
    assert kiosk_only["total"]["n_respondents"] == 5
    assert set(groups(kiosk_only)) == {str(district.id), str(c2.id)}
    communes = await index(client, headers, campaign, level="commune")
    assert communes["total"]["n_respondents"] == 18


async def test_unknown_breakdown_is_invalid(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    agency = await make_agency(session)
    campaign = await campaign_for(session, [agency])
    response = await client.get(
        f"/api/v1/campaigns/{campaign.id}/index",
        params={"group_by": "s.answers"},
        headers=await role_headers(session, settings),
    )
    assert response.status_code == 422


# ---- aggregation and weights -------------------------------------------------------------------


async def test_unit_mean_differs_from_pooled(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    big = await make_agency(session)
    small = await make_agency(session)
    campaign = await campaign_for(session, [big, small])
    await add_forms(session, campaign, big, satisfied_forms(36, 40))  # 90
    await add_forms(session, campaign, small, satisfied_forms(1, 5))  # 20
    headers = await role_headers(session, settings)
    pooled = (await index(client, headers, campaign))["total"]
    # pooled: (36 + 1) / 45
    assert node(pooled, "overall")["exact"] == pytest.approx(100 * 37 / 45, abs=1e-9)
    assert node(pooled, "E1.C1")["exact"] == pytest.approx(100 * 37 / 45, abs=1e-9)
    mean = await index(client, headers, campaign, aggregate="unit_mean")
    assert mean["aggregate"] == "unit_mean"
    # unit_mean: (90 + 20) / 2
    assert node(mean["total"], "overall")["exact"] == pytest.approx(55.0, abs=1e-9)
    assert node(mean["total"], "E1.C1")["exact"] == pytest.approx(55.0, abs=1e-9)
    assert node(mean["total"], "E2")["exact"] == pytest.approx(55.0, abs=1e-9)
    assert node(mean["total"], "overall")["ci_low"] is None  # no interval for a unit mean
    # per agency a unit's mean is its own index
    per_agency = groups(
        await index(client, headers, campaign, group_by="agency", aggregate="unit_mean")
    )
    assert node(per_agency[str(big.id)], "overall")["exact"] == pytest.approx(90.0, abs=1e-9)
    assert node(per_agency[str(small.id)], "overall")["exact"] == pytest.approx(20.0, abs=1e-9)
    refused = await client.get(
        f"/api/v1/campaigns/{campaign.id}/index",
        params={"aggregate": "unit_mean", "group_by": "channel"},
        headers=headers,
    )
    assert refused.status_code == 422


async def test_weighted_with_frame_sizes(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    a = await make_agency(session)
    b = await make_agency(session)
    campaign = await campaign_for(session, [a, b])
    sa_ = Stratum(campaign_id=campaign.id, agency_id=a.id, frame_size=100)
    sb = Stratum(campaign_id=campaign.id, agency_id=b.id, frame_size=30)
    session.add_all([sa_, sb])
    await session.flush()
    # Stratum A: N = 100, n = 4 valid forms → w = 25; E1.C1 answers 5, 3, 3, null;
    #   E2.C1 answers 4, 4, 1, 5.
    # Stratum B: N = 30, n = 3 valid forms → w = 10; E1.C1 answers 4, 4, 2; E2.C1 5, 2, null.
    # (A rejected form in A does not change n_h.)
    forms_a = [
        {"E1.C1": v, "E2.C1": u, "R.GENDER": "nam"}
        for v, u in zip((5, 3, 3, None), (4, 4, 1, 5), strict=True)
    ]
    forms_b = [
        {"E1.C1": v, "E2.C1": u, "R.GENDER": "nu"}
        for v, u in zip((4, 4, 2), (5, 2, None), strict=True)
    ]
    await add_forms(session, campaign, a, forms_a, stratum=sa_)
    await add_forms(session, campaign, b, forms_b, stratum=sb)
    await add_forms(session, campaign, a, [same(5)], stratum=sa_, state=SubmissionState.rejected)
    headers = await role_headers(session, settings)

    body = await index(client, headers, campaign, weighted="true")
    assert body["weighted"] is True
    c11 = node(body["total"], "E1.C1")
    # weighted S = 25·1 + 10·2 = 45; weighted N = 25·3 + 10·3 = 105 → 100·45/105
    assert c11["exact"] == pytest.approx(100 * 45 / 105, abs=1e-9)
    # n and counts are integers (answers); their weighted sums stand beside them
    assert c11["n"] == 6
    assert c11["n_weighted"] == pytest.approx(105)
    assert c11["counts"] == {"2": 1, "3": 2, "4": 2, "5": 1}
    assert c11["counts_weighted"] == {"2": 10.0, "3": 50.0, "4": 20.0, "5": 25.0}
    # Its Wilson interval uses Kish's effective n = (Σw)²/Σw² = 105² / (3·25² + 3·10²).
    low, high = wilson(45, 105, 105**2 / (3 * 25**2 + 3 * 10**2))
    assert_shown(c11["ci_low"], low)
    assert_shown(c11["ci_high"], high)
    assert node(body["total"], "E1")["exact"] == pytest.approx(100 * 45 / 105, abs=1e-9)
    # E2.C1: weighted S = 25·3 + 10·1 = 85 of N = 25·4 + 10·2 = 120.
    assert node(body["total"], "E2")["exact"] == pytest.approx(100 * 85 / 120, abs=1e-9)
    overall_node = node(body["total"], "overall")
    assert overall_node["exact"] == pytest.approx(50 * 45 / 105 + 50 * 85 / 120, abs=1e-9)
    low, high = linearised_interval(forms_a + forms_b, "overall", [25.0] * 4 + [10.0] * 3)
    assert_shown(overall_node["ci_low"], low)
    assert_shown(overall_node["ci_high"], high)
    # the unweighted figure is 3/6 = 50
    plain = await index(client, headers, campaign)
    assert node(plain["total"], "E1.C1")["exact"] == pytest.approx(50.0)


async def test_weighted_without_frame_sizes_is_409(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    a = await make_agency(session)
    campaign = await campaign_for(session, [a])
    stratum = Stratum(campaign_id=campaign.id, agency_id=a.id, frame_size=None)
    session.add(stratum)
    await session.flush()
    await add_forms(session, campaign, a, [same(5)] * 5, stratum=stratum)
    response = await client.get(
        f"/api/v1/campaigns/{campaign.id}/index",
        params={"weighted": "true"},
        headers=await role_headers(session, settings),
    )
    assert response.status_code == 409
    assert response.json()["code"] == "weights_unavailable"


# ---- small cells -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "suppressed", "low"),
    [(4, True, True), (5, False, True), (29, False, True), (30, False, False)],
)
async def test_small_cells(
    client: httpx.AsyncClient,
    session: AsyncSession,
    settings: Settings,
    n: int,
    suppressed: bool,
    low: bool,
) -> None:
    agency = await make_agency(session)
    campaign = await campaign_for(session, [agency])
    forms = [same(5) | {"P.TRIPS": "1"} for _ in range(n)]
    await add_forms(session, campaign, agency, forms)
    body = await index(client, await role_headers(session, settings), campaign, group_by="agency")
    for cell in (body["total"], groups(body)[str(agency.id)]):
        assert cell["n_respondents"] == n
        assert cell["suppressed"] is suppressed
        assert cell["low_reliability"] is low
        c11 = node(cell, "E1.C1")
        overall_node = node(cell, "overall")
        assert c11["suppressed"] is suppressed
        assert overall_node["low_reliability"] is low
        trips = next(i for i in cell["items"] if i["id"] == "P.TRIPS")
        if suppressed:
            for figure in (c11, overall_node, node(cell, "E1")):
                assert figure["value"] is None
                assert figure["exact"] is None
                assert figure["ci_low"] is None
                assert figure["ci_high"] is None
            assert c11["counts"] is None
            assert all(o["count"] is None and o["share"] is None for o in trips["options"])
            assert trips["index"]["value"] is None
        else:
            assert c11["value_display"] == "100.00"
            assert c11["counts"] == {"5": n}
            assert overall_node["value_display"] == "100.00"
            assert trips["index"]["value_display"] == "100.00"


# ---- perception and expectation ----------------------------------------------------------------


async def test_perception_and_expectation_shares(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    agency = await make_agency(session)
    campaign = await campaign_for(session, [agency])
    trips: list[str | None] = ["1", "1", "2", "gt3", None, "1", "3"]
    improve: list[list[str] | None] = [["a", "b"], ["a"], ["c", "a"], None, ["b"], None, None]
    forms: list[Form] = []
    for t, x in zip(trips, improve, strict=True):
        form: Form = {"R.GENDER": "nam", "P.TRIPS": t}
        if x is not None:
            form["X.IMPROVE"] = x
        forms.append(form)
    await add_forms(session, campaign, agency, forms)
    total = (await index(client, await role_headers(session, settings), campaign))["total"]
    items = {i["id"]: i for i in total["items"]}

    # P.TRIPS: 6 valid answers (one null); positive set {"1"}: 3 → 50.
    p = items["P.TRIPS"]
    assert p["role"] == "perception"
    assert p["index"]["exact"] == pytest.approx(50.0)
    assert p["index"]["n"] == 6  # valid answers, as for a criterion
    assert p["index"]["low_reliability"] is True  # the cell's 7 respondents
    shares = {o["code"]: o for o in p["options"]}
    assert {k: o["count"] for k, o in shares.items()} == {"1": 3, "2": 1, "3": 1, "gt3": 1}
    assert shares["1"]["exact"] == pytest.approx(50.0)
    assert shares["2"]["exact"] == pytest.approx(100 / 6)
    assert shares["2"]["share"] == "16.67"
    assert shares["2"]["value"] == pytest.approx(100 / 6)

    # X.IMPROVE: 4 respondents answered; a chosen 3 times, b 2, c 1 → 75, 50, 25 (sum 150).
    x = items["X.IMPROVE"]
    assert x["role"] == "expectation"
    assert x["index"] is None
    chosen = {o["code"]: o for o in x["options"]}
    assert {k: o["count"] for k, o in chosen.items()} == {"a": 3, "b": 2, "c": 1}
    assert chosen["a"]["exact"] == pytest.approx(75.0)
    assert chosen["b"]["exact"] == pytest.approx(50.0)
    assert chosen["c"]["exact"] == pytest.approx(25.0)
    assert sum(o["exact"] for o in chosen.values()) == pytest.approx(150.0)


# ---- rankings ----------------------------------------------------------------------------------


async def test_rankings_ties_and_overlap(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    a = await make_agency(session, code=f"RK-A-{uuid.uuid4().hex[:6]}")
    b = await make_agency(session, code=f"RK-B-{uuid.uuid4().hex[:6]}")
    c = await make_agency(session, code=f"RK-C-{uuid.uuid4().hex[:6]}")
    d = await make_agency(session, code=f"RK-D-{uuid.uuid4().hex[:6]}")
    commune = await make_agency(session, level="commune", kind=AgencyKind.people_committee)
    campaign = await campaign_for(session, [a, b, c, d, commune])
    # Every form answers all criteria alike, so each index equals the satisfied share p, and
    # the overall's z_r = (y_r − p)/n: SE = 100·sqrt(p(1−p)/(n−1)).
    await add_forms(session, campaign, a, satisfied_forms(10, 10))  # 100, SE 0 → [100, 100]
    await add_forms(session, campaign, b, satisfied_forms(7, 10))  # 70 ± z·15.275
    await add_forms(session, campaign, c, satisfied_forms(7, 10))  # → [40.06, 99.94]
    await add_forms(session, campaign, d, satisfied_forms(1, 10))  # 10 ± 19.6 → [0, 29.6]
    await add_forms(session, campaign, commune, satisfied_forms(9, 10))
    headers = await role_headers(session, settings)

    response = await client.get(
        f"/api/v1/campaigns/{campaign.id}/rankings", params={"level": "department"}, headers=headers
    )
    assert response.status_code == 200, response.text
    body = response.json()
    mine = {a.code: "A", b.code: "B", c.code: "C", d.code: "D"}
    rows = [r for r in body["rows"] if r["agency_code"] in mine or r["agency_code"] == commune.code]
    assert commune.code not in [r["agency_code"] for r in rows]
    assert next(mine[r["agency_code"]] for r in rows) == "A"
    assert [r["rank"] for r in rows] == [1, 2, 2, 4]
    by = {mine[r["agency_code"]]: r for r in rows}
    assert by["B"]["exact"] == by["C"]["exact"] == pytest.approx(70.0)
    se = 100 * math.sqrt(0.21 / 9)
    assert_shown(by["B"]["ci_high"], 70 + Z * se)
    assert by["B"]["ci_high"] == pytest.approx(70 + Z * se, rel=1e-12)
    assert by["A"]["distinguishable_from_next"] is True  # 100 > 99.94
    assert sorted(by["B"]["not_distinguishable_from"] + by["C"]["not_distinguishable_from"]) == [
        b.code,
        c.code,
    ]
    assert by["C"]["distinguishable_from_next"] is True  # 40.06 > 29.6
    assert by["D"]["rank"] == 4

    communes = await client.get(
        f"/api/v1/campaigns/{campaign.id}/rankings", params={"level": "commune"}, headers=headers
    )
    assert communes.status_code == 200
    codes = [r["agency_code"] for r in communes.json()["rows"]]
    assert commune.code in codes
    assert not set(mine) & set(codes)


async def test_rankings_rank_the_published_figures(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    # On E1.C1: A 50 of 91 = 54.945054..., B 61 of 111 = 54.954954...: different numbers that
    # both publish as 54.95 (half up), so they share rank 2 under C (30 of 30 = 100), and D
    # (15 of 30 = 50) is 4th. Ranked on the full-precision values, A and B would be 3rd and 2nd.
    agencies = {k: await make_agency(session, code=unique(f"RP-{k}-")) for k in "ABCD"}
    campaign = await campaign_for(session, list(agencies.values()))
    for key, (satisfied, total) in {
        "A": (50, 91),
        "B": (61, 111),
        "C": (30, 30),
        "D": (15, 30),
    }.items():
        forms = [{"E1.C1": 5 if i < satisfied else 2, "R.GENDER": "nu"} for i in range(total)]
        await add_forms(session, campaign, agencies[key], forms)
    response = await client.get(
        f"/api/v1/campaigns/{campaign.id}/rankings",
        params={"level": "department", "node": "E1.C1"},
        headers=await role_headers(session, settings),
    )
    assert response.status_code == 200, response.text
    mine = {a.code: k for k, a in agencies.items()}
    rows = {mine[r["agency_code"]]: r for r in response.json()["rows"] if r["agency_code"] in mine}
    assert {k: r["rank"] for k, r in rows.items()} == {"C": 1, "B": 2, "A": 2, "D": 4}
    assert rows["A"]["value"] == pytest.approx(100 * 50 / 91, abs=1e-12)
    assert rows["B"]["value"] == pytest.approx(100 * 61 / 111, abs=1e-12)
    assert rows["A"]["value_display"] == rows["B"]["value_display"] == "54.95"
    assert [mine[r["agency_code"]] for r in response.json()["rows"] if r["agency_code"] in mine][
        :3
    ] == ["C", "B", "A"]  # within a tie, the larger number first


# ---- change over time --------------------------------------------------------------------------


async def test_change_follows_successor_links_and_pools_the_baseline(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    x = await make_agency(session)
    y = await make_agency(session)
    w = await make_agency(session)
    z = await make_agency(session, valid_from=date(2021, 6, 1))
    baseline = await campaign_for(session, [x, y, w], state=CampaignState.closed)
    current = await campaign_for(session, [z, w])
    current.map_date = date(2021, 10, 31)
    session.add_all(
        [
            AgencySuccessor(
                predecessor_id=x.id,
                successor_id=z.id,
                kind=SuccessionKind.merged_into,
                effective_on=date(2021, 6, 1),
            ),
            AgencySuccessor(
                predecessor_id=y.id,
                successor_id=z.id,
                kind=SuccessionKind.merged_into,
                effective_on=date(2021, 6, 1),
            ),
        ]
    )
    await session.flush()
    await add_forms(session, baseline, x, satisfied_forms(8, 10))  # 80
    await add_forms(session, baseline, y, satisfied_forms(1, 5))  # 20
    await add_forms(session, baseline, w, satisfied_forms(9, 10))  # 90
    await add_forms(session, current, z, satisfied_forms(8, 10))  # 80
    await add_forms(session, current, w, satisfied_forms(5, 10))  # 50
    headers = await role_headers(session, settings)

    response = await client.get(
        f"/api/v1/campaigns/{current.id}/change",
        params={"baseline": str(baseline.id), "level": "department"},
        headers=headers,
    )
    assert response.status_code == 200, response.text
    rows = {r["agency_id"]: r for r in response.json()["rows"]}
    rz, rw = rows[str(z.id)], rows[str(w.id)]
    # Z's baseline is pooled from X and Y: (8 + 1) / 15 = 60 (the mean of indices would be 50).
    assert rz["baseline_value_display"] == "60.00"
    assert rz["baseline_value"] == pytest.approx(60.0)
    assert rz["points_exact"] == pytest.approx(20.0)
    assert sorted(rz["predecessors"]) == sorted([x.code, y.code])
    # Baseline ranks among these: W 90 (1), Z 60 (2); now Z 80 (1), W 50 (2).
    assert (rz["baseline_rank"], rz["rank"], rz["rank_change"]) == (2, 1, 1)
    assert (rw["baseline_rank"], rw["rank"], rw["rank_change"]) == (1, 2, -1)
    assert rw["points_exact"] == pytest.approx(-40.0)
    assert rw["predecessors"] == []
    assert str(x.id) not in rows
    assert str(y.id) not in rows


# ---- the property test -------------------------------------------------------------------------

ANSWER = st.one_of(st.none(), st.just("missing"), st.integers(min_value=1, max_value=5))
STATES = st.sampled_from(["valid", "valid", "valid", "received", "flagged", "rejected"])
FORM = st.tuples(st.integers(min_value=0, max_value=3), STATES, ANSWER, ANSWER, ANSWER)


@hyp_settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.lists(FORM, min_size=0, max_size=40))
async def test_property_matches_recomputation_from_rows(
    client: httpx.AsyncClient,
    session: AsyncSession,
    settings: Settings,
    data: list[tuple[int, str, Any, Any, Any]],
) -> None:
    root = await make_agency(session, level="district", kind=AgencyKind.people_committee)
    kids = [
        await make_agency(session, parent=root, level="commune", kind=AgencyKind.people_committee)
        for _ in range(2)
    ]
    apart = await make_agency(session)
    agencies = [root, *kids, apart]
    subtree = {root.id: {0, 1, 2}, kids[0].id: {1}, kids[1].id: {2}, apart.id: {3}}
    campaign = await campaign_for(session, agencies)
    rows: list[tuple[int, str, Form]] = []
    for where, state, *answers in data:
        form: Form = {"R.GENDER": "nam"}
        for item, answer in zip(CRITERIA, answers, strict=True):
            if answer != "missing":
                form[item] = answer
        rows.append((where, state, form))
        await add_forms(session, campaign, agencies[where], [form], state=SubmissionState(state))
    headers = await role_headers(session, settings)

    def check(cell: Json, forms: list[Form]) -> None:
        assert cell["n_respondents"] == len(forms)
        suppressed = len(forms) < 5
        assert cell["suppressed"] is suppressed
        if cell["index"] is None:
            assert not any(f.get(c) is not None for f in forms for c in CRITERIA) or not forms
            return
        for item in CRITERIA:
            figure = node(cell, item)
            assert figure["n"] == len(valid_answers(forms, item))
            expected = None if suppressed else ci(forms, item)
            assert figure["exact"] == pytest.approx(expected, abs=1e-9)
            assert figure["counts"] == (None if suppressed else level_counts(forms, item))
        for e in ELEMENTS:
            expected = None if suppressed else element(forms, e)
            assert node(cell, e)["exact"] == pytest.approx(expected, abs=1e-9)
        expected = None if suppressed else overall(forms)
        assert node(cell, "overall")["exact"] == pytest.approx(expected, abs=1e-9)

    body = await index(client, headers, campaign, group_by="agency")
    valid = [(where, form) for where, state, form in rows if state == "valid"]
    check(body["total"], [f for _, f in valid])
    cells = groups(body)
    expected_keys = {str(a.id) for a in agencies if any(w in subtree[a.id] for w, _ in valid)}
    assert set(cells) == expected_keys
    for a in agencies:
        if str(a.id) in cells:
            check(cells[str(a.id)], [f for w, f in valid if w in subtree[a.id]])


# ---- authorization -----------------------------------------------------------------------------


async def test_authorization(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    district = await make_agency(session, level="district", kind=AgencyKind.people_committee)
    commune = await make_agency(
        session, parent=district, level="commune", kind=AgencyKind.people_committee
    )
    outside = await make_agency(session)
    campaign = await campaign_for(session, [district, commune, outside])
    await add_forms(session, campaign, district, satisfied_forms(4, 6))
    await add_forms(session, campaign, commune, satisfied_forms(5, 5))
    await add_forms(session, campaign, outside, satisfied_forms(0, 10))
    campaign_id = campaign.id
    url = f"/api/v1/campaigns/{campaign_id}/index"

    assert (await client.get(url)).status_code == 401
    for role in (Role.surveyor, Role.supervisor):
        user = await make_user(session, role)
        response = await client.get(url, headers=bearer(settings, user))
        assert response.status_code == 403, role
        rankings = await client.get(
            f"/api/v1/campaigns/{campaign_id}/rankings", headers=bearer(settings, user)
        )
        assert rankings.status_code == 403

    manager = await make_user(session, Role.agency_manager, agency=district)
    body = await index(client, bearer(settings, manager), campaign, group_by="agency")
    # the total covers the district's subtree only: 4 + 5 satisfied of 11
    assert body["total"]["n_respondents"] == 11
    assert node(body["total"], "overall")["exact"] == pytest.approx(100 * 9 / 11)
    assert set(groups(body)) == {str(district.id), str(commune.id)}
    assert "readable_root" not in body["filters"]

    # Machine clients never hold index:read, so a client is refused before the campaign check.
    other = await campaign_for(session, [outside])
    machine, _ = await make_client(session, [Scope.reports_read])
    machine.campaign_id = other.id
    await session.flush()
    machine_id, other_id = machine.id, other.id  # a refused request expires the session's objects
    assert (await client.get(url, headers=bearer(settings, machine))).status_code == 403
    # A principal bound to another campaign, even one holding index:read, finds no campaign.
    bound = Principal(
        kind="client",
        id=machine_id,
        name="Kiosk thử nghiệm",
        scopes=frozenset({Scope.index_read}),
        campaign_id=other_id,
    )
    with pytest.raises(AppError) as caught:
        await campaign_index(session, bound, campaign_id)
    assert caught.value.status == 404


# ---- ETag and provisional ----------------------------------------------------------------------


async def test_etag_and_not_modified(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    agency = await make_agency(session)
    campaign = await campaign_for(session, [agency])
    await add_forms(session, campaign, agency, satisfied_forms(4, 6))
    headers = await role_headers(session, settings)
    url = f"/api/v1/campaigns/{campaign.id}/index"
    first = await client.get(url, headers=headers)
    second = await client.get(url, headers=headers)
    assert first.status_code == second.status_code == 200
    etag = first.headers["etag"]
    assert etag
    assert second.headers["etag"] == etag
    cached = await client.get(url, headers={**headers, "If-None-Match": etag})
    assert cached.status_code == 304
    assert cached.content == b""
    await add_forms(session, campaign, agency, [same(5)])
    third = await client.get(url, headers={**headers, "If-None-Match": etag})
    assert third.status_code == 200
    assert third.headers["etag"] != etag
    assert third.json()["total"]["n_respondents"] == 7


@pytest.mark.parametrize(
    ("state", "provisional"),
    [(CampaignState.open, True), (CampaignState.closed, False)],
)
async def test_provisional_while_open(
    client: httpx.AsyncClient,
    session: AsyncSession,
    settings: Settings,
    state: CampaignState,
    provisional: bool,
) -> None:
    agency = await make_agency(session)
    campaign = await campaign_for(session, [agency], state=state)
    await add_forms(session, campaign, agency, satisfied_forms(5, 5))
    headers = await role_headers(session, settings)
    body = await index(client, headers, campaign)
    assert body["provisional"] is provisional
    ranking = await client.get(f"/api/v1/campaigns/{campaign.id}/rankings", headers=headers)
    assert ranking.json()["provisional"] is provisional


async def test_rankings_of_a_campaign_without_forms_are_empty(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    agency = await make_agency(session)
    campaign = await campaign_for(session, [agency])
    response = await client.get(
        f"/api/v1/campaigns/{campaign.id}/rankings", headers=await role_headers(session, settings)
    )
    assert response.status_code == 200, response.text
    assert response.json()["rows"] == []
