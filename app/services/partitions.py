"""One partition per campaign: the forms (`submissions`) and the roll-ups (`index_cells`) are
tables PARTITIONED BY LIST (campaign_id), so that a campaign's reads and writes touch only its own
partition and archiving or dropping an old campaign is a partition operation (docs/scaling.md).

Rules:
- The database makes the partitions: an AFTER INSERT trigger on `campaigns` calls
  `campaign_partitions_create(id)` (its text is in migration 0011p), which gives the new
  campaign a partition of every table partitioned by `campaign_id`, in the transaction that
  creates the campaign, whatever path creates it (the API, the demo, a factory, a bulk load).
  A table added later with `PARTITION BY LIST (campaign_id)` is covered without changing it.
- A partition is created empty and then attached (`CREATE TABLE ... (LIKE parent)` + `ATTACH
  PARTITION`), which takes only SHARE UPDATE EXCLUSIVE on the parent: forms of other campaigns
  keep being read and written meanwhile (`CREATE TABLE ... PARTITION OF` would take ACCESS
  EXCLUSIVE on the parent).
- There is no DEFAULT partition: every campaign has its own from the moment it exists, so a
  default one would stay empty, and it would make every new campaign's ATTACH scan and lock it.
  A form for a campaign whose partition was detached fails loudly (no partition for the row)
  instead of landing somewhere unseen.
- Detaching or dropping is an operator's decision (`sipas partitions` commands, below): a
  detached campaign's forms leave every read and write of the service (its index counts nothing)
  and live on as a plain table that can be dumped, moved to cheaper storage or attached again.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

# A campaign's partition of a parent: `<parent>_of_<campaign id without dashes>` (today of
# `submissions` (migration 0011p) and `index_cells` (0011c); any table partitioned by
# campaign_id later gets the same).
_NAME = re.compile(r"^[a-z0-9_]+_of_[0-9a-f]{32}$")


def partition_name(parent: str, campaign_id: uuid.UUID) -> str:
    return f"{parent}_of_{campaign_id.hex}"


def is_partition_name(name: str) -> bool:
    """A campaign's partition (kept out of Alembic's comparison: the models name the parents)."""
    return _NAME.match(name) is not None


@dataclass(frozen=True, slots=True)
class Partition:
    parent: str
    name: str
    campaign_id: uuid.UUID | None
    attached: bool
    rows_estimate: int


async def ensure(session: AsyncSession | AsyncConnection, campaign_id: uuid.UUID) -> None:
    """The campaign's partitions, created when missing (the trigger on campaigns already did
    it for every campaign inserted; this is for a table partitioned later, or a re-attach)."""
    await session.execute(sa.text("SELECT campaign_partitions_create(:c)"), {"c": campaign_id})


async def listing(session: AsyncSession | AsyncConnection) -> list[Partition]:
    """Every campaign partition, attached or detached, with the planner's row estimate."""
    rows = await session.execute(
        sa.text(
            "SELECT c.relname, p.relname AS parent, c.relispartition,"
            " greatest(c.reltuples, 0)::bigint AS estimate"
            " FROM pg_class c"
            " LEFT JOIN pg_inherits i ON i.inhrelid = c.oid"
            " LEFT JOIN pg_class p ON p.oid = i.inhparent"
            " WHERE c.relkind = 'r' AND c.relnamespace = current_schema()::regnamespace"
            " AND c.relname ~ '^[a-z0-9_]+_of_[0-9a-f]{32}$'"
            " ORDER BY c.relname"
        )
    )
    out = []
    for name, parent, attached, estimate in rows.all():
        prefix, _, hexid = str(name).rpartition("_of_")
        out.append(
            Partition(
                parent=str(parent or prefix),
                name=str(name),
                campaign_id=uuid.UUID(hex=hexid),
                attached=bool(attached),
                rows_estimate=int(estimate),
            )
        )
    return out


async def _of(session: AsyncSession | AsyncConnection, campaign_id: uuid.UUID) -> list[Partition]:
    return [p for p in await listing(session) if p.campaign_id == campaign_id]


async def detach(session: AsyncSession | AsyncConnection, campaign_id: uuid.UUID) -> list[str]:
    """Detach the campaign's partitions: its forms and roll-ups leave the service's reads and
    writes and stay as plain tables. Takes ACCESS EXCLUSIVE on each parent for the moment of
    the detach (PostgreSQL's `DETACH ... CONCURRENTLY` avoids it but cannot run in a
    transaction: use it from psql for a busy service, see docs/scaling.md). Refused by the
    database while rows of other tables reference the campaign's forms."""
    done = []
    for part in await _of(session, campaign_id):
        if part.attached:
            await session.execute(
                sa.text(f'ALTER TABLE "{part.parent}" DETACH PARTITION "{part.name}"')
            )
            done.append(part.name)
    return done


async def drop(session: AsyncSession | AsyncConnection, campaign_id: uuid.UUID) -> list[str]:
    """Drop the campaign's partitions once detached (refused while one is attached: detach
    first, so that dropping is always a deliberate second step)."""
    parts = await _of(session, campaign_id)
    for part in parts:
        if part.attached:
            raise ValueError(f"{part.name} is attached; detach it first")
    for part in parts:
        await session.execute(sa.text(f'DROP TABLE "{part.name}"'))
    return [part.name for part in parts]
