"""All tables, imported in one place so Alembic sees the whole metadata."""

from sqlmodel import SQLModel

from app.models import base

metadata = SQLModel.metadata

__all__ = ["base", "metadata"]
