"""submissions indexed by campaign and last change

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-27 04:27:00.205966+00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_submissions_campaign_updated",
        "submissions",
        ["campaign_id", "updated_at"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_submissions_campaign_updated", table_name="submissions")
