# ruff: noqa: S608 - the SQL below is built from constants of this file, never from input
"""index cells: every breakdown from roll-ups, in a compact layout

The per-agency roll-ups of 0008 (one row per agency, kind, item and code) become one row per
combination of agency, sector, channel and respondent type (`facet` ''), plus one per such
combination and procedure (`facet` '@procedure') and per such combination and answer of each
respondent-fact item (`facet` the item id), each with the counts as arrays in a fixed order
that `index_cell_layouts` names per campaign: `counts` (answers per code, choices per option,
dossier totals) and `pairs` (per criterion pair: both answered, first satisfied, second
satisfied, both satisfied; four blocks of one entry per pair). The statement triggers aggregate
the whole statement before touching the rows: each answer adds to its slot per cell key (found
by the campaign's item lists, without `jsonb_each`), pair counts are popcounts of bit slices (63
forms of one key per word), and each touched row is updated once. `index_rollups` stays, as a
view of the per-agency sums.

Upgrade recounts every installed campaign; downgrade restores the tables of 0008 and leaves the
campaigns uninstalled (`sipas migrate` installs them again).

Revision ID: 0011c
Revises: 0011p
Create Date: 2026-11-30 17:05:00.000000+00:00
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0011c"
down_revision: str | None = "0011p"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Element-wise sum of two arrays of equal length, and its aggregate. (A loop over an expanded
# array measured a quarter faster than `ARRAY(SELECT x + y FROM unnest($1, $2))`.)
ADD = """
CREATE FUNCTION index_cells_add(a bigint[], b bigint[]) RETURNS bigint[]
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
AS $$
BEGIN
    FOR i IN 1..coalesce(cardinality(a), 0) LOOP
        a[i] := a[i] + b[i];
    END LOOP;
    RETURN a;
END
$$
"""
SUM = """
CREATE AGGREGATE index_cells_sum(bigint[]) (SFUNC = index_cells_add, STYPE = bigint[])
"""

# Sparse counts into a dense array of `len` entries (slots are 1-based).
DENSE = """
CREATE FUNCTION index_cells_dense(slots int[], vals bigint[], len int) RETURNS bigint[]
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
AS $$
DECLARE
    r bigint[] := array_fill(0::bigint, ARRAY[len]);
BEGIN
    FOR i IN 1..coalesce(cardinality(slots), 0) LOOP
        r[slots[i]] := r[slots[i]] + vals[i];
    END LOOP;
    RETURN r;
END
$$
"""

# The contribution of the valid forms of {rel} (aliased s), times {sign}, added to the cells.
# Each form counts in its cell keys (k): the base combination, and one per facet. Counts are
# summed sparsely (the slot each answer hits, per key). Pairs are counted by bit slices: the
# forms of a key are numbered, each block of 63 forms becomes one word per criterion (which of
# them answered it, which were satisfied), and a pair's counts are popcounts of two words ANDed,
# so the work grows with the keys a statement touches, not with forms × pairs.
CONTRIBUTION = """
WITH f AS MATERIALIZED (
    SELECT row_number() OVER () AS id, s.campaign_id, s.agency_id,
           coalesce(s.sector_id::text, '') AS sector, s.channel,
           coalesce(s.respondent_type, '') AS rt, coalesce(s.procedure_id::text, '') AS procedure,
           s.answers, l.criteria, l.positives, l.points, l.facets, l.single_items,
           l.multiple_items
    FROM {rel} s JOIN index_cell_layouts l ON l.campaign_id = s.campaign_id
    WHERE s.state = 'valid'
      AND s.campaign_id IN (SELECT campaign_id FROM index_rollup_states)
),
m AS MATERIALIZED (
    SELECT f.id,
        (SELECT coalesce(bit_or(1::bigint << (u.o - 1)::int), 0)
           FROM unnest(f.criteria) WITH ORDINALITY AS u(i, o)
          WHERE jsonb_typeof(f.answers -> u.i) IN ('number', 'string')) AS am,
        (SELECT coalesce(bit_or(1::bigint << (u.o - 1)::int), 0)
           FROM unnest(f.criteria) WITH ORDINALITY AS u(i, o)
          WHERE jsonb_typeof(f.answers -> u.i) IN ('number', 'string')
            AND (f.positives -> u.i) ? (f.answers ->> u.i)) AS ym
    FROM f
),
k AS MATERIALIZED (
    SELECT f.id, f.campaign_id, x.facet, f.agency_id, f.sector, f.channel, f.rt, x.value
    FROM f CROSS JOIN LATERAL (
        SELECT ''::text AS facet, ''::text AS value
        UNION ALL
        SELECT fc, CASE WHEN fc = '@procedure' THEN f.procedure
                        ELSE coalesce(f.answers ->> fc, '') END
        FROM unnest(f.facets) AS fc
    ) AS x
),
sl AS MATERIALIZED (
    -- the campaigns' slots: (kind, item, code) → slot
    SELECT l.campaign_id, u.k, u.i, u.c, u.o::int AS slot
    FROM index_cell_layouts l
    CROSS JOIN LATERAL unnest(l.slot_kinds, l.slot_items, l.slot_codes) WITH ORDINALITY
         AS u(k, i, c, o)
    WHERE l.campaign_id IN (SELECT campaign_id FROM f)
),
given AS (
    SELECT f.id, f.campaign_id, 'a' AS k, i AS item, f.answers ->> i AS code
    FROM f CROSS JOIN LATERAL unnest(f.single_items) AS i
    WHERE jsonb_typeof(f.answers -> i) IN ('number', 'string')
    UNION ALL
    SELECT f.id, f.campaign_id, 'm', i, ''
    FROM f CROSS JOIN LATERAL unnest(f.multiple_items) AS i
    WHERE jsonb_typeof(f.answers -> i) = 'array'
    UNION ALL
    SELECT f.id, f.campaign_id, 'c', i, e
    FROM f CROSS JOIN LATERAL unnest(f.multiple_items) AS i
    CROSS JOIN LATERAL jsonb_array_elements_text(
        CASE WHEN jsonb_typeof(f.answers -> i) = 'array' THEN f.answers -> i ELSE '[]' END
    ) AS e
    UNION ALL
    SELECT f.id, f.campaign_id, 't', '',
           (SELECT coalesce(sum((f.points -> p ->> (f.answers ->> p))::bigint), 0)
              FROM jsonb_object_keys(f.points) AS p)::text
    FROM f WHERE f.points IS NOT NULL
),
hits AS MATERIALIZED (
    SELECT g.id, sl.slot
    FROM given g JOIN sl ON sl.campaign_id = g.campaign_id AND sl.k = g.k AND sl.i = g.item
                        AND sl.c = g.code
),
keys AS MATERIALIZED (
    -- every cell key the statement touches, numbered, and its forms
    SELECT row_number() OVER () AS kid, campaign_id, facet, agency_id, sector, channel, rt, value,
           count(*) AS n
    FROM k GROUP BY campaign_id, facet, agency_id, sector, channel, rt, value
),
fk AS MATERIALIZED (
    SELECT k.id, keys.kid
    FROM k JOIN keys USING (campaign_id, facet, agency_id, sector, channel, rt, value)
),
c AS (
    SELECT kid, array_agg(slot) AS slots, array_agg(c) AS vals
    FROM (
        SELECT fk.kid, h.slot, count(*) * {sign} AS c
        FROM fk JOIN hits h ON h.id = fk.id
        GROUP BY fk.kid, h.slot
    ) AS x
    GROUP BY kid
),
kb AS (
    SELECT fk.kid, m.am, m.ym, row_number() OVER (PARTITION BY fk.kid ORDER BY fk.id) - 1 AS rn
    FROM fk JOIN m ON m.id = fk.id
),
w AS (
    SELECT kb.kid, kb.rn / 63 AS blk, q.pos,
           bit_or(((kb.am >> q.pos) & 1) << (kb.rn % 63)::int) AS wa,
           bit_or(((kb.ym >> q.pos) & 1) << (kb.rn % 63)::int) AS wy
    FROM kb CROSS JOIN generate_series(0, (SELECT max(cardinality(criteria)) FROM f) - 1) AS q(pos)
    GROUP BY kb.kid, blk, q.pos
),
wb AS (
    SELECT kid, blk, array_agg(wa ORDER BY pos) AS wa, array_agg(wy ORDER BY pos) AS wy
    FROM w GROUP BY kid, blk
),
pb AS (
    SELECT wb.kid, x.pairs
    FROM wb JOIN keys ON keys.kid = wb.kid
    JOIN index_cell_layouts l ON l.campaign_id = keys.campaign_id
    CROSS JOIN LATERAL (
        SELECT array_agg(bit_count((wb.wa[p.i + 1] & wb.wa[p.j + 1])::bit(64)) * {sign}
                         ORDER BY p.o)
            || array_agg(bit_count((wb.wy[p.i + 1] & wb.wa[p.j + 1])::bit(64)) * {sign}
                         ORDER BY p.o)
            || array_agg(bit_count((wb.wa[p.i + 1] & wb.wy[p.j + 1])::bit(64)) * {sign}
                         ORDER BY p.o)
            || array_agg(bit_count((wb.wy[p.i + 1] & wb.wy[p.j + 1])::bit(64)) * {sign}
                         ORDER BY p.o) AS pairs
        FROM unnest(l.pair_i, l.pair_j) WITH ORDINALITY AS p(i, j, o)
    ) AS x
),
pv AS (
    SELECT kid, index_cells_sum(pairs) AS pairs FROM pb GROUP BY kid
)
INSERT INTO index_cells AS r (campaign_id, facet, agency_id, sector, channel, respondent_type,
                              value, n, counts, pairs)
SELECT n.campaign_id, n.facet, n.agency_id, n.sector, n.channel, n.rt, n.value, n.n * {sign},
       index_cells_dense(coalesce(c.slots, '{{}}'), coalesce(c.vals, '{{}}'),
                         cardinality(l.slot_kinds)),
       coalesce(pv.pairs, array_fill(0::bigint, ARRAY[4 * cardinality(l.pair_i)]))
FROM keys n
LEFT JOIN c ON c.kid = n.kid
LEFT JOIN pv ON pv.kid = n.kid
JOIN index_cell_layouts l ON l.campaign_id = n.campaign_id
ORDER BY n.campaign_id, n.facet, n.agency_id, n.sector, n.channel, n.rt, n.value
ON CONFLICT (campaign_id, facet, agency_id, sector, channel, respondent_type, value) DO UPDATE
SET n = r.n + EXCLUDED.n,
    counts = index_cells_add(r.counts, EXCLUDED.counts),
    pairs = index_cells_add(r.pairs, EXCLUDED.pairs);
"""

# Lock the campaigns' state rows in a fixed order before touching their counts.
LOCK = """
PERFORM 1 FROM index_rollup_states
WHERE campaign_id IN ({campaigns}) ORDER BY campaign_id FOR UPDATE;
UPDATE index_rollup_states SET version = version + 1 WHERE campaign_id IN ({campaigns});
"""

# The transition tables carry no statistics: the planner guesses a few rows and, left free,
# nests loops over thousands (a statement of 5000 forms took minutes); every join here is an
# equality that hashes. With nested loops priced out, PostgreSQL 15/16 cost these statements
# above jit_above_cost, and a server built with LLVM then compiled each trigger's plan on every
# statement: 2.4 s for a one-form INSERT on Debian's PostgreSQL 15. JIT cannot pay off on
# statements this short, so it is off for them.
PLANNING = "SET work_mem = '64MB' SET enable_nestloop = off SET jit = off"


def _function(name: str, body: str, planning: str = PLANNING) -> str:
    return (
        f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql {planning}"
        f" AS $$\nBEGIN\n{body}\nRETURN NULL;\nEND\n$$"
    )


def _valid(rel: str) -> str:
    return f"SELECT campaign_id FROM {rel} WHERE state = 'valid'"


def _counted(rel: str) -> str:
    """Whether any row of `rel` counts: valid, in an installed campaign (state and layout)."""
    return (
        f"EXISTS (SELECT 1 FROM {rel} r JOIN index_rollup_states st"
        " ON st.campaign_id = r.campaign_id JOIN index_cell_layouts l"
        " ON l.campaign_id = r.campaign_id WHERE r.state = 'valid')"
    )


ON_INSERT = _function(
    "index_cells_on_insert",
    f"IF {_counted('new_rows')} THEN\n"
    + LOCK.format(campaigns=_valid("new_rows"))
    + CONTRIBUTION.format(rel="new_rows", sign="1")
    + "END IF;",
)
ON_DELETE = _function(
    "index_cells_on_delete",
    f"IF {_counted('old_rows')} THEN\n"
    + LOCK.format(campaigns=_valid("old_rows"))
    + CONTRIBUTION.format(rel="old_rows", sign="-1")
    + "END IF;",
)
ON_UPDATE = _function(
    "index_cells_on_update",
    f"IF {_counted('old_rows')} OR {_counted('new_rows')} THEN\n"
    + LOCK.format(campaigns=f"{_valid('old_rows')} UNION {_valid('new_rows')}")
    + CONTRIBUTION.format(rel="old_rows", sign="-1")
    + CONTRIBUTION.format(rel="new_rows", sign="1")
    + "END IF;",
)
ON_TRUNCATE = _function(
    "index_cells_on_truncate",
    "DELETE FROM index_cells;\nUPDATE index_rollup_states SET version = version + 1;",
    planning="",
)
REBUILD = (
    "CREATE FUNCTION index_cells_rebuild(target uuid) RETURNS void LANGUAGE plpgsql "
    + PLANNING
    + " AS $$\n"
    "BEGIN\n"
    + LOCK.format(campaigns="target")
    + "DELETE FROM index_cells WHERE campaign_id = target;\n"
    + CONTRIBUTION.format(rel="(SELECT * FROM submissions WHERE campaign_id = target)", sign="1")
    + "UPDATE index_rollup_states SET built_at = now() WHERE campaign_id = target;\n"
    "END\n$$"
)
TRIGGERS = (
    "CREATE TRIGGER index_cells_on_insert AFTER INSERT ON submissions"
    " REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT"
    " EXECUTE FUNCTION index_cells_on_insert()",
    "CREATE TRIGGER index_cells_on_update AFTER UPDATE ON submissions"
    " REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT"
    " EXECUTE FUNCTION index_cells_on_update()",
    "CREATE TRIGGER index_cells_on_delete AFTER DELETE ON submissions"
    " REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT"
    " EXECUTE FUNCTION index_cells_on_delete()",
    "CREATE TRIGGER index_cells_on_truncate AFTER TRUNCATE ON submissions"
    " FOR EACH STATEMENT EXECUTE FUNCTION index_cells_on_truncate()",
)
FUNCTIONS = ("on_insert", "on_update", "on_delete", "on_truncate")

# The per-agency roll-ups of 0008, as a view: what a reader of that table saw.
VIEW = """
CREATE VIEW index_rollups AS
WITH c AS (
    SELECT campaign_id, agency_id, sum(n) AS n, index_cells_sum(counts) AS counts,
           index_cells_sum(pairs) AS pairs
    FROM index_cells WHERE facet = '' GROUP BY campaign_id, agency_id
)
SELECT c.campaign_id, c.agency_id, 'respondents'::text AS kind, ''::text AS item,
       ''::text AS other, c.n, 0::bigint AS s1, 0::bigint AS s2, 0::bigint AS s12
FROM c
UNION ALL
SELECT c.campaign_id, c.agency_id,
       CASE u.k WHEN 'c' THEN 'choice' WHEN 't' THEN 'total' ELSE 'answer' END,
       CASE WHEN u.k = 't' THEN '' ELSE u.i END,
       CASE WHEN u.k = 'm' THEN '__answered__' ELSE u.c END,
       u.n, 0, 0, 0
FROM c JOIN index_cell_layouts l ON l.campaign_id = c.campaign_id
CROSS JOIN LATERAL unnest(l.slot_kinds, l.slot_items, l.slot_codes, c.counts) AS u(k, i, c, n)
UNION ALL
SELECT c.campaign_id, c.agency_id, 'pair', l.criteria[p.i + 1], l.criteria[p.j + 1],
       c.pairs[p.o], c.pairs[m.np + p.o], c.pairs[2 * m.np + p.o], c.pairs[3 * m.np + p.o]
FROM c JOIN index_cell_layouts l ON l.campaign_id = c.campaign_id
CROSS JOIN LATERAL (SELECT coalesce(cardinality(l.pair_i), 0) AS np) AS m
CROSS JOIN LATERAL unnest(l.pair_i, l.pair_j) WITH ORDINALITY AS p(i, j, o)
"""


def _old() -> Any:
    """Migration 0008's module (its trigger functions, for the downgrade)."""
    from app.schema import migration_module

    return migration_module("0008_index_roll_ups_kept_by_the_database.py")


def upgrade() -> None:
    op.create_table(
        "index_cell_layouts",
        sa.Column("campaign_id", sa.Uuid(), nullable=False),
        sa.Column("slot_kinds", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.Column("slot_items", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.Column("slot_codes", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.Column("single_items", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.Column("multiple_items", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.Column("criteria", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.Column("positives", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("pair_i", postgresql.ARRAY(sa.SmallInteger()), nullable=False),
        sa.Column("pair_j", postgresql.ARRAY(sa.SmallInteger()), nullable=False),
        sa.Column("points", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("facets", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.CheckConstraint(
            "cardinality(criteria) < 64", name=op.f("ck_index_cell_layouts_criteria_fit_a_mask")
        ),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.id"],
            name=op.f("fk_index_cell_layouts_campaign_id_campaigns"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("campaign_id", name=op.f("pk_index_cell_layouts")),
    )
    # After the revision that partitions the forms by campaign (0011p), the cells follow them:
    # one partition per campaign, made by its `campaign_partitions_create`.
    partitioned = bool(
        op.get_bind().scalar(
            sa.text(
                "SELECT EXISTS (SELECT 1 FROM pg_partitioned_table pt"
                " JOIN pg_class c ON c.oid = pt.partrelid WHERE c.relname = 'submissions')"
            )
        )
    )
    op.create_table(
        "index_cells",
        sa.Column("campaign_id", sa.Uuid(), nullable=False),
        sa.Column("facet", sa.Text(), nullable=False),
        sa.Column("agency_id", sa.Uuid(), nullable=False),
        sa.Column("sector", sa.Text(), nullable=False),
        sa.Column("channel", sa.Text(), nullable=False),
        sa.Column("respondent_type", sa.Text(), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.Column("counts", postgresql.ARRAY(sa.BigInteger()), nullable=False),
        sa.Column("pairs", postgresql.ARRAY(sa.BigInteger()), nullable=False),
        sa.ForeignKeyConstraint(
            ["agency_id"],
            ["agencies.id"],
            name=op.f("fk_index_cells_agency_id_agencies"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.id"],
            name=op.f("fk_index_cells_campaign_id_campaigns"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "campaign_id",
            "facet",
            "agency_id",
            "sector",
            "channel",
            "respondent_type",
            "value",
            name=op.f("pk_index_cells"),
        ),
        **({"postgresql_partition_by": "LIST (campaign_id)"} if partitioned else {}),
    )
    if partitioned:
        op.execute("SELECT campaign_partitions_create(id) FROM campaigns")
    for name in FUNCTIONS:
        op.execute(f"DROP TRIGGER index_rollups_{name} ON submissions")
        op.execute(f"DROP FUNCTION index_rollups_{name}()")
    op.execute("DROP FUNCTION index_rollups_rebuild(uuid)")
    op.drop_table("index_rollups")
    op.drop_table("index_rollup_items")
    for statement in (ADD, SUM, DENSE, ON_INSERT, ON_UPDATE, ON_DELETE, ON_TRUNCATE, REBUILD, VIEW):
        op.execute(statement)
    for statement in TRIGGERS:
        op.execute(statement)
    _recount_installed()


def _recount_installed() -> None:
    """Write the layout of every installed campaign and count its forms again."""
    from app.services import instrument
    from app.services.index import rollups

    bind = op.get_bind()
    rows = bind.execute(
        sa.text(
            """SELECT st.campaign_id, q.definition FROM index_rollup_states st
               JOIN campaigns c ON c.id = st.campaign_id
               JOIN questionnaires q ON q.id = c.questionnaire_id"""
        )
    ).all()
    for campaign_id, definition in rows:
        layout = rollups.Layout.of(instrument.Questionnaire.model_validate(definition))
        if layout is None:
            bind.execute(
                sa.text("DELETE FROM index_rollup_states WHERE campaign_id = :c"),
                {"c": campaign_id},
            )
            continue
        bind.execute(rollups.LAYOUT_INSERT, layout.params(campaign_id))
        bind.execute(sa.text("SELECT index_cells_rebuild(:c)"), {"c": campaign_id})


def downgrade() -> None:
    op.execute("DROP VIEW index_rollups")
    for name in FUNCTIONS:
        op.execute(f"DROP TRIGGER index_cells_{name} ON submissions")
        op.execute(f"DROP FUNCTION index_cells_{name}()")
    op.execute("DROP FUNCTION index_cells_rebuild(uuid)")
    op.drop_table("index_cells")
    op.drop_table("index_cell_layouts")
    op.execute("DROP AGGREGATE index_cells_sum(bigint[])")
    op.execute("DROP FUNCTION index_cells_add(bigint[], bigint[])")
    op.execute("DROP FUNCTION index_cells_dense(int[], bigint[], int)")
    # 0008's tables, functions and triggers again; campaigns are installed anew by `sipas
    # migrate` (their roll-ups need the questionnaire's positions, which 0008 kept per item).
    old = _old()
    op.execute("DELETE FROM index_rollup_states")
    op.create_table(
        "index_rollup_items",
        sa.Column("campaign_id", sa.Uuid(), nullable=False),
        sa.Column("item", sa.Text(), nullable=False),
        sa.Column("pos", sa.SmallInteger(), nullable=True),
        sa.Column("positives", postgresql.ARRAY(sa.Text()), nullable=True),
        sa.Column("points", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.CheckConstraint(
            "pos IS NULL OR (pos >= 0 AND pos < 63)",
            name=op.f("ck_index_rollup_items_pos_in_range"),
        ),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.id"],
            name=op.f("fk_index_rollup_items_campaign_id_campaigns"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("campaign_id", "item", name=op.f("pk_index_rollup_items")),
    )
    op.create_table(
        "index_rollups",
        sa.Column("campaign_id", sa.Uuid(), nullable=False),
        sa.Column("agency_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("item", sa.Text(), nullable=False),
        sa.Column("other", sa.Text(), nullable=False),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.Column("s1", sa.BigInteger(), nullable=False),
        sa.Column("s2", sa.BigInteger(), nullable=False),
        sa.Column("s12", sa.BigInteger(), nullable=False),
        sa.CheckConstraint(
            "kind IN ('respondents', 'answer', 'choice', 'pair', 'total')",
            name=op.f("ck_index_rollups_kind_known"),
        ),
        sa.ForeignKeyConstraint(
            ["agency_id"],
            ["agencies.id"],
            name=op.f("fk_index_rollups_agency_id_agencies"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.id"],
            name=op.f("fk_index_rollups_campaign_id_campaigns"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "campaign_id", "agency_id", "kind", "item", "other", name=op.f("pk_index_rollups")
        ),
    )
    for statement in (
        old.ON_INSERT,
        old.ON_UPDATE,
        old.ON_DELETE,
        old.ON_TRUNCATE,
        old.REBUILD,
        *old.TRIGGERS,
    ):
        op.execute(statement)
