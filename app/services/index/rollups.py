"""Index roll-ups: the counts of a campaign's valid forms per agency, kept by the database.

Why: an index read that scans every form grows with the forms (seconds at 100k, minutes at
millions). The counts the formulas need are sums over forms, so they can be kept per agency and
added up per reporting cell at read time; the read then grows with the agencies, not the forms.

Rules:
- Statement triggers on `submissions` (migration 0008) add the contribution of every valid row
  written and subtract that of every valid row removed or changed, in the writing transaction:
  whoever writes a form (the API, an import, the demo seed, plain SQL) keeps the counts right,
  and a crash loses both or neither.
- The triggers only count for campaigns listed in `index_rollup_states`. `install` lists a
  campaign (with what the triggers need of its questionnaire) and recounts it from its forms,
  under the same lock the triggers take; campaigns are installed when they open, by `sipas
  migrate` for older ones, and by the demo seed. An uninstalled campaign is read from its forms.
- Pair counts (criteria i < j answered together, each satisfied, both satisfied) are the
  sufficient statistics of the linearised interval (method 2.10, `formulas.composite_se`).
- Only unweighted reads by agency, unit, level or the whole campaign, filtered at most by an
  agency subtree or a level, read roll-ups; other breakdowns and weighted results read forms.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.models.agency import Agency
from app.models.campaign import Campaign, CampaignState
from app.models.questionnaire import Questionnaire
from app.services import access, instrument
from app.services.index import formulas as fx
from app.services.index.counts import CellCounts, Filters

MAX_CRITERIA = 63  # bit positions of a bigint mask
GROUPINGS = frozenset({"none", "agency", "unit", "level"})


@dataclass(frozen=True, slots=True)
class Spec:
    """What the triggers need of a questionnaire."""

    criteria: tuple[str, ...]
    positives: Mapping[str, tuple[str, ...]]
    points: Mapping[str, Mapping[str, int]]

    @classmethod
    def of(cls, q: instrument.Questionnaire) -> Spec:
        criteria: tuple[str, ...] = ()
        if q.index is not None and q.elements:
            structure = fx.Structure.from_questionnaire(q)
            criteria = tuple(i for e in structure.elements for i in e.criteria)
        index = instrument.item_index(q)
        positives = {}
        for item_id in criteria:
            chosen = instrument.positive_set_of(index[item_id])
            positives[item_id] = tuple(sorted(str(c) for c in chosen or ()))
        points = {
            item.id: {
                str(o.code): instrument.option_points(item, o.code)
                for o in instrument.options_of(item)
            }
            for _, item in instrument.iter_items(q)
            if item.role is instrument.Role.dossier_indicator
        }
        return cls(criteria, positives, points)


async def install(session: AsyncSession, campaign_id: uuid.UUID) -> bool:
    """List the campaign for roll-ups and count its forms; False when it cannot have them
    (more criteria than a mask holds). Idempotent: an installed campaign is left as it is."""
    installed = await session.scalar(
        sa.text("SELECT 1 FROM index_rollup_states WHERE campaign_id = :c"), {"c": campaign_id}
    )
    if installed:
        return True
    row = await session.scalar(
        sa.select(Questionnaire)
        .join(Campaign, col(Campaign.questionnaire_id) == col(Questionnaire.id))
        .where(col(Campaign.id) == campaign_id)
    )
    if row is None:
        return False
    spec = Spec.of(instrument.parsed(row))
    if len(spec.criteria) > MAX_CRITERIA:
        return False
    items = [
        {"c": campaign_id, "item": i, "pos": pos, "positives": list(spec.positives[i])}
        for pos, i in enumerate(spec.criteria)
    ]
    indicators = [{"c": campaign_id, "item": i, "points": dict(p)} for i, p in spec.points.items()]
    # A concurrent install of the same campaign waits here, then finds the row and stops.
    created = await session.scalar(
        sa.text(
            "INSERT INTO index_rollup_states (campaign_id) VALUES (:c)"
            " ON CONFLICT DO NOTHING RETURNING 1"
        ),
        {"c": campaign_id},
    )
    if not created:
        return True
    await session.execute(
        sa.text("DELETE FROM index_rollup_items WHERE campaign_id = :c"), {"c": campaign_id}
    )
    if items:
        await session.execute(
            sa.text(
                "INSERT INTO index_rollup_items (campaign_id, item, pos, positives)"
                " VALUES (:c, :item, :pos, :positives)"
            ),
            items,
        )
    if indicators:
        await session.execute(
            sa.text(
                "INSERT INTO index_rollup_items (campaign_id, item, points)"
                " VALUES (:c, :item, CAST(:points AS jsonb))"
            ).bindparams(sa.bindparam("points", type_=sa.JSON)),
            indicators,
        )
    await rebuild(session, campaign_id)
    return True


async def install_missing(session: AsyncSession) -> list[uuid.UUID]:
    """Install every opened campaign that has no roll-ups yet (after an upgrade, a seed)."""
    missing = (
        await session.scalars(
            sa.select(col(Campaign.id)).where(
                col(Campaign.state) != CampaignState.draft,
                sa.text(
                    "NOT EXISTS (SELECT 1 FROM index_rollup_states st"
                    " WHERE st.campaign_id = campaigns.id)"
                ),
            )
        )
    ).all()
    return [c for c in missing if await install(session, c)]


async def rebuild(session: AsyncSession, campaign_id: uuid.UUID) -> None:
    """Recount an installed campaign from its forms."""
    await session.execute(sa.text("SELECT index_rollups_rebuild(:c)"), {"c": campaign_id})


async def version(session: AsyncSession, campaign_id: uuid.UUID) -> int | None:
    """The roll-ups' version (it moves on every change), or None when not installed."""
    value = await session.scalar(
        sa.text("SELECT version FROM index_rollup_states WHERE campaign_id = :c"),
        {"c": campaign_id},
    )
    return None if value is None else int(value)


Row = tuple[str, str, str, str, int, int, int, int]  # agency, kind, item, other, n, s1, s2, s12


async def _rows(session: AsyncSession, campaign_id: uuid.UUID) -> list[Row]:
    result = await session.execute(
        sa.text(
            "SELECT agency_id::text, kind, item, other, n, s1, s2, s12 FROM index_rollups"
            " WHERE campaign_id = :c AND (n <> 0 OR s1 <> 0 OR s2 <> 0 OR s12 <> 0)"
        ),
        {"c": campaign_id},
    )
    return [(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7]) for r in result.all()]


async def discrepancies(session: AsyncSession, campaign_id: uuid.UUID) -> list[str]:
    """Every count that differs from a recount of the raw forms (empty when all agree).

    The recount runs in a savepoint that is rolled back, so the stored counts are untouched."""
    stored = {r[:4]: r[4:] for r in await _rows(session, campaign_id)}
    async with session.begin_nested() as savepoint:
        await rebuild(session, campaign_id)
        recounted = {r[:4]: r[4:] for r in await _rows(session, campaign_id)}
        await savepoint.rollback()
    return [
        f"{key}: stored {stored.get(key)}, recounted {recounted.get(key)}"
        for key in sorted(stored.keys() | recounted.keys())
        if stored.get(key) != recounted.get(key)
    ]


@dataclass(slots=True)
class _Unit:
    """One agency's counts."""

    respondents: int = 0
    answers: dict[str, dict[str, int]] = field(default_factory=dict)
    choices: dict[str, dict[str, int]] = field(default_factory=dict)
    pairs: dict[tuple[str, str], tuple[int, int, int, int]] = field(default_factory=dict)
    totals: dict[int, int] = field(default_factory=dict)


@dataclass(slots=True)
class Cell:
    """A reporting cell's counts, summed over its agencies."""

    counts: CellCounts
    pairs: dict[tuple[str, str], fx.PairCounts]
    totals: dict[int, int]
    sums: dict[tuple[str, str], list[int]] = field(default_factory=dict)  # pairs being summed


@dataclass(slots=True)
class Source:
    """A campaign's roll-ups as read in one statement, and the agency map to place them."""

    units: dict[str, _Unit]
    parent: dict[str, str | None]
    level: dict[str, str]
    # One read asks for the same cells more than once (the tree, then the dossier totals).
    _made: dict[tuple[str, Filters], dict[str, Cell]] = field(default_factory=dict)

    def _ancestors(self, agency: str) -> Iterable[str]:
        node: str | None = agency
        seen = 0
        while node is not None and seen <= len(self.parent):
            yield node
            node = self.parent.get(node)
            seen += 1

    def _keys(self, agency: str, group_by: str) -> Iterable[str]:
        if group_by == "none":
            return ("all",)
        if group_by == "unit":
            return (agency,)
        if group_by == "level":
            return (self.level.get(agency, ""),)
        return self._ancestors(agency)  # agency: the subtree roll-up

    def cells(self, group_by: str, f: Filters) -> dict[str, Cell]:
        made = self._made.get((group_by, f))
        if made is not None:
            return made
        out: dict[str, Cell] = self._made.setdefault((group_by, f), {})
        for agency, unit in self.units.items():
            if unit.respondents == 0:
                continue
            lineage = list(self._ancestors(agency))
            if not (
                access.covers(f.agency_id, lineage) and access.covers(f.readable_root, lineage)
            ):
                continue
            if f.level is not None and self.level.get(agency) != f.level:
                continue
            for key in self._keys(agency, group_by):
                cell = out.get(key)
                if cell is None:
                    cell = out[key] = Cell(CellCounts(), {}, {})
                _add(cell, unit)
        for cell in out.values():
            cell.pairs = {
                key: fx.PairCounts(n, s12, s1, s2) for key, (n, s1, s2, s12) in cell.sums.items()
            }
            cell.sums = {}
        return out


def _add(cell: Cell, unit: _Unit) -> None:
    counts = cell.counts
    counts.respondents += unit.respondents
    counts.weight_sum += unit.respondents
    for item, codes in unit.answers.items():
        per_item = counts.answers.setdefault(item, {})
        for code, n in codes.items():
            old = per_item.get(code, (0, 0.0, 0.0))[0]
            per_item[code] = (old + n, float(old + n), float(old + n))
    for item, options in unit.choices.items():
        per_choice = counts.choices.setdefault(item, {})
        for option, n in options.items():
            old = per_choice.get(option, (0, 0.0))[0]
            per_choice[option] = (old + n, float(old + n))
    sums = cell.sums
    for key, (n, s1, s2, s12) in unit.pairs.items():
        running = sums.get(key)
        if running is None:
            sums[key] = [n, s1, s2, s12]
        else:
            running[0] += n
            running[1] += s1
            running[2] += s2
            running[3] += s12
    for total, n in unit.totals.items():
        cell.totals[total] = cell.totals.get(total, 0) + n


def usable(group_by: str, f: Filters, weighted: bool) -> bool:
    """Whether roll-ups can answer this read (see the module's rules)."""
    return (
        not weighted
        and group_by in GROUPINGS
        and f.sector_id is None
        and f.channel is None
        and f.respondent_type is None
    )


async def load(session: AsyncSession, campaign_id: uuid.UUID) -> Source:
    """The campaign's counts, one row per agency and kind with the counts as arrays (a few
    hundred rows instead of tens of thousands: the driver decodes arrays far faster)."""
    result = await session.execute(
        sa.text(
            """SELECT agency_id::text, kind, array_agg(item), array_agg(other), array_agg(n),
                      array_agg(s1), array_agg(s2), array_agg(s12)
               FROM index_rollups
               WHERE campaign_id = :c AND (n <> 0 OR s1 <> 0 OR s2 <> 0 OR s12 <> 0)
               GROUP BY 1, 2"""
        ),
        {"c": campaign_id},
    )
    units: dict[str, _Unit] = {}
    for agency, kind, items, others, ns, s1s, s2s, s12s in result.all():
        unit = units.get(agency)
        if unit is None:
            unit = units[agency] = _Unit()
        if kind == "respondents":
            unit.respondents += sum(ns)
        elif kind == "answer":
            for item, other, n in zip(items, others, ns, strict=True):
                unit.answers.setdefault(item, {})[other] = n
        elif kind == "choice":
            for item, other, n in zip(items, others, ns, strict=True):
                unit.choices.setdefault(item, {})[other] = n
        elif kind == "pair":
            unit.pairs = {
                (i, j): (n, s1, s2, s12)
                for i, j, n, s1, s2, s12 in zip(items, others, ns, s1s, s2s, s12s, strict=True)
            }
        elif kind == "total":
            unit.totals = {int(t): n for t, n in zip(others, ns, strict=True)}
    agencies = (
        await session.execute(sa.select(col(Agency.id), col(Agency.parent_id), col(Agency.level)))
    ).all()
    parent = {str(a): (str(p) if p else None) for a, p, _ in agencies}
    level = {str(a): str(lv) for a, _, lv in agencies}
    return Source(units, parent, level)


def sum_z_squared(
    cells: Mapping[str, Cell],
    terms: Sequence[tuple[str, str, Mapping[str, float], Mapping[str, fx.ItemCounts]]],
) -> dict[tuple[str, str], float]:
    """Σ_r z_r² per (cell, composite) from the pair counts (what pass 2 reads from forms)."""
    out: dict[tuple[str, str], float] = {}
    for key, composite, coefs, items in terms:
        out[(key, composite)] = fx.sum_z_squared(coefs, items, cells[key].pairs)
    return out
