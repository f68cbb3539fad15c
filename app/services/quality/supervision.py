"""The quality config of a campaign, schedule progress with forecasts, flag counts, and the
supervisors' observations that the Department answers."""

from __future__ import annotations

import math
import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.errors import ConflictError, NotFound
from app.models.agency import Agency
from app.models.base import touch
from app.models.campaign import Stratum
from app.models.identity import User
from app.models.quality import (
    Observation,
    ObservationAnswerIn,
    ObservationIn,
    ObservationPublic,
    ProgressLine,
    QualityConfig,
    ScheduleProgress,
)
from app.models.submission import Submission, SubmissionState
from app.services import access, audit, rows
from app.services.principal import Principal
from app.services.quality.screening import config_of

# ---- config ------------------------------------------------------------------------------------


async def get_config(
    session: AsyncSession, principal: Principal, campaign_id: uuid.UUID
) -> QualityConfig:
    campaign = await access.readable_campaign(session, principal, campaign_id)
    return config_of(campaign.quality)


async def put_config(
    session: AsyncSession, actor: Principal, campaign_id: uuid.UUID, data: QualityConfig
) -> QualityConfig:
    """Replace the config (audited). It applies to forms stored from now on."""
    campaign = await access.readable_campaign(session, actor, campaign_id, lock=True)
    before = dict(campaign.quality or {})
    after = data.model_dump(mode="json", exclude_defaults=True)
    campaign.quality = after
    touch(campaign)
    await audit.record_change(
        session,
        actor,
        campaign,
        "campaign.quality",
        object_type="campaign",
        summary=audit.diff(before, after),
    )
    return config_of(after)


# One row per flag of each form (a set-returning function in the select list).
_RULE = sa.func.jsonb_object_keys(col(Submission.flags)).label("rule")

# ---- flags -------------------------------------------------------------------------------------


async def flag_counts(
    session: AsyncSession, principal: Principal, campaign_id: uuid.UUID
) -> dict[str, dict[str, int]]:
    """Per rule: forms flagged, by their state ({rule: {state: count}})."""
    await access.require_campaign(session, principal, campaign_id)
    forms = (
        access.quality_submissions(principal)
        .with_only_columns(_RULE, col(Submission.state))
        .where(col(Submission.campaign_id) == campaign_id)
        .subquery("forms")
    )
    counts = (
        await session.execute(
            sa.select(forms.c.rule, forms.c.state, sa.func.count()).group_by(
                forms.c.rule, forms.c.state
            )
        )
    ).all()
    out: dict[str, dict[str, int]] = {}
    for name, state, count in counts:
        out.setdefault(name, {})[state] = count
    return out


async def excluded_by_rule(
    session: AsyncSession, principal: Principal, campaign_id: uuid.UUID
) -> dict[str, int]:
    """How many forms each rule kept out of the index: the caller's forms carrying the flag
    that are not valid (a form with two flags counts under both)."""
    forms = (
        access.readable_submissions(principal)
        .with_only_columns(_RULE)
        .where(
            col(Submission.campaign_id) == campaign_id,
            col(Submission.state) != SubmissionState.valid.value,
            col(Submission.flags) != sa.text("'{}'::jsonb"),
        )
        .subquery("forms")
    )
    result = await session.execute(
        sa.select(forms.c.rule, sa.func.count()).group_by(forms.c.rule).order_by(forms.c.rule)
    )
    return {str(row[0]): int(row[1]) for row in result.all()}


# ---- schedule ----------------------------------------------------------------------------------


def forecast(start: date, as_of: date, done: int, target: int | None) -> date | None:
    """The day the target is met at the pace so far (forms per day since `start`, counting
    `as_of` as a day of work); `as_of` when it is met; None without a target or a form."""
    if target is None:
        return None
    if done >= target:
        return as_of
    days = max((as_of - start).days + 1, 1)
    if done == 0:
        return None
    pace = done / days
    return as_of + timedelta(days=math.ceil((target - done) / pace))


def _target(value: object) -> int | None:
    return int(value) if isinstance(value, (int, float, Decimal)) else None


def _line(
    key: uuid.UUID | None,
    label: str | None,
    target: int | None,
    counts: tuple[int, int, int],
    start: date,
    end: date,
    as_of: date,
) -> ProgressLine:
    received, valid, flagged = counts
    when = forecast(start, as_of, received, target)
    behind = target is not None and received < target and (when is None or when > end)
    return ProgressLine(
        key=key,
        label=label,
        target=target,
        received=received,
        valid=valid,
        flagged=flagged,
        forecast_completion=when,
        behind_schedule=behind,
    )


async def schedule(
    session: AsyncSession, principal: Principal, campaign_id: uuid.UUID, as_of: date | None
) -> ScheduleProgress:
    """Progress per agency and per surveyor against targets and the fieldwork deadline.
    A form counts toward its target unless rejected; `flagged` counts forms carrying a flag."""
    campaign = await access.readable_campaign(session, principal, campaign_id)
    config = config_of(campaign.quality)
    today = as_of or datetime.now(UTC).date()
    start, end = campaign.fieldwork_start, campaign.fieldwork_end
    forms = access.quality_submissions(principal).where(
        col(Submission.campaign_id) == campaign_id,
        col(Submission.state) != SubmissionState.rejected.value,
    )
    tallies = (
        sa.func.count(),
        sa.func.count().filter(col(Submission.state) == SubmissionState.valid.value),
        sa.func.count().filter(col(Submission.flags) != sa.text("'{}'::jsonb")),
    )
    by_agency = {
        r[0]: (r[1], r[2], r[3])
        for r in (
            await session.execute(
                forms.with_only_columns(col(Submission.agency_id), *tallies).group_by(
                    col(Submission.agency_id)
                )
            )
        ).all()
    }
    targets = {
        r[0]: r[1]
        for r in (
            await session.execute(
                access.readable_strata(principal, campaign_id)
                .order_by(None)
                .with_only_columns(col(Stratum.agency_id), sa.func.sum(col(Stratum.target)))
                .group_by(col(Stratum.agency_id))
            )
        ).all()
    }
    agency_ids = sorted(set(by_agency) | set(targets), key=str)
    names = {
        r[0]: r[1]
        for r in (
            await session.execute(
                sa.select(col(Agency.id), col(Agency.name)).where(col(Agency.id).in_(agency_ids))
            )
        ).all()
    }
    agencies = [
        _line(
            a,
            names.get(a),
            _target(targets.get(a)),
            by_agency.get(a, (0, 0, 0)),
            start,
            end,
            today,
        )
        for a in agency_ids
    ]
    by_surveyor: dict[uuid.UUID | None, tuple[int, int, int]] = {
        r[0]: (r[1], r[2], r[3])
        for r in (
            await session.execute(
                forms.with_only_columns(col(Submission.surveyor_id), *tallies)
                .where(col(Submission.surveyor_id).isnot(None))
                .group_by(col(Submission.surveyor_id))
            )
        ).all()
    }
    surveyor_targets: dict[uuid.UUID | None, int] = {
        uuid.UUID(k): v for k, v in (config.fieldwork_targets or {}).items()
    }
    surveyor_ids = sorted(set(by_surveyor) | set(surveyor_targets), key=str)
    people: dict[uuid.UUID | None, str] = {
        r[0]: r[1]
        for r in (
            await session.execute(
                sa.select(col(User.id), col(User.display_name)).where(
                    col(User.id).in_(surveyor_ids)
                )
            )
        ).all()
    }
    surveyors = [
        _line(
            s,
            people.get(s),
            surveyor_targets.get(s),
            by_surveyor.get(s, (0, 0, 0)),
            start,
            end,
            today,
        )
        for s in surveyor_ids
    ]
    known = [t for t in targets.values() if t is not None]
    total_target = int(sum(known)) if known else None
    received = sum(c[0] for c in by_agency.values())
    valid = sum(c[1] for c in by_agency.values())
    when = forecast(start, today, received, total_target)
    return ScheduleProgress(
        campaign_id=campaign_id,
        fieldwork_start=start,
        fieldwork_end=end,
        as_of=today,
        target=total_target,
        received=received,
        valid=valid,
        forecast_completion=when,
        behind_schedule=total_target is not None
        and received < total_target
        and (when is None or when > end),
        agencies=agencies,
        surveyors=surveyors,
    )


# ---- observations ------------------------------------------------------------------------------


def _observation(row: Observation) -> ObservationPublic:
    return ObservationPublic.model_validate(row)


async def file_observation(
    session: AsyncSession, actor: Principal, campaign_id: uuid.UUID, data: ObservationIn
) -> ObservationPublic:
    await access.require_campaign(session, actor, campaign_id)
    if data.agency_id is not None:
        await access.require_agency(session, actor, data.agency_id)
    if data.submission_id is not None:
        seen = await session.scalar(
            access.quality_submissions(actor)
            .with_only_columns(col(Submission.id))
            .where(
                col(Submission.id) == data.submission_id,
                col(Submission.campaign_id) == campaign_id,
            )
        )
        if seen is None:
            raise NotFound("submission")
    row = Observation(
        campaign_id=campaign_id,
        agency_id=data.agency_id,
        submission_id=data.submission_id,
        body=data.body,
        filed_by=actor.id,
    )
    await audit.record_change(
        session,
        actor,
        row,
        "observation.file",
        object_type="observation",
        summary={"campaign_id": str(campaign_id), "body": data.body},
    )
    return _observation(row)


async def list_observations(
    session: AsyncSession, principal: Principal, campaign_id: uuid.UUID, open_only: bool
) -> list[ObservationPublic]:
    await access.require_campaign(session, principal, campaign_id)
    query = access.readable_observations(principal).where(
        col(Observation.campaign_id) == campaign_id
    )
    if open_only:
        query = query.where(col(Observation.answered_at).is_(None))
    found = await session.scalars(query.order_by(col(Observation.filed_at), col(Observation.id)))
    return [_observation(r) for r in found.all()]


async def answer_observation(
    session: AsyncSession, actor: Principal, observation_id: uuid.UUID, data: ObservationAnswerIn
) -> ObservationPublic:
    query = access.readable_observations(actor).where(col(Observation.id) == observation_id)
    row = await rows.one(session, query, "observation", lock=True)
    if row.answered_at is not None:
        raise ConflictError("observation_answered", "The observation has been answered already.")
    row.answer = data.answer
    row.answered_by = actor.id
    row.answered_at = datetime.now(UTC)
    await audit.record_change(
        session,
        actor,
        row,
        "observation.answer",
        object_type="observation",
        summary={"answer": data.answer},
    )
    return _observation(row)
