"""Secrets the service generates for itself and keeps with its data (the token signing key)."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from app.models.base import timestamptz, utcnow


class InstanceSecret(SQLModel, table=True):
    """One named secret, written once by the first process that needs it and never changed."""

    __tablename__ = "instance_secrets"
    __table_args__ = (sa.CheckConstraint("length(value) >= 32", name="value_long_enough"),)

    name: str = Field(sa_type=sa.Text, primary_key=True)
    value: str = Field(sa_type=sa.Text)
    created_at: datetime = Field(
        default_factory=utcnow,
        sa_type=timestamptz(),
        sa_column_kwargs={"server_default": sa.func.now()},
    )
