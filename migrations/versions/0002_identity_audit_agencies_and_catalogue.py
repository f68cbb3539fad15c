"""identity, audit, agencies and catalogue

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27 03:00:11.809120+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The audit log is append-only for every role the app connects as.
AUDIT_GUARD = [
    """
    CREATE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION 'audit_events is append-only: % refused', TG_OP
            USING ERRCODE = 'insufficient_privilege';
    END $$
    """,
    """
    CREATE TRIGGER audit_events_append_only
        BEFORE UPDATE OR DELETE ON audit_events
        FOR EACH ROW EXECUTE FUNCTION audit_events_append_only()
    """,
    """
    CREATE TRIGGER audit_events_no_truncate
        BEFORE TRUNCATE ON audit_events
        FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only()
    """,
]

# No agency may become its own ancestor, whatever path the write takes.
AGENCY_CYCLE_GUARD = [
    """
CREATE FUNCTION agencies_no_cycle() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.parent_id IS NULL THEN
        RETURN NEW;
    END IF;
    IF EXISTS (
        WITH RECURSIVE up(id, parent_id) AS (
            SELECT id, parent_id FROM agencies WHERE id = NEW.parent_id
            UNION
            SELECT a.id, a.parent_id FROM agencies a JOIN up ON a.id = up.parent_id
        )
        SELECT 1 FROM up WHERE id = NEW.id
    ) THEN
        RAISE EXCEPTION 'agency % would become its own ancestor', NEW.code
            USING ERRCODE = 'check_violation', CONSTRAINT = 'agencies_no_cycle';
    END IF;
    RETURN NEW;
END $$
    """,
    """
    CREATE TRIGGER agencies_no_cycle
        BEFORE INSERT OR UPDATE OF parent_id ON agencies
        FOR EACH ROW EXECUTE FUNCTION agencies_no_cycle()
    """,
]

LEVELS = [
    {"code": "province", "name_vi": "Cấp tỉnh", "name_en": "Province", "rank": 0},
    {"code": "department", "name_vi": "Sở, ban, ngành", "name_en": "Department", "rank": 1},
    {"code": "district", "name_vi": "Cấp huyện", "name_en": "District", "rank": 1},
    {"code": "commune", "name_vi": "Cấp xã", "name_en": "Commune", "rank": 2},
]


def upgrade() -> None:
    levels = op.create_table(
        "agency_levels",
        sa.Column("code", sa.Text(), nullable=False),
        sa.Column("name_vi", sa.Text(), nullable=False),
        sa.Column("name_en", sa.Text(), nullable=True),
        sa.Column("rank", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_agency_levels")),
    )
    op.create_table(
        "audit_events",
        sa.Column(
            "occurred_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("actor_type", sa.Text(), nullable=False),
        sa.Column("actor_id", sa.Uuid(), nullable=True),
        sa.Column("actor_name", sa.Text(), nullable=True),
        sa.Column("client_id", sa.Text(), nullable=True),
        sa.Column("action", sa.Text(), nullable=False),
        sa.Column("object_type", sa.Text(), nullable=True),
        sa.Column("object_id", sa.Text(), nullable=True),
        sa.Column(
            "summary",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("request_id", sa.Text(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("ip", sa.Text(), nullable=True),
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.CheckConstraint(
            "actor_type IN ('user', 'client', 'system', 'anonymous')",
            name=op.f("ck_audit_events_actor_type_known"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_events")),
    )
    op.create_index("ix_audit_events_action", "audit_events", ["action"], unique=False)
    op.create_index("ix_audit_events_actor_id", "audit_events", ["actor_id"], unique=False)
    op.create_index(
        "ix_audit_events_object", "audit_events", ["object_type", "object_id"], unique=False
    )
    op.create_index("ix_audit_events_request_id", "audit_events", ["request_id"], unique=False)
    op.create_table(
        "rate_counters",
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("count", sa.Integer(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint("key", "window_start", name=op.f("pk_rate_counters")),
    )
    op.create_table(
        "sectors",
        sa.Column("id", sa.Uuid(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("code", sa.Text(), nullable=False),
        sa.Column("name_vi", sa.Text(), nullable=False),
        sa.Column("name_en", sa.Text(), nullable=True),
        sa.Column("search_name", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sectors")),
        sa.UniqueConstraint("code", name=op.f("uq_sectors_code")),
    )
    op.create_table(
        "agencies",
        sa.Column("id", sa.Uuid(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("code", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("short_name", sa.Text(), nullable=True),
        sa.Column("search_name", sa.Text(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("level", sa.Text(), nullable=False),
        sa.Column("parent_id", sa.Uuid(), nullable=True),
        sa.Column("is_measured", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column("valid_from", sa.Date(), nullable=False),
        sa.Column("valid_to", sa.Date(), nullable=True),
        sa.Column("admin_unit_code", sa.Text(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "kind IN ('department', 'people_committee', 'participant')",
            name=op.f("ck_agencies_kind_known"),
        ),
        sa.CheckConstraint(
            "parent_id IS NULL OR parent_id <> id", name=op.f("ck_agencies_not_own_parent")
        ),
        sa.CheckConstraint(
            "valid_to IS NULL OR valid_to >= valid_from", name=op.f("ck_agencies_valid_range")
        ),
        sa.ForeignKeyConstraint(
            ["level"],
            ["agency_levels.code"],
            name=op.f("fk_agencies_level_agency_levels"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["parent_id"],
            ["agencies.id"],
            name=op.f("fk_agencies_parent_id_agencies"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_agencies")),
        sa.UniqueConstraint("code", name=op.f("uq_agencies_code")),
    )
    op.create_index("ix_agencies_parent_id", "agencies", ["parent_id"], unique=False)
    op.create_index("ix_agencies_search_name", "agencies", ["search_name"], unique=False)
    op.create_table(
        "procedures",
        sa.Column("id", sa.Uuid(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("code", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("search_name", sa.Text(), nullable=False),
        sa.Column("sector_id", sa.Uuid(), nullable=False),
        sa.Column("level", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["level"],
            ["agency_levels.code"],
            name=op.f("fk_procedures_level_agency_levels"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["sector_id"],
            ["sectors.id"],
            name=op.f("fk_procedures_sector_id_sectors"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_procedures")),
        sa.UniqueConstraint("code", name=op.f("uq_procedures_code")),
    )
    op.create_index("ix_procedures_sector_id", "procedures", ["sector_id"], unique=False)
    op.create_table(
        "agency_sectors",
        sa.Column("agency_id", sa.Uuid(), nullable=False),
        sa.Column("sector_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["agency_id"],
            ["agencies.id"],
            name=op.f("fk_agency_sectors_agency_id_agencies"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["sector_id"],
            ["sectors.id"],
            name=op.f("fk_agency_sectors_sector_id_sectors"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("agency_id", "sector_id", name=op.f("pk_agency_sectors")),
    )
    op.create_index("ix_agency_sectors_sector_id", "agency_sectors", ["sector_id"], unique=False)
    op.create_table(
        "agency_successors",
        sa.Column("predecessor_id", sa.Uuid(), nullable=False),
        sa.Column("successor_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("effective_on", sa.Date(), nullable=False),
        sa.CheckConstraint(
            "kind IN ('merged_into', 'renamed_to', 'split_into')",
            name=op.f("ck_agency_successors_kind_known"),
        ),
        sa.CheckConstraint(
            "predecessor_id <> successor_id", name=op.f("ck_agency_successors_not_self")
        ),
        sa.ForeignKeyConstraint(
            ["predecessor_id"],
            ["agencies.id"],
            name=op.f("fk_agency_successors_predecessor_id_agencies"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["successor_id"],
            ["agencies.id"],
            name=op.f("fk_agency_successors_successor_id_agencies"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "predecessor_id", "successor_id", name=op.f("pk_agency_successors")
        ),
    )
    op.create_index(
        "ix_agency_successors_successor_id", "agency_successors", ["successor_id"], unique=False
    )
    op.create_table(
        "clients",
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("scopes", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.Column("agency_id", sa.Uuid(), nullable=True),
        sa.Column("campaign_id", sa.Uuid(), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("id", sa.Uuid(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("client_id", sa.Text(), nullable=False),
        sa.Column("secret_hash", sa.Text(), nullable=False),
        sa.Column("token_version", sa.Integer(), server_default="0", nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["agency_id"],
            ["agencies.id"],
            name=op.f("fk_clients_agency_id_agencies"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_clients")),
        sa.UniqueConstraint("client_id", name=op.f("uq_clients_client_id")),
    )
    op.create_table(
        "users",
        sa.Column("display_name", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("role", sa.Text(), nullable=False),
        sa.Column("agency_id", sa.Uuid(), nullable=True),
        sa.Column("id", sa.Uuid(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("username", sa.Text(), nullable=False),
        sa.Column("password_hash", sa.Text(), nullable=False),
        sa.Column("is_active", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column("token_version", sa.Integer(), server_default="0", nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("last_login_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "role <> 'agency_manager' OR agency_id IS NOT NULL",
            name=op.f("ck_users_manager_has_agency"),
        ),
        sa.CheckConstraint(
            "role IN ('admin', 'analyst', 'agency_manager', 'surveyor', 'supervisor')",
            name=op.f("ck_users_role_known"),
        ),
        sa.ForeignKeyConstraint(
            ["agency_id"],
            ["agencies.id"],
            name=op.f("fk_users_agency_id_agencies"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("username", name=op.f("uq_users_username")),
    )
    op.bulk_insert(levels, LEVELS)
    for statement in AUDIT_GUARD + AGENCY_CYCLE_GUARD:
        op.execute(statement)


def downgrade() -> None:
    op.drop_table("users")
    op.drop_table("clients")
    op.drop_index("ix_agency_successors_successor_id", table_name="agency_successors")
    op.drop_table("agency_successors")
    op.drop_index("ix_agency_sectors_sector_id", table_name="agency_sectors")
    op.drop_table("agency_sectors")
    op.drop_index("ix_procedures_sector_id", table_name="procedures")
    op.drop_table("procedures")
    op.drop_index("ix_agencies_search_name", table_name="agencies")
    op.drop_index("ix_agencies_parent_id", table_name="agencies")
    op.drop_table("agencies")
    op.drop_table("sectors")
    op.drop_table("rate_counters")
    op.drop_index("ix_audit_events_request_id", table_name="audit_events")
    op.drop_index("ix_audit_events_object", table_name="audit_events")
    op.drop_index("ix_audit_events_actor_id", table_name="audit_events")
    op.drop_index("ix_audit_events_action", table_name="audit_events")
    op.drop_table("audit_events")
    op.drop_table("agency_levels")
    op.execute("DROP FUNCTION agencies_no_cycle()")
    op.execute("DROP FUNCTION audit_events_append_only()")
