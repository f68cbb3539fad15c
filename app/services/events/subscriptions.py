"""Webhook subscriptions: who may keep them, what they receive, and their signing secrets.

An admin (`webhooks:admin`) manages every subscription and names the machine client that owns
one; a machine client with `webhooks:write` manages its own. A subscription's agency filter is
bounded by its client's agency binding: an agency-bound client subscribes to its own subtree at
most (and to it by default), so it never receives an event about rows it could not read.
The signing secret is shown once, when created or rotated; a rotation keeps the old secret
signing beside the new one for an overlap period."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.config import Settings
from app.errors import FieldError, Invalid, NotFound
from app.models.base import touch
from app.models.event import (
    SecretRotation,
    SubscriptionState,
    WebhookSubscription,
    WebhookSubscriptionCreate,
    WebhookSubscriptionPage,
    WebhookSubscriptionPublic,
    WebhookSubscriptionUpdate,
    WebhookSubscriptionWithSecret,
)
from app.models.identity import Client, Scope
from app.services import access, audit, rows, updates
from app.services.agencies import require_agency
from app.services.events import signing
from app.services.events.targets import TargetRefused, check_url
from app.services.paging import id_page
from app.services.principal import Principal, missing_scope


def owner_scope(principal: Principal) -> uuid.UUID | None:
    """None for an admin (every subscription); the client's own id for a self-serving client."""
    if principal.has(Scope.webhooks_admin):
        return None
    if principal.kind == "client" and principal.has(Scope.webhooks_write):
        return principal.id
    raise missing_scope([Scope.webhooks_write.value])


def public(row: WebhookSubscription) -> WebhookSubscriptionPublic:
    return WebhookSubscriptionPublic.model_validate(row)


_snapshot = updates.fields(
    "url", "event_types", "agency_id", "description", "state", "paused_reason"
)


def _check_url(url: str, settings: Settings) -> None:
    try:
        check_url(url, settings)
    except TargetRefused as exc:
        raise Invalid(
            "The webhook URL is not allowed.",
            [FieldError("/body/url", str(exc), "url_not_allowed")],
            code="url_not_allowed",
        ) from None


async def _bounded_agency(
    session: AsyncSession, client: Client, agency_id: uuid.UUID | None
) -> uuid.UUID | None:
    """The agency filter, within the client's binding (its own agency when none is asked)."""
    if agency_id is None:
        return client.agency_id
    if client.agency_id is not None:
        if not await access.agency_within(session, client.agency_id, agency_id):
            raise Invalid(
                "The agency is outside the client's scope.",
                [FieldError("/body/agency_id", "outside the client's agency", "out_of_scope")],
            )
    else:
        await require_agency(session, agency_id)
    return agency_id


async def create(
    session: AsyncSession,
    settings: Settings,
    actor: Principal,
    data: WebhookSubscriptionCreate,
) -> WebhookSubscriptionWithSecret:
    owner = owner_scope(actor)
    if owner is None:
        if data.client_id is None:
            raise Invalid(
                "Name the machine client that owns the subscription.",
                [FieldError("/body/client_id", "required for an admin", "missing")],
            )
        client_id = data.client_id
    else:
        if data.client_id not in (None, owner):
            raise Invalid(
                "A client subscribes for itself.",
                [FieldError("/body/client_id", "only an admin names another client", "forbidden")],
            )
        client_id = owner
    client = await session.get(Client, client_id)
    if client is None or client.revoked_at is not None:
        raise Invalid(
            "No such active machine client.",
            [FieldError("/body/client_id", "no active client with this id", "unknown_client")],
        )
    _check_url(data.url, settings)
    secret = signing.new_secret()
    row = WebhookSubscription(
        client_id=client.id,
        url=data.url,
        event_types=sorted({t.value for t in data.event_types}),
        agency_id=await _bounded_agency(session, client, data.agency_id),
        description=data.description,
        secret=secret,
    )
    await audit.record_change(
        session,
        actor,
        row,
        "webhook.create",
        object_type="webhook_subscription",
        summary=lambda: {"client_id": str(client.id), **audit.diff({}, _snapshot(row))},
    )
    return WebhookSubscriptionWithSecret(**public(row).model_dump(), secret=secret)


async def get(
    session: AsyncSession, principal: Principal, subscription_id: uuid.UUID, *, lock: bool = False
) -> WebhookSubscription:
    query = rows.where_given(
        sa.select(WebhookSubscription).where(col(WebhookSubscription.id) == subscription_id),
        (col(WebhookSubscription.client_id), owner_scope(principal)),
    )
    return await rows.one(session, query, "webhook subscription", lock=lock)


async def list_subscriptions(
    session: AsyncSession,
    principal: Principal,
    *,
    limit: int,
    cursor: str | None,
    client_id: uuid.UUID | None = None,
) -> WebhookSubscriptionPage:
    query = rows.where_given(
        sa.select(WebhookSubscription),
        (col(WebhookSubscription.client_id), owner_scope(principal)),
        (col(WebhookSubscription.client_id), client_id),
    )
    page, next_cursor = await id_page(
        session, query, col(WebhookSubscription.id), limit=limit, cursor=cursor
    )
    return WebhookSubscriptionPage(items=[public(r) for r in page], next_cursor=next_cursor)


def mark_paused(row: WebhookSubscription, reason: str, at: datetime) -> None:
    """No deliveries to `row` until it is resumed; `reason` tells its owner why."""
    row.state = SubscriptionState.paused.value
    row.paused_reason = reason
    row.paused_at = at


def resume(row: WebhookSubscription) -> None:
    row.state = SubscriptionState.active.value
    row.paused_reason = None
    row.paused_at = None
    row.consecutive_dead = 0
    row.failing_since = None


async def update(
    session: AsyncSession,
    settings: Settings,
    actor: Principal,
    subscription_id: uuid.UUID,
    data: WebhookSubscriptionUpdate,
) -> WebhookSubscription:
    row = await get(session, actor, subscription_id, lock=True)
    changes = updates.sent(data)
    if "url" in changes:
        _check_url(changes["url"], settings)
    if "event_types" in changes:
        changes["event_types"] = sorted({str(t) for t in changes["event_types"]})
    if "agency_id" in changes:
        client = await session.get(Client, row.client_id)
        if client is None:  # pragma: no cover - a foreign key guarantees it
            raise NotFound("client")
        changes["agency_id"] = await _bounded_agency(session, client, changes["agency_id"])

    def derive(row: WebhookSubscription) -> None:
        if "state" in changes and changes["state"] != row.state:
            if changes["state"] == SubscriptionState.active:
                resume(row)
            else:
                mark_paused(row, f"paused by {actor.name}", datetime.now(UTC))

    changed = updates.apply_changes(row, changes, _snapshot, skip=("state",), derive=derive)
    touch(row)
    await audit.record_change(
        session,
        actor,
        row,
        "webhook.update",
        object_type="webhook_subscription",
        summary=changed.diff(),
    )
    return row


async def delete(session: AsyncSession, actor: Principal, subscription_id: uuid.UUID) -> None:
    row = await get(session, actor, subscription_id, lock=True)
    await audit.record(
        session,
        actor,
        "webhook.delete",
        object_type="webhook_subscription",
        object_id=row.id,
        summary={"client_id": str(row.client_id), **audit.diff(_snapshot(row), {})},
    )
    await session.delete(row)
    await session.flush()


async def rotate_secret(
    session: AsyncSession,
    settings: Settings,
    actor: Principal,
    subscription_id: uuid.UUID,
    data: SecretRotation,
) -> WebhookSubscriptionWithSecret:
    """A new secret; the current one keeps signing (beside it) for the overlap period."""
    row = await get(session, actor, subscription_id, lock=True)
    overlap = (
        data.overlap_seconds
        if data.overlap_seconds is not None
        else settings.webhook_secret_overlap_seconds
    )
    now = datetime.now(UTC)
    keep = overlap > 0  # with no overlap, the current secret stops signing at once
    row.previous_secret = row.secret if keep else None
    row.previous_secret_until = now + timedelta(seconds=overlap) if keep else None
    row.secret = signing.new_secret()
    touch(row, at=now)
    await audit.record_change(
        session,
        actor,
        row,
        "webhook.rotate_secret",
        object_type="webhook_subscription",
        summary={"overlap_seconds": overlap},
    )
    return WebhookSubscriptionWithSecret(**public(row).model_dump(), secret=row.secret)


def signing_keys(row: WebhookSubscription, now: datetime) -> list[str]:
    """The secrets a delivery is signed with at `now`: the current one, and the previous one
    while its overlap lasts."""
    keys = [row.secret]
    if row.previous_secret and row.previous_secret_until and row.previous_secret_until > now:
        keys.append(row.previous_secret)
    return keys
