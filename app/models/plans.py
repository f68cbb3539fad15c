"""Improvement plans and dissemination records: what agencies do with a published index.

After a campaign is published each measured agency gets an improvement plan whose targets the
service proposes (its lowest criteria, those below the province, those that fell most since the
previous campaign); the agency's manager adds actions, the Department reviews. Dissemination
records say how an agency made the index known.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from pydantic import field_validator
from sqlalchemy.dialects import postgresql as pg
from sqlmodel import Field, SQLModel

from app.models.agency import clean_text
from app.models.base import Created, Page, Timestamped, UpdateSchema, fk, uuid_pk
from app.models.constraints import one_of
from app.models.public import CriterionFigures


class ReviewStatus(StrEnum):
    pending = "pending"
    approved = "approved"
    changes_requested = "changes_requested"


class ActionStatus(StrEnum):
    """Where an action stands, as the agency reports it. A plan with actions is `completed` once
    each of them is `done` or `cancelled`, and `in_progress` until then."""

    planned = "planned"
    in_progress = "in_progress"
    done = "done"
    cancelled = "cancelled"


class DisseminationMethod(StrEnum):
    """How an agency made the published index known: `meeting`, presented at a meeting;
    `notice`, a written notice, posted or sent; `portal`, a post on its web portal; `media`, the
    press, radio or television."""

    meeting = "meeting"
    notice = "notice"
    portal = "portal"
    media = "media"


def _nfc_optional(value: str | None) -> str | None:
    """NFC, stripped, no control characters (PostgreSQL text refuses NUL)."""
    return None if value is None else clean_text(value)


class ImprovementPlan(Timestamped, table=True):
    __tablename__ = "improvement_plans"
    __table_args__ = (
        sa.UniqueConstraint(
            "campaign_id", "agency_id", name="uq_improvement_plans_campaign_agency"
        ),
        one_of("review_status", ReviewStatus),
    )

    id: uuid.UUID = uuid_pk()
    campaign_id: uuid.UUID = Field(sa_column=fk("campaigns.id", "RESTRICT"))
    agency_id: uuid.UUID = Field(sa_column=fk("agencies.id", "RESTRICT", index=True))
    report_id: uuid.UUID = Field(sa_column=fk("reports.id", "RESTRICT"))
    targets: list[dict[str, Any]] = Field(sa_column=sa.Column(pg.JSONB, nullable=False))
    review_status: ReviewStatus = Field(
        default=ReviewStatus.pending,
        sa_type=sa.Text,
        sa_column_kwargs={"server_default": "pending"},
    )


class PlanAction(Timestamped, table=True):
    __tablename__ = "plan_actions"
    __table_args__ = (one_of("status", ActionStatus),)

    id: uuid.UUID = uuid_pk()
    plan_id: uuid.UUID = Field(sa_column=fk("improvement_plans.id", "CASCADE", index=True))
    criterion_id: str | None = Field(default=None, sa_type=sa.Text)
    what: str = Field(sa_type=sa.Text)
    owner: str = Field(sa_type=sa.Text)
    due_on: date = Field(sa_type=sa.Date)
    status: ActionStatus = Field(
        default=ActionStatus.planned,
        sa_type=sa.Text,
        sa_column_kwargs={"server_default": "planned"},
    )
    evidence: str | None = Field(default=None, sa_type=sa.Text)
    created_by: uuid.UUID | None = None


class PlanComment(Created, table=True):
    __tablename__ = "plan_comments"

    id: uuid.UUID = uuid_pk()
    plan_id: uuid.UUID = Field(sa_column=fk("improvement_plans.id", "CASCADE", index=True))
    author_id: uuid.UUID | None = None
    author_name: str = Field(sa_type=sa.Text)
    review_status: str | None = Field(default=None, sa_type=sa.Text)
    body: str = Field(sa_type=sa.Text)


class DisseminationRecord(Timestamped, table=True):
    __tablename__ = "dissemination_records"
    __table_args__ = (
        one_of("method", DisseminationMethod),
        sa.Index("ix_dissemination_records_campaign_agency", "campaign_id", "agency_id"),
    )

    id: uuid.UUID = uuid_pk()
    campaign_id: uuid.UUID = Field(sa_column=fk("campaigns.id", "RESTRICT"))
    agency_id: uuid.UUID = Field(sa_column=fk("agencies.id", "RESTRICT"))
    method: DisseminationMethod = Field(sa_type=sa.Text)
    held_on: date = Field(sa_type=sa.Date)
    audience: str = Field(sa_type=sa.Text)
    participants: int | None = None
    note: str | None = Field(default=None, sa_type=sa.Text)
    link: str | None = Field(default=None, sa_type=sa.Text)
    created_by: uuid.UUID | None = None


# ---- API schemas -------------------------------------------------------------------------------


class PlanTarget(CriterionFigures):
    criterion_id: str
    previous_value: Decimal | None = None
    change_points: Decimal | None = None
    change_significant: bool | None = Field(
        default=None, description="True when the 95% intervals of the two campaigns do not overlap."
    )
    reasons: list[str] = Field(description="lowest, below_province, fell")


class TargetOutcome(SQLModel):
    """A target's criterion at a later campaign: did the plan work?"""

    criterion_id: str
    campaign_id: uuid.UUID
    report_id: uuid.UUID
    value: Decimal | None
    change_points: Decimal | None
    significant: bool | None


class ActionIn(SQLModel):
    criterion_id: str | None = Field(default=None, max_length=64)
    what: str = Field(min_length=1, max_length=2000)
    owner: str = Field(min_length=1, max_length=200)
    due_on: date
    status: ActionStatus = ActionStatus.planned
    evidence: str | None = Field(default=None, max_length=2000, description="Text or a link.")

    _nfc = field_validator("what", "owner", "evidence")(_nfc_optional)


class ActionPatch(UpdateSchema):
    not_null = ("what", "owner", "due_on", "status")

    what: str | None = Field(default=None, min_length=1, max_length=2000)
    owner: str | None = Field(default=None, min_length=1, max_length=200)
    due_on: date | None = None
    status: ActionStatus | None = None
    evidence: str | None = Field(default=None, max_length=2000)

    _nfc = field_validator("what", "owner", "evidence")(_nfc_optional)


class ActionPublic(SQLModel):
    id: uuid.UUID
    plan_id: uuid.UUID
    criterion_id: str | None
    what: str
    owner: str
    due_on: date
    status: ActionStatus
    evidence: str | None
    created_at: datetime
    updated_at: datetime


class CommentPublic(SQLModel):
    id: uuid.UUID
    author_name: str
    review_status: str | None
    body: str
    created_at: datetime


class ReviewIn(SQLModel):
    status: ReviewStatus
    comment: str = Field(min_length=1, max_length=4000)

    _nfc = field_validator("comment")(_nfc_optional)


class PlanPublic(SQLModel):
    id: uuid.UUID
    campaign_id: uuid.UUID
    agency_id: uuid.UUID
    agency_code: str
    agency_name: str
    report_id: uuid.UUID
    review_status: ReviewStatus
    status: str = Field(
        description="no_actions, in_progress (some action not done), or completed (every "
        "action done or cancelled)."
    )
    targets: list[PlanTarget]
    actions: list[ActionPublic]
    comments: list[CommentPublic]
    outcomes: list[TargetOutcome] = Field(
        default_factory=list, description="Each target at the next published campaign."
    )
    created_at: datetime
    updated_at: datetime


class PlanSummary(SQLModel):
    id: uuid.UUID
    campaign_id: uuid.UUID
    agency_id: uuid.UUID
    agency_code: str
    agency_name: str
    review_status: ReviewStatus
    status: str
    targets: int
    actions: int
    actions_done: int


class PlanPage(Page[PlanSummary]):
    pass


class DisseminationIn(SQLModel):
    campaign_id: uuid.UUID
    agency_id: uuid.UUID
    method: DisseminationMethod
    held_on: date
    audience: str = Field(min_length=1, max_length=500)
    participants: int | None = Field(default=None, ge=0, le=10_000_000)
    note: str | None = Field(default=None, max_length=2000)
    link: str | None = Field(default=None, max_length=2000)

    _nfc = field_validator("audience", "note", "link")(_nfc_optional)


class DisseminationPatch(UpdateSchema):
    not_null = ("method", "held_on", "audience")

    method: DisseminationMethod | None = None
    held_on: date | None = None
    audience: str | None = Field(default=None, min_length=1, max_length=500)
    participants: int | None = Field(default=None, ge=0, le=10_000_000)
    note: str | None = Field(default=None, max_length=2000)
    link: str | None = Field(default=None, max_length=2000)

    _nfc = field_validator("audience", "note", "link")(_nfc_optional)


class DisseminationPublic(SQLModel):
    id: uuid.UUID
    campaign_id: uuid.UUID
    agency_id: uuid.UUID
    method: DisseminationMethod
    held_on: date
    audience: str
    participants: int | None
    note: str | None
    link: str | None
    created_at: datetime
    updated_at: datetime


class DisseminationPage(Page[DisseminationPublic]):
    pass
