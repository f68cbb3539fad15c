"""Liveness and readiness probes, outside the versioned prefix."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel, Field
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from app import metrics as app_metrics
from app.api.problems import UNAVAILABLE
from app.deps import DatabaseDep
from app.errors import problem_response

router = APIRouter(tags=["health"])


class Liveness(BaseModel):
    status: str = Field(examples=["ok"])


class Readiness(BaseModel):
    status: str = Field(examples=["ready"])
    schema_revision: str = Field(alias="schema", description="The database's migration.")


@router.get(
    "/healthz",
    description="Answers 200 while the process runs; it does not touch the database. For a "
    "liveness probe.",
    summary="Liveness: the process answers",
)
async def healthz() -> Liveness:
    return Liveness(status="ok")


@router.get(
    "/metrics",
    summary="Request counts and durations, cache and webhook figures (Prometheus text format)",
    description="Requests by method, route template and status, their durations by route, the "
    "process caches' hits, misses, evictions and bytes, summed over every worker process of "
    "the service; the webhook and event figures and the index roll-ups' unfolded forms, read "
    "from the database. For a Prometheus scrape.",
    response_class=PlainTextResponse,
)
async def metrics(db: DatabaseDep) -> PlainTextResponse:
    text = app_metrics.render().decode() + await _webhook_metrics(db)
    return PlainTextResponse(text, media_type=app_metrics.CONTENT_TYPE)


async def _webhook_metrics(db: DatabaseDep) -> str:
    """The webhook figures, or nothing when the database does not answer."""
    from datetime import UTC, datetime

    from app.services.events import metrics as event_metrics

    try:
        async with db.engine.connect() as conn:
            return await event_metrics.render(conn, datetime.now(UTC))
    except (SQLAlchemyError, OSError):
        return ""


@router.get(
    "/readyz",
    summary="Readiness: the database answers and its schema is at the expected migration",
    description="200 when the database answers and is at the migration this build expects; "
    "otherwise 503 with `Retry-After`. For a readiness probe.",
    response_model=Readiness,
    responses=UNAVAILABLE,
)
async def readyz(request: Request, db: DatabaseDep) -> Any:
    expected: str = request.app.state.schema_head
    try:
        async with db.engine.connect() as conn:
            current = (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalar()
    except (SQLAlchemyError, OSError):
        return problem_response(
            request,
            503,
            "database_unavailable",
            "The database cannot be reached or has no schema.",
            headers={"Retry-After": "5"},
        )
    if current != expected:
        return problem_response(
            request,
            503,
            "schema_not_current",
            f"The database schema is at {current or 'nothing'}; this build expects {expected}. "
            "Run `sipas migrate`.",
            headers={"Retry-After": "5"},
        )
    return JSONResponse({"status": "ready", "schema": current})
