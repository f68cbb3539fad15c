"""The province's administrative map: agencies in a dated tree, with successor links."""

from __future__ import annotations

import re
import unicodedata
import uuid
from datetime import date, datetime
from enum import StrEnum
from typing import Any, Self

import sqlalchemy as sa
from pydantic import field_validator, model_validator
from sqlmodel import Field, SQLModel

from app.models.base import Page, Timestamped, UpdateSchema, fk, nfc, uuid_pk
from app.models.constraints import one_of
from app.models.timestamps import SaneDate

CODE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"


def bad_characters(value: str) -> bool:
    """True when the text holds control characters or undecodable bytes (lone surrogates)."""
    return any(unicodedata.category(c) in ("Cc", "Cs") for c in value)


def clean_text(value: str) -> str:
    """NFC, stripped, and free of control characters; raises ValueError otherwise."""
    if bad_characters(value):
        raise ValueError("contains control characters or invalid UTF-8")
    return nfc(value)


def clean_optional(value: str | None) -> str | None:
    """Like clean_text, with blank text read as no value."""
    if value is None:
        return None
    return clean_text(value) or None


def required_text(value: str) -> str:
    """Like clean_text, refusing text that is blank."""
    value = clean_text(value)
    if not value:
        raise ValueError("must not be blank")
    return value


def required_text_or_none(value: str | None) -> str | None:
    """`required_text`, with None left as it is (a PATCH field not sent)."""
    return required_text(value) if value is not None else None


def check_code(value: str) -> str:
    value = value.strip()
    if not re.fullmatch(CODE_PATTERN, value):
        raise ValueError(
            "use 1-64 letters, digits, '.', '-' or '_', starting with a letter or digit"
        )
    return value


def code_field(example: str, description: str | None = None) -> Any:
    """A create schema's stable code (an agency's, a sector's, a procedure's), held to
    CODE_PATTERN by `check_code`."""
    return Field(
        min_length=1,
        max_length=64,
        description=description,
        schema_extra={"examples": [example], "pattern": CODE_PATTERN},
    )


class AgencyKind(StrEnum):
    """What sort of body an agency is: `department`, a department of the province (a Sở) or a
    body of that rank; `people_committee`, the People's Committee (UBND) of a province, district
    or commune; `participant`, a body outside the state administration that the map lists for
    the part it takes in public services (the Fatherland Front, an association, the post office)."""

    department = "department"
    people_committee = "people_committee"
    participant = "participant"


class SuccessionKind(StrEnum):
    """How an ended unit's role passed on. Across `merged_into` and `renamed_to` links, a
    comparison with an earlier campaign follows the unit: its successor carries its baseline,
    pooled with those of the others merged into it. A unit `split_into` several has no single
    successor, and comparisons leave it out."""

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


class Agency(Timestamped, table=True):
    """One unit of the map, in place from `valid_from` to `valid_to` (null while it lasts) under
    `parent_id`. A unit is never deleted: one that ends keeps its row, so that earlier campaigns
    still read it, and hands its role on through `AgencySuccessor` links."""

    __tablename__ = "agencies"
    __table_args__ = (
        one_of("kind", AgencyKind),
        sa.CheckConstraint("valid_to IS NULL OR valid_to >= valid_from", name="valid_range"),
        sa.CheckConstraint("parent_id IS NULL OR parent_id <> id", name="not_own_parent"),
        sa.Index("ix_agencies_search_name", "search_name"),
    )

    id: uuid.UUID = uuid_pk()
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
        sa_column=fk("agencies.id", "RESTRICT", nullable=True, index=True),
    )
    is_measured: bool = Field(default=True, sa_column_kwargs={"server_default": sa.true()})
    valid_from: date = Field(sa_type=sa.Date)
    valid_to: date | None = Field(default=None, sa_type=sa.Date)
    admin_unit_code: str | None = Field(
        default=None, sa_type=sa.Text, description="National administrative-unit code, if any."
    )


class AgencySuccessor(SQLModel, table=True):
    """A unit that ended handed its role on: merged into, renamed to, or split into another."""

    __tablename__ = "agency_successors"
    __table_args__ = (
        one_of("kind", SuccessionKind),
        sa.CheckConstraint("predecessor_id <> successor_id", name="not_self"),
    )

    predecessor_id: uuid.UUID = Field(sa_column=fk("agencies.id", "CASCADE", primary_key=True))
    successor_id: uuid.UUID = Field(
        sa_column=fk("agencies.id", "CASCADE", primary_key=True, index=True)
    )
    kind: SuccessionKind = Field(sa_type=sa.Text)
    effective_on: date = Field(sa_type=sa.Date)


# --- API schemas -------------------------------------------------------------------------------


class AgencyBase(SQLModel):
    name: str = Field(
        min_length=1, max_length=300, schema_extra={"examples": ["Sở Tư pháp tỉnh Tuyên Quang"]}
    )
    short_name: str | None = Field(
        default=None, max_length=200, schema_extra={"examples": ["Sở Tư pháp"]}
    )
    kind: AgencyKind
    level: str = Field(
        min_length=1,
        max_length=50,
        description="A code of agency_levels: province, department, district, commune, ...",
        schema_extra={"examples": ["department"]},
    )
    parent_id: uuid.UUID | None = None
    is_measured: bool = Field(default=True, description="Whether SIPAS surveys this agency.")
    valid_from: date = Field(schema_extra={"examples": ["2008-01-01"]})
    valid_to: date | None = Field(default=None, description="Last day the agency existed.")
    admin_unit_code: str | None = Field(
        default=None,
        max_length=20,
        description="National administrative-unit code; reused after mergers, so not unique.",
        schema_extra={"examples": ["02215"]},
    )

    _name = field_validator("name")(required_text)

    _optional_text = field_validator("short_name", "admin_unit_code")(clean_optional)

    @model_validator(mode="after")
    def _range(self) -> Self:
        if self.valid_to is not None and self.valid_to < self.valid_from:
            raise ValueError("valid_to must not be before valid_from")
        return self


class AgencyCreate(AgencyBase):
    # What a client sends is held to sane years; what is stored is read back as it is.
    valid_from: SaneDate = Field(schema_extra={"examples": ["2008-01-01"]})
    valid_to: SaneDate | None = Field(default=None, description="Last day the agency existed.")
    code: str = code_field(
        "TQ.BQLKKT", "Stable code: letters, digits, '.', '-' and '_'. It never changes."
    )

    _code = field_validator("code")(check_code)


class AgencyUpdate(UpdateSchema):
    """Every field optional; only the fields sent change. The code never changes."""

    not_null = ("name", "kind", "level", "is_measured", "valid_from")
    name: str | None = Field(default=None, min_length=1, max_length=300)
    short_name: str | None = Field(default=None, max_length=200)
    kind: AgencyKind | None = None
    level: str | None = Field(default=None, min_length=1, max_length=50)
    parent_id: uuid.UUID | None = Field(
        default=None, description="Moving an agency under another; null makes it a root."
    )
    is_measured: bool | None = None
    valid_from: SaneDate | None = None
    valid_to: SaneDate | None = None
    admin_unit_code: str | None = Field(default=None, max_length=20)

    _name = field_validator("name")(required_text_or_none)

    _optional_text = field_validator("short_name", "admin_unit_code")(clean_optional)


class AgencyPublic(AgencyBase):
    id: uuid.UUID
    code: str
    created_at: datetime
    updated_at: datetime


class AgencyPage(Page[AgencyPublic]):
    pass


class SuccessorRef(SQLModel):
    """Another agency, named by id or by code, and how the role passed to or from it."""

    id: uuid.UUID | None = None
    code: str | None = Field(default=None, max_length=64, schema_extra={"examples": ["TQ.SNV2025"]})
    kind: SuccessionKind
    effective_on: SaneDate | None = Field(
        default=None, description="Defaults to the day after the predecessor's valid_to."
    )

    @model_validator(mode="after")
    def _one_reference(self) -> Self:
        if (self.id is None) == (self.code is None):
            raise ValueError("give exactly one of id and code")
        return self


class AgencyRetire(SQLModel):
    valid_to: SaneDate = Field(description="The last day the agency exists.")
    reason: str | None = Field(default=None, max_length=500)
    successors: list[SuccessorRef] = Field(default_factory=list, max_length=100)

    @field_validator("reason")
    @classmethod
    def _reason(cls, value: str | None) -> str | None:
        return clean_optional(value)


class SuccessorLinksCreate(SQLModel):
    successors: list[SuccessorRef] = Field(min_length=1, max_length=100)


class AgencySuccessorPublic(SQLModel):
    predecessor_id: uuid.UUID
    predecessor_code: str
    successor_id: uuid.UUID
    successor_code: str
    kind: SuccessionKind
    effective_on: date


class AgencyLinks(SQLModel):
    """Succession links of one agency: those it handed on to, and those it took over from."""

    successors: list[AgencySuccessorPublic]
    predecessors: list[AgencySuccessorPublic]


class ImportSummary(SQLModel):
    dry_run: bool
    rows: int = Field(description="Data rows read (the header not counted).")
    created: int
    updated: int
    unchanged: int
