"""Inspecting deliveries and replaying dead letters (admins, and a client for its own)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.errors import ConflictError, NotFound
from app.models.event import (
    DeliveryState,
    Event,
    ReplayIn,
    ReplayResult,
    WebhookDelivery,
    WebhookDeliveryPage,
    WebhookDeliveryPublic,
    WebhookSubscription,
)
from app.services import audit
from app.services.events.subscriptions import owner_scope
from app.services.paging import cursor_int, decode_cursor, encode_cursor
from app.services.principal import Principal


def _readable(principal: Principal) -> sa.Select[WebhookDelivery, str]:
    query = sa.select(WebhookDelivery, col(Event.type)).join(
        Event, col(Event.id) == col(WebhookDelivery.event_id)
    )
    owner = owner_scope(principal)
    if owner is not None:
        query = query.where(
            col(WebhookDelivery.subscription_id).in_(
                sa.select(col(WebhookSubscription.id)).where(
                    col(WebhookSubscription.client_id) == owner
                )
            )
        )
    return query


def public(row: WebhookDelivery, event_type: str) -> WebhookDeliveryPublic:
    values = {n: getattr(row, n) for n in WebhookDeliveryPublic.model_fields if n != "event_type"}
    return WebhookDeliveryPublic(**values, event_type=event_type)


async def list_deliveries(
    session: AsyncSession,
    principal: Principal,
    *,
    limit: int,
    cursor: str | None,
    subscription_id: uuid.UUID | None = None,
    state: DeliveryState | None = None,
) -> WebhookDeliveryPage:
    """Newest first. `state=dead` is the dead-letter list."""
    query = _readable(principal).order_by(col(WebhookDelivery.id).desc())
    if subscription_id is not None:
        query = query.where(col(WebhookDelivery.subscription_id) == subscription_id)
    if state is not None:
        query = query.where(col(WebhookDelivery.state) == state.value)
    after = decode_cursor(cursor)
    if after is not None:
        query = query.where(col(WebhookDelivery.id) < cursor_int(after, "id"))
    rows = (await session.execute(query.limit(limit + 1))).all()
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        next_cursor = encode_cursor({"id": rows[-1][0].id})
    return WebhookDeliveryPage(items=[public(d, t) for d, t in rows], next_cursor=next_cursor)


async def get_delivery(
    session: AsyncSession, principal: Principal, delivery_id: int
) -> tuple[WebhookDelivery, str]:
    row = (
        await session.execute(
            _readable(principal).where(col(WebhookDelivery.id) == delivery_id).with_for_update()
        )
    ).first()
    if row is None:
        raise NotFound("delivery")
    return row[0], row[1]


def _again(now: datetime) -> dict[str, object]:
    return {
        "state": "pending",
        "attempts": 0,
        "next_attempt_at": now,
        "claim_token": None,
        "dead_at": None,
    }


async def replay(
    session: AsyncSession, actor: Principal, delivery_id: int
) -> WebhookDeliveryPublic:
    """Send a dead letter again, with a fresh schedule (same event, same `webhook-id`)."""
    row, event_type = await get_delivery(session, actor, delivery_id)
    if row.state != DeliveryState.dead:
        raise ConflictError(
            "delivery_not_dead", f"Only dead letters are replayed; this one is {row.state}."
        )
    for name, value in _again(datetime.now(UTC)).items():
        setattr(row, name, value)
    await audit.record_change(
        session,
        actor,
        row,
        "webhook.replay",
        object_type="webhook_delivery",
        summary={"subscription_id": str(row.subscription_id), "event_id": str(row.event_id)},
    )
    return public(row, event_type)


async def replay_many(session: AsyncSession, actor: Principal, data: ReplayIn) -> ReplayResult:
    """Every dead letter the caller may see (of one subscription, since a time), in one UPDATE."""
    owner = owner_scope(actor)
    clauses: list[sa.ColumnElement[bool]] = [col(WebhookDelivery.state) == "dead"]
    subs = sa.select(col(WebhookSubscription.id))
    if owner is not None:
        subs = subs.where(col(WebhookSubscription.client_id) == owner)
        clauses.append(col(WebhookDelivery.subscription_id).in_(subs))
    if data.subscription_id is not None:
        clauses.append(col(WebhookDelivery.subscription_id) == data.subscription_id)
    if data.since is not None:
        clauses.append(col(WebhookDelivery.dead_at) >= data.since)
    result = await session.execute(
        sa.update(WebhookDelivery)
        .where(*clauses)
        .values(**_again(datetime.now(UTC)))
        .returning(col(WebhookDelivery.id))
    )
    ids = list(result.scalars().all())
    await audit.record(
        session,
        actor,
        "webhook.replay_many",
        object_type="webhook_subscription" if data.subscription_id else None,
        object_id=data.subscription_id,
        summary={"replayed": len(ids), "since": data.since},
    )
    return ReplayResult(replayed=len(ids))
