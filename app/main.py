"""The application factory."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import sqlalchemy as sa
from fastapi import Depends, FastAPI
from fastapi.middleware.cors import CORSMiddleware
from pydantic import SecretStr
from starlette.middleware.gzip import DEFAULT_EXCLUDED_CONTENT_TYPES, GZipMiddleware

from app import __version__, metrics
from app.api import api_router
from app.api.health import router as health_router
from app.api.plans import TAGS as PLAN_TAGS
from app.api.public import TAG as PUBLIC_TAG
from app.api.public import router as public_router
from app.api.reform import TAG as REFORM_TAG
from app.api.site import router as site_router
from app.config import Settings, get_settings
from app.db import Database, create_database, session_scope
from app.db_roles import app_database_url, connected_role_problems
from app.docs import install_docs
from app.errors import install_error_handlers
from app.head import HeadMiddleware
from app.json_depth import JsonDepthMiddleware
from app.logging import configure_logging
from app.middleware import RequestContextMiddleware
from app.openapi import install_openapi, operation_id
from app.replica import LSN_HEADER, SOURCE_HEADER, ReadRoutingMiddleware
from app.schema import head_revision
from app.services.tabular import XLSX_MEDIA_TYPE

logger = logging.getLogger(__name__)

DESCRIPTION = """
The backend a Vietnamese province runs to measure satisfaction with its administrative agencies
(SIPAS, *Chỉ số hài lòng về sự phục vụ hành chính*).

**Authentication.** Get a token from `POST /api/v1/auth/token` (OAuth2, form-encoded): staff use
`grant_type=password` with `username` and `password` and get a single-use `refresh_token` too
(`grant_type=refresh_token` returns a new pair); machine clients use
`grant_type=client_credentials`, authenticated with HTTP Basic or with `client_id` and
`client_secret` in the form. Send it as `Authorization: Bearer <token>`. Tokens are short-lived
JWTs; deactivating a user or client, or rotating its credentials, revokes its tokens at once;
`POST /api/v1/auth/logout` (or `/auth/revoke`, RFC 7009) ends a staff session. The token endpoint
answers errors as RFC 6749 says (`{"error", "error_description"}`).

**Errors** are RFC 9457 `application/problem+json` with a stable `code`, a `detail`, the
`request_id`, and for validation an `errors` list of JSON pointers.

**Lists** page with `?limit=&cursor=` and answer `next_cursor`. Writes a client may retry take
an `Idempotency-Key`. Reads that fetchers poll carry an `ETag` and honour `If-None-Match`.
"""


def resolve_database_url(settings: Settings) -> str:
    """The configured DATABASE_URL, or the embedded server's superuser when none is set (for
    tools; the service itself connects with app.db_roles.app_database_url)."""
    if settings.database_url:
        return settings.database_url
    if settings.environment == "production":
        raise RuntimeError("DATABASE_URL must be set when ENVIRONMENT=production")
    from app.embedded import embedded_server_url

    return embedded_server_url(settings.data_dir, "sipas")


async def _check_connected_role(db: Database, settings: Settings) -> None:
    """The app role must own nothing: refused in production, a warning elsewhere."""
    try:
        async with db.engine.connect() as conn:
            problems = await connected_role_problems(conn)
    except (OSError, sa.exc.DBAPIError):  # a database down at start is /readyz's to report
        logger.warning("could not check the database role at start-up", exc_info=True)
        return
    if not problems:
        return
    message = (
        "the database role in DATABASE_URL "
        + ", ".join(problems)
        + "; connect as an app role (see `sipas migrate` and DATABASE_OWNER_URL in the README)"
    )
    if settings.environment == "production":
        raise RuntimeError(message)
    if settings.environment == "development":
        logger.warning(message)


async def _with_signing_key(db: Database, settings: Settings) -> Settings:
    """Settings whose SECRET_KEY is set, or else signs with the key stored with the data."""
    if settings.has_secret_key:
        return settings
    from app.services.signing_key import stored_signing_key

    async with session_scope(db) as session:
        key = await stored_signing_key(session)
    return settings.model_copy(update={"secret_key": SecretStr(key)})


def _freeze_startup_objects() -> None:
    """What exists once the app has started (modules, models, schemas, routes: some hundreds of
    thousands of objects) lives as long as the process, so it is moved out of the collector's
    generations. A full collection then walks only what requests made: a batch of forms makes
    tens of thousands of objects, enough to set one off every few batches, and each walked the
    whole heap (about 8 % of a worker's CPU under the ingest benchmark)."""
    gc.collect()
    gc.freeze()


def create_app(settings: Settings | None = None, database: Database | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_logging(settings.log_level)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = database is None
        if owned:
            app.state.db = create_database(app_database_url(settings), settings)
        try:
            if owned:
                await _check_connected_role(app.state.db, settings)
            app.state.settings = await _with_signing_key(app.state.db, settings)
            _freeze_startup_objects()
            yield
        finally:
            if owned:
                await app.state.db.dispose()

    app = FastAPI(
        title="SIPAS API",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        generate_unique_id_function=operation_id,
        # Tags declared beside their routers; app.openapi adds them to its own list.
        openapi_tags=[
            {"name": "health", "description": "Probes for orchestrators."},
            PUBLIC_TAG,
            *PLAN_TAGS,
            REFORM_TAG,
        ],
        # every route notes its template for /metrics (app/metrics.py)
        dependencies=[Depends(metrics.remember_route)],
    )
    app.state.settings = settings
    app.state.schema_head = head_revision()
    # How a request gets its transaction (app/deps.py, get_session). The test suite sets its
    # own, a savepoint of the test's transaction, rather than overriding the dependency.
    app.state.session_scope = session_scope
    if database is not None:
        app.state.db = database

    install_error_handlers(app)
    # Innermost: which server answered a read, and the write token (app/replica.py).
    app.add_middleware(ReadRoutingMiddleware)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["*"],
            allow_headers=["*"],
            expose_headers=["ETag", "X-Request-ID", "Retry-After", SOURCE_HEADER, LSN_HEADER],
        )
    # JSON and CSV go gzipped to callers that accept it (XLSX is a zip already). The ETag names
    # the representation before content coding, and If-None-Match compares weakly, so a 304 is
    # the same with or without gzip.
    app.add_middleware(
        GZipMiddleware,
        minimum_size=1024,
        compresslevel=6,
        exclude_content_types=(*DEFAULT_EXCLUDED_CONTENT_TYPES, XLSX_MEDIA_TYPE),
    )
    app.add_middleware(HeadMiddleware)
    # Added before the request context, so it runs inside it (its request id, its body limit).
    app.add_middleware(JsonDepthMiddleware, max_depth=settings.max_json_depth)
    app.add_middleware(
        RequestContextMiddleware,
        max_body_bytes=settings.max_body_bytes,
        trusted_proxies=settings.trusted_proxies,
    )

    app.include_router(health_router)
    app.include_router(api_router)
    app.include_router(public_router)
    app.include_router(site_router)
    install_docs(app)
    install_openapi(app)
    return app
