"""The application factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from app import __version__
from app.api import api_router
from app.api.health import router as health_router
from app.api.plans import TAGS as PLAN_TAGS
from app.api.public import TAG as PUBLIC_TAG
from app.api.public import router as public_router
from app.api.reform import TAG as REFORM_TAG
from app.api.site import router as site_router
from app.config import Settings, get_settings
from app.db import Database, create_database
from app.errors import install_error_handlers
from app.logging import configure_logging
from app.middleware import PublicGZipMiddleware, RequestContextMiddleware
from app.schema import head_revision

DESCRIPTION = """
The backend a Vietnamese province runs to measure satisfaction with its administrative agencies
(SIPAS, *Chỉ số hài lòng về sự phục vụ hành chính*).

**Authentication.** Get a token from `POST /api/v1/auth/token` (OAuth2, form-encoded): staff use
`grant_type=password` with `username` and `password`; machine clients use
`grant_type=client_credentials` with `client_id` and `client_secret`. Send it as
`Authorization: Bearer <token>`. Tokens are short-lived JWTs; deactivating a user or client, or
rotating its credentials, revokes its tokens at once.

**Errors** are RFC 9457 `application/problem+json` with a stable `code`, a `detail`, the
`request_id`, and for validation an `errors` list of JSON pointers.

**Lists** page with `?limit=&cursor=` and answer `next_cursor`. Writes a client may retry take
an `Idempotency-Key`. Reads that fetchers poll carry an `ETag` and honour `If-None-Match`.
"""


def resolve_database_url(settings: Settings) -> str:
    """The configured DATABASE_URL, or the embedded server's when none is set."""
    if settings.database_url:
        return settings.database_url
    if settings.environment == "production":
        raise RuntimeError("DATABASE_URL must be set when ENVIRONMENT=production")
    from app.embedded import embedded_server_url

    return embedded_server_url(settings.data_dir, "sipas")


def create_app(settings: Settings | None = None, database: Database | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_logging(settings.log_level)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = database is None
        if owned:
            app.state.db = create_database(resolve_database_url(settings), settings)
        try:
            yield
        finally:
            if owned:
                await app.state.db.dispose()

    app = FastAPI(
        title="SIPAS API",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        openapi_tags=[
            {"name": "health", "description": "Probes for orchestrators."},
            PUBLIC_TAG,
            *PLAN_TAGS,
            REFORM_TAG,
        ],
    )
    app.state.settings = settings
    app.state.schema_head = head_revision()
    if database is not None:
        app.state.db = database

    install_error_handlers(app)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["*"],
            allow_headers=["*"],
            expose_headers=["ETag", "X-Request-ID", "Retry-After"],
        )
    app.add_middleware(PublicGZipMiddleware)
    app.add_middleware(RequestContextMiddleware, max_body_bytes=settings.max_body_bytes)

    app.include_router(health_router)
    app.include_router(api_router)
    app.include_router(public_router)
    app.include_router(site_router)
    return app
