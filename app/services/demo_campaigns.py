"""Demo campaigns: SIPAS 2019 (published, with its report) and SIPAS 2020 (open) of Tuyên Quang
on sipas-2017, and an open dossier-rating campaign on dossier-rating-2018.

The SIPAS forms are synthetic, drawn from a fixed seed and marked `is_synthetic`, so every read
endpoint shows real numbers right after `make run`. Each agency gets its own level of
satisfaction per element, answers are skewed towards satisfied, and some are "no answer".
SIPAS 2019 is created closed and published through `campaigns.publish`, the path an admin takes,
so its report is a real snapshot. The dossier-rating campaign covers today's measured
departments and communes for a period around the day it was loaded, so a dossier event gets
its invitation at once; its forms come from those invitations.

Loading is idempotent: a campaign whose code exists is left alone, except that a demo campaign
left published without a report (by an older version of this loader) gets its report.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from fractions import Fraction
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.models.agency import Agency, AgencyKind
from app.models.campaign import Campaign, CampaignAgency, CampaignState, Stratum
from app.models.questionnaire import Questionnaire
from app.models.report import Report
from app.models.submission import Submission, SubmissionState
from app.services import audit, instrument
from app.services.agencies import valid_on_clause
from app.services.questionnaires import ensure_builtins
from app.services.sampling import allocate, sample_size

CHANNELS = (("post_office", 0.7), ("web", 0.15), ("kiosk", 0.15))


@dataclass(frozen=True, slots=True)
class DemoCampaign:
    code: str
    name: str
    year: int
    state: CampaignState
    seed: str


DEMO = (
    # closed here, then published with its report by campaigns.publish
    DemoCampaign(
        "TQ-SIPAS-2019", "SIPAS 2019 tỉnh Tuyên Quang", 2019, CampaignState.closed, "tq-2019"
    ),
    DemoCampaign(
        "TQ-SIPAS-2020", "SIPAS 2020 tỉnh Tuyên Quang", 2020, CampaignState.open, "tq-2020"
    ),
)


def _pick(rng: random.Random, weighted: tuple[tuple[str, float], ...]) -> str:
    roll, total = rng.random(), 0.0
    for value, weight in weighted:
        total += weight
        if roll < total:
            return value
    return weighted[-1][0]


def said_once(form: dict[str, Any]) -> dict[str, Any]:
    """A synthetic form's respondent type as its answer R.TYPE says, when the questionnaire
    has that item: the API refuses a form whose field and answer disagree. The type drawn
    before stays drawn, so the random stream (and every other synthetic figure) is unchanged."""
    said = form["answers"].get("R.TYPE")
    if said is not None:
        form["respondent_type"] = said
    return form


def synthetic_submission(
    rng: random.Random, campaign: Campaign, agency: Agency, stratum: Stratum
) -> dict[str, Any]:
    """The columns every synthetic form starts with: where it belongs and a client id drawn
    from `rng` (one draw, made where the caller builds the form, so the stream stays in order)."""
    return {
        "campaign_id": campaign.id,
        "client_submission_id": uuid.UUID(int=rng.getrandbits(128), version=4),
        "request_hash": "synthetic",
        "agency_id": agency.id,
        "stratum_id": stratum.id,
        "is_synthetic": True,
    }


def synthetic_form(
    rng: random.Random, q: instrument.Questionnaire, agency: Agency, quality: dict[str, float]
) -> dict[str, Any]:
    """One synthetic form: criteria skewed by the agency's quality per element (a dossier's
    indicators by its mean quality), and some "no answer"."""
    answers: dict[str, Any] = {}
    mean = sum(quality.values()) / len(quality) if quality else 0.75
    for _, item in instrument.iter_items(q):
        if item.id == "S.AGENCY":
            answers[item.id] = agency.code
        elif item.role is instrument.Role.dossier_indicator:
            answers[item.id] = 2 if rng.random() < mean else rng.choice((1, 1, 0))
        elif item.role is instrument.Role.criterion and item.element:
            if rng.random() < 0.04:
                answers[item.id] = None  # no answer
            elif rng.random() < quality[item.element]:
                answers[item.id] = 5 if rng.random() < 0.4 else 4
            else:
                answers[item.id] = rng.choice((3, 3, 3, 2, 1))
        elif item.role is instrument.Role.respondent and item.options:
            answers[item.id] = rng.choice(item.options).code
        elif item.type is instrument.ItemType.yes_no:
            answers[item.id] = "yes" if rng.random() < 0.06 else "no"
        elif item.type is instrument.ItemType.single_choice and item.options:
            answers[item.id] = (
                item.options[0].code if rng.random() < 0.7 else rng.choice(item.options).code
            )
        elif item.type is instrument.ItemType.multiple_choice and item.options:
            limit = item.max_choices or len(item.options)
            chosen = rng.sample(item.options, rng.randint(1, min(limit, 2)))
            answers[item.id] = [o.code for o in chosen]
    return answers


async def add_strata(
    session: AsyncSession, rng: random.Random, campaign: Campaign, agencies: Sequence[Any]
) -> tuple[dict[uuid.UUID, int], dict[uuid.UUID, Stratum]]:
    """A demo campaign's scope (the agencies), a random frame size for each, the sample of a 5%
    margin allocated over them and a stratum each; the targets and the strata by agency."""
    session.add_all(CampaignAgency(campaign_id=campaign.id, agency_id=a.id) for a in agencies)
    frame = {a.id: rng.randint(150, 2500) for a in agencies}
    total = sample_size(sum(frame.values()), Fraction(1, 20))
    targets = allocate(frame, total, campaign.min_per_stratum)
    strata = {
        a.id: Stratum(
            campaign_id=campaign.id, agency_id=a.id, frame_size=frame[a.id], target=targets[a.id]
        )
        for a in agencies
    }
    session.add_all(strata.values())
    await session.flush()
    return targets, strata


async def _open_synthetic(
    session: AsyncSession,
    row: Questionnaire,
    now: datetime,
    *,
    period: tuple[date, date],
    fieldwork: tuple[date, date],
    **fields: Any,
) -> Campaign:
    """A synthetic campaign on questionnaire `row` over the service `period` and with its
    `fieldwork` (first and last days), opened `now` and flushed for its id. `row` is frozen
    with it, as opening a campaign freezes its questionnaire."""
    campaign = Campaign(
        **fields,
        questionnaire_id=row.id,
        period_start=period[0],
        period_end=period[1],
        fieldwork_start=fieldwork[0],
        fieldwork_end=fieldwork[1],
        is_synthetic=True,
        opened_at=now,
    )
    session.add(campaign)
    if row.frozen_at is None:
        row.frozen_at = now
    await session.flush()
    return campaign


async def record_created(session: AsyncSession, campaign: Campaign, **contents: Any) -> None:
    """The audit event of a demo campaign the system created: its code, what it holds
    (`contents`) and that it is synthetic."""
    await audit.record(
        session,
        None,
        "campaign.demo_create",
        object_type="campaign",
        object_id=campaign.id,
        summary={"code": campaign.code, **contents, "synthetic": True},
    )


async def ensure_demo_campaigns(session: AsyncSession) -> dict[str, int]:
    """Create the demo campaigns that are missing; returns forms created per campaign code."""
    await ensure_builtins(session)
    row = await session.scalar(
        sa.select(Questionnaire).where(
            col(Questionnaire.code) == "sipas-2017", col(Questionnaire.version) == 1
        )
    )
    if row is None:  # pragma: no cover - ensure_builtins just installed it
        return {}
    q = instrument.load_builtin("sipas-2017")
    created: dict[str, int] = {}
    for demo in DEMO:
        if await session.scalar(sa.select(col(Campaign.id)).where(col(Campaign.code) == demo.code)):
            continue
        created[demo.code] = await _create(session, demo, row, q)
    await _publish_missing_reports(session)
    if await _ensure_rating_campaign(session):
        created[RATING_CODE] = 0
    # Field quality: auto review, and a campaign mid-fieldwork, behind schedule, being re-checked.
    from app.services.quality.demo import FIELDWORK_CODE, ensure_quality_demo

    if fieldwork := await ensure_quality_demo(
        session, await measured_agencies(session, datetime.now(UTC).date())
    ):
        created[FIELDWORK_CODE] = fieldwork
    return created


DEMO_REASON = "Dữ liệu mô phỏng"
RATING_CODE = "TQ-DANHGIA-HOSO"


async def _publish_missing_reports(session: AsyncSession) -> None:
    """A demo campaign published without a report (older loaders set the state directly)."""
    from app.services.campaigns import publish

    missing = await session.scalars(
        sa.select(col(Campaign.id)).where(
            col(Campaign.code).in_([d.code for d in DEMO]),
            col(Campaign.state) == CampaignState.published,
            ~sa.exists().where(col(Report.campaign_id) == col(Campaign.id)),
        )
    )
    for campaign_id in missing.all():
        await publish(session, None, campaign_id, DEMO_REASON)


async def _ensure_rating_campaign(session: AsyncSession) -> bool:
    """The open dossier-rating campaign; True when it was created now."""
    if await session.scalar(sa.select(col(Campaign.id)).where(col(Campaign.code) == RATING_CODE)):
        return False
    row = await session.scalar(
        sa.select(Questionnaire).where(
            col(Questionnaire.code) == "dossier-rating-2018", col(Questionnaire.version) == 1
        )
    )
    today = datetime.now(UTC).date()
    agencies = await measured_agencies(session, today, levels=("department", "commune"))
    if row is None or not agencies:
        return False
    first, last = date(today.year - 1, 1, 1), date(today.year + 1, 12, 31)
    campaign = await _open_synthetic(
        session,
        row,
        datetime.now(UTC),
        code=RATING_CODE,
        name="Đánh giá giải quyết hồ sơ một cửa tỉnh Tuyên Quang (mô phỏng)",
        year=today.year,
        state=CampaignState.open,
        period=(first, last),
        fieldwork=(first, last),
        map_date=today,
        rates_dossiers=True,
    )
    session.add_all(CampaignAgency(campaign_id=campaign.id, agency_id=a.id) for a in agencies)
    await session.flush()
    await record_created(session, campaign, agencies=len(agencies))
    return True


async def measured_agencies(
    session: AsyncSession, day: date, levels: tuple[str, ...] = ("department", "district")
) -> list[Agency]:
    """The province's measured agencies of `levels` on `day`, by code: what a demo
    campaign (and the benchmark data on the demo province) covers."""
    return list(
        (
            await session.scalars(
                sa.select(Agency)
                .where(
                    col(Agency.is_measured),
                    col(Agency.kind) != AgencyKind.participant,
                    col(Agency.level).in_(levels),
                    valid_on_clause(day),
                )
                .order_by(col(Agency.code))
            )
        ).all()
    )


async def _create(
    session: AsyncSession, demo: DemoCampaign, row: Questionnaire, q: instrument.Questionnaire
) -> int:
    rng = random.Random(demo.seed)  # noqa: S311 - synthetic data, not secrets
    map_date = date(demo.year, 10, 31)
    agencies = await measured_agencies(session, map_date)
    if not agencies:
        return 0
    now = datetime.now(UTC)
    campaign = await _open_synthetic(
        session,
        row,
        now,
        code=demo.code,
        name=demo.name,
        year=demo.year,
        state=demo.state,
        period=(date(demo.year - 1, 11, 1), map_date),
        fieldwork=(date(demo.year, 11, 1), date(demo.year, 12, 15)),
        map_date=map_date,
        sample_seed=demo.seed,
        closed_at=now if demo.state is CampaignState.closed else None,
    )
    targets, strata = await add_strata(session, rng, campaign, agencies)

    rows: list[dict[str, Any]] = []
    start = datetime.combine(campaign.fieldwork_start, time(8), tzinfo=UTC)
    for agency in agencies:
        base = rng.uniform(0.55, 0.92)
        quality = {e.id: min(0.98, max(0.3, base + rng.uniform(-0.08, 0.08))) for e in q.elements}
        for _ in range(targets[agency.id]):
            state = SubmissionState.rejected if rng.random() < 0.03 else SubmissionState.valid
            rows.append(
                {
                    **synthetic_submission(rng, campaign, agency, strata[agency.id]),
                    "respondent_type": "individual" if rng.random() < 0.9 else "organisation",
                    "channel": _pick(rng, CHANNELS),
                    "state": state.value,
                    "review_reason": "Phiếu không hợp lệ (dữ liệu mô phỏng)"
                    if state is SubmissionState.rejected
                    else None,
                    "answers": synthetic_form(rng, q, agency, quality),
                    "received_at": start + timedelta(minutes=rng.randint(0, 60 * 24 * 40)),
                }
            )
            said_once(rows[-1])
    await session.execute(sa.insert(Submission), rows)
    await record_created(session, campaign, forms=len(rows), seed=demo.seed)
    if demo.state is CampaignState.closed:  # the past campaign is published, with its report
        from app.services.campaigns import publish

        await publish(session, None, campaign.id, DEMO_REASON)
    return len(rows)
