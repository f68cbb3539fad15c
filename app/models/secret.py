"""Secrets the service generates for itself and keeps with its data (the token signing key)."""

from __future__ import annotations

import sqlalchemy as sa
from sqlmodel import Field

from app.models.base import Created


class InstanceSecret(Created, table=True):
    """One named secret, written once by the first process that needs it and never changed."""

    __tablename__ = "instance_secrets"
    __table_args__ = (sa.CheckConstraint("length(value) >= 32", name="value_long_enough"),)

    name: str = Field(sa_type=sa.Text, primary_key=True)
    value: str = Field(sa_type=sa.Text)
