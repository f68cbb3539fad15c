"""Who may read or change which rows: the one place that writes a visibility or ownership rule.

Every service query that returns or changes rows of a protected resource starts from a
statement made here ("the readable statement of resource X for principal P"), so a new
endpoint cannot forget the rule, and a rule changes in one place.

The rules:

- Agencies. A caller bound to an agency (an agency manager, a machine client registered for
  one agency) sees that agency and everything below it, at any date. Admins see every agency
  even when an agency is set on their account; analysts and supervisors have no agency and
  see all of them.
- Campaigns. A machine client registered for one campaign sees only that campaign; everyone
  else sees every campaign (what they see *inside* it is limited by the rules below).
- Strata, progress, frame units, dossiers and aggregates (index, rankings): the rows of the
  caller's agencies.
- Forms (submissions): the rows of the caller's agencies and campaign; a surveyor sees only
  the forms they entered themselves, and only in campaigns they are still assigned to.
- Worklists: the sampled units of the caller's agencies; a surveyor's only those of the
  agencies they are assigned to (an assignment without an agency covers the whole campaign).
- Reports: published snapshots of the campaigns the caller sees (a report is the whole
  campaign by design: it is what gets published).
- Public reports (anyone, no token): the reports of published (or archived) campaigns that
  an admin or analyst made public, or, where no one decided, those of a campaign whose scope
  covers a whole province (it names a province-level agency at the top of the tree, or leaves
  out none of the measured departments and districts in force on its map date). Public reads
  show figures only (`app.services.public` drops suppressed values, free text and contact data).
- Improvement plans and dissemination records: those of the caller's agencies and campaign;
  an agency manager writes (actions, records) only for its own subtree, the Department's
  admins and analysts for every agency. Anyone may see the status of the plans of a campaign
  with a public report (`readable_public_plans`).
- Audit events: the whole log, for holders of `audit:read` (admins and analysts).
- Field quality (flags, re-checks, observations): the forms' rule. Supervisors (who hold
  `quality:read` but not `submissions:read`) see the flags and re-check outcomes of the forms
  of their agencies, never the answers; a surveyor sees only their own forms' re-checks. A
  re-check is recorded by a holder of `rechecks:write` who can see its form; an observation is
  read by everyone with `quality:read` on its campaign (and agency, when it names one).
- Writes follow the same agency rule: a caller bound to an agency writes only rows of its
  subtree (frame units, dossiers, forms); an item naming another agency's row is refused on
  its own, with a pointer.

A row outside the caller's scope is read as if it did not exist: 404, never 403.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.errors import NotFound
from app.models.agency import Agency
from app.models.audit import AuditEvent
from app.models.campaign import (
    Campaign,
    CampaignAgency,
    CampaignState,
    CampaignSurveyor,
    FrameUnit,
    Stratum,
)
from app.models.dossier import Dossier
from app.models.event import Event
from app.models.identity import Role, Scope
from app.models.plans import DisseminationRecord, ImprovementPlan
from app.models.public import ReportPublicity
from app.models.quality import Observation, Recheck
from app.models.report import Report
from app.models.submission import Submission
from app.services import rows
from app.services.principal import Principal

_AGENCIES = Agency.metadata.tables["agencies"]


# ---- the agency tree ---------------------------------------------------------------------------


def subtree(root_id: uuid.UUID) -> sa.Select[uuid.UUID]:
    """A SELECT of the ids of `root_id` and every agency below it (any date).

    The recursive CTE is anonymous, so one statement may hold several subtrees (the caller's
    own and a filter's) without their names clashing."""
    tree = sa.select(_AGENCIES.c.id).where(_AGENCIES.c.id == root_id).cte(recursive=True)
    tree = tree.union(sa.select(_AGENCIES.c.id).join(tree, _AGENCIES.c.parent_id == tree.c.id))
    return sa.select(tree.c.id)


def subtrees(roots: sa.Select[Any]) -> sa.Select[uuid.UUID]:
    """The ids of every agency under any of `roots` (a SELECT of agency ids), roots included."""
    tree = sa.select(_AGENCIES.c.id).where(_AGENCIES.c.id.in_(roots)).cte(recursive=True)
    tree = tree.union(sa.select(_AGENCIES.c.id).join(tree, _AGENCIES.c.parent_id == tree.c.id))
    return sa.select(tree.c.id)


def covers(root: uuid.UUID | None, lineage: Iterable[str]) -> bool:
    """For trees already in memory: True when `root` is None (no limit) or is one of
    `lineage`, an agency's id followed by its ancestors' ids, as text."""
    return root is None or str(root) in lineage


def readable_root(principal: Principal) -> uuid.UUID | None:
    """The root of the subtree the caller is limited to; None when it sees every agency."""
    if principal.agency_scoped:
        return principal.agency_id
    return None


def agency_clause(principal: Principal, column: Any) -> sa.ColumnElement[bool]:
    """`column` (an agency id column of any table) holds an agency the caller may see."""
    root = readable_root(principal)
    if root is None:
        return sa.true()
    clause: sa.ColumnElement[bool] = column.in_(subtree(root))
    return clause


def readable_agencies(principal: Principal) -> sa.Select[Agency]:
    return sa.select(Agency).where(agency_clause(principal, col(Agency.id)))


async def readable_agency_ids(session: AsyncSession, principal: Principal) -> set[uuid.UUID] | None:
    """The ids the caller may see, for checks made in memory; None for every agency."""
    root = readable_root(principal)
    if root is None:
        return None
    return set((await session.scalars(subtree(root))).all())


async def may_read_agency(
    session: AsyncSession, principal: Principal, agency_id: uuid.UUID
) -> bool:
    root = readable_root(principal)
    if root is None:
        return True
    found = await session.scalar(
        sa.select(sa.literal(1)).where(sa.literal(agency_id, sa.Uuid).in_(subtree(root)))
    )
    return found is not None


async def require_agency(session: AsyncSession, principal: Principal, agency_id: uuid.UUID) -> None:
    """404, not 403, for an agency outside the caller's subtree: do not reveal that it exists."""
    if not await may_read_agency(session, principal, agency_id):
        raise NotFound("agency")


async def readable_agency_keys(
    session: AsyncSession, principal: Principal, keys: Iterable[str]
) -> set[str]:
    """Of agency ids as text (the cells of an aggregate grouped by agency), those the caller
    may see. A form counts in its agency and every agency above it, so a caller limited to a
    subtree would otherwise get cells for the agencies above its root."""
    readable = await readable_agency_ids(session, principal)
    if readable is None:
        return set(keys)
    allowed = {str(a) for a in readable}
    return {k for k in keys if k in allowed}


# Writing follows reading: an agency-bound caller changes only rows of its own subtree.
writable_agency_ids = readable_agency_ids


def agency_sql(root: uuid.UUID | None, column: str) -> tuple[str, dict[str, Any]]:
    """The agency rule for a caller limited to `root` (see `readable_root`) as SQL text, for
    statements written as text (the index's counts). `column` is the SQL expression of the
    agency id; the root is bound as the parameter `readable_root`."""
    if root is None:
        return "TRUE", {}
    return (
        f"{column} IN (WITH RECURSIVE readable(id) AS ("  # noqa: S608 - column is ours, not input
        " SELECT id FROM agencies WHERE id = :readable_root"
        " UNION SELECT a.id FROM agencies a JOIN readable r ON a.parent_id = r.id"
        ") SELECT id FROM readable)",
        {"readable_root": root},
    )


# ---- campaigns ---------------------------------------------------------------------------------


def may_use_campaign(principal: Principal | None, campaign_id: uuid.UUID) -> bool:
    """False for a client registered for another campaign. `None` is the system."""
    return principal is None or principal.campaign_id in (None, campaign_id)


def campaign_clause(principal: Principal | None, column: Any) -> sa.ColumnElement[bool]:
    if principal is None or principal.campaign_id is None:
        return sa.true()
    clause: sa.ColumnElement[bool] = column == principal.campaign_id
    return clause


def readable_campaigns(principal: Principal | None) -> sa.Select[Campaign]:
    return sa.select(Campaign).where(campaign_clause(principal, col(Campaign.id)))


async def readable_campaign(
    session: AsyncSession,
    principal: Principal | None,
    campaign_id: uuid.UUID,
    *,
    lock: bool = False,
) -> Campaign:
    """The campaign, or 404 when it does not exist or the caller may not see it."""
    query = readable_campaigns(principal).where(col(Campaign.id) == campaign_id)
    return await rows.one(session, query, "campaign", lock=lock)


async def require_campaign(
    session: AsyncSession, principal: Principal | None, campaign_id: uuid.UUID
) -> None:
    """404 unless the campaign exists and the caller may see it."""
    found = await session.scalar(
        sa.select(sa.literal(1)).where(
            col(Campaign.id) == campaign_id, campaign_clause(principal, col(Campaign.id))
        )
    )
    if found is None:
        raise NotFound("campaign")


# ---- surveyors ---------------------------------------------------------------------------------


def _assigned_campaigns(principal: Principal) -> sa.Select[uuid.UUID]:
    return sa.select(col(CampaignSurveyor.campaign_id)).where(
        col(CampaignSurveyor.user_id) == principal.id
    )


async def surveyor_agencies(
    session: AsyncSession, principal: Principal, campaign_id: uuid.UUID
) -> set[uuid.UUID] | None:
    """The agencies a surveyor may visit and enter forms for in this campaign; None for all.

    None for callers that are not surveyors. A surveyor not assigned to the campaign gets 404:
    the campaign is outside their scope. An assignment without an agency covers it all."""
    if principal.role != Role.surveyor:
        return None
    assigned = (
        await session.scalars(
            sa.select(col(CampaignSurveyor.agency_id)).where(
                col(CampaignSurveyor.campaign_id) == campaign_id,
                col(CampaignSurveyor.user_id) == principal.id,
            )
        )
    ).all()
    if not assigned:
        raise NotFound("campaign")
    if any(a is None for a in assigned):
        return None
    return {a for a in assigned if a is not None}


def assignment_clause(principal: Principal) -> sa.ColumnElement[bool]:
    """The surveyor assignments the caller may see: those of its agencies, and those without
    an agency (they cover the whole campaign, the caller's agencies included)."""
    if readable_root(principal) is None:
        return sa.true()
    return sa.or_(
        col(CampaignSurveyor.agency_id).is_(None),
        agency_clause(principal, col(CampaignSurveyor.agency_id)),
    )


# ---- strata, frame units, worklists ------------------------------------------------------------


def readable_strata(principal: Principal | None, campaign_id: uuid.UUID) -> sa.Select[Stratum]:
    """The campaign's strata the caller may see, by agency then sector (no sector first)."""
    query = sa.select(Stratum).where(col(Stratum.campaign_id) == campaign_id)
    if principal is not None:
        query = query.where(agency_clause(principal, col(Stratum.agency_id)))
    return query.order_by(col(Stratum.agency_id), col(Stratum.sector_id).nulls_first())


def strata_clause(principal: Principal, table: sa.Table) -> sa.ColumnElement[bool]:
    """The agency rule on a Core `strata` table (aggregates written in Core)."""
    return agency_clause(principal, table.c.agency_id)


async def worklist_clause(
    session: AsyncSession, principal: Principal, campaign_id: uuid.UUID
) -> sa.ColumnElement[bool]:
    """The frame units of a campaign's worklist the caller may see (surveyors: 404 when not
    assigned to the campaign)."""
    allowed = await surveyor_agencies(session, principal, campaign_id)
    clause = agency_clause(principal, col(FrameUnit.agency_id))
    if allowed is not None:
        clause = sa.and_(clause, col(FrameUnit.agency_id).in_(allowed))
    return clause


# ---- dossiers ---------------------------------------------------------------------------------


def readable_dossiers(principal: Principal) -> sa.Select[Dossier]:
    return sa.select(Dossier).where(agency_clause(principal, col(Dossier.agency_id)))


# ---- forms -------------------------------------------------------------------------------------


def _submission_clauses(principal: Principal) -> list[sa.ColumnElement[bool]]:
    clauses: list[sa.ColumnElement[bool]] = []
    if readable_root(principal) is not None:
        clauses.append(agency_clause(principal, col(Submission.agency_id)))
    if principal.campaign_id is not None:
        clauses.append(col(Submission.campaign_id) == principal.campaign_id)
    if principal.role == Role.surveyor:
        clauses.append(col(Submission.surveyor_id) == principal.id)
        clauses.append(col(Submission.campaign_id).in_(_assigned_campaigns(principal)))
    return clauses


def may_correct(principal: Principal, submission: Submission) -> bool:
    """Only the surveyor who entered a form may correct it (before review)."""
    return submission.surveyor_id is not None and submission.surveyor_id == principal.id


def readable_submissions(principal: Principal) -> sa.Select[Submission]:
    return sa.select(Submission).where(*_submission_clauses(principal))


def quality_submissions(principal: Principal) -> sa.Select[Submission]:
    """The forms whose flags, states and re-checks a caller may read: the forms' own rule.
    (The quality endpoints return flags and facts, never answers.)"""
    return readable_submissions(principal)


def readable_rechecks(principal: Principal) -> sa.Select[Recheck]:
    """Re-checks of the forms the caller may see."""
    return (
        sa.select(Recheck)
        .join(Submission, col(Submission.id) == col(Recheck.submission_id))
        .where(*_submission_clauses(principal))
    )


def readable_observations(principal: Principal) -> sa.Select[Observation]:
    """Observations of the campaigns the caller sees; one naming an agency, within the
    caller's agencies."""
    clauses = [campaign_clause(principal, col(Observation.campaign_id))]
    if readable_root(principal) is not None:
        clauses.append(
            sa.or_(
                col(Observation.agency_id).is_(None),
                agency_clause(principal, col(Observation.agency_id)),
            )
        )
    return sa.select(Observation).where(*clauses)


# ---- reports and the audit log -----------------------------------------------------------------


def readable_reports(principal: Principal) -> sa.Select[Report]:
    return sa.select(Report).where(campaign_clause(principal, col(Report.campaign_id)))


def province_wide(campaign_id: Any, map_date: Any) -> sa.ColumnElement[bool]:
    """The campaign's scope is the whole province: it names a province-level agency at the
    top of the tree, or it leaves out none of the measured departments and districts in force
    on its map date (as the demo campaigns do). `campaign_id` and `map_date` are columns (or
    values) of the enclosing statement; every subquery here correlates to it explicitly."""
    scope = (
        sa.select(col(CampaignAgency.agency_id))
        .where(col(CampaignAgency.campaign_id) == campaign_id)
        .correlate_except(CampaignAgency)
    )
    names_root = sa.exists(
        sa.select(sa.literal(1))
        .select_from(CampaignAgency)
        .join(Agency, col(Agency.id) == col(CampaignAgency.agency_id))
        .where(
            col(CampaignAgency.campaign_id) == campaign_id,
            col(Agency.level) == "province",
            col(Agency.parent_id).is_(None),
        )
        .correlate_except(CampaignAgency, Agency)
    )
    left_out = sa.exists(
        sa.select(sa.literal(1))
        .select_from(Agency)
        .where(
            col(Agency.is_measured),
            col(Agency.kind) != "participant",
            col(Agency.level).in_(("department", "district")),
            col(Agency.valid_from) <= map_date,
            sa.or_(col(Agency.valid_to).is_(None), col(Agency.valid_to) >= map_date),
            col(Agency.id).not_in(scope),
        )
        .correlate_except(Agency)
    )
    return sa.or_(names_root, sa.and_(sa.exists(scope), ~left_out))


def public_clause() -> sa.ColumnElement[bool]:
    """For a statement over `reports` joined to `campaigns` and outer-joined to
    `report_publicity`: the report is public (see the module's rules)."""
    return sa.and_(
        col(Campaign.state).in_([CampaignState.published, CampaignState.archived]),
        sa.func.coalesce(
            col(ReportPublicity.is_public),
            province_wide(col(Report.campaign_id), col(Campaign.map_date)),
        ),
    )


def readable_public_reports() -> sa.Select[Report]:
    """The reports an anonymous caller may read (the public site and `/public/v1`)."""
    return (
        sa.select(Report)
        .join(Campaign, col(Campaign.id) == col(Report.campaign_id))
        .outerjoin(ReportPublicity, col(ReportPublicity.report_id) == col(Report.id))
        .where(public_clause())
    )


def readable_plans(principal: Principal) -> sa.Select[ImprovementPlan]:
    """Improvement plans of the caller's agencies (and campaign, for a bound client)."""
    return sa.select(ImprovementPlan).where(
        agency_clause(principal, col(ImprovementPlan.agency_id)),
        campaign_clause(principal, col(ImprovementPlan.campaign_id)),
    )


def readable_dissemination(principal: Principal) -> sa.Select[DisseminationRecord]:
    return sa.select(DisseminationRecord).where(
        agency_clause(principal, col(DisseminationRecord.agency_id)),
        campaign_clause(principal, col(DisseminationRecord.campaign_id)),
    )


def readable_public_plans() -> sa.Select[ImprovementPlan]:
    """Plans an anonymous caller may know the status of: those of campaigns with a public
    report (the public site shows their status and targets, never the actions' text)."""
    public_campaigns = readable_public_reports().with_only_columns(col(Report.campaign_id))
    return sa.select(ImprovementPlan).where(col(ImprovementPlan.campaign_id).in_(public_campaigns))


# Plans and dissemination records are written under the reading rule: a row the caller cannot
# read is one it cannot change (404), and a new record must name an agency it may read.
writable_plans = readable_plans
writable_dissemination = readable_dissemination


def readable_audit_events(principal: Principal) -> sa.Select[AuditEvent]:
    """The whole log for holders of `audit:read` (the route already demands it), none of it
    for anyone else."""
    query = sa.select(AuditEvent)
    if not principal.has(Scope.audit_read):
        query = query.where(sa.false())
    return query


# ---- events and webhook subscriptions ----------------------------------------------------------


def event_clauses(principal: Principal) -> list[sa.ColumnElement[bool]]:
    """Events the caller may read: of its agency subtree (an event without an agency, such as a
    campaign's transition, only for callers that see every agency) and of its campaign."""
    return [
        agency_clause(principal, col(Event.agency_id)),
        campaign_clause(principal, col(Event.campaign_id)),
    ]


def readable_events(principal: Principal) -> sa.Select[Event]:
    return sa.select(Event).where(*event_clauses(principal))


async def agency_within(session: AsyncSession, root: uuid.UUID, agency_id: uuid.UUID) -> bool:
    """Whether `agency_id` lies in `root`'s subtree (a webhook's agency filter within the
    client's own binding)."""
    found = await session.scalar(
        sa.select(sa.literal(1)).where(sa.literal(agency_id, sa.Uuid).in_(subtree(root)))
    )
    return found is not None


async def subtree_set(session: AsyncSession, root: uuid.UUID) -> frozenset[uuid.UUID]:
    """`root` and every agency below it, in memory (a subscription's agency filter, matched
    against a batch of events)."""
    return frozenset((await session.scalars(subtree(root))).all())
