"""Index roll-ups: the counts of a campaign's valid forms per combination of the breakdowns,
kept by the database.

Why: an index read that scans every form grows with the forms (seconds at 100k, minutes at
millions). The counts the formulas need are sums over forms, so they can be kept per
combination of the low-cardinality dimensions and added up per reporting cell at read time; the
read then grows with the combinations, not the forms.

Rules:
- Forms are written bare and folded into the cells after commit, in large batches
  (`fold`, from `sipas worker` or `sipas fold`; migration 0013f): the per-cell work of
  a batch is then shared by all of its forms. The cells hold every form whose writing
  transaction is below the campaign's `folded_to`; a read adds the tail (the forms at or above
  it, counted from the rows in the reader's own snapshot), so every read is exact, and a writer
  reads its own writes, however far behind the folding is.
- Statement triggers on `submissions` (migrations 0011c, 0013f) subtract the contribution of
  every folded valid row removed or changed, and add that of its new version, in the writing
  transaction: whoever writes a form (the API, an import, the demo seed, plain SQL) keeps the
  counts right, and a crash loses both or neither. Corrections, folds and recounts of one
  campaign take its advisory lock, one at a time.
- One row (`index_cells`) per agency × sector × channel × respondent type (`facet` ''), and per
  such combination × procedure (`facet` '@procedure') and × answer of each respondent-fact item
  that has options (`facet` the item id, `value` its code or '' when unanswered). Each row holds
  its counts as two arrays in the order the campaign's `index_cell_layouts` row names: `counts`
  (answers per code, '__answered__' and choices per option of multiple-choice items, dossier
  totals) and `pairs` (four blocks: both answered, first satisfied, second satisfied, both
  satisfied, one entry per criterion pair; the sufficient statistics of the linearised interval,
  method 2.10, `formulas.composite_se`).
- The triggers only count for campaigns with a layout. `install` writes it (from the
  questionnaire) and recounts the campaign's committed forms, under the same lock; campaigns
  are installed when they open, by `sipas migrate` for older ones, and by the demo seed. An
  uninstalled campaign, or one whose questionnaire counts an item without a fixed set of codes,
  is read from its forms.
- Unweighted reads by none, agency, unit, level, sector, channel, respondent type, procedure or
  a respondent-fact item, filtered by any of agency subtree, level, sector, channel and
  respondent type, read roll-ups; weighted results (and breakdowns by other items) read forms.
"""

from __future__ import annotations

import json
import operator
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.models.agency import Agency
from app.models.campaign import Campaign, CampaignState
from app.models.questionnaire import Questionnaire
from app.services import access, instrument
from app.services.index import formulas as fx
from app.services.index.counts import ITEM_PREFIX, CellCounts, Filters

MAX_CRITERIA = 63  # bit positions of a bigint mask
GROUPINGS = frozenset({"none", "agency", "unit", "level", "sector", "channel", "respondent_type"})
PROCEDURE_FACET = "@procedure"  # not an item id: ids start with a letter or a digit
# Forms per fold: large enough to share each touched cell's update among many forms (the cost
# of a statement grows with the cells it touches), small enough to keep a fold's transaction
# short. See bench/RESULTS.md (write cost).
FOLD_BATCH = 50_000

# A campaign's rows of one facet (every facet when :facet is NULL) as a read sees them: the
# folded cells, then the tail counted from the forms, in one statement (one snapshot).
CELLS_AND_TAIL = """
    SELECT facet, agency_id, sector, channel, respondent_type, value, n, counts, pairs
    FROM index_cells
    WHERE campaign_id = :c AND (CAST(:facet AS text) IS NULL OR facet = :facet) AND n <> 0
    UNION ALL
    SELECT facet, agency_id, sector, channel, respondent_type, value, n, counts, pairs
    FROM index_cells_pending(:c, CAST(:facet AS text))"""


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


@dataclass(frozen=True, slots=True)
class Layout:
    """The positions of a campaign's counts in the arrays of `index_cells`.

    Slots (`counts`): ('a', item, code) answers of a single-answer item per code; ('m', item, '')
    forms that answered a multiple-choice item; ('c', item, code) choices of an option; ('t', '',
    total) dossiers per total of points. Pairs (`pairs`): criteria positions i < j."""

    slots: tuple[tuple[str, str, str], ...]
    criteria: tuple[str, ...]
    positives: Mapping[str, tuple[str, ...]]
    pairs: tuple[tuple[int, int], ...]
    points: Mapping[str, Mapping[str, int]] | None
    facets: tuple[str, ...]

    @classmethod
    def of(cls, q: instrument.Questionnaire, facets: Sequence[str] | None = None) -> Layout | None:
        """None when the questionnaire counts an item whose codes are not a fixed set, or has
        more criteria than a mask holds. `facets`: the breakdowns beside the base combination
        (`PROCEDURE_FACET` and respondent-fact items with options); by default all of them."""
        spec = Spec.of(q)
        if len(spec.criteria) > MAX_CRITERIA:
            return None
        index = instrument.item_index(q)
        slots: list[tuple[str, str, str]] = []

        def codes(item: instrument.Item) -> list[instrument.Code] | None:
            found = sorted(instrument.codes_of(item), key=str)
            return found or None

        counted = [*spec.criteria]
        multiple: list[str] = []
        for _, item in instrument.iter_items(q):
            if item.role in (instrument.Role.perception, instrument.Role.expectation):
                if item.type is instrument.ItemType.multiple_choice:
                    multiple.append(item.id)
                elif item.type is not instrument.ItemType.free_text:
                    counted.append(item.id)
        counted += list(spec.points)
        for item_id in counted:
            found = codes(index[item_id])
            if found is None:
                return None
            slots += [("a", item_id, str(c)) for c in found]
        for item_id in multiple:
            found = codes(index[item_id])
            if found is None:
                return None
            slots.append(("m", item_id, ""))
            slots += [("c", item_id, str(c)) for c in found]
        if spec.points:
            slots += [("t", "", str(t)) for t in range(instrument.dossier_max_total(q) + 1)]
        n = len(spec.criteria)
        possible = (
            PROCEDURE_FACET,
            *(
                item.id
                for _, item in instrument.iter_items(q)
                if item.role is instrument.Role.respondent
                and item.type is not instrument.ItemType.multiple_choice
                and instrument.codes_of(item)
            ),
        )
        chosen = possible if facets is None else tuple(f for f in possible if f in facets)
        return cls(
            tuple(slots),
            spec.criteria,
            spec.positives,
            tuple((i, j) for i in range(n) for j in range(i + 1, n)),
            spec.points or None,
            chosen,
        )

    def params(self, campaign_id: uuid.UUID) -> dict[str, Any]:
        """The bound values of `LAYOUT_INSERT`."""
        return {
            "c": campaign_id,
            "kinds": [k for k, _, _ in self.slots],
            "items": [i for _, i, _ in self.slots],
            "codes": [c for _, _, c in self.slots],
            "single": sorted({i for k, i, _ in self.slots if k == "a"}),
            "multiple": sorted({i for k, i, _ in self.slots if k == "m"}),
            "criteria": list(self.criteria),
            "positives": json.dumps({k: list(v) for k, v in self.positives.items()}),
            "pair_i": [i for i, _ in self.pairs],
            "pair_j": [j for _, j in self.pairs],
            "points": None if self.points is None else json.dumps(self.points),
            "facets": list(self.facets),
        }

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> Layout:
        kinds, items, codes, criteria, pair_i, pair_j, facets = row
        return cls(
            tuple(zip(kinds, items, codes, strict=True)),
            tuple(criteria),
            {},
            tuple(zip(pair_i, pair_j, strict=True)),
            None,
            tuple(facets),
        )


LAYOUT_INSERT = sa.text(
    """INSERT INTO index_cell_layouts (campaign_id, slot_kinds, slot_items, slot_codes,
           single_items,
           multiple_items, criteria, positives, pair_i, pair_j, points, facets)
       VALUES (:c, CAST(:kinds AS text[]), CAST(:items AS text[]), CAST(:codes AS text[]),
           CAST(:single AS text[]), CAST(:multiple AS text[]), CAST(:criteria AS text[]),
           CAST(:positives AS jsonb), CAST(:pair_i AS smallint[]), CAST(:pair_j AS smallint[]),
           CAST(:points AS jsonb), CAST(:facets AS text[]))"""
)


async def install(
    session: AsyncSession, campaign_id: uuid.UUID, facets: Sequence[str] | None = None
) -> bool:
    """List the campaign for roll-ups and count its forms; False when it cannot have them (see
    `Layout.of`, and `facets` there). Idempotent: an installed campaign is left as it is."""
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
    layout = Layout.of(instrument.parsed(row), facets)
    if layout is None:
        return False
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
        sa.text("DELETE FROM index_cell_layouts WHERE campaign_id = :c"), {"c": campaign_id}
    )
    await session.execute(LAYOUT_INSERT, layout.params(campaign_id))
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
    await session.execute(sa.text("SELECT index_cells_rebuild(:c)"), {"c": campaign_id})


async def fold(
    session: AsyncSession, campaign_id: uuid.UUID, most: int | None = None
) -> int | None:
    """Fold the campaign's committed tail into its cells (at most about `most` forms, whole
    transactions): the number of forms folded, or None when another session holds the campaign
    (a fold, a correction) and this one should try again later."""
    folded = await session.scalar(
        sa.text("SELECT index_cells_fold(:c, :most)"), {"c": campaign_id, "most": most}
    )
    return None if folded is None else int(folded)


async def fold_all(session: AsyncSession, most: int | None = FOLD_BATCH) -> int:
    """One fold of every installed campaign whose tail has forms: the forms folded."""
    campaigns = (
        await session.scalars(
            sa.text(
                """SELECT campaign_id FROM index_rollup_states
                   WHERE index_cells_tail(campaign_id) > 0 ORDER BY campaign_id"""
            )
        )
    ).all()
    return sum([await fold(session, c, most) or 0 for c in campaigns])


async def version(session: AsyncSession, campaign_id: uuid.UUID) -> int | None:
    """The roll-ups' version (it moves on every change), or None when not installed."""
    value = await session.scalar(
        sa.text("SELECT version FROM index_rollup_states WHERE campaign_id = :c"),
        {"c": campaign_id},
    )
    return None if value is None else int(value)


async def _stored(session: AsyncSession, campaign_id: uuid.UUID) -> dict[tuple[str, ...], Any]:
    """Every cell as a read sees it: the folded counts plus the tail, summed per key."""
    result = await session.execute(
        sa.text(
            f"""SELECT facet, agency_id::text, sector, channel, respondent_type, value, n, counts,
                       pairs
                FROM ({CELLS_AND_TAIL}) AS t"""  # noqa: S608 - constants
        ),
        {"c": campaign_id, "facet": None},
    )
    out: dict[tuple[str, ...], Any] = {}
    for r in result.all():
        key, n, counts, pairs = tuple(r[:6]), int(r[6]), list(r[7]), list(r[8])
        if key in out:
            was = out[key]
            n += was[0]
            counts = list(map(operator.add, was[1], counts))
            pairs = list(map(operator.add, was[2], pairs))
        out[key] = (n, counts, pairs)
    return {key: v for key, v in out.items() if v[0] != 0}


async def discrepancies(session: AsyncSession, campaign_id: uuid.UUID) -> list[str]:
    """Every row of counts that differs from a recount of the raw forms (empty when all agree).

    The recount runs in a savepoint that is rolled back, so the stored counts are untouched."""
    stored = await _stored(session, campaign_id)
    async with session.begin_nested() as savepoint:
        await rebuild(session, campaign_id)
        recounted = await _stored(session, campaign_id)
        await savepoint.rollback()
    return [
        f"{key}: stored {stored.get(key)}, recounted {recounted.get(key)}"
        for key in sorted(stored.keys() | recounted.keys())
        if stored.get(key) != recounted.get(key)
    ]


@dataclass(slots=True)
class Cell:
    """A reporting cell's counts, summed over its rows."""

    counts: CellCounts
    pairs: dict[tuple[str, str], fx.PairCounts]
    totals: dict[int, int]


@dataclass(slots=True)
class _Sums:
    n: int
    counts: list[int]
    pairs: list[int]


# agency, sector, channel, respondent type, facet value, n, counts, pairs
_Row = tuple[str, str, str, str, str, int, list[int], list[int]]


@dataclass(slots=True)
class Source:
    """A campaign's roll-ups of one facet as read in one statement, and the agency map."""

    layout: Layout
    facet: str
    rows: list[_Row]
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

    def _keys(self, row: _Row, group_by: str) -> Iterable[str]:
        agency, sector, channel, respondent_type, value = row[:5]
        if group_by == "none":
            return ("all",)
        if group_by == "unit":
            return (agency,)
        if group_by == "level":
            return (self.level.get(agency, ""),)
        if group_by == "agency":
            return self._ancestors(agency)  # the subtree roll-up
        if group_by == "sector":
            return (sector,)
        if group_by == "channel":
            return (channel,)
        if group_by == "respondent_type":
            return (respondent_type,)
        return (value,)  # procedure, item:<id>: the facet this source holds

    def cells(self, group_by: str, f: Filters) -> dict[str, Cell]:
        made = self._made.get((group_by, f))
        if made is not None:
            return made
        sums: dict[str, _Sums] = {}
        add = operator.add
        lineages: dict[str, bool] = {}
        for row in self.rows:
            agency, sector, channel, respondent_type = row[:4]
            if f.sector_id is not None and sector != str(f.sector_id):
                continue
            if f.channel is not None and channel != f.channel:
                continue
            if f.respondent_type is not None and respondent_type != f.respondent_type:
                continue
            if f.level is not None and self.level.get(agency) != f.level:
                continue
            allowed = lineages.get(agency)
            if allowed is None:
                lineage = list(self._ancestors(agency))
                allowed = lineages[agency] = access.covers(f.agency_id, lineage) and access.covers(
                    f.readable_root, lineage
                )
            if not allowed:
                continue
            for key in self._keys(row, group_by):
                running = sums.get(key)
                if running is None:
                    sums[key] = _Sums(row[5], list(row[6]), list(row[7]))
                else:
                    running.n += row[5]
                    running.counts = list(map(add, running.counts, row[6]))
                    running.pairs = list(map(add, running.pairs, row[7]))
        out = {key: self._cell(s) for key, s in sums.items() if s.n != 0}
        self._made[(group_by, f)] = out
        return out

    def _cell(self, s: _Sums) -> Cell:
        counts = CellCounts(respondents=s.n, weight_sum=float(s.n))
        totals: dict[int, int] = {}
        for (kind, item, code), v in zip(self.layout.slots, s.counts, strict=True):
            if v == 0:
                continue
            if kind == "a":
                counts.answers.setdefault(item, {})[code] = (v, float(v), float(v))
            elif kind == "m":
                counts.answers.setdefault(item, {})["__answered__"] = (v, float(v), float(v))
            elif kind == "c":
                counts.choices.setdefault(item, {})[code] = (v, float(v))
            else:
                totals[int(code)] = v
        criteria, pairs = self.layout.criteria, self.layout.pairs
        k = len(pairs)
        out: dict[tuple[str, str], fx.PairCounts] = {}
        p = s.pairs
        for o, (i, j) in enumerate(pairs):
            n = p[o]
            if n:
                out[(criteria[i], criteria[j])] = fx.PairCounts(
                    n, p[3 * k + o], p[k + o], p[2 * k + o]
                )
        return Cell(counts, out, totals)


def facet_of(group_by: str, layout: Layout) -> str | None:
    """The facet whose rows answer a breakdown, or None when no roll-up holds it."""
    if group_by == "procedure":
        return PROCEDURE_FACET if PROCEDURE_FACET in layout.facets else None
    if group_by in GROUPINGS:
        return ""
    if group_by.startswith(ITEM_PREFIX) and group_by[len(ITEM_PREFIX) :] in layout.facets:
        return group_by[len(ITEM_PREFIX) :]
    return None


async def layout_of(session: AsyncSession, campaign_id: uuid.UUID) -> Layout | None:
    row = (
        await session.execute(
            sa.text(
                """SELECT slot_kinds, slot_items, slot_codes, criteria, pair_i, pair_j, facets
                   FROM index_cell_layouts WHERE campaign_id = :c"""
            ),
            {"c": campaign_id},
        )
    ).one_or_none()
    return None if row is None else Layout.from_row(row)


async def load(
    session: AsyncSession, campaign_id: uuid.UUID, group_by: str, weighted: bool
) -> Source | None:
    """The campaign's counts for this breakdown (the rows of its facet), or None when the
    roll-ups cannot answer it (see the module's rules)."""
    if weighted:
        return None
    layout = await layout_of(session, campaign_id)
    if layout is None:
        return None
    facet = facet_of(group_by, layout)
    if facet is None:
        return None
    result = await session.execute(
        sa.text(
            f"""SELECT agency_id::text, sector, channel, respondent_type, value, n, counts, pairs
                FROM ({CELLS_AND_TAIL}) AS t"""  # noqa: S608 - constants
        ),
        {"c": campaign_id, "facet": facet},
    )
    rows: list[_Row] = [
        (r[0], r[1], r[2], r[3], r[4], int(r[5]), list(r[6]), list(r[7])) for r in result.all()
    ]
    agencies = (
        await session.execute(sa.select(col(Agency.id), col(Agency.parent_id), col(Agency.level)))
    ).all()
    parent = {str(a): (str(p) if p else None) for a, p, _ in agencies}
    level = {str(a): str(lv) for a, _, lv in agencies}
    return Source(layout, facet, rows, parent, level)


def sum_z_squared(
    cells: Mapping[str, Cell],
    terms: Sequence[tuple[str, str, Mapping[str, float], Mapping[str, fx.ItemCounts]]],
) -> dict[tuple[str, str], float]:
    """Σ_r z_r² per (cell, composite) from the pair counts (what pass 2 reads from forms)."""
    out: dict[tuple[str, str], float] = {}
    for key, composite, coefs, items in terms:
        out[(key, composite)] = fx.sum_z_squared(coefs, items, cells[key].pairs)
    return out
