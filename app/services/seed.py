"""The demo province: Tuyên Quang's agencies, successions and catalogue, loaded idempotently.

Agencies go through the same all-or-nothing import as an uploaded file; the other tables are
upserted by their natural keys. A second load changes nothing and reports zeros.
"""

from __future__ import annotations

import csv
import io
import uuid
from datetime import date
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.models.agency import Agency, SuccessionKind
from app.models.base import nfc
from app.models.catalogue import Sector, SectorCreate
from app.services import agency_io, audit, catalogue
from app.services.agencies import upsert_links

DATA_DIR = Path(__file__).resolve().parent.parent / "seed" / "data"


def _data(name: str) -> bytes:
    return (DATA_DIR / name).read_bytes()


def _records(name: str) -> list[dict[str, str]]:
    text = _data(name).decode("utf-8-sig")
    return [{k: nfc(v) for k, v in row.items()} for row in csv.DictReader(io.StringIO(text))]


async def _ids(session: AsyncSession, model: type[Agency] | type[Sector]) -> dict[str, uuid.UUID]:
    rows = (await session.execute(sa.select(col(model.code), col(model.id)))).all()
    return {str(code): id_ for code, id_ in rows}


async def load_demo_catalogue(session: AsyncSession) -> dict[str, int]:
    """Upsert the demo data; the counts say how many rows each table gained or changed."""
    sectors = await catalogue.upsert_sectors(
        session,
        [
            SectorCreate(code=r["code"], name_vi=r["name_vi"], name_en=r["name_en"] or None)
            for r in _records("sectors.csv")
        ],
    )
    raw = agency_io.parse_file("agencies.csv", "text/csv", _data("agencies.csv"))
    summary = await agency_io.import_rows(
        session, None, raw, dry_run=False, source="seed:agencies.csv"
    )

    agency_ids = await _ids(session, Agency)
    sector_ids = await _ids(session, Sector)
    successors = await upsert_links(
        session,
        [
            (
                agency_ids[r["predecessor_code"]],
                agency_ids[r["successor_code"]],
                SuccessionKind(r["kind"]),
                date.fromisoformat(r["effective_on"]),
            )
            for r in _records("agency_successors.csv")
        ],
    )
    procedures = await catalogue.upsert_procedures(
        session,
        [
            (r["code"], r["name"], sector_ids[r["sector_code"]], r["level"])
            for r in _records("procedures.csv")
        ],
    )
    agency_sectors = await catalogue.link_agency_sectors(
        session,
        [
            (agency_ids[r["agency_code"]], sector_ids[r["sector_code"]])
            for r in _records("agency_sectors.csv")
        ],
    )
    counts = {
        "agencies": summary.created + summary.updated,
        "agency_successors": successors,
        "sectors": sectors,
        "procedures": procedures,
        "agency_sectors": agency_sectors,
    }
    await audit.record(
        session, None, "catalogue.seed", object_type="catalogue", summary={"changed": counts}
    )
    return counts
