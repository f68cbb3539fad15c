"""All tables, imported in one place so Alembic sees the whole metadata."""

from sqlmodel import SQLModel

from app.models import (
    agency,
    audit,
    base,  # first: sets the constraint naming convention
    catalogue,
    identity,
    ratelimit,
)

metadata = SQLModel.metadata

__all__ = ["agency", "audit", "base", "catalogue", "identity", "metadata", "ratelimit"]
