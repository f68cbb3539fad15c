"""baseline: the empty schema that every later revision builds on

Revision ID: 0001
Revises:
Create Date: 2026-11-27 03:00:00+00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # unaccent backs the diacritic-insensitive name search; it ships with PostgreSQL's contrib.
    op.execute("CREATE EXTENSION IF NOT EXISTS unaccent")


def downgrade() -> None:
    op.execute("DROP EXTENSION IF EXISTS unaccent")
