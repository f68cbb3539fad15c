"""Publishing: an immutable snapshot of every figure; reading, listing and rendering it.

The snapshot is computed once, when the campaign is published (or re-published, which makes a
new version when the inputs changed, and answers the latest version when they did not).
Reading a report never touches the forms again: the figures, the ETag and the exports (made by
`report_files`) all come from the stored snapshot.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app import cache as caches
from app.cache import Cache
from app.errors import AppError, FieldError, Invalid, NotFound
from app.models.agency import Agency
from app.models.base import timestamptz
from app.models.campaign import Campaign, CampaignAgency
from app.models.catalogue import Sector
from app.models.identity import Role, Scope
from app.models.questionnaire import Questionnaire
from app.models.report import (
    Report,
    ReportListItem,
    ReportListPage,
    ReportPage,
    ReportSummary,
)
from app.services import access, audit, events, plans, report_files
from app.services.index.compute import campaign_index
from app.services.index.rankings import ranking
from app.services.paging import (
    bad_cursor,
    cursor_int,
    cursor_str,
    decode_cursor,
    encode_cursor,
    keyset_page,
)
from app.services.principal import Principal
from app.services.report_files import BREAKDOWNS, canonical

RANKED_LEVELS = ("department", "district", "commune")


async def _inputs(
    session: AsyncSession, campaign_id: uuid.UUID, q: Questionnaire
) -> tuple[str, int]:
    """A hash of exactly what was counted and how it is labelled: every valid form's id and
    version, the questionnaire definition, and the agency map and sectors (names, levels and
    parents label and group the cells). Two snapshots with the same hash were computed from the
    same data, so publishing again over the same hash reuses the stored version."""
    row = (
        await session.execute(
            sa.text(
                """SELECT count(*),
                          encode(sha256(convert_to(coalesce(
                              string_agg(id::text || ':' || version::text, ',' ORDER BY id),
                              ''), 'UTF8')), 'hex')
                   FROM submissions WHERE campaign_id = :c AND state = 'valid'"""
            ),
            {"c": campaign_id},
        )
    ).one()
    labels = await session.scalar(
        sa.text(
            """SELECT encode(sha256(convert_to(
                   (SELECT coalesce(string_agg(concat_ws('|', id, code, name, short_name, level,
                           parent_id, is_measured, valid_from, valid_to), ',' ORDER BY id), '')
                    FROM agencies)
                   || '#' ||
                   (SELECT coalesce(string_agg(concat_ws('|', id, code, name_vi), ','
                           ORDER BY id), '') FROM sectors), 'UTF8')), 'hex')"""
        )
    )
    definition = hashlib.sha256(canonical(q.definition)).hexdigest()
    digest = hashlib.sha256(f"{row[1]}:{definition}:{labels}".encode()).hexdigest()
    return digest, int(row[0])


# Computes the snapshot with every right: a report is the whole campaign, whoever publishes it.
SYSTEM = Principal(
    kind="user", id=uuid.UUID(int=0), name="system", scopes=frozenset(Scope), role=Role.admin
)


async def snapshot(
    session: AsyncSession, actor: Principal | None, campaign: Campaign, reason: str | None
) -> tuple[Report, bool]:
    """The next version of a published campaign's report, computed over the whole campaign,
    with True; over identical inputs (the latest version's inputs hash) nothing is stored and
    that version is answered, with False.

    Called by the campaigns service when a campaign is published or re-published (the state
    rules live there). `actor` None is the system (the demo loader)."""
    q = await session.get(Questionnaire, campaign.questionnaire_id)
    if q is None:  # pragma: no cover - a foreign key guarantees it
        raise NotFound("questionnaire")
    cutoff = datetime.now(UTC)
    inputs_hash, forms = await _inputs(session, campaign.id, q)
    current = await session.scalar(
        sa.select(Report)
        .where(col(Report.campaign_id) == campaign.id)
        .order_by(col(Report.version).desc())
        .limit(1)
    )
    if current is not None and current.inputs_hash == inputs_hash:
        return current, False
    unscoped = SYSTEM
    total = await campaign_index(session, unscoped, campaign.id)
    content: dict[str, Any] = {
        "campaign": {
            "id": str(campaign.id),
            "code": campaign.code,
            "name": campaign.name,
            "year": campaign.year,
            "period_start": campaign.period_start.isoformat(),
            "period_end": campaign.period_end.isoformat(),
            "map_date": campaign.map_date.isoformat(),
        },
        "method": total.method,
        "questionnaire": {"code": total.questionnaire_code, "version": total.questionnaire_version},
        "thresholds": total.thresholds,
        "data_cutoff": cutoff.isoformat(),
        "inputs_hash": inputs_hash,
        "forms_counted": forms,
        "total": total.total.model_dump(mode="json"),
        "breakdowns": {},
        "rankings": {},
    }
    for group_by in BREAKDOWNS:
        result = await campaign_index(session, unscoped, campaign.id, group_by=group_by)
        content["breakdowns"][group_by] = [c.model_dump(mode="json") for c in result.groups]
    for level in RANKED_LEVELS:
        ranked = await ranking(session, unscoped, campaign.id, level)
        if ranked.rows:
            content["rankings"][level] = [r.model_dump(mode="json") for r in ranked.rows]
    version = 1 + int(
        await session.scalar(
            sa.select(sa.func.coalesce(sa.func.max(col(Report.version)), 0)).where(
                col(Report.campaign_id) == campaign.id
            )
        )
        or 0
    )
    content["version"] = version
    report = Report(
        campaign_id=campaign.id,
        version=version,
        method=total.method,
        questionnaire_code=total.questionnaire_code,
        questionnaire_version=total.questionnaire_version,
        data_cutoff=cutoff,
        inputs_hash=inputs_hash,
        forms_counted=forms,
        content=content,
        etag='"' + hashlib.sha256(canonical(content)).hexdigest()[:32] + '"',
        published_by=actor.id if actor is not None else None,
    )
    await audit.record_change(
        session,
        actor,
        report,
        "report.publish",
        object_type="report",
        summary={
            "campaign_id": str(campaign.id),
            "version": version,
            "inputs_hash": inputs_hash,
            "reason": reason,
        },
    )
    await events.report_published(session, report)
    # Every measured agency gets its improvement plan, targets proposed from this version.
    await plans.propose(session, actor, campaign, report)
    return report, True


class ReportRef(NamedTuple):
    """What a read needs before the body: whether the caller may see it, and its ETag."""

    id: uuid.UUID
    campaign_id: uuid.UUID
    etag: str


def _refs(principal: Principal) -> sa.Select[uuid.UUID, uuid.UUID, str]:
    return access.readable_reports(principal).with_only_columns(
        col(Report.id), col(Report.campaign_id), col(Report.etag)
    )


async def reference(session: AsyncSession, principal: Principal, report_id: uuid.UUID) -> ReportRef:
    row = (await session.execute(_refs(principal).where(col(Report.id) == report_id))).first()
    if row is None:
        raise NotFound("report")
    return ReportRef(*row)


async def latest(session: AsyncSession, principal: Principal, campaign_id: uuid.UUID) -> ReportRef:
    await access.require_campaign(session, principal, campaign_id)
    row = (
        await session.execute(
            _refs(principal)
            .where(col(Report.campaign_id) == campaign_id)
            .order_by(col(Report.version).desc())
            .limit(1)
        )
    ).first()
    if row is None:
        raise NotFound("report")
    return ReportRef(*row)


async def list_reports(
    session: AsyncSession,
    principal: Principal,
    campaign_id: uuid.UUID,
    *,
    limit: int,
    cursor: str | None,
) -> ReportPage:
    await access.require_campaign(session, principal, campaign_id)
    query = (
        access.readable_reports(principal)
        .where(col(Report.campaign_id) == campaign_id)
        .order_by(col(Report.version))
    )
    after = decode_cursor(cursor)
    if after is not None:
        query = query.where(col(Report.version) > cursor_int(after, "version"))
    rows, next_cursor = await keyset_page(
        session, query, limit=limit, key=lambda r: {"version": r.version}
    )
    return ReportPage(
        items=[ReportSummary.model_validate(r) for r in rows],
        next_cursor=next_cursor,
    )


def _covering(agency_id: uuid.UUID) -> sa.ColumnElement[bool]:
    """Reports whose campaign covers the agency: its scope holds the agency or an ancestor."""
    table = Agency.metadata.tables["agencies"]
    up = (
        sa.select(table.c.id, table.c.parent_id)
        .where(table.c.id == agency_id)
        .cte("covering", recursive=True)
    )
    up = up.union(sa.select(table.c.id, table.c.parent_id).join(up, table.c.id == up.c.parent_id))
    return sa.exists(
        sa.select(sa.literal(1))
        .select_from(CampaignAgency)
        .where(
            col(CampaignAgency.campaign_id) == col(Report.campaign_id),
            col(CampaignAgency.agency_id).in_(sa.select(up.c.id)),
        )
    )


def _unknown(name: str, what: str) -> AppError:
    detail = f"No {what} has this code or id."
    return Invalid(detail, [FieldError(f"/query/{name}", detail, f"unknown_{what}")])


def _as_uuid(text: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(text)
    except ValueError:
        return None


async def _agency_filter(session: AsyncSession, principal: Principal, ref: str) -> uuid.UUID:
    column = col(Agency.id) if _as_uuid(ref) else col(Agency.code)
    value: Any = _as_uuid(ref) or ref
    found = await session.scalar(sa.select(col(Agency.id)).where(column == value))
    if found is None or not await access.may_read_agency(session, principal, found):
        raise _unknown("agency", "agency")
    return found


async def _campaign_filter(session: AsyncSession, principal: Principal, ref: str) -> uuid.UUID:
    column = col(Campaign.id) if _as_uuid(ref) else col(Campaign.code)
    value: Any = _as_uuid(ref) or ref
    found = await session.scalar(sa.select(col(Campaign.id)).where(column == value))
    if found is None or not access.may_use_campaign(principal, found):
        raise _unknown("campaign", "campaign")
    return found


async def list_all(
    session: AsyncSession,
    principal: Principal,
    *,
    since: datetime | None = None,
    agency: str | None = None,
    campaign: str | None = None,
    limit: int,
    cursor: str | None,
) -> ReportListPage:
    """Every version the caller may read, across campaigns, oldest publication first, so a
    fetcher pages forward and resumes with `since` (published after) or the last cursor.

    Who may read which report is `access.readable_reports`, as for `reference` and `latest`."""
    query = (
        access.readable_reports(principal)
        .add_columns(col(Campaign.code), col(Campaign.year))
        .join(Campaign, col(Campaign.id) == col(Report.campaign_id))
    )
    if since is not None:
        query = query.where(col(Report.published_at) > _since(since))
    if agency is not None:
        query = query.where(_covering(await _agency_filter(session, principal, agency)))
    if campaign is not None:
        query = query.where(
            col(Report.campaign_id) == await _campaign_filter(session, principal, campaign)
        )
    after = decode_cursor(cursor)
    if after is not None:
        at, last = _after(after)
        query = query.where(
            sa.tuple_(col(Report.published_at), col(Report.id))
            > sa.tuple_(sa.literal(at, timestamptz()), sa.literal(last, sa.Uuid))
        )
    query = query.order_by(col(Report.published_at), col(Report.id)).limit(limit + 1)
    rows = (await session.execute(query)).all()
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        last_report = rows[-1][0]
        next_cursor = encode_cursor(
            {"at": last_report.published_at.isoformat(), "id": str(last_report.id)}
        )
    items = [
        ReportListItem(
            **ReportSummary.model_validate(r).model_dump(),
            campaign_code=code,
            campaign_year=year,
        )
        for r, code, year in rows
    ]
    return ReportListPage(items=items, next_cursor=next_cursor)


def _utc(moment: datetime) -> datetime:
    """The moment in UTC (one without an offset is read as UTC); OverflowError past year 9999
    or before year 1 once the offset is applied."""
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    return aware.astimezone(UTC)


def _since(moment: datetime) -> datetime:
    try:
        return _utc(moment)
    except OverflowError as exc:
        detail = "The moment is outside the years 1 to 9999 in UTC."
        raise Invalid(detail, [FieldError("/query/since", detail, "out_of_range")]) from exc


def _after(key: dict[str, Any]) -> tuple[datetime, uuid.UUID]:
    try:
        at = _utc(datetime.fromisoformat(cursor_str(key, "at")))
        return at, uuid.UUID(cursor_str(key, "id"))
    except (ValueError, OverflowError) as exc:
        raise bad_cursor() from exc


# ---- renderings --------------------------------------------------------------------------------


async def cell_codes(session: AsyncSession, content: dict[str, Any]) -> dict[str, str]:
    """Codes of the agencies and sectors that key the snapshot's cells (codes never change)."""
    keys = report_files.coded_keys(content)
    codes: dict[str, str] = {}
    agencies, sectors = keys.get("agency"), keys.get("sector")
    if agencies:
        rows = await session.execute(
            sa.select(col(Agency.id), col(Agency.code)).where(col(Agency.id).in_(agencies))
        )
        codes.update({str(i): c for i, c in rows.all()})
    if sectors:
        rows = await session.execute(
            sa.select(col(Sector.id), col(Sector.code)).where(col(Sector.id).in_(sectors))
        )
        codes.update({str(i): c for i, c in rows.all()})
    return codes


# Reports never change once stored (a trigger refuses it), so each rendering is made once per
# process and kept, least recently used first out, within the byte budget of the cache
# `reports.renderings` (app/cache.py): a fetcher polling a province's report is answered from
# memory, not by decoding and re-encoding the snapshot.
RENDERINGS: Cache[tuple[uuid.UUID, str, str], bytes] = caches.named("reports.renderings", len)
_RENDERERS: dict[str, Callable[[dict[str, Any], dict[str, str] | None], bytes]] = {
    "json": report_files.to_json,
    "csv": report_files.to_csv,
    "xlsx": report_files.to_xlsx,
}


async def stored_content(session: AsyncSession, report_id: uuid.UUID) -> dict[str, Any]:
    """The snapshot a report stores, read after its reference (its access and ETag)."""
    query = sa.select(col(Report.content)).where(col(Report.id) == report_id)
    content: dict[str, Any] | None = await session.scalar(query)
    if content is None:  # pragma: no cover - the reference was just read
        raise NotFound("report")
    return content


async def rendering(session: AsyncSession, ref: ReportRef, fmt: str) -> bytes:
    """The report as `json` (canonical), `csv` or `xlsx` bytes."""
    key = (ref.id, ref.etag, fmt)
    body = RENDERINGS.get(key)
    if body is not None:
        return body
    content = await stored_content(session, ref.id)
    codes = await cell_codes(session, content) if fmt != "json" else None
    body = _RENDERERS[fmt](content, codes)
    RENDERINGS.put(key, body)
    return body
