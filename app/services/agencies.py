"""Agencies: the dated tree, and which part of it a caller may see."""

from __future__ import annotations

import uuid
from datetime import date, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased
from sqlmodel import col

from app.errors import (
    AppError,
    Conflict,
    ConflictError,
    FieldError,
    Invalid,
)
from app.models.agency import (
    Agency,
    AgencyCreate,
    AgencyKind,
    AgencyLevel,
    AgencyLinks,
    AgencyPage,
    AgencyPublic,
    AgencyRetire,
    AgencySuccessor,
    AgencySuccessorPublic,
    AgencyUpdate,
    SuccessionKind,
    SuccessorRef,
)
from app.models.base import touch
from app.services import access, audit, rows, updates
from app.services.paging import cursor_str, decode_cursor, keyset_page
from app.services.principal import Principal
from app.services.text import fold

# Reparenting takes this lock so that two concurrent moves cannot together make a cycle that
# neither would make alone. It conflicts with itself but not with plain reads or row writes.
LOCK_TREE = sa.text("LOCK TABLE agencies IN SHARE ROW EXCLUSIVE MODE")

_SNAPSHOT_FIELDS = (
    "code",
    "name",
    "short_name",
    "kind",
    "level",
    "parent_id",
    "is_measured",
    "valid_from",
    "valid_to",
    "admin_unit_code",
)


def search_name(name: str, short_name: str | None) -> str:
    return fold(f"{name} {short_name or ''}")


def like_contains(query: str) -> str:
    """A LIKE pattern that finds the folded query anywhere, with % and _ taken literally."""
    folded = fold(query)
    escaped = folded.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def snapshot(agency: Agency) -> dict[str, Any]:
    """The audited fields, JSON-ready (dates as ISO text)."""
    values = {name: getattr(agency, name) for name in _SNAPSHOT_FIELDS}
    return {k: v.isoformat() if isinstance(v, date) else v for k, v in values.items()}


def valid_on_clause(day: date) -> sa.ColumnElement[bool]:
    return sa.and_(
        col(Agency.valid_from) <= day,
        sa.or_(col(Agency.valid_to).is_(None), col(Agency.valid_to) >= day),
    )


def public(agency: Agency) -> AgencyPublic:
    return AgencyPublic.model_validate(agency)


async def agency_exists(session: AsyncSession, agency_id: uuid.UUID) -> bool:
    found = await session.scalar(sa.select(sa.literal(1)).where(col(Agency.id) == agency_id))
    return found is not None


async def require_agency(session: AsyncSession, agency_id: uuid.UUID) -> None:
    """The check of the `agency_id` a request names: an unknown agency is invalid input (422,
    pointing at /body/agency_id), not a missing resource."""
    if not await agency_exists(session, agency_id):
        raise Invalid(
            "The agency does not exist.",
            [FieldError("/body/agency_id", "no agency with this id", "unknown_agency")],
        )


async def level_codes(session: AsyncSession) -> set[str]:
    return set((await session.scalars(sa.select(col(AgencyLevel.code)))).all())


async def _check_level(session: AsyncSession, level: str) -> None:
    if level not in await level_codes(session):
        raise Invalid(
            "The level is not one of the agency levels.",
            [FieldError("/body/level", f"unknown level {level!r}", "unknown_level")],
        )


async def _check_parent(session: AsyncSession, parent_id: uuid.UUID) -> None:
    if not await agency_exists(session, parent_id):
        raise Invalid(
            "The parent agency does not exist.",
            [FieldError("/body/parent_id", "no agency with this id", "unknown_parent")],
        )


def cycle_error(pointer: str = "/body/parent_id") -> AppError:
    return ConflictError(
        "agency_cycle",
        "The agency cannot be placed under itself or one of its own descendants.",
        errors=[FieldError(pointer, "would make the agency its own ancestor", "cycle")],
    )


async def get_agency(session: AsyncSession, principal: Principal, agency_id: uuid.UUID) -> Agency:
    await access.require_agency(session, principal, agency_id)
    return await rows.fetch(session, Agency, agency_id, "agency")


async def create_agency(session: AsyncSession, actor: Principal, data: AgencyCreate) -> Agency:
    if await rows.taken(session, col(Agency.code), data.code):
        raise Conflict("agency_code_taken", f"Another agency already has the code {data.code!r}.")
    await _check_level(session, data.level)
    if data.parent_id is not None:
        await _check_parent(session, data.parent_id)
    agency = Agency(**data.model_dump(), search_name=search_name(data.name, data.short_name))
    await audit.record_created(session, actor, agency, "agency", snapshot)
    return agency


async def update_agency(
    session: AsyncSession, actor: Principal, agency_id: uuid.UUID, data: AgencyUpdate
) -> Agency:
    agency = await rows.fetch(session, Agency, agency_id, "agency")
    changes = updates.sent(data)
    if "level" in changes:
        await _check_level(session, changes["level"])
    valid_from = changes.get("valid_from", agency.valid_from)
    valid_to = changes.get("valid_to", agency.valid_to)
    if valid_to is not None and valid_to < valid_from:
        pointer = "/body/valid_to" if "valid_to" in changes else "/body/valid_from"
        raise Invalid(
            "The agency would end before it starts.",
            [FieldError(pointer, "valid_to must not be before valid_from", "bad_date_range")],
        )
    new_parent = changes.get("parent_id", agency.parent_id)
    if new_parent != agency.parent_id:
        await session.execute(LOCK_TREE)
        if new_parent is not None:
            await _check_parent(session, new_parent)
            below = await session.scalar(
                sa.select(sa.literal(1)).where(
                    sa.literal(new_parent, sa.Uuid).in_(access.subtree(agency.id))
                )
            )
            if below is not None:
                raise cycle_error()

    def derive(agency: Agency) -> None:
        agency.search_name = search_name(agency.name, agency.short_name)

    changed = updates.apply_changes(agency, changes, snapshot, derive=derive)
    touch(agency)
    await audit.record_change(
        session, actor, agency, "agency.update", object_type="agency", summary=changed.diff()
    )
    return agency


async def list_agencies(
    session: AsyncSession,
    principal: Principal,
    *,
    limit: int,
    cursor: str | None,
    level: str | None = None,
    kind: AgencyKind | None = None,
    parent_id: uuid.UUID | None = None,
    is_measured: bool | None = None,
    valid_on: date | None = None,
    q: str | None = None,
) -> AgencyPage:
    """Ordered by code, paged by code: stable while rows are added or changed."""
    query = access.readable_agencies(principal).order_by(col(Agency.code))
    after = decode_cursor(cursor)
    if after is not None:
        query = query.where(col(Agency.code) > cursor_str(after, "code"))
    if level is not None:
        query = query.where(col(Agency.level) == level)
    if kind is not None:
        query = query.where(col(Agency.kind) == kind)
    if parent_id is not None:
        query = query.where(col(Agency.parent_id) == parent_id)
    if is_measured is not None:
        query = query.where(col(Agency.is_measured) == is_measured)
    if valid_on is not None:
        query = query.where(valid_on_clause(valid_on))
    if q is not None and fold(q):
        query = query.where(col(Agency.search_name).like(like_contains(q), escape="\\"))
    rows, next_cursor = await keyset_page(
        session, query, limit=limit, key=lambda r: {"code": r.code}
    )
    return AgencyPage(items=[public(r) for r in rows], next_cursor=next_cursor)


async def subtree(
    session: AsyncSession,
    principal: Principal,
    agency_id: uuid.UUID,
    valid_on: date | None = None,
) -> list[AgencyPublic]:
    """The agency and everything below it, by code; with `valid_on`, only what existed that day."""
    await get_agency(session, principal, agency_id)
    query = access.readable_agencies(principal).where(col(Agency.id).in_(access.subtree(agency_id)))
    if valid_on is not None:
        query = query.where(valid_on_clause(valid_on))
    rows = (await session.scalars(query.order_by(col(Agency.code)))).all()
    return [public(r) for r in rows]


async def ancestors(
    session: AsyncSession, principal: Principal, agency_id: uuid.UUID
) -> list[AgencyPublic]:
    """The chain of parents, root first; an agency manager sees only the part in its subtree."""
    await get_agency(session, principal, agency_id)
    agencies = Agency.metadata.tables["agencies"]
    up = (
        sa.select(agencies.c.parent_id.label("id"), sa.literal(1).label("depth"))
        .where(agencies.c.id == agency_id)
        .cte("up", recursive=True)
    )
    up = up.union_all(
        sa.select(agencies.c.parent_id, up.c.depth + 1).join(up, agencies.c.id == up.c.id)
    )
    query = (
        access.readable_agencies(principal)
        .join(up, col(Agency.id) == up.c.id)
        .order_by(up.c.depth.desc())
    )
    return [public(r) for r in (await session.scalars(query)).all()]


async def links(session: AsyncSession, principal: Principal, agency_id: uuid.UUID) -> AgencyLinks:
    await get_agency(session, principal, agency_id)
    pred = aliased(Agency)
    succ = aliased(Agency)
    query = (
        sa.select(AgencySuccessor, col(pred.code), col(succ.code))
        .join(pred, col(pred.id) == col(AgencySuccessor.predecessor_id))
        .join(succ, col(succ.id) == col(AgencySuccessor.successor_id))
        .where(
            sa.or_(
                col(AgencySuccessor.predecessor_id) == agency_id,
                col(AgencySuccessor.successor_id) == agency_id,
            )
        )
        .order_by(col(AgencySuccessor.effective_on), col(pred.code), col(succ.code))
    )
    visible = await access.readable_agency_ids(session, principal)
    result = AgencyLinks(successors=[], predecessors=[])
    for link, pred_code, succ_code in (await session.execute(query)).all():
        pred_id, succ_id = link.predecessor_id, link.successor_id
        other = succ_id if pred_id == agency_id else pred_id
        if visible is not None and other not in visible:
            continue
        shown = AgencySuccessorPublic(
            predecessor_id=pred_id,
            predecessor_code=pred_code,
            successor_id=succ_id,
            successor_code=succ_code,
            kind=SuccessionKind(link.kind),
            effective_on=link.effective_on,
        )
        (result.successors if pred_id == agency_id else result.predecessors).append(shown)
    return result


async def upsert_links(
    session: AsyncSession, links: list[tuple[uuid.UUID, uuid.UUID, SuccessionKind, date]]
) -> int:
    """Insert or update succession links in one statement; the number of rows that changed."""
    if not links:
        return 0
    insert = pg.insert(AgencySuccessor).values(
        [
            {"predecessor_id": p, "successor_id": s, "kind": k.value, "effective_on": d}
            for p, s, k, d in links
        ]
    )
    excluded = insert.excluded
    stmt = insert.on_conflict_do_update(
        index_elements=["predecessor_id", "successor_id"],
        set_={"kind": excluded.kind, "effective_on": excluded.effective_on},
        where=sa.or_(
            col(AgencySuccessor.kind) != excluded.kind,
            col(AgencySuccessor.effective_on) != excluded.effective_on,
        ),
    ).returning(col(AgencySuccessor.predecessor_id))
    return len((await session.execute(stmt)).all())


async def _resolve_refs(
    session: AsyncSession, agency: Agency, refs: list[SuccessorRef], pointer: str
) -> list[tuple[uuid.UUID, uuid.UUID, SuccessionKind, date]]:
    ids = [r.id for r in refs if r.id is not None]
    codes = [r.code for r in refs if r.code is not None]
    found = (
        await session.execute(
            sa.select(col(Agency.id), col(Agency.code)).where(
                sa.or_(col(Agency.id).in_(ids), col(Agency.code).in_(codes))
            )
        )
    ).all()
    by_id = {i: i for i, _ in found}
    by_code = {c: i for i, c in found}
    errors: list[FieldError] = []
    result: list[tuple[uuid.UUID, uuid.UUID, SuccessionKind, date]] = []
    for n, ref in enumerate(refs):
        target = by_id.get(ref.id) if ref.id is not None else by_code.get(ref.code or "")
        if target is None:
            field = "id" if ref.id is not None else "code"
            errors.append(FieldError(f"{pointer}/{n}/{field}", "no such agency", "unknown_agency"))
            continue
        if target == agency.id:
            errors.append(
                FieldError(f"{pointer}/{n}", "an agency cannot succeed itself", "self_successor")
            )
            continue
        effective_on = ref.effective_on
        if effective_on is None:
            if agency.valid_to is None:
                errors.append(
                    FieldError(
                        f"{pointer}/{n}/effective_on",
                        "required while the agency has no valid_to",
                        "missing",
                    )
                )
                continue
            effective_on = agency.valid_to + timedelta(days=1)
        result.append((agency.id, target, ref.kind, effective_on))
    if errors:
        raise Invalid("Some successors are not valid; see errors.", errors)
    return result


async def add_successors(
    session: AsyncSession, actor: Principal, agency_id: uuid.UUID, refs: list[SuccessorRef]
) -> AgencyLinks:
    agency = await rows.fetch(session, Agency, agency_id, "agency")
    resolved = await _resolve_refs(session, agency, refs, "/body/successors")
    await upsert_links(session, resolved)
    await audit.record(
        session,
        actor,
        "agency.successors.add",
        object_type="agency",
        object_id=agency.id,
        summary={
            "links": [
                {"successor_id": s, "kind": k, "effective_on": str(d)} for _, s, k, d in resolved
            ]
        },
    )
    return await links(session, actor, agency_id)


async def retire_agency(
    session: AsyncSession, actor: Principal, agency_id: uuid.UUID, data: AgencyRetire
) -> Agency:
    """End an agency on `valid_to`, refused while a child outlives it."""
    agency = await rows.fetch(session, Agency, agency_id, "agency")
    if data.valid_to < agency.valid_from:
        raise Invalid(
            "The agency would end before it starts.",
            [FieldError("/body/valid_to", "must not be before valid_from", "bad_date_range")],
        )
    children = (
        await session.scalars(
            sa.select(col(Agency.code))
            .where(
                col(Agency.parent_id) == agency.id,
                sa.or_(col(Agency.valid_to).is_(None), col(Agency.valid_to) > data.valid_to),
            )
            .order_by(col(Agency.code))
        )
    ).all()
    if children:
        raise ConflictError(
            "agency_has_active_children",
            f"The agency still has {len(children)} child agencies valid after {data.valid_to}; "
            "retire or move them first.",
            errors=[FieldError("/body/valid_to", "children are still valid after this day")],
            extra={"active_children": list(children)},
        )
    before = snapshot(agency)
    agency.valid_to = data.valid_to
    resolved = await _resolve_refs(session, agency, data.successors, "/body/successors")
    touch(agency)
    await session.flush()
    await upsert_links(session, resolved)
    summary = audit.diff(before, snapshot(agency))
    summary["reason"] = data.reason
    summary["successors"] = [
        {"successor_id": s, "kind": k, "effective_on": str(d)} for _, s, k, d in resolved
    ]
    await audit.record(
        session, actor, "agency.retire", object_type="agency", object_id=agency.id, summary=summary
    )
    return agency
