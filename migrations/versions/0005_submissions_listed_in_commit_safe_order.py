"""submissions listed in commit-safe order

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27 03:20:46.508194+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "submissions",
        sa.Column(
            "tx_id",
            sa.BigInteger(),
            server_default=sa.text("(pg_current_xact_id()::text)::bigint"),
            nullable=False,
        ),
    )
    op.create_index("ix_submissions_tx_order", "submissions", ["tx_id", "id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_submissions_tx_order", table_name="submissions")
    op.drop_column("submissions", "tx_id")
