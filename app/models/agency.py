"""The province's administrative map: agencies in a dated tree, with successor links."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from enum import StrEnum

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from app.models.base import timestamptz, utcnow


class AgencyKind(StrEnum):
    department = "department"
    people_committee = "people_committee"
    participant = "participant"


class SuccessionKind(StrEnum):
    merged_into = "merged_into"
    renamed_to = "renamed_to"
    split_into = "split_into"


class AgencyLevel(SQLModel, table=True):
    """Government levels are data: a province may add or retire one without a code change."""

    __tablename__ = "agency_levels"

    code: str = Field(sa_type=sa.Text, primary_key=True)
    name_vi: str = Field(sa_type=sa.Text)
    name_en: str | None = Field(default=None, sa_type=sa.Text)
    rank: int = Field(description="0 for the top level, larger further down.")


class Agency(SQLModel, table=True):
    __tablename__ = "agencies"
    __table_args__ = (
        sa.CheckConstraint(
            "kind IN ('department', 'people_committee', 'participant')", name="kind_known"
        ),
        sa.CheckConstraint("valid_to IS NULL OR valid_to >= valid_from", name="valid_range"),
        sa.CheckConstraint("parent_id IS NULL OR parent_id <> id", name="not_own_parent"),
        sa.Index("ix_agencies_parent_id", "parent_id"),
        sa.Index("ix_agencies_search_name", "search_name"),
    )

    id: uuid.UUID = Field(
        default_factory=uuid.uuid4,
        sa_column_kwargs={"server_default": sa.text("gen_random_uuid()")},
        primary_key=True,
    )
    code: str = Field(sa_column=sa.Column(sa.Text, nullable=False, unique=True))
    name: str = Field(sa_type=sa.Text)
    short_name: str | None = Field(default=None, sa_type=sa.Text)
    search_name: str = Field(
        sa_type=sa.Text, description="Name and short name folded: lower case, no diacritics."
    )
    kind: AgencyKind = Field(sa_type=sa.Text)
    level: str = Field(
        sa_column=sa.Column(
            sa.Text, sa.ForeignKey("agency_levels.code", ondelete="RESTRICT"), nullable=False
        )
    )
    parent_id: uuid.UUID | None = Field(
        default=None,
        sa_column=sa.Column(
            sa.Uuid, sa.ForeignKey("agencies.id", ondelete="RESTRICT"), nullable=True
        ),
    )
    is_measured: bool = Field(default=True, sa_column_kwargs={"server_default": sa.true()})
    valid_from: date = Field(sa_type=sa.Date)
    valid_to: date | None = Field(default=None, sa_type=sa.Date)
    admin_unit_code: str | None = Field(
        default=None, sa_type=sa.Text, description="National administrative-unit code, if any."
    )
    created_at: datetime = Field(
        default_factory=utcnow,
        sa_type=timestamptz(),
        sa_column_kwargs={"server_default": sa.func.now()},
    )
    updated_at: datetime = Field(
        default_factory=utcnow,
        sa_type=timestamptz(),
        sa_column_kwargs={"server_default": sa.func.now()},
    )


class AgencySuccessor(SQLModel, table=True):
    """A unit that ended handed its role on: merged into, renamed to, or split into another."""

    __tablename__ = "agency_successors"
    __table_args__ = (
        sa.CheckConstraint(
            "kind IN ('merged_into', 'renamed_to', 'split_into')", name="kind_known"
        ),
        sa.CheckConstraint("predecessor_id <> successor_id", name="not_self"),
        sa.Index("ix_agency_successors_successor_id", "successor_id"),
    )

    predecessor_id: uuid.UUID = Field(
        sa_column=sa.Column(
            sa.Uuid, sa.ForeignKey("agencies.id", ondelete="CASCADE"), primary_key=True
        )
    )
    successor_id: uuid.UUID = Field(
        sa_column=sa.Column(
            sa.Uuid, sa.ForeignKey("agencies.id", ondelete="CASCADE"), primary_key=True
        )
    )
    kind: SuccessionKind = Field(sa_type=sa.Text)
    effective_on: date = Field(sa_type=sa.Date)
