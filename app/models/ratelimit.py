"""Counters shared by every worker process: failed logins now, request rates later."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from app.models.base import timestamptz


class RateCounter(SQLModel, table=True):
    __tablename__ = "rate_counters"

    key: str = Field(sa_type=sa.Text, primary_key=True)
    window_start: datetime = Field(sa_type=timestamptz(), primary_key=True)
    count: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
