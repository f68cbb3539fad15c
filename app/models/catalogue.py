"""The catalogue: sectors (lĩnh vực), procedures (thủ tục hành chính), who handles what."""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from sqlmodel import Field, SQLModel


class Sector(SQLModel, table=True):
    __tablename__ = "sectors"

    id: uuid.UUID = Field(
        default_factory=uuid.uuid4,
        sa_column_kwargs={"server_default": sa.text("gen_random_uuid()")},
        primary_key=True,
    )
    code: str = Field(sa_column=sa.Column(sa.Text, nullable=False, unique=True))
    name_vi: str = Field(sa_type=sa.Text)
    name_en: str | None = Field(default=None, sa_type=sa.Text)
    search_name: str = Field(sa_type=sa.Text)


class Procedure(SQLModel, table=True):
    __tablename__ = "procedures"
    __table_args__ = (sa.Index("ix_procedures_sector_id", "sector_id"),)

    id: uuid.UUID = Field(
        default_factory=uuid.uuid4,
        sa_column_kwargs={"server_default": sa.text("gen_random_uuid()")},
        primary_key=True,
    )
    code: str = Field(
        sa_column=sa.Column(sa.Text, nullable=False, unique=True),
        description="National procedure code, e.g. 1.004227.",
    )
    name: str = Field(sa_type=sa.Text)
    search_name: str = Field(sa_type=sa.Text)
    sector_id: uuid.UUID = Field(
        sa_column=sa.Column(
            sa.Uuid, sa.ForeignKey("sectors.id", ondelete="RESTRICT"), nullable=False
        )
    )
    level: str = Field(
        sa_column=sa.Column(
            sa.Text, sa.ForeignKey("agency_levels.code", ondelete="RESTRICT"), nullable=False
        )
    )


class AgencySector(SQLModel, table=True):
    __tablename__ = "agency_sectors"
    __table_args__ = (sa.Index("ix_agency_sectors_sector_id", "sector_id"),)

    agency_id: uuid.UUID = Field(
        sa_column=sa.Column(
            sa.Uuid, sa.ForeignKey("agencies.id", ondelete="CASCADE"), primary_key=True
        )
    )
    sector_id: uuid.UUID = Field(
        sa_column=sa.Column(
            sa.Uuid, sa.ForeignKey("sectors.id", ondelete="CASCADE"), primary_key=True
        )
    )
