"""The SQL that turns raw forms into counts. Python never loads forms to count them.

Two aggregate statements per request:
- pass 1: per reporting cell and item, the number of answers per code (weighted and not), the
  respondents per cell, and for multiple-choice items the choices per option;
- pass 2: per cell and composite, Σ_r z_r² of the linearised variance (method 2.10), given the
  coefficients c_i and proportions p_i found from pass 1.

Cells are a whitelisted SQL expression (never caller text); every value is a bound parameter.
Only forms in state `valid` count.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import AppError, ConflictError, FieldError, Invalid
from app.services import access

# group_by → (SQL for the cell key, joins it needs)
_AGENCY_JOIN = "JOIN agencies ag ON ag.id = s.agency_id"
DIMENSIONS: dict[str, tuple[str, str]] = {
    "none": ("'all'", ""),
    # Every form counts in its agency and in each agency above it: the subtree roll-up.
    "agency": ("tree.root::text", "JOIN subtree_all tree ON tree.id = s.agency_id"),
    # Each agency's own forms only: the units that `unit_mean` averages.
    "unit": ("s.agency_id::text", ""),
    "level": ("ag.level", _AGENCY_JOIN),
    "sector": ("coalesce(s.sector_id::text, '')", ""),
    "procedure": ("coalesce(s.procedure_id::text, '')", ""),
    "channel": ("s.channel", ""),
    "respondent_type": ("coalesce(s.respondent_type, '')", ""),
}
ITEM_PREFIX = "item:"


@dataclass(frozen=True, slots=True)
class Filters:
    agency_id: uuid.UUID | None = None
    sector_id: uuid.UUID | None = None
    channel: str | None = None
    respondent_type: str | None = None
    level: str | None = None
    readable_root: uuid.UUID | None = None  # set from access.readable_root, never by a caller


@dataclass(slots=True)
class CellCounts:
    """Everything pass 1 found for one cell."""

    respondents: int = 0
    weight_sum: float = 0.0
    # item → code → (count, weighted count, weighted count of w²)
    answers: dict[str, dict[str, tuple[int, float, float]]] = field(default_factory=dict)
    # multiple-choice item → option → (count, weighted)
    choices: dict[str, dict[str, tuple[int, float]]] = field(default_factory=dict)


def cell_sql(group_by: str) -> tuple[str, str]:
    if group_by in DIMENSIONS:
        return DIMENSIONS[group_by]
    if group_by.startswith(ITEM_PREFIX):
        # The item id is bound as :group_item, never spliced into the SQL.
        return "coalesce(s.answers ->> :group_item, '')", ""
    raise Invalid(
        "Unknown breakdown.",
        [FieldError("/query/group_by", f"one of {', '.join(DIMENSIONS)} or item:<item id>")],
    )


def _base(
    campaign_id: uuid.UUID, group_by: str, f: Filters, weighted: bool
) -> tuple[str, dict[str, Any]]:
    """The forms that count, one row per form and cell, with their weight."""
    cell, join = cell_sql(group_by)
    params: dict[str, Any] = {"campaign": campaign_id}
    where = ["s.campaign_id = :campaign", "s.state = 'valid'"]
    if group_by.startswith(ITEM_PREFIX):
        params["group_item"] = group_by[len(ITEM_PREFIX) :]
    joins = [join] if join else []
    if f.level is not None and _AGENCY_JOIN not in joins:
        joins.append(_AGENCY_JOIN)
    if f.agency_id is not None:
        where.append("s.agency_id IN (SELECT id FROM subtree_all WHERE root = :filter_agency)")
        params["filter_agency"] = f.agency_id
    if f.readable_root is not None:
        readable, bound = access.agency_sql(f.readable_root, "s.agency_id")
        where.append(readable)
        params.update(bound)
    # The filters that hold one column to one value: (column, parameter, value).
    for column, name, value in (
        ("ag.level", "level", f.level),
        ("s.sector_id", "sector", f.sector_id),
        ("s.channel", "channel", f.channel),
        ("s.respondent_type", "respondent_type", f.respondent_type),
    ):
        if value is not None:
            where.append(f"{column} = :{name}")
            params[name] = value
    weight = "w.weight" if weighted else "1.0"
    if weighted:
        joins.append("JOIN weights w ON w.stratum_id = s.stratum_id")
    sql = f"""
        WITH RECURSIVE agency_tree(ancestor, descendant) AS (
            SELECT id, id FROM agencies
            UNION ALL
            SELECT t.ancestor, a.id FROM agency_tree t JOIN agencies a ON a.parent_id = t.descendant
        ),
        subtree_all AS (SELECT ancestor AS root, descendant AS id FROM agency_tree),
        weights AS (
            SELECT st.id AS stratum_id, st.frame_size::float8 / count(*) AS weight
            FROM strata st JOIN submissions sw ON sw.stratum_id = st.id AND sw.state = 'valid'
            WHERE st.campaign_id = :campaign AND st.frame_size IS NOT NULL
              AND sw.campaign_id = :campaign
            GROUP BY st.id, st.frame_size
        ),
        base AS (
            SELECT s.id, {cell} AS cell, {weight}::float8 AS w, s.answers
            FROM submissions s {" ".join(joins)}
            WHERE {" AND ".join(where)}
        )"""
    return sql, params


async def unweighted_forms(session: AsyncSession, campaign_id: uuid.UUID) -> int:
    """Valid forms without a stratum weight (no stratum, or no frame size)."""
    value = await session.scalar(
        sa.text(
            """SELECT count(*) FROM submissions s LEFT JOIN strata st ON st.id = s.stratum_id
               WHERE s.campaign_id = :c AND s.state = 'valid' AND st.frame_size IS NULL"""
        ),
        {"c": campaign_id},
    )
    return int(value or 0)


async def dossier_totals(
    session: AsyncSession,
    campaign_id: uuid.UUID,
    group_by: str,
    f: Filters,
    points: Mapping[str, Mapping[str, int]],
) -> dict[str, dict[int, int]]:
    """Per cell, how many forms reached each dossier total (Σ of the indicators' points)."""
    base, params = _base(campaign_id, group_by, f, weighted=False)
    items = [i for i, codes in points.items() for _ in codes]
    codes = [c for _, cs in points.items() for c in cs]
    values = [v for _, cs in points.items() for v in cs.values()]
    rows = await session.execute(
        sa.text(
            base
            + """,
            points AS (
                SELECT * FROM unnest(CAST(:items AS text[]), CAST(:codes AS text[]),
                                     CAST(:values AS int[])) AS p(item, code, value)
            ),
            totals AS (
                SELECT b.cell, b.id, coalesce(sum(p.value), 0) AS total
                FROM base b
                LEFT JOIN LATERAL jsonb_each(b.answers) a ON true
                LEFT JOIN points p ON p.item = a.key AND p.code = a.value #>> '{}'
                GROUP BY b.cell, b.id
            )
            SELECT cell, total, count(*) FROM totals GROUP BY cell, total"""
        ),
        {**params, "items": items, "codes": codes, "values": values},
    )
    out: dict[str, dict[int, int]] = {}
    for cell, total, n in rows.all():
        out.setdefault(cell, {})[int(total)] = int(n)
    return out


async def custom_plans(session: AsyncSession) -> None:
    """Plan each index statement for its own parameters. The driver prepares statements, and
    after five runs PostgreSQL may switch to a generic plan that ignores the bound arrays;
    for these aggregates that plan was several times slower."""
    await session.execute(sa.text("SET LOCAL plan_cache_mode = force_custom_plan"))


async def count_cells(
    session: AsyncSession,
    campaign_id: uuid.UUID,
    group_by: str,
    f: Filters,
    *,
    weighted: bool,
    items: Sequence[str],
    multiple_choice: Sequence[str],
) -> dict[str, CellCounts]:
    """Pass 1."""
    base, params = _base(campaign_id, group_by, f, weighted)
    cells: dict[str, CellCounts] = {}
    respondents = await session.execute(
        sa.text(base + " SELECT cell, count(*), sum(w) FROM base GROUP BY cell"), params
    )
    for cell, n, wsum in respondents.all():
        cells[cell] = CellCounts(respondents=int(n), weight_sum=float(wsum or 0))
    answers = await session.execute(
        sa.text(
            base
            + """
            SELECT b.cell, a.key,
                   CASE WHEN jsonb_typeof(a.value) = 'array' THEN NULL ELSE a.value #>> '{}' END,
                   count(*), sum(b.w), sum(b.w * b.w)
            FROM base b CROSS JOIN LATERAL jsonb_each(b.answers) a
            WHERE a.key = ANY(:items) AND jsonb_typeof(a.value) <> 'null'
            GROUP BY 1, 2, 3"""
        ),
        {**params, "items": list(items)},
    )
    for cell, item, code, n, wn, wn2 in answers.all():
        per_item = cells.setdefault(cell, CellCounts()).answers.setdefault(item, {})
        per_item["__answered__" if code is None else code] = (int(n), float(wn), float(wn2))
    if multiple_choice:
        chosen = await session.execute(
            sa.text(
                base
                + """
                SELECT b.cell, a.key, e.value, count(*), sum(b.w)
                FROM base b CROSS JOIN LATERAL jsonb_each(b.answers) a
                CROSS JOIN LATERAL jsonb_array_elements_text(
                    CASE WHEN jsonb_typeof(a.value) = 'array' THEN a.value ELSE '[]'::jsonb END
                ) e
                WHERE a.key = ANY(:mc)
                GROUP BY 1, 2, 3"""
            ),
            {**params, "mc": list(multiple_choice)},
        )
        for cell, item, code, n, wn in chosen.all():
            cells.setdefault(cell, CellCounts()).choices.setdefault(item, {})[code] = (
                int(n),
                float(wn),
            )
    return cells


@dataclass(frozen=True, slots=True)
class Term:
    """One c_i · w_r · (y_ri − p_i) / n_i term of a composite's z_r, for one cell: `k` is the
    item's coefficient in the composite over its valid answers in the cell (c_i / n_i), `p` the
    share of those answers that are positive (p_i). Each form brings its weight w_r and y_ri,
    1 when its answer to the item is positive."""

    cell: str
    composite: str
    item: str
    k: float
    p: float


async def sum_z_squared(
    session: AsyncSession,
    campaign_id: uuid.UUID,
    group_by: str,
    f: Filters,
    *,
    weighted: bool,
    terms: Sequence[Term],
    positives: Mapping[str, Sequence[str]],
) -> dict[tuple[str, str], float]:
    """Pass 2: Σ_r z_r² per (cell, composite)."""
    if not terms:
        return {}
    base, params = _base(campaign_id, group_by, f, weighted)
    pos_items = [i for i, codes in positives.items() for _ in codes]
    pos_codes = [c for _, codes in positives.items() for c in codes]
    rows = await session.execute(
        sa.text(
            base
            + """,
            terms AS (
                SELECT * FROM unnest(
                    CAST(:t_cell AS text[]), CAST(:t_comp AS text[]), CAST(:t_item AS text[]),
                    CAST(:t_k AS float8[]), CAST(:t_p AS float8[])
                ) AS t(cell, comp, item, k, p)
            ),
            positive AS (
                SELECT * FROM unnest(CAST(:p_item AS text[]), CAST(:p_code AS text[]))
                    AS p(item, code)
            ),
            -- Each form's scored answers, exploded once (the planner would otherwise re-run
            -- jsonb_each for every term it pairs with a form).
            scored AS MATERIALIZED (
                SELECT b.cell, b.id, b.w, a.key AS item, (po.item IS NOT NULL)::int AS y
                FROM base b
                CROSS JOIN LATERAL jsonb_each(b.answers) a
                LEFT JOIN positive po ON po.item = a.key AND po.code = a.value #>> '{}'
                WHERE a.key = ANY(CAST(:items AS text[]))
                  AND jsonb_typeof(a.value) IN ('number', 'string')
            ),
            z AS (
                SELECT x.cell, x.id, t.comp, sum(t.k * x.w * (x.y - t.p)) AS z
                FROM scored x
                JOIN terms t ON t.cell = x.cell AND t.item = x.item
                GROUP BY x.cell, x.id, t.comp
            )
            SELECT cell, comp, sum(z * z) FROM z GROUP BY cell, comp"""
        ),
        {
            **params,
            "t_cell": [t.cell for t in terms],
            "t_comp": [t.composite for t in terms],
            "t_item": [t.item for t in terms],
            "items": sorted({t.item for t in terms}),
            "t_k": [t.k for t in terms],
            "t_p": [t.p for t in terms],
            "p_item": pos_items,
            "p_code": pos_codes,
        },
    )
    return {(cell, comp): float(total) for cell, comp, total in rows.all()}


def weights_unavailable() -> AppError:
    return ConflictError(
        "weights_unavailable",
        "Weighted results need a frame size for every stratum that has forms.",
    )
