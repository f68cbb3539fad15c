"""Webhook subscriptions and their deliveries: admins (`webhooks:admin`) manage all of them,
a machine client with `webhooks:write` its own. Deliveries follow the Standard Webhooks
specification; see the README's "Events and webhooks"."""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass
from typing import Annotated

from fastapi import APIRouter, Body, Depends, Response, status
from pydantic import BaseModel

from app.api.ids import DeliveryId, SubscriptionId
from app.api.paging import PageDep
from app.api.problems import AUTHED, CONFLICT, NOT_FOUND
from app.deps import SessionDep, SettingsDep, scoped
from app.models.event import (
    DeliveryState,
    EventType,
    ReplayIn,
    ReplayResult,
    SecretRotation,
    WebhookDeliveryPage,
    WebhookDeliveryPublic,
    WebhookSubscriptionCreate,
    WebhookSubscriptionPage,
    WebhookSubscriptionPublic,
    WebhookSubscriptionUpdate,
    WebhookSubscriptionWithSecret,
)
from app.models.identity import Scope
from app.services.events import DESCRIPTIONS, VERSIONS, deliveries, subscriptions
from app.services.principal import Principal

router = APIRouter(prefix="/webhooks", tags=["webhooks"], responses=AUTHED)

# Every route declares webhooks:write (admins hold every scope); among those callers, one that
# also holds webhooks:admin manages every subscription, the others only their own.
WebhooksWriter = Annotated[Principal, scoped(Scope.webhooks_write)]
EventsReader = Annotated[Principal, scoped(Scope.events_read)]

_WHO = (
    "Admins (`webhooks:admin`) see every subscription; a machine client with `webhooks:write` "
    "sees its own."
)


@dataclass
class SubscriptionFilters:
    client_id: uuid.UUID | None = None


@dataclass
class DeliveryFilters:
    subscription_id: uuid.UUID | None = None
    state: DeliveryState | None = None


class EventTypeInfo(BaseModel):
    type: EventType
    version: int
    description: str


@router.get(
    "/event-types",
    summary="The event types and their payload versions",
    description="Every event type a subscription or the feed may name, with the version of its "
    "payload; a payload only grows within a version.",
    response_model=list[EventTypeInfo],
)
async def event_types(_: EventsReader) -> list[EventTypeInfo]:
    return [
        EventTypeInfo(type=t, version=VERSIONS[t], description=DESCRIPTIONS[t]) for t in EventType
    ]


@router.post(
    "/subscriptions",
    summary="Subscribe a URL to events (the signing secret is in this response only)",
    description="The URL must be https and resolve to public addresses unless the deployment "
    "allows it (WEBHOOK_ALLOWED_HOSTS). An agency-bound client receives events of its own "
    "subtree at most. " + _WHO,
    status_code=status.HTTP_201_CREATED,
    response_model=WebhookSubscriptionWithSecret,
)
async def create_subscription(
    session: SessionDep,
    settings: SettingsDep,
    actor: WebhooksWriter,
    body: WebhookSubscriptionCreate,
) -> WebhookSubscriptionWithSecret:
    return await subscriptions.create(session, settings, actor, body)


@router.get(
    "/subscriptions",
    summary="List webhook subscriptions",
    description=_WHO,
    response_model=WebhookSubscriptionPage,
)
async def list_subscriptions(
    session: SessionDep,
    principal: WebhooksWriter,
    page: PageDep,
    filters: Annotated[SubscriptionFilters, Depends()],
) -> WebhookSubscriptionPage:
    return await subscriptions.list_subscriptions(
        session, principal, **asdict(page), **asdict(filters)
    )


@router.get(
    "/subscriptions/{subscription_id}",
    summary="One webhook subscription",
    description="Its URL, event types, agency filter, state and the reason it was paused, if "
    "it was; never the signing secret. " + _WHO,
    response_model=WebhookSubscriptionPublic,
    responses=NOT_FOUND,
)
async def get_subscription(
    session: SessionDep, principal: WebhooksWriter, subscription_id: SubscriptionId
) -> WebhookSubscriptionPublic:
    return subscriptions.public(await subscriptions.get(session, principal, subscription_id))


@router.patch(
    "/subscriptions/{subscription_id}",
    summary="Change a subscription, pause it, or resume a paused one",
    description="`state: active` resumes a subscription paused for failing; the deliveries "
    "kept while it was paused are sent then.",
    response_model=WebhookSubscriptionPublic,
    responses=NOT_FOUND,
)
async def update_subscription(
    session: SessionDep,
    settings: SettingsDep,
    actor: WebhooksWriter,
    subscription_id: SubscriptionId,
    body: WebhookSubscriptionUpdate,
) -> WebhookSubscriptionPublic:
    row = await subscriptions.update(session, settings, actor, subscription_id, body)
    return subscriptions.public(row)


@router.delete(
    "/subscriptions/{subscription_id}",
    summary="Delete a subscription and its deliveries",
    description="Pending deliveries are dropped with it; events stay in the feed. Audited.",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=NOT_FOUND,
)
async def delete_subscription(
    session: SessionDep, actor: WebhooksWriter, subscription_id: SubscriptionId
) -> Response:
    await subscriptions.delete(session, actor, subscription_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/subscriptions/{subscription_id}/rotate-secret",
    summary="Issue a new signing secret; the old one keeps signing for an overlap",
    description="During the overlap each delivery carries two signatures in "
    "`webhook-signature`, one per secret, so receivers can switch without losing a delivery.",
    response_model=WebhookSubscriptionWithSecret,
    responses=NOT_FOUND,
)
async def rotate_secret(
    session: SessionDep,
    settings: SettingsDep,
    actor: WebhooksWriter,
    subscription_id: SubscriptionId,
    body: Annotated[SecretRotation, Body(default_factory=SecretRotation)],
) -> WebhookSubscriptionWithSecret:
    return await subscriptions.rotate_secret(session, settings, actor, subscription_id, body)


@router.get(
    "/deliveries",
    summary="Deliveries, newest first (`state=dead` is the dead-letter list)",
    description=_WHO,
    response_model=WebhookDeliveryPage,
)
async def list_deliveries(
    session: SessionDep,
    principal: WebhooksWriter,
    page: PageDep,
    filters: Annotated[DeliveryFilters, Depends()],
) -> WebhookDeliveryPage:
    return await deliveries.list_deliveries(session, principal, **asdict(page), **asdict(filters))


@router.post(
    "/deliveries/{delivery_id}/replay",
    summary="Send a dead letter again, with a fresh retry schedule",
    description="The same event, `webhook-id` and body as before, so a receiver that already "
    "took it can tell it is a repeat. Audited.",
    response_model=WebhookDeliveryPublic,
    responses={**NOT_FOUND, **CONFLICT},
)
async def replay_delivery(
    session: SessionDep,
    actor: WebhooksWriter,
    delivery_id: DeliveryId,
) -> WebhookDeliveryPublic:
    return await deliveries.replay(session, actor, delivery_id)


@router.post(
    "/deliveries/replay",
    summary="Send every matching dead letter again",
    description="Every dead letter of the subscriptions the caller manages (or of one), each "
    "with a fresh retry schedule; the answer counts them. Audited.",
    response_model=ReplayResult,
)
async def replay_deliveries(
    session: SessionDep, actor: WebhooksWriter, body: ReplayIn
) -> ReplayResult:
    return await deliveries.replay_many(session, actor, body)
