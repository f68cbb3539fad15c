"""Machine clients: frontends, kiosks, the one-stop system and report fetchers."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.errors import ConflictError
from app.models.identity import (
    Client,
    ClientCreate,
    ClientPage,
    ClientPublic,
    ClientUpdate,
    ClientWithSecret,
)
from app.security import hash_secret, new_client_id, new_client_secret
from app.services import audit, rows, updates
from app.services.paging import cursor_str, decode_cursor, keyset_page
from app.services.principal import Principal


def public(client: Client) -> ClientPublic:
    return ClientPublic.model_validate(client)


_snapshot = updates.fields("name", "scopes", "agency_id", "campaign_id", "expires_at", "revoked_at")


def _with_secret(client: Client, secret: str) -> ClientWithSecret:
    return ClientWithSecret(**public(client).model_dump(), client_secret=secret)


async def create_client(
    session: AsyncSession, actor: Principal | None, data: ClientCreate
) -> ClientWithSecret:
    if data.agency_id is not None:
        from app.services.agencies import require_agency

        await require_agency(session, data.agency_id)
    secret = new_client_secret()
    client = Client(
        name=data.name,
        scopes=list(data.scopes),
        agency_id=data.agency_id,
        campaign_id=data.campaign_id,
        expires_at=data.expires_at,
        client_id=new_client_id(),
        secret_hash=hash_secret(secret),
    )
    await audit.record_change(
        session,
        actor,
        client,
        "client.create",
        object_type="client",
        summary=lambda: {"after": audit.diff({}, _snapshot(client))["after"]},
    )
    return _with_secret(client, secret)


async def get_client(session: AsyncSession, client_id: uuid.UUID) -> Client:
    return await rows.fetch(session, Client, client_id, "client")


async def update_client(
    session: AsyncSession, actor: Principal, client_id: uuid.UUID, data: ClientUpdate
) -> Client:
    """Changing the scopes revokes the client's tokens (its token version moves on), so that no
    token keeps a scope the client has lost; other changes leave them valid."""
    client = await get_client(session, client_id)
    changes = updates.sent(data)
    if "scopes" in changes:
        changes["scopes"] = [s.value if hasattr(s, "value") else s for s in changes["scopes"]]
    changed = updates.apply_changes(client, changes, _snapshot)
    if "scopes" in changes:
        client.token_version += 1
    await audit.record_change(
        session, actor, client, "client.update", object_type="client", summary=changed.diff()
    )
    return client


async def rotate_secret(
    session: AsyncSession, actor: Principal, client_id: uuid.UUID
) -> ClientWithSecret:
    client = await get_client(session, client_id)
    if client.revoked_at is not None:
        raise ConflictError("client_revoked", "A revoked client cannot get a new secret.")
    secret = new_client_secret()
    client.secret_hash = hash_secret(secret)
    client.token_version += 1
    await audit.record_change(
        session,
        actor,
        client,
        "client.rotate_secret",
        object_type="client",
        summary={"secret_rotated": True},
    )
    return _with_secret(client, secret)


async def revoke_client(session: AsyncSession, actor: Principal, client_id: uuid.UUID) -> Client:
    client = await get_client(session, client_id)
    if client.revoked_at is None:
        before = _snapshot(client)
        client.revoked_at = datetime.now(UTC)
        client.token_version += 1
        await audit.record_change(
            session,
            actor,
            client,
            "client.revoke",
            object_type="client",
            summary=audit.diff(before, _snapshot(client)),
        )
    return client


async def list_clients(
    session: AsyncSession, *, limit: int, cursor: str | None, include_revoked: bool = False
) -> ClientPage:
    query = sa.select(Client).order_by(col(Client.client_id))
    after = decode_cursor(cursor)
    if after is not None:
        query = query.where(col(Client.client_id) > cursor_str(after, "client_id"))
    if not include_revoked:
        query = query.where(col(Client.revoked_at).is_(None))
    rows, next_cursor = await keyset_page(
        session, query, limit=limit, key=lambda c: {"client_id": c.client_id}
    )
    return ClientPage(
        items=[public(r) for r in rows],
        next_cursor=next_cursor,
    )
