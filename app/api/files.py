"""Files the routers hand out (CSV, XLSX): their media types and the attachment header."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import Request, Response

from app.api.etag import JSON, conditional_from
from app.api.problems import Responses
from app.services.tabular import XLSX_MEDIA_TYPE

CSV = "text/csv; charset=utf-8"
XLSX = XLSX_MEDIA_TYPE
MEDIA_TYPES = {"csv": CSV, "xlsx": XLSX}


def attachment(filename: str) -> dict[str, str]:
    """The header that makes a browser save the body as `filename`."""
    return {"Content-Disposition": f'attachment; filename="{filename}"'}


def download(*media_types: str, description: str | None = None) -> Responses:
    """The documented 200 of a route that answers a file in one of `media_types`."""
    response: dict[str, Any] = {"content": {media_type: {} for media_type in media_types}}
    if description is not None:
        response["description"] = description
    return {200: response}


async def rendering(
    request: Request,
    render: Callable[[], Awaitable[bytes]],
    fmt: str,
    *,
    filename: str,
    etag: str,
    cache_control: str,
) -> Response:
    """A report's rendering in `fmt` (json, csv or xlsx), the same rule for the staff API and
    the public one: JSON inline, a file as the attachment `filename.fmt`; a 304 before anything
    is rendered when the caller holds `etag`."""
    media = {"json": JSON, **MEDIA_TYPES}[fmt]
    headers = {} if fmt == "json" else attachment(f"{filename}.{fmt}")
    return await conditional_from(
        request, render, media, headers, etag=etag, cache_control=cache_control
    )
