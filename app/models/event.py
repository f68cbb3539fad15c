"""Events out: the outbox of domain events, webhook subscriptions and their deliveries."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from pydantic import AwareDatetime, field_validator
from sqlalchemy.dialects import postgresql as pg
from sqlmodel import Field, SQLModel

from app.models.base import (
    Created,
    Page,
    Timestamped,
    UpdateSchema,
    fk,
    nfc,
    no_nul,
    timestamptz,
    utcnow,
    uuid_pk,
    writing_tx,
)
from app.models.constraints import one_of


class EventType(StrEnum):
    """Every type the service emits. A type's payload keeps its shape within a version."""

    submission_accepted = "submission.accepted"
    submission_reviewed = "submission.reviewed"
    invitation_used = "invitation.used"
    dossier_received = "dossier.received"
    campaign_transitioned = "campaign.transitioned"
    campaign_behind_target = "campaign.behind_target"
    report_published = "report.published"
    plan_updated = "plan.updated"


class Event(SQLModel, table=True):
    """One event, written in the transaction of the change it tells of (the outbox).

    `tx_id` is the writing transaction's id, assigned by the database; the feed and the
    dispatcher read events in (`tx_id`, `seq`) order behind the oldest running transaction, so
    an event that commits late is never passed over (see app.services.events.feed)."""

    __tablename__ = "events"
    __table_args__ = (
        sa.Index("ix_events_tx_order", "tx_id", "seq"),
        # Partial: most events have no key, and they pay for no entry here.
        sa.Index(
            "ix_events_dedupe_key",
            "dedupe_key",
            unique=True,
            postgresql_where=sa.text("dedupe_key IS NOT NULL"),
        ),
    )

    id: uuid.UUID = uuid_pk()
    seq: int | None = Field(
        default=None, sa_column=sa.Column(sa.BigInteger, sa.Identity(), nullable=False)
    )
    tx_id: int | None = writing_tx()
    type: str = Field(sa_type=sa.Text)
    version: int = Field(default=1, sa_column_kwargs={"server_default": "1"})
    occurred_at: datetime = Field(
        default_factory=utcnow,
        sa_type=timestamptz(),
        sa_column_kwargs={"server_default": sa.func.now()},
    )
    agency_id: uuid.UUID | None = None
    campaign_id: uuid.UUID | None = None
    payload: dict[str, Any] = Field(
        default_factory=dict,
        sa_column=sa.Column(pg.JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
    )
    dedupe_key: str | None = Field(default=None, sa_type=sa.Text)


class EventPublic(SQLModel):
    """An event as the feed and webhooks carry it (the webhook body is this object)."""

    id: uuid.UUID = Field(description="Stable: the same in every delivery (the `webhook-id`).")
    type: EventType
    version: int = Field(description="The payload's schema version for this type.")
    timestamp: datetime = Field(description="When the change happened (committed with it).")
    agency_id: uuid.UUID | None = Field(
        description="The agency the event is about; null for province-wide events."
    )
    campaign_id: uuid.UUID | None
    data: dict[str, Any] = Field(description="The payload, frozen when the event was written.")


class EventPage(Page[EventPublic]):
    pass


class SubscriptionState(StrEnum):
    active = "active"
    paused = "paused"


class WebhookSubscription(Timestamped, table=True):
    __tablename__ = "webhook_subscriptions"
    __table_args__ = (one_of("state", SubscriptionState),)

    id: uuid.UUID = uuid_pk()
    client_id: uuid.UUID = Field(sa_column=fk("clients.id", "CASCADE", index=True))
    url: str = Field(sa_type=sa.Text)
    event_types: list[str] = Field(sa_column=sa.Column(pg.ARRAY(sa.Text), nullable=False))
    agency_id: uuid.UUID | None = Field(
        default=None,
        sa_column=fk("agencies.id", "RESTRICT", nullable=True),
    )
    description: str | None = Field(default=None, sa_type=sa.Text)
    state: str = Field(
        default="active", sa_type=sa.Text, sa_column_kwargs={"server_default": "active"}
    )
    paused_reason: str | None = Field(default=None, sa_type=sa.Text)
    paused_at: datetime | None = Field(default=None, sa_type=timestamptz())
    # The signing secrets live here only (never in a response after the first): HMAC needs the
    # secret itself, so it cannot be stored as a hash.
    secret: str = Field(sa_type=sa.Text)
    previous_secret: str | None = Field(default=None, sa_type=sa.Text)
    previous_secret_until: datetime | None = Field(default=None, sa_type=timestamptz())
    consecutive_dead: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    failing_since: datetime | None = Field(default=None, sa_type=timestamptz())


def _nfc_or_none(value: str | None) -> str | None:
    value = no_nul(value)
    return nfc(value) if value is not None else None


def _url(value: str | None) -> str | None:
    return no_nul(value.strip()) if value is not None else None


class WebhookSubscriptionCreate(SQLModel):
    url: str = Field(
        min_length=8, max_length=2000, schema_extra={"examples": ["https://one-stop.example/hook"]}
    )
    event_types: list[EventType] = Field(
        min_length=1, schema_extra={"examples": [["invitation.used", "report.published"]]}
    )
    agency_id: uuid.UUID | None = Field(
        default=None,
        description="Only events about this agency's subtree; within the client's own agency.",
    )
    description: str | None = Field(default=None, max_length=500)
    client_id: uuid.UUID | None = Field(
        default=None,
        description="The owning machine client (admins only; a client subscribes for itself).",
    )

    _nfc = field_validator("description")(_nfc_or_none)
    _storable = field_validator("url")(_url)


class WebhookSubscriptionUpdate(UpdateSchema):
    not_null = ("url", "event_types", "state")

    url: str | None = Field(default=None, min_length=8, max_length=2000)
    event_types: list[EventType] | None = Field(default=None, min_length=1)
    agency_id: uuid.UUID | None = None
    description: str | None = Field(default=None, max_length=500)
    state: SubscriptionState | None = Field(
        default=None, description="`active` resumes a paused subscription; `paused` pauses it."
    )

    _nfc = field_validator("description")(_nfc_or_none)
    _storable = field_validator("url")(_url)


class WebhookSubscriptionPublic(SQLModel):
    id: uuid.UUID
    client_id: uuid.UUID
    url: str
    event_types: list[str]
    agency_id: uuid.UUID | None
    description: str | None
    state: SubscriptionState
    paused_reason: str | None
    paused_at: datetime | None
    previous_secret_until: datetime | None = Field(
        description="Until then deliveries are signed with the previous secret too."
    )
    created_at: datetime
    updated_at: datetime


class WebhookSubscriptionWithSecret(WebhookSubscriptionPublic):
    secret: str = Field(
        description="`whsec_` and the base64 key: shown only in this response; store it now."
    )


class WebhookSubscriptionPage(Page[WebhookSubscriptionPublic]):
    pass


class SecretRotation(SQLModel):
    overlap_seconds: int | None = Field(
        default=None,
        ge=0,
        le=7 * 24 * 3600,
        description="How long the old secret still signs (default: the service's setting).",
    )


class DeliveryState(StrEnum):
    pending = "pending"
    delivered = "delivered"
    dead = "dead"


class WebhookDelivery(Created, table=True):
    """One event for one subscription. `next_attempt_at` is also the claim: a worker that takes
    a delivery moves it past its lease, so a worker killed mid-attempt leaves it due again."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        one_of("state", DeliveryState),
        sa.UniqueConstraint("event_id", "subscription_id"),
        sa.Index(
            "ix_webhook_deliveries_due",
            "next_attempt_at",
            postgresql_where=sa.text("state = 'pending'"),
        ),
        sa.Index("ix_webhook_deliveries_subscription_state", "subscription_id", "state"),
    )

    id: int | None = Field(
        default=None, sa_column=sa.Column(sa.BigInteger, sa.Identity(), primary_key=True)
    )
    event_id: uuid.UUID = Field(sa_column=fk("events.id", "CASCADE"))
    subscription_id: uuid.UUID = Field(sa_column=fk("webhook_subscriptions.id", "CASCADE"))
    state: str = Field(
        default="pending", sa_type=sa.Text, sa_column_kwargs={"server_default": "pending"}
    )
    attempts: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    next_attempt_at: datetime = Field(
        default_factory=utcnow,
        sa_type=timestamptz(),
        sa_column_kwargs={"server_default": sa.func.now()},
    )
    claim_token: uuid.UUID | None = None
    last_attempt_at: datetime | None = Field(default=None, sa_type=timestamptz())
    last_status: int | None = None
    last_error: str | None = Field(default=None, sa_type=sa.Text)
    delivered_at: datetime | None = Field(default=None, sa_type=timestamptz())
    dead_at: datetime | None = Field(default=None, sa_type=timestamptz())


class WebhookDeliveryPublic(SQLModel):
    id: int
    event_id: uuid.UUID
    event_type: str
    subscription_id: uuid.UUID
    state: DeliveryState
    attempts: int
    next_attempt_at: datetime
    last_attempt_at: datetime | None
    last_status: int | None = Field(description="The receiver's last HTTP status, if any.")
    last_error: str | None
    delivered_at: datetime | None
    dead_at: datetime | None
    created_at: datetime


class WebhookDeliveryPage(Page[WebhookDeliveryPublic]):
    pass


class ReplayIn(SQLModel):
    subscription_id: uuid.UUID | None = Field(
        default=None, description="Only this subscription's dead letters."
    )
    since: AwareDatetime | None = Field(
        default=None, description="Dead letters from this time on (with its offset)."
    )


class ReplayResult(SQLModel):
    replayed: int


class WebhookDispatch(SQLModel, table=True):
    """Where fan-out stands in the event order: one row, moved in the transaction that creates
    the deliveries, so a dispatcher killed midway redoes its batch and no event is skipped."""

    __tablename__ = "webhook_dispatch"
    __table_args__ = (sa.CheckConstraint("id = 1", name="single_row"),)

    id: int = Field(
        default=1, sa_column=sa.Column(sa.Integer, primary_key=True, autoincrement=False)
    )
    tx_id: int = Field(default=0, sa_column=sa.Column(sa.BigInteger, nullable=False))
    seq: int = Field(default=0, sa_column=sa.Column(sa.BigInteger, nullable=False))
