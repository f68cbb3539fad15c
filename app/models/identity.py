"""Staff users, machine clients, and the vocabulary of roles and scopes."""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from enum import StrEnum

import sqlalchemy as sa
from pydantic import field_validator
from sqlalchemy.dialects import postgresql as pg
from sqlmodel import Field, SQLModel

from app.models.base import Created, Page, Timestamped, UpdateSchema, fk, nfc, timestamptz, uuid_pk
from app.models.constraints import one_of
from app.models.timestamps import SaneDatetime


class Role(StrEnum):
    admin = "admin"
    analyst = "analyst"
    agency_manager = "agency_manager"
    surveyor = "surveyor"
    supervisor = "supervisor"


class Scope(StrEnum):
    """What a token may do. Routers declare the scopes they need; roles map onto scopes."""

    users_admin = "users:admin"
    audit_read = "audit:read"
    agencies_read = "agencies:read"
    agencies_write = "agencies:write"
    catalogue_read = "catalogue:read"
    catalogue_write = "catalogue:write"
    questionnaires_read = "questionnaires:read"
    questionnaires_write = "questionnaires:write"
    campaigns_read = "campaigns:read"
    campaigns_write = "campaigns:write"
    progress_read = "progress:read"
    frame_write = "frame:write"
    worklist_read = "worklist:read"
    submissions_read = "submissions:read"
    submissions_write = "submissions:write"
    submissions_review = "submissions:review"
    dossiers_write = "dossiers:write"
    index_read = "index:read"
    reports_read = "reports:read"
    reports_write = "reports:write"
    events_read = "events:read"
    webhooks_write = "webhooks:write"
    webhooks_admin = "webhooks:admin"
    plans_read = "plans:read"
    plans_write = "plans:write"
    plans_review = "plans:review"
    quality_read = "quality:read"
    rechecks_write = "rechecks:write"
    observations_write = "observations:write"


S = Scope
_READ_ALL = {
    S.agencies_read,
    S.catalogue_read,
    S.questionnaires_read,
    S.campaigns_read,
    S.progress_read,
    S.submissions_read,
    S.index_read,
    S.reports_read,
    S.events_read,
}
ROLE_SCOPES: dict[Role, frozenset[Scope]] = {
    Role.admin: frozenset(Scope),
    # The Department's analysts read the audit log and review forms, as admins do (product
    # brief); administration (accounts, the agency tree, catalogue, campaigns) stays with admins.
    Role.analyst: frozenset(
        _READ_ALL
        | {S.reports_write, S.audit_read, S.submissions_review, S.quality_read, S.rechecks_write}
        | {S.plans_read, S.plans_write, S.plans_review}
    ),
    # Improvement plans and dissemination records of their own subtree (access.py).
    Role.agency_manager: frozenset(_READ_ALL | {S.plans_read, S.plans_write}),
    Role.surveyor: frozenset(
        {
            S.agencies_read,
            S.catalogue_read,
            S.questionnaires_read,
            S.campaigns_read,
            S.worklist_read,
            S.submissions_write,
            # Only the forms they entered, in campaigns they are assigned to (access.py).
            S.submissions_read,
        }
    ),
    # Supervisors (Fatherland Front, Veterans' Association) read progress, quality flags and
    # re-check outcomes and file observations; they never change forms.
    Role.supervisor: frozenset(
        {
            S.agencies_read,
            S.catalogue_read,
            S.campaigns_read,
            S.progress_read,
            S.reports_read,
            S.plans_read,
            S.quality_read,
            S.observations_write,
        }
    ),
}
# Machine clients may hold only these: no administration, no raw answers.
CLIENT_SCOPES: frozenset[Scope] = frozenset(
    {
        S.questionnaires_read,
        S.campaigns_read,
        S.agencies_read,
        S.catalogue_read,
        S.submissions_write,
        S.dossiers_write,
        S.frame_write,
        S.progress_read,
        S.reports_read,
        S.events_read,
        S.webhooks_write,
    }
)

USERNAME_PATTERN = r"^[a-z0-9][a-z0-9._-]{2,63}$"
MIN_PASSWORD_LENGTH = 10


class UserBase(SQLModel):
    display_name: str = Field(min_length=1, max_length=200)
    role: Role = Field(sa_type=sa.Text)
    agency_id: uuid.UUID | None = Field(
        default=None, description="Required for agency_manager: the root of the visible subtree."
    )

    _nfc = field_validator("display_name")(nfc)


class User(UserBase, Timestamped, table=True):
    __tablename__ = "users"
    agency_id: uuid.UUID | None = Field(
        default=None, sa_column=fk("agencies.id", "RESTRICT", nullable=True)
    )
    __table_args__ = (
        one_of("role", Role),
        sa.CheckConstraint(
            "role <> 'agency_manager' OR agency_id IS NOT NULL", name="manager_has_agency"
        ),
    )

    id: uuid.UUID = uuid_pk()
    username: str = Field(sa_column=sa.Column(sa.Text, nullable=False, unique=True))
    password_hash: str = Field(sa_type=sa.Text)
    is_active: bool = Field(default=True, sa_column_kwargs={"server_default": sa.true()})
    token_version: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    last_login_at: datetime | None = Field(default=None, sa_type=timestamptz())


class UserCreate(UserBase):
    username: str = Field(
        min_length=3,
        max_length=64,
        description="Lower-case letters, digits, dot, dash and underscore.",
        schema_extra={"examples": ["nguyen.van.an"], "pattern": USERNAME_PATTERN},
    )
    password: str = Field(min_length=MIN_PASSWORD_LENGTH, max_length=256)

    @field_validator("username", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("username")
    @classmethod
    def _pattern(cls, value: str) -> str:
        if not re.fullmatch(USERNAME_PATTERN, value):
            raise ValueError("use 3-64 lower-case letters, digits, '.', '-' or '_'")
        return value


class UserUpdate(UpdateSchema):
    not_null = ("role", "is_active")

    display_name: str | None = Field(default=None, min_length=1, max_length=200)
    role: Role | None = None
    agency_id: uuid.UUID | None = None
    is_active: bool | None = None
    password: str | None = Field(default=None, min_length=MIN_PASSWORD_LENGTH, max_length=256)

    _nfc = field_validator("display_name")(nfc)


class UserPublic(UserBase):
    id: uuid.UUID
    username: str
    is_active: bool
    created_at: datetime
    updated_at: datetime
    last_login_at: datetime | None


class UserPage(Page[UserPublic]):
    pass


class PasswordChange(SQLModel):
    current_password: str = Field(max_length=256)
    new_password: str = Field(min_length=MIN_PASSWORD_LENGTH, max_length=256)


class ClientBase(SQLModel):
    name: str = Field(
        min_length=1, max_length=200, schema_extra={"examples": ["Cổng dịch vụ công tỉnh"]}
    )
    scopes: list[Scope] = Field(
        sa_column=sa.Column(pg.ARRAY(sa.Text), nullable=False),
        schema_extra={"examples": [["submissions:write", "questionnaires:read"]]},
    )
    agency_id: uuid.UUID | None = Field(
        default=None, description="Limits the client to this agency's subtree."
    )
    campaign_id: uuid.UUID | None = Field(
        default=None, description="Limits the client to one campaign."
    )
    expires_at: datetime | None = Field(default=None, sa_type=timestamptz())

    _nfc = field_validator("name")(nfc)


class Client(ClientBase, Created, table=True):
    __tablename__ = "clients"
    agency_id: uuid.UUID | None = Field(
        default=None, sa_column=fk("agencies.id", "RESTRICT", nullable=True)
    )

    id: uuid.UUID = uuid_pk()
    client_id: str = Field(sa_column=sa.Column(sa.Text, nullable=False, unique=True))
    secret_hash: str = Field(sa_type=sa.Text)
    token_version: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    revoked_at: datetime | None = Field(default=None, sa_type=timestamptz())
    last_used_at: datetime | None = Field(default=None, sa_type=timestamptz())


class ClientCreate(ClientBase):
    expires_at: SaneDatetime | None = None

    @field_validator("scopes")
    @classmethod
    def _machine_scopes(cls, value: list[Scope]) -> list[Scope]:
        return _check_client_scopes(value)


class ClientUpdate(UpdateSchema):
    not_null = ("name", "scopes")

    name: str | None = Field(default=None, min_length=1, max_length=200)
    scopes: list[Scope] | None = None
    expires_at: SaneDatetime | None = None

    @field_validator("scopes")
    @classmethod
    def _machine_scopes(cls, value: list[Scope] | None) -> list[Scope] | None:
        return _check_client_scopes(value) if value is not None else None


def _check_client_scopes(value: list[Scope]) -> list[Scope]:
    if not value:
        raise ValueError("a client needs at least one scope")
    refused = sorted(s.value for s in value if s not in CLIENT_SCOPES)
    if refused:
        raise ValueError(f"scopes not available to machine clients: {', '.join(refused)}")
    return sorted(set(value))


class ClientPublic(ClientBase):
    id: uuid.UUID
    client_id: str
    revoked_at: datetime | None
    last_used_at: datetime | None
    created_at: datetime


class ClientWithSecret(ClientPublic):
    client_secret: str = Field(description="Shown only in this response; store it now.")


class ClientPage(Page[ClientPublic]):
    pass
