"""Clients of the real app outside the test's transaction, for tests of concurrent requests."""

from __future__ import annotations

import httpx

from app.config import Settings
from app.db import Database
from app.main import create_app


def real_client(
    app_settings: Settings, db: Database, source: str | None = None
) -> httpx.AsyncClient:
    """The app with its own per-request transactions: no test session in between; its
    requests come from the socket address `source` when one is given."""
    app = create_app(app_settings, database=db)
    transport = (
        httpx.ASGITransport(app=app, raise_app_exceptions=False)
        if source is None
        else httpx.ASGITransport(app=app, raise_app_exceptions=False, client=(source, 1))
    )
    return httpx.AsyncClient(transport=transport, base_url="http://t")
