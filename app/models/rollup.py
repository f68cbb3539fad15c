"""Index roll-ups: per campaign and combination of breakdowns, the counts the index is computed
from, kept by the database itself (migrations 0008, 0011c and 0013f: forms are folded into them
after commit, corrections and deletes adjust them in the writing transaction; `index_rollups`
is a view of the per-agency sums).

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


class IndexRollupState(SQLModel, table=True):
    """The campaign's roll-ups exist and are maintained; `version` moves on every change to a
    counted form. The cells hold every form whose writing transaction (`tx_id`) is below
    `folded_to`; the others are the tail, which a read counts from the forms (migration 0013f)."""

    __tablename__ = "index_rollup_states"

    campaign_id: uuid.UUID = Field(sa_column=fk("campaigns.id", "CASCADE", primary_key=True))
    version: int = Field(default=0, sa_type=sa.BigInteger, sa_column_kwargs={"server_default": "0"})
    folded_to: int = Field(
        default=0, sa_type=sa.BigInteger, sa_column_kwargs={"server_default": "0"}
    )
    built_at: datetime = Field(
        default_factory=utcnow,
        sa_type=timestamptz(),
        sa_column_kwargs={"server_default": sa.func.now()},
    )


class IndexCellLayout(SQLModel, table=True):
    """Where the triggers put a campaign's counts: the slots of `IndexCell.counts` (kind, item,
    code: 'a' answers, 'm' answered multiple choice, 'c' choices, 't' dossier totals), the items
    they read, each criterion's bit position (its index in `criteria`) and satisfied codes, the
    criterion pairs of `IndexCell.pairs`, each dossier indicator's points, and the facets kept
    beside the base combination ('@procedure' and respondent-fact item ids)."""

    __tablename__ = "index_cell_layouts"
    __table_args__ = (sa.CheckConstraint("cardinality(criteria) < 64", name="criteria_fit_a_mask"),)

    campaign_id: uuid.UUID = Field(sa_column=fk("campaigns.id", "CASCADE", primary_key=True))
    slot_kinds: list[str] = Field(sa_column=sa.Column(pg.ARRAY(sa.Text), nullable=False))
    slot_items: list[str] = Field(sa_column=sa.Column(pg.ARRAY(sa.Text), nullable=False))
    slot_codes: list[str] = Field(sa_column=sa.Column(pg.ARRAY(sa.Text), nullable=False))
    single_items: list[str] = Field(sa_column=sa.Column(pg.ARRAY(sa.Text), nullable=False))
    multiple_items: list[str] = Field(sa_column=sa.Column(pg.ARRAY(sa.Text), nullable=False))
    criteria: list[str] = Field(sa_column=sa.Column(pg.ARRAY(sa.Text), nullable=False))
    positives: dict[str, Any] = Field(sa_column=sa.Column(pg.JSONB, nullable=False))
    pair_i: list[int] = Field(sa_column=sa.Column(pg.ARRAY(sa.SmallInteger), nullable=False))
    pair_j: list[int] = Field(sa_column=sa.Column(pg.ARRAY(sa.SmallInteger), nullable=False))
    points: dict[str, Any] | None = Field(default=None, sa_column=sa.Column(pg.JSONB))
    facets: list[str] = Field(sa_column=sa.Column(pg.ARRAY(sa.Text), nullable=False))


class IndexCell(SQLModel, table=True):
    """The counts of a campaign's valid forms of one agency, sector ('' none), channel and
    respondent type ('' none): with `facet` '' all of them; with a facet, those whose procedure
    ('@procedure') or answer to that respondent-fact item is `value` ('' none). `n` forms;
    `counts` and `pairs` in the order of the campaign's `IndexCellLayout`."""

    __tablename__ = "index_cells"
    # One partition per campaign, like the forms (services.partitions).
    __table_args__ = ({"postgresql_partition_by": "LIST (campaign_id)"},)

    campaign_id: uuid.UUID = Field(sa_column=fk("campaigns.id", "CASCADE", primary_key=True))
    facet: str = Field(sa_type=sa.Text, primary_key=True)
    agency_id: uuid.UUID = Field(sa_column=fk("agencies.id", "CASCADE", primary_key=True))
    sector: str = Field(sa_type=sa.Text, primary_key=True)
    channel: str = Field(sa_type=sa.Text, primary_key=True)
    respondent_type: str = Field(sa_type=sa.Text, primary_key=True)
    value: str = Field(sa_type=sa.Text, primary_key=True)
    n: int = Field(sa_type=sa.BigInteger)
    counts: list[int] = Field(sa_column=sa.Column(pg.ARRAY(sa.BigInteger), nullable=False))
    pairs: list[int] = Field(sa_column=sa.Column(pg.ARRAY(sa.BigInteger), nullable=False))
