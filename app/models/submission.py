"""Submitted forms. Answers are stored raw, as the respondent gave them (never percentages)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal, get_args

import pydantic
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg
from sqlmodel import Field, SQLModel

from app.models.base import (
    DocumentedAs,
    FieldProblem,
    Page,
    Timestamped,
    fk,
    no_nul,
    timestamptz,
    utcnow,
    uuid_pk,
    writing_tx,
)
from app.models.constraints import campaign_fk, one_of
from app.models.timestamps import SaneDatetime


class Channel(StrEnum):
    web = "web"
    kiosk = "kiosk"
    post_office = "post_office"
    one_stop = "one_stop"
    phone = "phone"


class SubmissionState(StrEnum):
    received = "received"
    valid = "valid"
    flagged = "flagged"
    rejected = "rejected"


# The table's check constraint allows these two; refusing others in the request model names the
# field (and, in a batch, only the item) instead of failing the statement.
RespondentType = Literal["individual", "organisation"]


class Submission(Timestamped, table=True):
    """A form. The table is partitioned by campaign (one partition each, services.partitions):
    the primary key and every unique key hold `campaign_id`, the partition key, and so does
    every foreign key between forms and the rows keyed to them (docs/scaling.md)."""

    __tablename__ = "submissions"
    __table_args__ = (
        sa.UniqueConstraint(
            "campaign_id", "client_submission_id", name="uq_submissions_client_submission"
        ),
        # One invitation yields at most one form, whatever the path: see services.submissions.
        # An invitation belongs to one campaign and a form takes only its own campaign's
        # (invitation_invalid otherwise), so the key within the campaign is the key overall.
        sa.UniqueConstraint("campaign_id", "invitation_id", name="uq_submissions_invitation_id"),
        # invitations.submission_id points back here: created after both tables.
        campaign_fk("invitation_id", "invitations", "SET NULL (invitation_id)", use_alter=True),
        one_of("channel", Channel),
        one_of("state", SubmissionState),
        one_of("respondent_type", get_args(RespondentType), nullable=True),
        sa.Index("ix_submissions_campaign_state", "campaign_id", "state"),
        sa.Index("ix_submissions_campaign_agency", "campaign_id", "agency_id"),
        sa.Index("ix_submissions_tx_order", "tx_id", "id"),
        sa.Index("ix_submissions_campaign_updated", "campaign_id", "updated_at"),
        # The forms a screening rule kept out of the index (counted on every index read).
        sa.Index(
            "ix_submissions_campaign_kept_out",
            "campaign_id",
            postgresql_where=sa.text("state <> 'valid' AND flags <> '{}'::jsonb"),
        ),
        {"postgresql_partition_by": "LIST (campaign_id)"},
    )

    # The primary key is (id, campaign_id): an id alone still finds a form through each
    # partition's key index; with the campaign, through one.
    id: uuid.UUID = uuid_pk()
    campaign_id: uuid.UUID = Field(sa_column=fk("campaigns.id", "RESTRICT", primary_key=True))
    client_submission_id: uuid.UUID = Field(description="The client-made id: the retry key.")
    request_hash: str = Field(sa_type=sa.Text)
    agency_id: uuid.UUID = Field(sa_column=fk("agencies.id", "RESTRICT"))
    sector_id: uuid.UUID | None = Field(
        default=None, sa_column=fk("sectors.id", "RESTRICT", nullable=True)
    )
    procedure_id: uuid.UUID | None = Field(
        default=None, sa_column=fk("procedures.id", "RESTRICT", nullable=True)
    )
    stratum_id: uuid.UUID | None = Field(
        default=None, sa_column=fk("strata.id", "SET NULL", nullable=True, index=True)
    )
    frame_unit_id: uuid.UUID | None = Field(
        default=None, sa_column=fk("frame_units.id", "SET NULL", nullable=True)
    )
    respondent_type: str | None = Field(default=None, sa_type=sa.Text)
    channel: Channel = Field(sa_type=sa.Text)
    client_id: uuid.UUID | None = Field(
        default=None, sa_column=fk("clients.id", "RESTRICT", nullable=True)
    )
    surveyor_id: uuid.UUID | None = Field(
        default=None, sa_column=fk("users.id", "RESTRICT", nullable=True)
    )
    device_id: str | None = Field(default=None, sa_type=sa.Text)
    invitation_id: uuid.UUID | None = Field(default=None, sa_type=sa.Uuid)
    state: SubmissionState = Field(
        default=SubmissionState.received,
        sa_type=sa.Text,
        sa_column_kwargs={"server_default": "received"},
    )
    review_reason: str | None = Field(default=None, sa_type=sa.Text)
    is_synthetic: bool = Field(default=False, sa_column_kwargs={"server_default": sa.false()})
    version: int = Field(default=1, sa_column_kwargs={"server_default": "1"})
    answers: dict[str, Any] = Field(sa_column=sa.Column(pg.JSONB, nullable=False))
    flags: dict[str, Any] = Field(
        default_factory=dict,
        sa_column=sa.Column(pg.JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
        description="Screening flags: rule name → its evidence (see services.quality).",
    )
    received_at: datetime = Field(sa_type=timestamptz())
    server_received_at: datetime = Field(
        default_factory=utcnow,
        sa_type=timestamptz(),
        sa_column_kwargs={"server_default": sa.func.now()},
        description="When the server took the form (its own clock), beside received_at.",
    )
    tx_id: int | None = writing_tx(
        "The writing transaction: lists page in this order, see services.submissions."
    )


class SubmissionVersion(SQLModel, table=True):
    """A previous version of a corrected form: corrections never overwrite without a trace."""

    __tablename__ = "submission_versions"
    __table_args__ = (
        sa.UniqueConstraint(
            "campaign_id", "submission_id", "version", name="uq_submission_versions_version"
        ),
        campaign_fk("submission_id", "submissions", "CASCADE"),
    )

    id: int | None = Field(
        default=None, sa_column=sa.Column(sa.BigInteger, sa.Identity(), primary_key=True)
    )
    campaign_id: uuid.UUID = Field(sa_column=fk("campaigns.id", "CASCADE", primary_key=True))
    submission_id: uuid.UUID = Field(sa_type=sa.Uuid)
    version: int
    answers: dict[str, Any] = Field(sa_column=sa.Column(pg.JSONB, nullable=False))
    agency_id: uuid.UUID = Field(sa_column=fk("agencies.id", "RESTRICT"))
    sector_id: uuid.UUID | None = Field(
        default=None, sa_column=fk("sectors.id", "RESTRICT", nullable=True)
    )
    procedure_id: uuid.UUID | None = Field(
        default=None, sa_column=fk("procedures.id", "RESTRICT", nullable=True)
    )
    respondent_type: str | None = Field(default=None, sa_type=sa.Text)
    replaced_by: uuid.UUID | None = Field(
        default=None, sa_column=fk("users.id", "SET NULL", nullable=True)
    )
    replaced_at: datetime = Field(
        default_factory=utcnow,
        sa_type=timestamptz(),
        sa_column_kwargs={"server_default": sa.func.now()},
    )


# ---- API schemas -------------------------------------------------------------------------------


# What an answer may be, as the questionnaire's item types define it (see app/services/instrument):
# an integer, a string (an option code, yes/no, free text), a list of option codes for multiple
# choice, or null for "no answer". Checked item by item by the service; typed here so that a
# generated client knows the values, not just "any object".
_CODE_SCHEMA: dict[str, Any] = {"anyOf": [{"type": "integer"}, {"type": "string"}]}
ANSWER_SCHEMA: dict[str, Any] = {
    "anyOf": [
        {"type": "integer"},
        {"type": "string"},
        {"type": "array", "items": _CODE_SCHEMA},
        {"type": "null"},
    ]
}
Answers = Annotated[
    dict[str, Any],
    pydantic.WithJsonSchema(
        {
            "type": "object",
            "description": "Item id → the answer: an integer, an option code or text, a list "
            "of option codes (multiple choice), or null for no answer.",
            "additionalProperties": ANSWER_SCHEMA,
        }
    ),
]


# A plain pydantic model, not an SQLModel: a batch validates up to 1000 of these, and SQLModel's
# own validation path costs about three times pydantic's.
class SubmissionIn(pydantic.BaseModel):
    """One filled form. `answers` maps item ids to raw values; see the questionnaire."""

    # Accepted by the demo's open campaign (SIPAS 2020, on sipas-2017).
    model_config = pydantic.ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "submission_id": "0b7f3c1e-6a52-4d7e-9a43-2f7d1c9e5a10",
                    "channel": "web",
                    "agency_code": "TQ.STP",
                    "respondent_type": "individual",
                    "answers": {
                        "R.TYPE": "individual",
                        "S.AGENCY": "TQ.STP",
                        "E1.C1": 5,
                        "E1.C2": 4,
                        "E1.C3": None,
                        "N.CHANNEL": ["one_stop"],
                        "C.COMMENT": "Cán bộ hướng dẫn tận tình.",
                    },
                }
            ]
        }
    )

    submission_id: uuid.UUID | None = pydantic.Field(
        default=None,
        description="Made by the client once per form and sent again on every retry. "
        "Required unless an Idempotency-Key header is sent.",
    )
    agency_code: str | None = pydantic.Field(
        default=None,
        max_length=64,
        description="The agency rated; taken from the answer S.AGENCY when omitted, and must "
        "agree with it when both are given. Ignored when an invitation is given.",
    )
    sector_code: str | None = pydantic.Field(default=None, max_length=64)
    procedure_code: str | None = pydantic.Field(default=None, max_length=50)
    dossier_code: str | None = pydantic.Field(
        default=None, max_length=100, description="The sampled dossier, for assisted forms."
    )
    invitation: str | None = pydantic.Field(default=None, max_length=64)
    respondent_type: RespondentType | None = pydantic.Field(
        default=None,
        description="Taken from the answer R.TYPE when omitted; must agree with it when both "
        "are given.",
    )
    channel: Channel
    device_id: str | None = pydantic.Field(default=None, max_length=100)
    received_at: SaneDatetime | None = pydantic.Field(
        default=None,
        description="When the respondent filled it in; now when omitted. At most "
        "RECEIVED_AT_MAX_AGE_DAYS in the past and CLIENT_CLOCK_SKEW_SECONDS in the future.",
    )
    started_at: SaneDatetime | None = pydantic.Field(
        default=None,
        description="When the respondent began the form, for channels that know it; with "
        "received_at (its end) it gives the completion time that screening checks (too_fast).",
    )
    answers: Answers = pydantic.Field(
        json_schema_extra={"examples": [{"E1.C1": 5, "E1.C2": 4, "E1.C3": None}]}
    )

    _storable = pydantic.field_validator(
        "agency_code", "sector_code", "procedure_code", "dossier_code", "invitation", "device_id"
    )(no_nul)


@dataclass(frozen=True, slots=True)
class SubmissionDraft:
    """A form body that did not pass `SubmissionIn`: the JSON as sent and the schema's errors
    (pydantic's, located from the body's root). The form's answers are still checked against
    the questionnaire, so that every problem of the form comes in one 422."""

    raw: Any
    errors: list[dict[str, Any]]


def _draft_when_invalid(value: Any, handler: pydantic.ValidatorFunctionWrapHandler) -> Any:
    try:
        return handler(value)
    except pydantic.ValidationError as exc:
        return SubmissionDraft(value, [dict(e) for e in exc.errors()])


# The single form's body: documented as `SubmissionIn`, but a body that fails it arrives as a
# `SubmissionDraft` instead of a 422 of its own (see `services.submissions.submit_one`).
SubmissionBody = Annotated[SubmissionIn, pydantic.WrapValidator(_draft_when_invalid)]


class SubmissionPublic(SQLModel):
    id: uuid.UUID
    submission_id: uuid.UUID = Field(description="The client-made id.")
    campaign_id: uuid.UUID
    agency_id: uuid.UUID
    sector_id: uuid.UUID | None
    procedure_id: uuid.UUID | None
    respondent_type: str | None
    channel: Channel
    client_id: uuid.UUID | None
    surveyor_id: uuid.UUID | None
    device_id: str | None
    state: SubmissionState
    review_reason: str | None
    is_synthetic: bool
    version: int
    answers: Answers
    flags: dict[str, Any] = Field(
        default_factory=dict,
        description="Screening flags: rule name → its evidence; empty when the form is clean.",
    )
    received_at: datetime = Field(description="When the respondent filled it in (client-given).")
    server_received_at: datetime = Field(
        description="When the server took the form, by its own clock (read-only)."
    )
    created_at: datetime
    updated_at: datetime


class SubmissionPage(Page[SubmissionPublic]):
    pass


# Batch items are validated one by one by the service (so one bad item is an error in its own
# result); the document still types them as the single call's body.
RawSubmissionIn = Annotated[dict[str, Any], DocumentedAs(SubmissionIn)]


class SubmissionBatchIn(SQLModel):
    submissions: list[RawSubmissionIn] = Field(
        min_length=1, max_length=1000, description="Up to 1000 forms, each as in the single call."
    )


# Plain pydantic, like SubmissionIn: a batch answers with up to 1000 of these.
class BatchItemResult(pydantic.BaseModel):
    index: int
    submission_id: uuid.UUID | None
    status: str = pydantic.Field(description="created, duplicate or error")
    id: uuid.UUID | None = None
    errors: list[FieldProblem] | None = None


class SubmissionBatchResult(pydantic.BaseModel):
    results: list[BatchItemResult]
    created: int
    duplicates: int
    errors: int


class ReviewIn(SQLModel):
    state: SubmissionState
    reason: str | None = Field(default=None, max_length=1000)


class CorrectionIn(SQLModel):
    """A surveyor's correction of their own form before review: the new answers and facts."""

    answers: Answers
    agency_code: str | None = Field(default=None, max_length=64)
    sector_code: str | None = Field(default=None, max_length=64)
    procedure_code: str | None = Field(default=None, max_length=50)
    respondent_type: RespondentType | None = None

    _storable = pydantic.field_validator("agency_code", "sector_code", "procedure_code")(no_nul)


# A correction's body, documented as `CorrectionIn`; one that fails it arrives as a draft.
CorrectionBody = Annotated[CorrectionIn, pydantic.WrapValidator(_draft_when_invalid)]


class SubmissionVersionPublic(SQLModel):
    version: int
    answers: Answers
    agency_id: uuid.UUID
    sector_id: uuid.UUID | None
    procedure_id: uuid.UUID | None
    respondent_type: str | None
    replaced_by: uuid.UUID | None
    replaced_at: datetime
