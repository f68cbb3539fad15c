"""Index roll-ups: per campaign and agency, the counts the index is computed from, kept up to
date by the database itself (statement triggers on `submissions`, migration 0008).

A campaign has roll-ups once it has a row in `index_rollup_states`; until then its index is
computed from the raw forms. See `app.services.index.rollups` for the rules.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg
from sqlmodel import Field, SQLModel

from app.models.base import fk, timestamptz, utcnow

ROLLUP_KINDS = ("respondents", "answer", "choice", "pair", "total")


class IndexRollupState(SQLModel, table=True):
    """The campaign's roll-ups exist and are maintained; `version` moves on every change."""

    __tablename__ = "index_rollup_states"

    campaign_id: uuid.UUID = Field(sa_column=fk("campaigns.id", "CASCADE", primary_key=True))
    version: int = Field(default=0, sa_type=sa.BigInteger, sa_column_kwargs={"server_default": "0"})
    built_at: datetime = Field(
        default_factory=utcnow,
        sa_type=timestamptz(),
        sa_column_kwargs={"server_default": sa.func.now()},
    )


class IndexRollupItem(SQLModel, table=True):
    """What the triggers need of the questionnaire: each criterion's bit position and satisfied
    codes (for the pair counts of 2.10), each dossier indicator's points per code."""

    __tablename__ = "index_rollup_items"
    __table_args__ = (
        sa.CheckConstraint("pos IS NULL OR (pos >= 0 AND pos < 63)", name="pos_in_range"),
    )

    campaign_id: uuid.UUID = Field(sa_column=fk("campaigns.id", "CASCADE", primary_key=True))
    item: str = Field(sa_type=sa.Text, primary_key=True)
    pos: int | None = Field(default=None, sa_type=sa.SmallInteger)
    positives: list[str] | None = Field(default=None, sa_column=sa.Column(pg.ARRAY(sa.Text)))
    points: dict[str, Any] | None = Field(default=None, sa_column=sa.Column(pg.JSONB))


class IndexRollup(SQLModel, table=True):
    """One count of one agency's valid forms in one campaign.

    kind `respondents`: n forms; `answer`: n answers `other` to `item` (`__answered__` for a
    multiple choice); `choice`: n choices of option `other`; `pair`: criteria `item` < `other`
    both answered by n forms, `item` satisfied in s1, `other` in s2, both in s12; `total`: n
    forms whose dossier total is `other`."""

    __tablename__ = "index_rollups"
    __table_args__ = (
        sa.CheckConstraint(
            "kind IN ('respondents', 'answer', 'choice', 'pair', 'total')", name="kind_known"
        ),
        # One partition per campaign, like the forms (services.partitions).
        {"postgresql_partition_by": "LIST (campaign_id)"},
    )

    campaign_id: uuid.UUID = Field(sa_column=fk("campaigns.id", "CASCADE", primary_key=True))
    agency_id: uuid.UUID = Field(sa_column=fk("agencies.id", "CASCADE", primary_key=True))
    kind: str = Field(sa_type=sa.Text, primary_key=True)
    item: str = Field(sa_type=sa.Text, primary_key=True)
    other: str = Field(sa_type=sa.Text, primary_key=True)
    n: int = Field(default=0, sa_type=sa.BigInteger)
    s1: int = Field(default=0, sa_type=sa.BigInteger)
    s2: int = Field(default=0, sa_type=sa.BigInteger)
    s12: int = Field(default=0, sa_type=sa.BigInteger)
