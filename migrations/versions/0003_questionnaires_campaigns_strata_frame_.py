"""questionnaires, campaigns, strata, frame and submissions

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27 03:11:44.055675+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# A questionnaire version that a campaign has opened on never changes again.
FREEZE_GUARD = [
    """
    CREATE FUNCTION questionnaires_frozen() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF OLD.frozen_at IS NOT NULL AND (
            NEW.definition IS DISTINCT FROM OLD.definition
            OR NEW.code IS DISTINCT FROM OLD.code
            OR NEW.version IS DISTINCT FROM OLD.version
            OR NEW.frozen_at IS DISTINCT FROM OLD.frozen_at
        ) THEN
            RAISE EXCEPTION 'questionnaire %/% is frozen', OLD.code, OLD.version
                USING ERRCODE = 'check_violation', CONSTRAINT = 'questionnaires_frozen';
        END IF;
        RETURN NEW;
    END $$
    """,
    """
    CREATE TRIGGER questionnaires_frozen
        BEFORE UPDATE ON questionnaires
        FOR EACH ROW EXECUTE FUNCTION questionnaires_frozen()
    """,
]


def upgrade() -> None:
    op.create_table(
        "questionnaires",
        sa.Column("id", sa.Uuid(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("code", sa.Text(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("method", sa.Text(), nullable=False),
        sa.Column("title_vi", sa.Text(), nullable=False),
        sa.Column("title_en", sa.Text(), nullable=True),
        sa.Column("definition", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("is_builtin", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("frozen_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint("version >= 1", name=op.f("ck_questionnaires_version_positive")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_questionnaires")),
        sa.UniqueConstraint("code", "version", name="uq_questionnaires_code_version"),
    )
    op.create_table(
        "campaigns",
        sa.Column("id", sa.Uuid(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("code", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("questionnaire_id", sa.Uuid(), nullable=False),
        sa.Column("state", sa.Text(), server_default="draft", nullable=False),
        sa.Column("period_start", sa.Date(), nullable=False),
        sa.Column("period_end", sa.Date(), nullable=False),
        sa.Column("fieldwork_start", sa.Date(), nullable=False),
        sa.Column("fieldwork_end", sa.Date(), nullable=False),
        sa.Column("map_date", sa.Date(), nullable=False),
        sa.Column("margin", sa.Numeric(precision=6, scale=5), nullable=False),
        sa.Column("min_per_stratum", sa.Integer(), nullable=False),
        sa.Column("sample_seed", sa.Text(), nullable=True),
        sa.Column("rates_dossiers", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("is_synthetic", sa.Boolean(), server_default=sa.text("false"), nullable=False),
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
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("archived_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "state IN ('draft', 'open', 'closed', 'published', 'archived')",
            name=op.f("ck_campaigns_state_known"),
        ),
        sa.CheckConstraint(
            "fieldwork_end >= fieldwork_start", name=op.f("ck_campaigns_fieldwork_range")
        ),
        sa.CheckConstraint("margin > 0 AND margin < 1", name=op.f("ck_campaigns_margin_range")),
        sa.CheckConstraint(
            "min_per_stratum >= 0", name=op.f("ck_campaigns_min_per_stratum_positive")
        ),
        sa.CheckConstraint("period_end >= period_start", name=op.f("ck_campaigns_period_range")),
        sa.ForeignKeyConstraint(
            ["questionnaire_id"],
            ["questionnaires.id"],
            name=op.f("fk_campaigns_questionnaire_id_questionnaires"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_campaigns")),
        sa.UniqueConstraint("code", name=op.f("uq_campaigns_code")),
    )
    op.create_table(
        "campaign_agencies",
        sa.Column("campaign_id", sa.Uuid(), nullable=False),
        sa.Column("agency_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["agency_id"],
            ["agencies.id"],
            name=op.f("fk_campaign_agencies_agency_id_agencies"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.id"],
            name=op.f("fk_campaign_agencies_campaign_id_campaigns"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("campaign_id", "agency_id", name=op.f("pk_campaign_agencies")),
    )
    op.create_index(
        "ix_campaign_agencies_agency_id", "campaign_agencies", ["agency_id"], unique=False
    )
    op.create_table(
        "campaign_sectors",
        sa.Column("campaign_id", sa.Uuid(), nullable=False),
        sa.Column("sector_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.id"],
            name=op.f("fk_campaign_sectors_campaign_id_campaigns"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["sector_id"],
            ["sectors.id"],
            name=op.f("fk_campaign_sectors_sector_id_sectors"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("campaign_id", "sector_id", name=op.f("pk_campaign_sectors")),
    )
    op.create_table(
        "strata",
        sa.Column("id", sa.Uuid(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("campaign_id", sa.Uuid(), nullable=False),
        sa.Column("agency_id", sa.Uuid(), nullable=False),
        sa.Column("sector_id", sa.Uuid(), nullable=True),
        sa.Column("frame_size", sa.Integer(), nullable=True),
        sa.Column("target", sa.Integer(), nullable=True),
        sa.Column(
            "target_is_manual", sa.Boolean(), server_default=sa.text("false"), nullable=False
        ),
        sa.CheckConstraint(
            "frame_size IS NULL OR frame_size >= 0", name=op.f("ck_strata_frame_size_positive")
        ),
        sa.CheckConstraint("target IS NULL OR target >= 0", name=op.f("ck_strata_target_positive")),
        sa.ForeignKeyConstraint(
            ["agency_id"],
            ["agencies.id"],
            name=op.f("fk_strata_agency_id_agencies"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.id"],
            name=op.f("fk_strata_campaign_id_campaigns"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["sector_id"],
            ["sectors.id"],
            name=op.f("fk_strata_sector_id_sectors"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_strata")),
        sa.UniqueConstraint(
            "campaign_id",
            "agency_id",
            "sector_id",
            name="uq_strata_cell",
            postgresql_nulls_not_distinct=True,
        ),
    )
    op.create_table(
        "campaign_surveyors",
        sa.Column("id", sa.Uuid(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("campaign_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("agency_id", sa.Uuid(), nullable=True),
        sa.ForeignKeyConstraint(
            ["agency_id"],
            ["agencies.id"],
            name=op.f("fk_campaign_surveyors_agency_id_agencies"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.id"],
            name=op.f("fk_campaign_surveyors_campaign_id_campaigns"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_campaign_surveyors_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_campaign_surveyors")),
        sa.UniqueConstraint(
            "campaign_id",
            "user_id",
            "agency_id",
            name="uq_campaign_surveyors_assignment",
            postgresql_nulls_not_distinct=True,
        ),
    )
    op.create_table(
        "frame_units",
        sa.Column("id", sa.Uuid(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("campaign_id", sa.Uuid(), nullable=False),
        sa.Column("dossier_code", sa.Text(), nullable=False),
        sa.Column("procedure_id", sa.Uuid(), nullable=True),
        sa.Column("agency_id", sa.Uuid(), nullable=False),
        sa.Column("stratum_id", sa.Uuid(), nullable=True),
        sa.Column("returned_on", sa.Date(), nullable=False),
        sa.Column("in_sample", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.ForeignKeyConstraint(
            ["agency_id"],
            ["agencies.id"],
            name=op.f("fk_frame_units_agency_id_agencies"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.id"],
            name=op.f("fk_frame_units_campaign_id_campaigns"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["procedure_id"],
            ["procedures.id"],
            name=op.f("fk_frame_units_procedure_id_procedures"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["stratum_id"],
            ["strata.id"],
            name=op.f("fk_frame_units_stratum_id_strata"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_frame_units")),
        sa.UniqueConstraint("campaign_id", "dossier_code", name="uq_frame_units_dossier"),
    )
    op.create_index("ix_frame_units_stratum_id", "frame_units", ["stratum_id"], unique=False)
    op.create_table(
        "frame_contacts",
        sa.Column("frame_unit_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("phone", sa.Text(), nullable=True),
        sa.Column("address", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["frame_unit_id"],
            ["frame_units.id"],
            name=op.f("fk_frame_contacts_frame_unit_id_frame_units"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("frame_unit_id", name=op.f("pk_frame_contacts")),
    )
    op.create_table(
        "submissions",
        sa.Column("id", sa.Uuid(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("campaign_id", sa.Uuid(), nullable=False),
        sa.Column("client_submission_id", sa.Uuid(), nullable=False),
        sa.Column("request_hash", sa.Text(), nullable=False),
        sa.Column("agency_id", sa.Uuid(), nullable=False),
        sa.Column("sector_id", sa.Uuid(), nullable=True),
        sa.Column("procedure_id", sa.Uuid(), nullable=True),
        sa.Column("stratum_id", sa.Uuid(), nullable=True),
        sa.Column("frame_unit_id", sa.Uuid(), nullable=True),
        sa.Column("respondent_type", sa.Text(), nullable=True),
        sa.Column("channel", sa.Text(), nullable=False),
        sa.Column("client_id", sa.Uuid(), nullable=True),
        sa.Column("surveyor_id", sa.Uuid(), nullable=True),
        sa.Column("device_id", sa.Text(), nullable=True),
        sa.Column("state", sa.Text(), server_default="received", nullable=False),
        sa.Column("review_reason", sa.Text(), nullable=True),
        sa.Column("is_synthetic", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("version", sa.Integer(), server_default="1", nullable=False),
        sa.Column("answers", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
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
            "channel IN ('web', 'kiosk', 'post_office', 'one_stop', 'phone')",
            name=op.f("ck_submissions_channel_known"),
        ),
        sa.CheckConstraint(
            "respondent_type IS NULL OR respondent_type IN ('individual', 'organisation')",
            name=op.f("ck_submissions_respondent_type_known"),
        ),
        sa.CheckConstraint(
            "state IN ('received', 'valid', 'flagged', 'rejected')",
            name=op.f("ck_submissions_state_known"),
        ),
        sa.ForeignKeyConstraint(
            ["agency_id"],
            ["agencies.id"],
            name=op.f("fk_submissions_agency_id_agencies"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.id"],
            name=op.f("fk_submissions_campaign_id_campaigns"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["client_id"],
            ["clients.id"],
            name=op.f("fk_submissions_client_id_clients"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["frame_unit_id"],
            ["frame_units.id"],
            name=op.f("fk_submissions_frame_unit_id_frame_units"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["procedure_id"],
            ["procedures.id"],
            name=op.f("fk_submissions_procedure_id_procedures"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["sector_id"],
            ["sectors.id"],
            name=op.f("fk_submissions_sector_id_sectors"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["stratum_id"],
            ["strata.id"],
            name=op.f("fk_submissions_stratum_id_strata"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["surveyor_id"],
            ["users.id"],
            name=op.f("fk_submissions_surveyor_id_users"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_submissions")),
        sa.UniqueConstraint(
            "campaign_id", "client_submission_id", name="uq_submissions_client_submission"
        ),
    )
    op.create_index(
        "ix_submissions_campaign_agency", "submissions", ["campaign_id", "agency_id"], unique=False
    )
    op.create_index(
        "ix_submissions_campaign_state", "submissions", ["campaign_id", "state"], unique=False
    )
    op.create_index("ix_submissions_stratum_id", "submissions", ["stratum_id"], unique=False)

    for statement in FREEZE_GUARD:
        op.execute(statement)


def downgrade() -> None:
    op.drop_index("ix_submissions_stratum_id", table_name="submissions")
    op.drop_index("ix_submissions_campaign_state", table_name="submissions")
    op.drop_index("ix_submissions_campaign_agency", table_name="submissions")
    op.drop_table("submissions")
    op.drop_table("frame_contacts")
    op.drop_index("ix_frame_units_stratum_id", table_name="frame_units")
    op.drop_table("frame_units")
    op.drop_table("campaign_surveyors")
    op.drop_table("strata")
    op.drop_table("campaign_sectors")
    op.drop_index("ix_campaign_agencies_agency_id", table_name="campaign_agencies")
    op.drop_table("campaign_agencies")
    op.drop_table("campaigns")
    op.drop_table("questionnaires")
    op.execute("DROP FUNCTION questionnaires_frozen()")
