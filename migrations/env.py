"""Alembic environment: async engine on asyncpg, the app's metadata, and the app's URL rules."""

from __future__ import annotations

import asyncio
from logging.config import fileConfig

from alembic import context
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

import app.models  # noqa: F401 - registers every table on the metadata
from app.config import async_url, get_settings
from app.db_roles import owner_database_url
from app.models import metadata
from app.services.partitions import is_partition_name

config = context.config
if config.config_file_name is not None and config.attributes.get("configure_logger", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)


def _url() -> str:
    explicit = config.get_main_option("sqlalchemy.url")
    if explicit:
        return async_url(explicit)
    return owner_database_url(get_settings())


def _include_name(name: str | None, type_: str, parent_names: object) -> bool:
    """Campaign partitions are the database's (services.partitions): the models name only
    their parents."""
    return not (type_ == "table" and name is not None and is_partition_name(name))


def _configure(connection: Connection | None = None, url: str | None = None) -> None:
    context.configure(
        connection=connection,
        url=url,
        target_metadata=metadata,
        compare_type=True,
        compare_server_default=True,
        include_name=_include_name,
        transaction_per_migration=True,
        literal_binds=connection is None,
    )


def run_migrations_offline() -> None:
    _configure(url=_url())
    with context.begin_transaction():
        context.run_migrations()


def _run_sync(connection: Connection) -> None:
    _configure(connection=connection)
    with context.begin_transaction():
        context.run_migrations()


async def run_migrations_online() -> None:
    engine = create_async_engine(_url())
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run_sync)
            await connection.commit()
    finally:
        await engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    asyncio.run(run_migrations_online())
