# ruff: noqa: S608 - the SQL below is built from constants of this file, never from input
"""index roll-ups kept by the database

Per campaign and agency, the counts of valid forms that the index is computed from: respondents,
answers per code, choices per option, pairs of criteria (for the intervals of 2.10) and dossier
totals. Statement triggers on `submissions` add the contribution of every valid row inserted
and subtract that of every valid row deleted (an update is both), for the campaigns that have a
row in `index_rollup_states`; `index_rollups_rebuild(campaign)` recounts one campaign from its
forms. Writers of one campaign take its state row first, so they never deadlock on the counts.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-27 05:18:42.845358+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The contribution of the valid forms of a relation {rel} (aliased s), times {sign}, added to the
# counts. Criteria answers become two bit masks per form (answered, satisfied), forms with equal
# masks are counted together, and each pattern adds to every pair of criteria it answered.
CONTRIBUTION = """
WITH f AS MATERIALIZED (
    SELECT s.id, s.campaign_id, s.agency_id, s.answers
    FROM {rel} s
    WHERE s.state = 'valid'
      AND s.campaign_id IN (SELECT campaign_id FROM index_rollup_states)
),
a AS MATERIALIZED (
    SELECT f.id, f.campaign_id, f.agency_id, e.key AS item, e.value
    FROM f CROSS JOIN LATERAL jsonb_each(f.answers) AS e
    WHERE jsonb_typeof(e.value) <> 'null'
),
masks AS (
    SELECT a.campaign_id, a.agency_id, a.id,
           bit_or(1::bigint << it.pos) AS answered,
           bit_or(CASE WHEN (a.value #>> '{{}}') = ANY (it.positives)
                       THEN 1::bigint << it.pos ELSE 0 END) AS satisfied
    FROM a JOIN index_rollup_items it ON it.campaign_id = a.campaign_id AND it.item = a.item
    WHERE it.pos IS NOT NULL AND jsonb_typeof(a.value) IN ('number', 'string')
    GROUP BY 1, 2, 3
),
patterns AS (
    SELECT campaign_id, agency_id, answered, satisfied, count(*) AS c
    FROM masks GROUP BY 1, 2, 3, 4
),
pairs AS (
    SELECT x.campaign_id, x.item AS i, y.item AS j, 1::bigint << x.pos AS bi, 1::bigint << y.pos AS bj
    FROM index_rollup_items x
    JOIN index_rollup_items y ON y.campaign_id = x.campaign_id AND x.item < y.item
    WHERE x.pos IS NOT NULL AND y.pos IS NOT NULL
      AND x.campaign_id IN (SELECT campaign_id FROM f)
),
totals AS (
    SELECT f.campaign_id, f.agency_id, f.id,
           coalesce(sum((it.points ->> (a.value #>> '{{}}'))::bigint), 0) AS total
    FROM f
    LEFT JOIN a ON a.id = f.id
    LEFT JOIN index_rollup_items it
           ON it.campaign_id = a.campaign_id AND it.item = a.item AND it.points IS NOT NULL
    WHERE EXISTS (SELECT 1 FROM index_rollup_items d
                  WHERE d.campaign_id = f.campaign_id AND d.points IS NOT NULL)
    GROUP BY 1, 2, 3
),
parts (campaign_id, agency_id, kind, item, other, n, s1, s2, s12) AS (
    SELECT campaign_id, agency_id, 'respondents', '', '', count(*), 0::bigint, 0::bigint, 0::bigint
    FROM f GROUP BY 1, 2
    UNION ALL
    SELECT campaign_id, agency_id, 'answer', item,
           CASE WHEN jsonb_typeof(value) = 'array' THEN '__answered__' ELSE value #>> '{{}}' END,
           count(*), 0, 0, 0
    FROM a GROUP BY 1, 2, 4, 5
    UNION ALL
    SELECT a.campaign_id, a.agency_id, 'choice', a.item, o.option, count(*), 0, 0, 0
    FROM a CROSS JOIN LATERAL jsonb_array_elements_text(a.value) AS o(option)
    WHERE jsonb_typeof(a.value) = 'array'
    GROUP BY 1, 2, 4, 5
    UNION ALL
    SELECT p.campaign_id, p.agency_id, 'pair', q.i, q.j, sum(p.c),
           coalesce(sum(p.c) FILTER (WHERE p.satisfied & q.bi <> 0), 0),
           coalesce(sum(p.c) FILTER (WHERE p.satisfied & q.bj <> 0), 0),
           coalesce(sum(p.c) FILTER (WHERE p.satisfied & q.bi <> 0 AND p.satisfied & q.bj <> 0), 0)
    FROM patterns p
    JOIN pairs q ON q.campaign_id = p.campaign_id
                AND p.answered & q.bi <> 0 AND p.answered & q.bj <> 0
    GROUP BY 1, 2, 4, 5
    UNION ALL
    SELECT campaign_id, agency_id, 'total', '', total::text, count(*), 0, 0, 0
    FROM totals GROUP BY 1, 2, 5
)
INSERT INTO index_rollups AS r (campaign_id, agency_id, kind, item, other, n, s1, s2, s12)
SELECT campaign_id, agency_id, kind, item, other,
       {sign} * n, {sign} * s1, {sign} * s2, {sign} * s12
FROM parts
ORDER BY 1, 2, 3, 4, 5
ON CONFLICT (campaign_id, agency_id, kind, item, other) DO UPDATE
SET n = r.n + EXCLUDED.n, s1 = r.s1 + EXCLUDED.s1, s2 = r.s2 + EXCLUDED.s2,
    s12 = r.s12 + EXCLUDED.s12;
"""

# Lock the campaigns' state rows in a fixed order before touching their counts.
LOCK = """
PERFORM 1 FROM index_rollup_states
WHERE campaign_id IN ({campaigns}) ORDER BY campaign_id FOR UPDATE;
UPDATE index_rollup_states SET version = version + 1 WHERE campaign_id IN ({campaigns});
"""


# The pair counts join every form's pattern with every pair of criteria (about 230 rows per form
# for sipas-2017): a bulk recount hashes them in memory. (Turning sorts off as well was faster on
# PostgreSQL 18 but gave PostgreSQL 15 pathological plans for a handful of rows.)
PLANNING = "SET work_mem = '64MB'"


def _function(name: str, body: str, planning: str = PLANNING) -> str:
    return (
        f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql {planning}"
        f" AS $$\nBEGIN\n{body}\nRETURN NULL;\nEND\n$$"
    )


def _valid(rel: str) -> str:
    return f"SELECT campaign_id FROM {rel} WHERE state = 'valid'"


def _counted(rel: str) -> str:
    """Whether any row of `rel` counts: valid, in a campaign that has roll-ups."""
    return (
        f"EXISTS (SELECT 1 FROM {rel} r JOIN index_rollup_states st"
        " ON st.campaign_id = r.campaign_id WHERE r.state = 'valid')"
    )


ON_INSERT = _function(
    "index_rollups_on_insert",
    f"IF {_counted('new_rows')} THEN\n"
    + LOCK.format(campaigns=_valid("new_rows"))
    + CONTRIBUTION.format(rel="new_rows", sign="1")
    + "END IF;",
)
ON_DELETE = _function(
    "index_rollups_on_delete",
    f"IF {_counted('old_rows')} THEN\n"
    + LOCK.format(campaigns=_valid("old_rows"))
    + CONTRIBUTION.format(rel="old_rows", sign="-1")
    + "END IF;",
)
ON_UPDATE = _function(
    "index_rollups_on_update",
    f"IF {_counted('old_rows')} OR {_counted('new_rows')} THEN\n"
    + LOCK.format(campaigns=f"{_valid('old_rows')} UNION {_valid('new_rows')}")
    + CONTRIBUTION.format(rel="old_rows", sign="-1")
    + CONTRIBUTION.format(rel="new_rows", sign="1")
    + "END IF;",
)
ON_TRUNCATE = _function(
    "index_rollups_on_truncate",
    "DELETE FROM index_rollups;\nUPDATE index_rollup_states SET version = version + 1;",
    planning="",
)
REBUILD = (
    "CREATE FUNCTION index_rollups_rebuild(target uuid) RETURNS void LANGUAGE plpgsql "
    + PLANNING
    + " AS $$\n"
    "BEGIN\n"
    + LOCK.format(campaigns="target")
    + "DELETE FROM index_rollups WHERE campaign_id = target;\n"
    + CONTRIBUTION.format(rel="(SELECT * FROM submissions WHERE campaign_id = target)", sign="1")
    + "UPDATE index_rollup_states SET built_at = now() WHERE campaign_id = target;\n"
    "END\n$$"
)
TRIGGERS = (
    "CREATE TRIGGER index_rollups_on_insert AFTER INSERT ON submissions"
    " REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT"
    " EXECUTE FUNCTION index_rollups_on_insert()",
    "CREATE TRIGGER index_rollups_on_update AFTER UPDATE ON submissions"
    " REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT"
    " EXECUTE FUNCTION index_rollups_on_update()",
    "CREATE TRIGGER index_rollups_on_delete AFTER DELETE ON submissions"
    " REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT"
    " EXECUTE FUNCTION index_rollups_on_delete()",
    "CREATE TRIGGER index_rollups_on_truncate AFTER TRUNCATE ON submissions"
    " FOR EACH STATEMENT EXECUTE FUNCTION index_rollups_on_truncate()",
)
FUNCTIONS = ("on_insert", "on_update", "on_delete", "on_truncate")


def upgrade() -> None:
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
        "index_rollup_states",
        sa.Column("campaign_id", sa.Uuid(), nullable=False),
        sa.Column("version", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column(
            "built_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.id"],
            name=op.f("fk_index_rollup_states_campaign_id_campaigns"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("campaign_id", name=op.f("pk_index_rollup_states")),
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
    for statement in (ON_INSERT, ON_UPDATE, ON_DELETE, ON_TRUNCATE, REBUILD, *TRIGGERS):
        op.execute(statement)


def downgrade() -> None:
    for name in FUNCTIONS:
        op.execute(f"DROP TRIGGER index_rollups_{name} ON submissions")
        op.execute(f"DROP FUNCTION index_rollups_{name}()")
    op.execute("DROP FUNCTION index_rollups_rebuild(uuid)")
    op.drop_table("index_rollups")
    op.drop_table("index_rollup_states")
    op.drop_table("index_rollup_items")
