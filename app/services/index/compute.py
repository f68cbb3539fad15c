"""The campaign index: counts from SQL (`counts`), formulas in Python (`formulas`), assembled
into the tree the API shows (overall → pillars → elements → criteria) for every cell."""

from __future__ import annotations

import math
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Literal

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.errors import FieldError, Invalid
from app.models.agency import Agency, AgencyLevel
from app.models.campaign import Campaign, CampaignState
from app.models.catalogue import Procedure, Sector
from app.models.index import (
    Cell,
    DossierScores,
    Figure,
    IndexNode,
    IndexResult,
    ItemResult,
    OptionShare,
)
from app.models.questionnaire import Questionnaire
from app.services import access, instrument
from app.services.index import cache, rollups
from app.services.index import counts as sql
from app.services.index import formulas as fx
from app.services.principal import Principal

Aggregate = Literal["pooled", "unit_mean"]
OVERALL = "overall"


@dataclass(frozen=True, slots=True)
class Plan:
    """What to count for one questionnaire."""

    q: instrument.Questionnaire
    structure: fx.Structure | None
    criteria: tuple[str, ...]
    single: tuple[str, ...]  # perception/expectation items with one answer
    multiple: tuple[str, ...]  # multiple-choice perception/expectation items
    indicators: tuple[str, ...]  # dossier-rating indicators
    positives: dict[str, tuple[str, ...]]

    @classmethod
    def of(cls, q: instrument.Questionnaire) -> Plan:
        structure = (
            fx.Structure.from_questionnaire(q) if q.index is not None and q.elements else None
        )
        criteria = tuple(i for e in structure.elements for i in e.criteria) if structure else ()
        single: list[str] = []
        multiple: list[str] = []
        indicators: list[str] = []
        positives: dict[str, tuple[str, ...]] = {}
        for _, item in instrument.iter_items(q):
            positive = instrument.positive_set_of(item)
            if positive is not None:
                positives[item.id] = tuple(sorted(str(c) for c in positive))
            if item.role is instrument.Role.dossier_indicator:
                indicators.append(item.id)
            elif item.role in (instrument.Role.perception, instrument.Role.expectation):
                if item.type is instrument.ItemType.multiple_choice:
                    multiple.append(item.id)
                elif item.type is not instrument.ItemType.free_text:
                    single.append(item.id)
        return cls(
            q, structure, criteria, tuple(single), tuple(multiple), tuple(indicators), positives
        )

    @property
    def counted(self) -> list[str]:
        return [*self.criteria, *self.single, *self.multiple, *self.indicators]


def item_counts(plan: Plan, cell: sql.CellCounts, item: str, weighted: bool) -> fx.ItemCounts:
    per_code = cell.answers.get(item, {})
    k = 1 if weighted else 0
    if item in plan.multiple:
        answered = per_code.get("__answered__", (0, 0.0, 0.0))
        n_valid = answered[k]
        chosen = {code: v[k] for code, v in cell.choices.get(item, {}).items()}
        return fx.ItemCounts(float(n_valid), 0.0, chosen)
    by_level = {code: float(v[k]) for code, v in per_code.items() if code != "__answered__"}
    positive = set(plan.positives.get(item, ()))
    n_positive = math.fsum(v for code, v in by_level.items() if code in positive)
    return fx.ItemCounts(math.fsum(by_level.values()), n_positive, by_level)


def effective_n(cell: sql.CellCounts, item: str) -> float | None:
    per_code = cell.answers.get(item, {})
    return fx.effective_n(
        math.fsum(v[1] for v in per_code.values()), math.fsum(v[2] for v in per_code.values())
    )


def _figure(e: fx.Estimate) -> Figure:
    """The API form of an estimate: suppression applied, full-precision numbers beside their
    2-decimal display strings."""
    published = fx.publish(e)
    low, high = (None, None) if published.interval is None else published.interval
    return Figure(
        value=published.value,
        value_display=fx.display_text(published.value),
        exact=published.value,
        ci_low=low,
        ci_low_display=fx.display_text(low),
        ci_high=high,
        ci_high_display=fx.display_text(high),
        n=e.n_respondents,
        low_reliability=e.low_reliability,
        suppressed=e.suppressed,
    )


def _valid_answers(cell: sql.CellCounts, item: str) -> int:
    """The number of valid answers to an item (unweighted), as `n` reports it."""
    per_code = cell.answers.get(item, {})
    if "__answered__" in per_code:
        return per_code["__answered__"][0]
    return sum(v[0] for v in per_code.values())


def _level_counts(cell: sql.CellCounts, item: str) -> dict[str, int]:
    per_code = cell.answers.get(item, {})
    return {code: v[0] for code, v in sorted(per_code.items()) if code != "__answered__"}


@dataclass(slots=True)
class CellWork:
    key: str
    counts: sql.CellCounts
    items: dict[str, fx.ItemCounts]
    coefs: fx.Coefficients | None
    own: dict[str, float | None] | None = None  # unit_mean replacements: node id → value


def _composites(coefs: fx.Coefficients) -> dict[str, fx.Coefs | None]:
    return {**coefs.elements, **coefs.pillars, OVERALL: coefs.overall}


def _tree(
    plan: Plan, work: CellWork, z2: Mapping[tuple[str, str], float], weighted: bool
) -> IndexNode | None:
    structure, q = plan.structure, plan.q
    if structure is None or work.coefs is None:
        return None
    thresholds = q.thresholds
    n = work.counts.respondents
    composites = _composites(work.coefs)
    items = instrument.item_index(q)

    def composite(node_id: str) -> fx.Estimate:
        if work.own is not None:
            return fx.estimate(work.own.get(node_id), None, n, thresholds)
        coefs = composites.get(node_id)
        if coefs is None:
            return fx.estimate(None, None, n, thresholds)
        value = fx.composite_value(coefs, work.items)
        total = z2.get((work.key, node_id))
        interval = None
        if total is not None and n >= 2:
            se = 100.0 * math.sqrt(max(0.0, n / (n - 1) * total))
            interval = fx.composite_interval(value, se)
        return fx.estimate(value, interval, n, thresholds)

    def criterion(item_id: str) -> IndexNode:
        c = work.items.get(item_id, fx.ItemCounts(0.0))
        if work.own is not None:
            e = fx.estimate(work.own.get(item_id), None, n, thresholds)
        else:
            n_eff = effective_n(work.counts, item_id) if weighted else None
            e = fx.criterion_estimate(c, n, thresholds, n_effective=n_eff)
        figure = _figure(e)
        item = items[item_id]
        return IndexNode(
            **figure.model_dump(exclude={"n", "n_weighted"}),
            n=_valid_answers(work.counts, item_id),
            n_weighted=c.n_valid if weighted else None,
            id=item_id,
            kind="criterion",
            label_vi=item.label_vi,
            label_en=item.label_en,
            counts=None if e.suppressed else _level_counts(work.counts, item_id),
            counts_weighted=(
                dict(sorted(c.by_level.items())) if weighted and not e.suppressed else None
            ),
        )

    def element(e: fx.ElementSpec) -> IndexNode:
        spec = next(x for x in q.elements if x.id == e.id)
        return IndexNode(
            **_figure(composite(e.id)).model_dump(),
            id=e.id,
            kind="element",
            label_vi=spec.label_vi,
            label_en=spec.label_en,
            children=[criterion(i) for i in e.criteria],
        )

    if structure.pillars:
        children = []
        for p in structure.pillars:
            spec = next(x for x in q.pillars if x.id == p.id)
            children.append(
                IndexNode(
                    **_figure(composite(p.id)).model_dump(),
                    id=p.id,
                    kind="pillar",
                    label_vi=spec.label_vi,
                    label_en=spec.label_en,
                    children=[element(structure.element(k)) for k in p.elements],
                )
            )
    else:
        children = [element(e) for e in structure.elements]
    return IndexNode(
        **_figure(composite(OVERALL)).model_dump(),
        id=OVERALL,
        kind="overall",
        label_vi="Chỉ số SIPAS",
        label_en="SIPAS index",
        children=children,
    )


def _items(plan: Plan, work: CellWork, weighted: bool) -> list[ItemResult]:
    q, n = plan.q, work.counts.respondents
    index = instrument.item_index(q)
    out = []
    for item_id in (*plan.single, *plan.multiple):
        item = index[item_id]
        c = work.items.get(item_id, fx.ItemCounts(0.0))
        suppressed = fx.small_cell_flags(n, q.thresholds)[1]
        figure = None
        if item_id in plan.positives and item_id not in plan.multiple:
            n_eff = effective_n(work.counts, item_id) if weighted else None
            figure = _figure(fx.criterion_estimate(c, n, q.thresholds, n_effective=n_eff))
            # A share's n is its valid answers, as for criteria; the flags stay the cell's.
            figure = figure.model_copy(
                update={
                    "n": _valid_answers(work.counts, item_id),
                    "n_weighted": c.n_valid if weighted else None,
                }
            )
        raw = (
            {code: v[0] for code, v in work.counts.choices.get(item_id, {}).items()}
            if item_id in plan.multiple
            else _level_counts(work.counts, item_id)
        )
        options = []
        for option in instrument.options_of(item):
            count = c.by_level.get(str(option.code), 0.0)
            exact = None if suppressed else fx.share(count, c.n_valid)
            options.append(
                OptionShare(
                    code=str(option.code),
                    label_vi=option.label_vi,
                    label_en=option.label_en,
                    value=exact,
                    share=fx.display_text(exact),
                    exact=exact,
                    count=None if suppressed else raw.get(str(option.code), 0),
                    count_weighted=count if weighted and not suppressed else None,
                )
            )
        out.append(
            ItemResult(
                id=item_id,
                role=item.role.value,
                label_vi=item.label_vi,
                label_en=item.label_en,
                index=figure,
                options=options,
            )
        )
    return out


def _dossier(plan: Plan, work: CellWork, totals: Mapping[int, int]) -> DossierScores | None:
    q = plan.q
    if not plan.indicators or q.dossier_scoring is None:
        return None
    index = instrument.item_index(q)
    suppressed = fx.small_cell_flags(work.counts.respondents, q.thresholds)[1]
    summary = fx.dossier_summary(dict(totals), q.dossier_scoring.bands)
    indicators: dict[str, float | None] = {}
    for item_id in plan.indicators:
        c = work.items.get(item_id, fx.ItemCounts(0.0))
        points = math.fsum(
            instrument.option_points(index[item_id], _code(code)) * v
            for code, v in c.by_level.items()
        )
        mean = fx.indicator_mean(points, c.n_valid)
        indicators[item_id] = None if suppressed else mean
    mean_total = None if suppressed else summary.mean_total
    return DossierScores(
        mean_total=mean_total,
        mean_total_display=fx.display_text(mean_total),
        mean_total_exact=mean_total,
        indicators_display={k: fx.display_text(v) for k, v in indicators.items()},
        rated=int(summary.n_dossiers),
        bands={} if suppressed else {k: int(v) for k, v in summary.per_band.items()},
        indicators=indicators,
    )


def _code(text: str) -> int | str:
    return int(text) if text.lstrip("-").isdigit() else text


async def _labels(
    session: AsyncSession, group_by: str, q: instrument.Questionnaire, keys: Sequence[str]
) -> dict[str, str]:
    ids = [uuid.UUID(k) for k in keys if _is_uuid(k)]
    if group_by in ("agency", "unit"):
        rows = await session.execute(
            sa.select(col(Agency.id), col(Agency.name)).where(col(Agency.id).in_(ids))
        )
        return {str(i): n for i, n in rows.all()}
    if group_by == "level":
        levels = await session.execute(sa.select(col(AgencyLevel.code), col(AgencyLevel.name_vi)))
        return {str(code): str(name) for code, name in levels.all()}
    if group_by == "sector":
        rows = await session.execute(
            sa.select(col(Sector.id), col(Sector.name_vi)).where(col(Sector.id).in_(ids))
        )
        return {str(i): n for i, n in rows.all()}
    if group_by == "procedure":
        rows = await session.execute(
            sa.select(col(Procedure.id), col(Procedure.name)).where(col(Procedure.id).in_(ids))
        )
        return {str(i): n for i, n in rows.all()}
    if group_by.startswith(sql.ITEM_PREFIX):
        item = instrument.item_index(q).get(group_by[len(sql.ITEM_PREFIX) :])
        if item is not None:
            return {str(o.code): o.label_vi for o in instrument.options_of(item)}
    return {}


def _is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


async def _works(
    session: AsyncSession,
    plan: Plan,
    campaign: Campaign,
    group_by: str,
    f: sql.Filters,
    weighted: bool,
    source: rollups.Source | None = None,
) -> tuple[dict[str, CellWork], dict[tuple[str, str], float]]:
    """Every cell's counts and Σ z² per composite: from the roll-ups when `source` is given
    (see `rollups.load`), otherwise from the forms."""
    from_rollups = source.cells(group_by, f) if source is not None else None
    if from_rollups is not None:
        cells = {key: c.counts for key, c in from_rollups.items()}
    else:
        cells = await sql.count_cells(
            session,
            campaign.id,
            group_by,
            f,
            weighted=weighted,
            items=plan.counted,
            multiple_choice=plan.multiple,
        )
    works: dict[str, CellWork] = {}
    terms: list[sql.Term] = []
    composites: list[tuple[str, str, Mapping[str, float], Mapping[str, fx.ItemCounts]]] = []
    for key, counts in cells.items():
        items = {i: item_counts(plan, counts, i, weighted) for i in plan.counted}
        coefs = None
        if plan.structure is not None:
            non_null = [i for i in plan.criteria if items[i].n_valid > 0]
            coefs = fx.coefficients(plan.structure, non_null)
            for comp, cs in _composites(coefs).items():
                used = {item: c for item, c in (cs or {}).items() if c}
                if used:
                    composites.append((key, comp, used, items))
                for item, c in used.items():
                    counts_i = items[item]
                    terms.append(
                        sql.Term(
                            key,
                            comp,
                            item,
                            c / counts_i.n_valid,
                            counts_i.n_positive / counts_i.n_valid,
                        )
                    )
        works[key] = CellWork(key, counts, items, coefs)
    if from_rollups is not None:
        return works, rollups.sum_z_squared(from_rollups, composites)
    z2 = await sql.sum_z_squared(
        session,
        campaign.id,
        group_by,
        f,
        weighted=weighted,
        terms=terms,
        positives={i: plan.positives[i] for i in plan.criteria if i in plan.positives},
    )
    return works, z2


async def _unit_means(
    session: AsyncSession,
    plan: Plan,
    campaign: Campaign,
    group_by: str,
    f: sql.Filters,
    works: dict[str, CellWork],
    weighted: bool,
    source: rollups.Source | None,
) -> None:
    """Section 2.8 `unit_mean`: a cell's figures are the mean of its units' own figures (units =
    agencies with forms of their own). Intervals are not defined for these means."""
    if plan.structure is None:
        return
    units, _ = await _works(session, plan, campaign, "unit", f, weighted, source)
    own: dict[str, fx.Indices] = {
        key: fx.compute_indices(plan.structure, w.items) for key, w in units.items()
    }
    if source is not None:
        parent, level = source.parent, source.level
    else:
        agencies = (
            await session.execute(
                sa.select(col(Agency.id), col(Agency.parent_id), col(Agency.level))
            )
        ).all()
        parent = {str(a): str(p) if p else None for a, p, _ in agencies}
        level = {str(a): str(lv) for a, _, lv in agencies}

    def members(cell: str) -> list[str]:
        if group_by == "none":
            return list(own)
        if group_by == "level":
            return [u for u in own if level.get(u) == cell]
        out = []
        for u in own:  # agency: the units in the cell's subtree
            node: str | None = u
            while node is not None:
                if node == cell:
                    out.append(u)
                    break
                node = parent.get(node)
        return out

    for key, work in works.items():
        chosen = [own[u] for u in members(key)]
        values: dict[str, float | None] = {
            OVERALL: fx.unit_mean(i.overall for i in chosen),
        }
        for e in plan.structure.elements:
            values[e.id] = fx.unit_mean(i.elements[e.id] for i in chosen)
            for c in e.criteria:
                values[c] = fx.unit_mean(i.criteria[c] for i in chosen)
        for p in plan.structure.pillars:
            values[p.id] = fx.unit_mean(i.pillars[p.id] for i in chosen)
        work.own = values


async def campaign_index(
    session: AsyncSession,
    principal: Principal,
    campaign_id: uuid.UUID,
    *,
    group_by: str = "none",
    filters: sql.Filters = sql.Filters(),
    aggregate: Aggregate = "pooled",
    weighted: bool = False,
) -> IndexResult:
    campaign = await access.readable_campaign(session, principal, campaign_id)
    await sql.custom_plans(session)
    row = await session.get(Questionnaire, campaign.questionnaire_id)
    if row is None:  # pragma: no cover - a foreign key guarantees it
        raise Invalid("The campaign has no questionnaire.")
    plan = Plan.of(instrument.parsed(row))
    sql.cell_sql(group_by)  # refuses an unknown breakdown before any work
    if aggregate == "unit_mean" and group_by not in ("none", "agency", "level"):
        raise Invalid(
            "unit_mean averages agencies: use it with group_by none, agency or level.",
            [FieldError("/query/aggregate", "needs group_by none, agency or level")],
        )
    if weighted and await sql.unweighted_forms(session, campaign.id):
        raise sql.weights_unavailable()
    filters = replace(filters, readable_root=access.readable_root(principal))
    cacheable = (
        CampaignState(campaign.state) is not CampaignState.draft
        and row.frozen_at is not None
        and not weighted
    )
    rollup_version = await rollups.version(session, campaign.id)
    key: tuple[object, ...] = ()
    if cacheable:
        key = (
            campaign.id,
            await cache.fingerprint(session, campaign.id, rollup_version),
            group_by,
            filters,
            aggregate,
        )
        hit = cache.get(key)
        if hit is not None:
            return hit

    source = (
        await rollups.load(session, campaign.id, group_by, weighted)
        if rollup_version is not None
        else None
    )
    totals, total_z2 = await _works(session, plan, campaign, "none", filters, weighted, source)
    groups, groups_z2 = (
        ({}, {})
        if group_by == "none"
        else await _works(session, plan, campaign, group_by, filters, weighted, source)
    )
    if group_by == "agency":
        keep = await access.readable_agency_keys(session, principal, groups)
        groups = {k: w for k, w in groups.items() if k in keep}
    if aggregate == "unit_mean":
        await _unit_means(session, plan, campaign, "none", filters, totals, weighted, source)
        if group_by != "none":
            await _unit_means(session, plan, campaign, group_by, filters, groups, weighted, source)
    dossiers_total: dict[str, dict[int, int]] = {}
    dossiers_groups: dict[str, dict[int, int]] = {}
    if plan.indicators and source is not None:
        dossiers_total = {k: c.totals for k, c in source.cells("none", filters).items()}
        if group_by != "none":
            dossiers_groups = {k: c.totals for k, c in source.cells(group_by, filters).items()}
    elif plan.indicators:
        points = rollups.Spec.of(plan.q).points  # the same points the roll-ups add up
        dossiers_total = await sql.dossier_totals(session, campaign.id, "none", filters, points)
        if group_by != "none":
            dossiers_groups = await sql.dossier_totals(
                session, campaign.id, group_by, filters, points
            )
    labels = await _labels(session, group_by, plan.q, list(groups))

    def cell(
        work: CellWork, z2: Mapping[tuple[str, str], float], label: str, dossier: Mapping[int, int]
    ) -> Cell:
        low, suppressed = fx.small_cell_flags(work.counts.respondents, plan.q.thresholds)
        return Cell(
            key=work.key,
            label=label,
            n_respondents=work.counts.respondents,
            low_reliability=low,
            suppressed=suppressed,
            index=_tree(plan, work, z2, weighted),
            items=_items(plan, work, weighted),
            dossier=_dossier(plan, work, dossier),
        )

    # With no valid forms yet, the tree is still there, every figure null.
    no_forms = fx.coefficients(plan.structure, []) if plan.structure is not None else None
    empty = CellWork("all", sql.CellCounts(), {}, no_forms)
    total_work = totals.get("all", empty)
    total = cell(total_work, total_z2, campaign.name, dossiers_total.get("all", {}))
    ordered = sorted(groups.values(), key=lambda w: (labels.get(w.key, w.key), w.key))
    result = IndexResult(
        campaign_id=campaign.id,
        campaign_code=campaign.code,
        questionnaire_code=plan.q.code,
        questionnaire_version=row.version,
        method=plan.q.method,
        provisional=CampaignState(campaign.state) in (CampaignState.draft, CampaignState.open),
        group_by=group_by,
        aggregate=aggregate,
        weighted=weighted,
        filters={
            k: str(v) for k, v in asdict(filters).items() if v is not None and k != "readable_root"
        },
        thresholds={
            "low_reliability_below": plan.q.thresholds.low_reliability_below,
            "suppress_below": plan.q.thresholds.suppress_below,
        },
        total=total,
        groups=[
            cell(w, groups_z2, labels.get(w.key, w.key), dossiers_groups.get(w.key, {}))
            for w in ordered
        ],
    )
    if cacheable:
        cache.put(key, result)
    return result
