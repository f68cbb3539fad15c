"""The token signing key a deployment generates for itself when SECRET_KEY is not set.

Security decision: the development marker in app.config never signs anything. Without
SECRET_KEY the first process that starts writes a random 384-bit key to `instance_secrets`
and every process (each uvicorn worker, each restart) reads that same row. Workers starting
together race safely: `INSERT ... ON CONFLICT DO NOTHING` lets exactly one insert win (the others
wait on the primary key, then insert nothing) and the `SELECT` that follows reads the winner's
key. Production still requires SECRET_KEY (app.config): a key kept in the database travels
with every dump of it.
"""

from __future__ import annotations

import secrets

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.models.secret import InstanceSecret
from app.services import audit

SIGNING_KEY = "token_signing_key"


async def stored_signing_key(session: AsyncSession) -> str:
    """The stored key, created (and audited, without its value) if this is the first call."""
    created = await session.scalar(
        insert(InstanceSecret)
        .values(name=SIGNING_KEY, value=secrets.token_urlsafe(48))
        .on_conflict_do_nothing(index_elements=["name"])
        .returning(col(InstanceSecret.name))
    )
    if created is not None:
        await audit.record(
            session,
            None,
            "instance_secret.create",
            object_type="instance_secret",
            summary={"name": SIGNING_KEY},
        )
    value = await session.scalar(
        sa.select(col(InstanceSecret.value)).where(col(InstanceSecret.name) == SIGNING_KEY)
    )
    if value is None:  # pragma: no cover - inserted or already present just above
        raise RuntimeError("the stored signing key could not be read")
    return value
