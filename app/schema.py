"""Alembic from code: the migration head this build expects, and running migrations."""

from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path
from types import ModuleType

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory

ROOT = Path(__file__).resolve().parent.parent


def alembic_config(url: str | None = None) -> Config:
    cfg = Config(str(ROOT / "alembic.ini"))
    cfg.set_main_option("script_location", str(ROOT / "migrations"))
    if url:
        # escaped because ConfigParser treats % as interpolation
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


@lru_cache
def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise RuntimeError("the migrations folder has no revision")
    return head


def upgrade(url: str, revision: str = "head") -> None:
    """Run the migrations. Synchronous: call it outside a running event loop."""
    command.upgrade(alembic_config(url), revision)


def migration_module(filename: str) -> ModuleType:
    """An earlier migration's module, loaded by its file name in `migrations/versions`: a later
    revision that reuses its SQL (or restores it on downgrade) reads it from there."""
    path = ROOT / "migrations" / "versions" / filename
    spec = importlib.util.spec_from_file_location(f"sipas_migration_{path.stem}", path)
    if spec is None or spec.loader is None:  # pragma: no cover - the file ships with the build
        raise RuntimeError(f"cannot load {filename}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
