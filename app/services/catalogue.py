"""The catalogue: sectors, procedures, and which agencies handle which sectors."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.errors import Conflict, FieldError, Invalid, NotFound
from app.models.agency import Agency
from app.models.catalogue import (
    AgencySector,
    Procedure,
    ProcedureCreate,
    ProcedurePage,
    ProcedurePublic,
    ProcedureUpdate,
    Sector,
    SectorCreate,
    SectorPage,
    SectorPublic,
    SectorUpdate,
)
from app.services import audit, rows, updates
from app.services.agencies import get_agency, level_codes, like_contains
from app.services.paging import cursor_str, decode_cursor, keyset_page
from app.services.principal import Principal
from app.services.text import fold


def _sector_snapshot(sector: Sector) -> dict[str, object]:
    return {"code": sector.code, "name_vi": sector.name_vi, "name_en": sector.name_en}


def _procedure_snapshot(procedure: Procedure) -> dict[str, object]:
    return {
        "code": procedure.code,
        "name": procedure.name,
        "sector_id": procedure.sector_id,
        "level": procedure.level,
    }


def _derive_sector(sector: Sector) -> None:
    sector.search_name = _sector_search(sector.name_vi, sector.name_en)


def _derive_procedure(procedure: Procedure) -> None:
    procedure.search_name = fold(procedure.name)


def sector_public(sector: Sector) -> SectorPublic:
    return SectorPublic.model_validate(sector)


def procedure_public(procedure: Procedure) -> ProcedurePublic:
    return ProcedurePublic.model_validate(procedure)


# --- sectors -----------------------------------------------------------------------------------


async def get_sector(session: AsyncSession, sector_id: uuid.UUID) -> Sector:
    return await rows.fetch(session, Sector, sector_id, "sector")


async def list_sectors(
    session: AsyncSession, *, limit: int, cursor: str | None, q: str | None = None
) -> SectorPage:
    query = sa.select(Sector).order_by(col(Sector.code))
    after = decode_cursor(cursor)
    if after is not None:
        query = query.where(col(Sector.code) > cursor_str(after, "code"))
    if q is not None and fold(q):
        query = query.where(col(Sector.search_name).like(like_contains(q), escape="\\"))
    rows, next_cursor = await keyset_page(
        session, query, limit=limit, key=lambda r: {"code": r.code}
    )
    return SectorPage(items=[sector_public(r) for r in rows], next_cursor=next_cursor)


def _sector_search(name_vi: str, name_en: str | None) -> str:
    return fold(f"{name_vi} {name_en or ''}")


async def create_sector(session: AsyncSession, actor: Principal, data: SectorCreate) -> Sector:
    if await rows.taken(session, col(Sector.code), data.code):
        raise Conflict("sector_code_taken", f"Another sector already has the code {data.code!r}.")
    sector = Sector(**data.model_dump(), search_name=_sector_search(data.name_vi, data.name_en))
    await audit.record_created(session, actor, sector, "sector", _sector_snapshot)
    return sector


async def update_sector(
    session: AsyncSession, actor: Principal, sector_id: uuid.UUID, data: SectorUpdate
) -> Sector:
    """Change the fields sent. Its search key follows its names in both languages, and the
    audit event holds what changed, before and after."""
    sector = await get_sector(session, sector_id)
    changed = updates.apply_changes(sector, data, _sector_snapshot, derive=_derive_sector)
    await audit.record_change(
        session, actor, sector, "sector.update", object_type="sector", summary=changed.diff()
    )
    return sector


async def upsert_sectors(session: AsyncSession, rows: Sequence[SectorCreate]) -> int:
    """Insert or update sectors by code in one statement; the number of rows that changed."""
    if not rows:
        return 0
    insert = pg.insert(Sector).values(
        [
            {
                "id": uuid.uuid4(),
                **r.model_dump(),
                "search_name": _sector_search(r.name_vi, r.name_en),
            }
            for r in rows
        ]
    )
    excluded = insert.excluded
    stmt = insert.on_conflict_do_update(
        index_elements=["code"],
        set_={n: excluded[n] for n in ("name_vi", "name_en", "search_name")},
        where=sa.or_(
            col(Sector.name_vi) != excluded.name_vi,
            col(Sector.name_en).is_distinct_from(excluded.name_en),
        ),
    ).returning(col(Sector.id))
    return len((await session.execute(stmt)).all())


# --- procedures --------------------------------------------------------------------------------


async def get_procedure(session: AsyncSession, procedure_id: uuid.UUID) -> Procedure:
    return await rows.fetch(session, Procedure, procedure_id, "procedure")


async def list_procedures(
    session: AsyncSession,
    *,
    limit: int,
    cursor: str | None,
    sector_id: uuid.UUID | None = None,
    level: str | None = None,
    q: str | None = None,
) -> ProcedurePage:
    query = sa.select(Procedure).order_by(col(Procedure.code))
    after = decode_cursor(cursor)
    if after is not None:
        query = query.where(col(Procedure.code) > cursor_str(after, "code"))
    if sector_id is not None:
        query = query.where(col(Procedure.sector_id) == sector_id)
    if level is not None:
        query = query.where(col(Procedure.level) == level)
    if q is not None and fold(q):
        pattern = like_contains(q)
        query = query.where(
            sa.or_(
                col(Procedure.search_name).like(pattern, escape="\\"),
                col(Procedure.code).like(pattern, escape="\\"),
            )
        )
    rows, next_cursor = await keyset_page(
        session, query, limit=limit, key=lambda r: {"code": r.code}
    )
    return ProcedurePage(items=[procedure_public(r) for r in rows], next_cursor=next_cursor)


async def _check_procedure_refs(
    session: AsyncSession, sector_id: uuid.UUID | None, level: str | None
) -> None:
    errors: list[FieldError] = []
    if sector_id is not None and await session.get(Sector, sector_id) is None:
        errors.append(FieldError("/body/sector_id", "no sector with this id", "unknown_sector"))
    if level is not None and level not in await level_codes(session):
        errors.append(FieldError("/body/level", f"unknown level {level!r}", "unknown_level"))
    if errors:
        raise Invalid("The procedure refers to unknown data; see errors.", errors)


async def create_procedure(
    session: AsyncSession, actor: Principal, data: ProcedureCreate
) -> Procedure:
    if await rows.taken(session, col(Procedure.code), data.code):
        raise Conflict(
            "procedure_code_taken", f"Another procedure already has the code {data.code!r}."
        )
    await _check_procedure_refs(session, data.sector_id, data.level)
    procedure = Procedure(**data.model_dump(), search_name=fold(data.name))
    await audit.record_created(session, actor, procedure, "procedure", _procedure_snapshot)
    return procedure


async def update_procedure(
    session: AsyncSession, actor: Principal, procedure_id: uuid.UUID, data: ProcedureUpdate
) -> Procedure:
    """Change the fields sent. A sector or level sent must exist (422 naming the field); a new
    name renews its search key; the audit event holds what changed, before and after."""
    procedure = await get_procedure(session, procedure_id)
    changes = updates.sent(data)
    await _check_procedure_refs(session, changes.get("sector_id"), changes.get("level"))
    changed = updates.apply_changes(
        procedure, changes, _procedure_snapshot, derive=_derive_procedure
    )
    await audit.record_change(
        session,
        actor,
        procedure,
        "procedure.update",
        object_type="procedure",
        summary=changed.diff(),
    )
    return procedure


async def upsert_procedures(
    session: AsyncSession, rows: Sequence[tuple[str, str, uuid.UUID, str]]
) -> int:
    """Insert or update (code, name, sector_id, level) by code; the number of rows changed."""
    if not rows:
        return 0
    insert = pg.insert(Procedure).values(
        [
            {
                "id": uuid.uuid4(),
                "code": code,
                "name": name,
                "search_name": fold(name),
                "sector_id": sector_id,
                "level": level,
            }
            for code, name, sector_id, level in rows
        ]
    )
    excluded = insert.excluded
    stmt = insert.on_conflict_do_update(
        index_elements=["code"],
        set_={n: excluded[n] for n in ("name", "search_name", "sector_id", "level")},
        where=sa.or_(
            col(Procedure.name) != excluded.name,
            col(Procedure.sector_id) != excluded.sector_id,
            col(Procedure.level) != excluded.level,
        ),
    ).returning(col(Procedure.id))
    return len((await session.execute(stmt)).all())


# --- agency sectors ----------------------------------------------------------------------------


async def agency_sectors(
    session: AsyncSession, principal: Principal, agency_id: uuid.UUID
) -> list[SectorPublic]:
    await get_agency(session, principal, agency_id)
    query = (
        sa.select(Sector)
        .join(AgencySector, col(AgencySector.sector_id) == col(Sector.id))
        .where(col(AgencySector.agency_id) == agency_id)
        .order_by(col(Sector.code))
    )
    return [sector_public(s) for s in (await session.scalars(query)).all()]


async def replace_agency_sectors(
    session: AsyncSession, actor: Principal, agency_id: uuid.UUID, sector_ids: list[uuid.UUID]
) -> list[SectorPublic]:
    """Make the agency's sectors exactly `sector_ids`: two statements, whatever the sizes."""
    if await session.get(Agency, agency_id) is None:
        raise NotFound("agency")
    wanted = list(dict.fromkeys(sector_ids))
    known = set(
        (await session.scalars(sa.select(col(Sector.id)).where(col(Sector.id).in_(wanted)))).all()
    )
    unknown = [
        FieldError(f"/body/sector_ids/{i}", "no sector with this id", "unknown_sector")
        for i, sid in enumerate(sector_ids)
        if sid not in known
    ]
    if unknown:
        raise Invalid("Some sectors do not exist; see errors.", unknown)
    before = set(
        (
            await session.scalars(
                sa.select(col(AgencySector.sector_id)).where(
                    col(AgencySector.agency_id) == agency_id
                )
            )
        ).all()
    )
    await session.execute(
        sa.delete(AgencySector).where(
            col(AgencySector.agency_id) == agency_id, col(AgencySector.sector_id).not_in(wanted)
        )
    )
    await link_agency_sectors(session, [(agency_id, sid) for sid in wanted])
    await audit.record(
        session,
        actor,
        "agency.sectors.replace",
        object_type="agency",
        object_id=agency_id,
        summary={
            "added": sorted(str(s) for s in set(wanted) - before),
            "removed": sorted(str(s) for s in before - set(wanted)),
        },
    )
    return await agency_sectors(session, actor, agency_id)


async def link_agency_sectors(
    session: AsyncSession, pairs: Sequence[tuple[uuid.UUID, uuid.UUID]]
) -> int:
    """Add (agency_id, sector_id) pairs that are missing; the number added."""
    if not pairs:
        return 0
    stmt = (
        pg.insert(AgencySector)
        .values([{"agency_id": a, "sector_id": s} for a, s in pairs])
        .on_conflict_do_nothing()
        .returning(col(AgencySector.agency_id))
    )
    return len((await session.execute(stmt)).all())
