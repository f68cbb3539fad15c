# ruff: noqa: S608 - the SQL below is built from constants of this file, never from input
"""forms and roll-ups partitioned by campaign

`submissions` and `index_rollups` become tables PARTITIONED BY LIST (campaign_id), one partition
per campaign: a campaign's reads and writes touch only its partition, and archiving an old
campaign is DETACH / DROP PARTITION (app/services/partitions.py, docs/scaling.md). Every key of
a form holds the partition key: the primary key is (id, campaign_id), one form per invitation is
unique per (campaign_id, invitation_id), and the rows keyed to a form (versions, invitations,
re-checks, observations) reference it by (submission_id, campaign_id); versions get the
campaign's id, the others had it. Those tables' primary keys hold campaign_id too, the rule a
table distributed by campaign (Citus) needs.

`campaign_partitions_create(campaign)` gives a campaign a partition of every table partitioned
by campaign_id; a trigger on `campaigns` calls it for each new campaign, in its transaction.
There is no DEFAULT partition. The triggers of both tables (the roll-up statement triggers) are
read from the catalogue and made again on the new tables after the rows are copied.

Revision ID: 0011p
Revises: 0010q
Create Date: 2026-11-30 17:00:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011p"
down_revision: str | None = "0010q"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Kept in this file (not imported from app/) so that the migration stays what it was when the
# app's text moves on; app/services/partitions.py holds the same function.
CREATE_FUNCTION = r"""
CREATE FUNCTION campaign_partitions_create(campaign uuid) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
DECLARE
    parent text;
    part text;
BEGIN
    FOR parent IN
        SELECT c.relname
        FROM pg_partitioned_table pt
        JOIN pg_class c ON c.oid = pt.partrelid
        JOIN pg_attribute a ON a.attrelid = pt.partrelid AND a.attnum = pt.partattrs[0]
        WHERE pt.partstrat = 'l' AND pt.partnatts = 1 AND a.attname = 'campaign_id'
          AND c.relnamespace = current_schema()::regnamespace
        ORDER BY c.relname
    LOOP
        part := parent || '_of_' || replace(campaign::text, '-', '');
        IF to_regclass(quote_ident(part)) IS NULL THEN
            EXECUTE format('CREATE TABLE %I (LIKE %I INCLUDING DEFAULTS INCLUDING CONSTRAINTS)',
                           part, parent);
            EXECUTE format('ALTER TABLE %I ATTACH PARTITION %I FOR VALUES IN (%L)',
                           parent, part, campaign);
        END IF;
    END LOOP;
END
$$
"""
CREATE_TRIGGER = (
    """
    CREATE FUNCTION campaign_partitions_on_insert() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
        PERFORM campaign_partitions_create(NEW.id);
        RETURN NULL;
    END
    $$
    """,
    "CREATE TRIGGER campaign_partitions_on_insert AFTER INSERT ON campaigns"
    " FOR EACH ROW EXECUTE FUNCTION campaign_partitions_on_insert()",
)

SUBMISSION_INDEXES = (
    ("ix_submissions_campaign_state", "campaign_id, state"),
    ("ix_submissions_campaign_agency", "campaign_id, agency_id"),
    ("ix_submissions_stratum_id", "stratum_id"),
    ("ix_submissions_tx_order", "tx_id, id"),
    ("ix_submissions_campaign_updated", "campaign_id, updated_at"),
)
# (constraint, column, referred table, on delete) of the forms' single-column foreign keys.
SUBMISSION_FKS = (
    ("fk_submissions_campaign_id_campaigns", "campaign_id", "campaigns", "RESTRICT"),
    ("fk_submissions_agency_id_agencies", "agency_id", "agencies", "RESTRICT"),
    ("fk_submissions_sector_id_sectors", "sector_id", "sectors", "RESTRICT"),
    ("fk_submissions_procedure_id_procedures", "procedure_id", "procedures", "RESTRICT"),
    ("fk_submissions_stratum_id_strata", "stratum_id", "strata", "SET NULL"),
    ("fk_submissions_frame_unit_id_frame_units", "frame_unit_id", "frame_units", "SET NULL"),
    ("fk_submissions_client_id_clients", "client_id", "clients", "RESTRICT"),
    ("fk_submissions_surveyor_id_users", "surveyor_id", "users", "RESTRICT"),
)
ROLLUP_FKS = (
    ("fk_index_rollups_agency_id_agencies", "agency_id", "agencies", "CASCADE"),
    ("fk_index_rollups_campaign_id_campaigns", "campaign_id", "campaigns", "CASCADE"),
)
# (table, on delete) of the rows keyed to a form: (submission_id, campaign_id) once upgraded.
KEYED = (
    ("submission_versions", "CASCADE"),
    ("invitations", "SET NULL"),
    ("rechecks", "CASCADE"),
    ("observations", "SET NULL"),
)


def _columns(table: str) -> str:
    """The table's columns in order, for INSERT ... SELECT between its two shapes."""
    rows = (
        op.get_bind()
        .execute(
            sa.text(
                "SELECT attname FROM pg_attribute WHERE attrelid = CAST(:t AS regclass)"
                " AND attnum > 0 AND NOT attisdropped ORDER BY attnum"
            ),
            {"t": table},
        )
        .all()
    )
    return ", ".join(f'"{name}"' for (name,) in rows)


def _triggers(*tables: str) -> list[str]:
    """The user triggers of `tables` as CREATE statements, to make again on the new tables:
    today the roll-up triggers of 0008 on `submissions` (statement triggers with transition
    tables, allowed on a partitioned parent), and whatever a later roll-up revision put there."""
    rows = (
        op.get_bind()
        .execute(
            sa.text(
                "SELECT pg_get_triggerdef(t.oid) FROM pg_trigger t"
                " WHERE t.tgrelid = ANY(CAST(:tables AS regclass[])) AND NOT t.tgisinternal"
                " ORDER BY t.tgrelid, t.tgname"
            ),
            {"tables": list(tables)},
        )
        .all()
    )
    return [definition for (definition,) in rows]


def _set_primary_key(table: str, columns: str) -> None:
    op.execute(f"ALTER TABLE {table} DROP CONSTRAINT pk_{table}")
    op.execute(f"ALTER TABLE {table} ADD CONSTRAINT pk_{table} PRIMARY KEY ({columns})")


def _fks(table: str, fks: Sequence[tuple[str, str, str, str]]) -> None:
    for name, column, referred, ondelete in fks:
        op.execute(
            f"ALTER TABLE {table} ADD CONSTRAINT {name} FOREIGN KEY ({column})"
            f" REFERENCES {referred} (id) ON DELETE {ondelete}"
        )


def _reshape(table: str, partitioned: bool, keys: Sequence[str]) -> None:
    """Replace `table` by a copy (partitioned by campaign or not) with the same columns,
    defaults and checks; the old one is kept as `<table>_old` until its rows are copied.
    `keys`: the old table's unique indexes and plain indexes, dropped to free their names."""
    op.execute(f"ALTER TABLE {table} RENAME TO {table}_old")
    for key in keys:
        op.execute(f"ALTER TABLE {table}_old DROP CONSTRAINT IF EXISTS {key}")
        op.execute(f"DROP INDEX IF EXISTS {key}")
    tail = " PARTITION BY LIST (campaign_id)" if partitioned else ""
    op.execute(
        f"CREATE TABLE {table} (LIKE {table}_old INCLUDING DEFAULTS INCLUDING CONSTRAINTS){tail}"
    )


def _copy(table: str) -> None:
    columns = _columns(f"{table}_old")
    op.execute(f"INSERT INTO {table} ({columns}) SELECT {columns} FROM {table}_old")
    op.execute(f"DROP TABLE {table}_old")


def _keyed_fks(ondelete_of: dict[str, str], composite: bool) -> None:
    for table, ondelete in KEYED:
        action = ondelete_of[table]
        if composite:
            if action == "SET NULL":
                action = "SET NULL (submission_id)"
            op.execute(
                f"ALTER TABLE {table} ADD CONSTRAINT"
                f" fk_{table}_submission_id_campaign_id_submissions"
                " FOREIGN KEY (submission_id, campaign_id)"
                f" REFERENCES submissions (id, campaign_id) ON DELETE {action}"
            )
        else:
            op.execute(
                f"ALTER TABLE {table} ADD CONSTRAINT fk_{table}_submission_id_submissions"
                f" FOREIGN KEY (submission_id) REFERENCES submissions (id) ON DELETE {ondelete}"
            )


def upgrade() -> None:
    ondelete_of = dict(KEYED)
    for table, _ in KEYED:
        op.execute(f"ALTER TABLE {table} DROP CONSTRAINT fk_{table}_submission_id_submissions")
    op.execute("ALTER TABLE submissions DROP CONSTRAINT fk_submissions_invitation_id_invitations")
    # Made again once the rows are copied (the counts already hold them); the old ones go with
    # the old tables.
    triggers = _triggers("submissions", "index_rollups")

    # The rows keyed to a form: the campaign in their keys.
    op.execute("ALTER TABLE submission_versions ADD COLUMN campaign_id uuid")
    op.execute(
        "UPDATE submission_versions v SET campaign_id = s.campaign_id"
        " FROM submissions s WHERE s.id = v.submission_id"
    )
    op.execute("ALTER TABLE submission_versions ALTER COLUMN campaign_id SET NOT NULL")
    op.execute(
        "ALTER TABLE submission_versions ADD CONSTRAINT"
        " fk_submission_versions_campaign_id_campaigns FOREIGN KEY (campaign_id)"
        " REFERENCES campaigns (id) ON DELETE CASCADE"
    )
    op.execute("ALTER TABLE submission_versions DROP CONSTRAINT uq_submission_versions_version")
    op.execute(
        "ALTER TABLE submission_versions ADD CONSTRAINT uq_submission_versions_version"
        " UNIQUE (campaign_id, submission_id, version)"
    )
    op.execute("ALTER TABLE rechecks DROP CONSTRAINT uq_rechecks_submission_id")
    op.execute(
        "ALTER TABLE rechecks ADD CONSTRAINT uq_rechecks_submission_id"
        " UNIQUE (campaign_id, submission_id)"
    )
    for table, _ in KEYED:
        _set_primary_key(table, "id, campaign_id")

    # The two partitioned parents, their keys, and a partition per existing campaign.
    _reshape(
        "submissions",
        partitioned=True,
        keys=(
            "pk_submissions",
            "uq_submissions_client_submission",
            "uq_submissions_invitation_id",
            *(name for name, _ in SUBMISSION_INDEXES),
        ),
    )
    op.execute(
        "ALTER TABLE submissions ADD CONSTRAINT pk_submissions PRIMARY KEY (id, campaign_id)"
    )
    op.execute(
        "ALTER TABLE submissions ADD CONSTRAINT uq_submissions_client_submission"
        " UNIQUE (campaign_id, client_submission_id)"
    )
    op.execute(
        "ALTER TABLE submissions ADD CONSTRAINT uq_submissions_invitation_id"
        " UNIQUE (campaign_id, invitation_id)"
    )
    for name, columns in SUBMISSION_INDEXES:
        op.execute(f"CREATE INDEX {name} ON submissions ({columns})")
    _fks("submissions", SUBMISSION_FKS)

    _reshape("index_rollups", partitioned=True, keys=("pk_index_rollups",))
    op.execute(
        "ALTER TABLE index_rollups ADD CONSTRAINT pk_index_rollups"
        " PRIMARY KEY (campaign_id, agency_id, kind, item, other)"
    )
    _fks("index_rollups", ROLLUP_FKS)

    op.execute(CREATE_FUNCTION)
    op.execute("SELECT campaign_partitions_create(id) FROM campaigns ORDER BY id")
    for statement in CREATE_TRIGGER:
        op.execute(statement)

    # The rows move (the roll-up triggers are not there yet: the counts already hold them).
    _copy("submissions")
    _copy("index_rollups")

    _keyed_fks(ondelete_of, composite=True)
    op.execute(
        "ALTER TABLE submissions ADD CONSTRAINT fk_submissions_invitation_id_campaign_id_invitations"
        " FOREIGN KEY (invitation_id, campaign_id) REFERENCES invitations (id, campaign_id)"
        " ON DELETE SET NULL (invitation_id)"
    )
    for statement in triggers:
        op.execute(statement)


def downgrade() -> None:
    ondelete_of = dict(KEYED)
    op.execute("DROP TRIGGER campaign_partitions_on_insert ON campaigns")
    op.execute("DROP FUNCTION campaign_partitions_on_insert()")
    op.execute("DROP FUNCTION campaign_partitions_create(uuid)")
    for table, _ in KEYED:
        op.execute(
            f"ALTER TABLE {table} DROP CONSTRAINT fk_{table}_submission_id_campaign_id_submissions"
        )
    op.execute(
        "ALTER TABLE submissions DROP CONSTRAINT fk_submissions_invitation_id_campaign_id_invitations"
    )
    triggers = _triggers("submissions", "index_rollups")

    # Back to plain tables: the partitions' rows are copied, then the partitions go with their
    # parents.
    _reshape(
        "submissions",
        partitioned=False,
        keys=(
            "pk_submissions",
            "uq_submissions_client_submission",
            "uq_submissions_invitation_id",
            *(name for name, _ in SUBMISSION_INDEXES),
        ),
    )
    _copy("submissions")
    op.execute("ALTER TABLE submissions ADD CONSTRAINT pk_submissions PRIMARY KEY (id)")
    op.execute(
        "ALTER TABLE submissions ADD CONSTRAINT uq_submissions_client_submission"
        " UNIQUE (campaign_id, client_submission_id)"
    )
    op.execute(
        "ALTER TABLE submissions ADD CONSTRAINT uq_submissions_invitation_id UNIQUE (invitation_id)"
    )
    for name, columns in SUBMISSION_INDEXES:
        op.execute(f"CREATE INDEX {name} ON submissions ({columns})")
    _fks("submissions", SUBMISSION_FKS)

    _reshape("index_rollups", partitioned=False, keys=("pk_index_rollups",))
    _copy("index_rollups")
    op.execute(
        "ALTER TABLE index_rollups ADD CONSTRAINT pk_index_rollups"
        " PRIMARY KEY (campaign_id, agency_id, kind, item, other)"
    )
    _fks("index_rollups", ROLLUP_FKS)

    for table, _ in KEYED:
        _set_primary_key(table, "id")
    op.execute("ALTER TABLE rechecks DROP CONSTRAINT uq_rechecks_submission_id")
    op.execute(
        "ALTER TABLE rechecks ADD CONSTRAINT uq_rechecks_submission_id UNIQUE (submission_id)"
    )
    op.execute("ALTER TABLE submission_versions DROP CONSTRAINT uq_submission_versions_version")
    op.execute(
        "ALTER TABLE submission_versions ADD CONSTRAINT uq_submission_versions_version"
        " UNIQUE (submission_id, version)"
    )
    op.execute("ALTER TABLE submission_versions DROP COLUMN campaign_id")

    _keyed_fks(ondelete_of, composite=False)
    op.execute(
        "ALTER TABLE submissions ADD CONSTRAINT fk_submissions_invitation_id_invitations"
        " FOREIGN KEY (invitation_id) REFERENCES invitations (id) ON DELETE SET NULL"
    )
    for statement in triggers:
        op.execute(statement)
