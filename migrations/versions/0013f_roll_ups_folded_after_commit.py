# ruff: noqa: S608 - the SQL below is built from constants of 0011c and this file, never from input
"""roll-ups folded after commit: forms are written bare, the cells catch up in large batches

Until now a statement trigger added every inserted form to its cells in the writing
transaction: about 660 µs a form in statements of 5000 (bench/RESULTS.md, docs/scaling.md §4),
twenty times a bare COPY. Inserts now carry no trigger. Each campaign's state row says up to
which writing transaction its cells hold the forms (`folded_to`, a transaction id: every form
with `tx_id` below it is in the cells, every form at or above it is not), and:

- `index_cells_fold(campaign, most)` adds the forms written since, up to the oldest running
  transaction (`pg_snapshot_xmin`: every transaction below it has ended, so no form can still
  appear below it), at most about `most` of them, and moves `folded_to`. It runs after commit
  (`sipas worker`, `sipas fold`), steps aside when another transaction holds the campaign's
  cells, and changes no reader's figures: the forms move from the tail into the cells.
- `index_cells_tail(campaign)` is the number of forms not folded yet (an index probe when there
  are none), and `index_cells_pending(campaign, facet)` is the tail: the same counts for the forms not folded
  yet, computed from the forms in the reader's own snapshot. A read adds it to the cells, so
  reads stay exact (a writer reads its own writes) whether or not the worker has caught up.
- Updates and deletes still adjust the cells in the writing transaction, but only for folded
  forms (a form of the tail is read from its current row anyway); they take the campaign's
  advisory lock, as folds do, so a fold and a correction of the same forms follow one another.
- `index_cells_rebuild` counts the forms below the horizon and sets `folded_to` to it.

Upgrade recounts every installed campaign (the cells then hold what is below the horizon);
downgrade restores the insert trigger and recounts again.

Revision ID: 0013f
Revises: 0012e
Create Date: 2026-12-01 00:20:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from app.schema import migration_module

revision: str = "0013f"
down_revision: str | None = "0012e"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# Migration 0011c's module: the contribution statement and the functions it made.
C = migration_module("0011c_index_cells_every_breakdown_from_roll_ups.py")

# A campaign's cells are changed by one transaction at a time: corrections (the triggers), folds
# and recounts take its advisory lock, in campaign order, then move its version. An advisory
# lock needs no transaction id, so a fold computes its counts without one and holds back no
# other reader's horizon (`pg_snapshot_xmin`: the event feed's, the next fold's) until it
# writes them.
KEY = "hashtext('index_cells'), hashtext({c}::text)"
LOCK = (
    "PERFORM pg_advisory_xact_lock("
    + KEY.format(c="campaign_id")
    + ") FROM index_rollup_states WHERE campaign_id IN ({campaigns}) ORDER BY campaign_id;\n"
    "UPDATE index_rollup_states SET version = version + 1 WHERE campaign_id IN ({campaigns});\n"
)

# The rows of a transition table whose forms are already in the cells.
FOLDED = (
    "(SELECT x.* FROM {rel} x JOIN index_rollup_states st ON st.campaign_id = x.campaign_id"
    " WHERE x.tx_id < st.folded_to)"
)


def _changes(*parts: tuple[str, str]) -> str:
    """A trigger body: when a counted row changes, take the state rows (and move their version,
    folded or not: the cache's key), then subtract or add the folded rows."""
    rels = [rel for rel, _ in parts]
    counted = " OR ".join(C._counted(rel) for rel in rels)
    campaigns = " UNION ".join(C._valid(rel) for rel in rels)
    return (
        f"IF {counted} THEN\n"
        + LOCK.format(campaigns=campaigns)
        + "".join(C.CONTRIBUTION.format(rel=FOLDED.format(rel=r), sign=s) for r, s in parts)
        + "END IF;"
    )


ON_UPDATE = C._function("index_cells_on_update", _changes(("old_rows", "-1"), ("new_rows", "1")))
ON_DELETE = C._function("index_cells_on_delete", _changes(("old_rows", "-1")))

HORIZON = "horizon := (pg_snapshot_xmin(pg_current_snapshot())::text)::bigint;\n"

REBUILD = (
    "CREATE FUNCTION index_cells_rebuild(target uuid) RETURNS void LANGUAGE plpgsql "
    + C.PLANNING
    + " AS $$\nDECLARE\n    horizon bigint;\nBEGIN\n"
    + LOCK.format(campaigns="target")
    + HORIZON
    + "DELETE FROM index_cells WHERE campaign_id = target;\n"
    + C.CONTRIBUTION.format(
        rel="(SELECT * FROM submissions WHERE campaign_id = target AND tx_id < horizon)", sign="1"
    )
    + "UPDATE index_rollup_states SET built_at = now(), folded_to = horizon"
    " WHERE campaign_id = target;\n"
    "END\n$$"
)

# What reads the tail reads a short range at the end of the campaign's forms: by the index on
# `tx_id` always, even right after a bulk load, before statistics say how short the range is (a
# sequential scan of millions of forms would cost seconds on every read).
RANGE_PLANNING = C.PLANNING + " SET enable_seqscan = off"

# The number of the campaign's forms not folded yet (of any state): 0 without touching the forms
# beyond one index probe when the tail is empty, as it is once the worker has caught up.
TAIL = (
    "CREATE FUNCTION index_cells_tail(target uuid) RETURNS bigint LANGUAGE plpgsql STABLE "
    + RANGE_PLANNING
    + """ AS $$
DECLARE
    lo bigint;
BEGIN
    SELECT folded_to INTO lo FROM index_rollup_states WHERE campaign_id = target;
    IF lo IS NULL
       OR coalesce((SELECT max(tx_id) FROM submissions WHERE campaign_id = target), -1) < lo THEN
        RETURN 0;
    END IF;
    RETURN (SELECT count(*) FROM submissions WHERE campaign_id = target AND tx_id >= lo);
END
$$"""
)

# At most about `most` forms (whole transactions: one larger than `most` is folded alone), or
# all of them below the horizon when `most` is NULL. NULL when another session holds the state
# row (a fold, a correction): the caller tries again later.
FOLD = (
    "CREATE FUNCTION index_cells_fold(target uuid, most bigint) RETURNS bigint LANGUAGE plpgsql "
    + RANGE_PLANNING
    + """ AS $$
DECLARE
    lo bigint;
    hi bigint;
    horizon bigint;
    first bigint;
    forms bigint;
BEGIN
    IF NOT pg_try_advisory_xact_lock("""
    + KEY.format(c="target")
    + """) THEN
        RETURN NULL;
    END IF;
    SELECT folded_to INTO lo FROM index_rollup_states WHERE campaign_id = target;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
"""
    + HORIZON
    + """    IF horizon <= lo THEN
        RETURN 0;
    END IF;
    IF most IS NOT NULL THEN
        SELECT s.tx_id INTO hi FROM submissions s
        WHERE s.campaign_id = target AND s.tx_id >= lo AND s.tx_id < horizon
        ORDER BY s.tx_id OFFSET most LIMIT 1;
    END IF;
    -- the first transaction whole, however large, so that every fold moves on
    SELECT min(s.tx_id) INTO first FROM submissions s
    WHERE s.campaign_id = target AND s.tx_id >= lo AND s.tx_id < horizon;
    hi := CASE WHEN first IS NULL THEN horizon ELSE greatest(coalesce(hi, horizon), first + 1) END;
    SELECT count(*) INTO forms FROM submissions s
    WHERE s.campaign_id = target AND s.tx_id >= lo AND s.tx_id < hi;
"""
    + C.CONTRIBUTION.format(
        rel="(SELECT * FROM submissions WHERE campaign_id = target AND tx_id >= lo AND tx_id < hi)",
        sign="1",
    )
    + """UPDATE index_rollup_states SET folded_to = hi WHERE campaign_id = target;
    RETURN forms;
END
$$"""
)

# The counts of the forms not folded yet, as rows of the cells (facet `want`, or every facet
# when NULL), in the caller's snapshot. The contribution's statement up to its INSERT, with the
# keys kept to the facet asked for.
_BODY, _INSERT = C.CONTRIBUTION.format(
    rel="(SELECT * FROM submissions WHERE campaign_id = target AND tx_id >= lo)", sign="1"
).split("INSERT INTO index_cells AS r")
# the rows the INSERT would add, as the function's result
_ROWS = "SELECT" + _INSERT.split("SELECT", 1)[1].split("ORDER BY", 1)[0]
_KEYS = "    ) AS x\n),\nsl AS"
if _BODY.count(_KEYS) != 1:  # pragma: no cover - 0011c is history, it does not change
    raise RuntimeError("0011c's statement changed: the facet filter has no place")
PENDING = (
    "CREATE FUNCTION index_cells_pending(target uuid, want text) RETURNS TABLE (campaign_id uuid,"
    " facet text, agency_id uuid, sector text, channel text, respondent_type text, value text, n bigint,"
    " counts bigint[], pairs bigint[]) LANGUAGE plpgsql STABLE "
    + RANGE_PLANNING
    + """ AS $$
#variable_conflict use_column
DECLARE
    lo bigint;
BEGIN
    SELECT st.folded_to INTO lo FROM index_rollup_states st WHERE st.campaign_id = target;
    IF lo IS NULL
       OR coalesce((SELECT max(s.tx_id) FROM submissions s WHERE s.campaign_id = target), -1)
          < lo THEN
        RETURN;  -- no tail: one index probe, not the statement's plan
    END IF;
    RETURN QUERY
"""
    + _BODY.replace(_KEYS, "    ) AS x\n    WHERE want IS NULL OR x.facet = want\n),\nsl AS")
    + _ROWS
    + ";\nEND\n$$"
)

# The per-agency view of 0011c, now of what a read sees: the cells and the tail.
_PER_AGENCY = "FROM index_cells WHERE facet = '' GROUP BY campaign_id, agency_id"
VIEW = C.VIEW.replace("CREATE VIEW", "CREATE OR REPLACE VIEW").replace(
    _PER_AGENCY,
    """FROM (SELECT campaign_id, agency_id, n, counts, pairs FROM index_cells WHERE facet = ''
          UNION ALL
          SELECT st.campaign_id, t.agency_id, t.n, t.counts, t.pairs FROM index_rollup_states st
          CROSS JOIN LATERAL index_cells_pending(st.campaign_id, '') AS t) AS cells
    GROUP BY campaign_id, agency_id""",
)
if VIEW.count("index_cells_pending") != 1:  # pragma: no cover - as above
    raise RuntimeError("0011c's view changed")

RECOUNT = "SELECT index_cells_rebuild(campaign_id) FROM index_rollup_states ORDER BY campaign_id"


def upgrade() -> None:
    op.add_column(
        "index_rollup_states",
        sa.Column("folded_to", sa.BigInteger(), server_default="0", nullable=False),
    )
    op.execute("DROP TRIGGER index_cells_on_insert ON submissions")
    op.execute("DROP FUNCTION index_cells_on_insert()")
    for name in ("on_update", "on_delete"):
        op.execute(f"DROP FUNCTION index_cells_{name}() CASCADE")
    op.execute("DROP FUNCTION index_cells_rebuild(uuid)")
    for statement in (ON_UPDATE, ON_DELETE, REBUILD, TAIL, FOLD, PENDING, VIEW, *C.TRIGGERS[1:3]):
        op.execute(statement)
    op.execute(RECOUNT)


def downgrade() -> None:
    op.execute(C.VIEW.replace("CREATE VIEW", "CREATE OR REPLACE VIEW"))
    op.execute("DROP FUNCTION index_cells_pending(uuid, text)")
    op.execute("DROP FUNCTION index_cells_fold(uuid, bigint)")
    op.execute("DROP FUNCTION index_cells_tail(uuid)")
    op.execute("DROP FUNCTION index_cells_rebuild(uuid)")
    for name in ("on_update", "on_delete"):
        op.execute(f"DROP FUNCTION index_cells_{name}() CASCADE")
    op.drop_column("index_rollup_states", "folded_to")
    for statement in (C.ON_INSERT, C.ON_UPDATE, C.ON_DELETE, C.REBUILD, *C.TRIGGERS[:3]):
        op.execute(statement)
    op.execute(RECOUNT)
