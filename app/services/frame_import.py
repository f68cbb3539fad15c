"""The sampling frame's import: read (JSON or a table file), check every unit, write.

A frame import is all or nothing, like the agency import: every unit is checked first and any
bad one refuses the whole request with one error per bad unit. Good imports are written with a
few multi-row statements; contact data goes to `frame_contacts`, never into `frame_units`.
The draw, the surveyors and the worklist are in `app.services.fieldwork`.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.errors import FieldError, Invalid
from app.models.agency import Agency, bad_characters
from app.models.base import nfc
from app.models.campaign import (
    Campaign,
    CampaignState,
    FrameContact,
    FrameUnit,
    Stratum,
)
from app.models.catalogue import Procedure
from app.models.fieldwork import (
    CONTACT_COLUMNS,
    FRAME_COLUMNS,
    FRAME_REQUIRED,
    FrameImportSummary,
)
from app.services import access, audit, tabular
from app.services.campaigns import campaign_scope, get_campaign, require_state, stratum_public
from app.services.principal import Principal
from app.services.tabular import BATCH_SIZE, RawRow, RowErrors, cell_as_text, parse_date

S = CampaignState
T = TypeVar("T")
MAX_LENGTH = {
    "dossier_code": 100,
    "procedure_code": 64,
    "agency_code": 64,
    "contact_name": 300,
    "contact_phone": 50,
    "contact_address": 500,
}


# ---- reading ------------------------------------------------------------------------------------


def _problems(prefix: str) -> RowErrors:
    """One error per bad unit or row, at its first bad field: `<prefix>/<n>/<field>`."""
    return RowErrors(prefix, "unit(s)", "frame")


@dataclass(frozen=True, slots=True)
class FrameSource:
    """Units to import, numbered as the client will look for them, and where errors point."""

    rows: list[RawRow]
    prefix: str
    name: str | None = None


def json_source(body: Any) -> FrameSource:
    """`{"units": [...]}` read without a schema, so that every problem points at its unit."""
    if not isinstance(body, dict) or not isinstance(body.get("units"), list):
        detail = 'The body must be {"units": [...]}.'
        raise Invalid(detail, [FieldError("/body/units", detail, "missing")])
    rows: list[RawRow] = []
    for index, unit in enumerate(body["units"]):
        cells = dict(unit) if isinstance(unit, dict) else {"__not_object__": True}
        rows.append(RawRow(index, cells))
    return FrameSource(rows, "/units", "json")


def file_source(table: tabular.Table, name: str | None) -> FrameSource:
    """A parsed CSV (UTF-8, BOM optional) or XLSX upload; the header is row 1."""
    rows = tabular.keyed_rows(table, FRAME_COLUMNS, FRAME_REQUIRED, _problems("/rows"))
    return FrameSource(rows, "/rows", name or "upload")


# ---- checking -----------------------------------------------------------------------------------


@dataclass(slots=True)
class _Unit:
    number: int
    dossier_code: str
    procedure_id: uuid.UUID
    agency_id: uuid.UUID
    sector_id: uuid.UUID | None
    returned_on: date
    contact: dict[str, str | None]


def _texts(row: RawRow, problems: RowErrors) -> dict[str, str | None]:
    n = row.number
    if row.cells.get("__not_object__"):
        problems.add(n, None, "each unit must be an object", "not_object")
        return dict.fromkeys(FRAME_COLUMNS)
    if row.cells.get("__extra__"):
        problems.add(n, None, "more cells than columns", "extra_cells")
    for name in row.cells:
        if not name.startswith("__") and name not in FRAME_COLUMNS:
            problems.add(n, name, f"unknown field {name!r}", "unknown_field")
    text: dict[str, str | None] = {}
    for name in FRAME_COLUMNS:
        value = row.cells.get(name)
        if isinstance(value, dict | list):
            problems.add(n, name, f"{name} must be text", "not_text")
            value = None
        value = cell_as_text(value)
        if value is not None and bad_characters(value):
            problems.add(
                n, name, f"{name} has control characters or invalid UTF-8", "bad_characters"
            )
            text[name] = None
            continue
        value = nfc(value) if value is not None else None
        limit = MAX_LENGTH.get(name, 100)
        if value and len(value) > limit:
            problems.add(n, name, f"{name} is longer than {limit} characters", "too_long")
        text[name] = value or None
        if name in FRAME_REQUIRED and text[name] is None:
            problems.add(n, name, f"{name} is required", "missing")
    return text


@dataclass(slots=True)
class _Known:
    """What a unit is checked against: the stored codes, the campaign's scope and the caller's."""

    campaign: Campaign
    prefix: str
    procedures: dict[str, tuple[uuid.UUID, uuid.UUID]]
    agencies: dict[str, uuid.UUID]
    scope_agencies: set[uuid.UUID]
    scope_sectors: set[uuid.UUID]
    writable: set[uuid.UUID] | None
    foreign: set[str]
    first: dict[str, int] = field(default_factory=dict)


async def _known(
    session: AsyncSession,
    actor: Principal,
    campaign: Campaign,
    prefix: str,
    texts: list[tuple[RawRow, dict[str, str | None]]],
) -> _Known:
    writable = await access.writable_agency_ids(session, actor)
    procedure_codes = {t["procedure_code"] for _, t in texts if t["procedure_code"]}
    agency_codes = {t["agency_code"] for _, t in texts if t["agency_code"]}
    procedures = {
        code: (pid, sector_id)
        for code, pid, sector_id in (
            await session.execute(
                sa.select(col(Procedure.code), col(Procedure.id), col(Procedure.sector_id)).where(
                    col(Procedure.code).in_(procedure_codes)
                )
            )
        ).all()
    }
    agencies: dict[str, uuid.UUID] = dict(
        (
            await session.execute(
                sa.select(col(Agency.code), col(Agency.id)).where(
                    col(Agency.code).in_(agency_codes)
                )
            )
        ).all()
    )
    scope_agencies, scope_sectors = _scope_sets(await campaign_scope(session, campaign.id))
    # A unit already in the frame under an agency the caller may not write stays as it is:
    # neither moved into the caller's subtree nor given the caller's contact data.
    foreign: set[str] = set()
    if writable is not None:
        codes = [c for _, t in texts if (c := t["dossier_code"]) is not None]
        foreign = set(
            (
                await session.scalars(
                    sa.select(col(FrameUnit.dossier_code)).where(
                        col(FrameUnit.campaign_id) == campaign.id,
                        col(FrameUnit.dossier_code) == sa.any_(text_array(codes)),
                        sa.not_(access.agency_clause(actor, col(FrameUnit.agency_id))),
                    )
                )
            ).all()
        )
    return _Known(
        campaign=campaign,
        prefix=prefix,
        procedures=procedures,
        agencies=agencies,
        scope_agencies=scope_agencies,
        scope_sectors=scope_sectors,
        writable=writable,
        foreign=foreign,
    )


def _check_dossier(n: int, code: str | None, known: _Known, problems: RowErrors) -> None:
    if code is None:
        return
    if code in known.first:
        where = "row" if known.prefix == "/rows" else "unit"
        problems.add(
            n,
            "dossier_code",
            f"duplicate dossier code: already on {where} {known.first[code]}",
            "duplicate_dossier",
        )
    else:
        known.first[code] = n
    if code in known.foreign:
        problems.add(
            n,
            "dossier_code",
            "a unit of an agency outside your scope has this dossier code",
            "out_of_scope",
        )


def _check_procedure(
    n: int, code: str | None, known: _Known, problems: RowErrors
) -> tuple[uuid.UUID, uuid.UUID] | None:
    procedure = known.procedures.get(code or "")
    if code and procedure is None:
        problems.add(n, "procedure_code", f"unknown procedure {code!r}", "unknown")
    if procedure is not None and known.scope_sectors and procedure[1] not in known.scope_sectors:
        problems.add(
            n,
            "procedure_code",
            "the procedure's sector is not in the campaign's scope",
            "out_of_scope",
        )
    return procedure


def _check_agency(n: int, code: str | None, known: _Known, problems: RowErrors) -> uuid.UUID | None:
    agency_id = known.agencies.get(code or "")
    if code and agency_id is None:
        problems.add(n, "agency_code", f"unknown agency {code!r}", "unknown")
    elif agency_id is not None and agency_id not in known.scope_agencies:
        problems.add(n, "agency_code", "the agency is not in the campaign's scope", "out_of_scope")
    elif agency_id is not None and known.writable is not None and agency_id not in known.writable:
        problems.add(n, "agency_code", "the agency is outside your scope", "out_of_scope")
    return agency_id


def _check_returned_on(
    row: RawRow, text: str | None, campaign: Campaign, problems: RowErrors
) -> date | None:
    if text is None:
        return None
    n = row.number
    try:
        returned_on = parse_date(row.cells.get("returned_on"))
    except ValueError:
        problems.add(n, "returned_on", "not a date; use YYYY-MM-DD", "bad_date")
        return None
    if not campaign.period_start <= returned_on <= campaign.period_end:
        problems.add(
            n,
            "returned_on",
            f"outside the campaign's period {campaign.period_start.isoformat()}.."
            f"{campaign.period_end.isoformat()}",
            "out_of_period",
        )
    return returned_on


def _check_unit(
    row: RawRow, t: dict[str, str | None], known: _Known, problems: RowErrors
) -> _Unit | None:
    """One unit checked against what is known; None when it has a problem (reported)."""
    n = row.number
    code = t["dossier_code"]
    _check_dossier(n, code, known, problems)
    procedure = _check_procedure(n, t["procedure_code"], known, problems)
    agency_id = _check_agency(n, t["agency_code"], known, problems)
    returned_on = _check_returned_on(row, t["returned_on"], known.campaign, problems)
    if n in problems.rows:
        return None
    if code is None or procedure is None or agency_id is None or returned_on is None:
        return None  # reported above
    return _Unit(
        number=n,
        dossier_code=code,
        procedure_id=procedure[0],
        agency_id=agency_id,
        sector_id=procedure[1] if known.scope_sectors else None,
        returned_on=returned_on,
        contact={c: t[c] for c in CONTACT_COLUMNS},
    )


async def _check(
    session: AsyncSession, actor: Principal, campaign: Campaign, source: FrameSource
) -> tuple[list[_Unit], RowErrors]:
    problems = _problems(source.prefix)
    texts = [(row, _texts(row, problems)) for row in source.rows]
    known = await _known(session, actor, campaign, source.prefix, texts)
    units = [u for row, t in texts if (u := _check_unit(row, t, known, problems)) is not None]
    return units, problems


def _scope_sets(
    scope: tuple[list[uuid.UUID], list[uuid.UUID]],
) -> tuple[set[uuid.UUID], set[uuid.UUID]]:
    return set(scope[0]), set(scope[1])


# ---- writing ------------------------------------------------------------------------------------


def _chunks(items: Sequence[T]) -> Iterable[Sequence[T]]:
    for start in range(0, len(items), BATCH_SIZE):
        yield items[start : start + BATCH_SIZE]


async def _strata_ids(
    session: AsyncSession, campaign_id: uuid.UUID, cells: set[tuple[uuid.UUID, uuid.UUID | None]]
) -> dict[tuple[uuid.UUID, uuid.UUID | None], uuid.UUID]:
    """The stratum of every cell, creating the missing ones in one statement."""
    ordered = sorted(cells, key=lambda c: (str(c[0]), str(c[1])))
    for chunk in _chunks(ordered):
        await session.execute(
            pg.insert(Stratum)
            .values(
                [{"campaign_id": campaign_id, "agency_id": a, "sector_id": s} for a, s in chunk]
            )
            .on_conflict_do_nothing(constraint="uq_strata_cell")
        )
    rows = await session.execute(
        sa.select(col(Stratum.agency_id), col(Stratum.sector_id), col(Stratum.id)).where(
            col(Stratum.campaign_id) == campaign_id
        )
    )
    return {(a, s): sid for a, s, sid in rows.all()}


async def recount_frame_sizes(session: AsyncSession, campaign_id: uuid.UUID) -> None:
    """N_h of every stratum of the campaign from its frame units, in one UPDATE ... FROM."""
    counts = (
        sa.select(col(Stratum.id).label("stratum_id"), sa.func.count(col(FrameUnit.id)).label("n"))
        .select_from(Stratum)
        .outerjoin(FrameUnit, col(FrameUnit.stratum_id) == col(Stratum.id))
        .where(col(Stratum.campaign_id) == campaign_id)
        .group_by(col(Stratum.id))
        .subquery()
    )
    await session.execute(
        sa.update(Stratum)
        .where(col(Stratum.id) == counts.c.stratum_id)
        .values(frame_size=counts.c.n)
        .execution_options(synchronize_session=False)
    )


async def import_frame(
    session: AsyncSession, actor: Principal, campaign_id: uuid.UUID, source: FrameSource
) -> FrameImportSummary:
    """Upsert frame units by (campaign, dossier_code); all or nothing."""
    campaign = await get_campaign(session, actor, campaign_id, lock=True)
    require_state(campaign, S.draft, S.open, what="The frame can be imported")
    units, problems = await _check(session, actor, campaign, source)
    problems.raise_if_any()

    codes = [u.dossier_code for u in units]
    existing = set(
        (
            await session.scalars(
                sa.select(col(FrameUnit.dossier_code)).where(
                    col(FrameUnit.campaign_id) == campaign.id,
                    col(FrameUnit.dossier_code) == sa.any_(text_array(codes)),
                )
            )
        ).all()
    )
    strata = await _strata_ids(session, campaign.id, {(u.agency_id, u.sector_id) for u in units})
    ids: dict[str, uuid.UUID] = {}
    for chunk in _chunks(units):
        stmt = pg.insert(FrameUnit).values(
            [
                {
                    "campaign_id": campaign.id,
                    "dossier_code": u.dossier_code,
                    "procedure_id": u.procedure_id,
                    "agency_id": u.agency_id,
                    "stratum_id": strata[(u.agency_id, u.sector_id)],
                    "returned_on": u.returned_on,
                }
                for u in chunk
            ]
        )
        upsert = stmt.on_conflict_do_update(
            constraint="uq_frame_units_dossier",
            set_={
                name: stmt.excluded[name]
                for name in ("procedure_id", "agency_id", "stratum_id", "returned_on")
            },
        ).returning(col(FrameUnit.dossier_code), col(FrameUnit.id))
        ids.update(dict((await session.execute(upsert)).all()))
    await _write_contacts(session, units, ids)
    await recount_frame_sizes(session, campaign.id)

    created = len([c for c in codes if c not in existing])
    summary = FrameImportSummary(
        received=len(source.rows),
        created=created,
        updated=len(codes) - created,
        strata=[stratum_public(s) for s in await fresh_strata(session, actor, campaign.id)],
    )
    await audit.record(
        session,
        actor,
        "campaign.frame_import",
        object_type="campaign",
        object_id=campaign.id,
        summary={
            "source": source.name,
            **summary.model_dump(exclude={"strata"}),
            "strata": len(summary.strata),
        },
    )
    return summary


def text_array(values: list[str]) -> sa.BindParameter[Any]:
    """One array parameter, not one parameter per value (asyncpg allows 32767 of those)."""
    array: Any = pg.ARRAY(sa.Text)
    return sa.bindparam(None, values, type_=array)


async def _write_contacts(
    session: AsyncSession, units: list[_Unit], ids: dict[str, uuid.UUID]
) -> None:
    """The file's contact replaces the stored one; a unit without any contact loses its own."""
    with_contact = [u for u in units if any(u.contact.values())]
    without = [ids[u.dossier_code] for u in units if not any(u.contact.values())]
    if without:
        await session.execute(
            sa.delete(FrameContact).where(
                col(FrameContact.frame_unit_id)
                == sa.any_(sa.bindparam(None, without, type_=pg.ARRAY(sa.Uuid)))
            )
        )
    for chunk in _chunks(with_contact):
        stmt = pg.insert(FrameContact).values(
            [
                {
                    "frame_unit_id": ids[u.dossier_code],
                    "name": u.contact["contact_name"],
                    "phone": u.contact["contact_phone"],
                    "address": u.contact["contact_address"],
                }
                for u in chunk
            ]
        )
        await session.execute(
            stmt.on_conflict_do_update(
                index_elements=["frame_unit_id"],
                set_={name: stmt.excluded[name] for name in ("name", "phone", "address")},
            )
        )


async def fresh_strata(
    session: AsyncSession, principal: Principal | None, campaign_id: uuid.UUID
) -> list[Stratum]:
    """The strata the caller may see, as stored now: the bulk UPDATE bypassed the identity map."""
    query = access.readable_strata(principal, campaign_id).execution_options(populate_existing=True)
    return list((await session.scalars(query)).all())
