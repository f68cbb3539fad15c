"""One-stop integration: handled dossiers, and the one-time rating invitations they trigger."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

import pydantic
import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from app.models.base import Created, DocumentedAs, FieldProblem, fk, no_nul, timestamptz, uuid_pk
from app.models.constraints import campaign_fk
from app.models.timestamps import SaneDatetime


class Dossier(Created, table=True):
    """A dossier (hồ sơ) whose result the one-stop desk returned. Idempotent by code."""

    __tablename__ = "dossiers"

    id: uuid.UUID = uuid_pk()
    code: str = Field(sa_column=sa.Column(sa.Text, nullable=False, unique=True))
    procedure_id: uuid.UUID = Field(sa_column=fk("procedures.id", "RESTRICT"))
    agency_id: uuid.UUID = Field(sa_column=fk("agencies.id", "RESTRICT", index=True))
    returned_at: datetime = Field(sa_type=timestamptz())
    request_hash: str = Field(sa_type=sa.Text)
    client_id: uuid.UUID | None = Field(
        default=None, sa_column=fk("clients.id", "RESTRICT", nullable=True)
    )


class Invitation(Created, table=True):
    """A one-time right to rate one dossier in one campaign. The token is signed, not stored."""

    __tablename__ = "invitations"
    __table_args__ = (
        sa.UniqueConstraint("dossier_id", "campaign_id", name="uq_invitations_dossier_campaign"),
        # The form made with it, in the invitation's own campaign (a form of another campaign
        # cannot use it: services.dossiers).
        campaign_fk("submission_id", "submissions", "SET NULL (submission_id)"),
    )

    # The primary key holds the campaign, as every key of a table distributed by campaign does
    # (docs/scaling.md); the id alone still finds an invitation through its index.
    id: uuid.UUID = uuid_pk()
    dossier_id: uuid.UUID = Field(sa_column=fk("dossiers.id", "CASCADE"))
    campaign_id: uuid.UUID = Field(
        sa_column=fk("campaigns.id", "CASCADE", primary_key=True, index=True)
    )
    agency_id: uuid.UUID = Field(sa_column=fk("agencies.id", "RESTRICT"))
    procedure_id: uuid.UUID = Field(sa_column=fk("procedures.id", "RESTRICT"))
    expires_at: datetime = Field(sa_type=timestamptz())
    used_at: datetime | None = Field(default=None, sa_type=timestamptz())
    submission_id: uuid.UUID | None = Field(default=None, sa_type=sa.Uuid)


# ---- API schemas -------------------------------------------------------------------------------


class DossierEvent(SQLModel):
    """The one-stop system reports a dossier whose result was returned to the applicant."""

    # Names a procedure and an agency of the demo catalogue.
    model_config = pydantic.ConfigDict(  # type: ignore[assignment]
        json_schema_extra={
            "examples": [
                {
                    "code": "000.00.23.H57-201105-0012",
                    "procedure_code": "1.001193",
                    "agency_code": "TQ.SONDUONG",
                    "returned_at": "2020-11-05T10:30:00+07:00",
                }
            ]
        }
    )

    code: str = Field(
        min_length=1, max_length=100, schema_extra={"examples": ["000.00.23.H57-201105-0012"]}
    )
    procedure_code: str = Field(
        min_length=1, max_length=50, schema_extra={"examples": ["1.001193"]}
    )
    agency_code: str = Field(
        min_length=1, max_length=64, schema_extra={"examples": ["TQ.SONDUONG"]}
    )
    returned_at: SaneDatetime = Field(
        description="When the result was returned, with its offset. At most "
        "RETURNED_AT_MAX_AGE_DAYS in the past and CLIENT_CLOCK_SKEW_SECONDS in the future."
    )

    _storable = pydantic.field_validator("code", "procedure_code", "agency_code")(no_nul)


RawDossierEvent = Annotated[dict[str, Any], DocumentedAs(DossierEvent)]


class DossierBatch(SQLModel):
    # Items are checked one by one (as DossierEvent), so one malformed item is an error in its
    # own result and the others are still kept.
    dossiers: list[RawDossierEvent] = Field(
        min_length=1,
        max_length=1000,
        description="Up to 1000 dossier events, each as in the single call (DossierEvent).",
    )


class InvitationPublic(SQLModel):
    campaign_id: uuid.UUID
    token: str = Field(description="Send it with the submission as `invitation`; usable once.")
    form_url: str | None = Field(
        description="The rating form's link (PUBLIC_FORM_URL?invitation=<token>), when "
        "PUBLIC_FORM_URL is set."
    )
    url: str | None = Field(description="The same link as form_url (its earlier name).")
    expires_at: datetime
    used: bool = Field(description="Whether a form was made with it.")
    used_at: datetime | None = Field(description="When the form was made, if it was.")


class InvitationDetails(SQLModel):
    """What a rating form needs to know of an invitation, read with the token alone."""

    campaign_id: uuid.UUID
    campaign_name: str
    questionnaire_id: uuid.UUID
    questionnaire_code: str
    questionnaire_version: int
    agency_code: str
    agency_name: str
    procedure_code: str
    procedure_name: str
    dossier_code: str
    expires_at: datetime
    expired: bool
    used: bool
    used_at: datetime | None
    usable: bool = Field(
        description="A form can be sent with it now: not used, not expired, campaign open."
    )
    form_url: str | None = Field(description="PUBLIC_FORM_URL?invitation=<token>, when set.")
    questionnaire_url: str = Field(
        description="The questionnaire to render, readable with the token alone."
    )
    submit_url: str = Field(
        description="Where to POST the form, with `invitation` set to the token; no other "
        "credential is needed."
    )


class DossierResult(SQLModel):
    index: int
    code: str | None = Field(description="The event's code; null when the item had none.")
    status: str = Field(description="created, duplicate (same event again) or error")
    dossier_id: uuid.UUID | None = None
    invitations: list[InvitationPublic] = Field(default_factory=list)
    errors: list[FieldProblem] | None = None


class DossierBatchResult(SQLModel):
    results: list[DossierResult]
    created: int
    duplicates: int
    errors: int
