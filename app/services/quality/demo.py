"""The field-quality part of the demo: `auto` review on the open demo campaigns, and a third
SIPAS campaign in the middle of its fieldwork that is behind schedule, with screened forms
(some flagged, waiting for review) and a re-check (phúc tra) in progress.

Idempotent: the policy is set only on a campaign whose config is still empty, and the
fieldwork campaign is made only when its code is missing. Its dates follow the day it is
loaded (fieldwork began 20 days before and ends 10 days after), so it reads as current.
"""

from __future__ import annotations

import random
import uuid
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.models.campaign import Campaign, CampaignState
from app.models.identity import User
from app.models.quality import QualityConfig, Recheck
from app.models.questionnaire import Questionnaire
from app.models.submission import Submission, SubmissionState
from app.services import instrument
from app.services.quality import screening

FIELDWORK_CODE = "TQ-SIPAS-2021"
AUTO_CODES = ("TQ-SIPAS-2020", "TQ-DANHGIA-HOSO", FIELDWORK_CODE)
SEED = "tq-2021"
RECHECK_SEED = "tq-2021-phuc-tra"
# A share of the target reached 20 days into a 30-day fieldwork: behind schedule.
DONE_SHARE = 0.4


async def ensure_quality_demo(session: AsyncSession, agencies: list[Any]) -> int:
    """The fieldwork campaign (forms created, or 0 when it exists) and `auto` review on the
    open demo campaigns. `agencies` are the measured agencies of today."""
    created = 0
    if agencies and not await session.scalar(
        sa.select(col(Campaign.id)).where(col(Campaign.code) == FIELDWORK_CODE)
    ):
        created = await _fieldwork_campaign(session, agencies)
    for campaign in (
        await session.scalars(sa.select(Campaign).where(col(Campaign.code).in_(AUTO_CODES)))
    ).all():
        if not campaign.quality:
            campaign.quality = {"review_policy": "auto"}
    await session.flush()
    return created


def _bad(rng: random.Random, answers: dict[str, Any], kind: int) -> dict[str, Any]:
    """A form made suspicious on purpose: straight-lined, or contradictory."""
    if kind == 0:
        return {k: (5 if k.startswith("E") and v is not None else v) for k, v in answers.items()}
    return {**answers, "N.ON_TIME": "late", "E2.C5": 5}


async def _fieldwork_campaign(session: AsyncSession, agencies: list[Any]) -> int:
    from app.services.demo_campaigns import (  # the demo's own
        add_strata,
        record_created,
        synthetic_form,
        synthetic_submission,
    )

    row = await session.scalar(
        sa.select(Questionnaire).where(
            col(Questionnaire.code) == "sipas-2017", col(Questionnaire.version) == 1
        )
    )
    if row is None:  # pragma: no cover - ensure_builtins installed it
        return 0
    q = instrument.load_builtin("sipas-2017")
    rng = random.Random(SEED)  # noqa: S311 - synthetic data, not secrets
    today = datetime.now(UTC).date()
    start, end = today - timedelta(days=19), today + timedelta(days=10)
    now = datetime.now(UTC)
    campaign = Campaign(
        code=FIELDWORK_CODE,
        name="SIPAS 2021 tỉnh Tuyên Quang (đang khảo sát, mô phỏng)",
        year=2021,
        questionnaire_id=row.id,
        state=CampaignState.open,
        period_start=date(2020, 11, 1),
        period_end=date(2021, 10, 31),
        fieldwork_start=start,
        fieldwork_end=end,
        map_date=today,
        sample_seed=SEED,
        is_synthetic=True,
        opened_at=now,
        quality={"review_policy": "auto"},
    )
    session.add(campaign)
    await session.flush()
    targets, strata = await add_strata(session, rng, campaign, agencies)
    surveyor = await session.scalar(sa.select(col(User.id)).where(col(User.username) == "buudien"))
    config = QualityConfig(review_policy="auto")
    rows: list[dict[str, Any]] = []
    for agency in agencies:
        quality = {e.id: rng.uniform(0.6, 0.9) for e in q.elements}
        for n in range(int(targets[agency.id] * DONE_SHARE)):
            answers = synthetic_form(rng, q, agency, quality)
            answers["N.ON_TIME"] = (
                "on_time" if answers.get("E2.C5") == 5 else answers.get("N.ON_TIME")
            )
            if rng.random() < 0.04:
                answers = _bad(rng, answers, n % 2)
            channel = "post_office" if rng.random() < 0.8 else "kiosk"
            day = start + timedelta(days=rng.randrange(0, 19))
            while day.weekday() > 4:
                day -= timedelta(days=1)
            # 09:00 to 16:00 in Hanoi (UTC+7), or a kiosk form late at night now and then
            hour = 15 if channel == "kiosk" and rng.random() < 0.05 else rng.randint(2, 8)
            received_at = datetime.combine(day, time(hour, rng.randint(0, 59)), tzinfo=UTC)
            flags = screening.screen(
                q, config, answers, channel=channel, received_at=received_at, agency_id=agency.id
            )
            rows.append(
                {
                    **synthetic_submission(rng, campaign, agency, strata[agency.id]),
                    "respondent_type": "individual",
                    "channel": channel,
                    "surveyor_id": surveyor if channel == "post_office" else None,
                    "state": (SubmissionState.received if flags else SubmissionState.valid).value,
                    "flags": flags,
                    "answers": answers,
                    "received_at": received_at,
                }
            )
    if rows:
        await session.execute(sa.insert(Submission), rows)
    await _recheck_in_progress(session, campaign.id)
    await record_created(session, campaign, forms=len(rows), seed=SEED)
    return len(rows)


async def _recheck_in_progress(session: AsyncSession, campaign_id: uuid.UUID) -> None:
    """Every flagged form and a seeded 5 % of the others, the first third with an outcome."""
    worker = await session.scalar(sa.select(col(User.id)).where(col(User.username) == "analyst"))
    forms = (
        await session.execute(
            sa.select(col(Submission.id), col(Submission.flags))
            .where(col(Submission.campaign_id) == campaign_id)
            .order_by(sa.func.md5(sa.literal(RECHECK_SEED) + sa.cast(col(Submission.id), sa.Text)))
        )
    ).all()
    clean = [f for f in forms if not f[1]]
    picked = [(f[0], "flagged") for f in forms if f[1]]
    picked += [(f[0], "sample") for f in clean[: -(-len(clean) * 5 // 100)]]
    now = datetime.now(UTC)
    for i, (form_id, reason) in enumerate(picked):
        done = i % 3 == 0
        session.add(
            Recheck(
                campaign_id=campaign_id,
                submission_id=form_id,
                reason=reason,
                seed=RECHECK_SEED,
                assigned_to=worker,
                outcome=("not_confirmed" if reason == "flagged" else "confirmed") if done else None,
                note="Đã gọi lại người trả lời (mô phỏng)" if done else None,
                checked_by=worker if done else None,
                checked_at=now if done else None,
            )
        )
    await session.flush()
