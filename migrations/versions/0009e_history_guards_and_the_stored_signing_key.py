"""history guards and the stored signing key

`TRUNCATE reports` is refused like every other change to a published report (audit events
already refuse it). `instance_secrets` keeps the token signing key a deployment generates for
itself when SECRET_KEY is not set, so every worker (and every restart) signs with the same
random key instead of a development key printed in the source.

Revision ID: 0009e
Revises: 0008
Create Date: 2026-11-30 14:20:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009e"
down_revision: str | None = "0009d"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TRIGGER reports_no_truncate BEFORE TRUNCATE ON reports
            FOR EACH STATEMENT EXECUTE FUNCTION reports_immutable()
        """
    )
    op.create_table(
        "instance_secrets",
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "length(value) >= 32", name=op.f("ck_instance_secrets_value_long_enough")
        ),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_instance_secrets")),
    )


def downgrade() -> None:
    op.drop_table("instance_secrets")
    op.execute("DROP TRIGGER reports_no_truncate ON reports")
