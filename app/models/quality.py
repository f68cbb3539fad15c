"""Field quality: the screening config of a campaign, re-checks (phúc tra) and observations."""

from __future__ import annotations

import re
import uuid
from datetime import date, datetime, time
from enum import StrEnum
from typing import Annotated, Any, Literal

import pydantic
import sqlalchemy as sa
from pydantic import field_validator
from sqlmodel import Field, SQLModel

from app.models.base import Created, fk, nfc, timestamptz, utcnow, uuid_pk
from app.models.constraints import campaign_fk, one_of
from app.models.submission import SubmissionState

# A wall-clock time of day in the province (UTC+7), written `HH:MM[:SS]` with no offset. JSON
# Schema's `time` format demands an offset, which a time of day in office hours has not.
_LOCAL_TIME = r"^([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9](\.[0-9]+)?)?$"


def _local_time(value: Any) -> Any:
    """Only `HH:MM[:SS]` text (or a time without an offset): pydantic alone would also take a
    number of seconds or an offset, and answer a time with `Z` that breaks the schema."""
    if isinstance(value, time) and value.tzinfo is None:
        return value
    if isinstance(value, str) and re.fullmatch(_LOCAL_TIME, value):
        return value
    raise ValueError("a local time of day, HH:MM or HH:MM:SS, without an offset")


LocalTime = Annotated[
    time,
    pydantic.BeforeValidator(_local_time),
    pydantic.WithJsonSchema(
        {
            "type": "string",
            "pattern": _LOCAL_TIME,
            "description": "Local time of day, HH:MM or HH:MM:SS (Asia/Ho_Chi_Minh).",
            "examples": ["07:30"],
        }
    ),
]


class Rule(StrEnum):
    """The screening rules; each names the flag it puts on a form."""

    too_fast = "too_fast"
    straight_lining = "straight_lining"
    too_many_no_answers = "too_many_no_answers"
    many_from_device = "many_from_device"
    many_from_surveyor = "many_from_surveyor"
    kiosk_off_hours = "kiosk_off_hours"
    dossier_rated_before = "dossier_rated_before"
    contradiction = "contradiction"
    agency_mismatch = "agency_mismatch"


# Rules that look at other forms: evaluated after the insert, one statement per batch.
WINDOW_RULES = frozenset(
    {Rule.many_from_device, Rule.many_from_surveyor, Rule.dossier_rated_before}
)

Code = int | str


class Contradiction(pydantic.BaseModel):
    """Answers that contradict each other: when item `when_item` is one of `when_in` and every
    item of `then_items` is one of `then_in` (e.g. "result late" and every timeliness
    criterion "very satisfied")."""

    model_config = pydantic.ConfigDict(extra="forbid")

    name: str = pydantic.Field(min_length=1, max_length=100)
    when_item: str = pydantic.Field(min_length=1, max_length=100)
    when_in: list[Code] = pydantic.Field(min_length=1, max_length=50)
    then_items: list[str] = pydantic.Field(min_length=1, max_length=100)
    then_in: list[Code] = pydantic.Field(min_length=1, max_length=50)


# The defaults by questionnaire code; a campaign's own list replaces them.
DEFAULT_CONTRADICTIONS: dict[str, list[Contradiction]] = {
    "sipas-2017": [
        Contradiction(
            name="late_but_timely",
            when_item="N.ON_TIME",
            when_in=["late"],
            then_items=["E2.C5"],
            then_in=[5],
        )
    ],
}

ReviewPolicy = Literal["manual", "auto"]


class QualityConfig(pydantic.BaseModel):
    """A campaign's quality rules. Every field has a default; `{}` is the default config.

    The default review policy of a new campaign is `manual`: every form waits for a review, as
    before screening existed. With `auto`, a form that passes screening is valid at once and a
    flagged one waits (state `received`, with its flags) for a reviewer."""

    model_config = pydantic.ConfigDict(extra="forbid")

    review_policy: ReviewPolicy = "manual"
    disabled_rules: list[Rule] = pydantic.Field(default_factory=list, max_length=20)
    min_completion_seconds: int = pydantic.Field(
        default=120, ge=0, le=86_400, description="too_fast: fewer seconds from start to end."
    )
    straight_lining_min_items: int = pydantic.Field(
        default=8, ge=2, le=1000, description="straight_lining: at least this many rated items."
    )
    max_no_answer_share: float = pydantic.Field(
        default=0.3, ge=0, le=1, description="too_many_no_answers: rated items left unanswered."
    )
    burst_window_minutes: int = pydantic.Field(default=10, ge=1, le=1440)
    burst_max_forms: int = pydantic.Field(
        default=10, ge=1, le=100_000, description="More forms than this in the window: flagged."
    )
    office_hours_start: LocalTime = time(7, 0)
    office_hours_end: LocalTime = time(17, 30)
    office_days: list[int] = pydantic.Field(
        default_factory=lambda: [0, 1, 2, 3, 4], description="0 Monday … 6 Sunday."
    )
    timezone: str = "Asia/Ho_Chi_Minh"
    contradictions: list[Contradiction] | None = pydantic.Field(
        default=None,
        max_length=100,
        description="Null: the questionnaire's defaults (sipas-2017: 'late_but_timely').",
    )
    recheck_share: float = pydantic.Field(default=0.05, ge=0, le=1)
    require_recheck_before_publication: bool = False
    fieldwork_targets: dict[str, int] | None = pydantic.Field(
        default=None,
        description="Optional targets per surveyor id (forms), for progress.",
    )

    @field_validator("office_days")
    @classmethod
    def _days(cls, value: list[int]) -> list[int]:
        if any(d < 0 or d > 6 for d in value):
            raise ValueError("days are 0 (Monday) to 6 (Sunday)")
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError("unknown time zone") from exc
        return value

    def contradictions_for(self, questionnaire_code: str) -> list[Contradiction]:
        if self.contradictions is not None:
            return self.contradictions
        return DEFAULT_CONTRADICTIONS.get(questionnaire_code, [])


# ---- re-checks ---------------------------------------------------------------------------------


class RecheckOutcome(StrEnum):
    confirmed = "confirmed"
    not_confirmed = "not_confirmed"
    unreachable = "unreachable"


class Recheck(Created, table=True):
    """A form to be re-checked: the worker contacts the respondent and records the outcome."""

    __tablename__ = "rechecks"
    __table_args__ = (
        one_of("reason", ("sample", "flagged")),
        one_of("outcome", RecheckOutcome, nullable=True),
        sa.UniqueConstraint("campaign_id", "submission_id", name="uq_rechecks_submission_id"),
        campaign_fk("submission_id", "submissions", "CASCADE"),
    )

    id: uuid.UUID = uuid_pk()
    campaign_id: uuid.UUID = Field(
        sa_column=fk("campaigns.id", "CASCADE", primary_key=True, index=True)
    )
    submission_id: uuid.UUID = Field(sa_type=sa.Uuid)
    reason: str = Field(sa_type=sa.Text)
    seed: str = Field(sa_type=sa.Text)
    assigned_to: uuid.UUID | None = Field(
        default=None, sa_column=fk("users.id", "SET NULL", nullable=True)
    )
    outcome: str | None = Field(default=None, sa_type=sa.Text)
    note: str | None = Field(default=None, sa_type=sa.Text)
    checked_by: uuid.UUID | None = Field(
        default=None, sa_column=fk("users.id", "SET NULL", nullable=True)
    )
    checked_at: datetime | None = Field(default=None, sa_type=timestamptz())


class RecheckDrawIn(SQLModel):
    seed: str = Field(min_length=1, max_length=100, description="The same seed draws the same.")
    share: float | None = Field(
        default=None, ge=0, le=1, description="Share of each surveyor's forms; the config's."
    )
    assigned_to: uuid.UUID | None = Field(
        default=None, description="The re-check worker (a user holding rechecks:write)."
    )


class RecheckPublic(SQLModel):
    id: uuid.UUID
    campaign_id: uuid.UUID
    submission_id: uuid.UUID
    surveyor_id: uuid.UUID | None
    reason: str
    seed: str
    assigned_to: uuid.UUID | None
    outcome: RecheckOutcome | None
    note: str | None
    checked_at: datetime | None
    created_at: datetime


class RecheckDrawResult(SQLModel):
    drawn: int = Field(description="New re-checks made by this draw.")
    sampled: int
    flagged: int
    items: list[RecheckPublic]


class RecheckOutcomeIn(SQLModel):
    outcome: RecheckOutcome
    note: str | None = Field(default=None, max_length=2000)

    @field_validator("note")
    @classmethod
    def _nfc(cls, value: str | None) -> str | None:
        return nfc(value) if value is not None else None


class SurveyorConfirmation(SQLModel):
    surveyor_id: uuid.UUID | None
    rechecks: int
    done: int
    confirmed: int
    confirmation_rate_pct: float | None = Field(description="100 · confirmed / done.")


class RecheckSummary(SQLModel):
    campaign_id: uuid.UUID
    total: int
    done: int
    pending: int
    surveyors: list[SurveyorConfirmation]


# ---- bulk review and the queue -----------------------------------------------------------------


class ReviewFilter(SQLModel):
    agency_id: uuid.UUID | None = Field(default=None, description="The agency and its subtree.")
    surveyor_id: uuid.UUID | None = None
    flag: Rule | None = Field(default=None, description="Forms carrying this flag.")
    clean: bool | None = Field(default=None, description="true: only forms with no flag.")
    state: SubmissionState = Field(
        default=SubmissionState.received, description="The forms' current state."
    )
    since: datetime | None = Field(default=None, description="received_at from (inclusive).")
    until: datetime | None = Field(default=None, description="received_at before (exclusive).")


class BulkReviewIn(SQLModel):
    """Exactly one of `ids` and `filter`."""

    ids: list[uuid.UUID] | None = Field(default=None, min_length=1, max_length=10_000)
    filter: ReviewFilter | None = None
    state: SubmissionState
    reason: str | None = Field(default=None, max_length=1000)


class BulkReviewItem(SQLModel):
    id: uuid.UUID
    status: Literal["reviewed", "not_found", "not_allowed"]
    from_state: SubmissionState | None = Field(default=None, alias="from")


class BulkReviewResult(SQLModel):
    reviewed: int
    skipped: int
    items: list[BulkReviewItem]


class QueueItem(SQLModel):
    id: uuid.UUID
    submission_id: uuid.UUID
    agency_id: uuid.UUID
    surveyor_id: uuid.UUID | None
    channel: str
    state: SubmissionState
    received_at: datetime
    risk: int = Field(description="The number of flags: the queue's order, highest first.")
    flags: dict[str, Any]


class ReviewQueue(SQLModel):
    items: list[QueueItem]


# ---- schedule and supervision ------------------------------------------------------------------


class ProgressLine(SQLModel):
    key: uuid.UUID | None = Field(description="The agency or surveyor id.")
    label: str | None
    target: int | None
    received: int
    valid: int
    flagged: int
    forecast_completion: date | None = Field(
        description="At the pace so far (forms per day since fieldwork began), the day the "
        "target is met; null without a target or a form."
    )
    behind_schedule: bool = Field(description="The forecast falls after the fieldwork deadline.")


class ScheduleProgress(SQLModel):
    campaign_id: uuid.UUID
    fieldwork_start: date
    fieldwork_end: date
    as_of: date
    target: int | None
    received: int
    valid: int
    forecast_completion: date | None
    behind_schedule: bool
    agencies: list[ProgressLine]
    surveyors: list[ProgressLine]


class Observation(SQLModel, table=True):
    """A supervisor's observation on the fieldwork; the Department must answer it."""

    __tablename__ = "observations"
    __table_args__ = (campaign_fk("submission_id", "submissions", "SET NULL (submission_id)"),)

    id: uuid.UUID = uuid_pk()
    campaign_id: uuid.UUID = Field(
        sa_column=fk("campaigns.id", "CASCADE", primary_key=True, index=True)
    )
    agency_id: uuid.UUID | None = Field(
        default=None, sa_column=fk("agencies.id", "RESTRICT", nullable=True)
    )
    submission_id: uuid.UUID | None = Field(default=None, sa_type=sa.Uuid)
    body: str = Field(sa_type=sa.Text)
    filed_by: uuid.UUID | None = Field(
        default=None, sa_column=fk("users.id", "SET NULL", nullable=True)
    )
    filed_at: datetime = Field(
        default_factory=utcnow,
        sa_type=timestamptz(),
        sa_column_kwargs={"server_default": sa.func.now()},
    )
    answer: str | None = Field(default=None, sa_type=sa.Text)
    answered_by: uuid.UUID | None = Field(
        default=None, sa_column=fk("users.id", "SET NULL", nullable=True)
    )
    answered_at: datetime | None = Field(default=None, sa_type=timestamptz())


def _text(value: str) -> str:
    """Composed (NFC), trimmed, and not blank."""
    value = nfc(value)
    if not value:
        raise ValueError("must not be blank")
    return value


NonBlank = Annotated[str, pydantic.StringConstraints(min_length=1, max_length=5000)]


class ObservationIn(SQLModel):
    body: NonBlank
    agency_id: uuid.UUID | None = None
    submission_id: uuid.UUID | None = None

    @field_validator("body")
    @classmethod
    def _nfc(cls, value: str) -> str:
        return _text(value)


class ObservationAnswerIn(SQLModel):
    answer: NonBlank

    @field_validator("answer")
    @classmethod
    def _nfc(cls, value: str) -> str:
        return _text(value)


class ObservationPublic(SQLModel):
    id: uuid.UUID
    campaign_id: uuid.UUID
    agency_id: uuid.UUID | None
    submission_id: uuid.UUID | None
    body: str
    filed_by: uuid.UUID | None
    filed_at: datetime
    answer: str | None
    answered_by: uuid.UUID | None
    answered_at: datetime | None
