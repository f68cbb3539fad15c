"""Questionnaire versions: the instrument as data, frozen once a campaign opens on it."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg
from sqlmodel import Field, SQLModel

from app.models.base import Created, Page, timestamptz, uuid_pk


class Questionnaire(Created, table=True):
    __tablename__ = "questionnaires"
    __table_args__ = (
        sa.UniqueConstraint("code", "version", name="uq_questionnaires_code_version"),
        sa.CheckConstraint("version >= 1", name="version_positive"),
    )

    id: uuid.UUID = uuid_pk()
    code: str = Field(sa_type=sa.Text, description="The instrument, e.g. sipas-2017.")
    version: int = Field(default=1)
    method: str = Field(sa_type=sa.Text, description="The decision that defines the method.")
    title_vi: str = Field(sa_type=sa.Text)
    title_en: str | None = Field(default=None, sa_type=sa.Text)
    definition: dict[str, Any] = Field(sa_column=sa.Column(pg.JSONB, nullable=False))
    is_builtin: bool = Field(default=False, sa_column_kwargs={"server_default": sa.false()})
    frozen_at: datetime | None = Field(default=None, sa_type=timestamptz())


# ---- API schemas -------------------------------------------------------------------------------


class QuestionnaireSummary(SQLModel):
    id: uuid.UUID
    code: str
    version: int
    method: str
    title_vi: str
    title_en: str | None
    is_builtin: bool
    frozen_at: datetime | None
    created_at: datetime


class QuestionnairePublic(QuestionnaireSummary):
    definition: dict[str, Any] = Field(
        description="Everything a frontend needs to render the form: sections, items, types, "
        "labels, options, required flags, and the index rules."
    )


class QuestionnaireCreate(SQLModel):
    definition: dict[str, Any] = Field(
        description="A questionnaire definition (see GET of a built-in for the shape). Its "
        "`version` is assigned: one more than the latest of the same code."
    )


class QuestionnairePage(Page[QuestionnaireSummary]):
    pass
