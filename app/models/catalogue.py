"""The catalogue: sectors (lĩnh vực), procedures (thủ tục hành chính), who handles what."""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from pydantic import field_validator
from sqlmodel import Field, SQLModel

from app.models.agency import (
    check_code,
    clean_optional,
    code_field,
    required_text,
    required_text_or_none,
)
from app.models.base import Page, UpdateSchema, fk, uuid_pk


class Sector(SQLModel, table=True):
    __tablename__ = "sectors"

    id: uuid.UUID = uuid_pk()
    code: str = Field(sa_column=sa.Column(sa.Text, nullable=False, unique=True))
    name_vi: str = Field(sa_type=sa.Text)
    name_en: str | None = Field(default=None, sa_type=sa.Text)
    search_name: str = Field(sa_type=sa.Text)


class Procedure(SQLModel, table=True):
    __tablename__ = "procedures"

    id: uuid.UUID = uuid_pk()
    code: str = Field(
        sa_column=sa.Column(sa.Text, nullable=False, unique=True),
        description="National procedure code, e.g. 1.004227.",
    )
    name: str = Field(sa_type=sa.Text)
    search_name: str = Field(sa_type=sa.Text)
    sector_id: uuid.UUID = Field(sa_column=fk("sectors.id", "RESTRICT", index=True))
    level: str = Field(
        sa_column=sa.Column(
            sa.Text, sa.ForeignKey("agency_levels.code", ondelete="RESTRICT"), nullable=False
        )
    )


class AgencySector(SQLModel, table=True):
    __tablename__ = "agency_sectors"

    agency_id: uuid.UUID = Field(sa_column=fk("agencies.id", "CASCADE", primary_key=True))
    sector_id: uuid.UUID = Field(
        sa_column=fk("sectors.id", "CASCADE", primary_key=True, index=True)
    )


# --- API schemas -------------------------------------------------------------------------------


class SectorBase(SQLModel):
    name_vi: str = Field(min_length=1, max_length=300, schema_extra={"examples": ["Hộ tịch"]})
    name_en: str | None = Field(
        default=None, max_length=300, schema_extra={"examples": ["Civil status"]}
    )

    _name = field_validator("name_vi")(required_text)

    _optional = field_validator("name_en")(clean_optional)


class SectorCreate(SectorBase):
    code: str = code_field("the-thao")

    _code = field_validator("code")(check_code)


class SectorUpdate(UpdateSchema):
    not_null = ("name_vi",)

    name_vi: str | None = Field(default=None, min_length=1, max_length=300)
    name_en: str | None = Field(default=None, max_length=300)

    _name = field_validator("name_vi")(required_text_or_none)

    _optional = field_validator("name_en")(clean_optional)


class SectorPublic(SectorBase):
    id: uuid.UUID
    code: str


class SectorPage(Page[SectorPublic]):
    pass


class ProcedureBase(SQLModel):
    name: str = Field(
        min_length=1, max_length=500, schema_extra={"examples": ["Thủ tục đăng ký khai sinh"]}
    )
    sector_id: uuid.UUID
    level: str = Field(
        min_length=1,
        max_length=50,
        description="The agency level that handles it (a code of agency_levels).",
        schema_extra={"examples": ["commune"]},
    )

    _name = field_validator("name")(required_text)


class ProcedureCreate(ProcedureBase):
    code: str = code_field("1.012345", "National procedure code.")

    _code = field_validator("code")(check_code)


class ProcedureUpdate(UpdateSchema):
    not_null = ("name", "sector_id", "level")

    name: str | None = Field(default=None, min_length=1, max_length=500)
    sector_id: uuid.UUID | None = None
    level: str | None = Field(default=None, min_length=1, max_length=50)

    _name = field_validator("name")(required_text_or_none)


class ProcedurePublic(ProcedureBase):
    id: uuid.UUID
    code: str


class ProcedurePage(Page[ProcedurePublic]):
    pass


class AgencySectorsReplace(SQLModel):
    sector_ids: list[uuid.UUID] = Field(
        max_length=1000, description="The complete set of sectors the agency handles."
    )


class AgencySectorList(SQLModel):
    items: list[SectorPublic]
