"""Fieldwork: the sampling frame, the stratified sample, surveyors and their worklist.

A frame import is all or nothing, like the agency import: every unit is checked first and any
bad one refuses the whole request with one error per bad unit. Good imports are written with a
few multi-row statements; contact data goes to `frame_contacts`, never into `frame_units`.
"""

from __future__ import annotations

import secrets
import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.errors import ConflictError, FieldError, Invalid
from app.models.agency import Agency, bad_characters
from app.models.base import nfc
from app.models.campaign import (
    Campaign,
    CampaignState,
    CampaignSurveyor,
    FrameContact,
    FrameUnit,
    Stratum,
    StratumPublic,
)
from app.models.catalogue import Procedure
from app.models.fieldwork import (
    CONTACT_COLUMNS,
    FRAME_COLUMNS,
    FRAME_REQUIRED,
    WORKLIST_COLUMNS,
    FrameImportSummary,
    SamplePublic,
    StratumSample,
    SurveyorAssignmentPublic,
    SurveyorAssignments,
    WorklistItem,
)
from app.models.identity import Role, User
from app.services import access, audit, tabular
from app.services.campaigns import campaign_scope, get_campaign, require_state
from app.services.principal import Principal
from app.services.sampling import draw, stratum_seed
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


async def _check(
    session: AsyncSession, actor: Principal, campaign: Campaign, source: FrameSource
) -> tuple[list[_Unit], RowErrors]:
    problems = _problems(source.prefix)
    writable = await access.writable_agency_ids(session, actor)
    texts = [(row, _texts(row, problems)) for row in source.rows]
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
                        col(FrameUnit.dossier_code) == sa.any_(_text_array(codes)),
                        sa.not_(access.agency_clause(actor, col(FrameUnit.agency_id))),
                    )
                )
            ).all()
        )
    first: dict[str, int] = {}
    units: list[_Unit] = []
    for row, t in texts:
        n = row.number
        code = t["dossier_code"]
        if code is not None:
            if code in first:
                where = "row" if source.prefix == "/rows" else "unit"
                problems.add(
                    n,
                    "dossier_code",
                    f"duplicate dossier code: already on {where} {first[code]}",
                    "duplicate_dossier",
                )
            else:
                first[code] = n
            if code in foreign:
                problems.add(
                    n,
                    "dossier_code",
                    "a unit of an agency outside your scope has this dossier code",
                    "out_of_scope",
                )
        procedure = procedures.get(t["procedure_code"] or "")
        if t["procedure_code"] and procedure is None:
            problems.add(
                n, "procedure_code", f"unknown procedure {t['procedure_code']!r}", "unknown"
            )
        if procedure is not None and scope_sectors and procedure[1] not in scope_sectors:
            problems.add(
                n,
                "procedure_code",
                "the procedure's sector is not in the campaign's scope",
                "out_of_scope",
            )
        agency_id = agencies.get(t["agency_code"] or "")
        if t["agency_code"] and agency_id is None:
            problems.add(n, "agency_code", f"unknown agency {t['agency_code']!r}", "unknown")
        elif agency_id is not None and agency_id not in scope_agencies:
            problems.add(
                n, "agency_code", "the agency is not in the campaign's scope", "out_of_scope"
            )
        elif agency_id is not None and writable is not None and agency_id not in writable:
            problems.add(n, "agency_code", "the agency is outside your scope", "out_of_scope")
        returned_on: date | None = None
        if t["returned_on"] is not None:
            try:
                returned_on = parse_date(row.cells.get("returned_on"))
            except ValueError:
                problems.add(n, "returned_on", "not a date; use YYYY-MM-DD", "bad_date")
        if returned_on is not None and not (
            campaign.period_start <= returned_on <= campaign.period_end
        ):
            problems.add(
                n,
                "returned_on",
                f"outside the campaign's period {campaign.period_start.isoformat()}.."
                f"{campaign.period_end.isoformat()}",
                "out_of_period",
            )
        if n in problems.rows:
            continue
        if code is None or procedure is None or agency_id is None or returned_on is None:
            continue  # reported above
        units.append(
            _Unit(
                number=n,
                dossier_code=code,
                procedure_id=procedure[0],
                agency_id=agency_id,
                sector_id=procedure[1] if scope_sectors else None,
                returned_on=returned_on,
                contact={c: t[c] for c in CONTACT_COLUMNS},
            )
        )
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
                    col(FrameUnit.dossier_code) == sa.any_(_text_array(codes)),
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
        strata=[
            StratumPublic.model_validate(s, from_attributes=True)
            for s in await _fresh_strata(session, actor, campaign.id)
        ],
    )
    await audit.record(
        session,
        actor,
        "campaign.frame_import",
        object_type="campaign",
        object_id=campaign.id,
        summary={
            "source": source.name,
            "received": summary.received,
            "created": summary.created,
            "updated": summary.updated,
            "strata": len(summary.strata),
        },
    )
    return summary


def _text_array(values: list[str]) -> sa.BindParameter[Any]:
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


async def _fresh_strata(
    session: AsyncSession, principal: Principal | None, campaign_id: uuid.UUID
) -> list[Stratum]:
    """The strata the caller may see, as stored now: the bulk UPDATE bypassed the identity map."""
    query = access.readable_strata(principal, campaign_id).execution_options(populate_existing=True)
    return list((await session.scalars(query)).all())


# ---- the sample ---------------------------------------------------------------------------------


async def draw_sample(
    session: AsyncSession, actor: Principal, campaign_id: uuid.UUID, seed: str | None
) -> SamplePublic:
    """Every stratum draws its target from its frame units with its own stream of the seed.

    The same seed over the same frame and strata gives the same units; the seed is stored on
    the campaign so the draw can be repeated and checked.
    """
    campaign = await get_campaign(session, actor, campaign_id, lock=True)
    require_state(campaign, S.draft, S.open, what="The sample can be drawn")
    strata = await _fresh_strata(session, None, campaign.id)
    if not strata or any(s.target is None for s in strata):
        raise ConflictError(
            "targets_missing",
            "Every stratum needs a target before the draw: import the frame, then allocate "
            "or set the targets."
            if strata
            else "The campaign has no strata yet: import the frame and set the targets first.",
            extra={"strata_without_target": [str(s.id) for s in strata if s.target is None]},
        )
    seed = seed or secrets.token_hex(8)
    by_stratum: dict[uuid.UUID, list[str]] = defaultdict(list)
    rows = await session.execute(
        sa.select(col(FrameUnit.stratum_id), col(FrameUnit.dossier_code)).where(
            col(FrameUnit.campaign_id) == campaign.id, col(FrameUnit.stratum_id).is_not(None)
        )
    )
    for stratum_id, code in rows.all():
        if stratum_id is not None:
            by_stratum[stratum_id].append(code)
    chosen: list[str] = []
    result: list[StratumSample] = []
    for s in strata:
        pool = by_stratum.get(s.id, [])
        picked = draw(pool, s.target or 0, stratum_seed(seed, str(s.id)))
        chosen.extend(picked)
        result.append(
            StratumSample(
                stratum_id=s.id,
                agency_id=s.agency_id,
                sector_id=s.sector_id,
                frame_size=len(pool),
                target=s.target or 0,
                drawn=len(picked),
            )
        )
    await session.execute(
        sa.update(FrameUnit)
        .where(col(FrameUnit.campaign_id) == campaign.id)
        .values(
            in_sample=sa.and_(
                col(FrameUnit.stratum_id).is_not(None),
                col(FrameUnit.dossier_code) == sa.any_(_text_array(chosen)),
            )
        )
        .execution_options(synchronize_session=False)
    )
    campaign.sample_seed = seed
    await session.flush()
    await audit.record(
        session,
        actor,
        "campaign.sample",
        object_type="campaign",
        object_id=campaign.id,
        summary={"seed": seed, "drawn": len(chosen), "strata": len(strata)},
    )
    return SamplePublic(campaign_id=campaign.id, seed=seed, drawn=len(chosen), strata=result)


# ---- surveyors ----------------------------------------------------------------------------------


async def list_surveyors(
    session: AsyncSession, principal: Principal, campaign_id: uuid.UUID
) -> list[SurveyorAssignmentPublic]:
    campaign = await get_campaign(session, principal, campaign_id)
    query = (
        sa.select(
            col(User.id),
            col(User.username),
            col(User.display_name),
            col(CampaignSurveyor.agency_id),
            col(Agency.code),
            col(Agency.name),
        )
        .select_from(CampaignSurveyor)
        .join(User, col(User.id) == col(CampaignSurveyor.user_id))
        .outerjoin(Agency, col(Agency.id) == col(CampaignSurveyor.agency_id))
        .where(
            col(CampaignSurveyor.campaign_id) == campaign.id, access.assignment_clause(principal)
        )
        .order_by(col(User.username), col(Agency.code).nulls_first())
    )
    return [
        SurveyorAssignmentPublic(
            user_id=r[0],
            username=r[1],
            display_name=r[2],
            agency_id=r[3],
            agency_code=r[4],
            agency_name=r[5],
        )
        for r in (await session.execute(query)).all()
    ]


async def replace_surveyors(
    session: AsyncSession, actor: Principal, campaign_id: uuid.UUID, data: SurveyorAssignments
) -> list[SurveyorAssignmentPublic]:
    campaign = await get_campaign(session, actor, campaign_id, lock=True)
    require_state(campaign, S.draft, S.open, S.closed, what="Surveyors can be assigned")
    agencies, _ = await campaign_scope(session, campaign.id)
    user_ids = {a.user_id for a in data.assignments}
    roles: dict[uuid.UUID, str] = dict(
        (
            await session.execute(
                sa.select(col(User.id), col(User.role)).where(col(User.id).in_(user_ids))
            )
        ).all()
    )
    errors: list[FieldError] = []
    seen: set[tuple[uuid.UUID, uuid.UUID | None]] = set()
    for i, a in enumerate(data.assignments):
        where = f"/body/assignments/{i}"
        if a.user_id not in roles:
            errors.append(FieldError(f"{where}/user_id", "no such user", "unknown"))
        elif roles[a.user_id] != Role.surveyor:
            errors.append(
                FieldError(f"{where}/user_id", "the user is not a surveyor", "not_surveyor")
            )
        if a.agency_id is not None and a.agency_id not in agencies:
            errors.append(
                FieldError(f"{where}/agency_id", "not in the campaign's scope", "out_of_scope")
            )
        if (a.user_id, a.agency_id) in seen:
            errors.append(FieldError(where, "the same assignment twice", "duplicate"))
        seen.add((a.user_id, a.agency_id))
    if errors:
        raise Invalid("Some assignments are not valid.", errors)
    await session.execute(
        sa.delete(CampaignSurveyor).where(col(CampaignSurveyor.campaign_id) == campaign.id)
    )
    if data.assignments:
        await session.execute(
            sa.insert(CampaignSurveyor),
            [
                {"campaign_id": campaign.id, "user_id": a.user_id, "agency_id": a.agency_id}
                for a in data.assignments
            ],
        )
    await audit.record(
        session,
        actor,
        "campaign.surveyors_replace",
        object_type="campaign",
        object_id=campaign.id,
        summary={
            "assignments": [
                {"user_id": a.user_id, "agency_id": a.agency_id} for a in data.assignments
            ]
        },
    )
    return await list_surveyors(session, actor, campaign.id)


# ---- the worklist -------------------------------------------------------------------------------


async def worklist(
    session: AsyncSession,
    principal: Principal,
    campaign_id: uuid.UUID,
    agency_id: uuid.UUID | None = None,
) -> list[WorklistItem]:
    """The sampled units the caller must visit, by agency code then dossier code."""
    campaign = await get_campaign(session, principal, campaign_id)
    readable = await access.worklist_clause(session, principal, campaign.id)
    query = (
        sa.select(
            col(FrameUnit.id),
            col(FrameUnit.dossier_code),
            col(Procedure.code),
            col(Procedure.name),
            col(Agency.code),
            col(Agency.name),
            col(FrameUnit.returned_on),
            col(FrameContact.name),
            col(FrameContact.phone),
            col(FrameContact.address),
        )
        .select_from(FrameUnit)
        .join(Agency, col(Agency.id) == col(FrameUnit.agency_id))
        .outerjoin(Procedure, col(Procedure.id) == col(FrameUnit.procedure_id))
        .outerjoin(FrameContact, col(FrameContact.frame_unit_id) == col(FrameUnit.id))
        .where(col(FrameUnit.campaign_id) == campaign.id, col(FrameUnit.in_sample), readable)
        .order_by(col(Agency.code), col(FrameUnit.dossier_code))
    )
    if agency_id is not None:
        query = query.where(col(FrameUnit.agency_id) == agency_id)
    return [
        WorklistItem(**dict(zip(WORKLIST_COLUMNS, r, strict=True)))
        for r in (await session.execute(query)).all()
    ]


def worklist_csv(items: Iterable[WorklistItem]) -> bytes:
    """UTF-8 with a BOM, so that Excel shows the Vietnamese text right; machine-name header;
    text neutralised against formulas."""
    return tabular.csv_bytes(
        WORKLIST_COLUMNS, ([getattr(item, c) for c in WORKLIST_COLUMNS] for item in items)
    )
