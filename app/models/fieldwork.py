"""API schemas of a campaign's fieldwork: the frame import, the sample, surveyors, the worklist.

The tables (FrameUnit, FrameContact, Stratum, CampaignSurveyor) live in `app.models.campaign`.
"""

from __future__ import annotations

import uuid
from datetime import date

from sqlmodel import Field, SQLModel

from app.models.campaign import StratumPublic

FRAME_COLUMNS = (
    "dossier_code",
    "procedure_code",
    "agency_code",
    "returned_on",
    "contact_name",
    "contact_phone",
    "contact_address",
)
FRAME_REQUIRED = ("dossier_code", "procedure_code", "agency_code", "returned_on")
CONTACT_COLUMNS = ("contact_name", "contact_phone", "contact_address")
WORKLIST_COLUMNS = (
    "frame_unit_id",
    "dossier_code",
    "procedure_code",
    "procedure_name",
    "agency_code",
    "agency_name",
    "returned_on",
    "contact_name",
    "contact_phone",
    "contact_address",
)


class FrameUnitIn(SQLModel):
    """One completed dossier, as the one-stop system exports it."""

    dossier_code: str = Field(max_length=100, schema_extra={"examples": ["000.00.12.H59-200315"]})
    procedure_code: str = Field(
        max_length=64,
        description="National procedure code.",
        schema_extra={"examples": ["1.001193"]},
    )
    agency_code: str = Field(max_length=64, description="Must be in the campaign's scope.")
    returned_on: date = Field(description="Within the campaign's period_start..period_end.")
    contact_name: str | None = Field(
        default=None, max_length=300, schema_extra={"examples": ["Nguyễn Thị Hoà"]}
    )
    contact_phone: str | None = Field(default=None, max_length=50)
    contact_address: str | None = Field(default=None, max_length=500)


class FrameImport(SQLModel):
    """The JSON form of a frame import; a CSV upload has the same columns."""

    units: list[FrameUnitIn] = Field(max_length=100_000)


class FrameImportSummary(SQLModel):
    received: int = Field(description="Units in the request.")
    created: int = Field(description="Dossier codes new to the campaign's frame.")
    updated: int = Field(description="Dossier codes already in the frame, replaced.")
    strata: list[StratumPublic] = Field(
        description="Every stratum of the campaign, frame sizes recounted."
    )


class SampleRequest(SQLModel):
    seed: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="Repeat a draw with its seed; omit for a fresh random one.",
        schema_extra={"examples": ["tq-2020-a"]},
    )


class StratumSample(SQLModel):
    stratum_id: uuid.UUID
    agency_id: uuid.UUID
    sector_id: uuid.UUID | None
    frame_size: int
    target: int
    drawn: int


class SamplePublic(SQLModel):
    campaign_id: uuid.UUID
    seed: str
    drawn: int
    strata: list[StratumSample]


class SurveyorAssignmentIn(SQLModel):
    user_id: uuid.UUID
    agency_id: uuid.UUID | None = Field(
        default=None, description="One agency's part of the campaign; null for all of it."
    )


class SurveyorAssignments(SQLModel):
    assignments: list[SurveyorAssignmentIn] = Field(max_length=10_000)


class SurveyorAssignmentPublic(SQLModel):
    user_id: uuid.UUID
    username: str
    display_name: str
    agency_id: uuid.UUID | None
    agency_code: str | None
    agency_name: str | None


class WorklistItem(SQLModel):
    """What a surveyor needs to visit one sampled applicant, and nothing more."""

    frame_unit_id: uuid.UUID
    dossier_code: str
    procedure_code: str | None
    procedure_name: str | None
    agency_code: str
    agency_name: str
    returned_on: date
    contact_name: str | None = Field(description="Empty once the campaign is archived.")
    contact_phone: str | None
    contact_address: str | None
