"""The schema keeps the rules that make distributing it by campaign possible (docs/scaling.md):
on Citus, a distributed table's primary and unique keys must hold the distribution column, and a
foreign key between distributed tables must join them on it (co-location); a distributed table
may reference a reference table, never the other way round.

Read from the live schema (pg_constraint, pg_index), so a new key or table that breaks a rule
fails here; and checked against the schema of revision 0010q (before partitioning), where the
same rules find the keys that had to change."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import sqlalchemy as sa
from alembic import command
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine

from app.db import drop_database, ensure_database
from app.schema import alembic_config
from tests.conftest import in_thread

COLUMN = "campaign_id"

# Distributed by campaign_id, co-located: every row belongs to one campaign.
DISTRIBUTED = frozenset(
    {
        "submissions",
        "submission_versions",
        "invitations",
        "rechecks",
        "observations",
        "index_cells",
        "index_cell_layouts",
        "index_rollup_states",
    }
)
# Replicated to every node: what the distributed rows point at.
REFERENCE = frozenset(
    {
        "agencies",
        "sectors",
        "procedures",
        "questionnaires",
        "campaigns",
        "strata",
        "frame_units",
        "dossiers",
        "users",
        "clients",
    }
)


async def _tables(conn: AsyncConnection) -> set[str]:
    rows = await conn.execute(
        sa.text(
            "SELECT c.relname FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace"
            " AND c.relkind IN ('r', 'p') AND NOT c.relispartition"
        )
    )
    return {r[0] for r in rows}


async def violations(conn: AsyncConnection) -> list[str]:
    """Every broken rule, as a sentence naming the key."""
    found: list[str] = []
    keys = await conn.execute(
        sa.text(
            """
            SELECT con.conname, con.contype::text, t.relname, r.relname,
                   ARRAY(SELECT a.attname FROM unnest(con.conkey) WITH ORDINALITY k(n, i)
                         JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.n
                         ORDER BY k.i),
                   ARRAY(SELECT a.attname FROM unnest(con.confkey) WITH ORDINALITY k(n, i)
                         JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.n
                         ORDER BY k.i)
            FROM pg_constraint con
            JOIN pg_class t ON t.oid = con.conrelid
            LEFT JOIN pg_class r ON r.oid = con.confrelid
            WHERE con.contype IN ('p', 'u', 'f') AND t.relnamespace = 'public'::regnamespace
              AND NOT t.relispartition AND con.conparentid = 0
            """
        )
    )
    for name, kind, table, referred, columns, referred_columns in keys.all():
        if kind in ("p", "u") and table in DISTRIBUTED and COLUMN not in columns:
            found.append(f"{table}: key {name} {columns} lacks {COLUMN}")
        if kind != "f":
            continue
        if table in DISTRIBUTED and referred in DISTRIBUTED:
            pairs = list(zip(columns, referred_columns, strict=True))
            if (COLUMN, COLUMN) not in pairs:
                found.append(f"{table}: foreign key {name} to {referred} not on {COLUMN}")
        elif table in DISTRIBUTED and referred not in REFERENCE:
            found.append(f"{table}: foreign key {name} to {referred}, neither kind")
        elif table not in DISTRIBUTED and referred in DISTRIBUTED:
            found.append(f"{table}: foreign key {name} into the distributed {referred}")
    indexes = await conn.execute(
        sa.text(
            """
            SELECT i.relname, t.relname,
                   ARRAY(SELECT a.attname FROM unnest(x.indkey) k(n)
                         JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = k.n)
            FROM pg_index x
            JOIN pg_class i ON i.oid = x.indexrelid
            JOIN pg_class t ON t.oid = x.indrelid
            WHERE x.indisunique AND t.relnamespace = 'public'::regnamespace
              AND NOT t.relispartition
            """
        )
    )
    for index, table, columns in indexes.all():
        if table in DISTRIBUTED and COLUMN not in columns:
            found.append(f"{table}: unique index {index} {columns} lacks {COLUMN}")
    return sorted(found)


async def test_every_distributed_key_holds_the_campaign(connection: AsyncConnection) -> None:
    assert await violations(connection) == []


async def test_every_table_is_placed(connection: AsyncConnection) -> None:
    """The distributed tables exist, hold the column, and no table references one without
    being distributed itself (a new table keyed to a form must be listed here and in
    docs/scaling.md)."""
    tables = await _tables(connection)
    assert tables >= DISTRIBUTED
    assert tables >= REFERENCE
    holding = await connection.execute(
        sa.text(
            "SELECT c.relname FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid"
            " WHERE a.attname = :col AND c.relname = ANY(:t) AND NOT a.attisdropped"
        ),
        {"col": COLUMN, "t": sorted(DISTRIBUTED)},
    )
    assert {r[0] for r in holding} == DISTRIBUTED


@pytest.fixture
async def before_partitions(database_url: str) -> AsyncIterator[str]:
    """A database of its own at revision 0010q, dropped afterwards."""
    name = f"{make_url(database_url).database}_citus"
    url = make_url(database_url).set(database=name).render_as_string(hide_password=False)
    await drop_database(url)
    await ensure_database(url)
    cfg = alembic_config(url)
    cfg.attributes["configure_logger"] = False
    in_thread(command.upgrade, cfg, "0010q")
    yield url
    await drop_database(url)


async def test_the_rules_find_the_keys_of_the_old_schema(before_partitions: str) -> None:
    engine = create_async_engine(before_partitions)
    try:
        async with engine.connect() as conn:
            found = await violations(conn)
    finally:
        await engine.dispose()
    joined = "\n".join(found)
    assert "submissions: key pk_submissions ['id'] lacks campaign_id" in found, joined
    assert "submissions: key uq_submissions_invitation_id ['invitation_id'] lacks campaign_id" in (
        found
    ), joined
    assert any("submission_versions: foreign key" in f for f in found), joined
    assert any("rechecks: foreign key" in f for f in found), joined
