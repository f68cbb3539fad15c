"""All tables, imported in one place so Alembic sees the whole metadata.

Every model module imports `app.models.base` first, which sets the constraint naming convention
before any table is defined.
"""

from sqlmodel import SQLModel

from app.models import (
    agency,
    audit,
    auth_session,
    base,
    campaign,
    catalogue,
    dossier,
    event,
    identity,
    plans,
    public,
    quality,
    questionnaire,
    ratelimit,
    report,
    rollup,
    secret,
    submission,
)

metadata = SQLModel.metadata

__all__ = [
    "agency",
    "audit",
    "auth_session",
    "base",
    "campaign",
    "catalogue",
    "dossier",
    "event",
    "identity",
    "metadata",
    "plans",
    "public",
    "quality",
    "questionnaire",
    "ratelimit",
    "report",
    "rollup",
    "secret",
    "submission",
]
