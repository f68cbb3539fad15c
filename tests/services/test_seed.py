"""The demo province loads idempotently and its map differs before and after the 2025 merger."""

from __future__ import annotations

from datetime import date

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.models.agency import Agency, AgencySuccessor
from app.models.audit import AuditEvent
from app.models.catalogue import AgencySector, Procedure, Sector
from app.services.agencies import valid_on_clause
from app.services.seed import DATA_DIR, load_demo_catalogue


def _data_lines(name: str) -> int:
    return len((DATA_DIR / name).read_text(encoding="utf-8-sig").strip().splitlines()) - 1


async def _count(session: AsyncSession, model: type[object]) -> int:
    return int(await session.scalar(sa.select(sa.func.count()).select_from(model)) or 0)


async def _codes_on(session: AsyncSession, day: date, level: str) -> set[str]:
    rows = await session.scalars(
        sa.select(col(Agency.code)).where(valid_on_clause(day), col(Agency.level) == level)
    )
    return set(rows.all())


async def test_loading_twice_changes_nothing_the_second_time(session: AsyncSession) -> None:
    first = await load_demo_catalogue(session)
    assert first["agencies"] == _data_lines("agencies.csv")
    assert first["sectors"] == _data_lines("sectors.csv")
    assert first["procedures"] == _data_lines("procedures.csv")
    assert first["agency_successors"] == _data_lines("agency_successors.csv")
    assert first["agency_sectors"] == _data_lines("agency_sectors.csv")
    counts = {
        m: await _count(session, m)
        for m in (Agency, AgencySuccessor, Sector, Procedure, AgencySector)
    }
    stamps = dict(
        (await session.execute(sa.select(col(Agency.code), col(Agency.updated_at)))).all()
    )

    second = await load_demo_catalogue(session)

    assert set(second.values()) == {0}, second
    assert {
        m: await _count(session, m)
        for m in (Agency, AgencySuccessor, Sector, Procedure, AgencySector)
    } == counts
    assert (
        dict((await session.execute(sa.select(col(Agency.code), col(Agency.updated_at)))).all())
        == stamps
    )
    seeded = await session.scalars(
        sa.select(col(AuditEvent.actor_type)).where(col(AuditEvent.action) == "catalogue.seed")
    )
    assert set(seeded.all()) == {"system"}


async def test_the_map_before_and_after_the_2025_merger(session: AsyncSession) -> None:
    await load_demo_catalogue(session)
    before = date(2020, 6, 1)
    after = date(2025, 8, 1)

    districts_before = await _codes_on(session, before, "district")
    districts_after = await _codes_on(session, after, "district")
    assert "TQ.SONDUONG" in districts_before
    assert len(districts_before) == 7
    assert districts_after == set()

    communes_before = await _codes_on(session, before, "commune")
    communes_after = await _codes_on(session, after, "commune")
    assert "TQ.SONDUONG.TANTRAO" in communes_before
    assert "TQ.XA.TANTRAO" not in communes_before
    assert "TQ.XA.TANTRAO" in communes_after
    assert communes_before.isdisjoint(communes_after)

    # every commune of 2020 that has a successor resolves to a unit that exists in August 2025
    successor = sa.orm.aliased(Agency)
    resolved = (
        await session.execute(
            sa.select(col(Agency.code), col(successor.code))
            .join(AgencySuccessor, col(AgencySuccessor.predecessor_id) == col(Agency.id))
            .join(successor, col(successor.id) == col(AgencySuccessor.successor_id))
            .where(col(Agency.code).in_(communes_before))
        )
    ).all()
    assert resolved
    assert {new for _, new in resolved} <= communes_after
    assert ("TQ.SONDUONG.TRUNGYEN", "TQ.XA.TANTRAO") in set(resolved)
