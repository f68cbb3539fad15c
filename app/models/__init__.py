"""All tables, imported in one place so Alembic sees the whole metadata.

Every model module imports `app.models.base` first, which sets the constraint naming convention
before any table is defined.
"""

from sqlmodel import SQLModel

from app.models import (
    agency,
    audit,
    base,
    campaign,
    catalogue,
    dossier,
    identity,
    plans,
    public,
    questionnaire,
    ratelimit,
    report,
    rollup,
    submission,
)

metadata = SQLModel.metadata

__all__ = [
    "agency",
    "audit",
    "base",
    "campaign",
    "catalogue",
    "dossier",
    "identity",
    "metadata",
    "plans",
    "public",
    "questionnaire",
    "ratelimit",
    "report",
    "rollup",
    "submission",
]
