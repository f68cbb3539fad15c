"""ETag and If-None-Match for reads that report fetchers poll.

The tag is a strong hash of the exact response bytes, so it changes whenever the body does and
two callers who see different subsets (an agency manager, an admin) never share a tag.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from fastapi import Request, Response
from fastapi.encoders import jsonable_encoder
from pydantic import BaseModel

from app.api.problems import Responses

CACHE_CONTROL = "private, no-cache"
JSON = "application/json"
NOT_MODIFIED: Responses = {
    304: {
        "description": "Not modified: the caller's If-None-Match holds the current ETag.",
        "headers": {"ETag": {"description": "Hash of the body.", "schema": {"type": "string"}}},
    }
}


def make_etag(body: bytes) -> str:
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def _matches(if_none_match: str | None, etag: str) -> bool:
    """Weak comparison (RFC 9110 13.1.2): a W/ prefix on either side does not matter."""
    if not if_none_match:
        return False
    if if_none_match.strip() == "*":
        return True
    bare = etag.removeprefix("W/")
    return any(tag.strip().removeprefix("W/") == bare for tag in if_none_match.split(","))


def conditional(
    request: Request,
    body: bytes,
    media_type: str,
    headers: Mapping[str, str] | None = None,
    *,
    etag: str | None = None,
    cache_control: str = CACHE_CONTROL,
) -> Response:
    """`body` with its ETag, or an empty 304 when the caller already holds this version.

    The tag is the body's hash unless a stored one is given (a snapshot's tag, which must not
    depend on how the body is rendered)."""
    tag = etag or make_etag(body)
    return _not_modified(request, tag, cache_control) or _full(
        body, media_type, headers, tag, cache_control
    )


async def conditional_from(
    request: Request,
    render: Callable[[], Awaitable[bytes]],
    media_type: str,
    headers: Mapping[str, str] | None = None,
    *,
    etag: str,
    cache_control: str = CACHE_CONTROL,
) -> Response:
    """Like `conditional` with a known tag, rendering the body only when it is sent."""
    return _not_modified(request, etag, cache_control) or _full(
        await render(), media_type, headers, etag, cache_control
    )


def _not_modified(request: Request, etag: str, cache_control: str) -> Response | None:
    if not _matches(request.headers.get("if-none-match"), etag):
        return None
    return Response(status_code=304, headers={"ETag": etag, "Cache-Control": cache_control})


def _full(
    body: bytes,
    media_type: str,
    headers: Mapping[str, str] | None,
    etag: str,
    cache_control: str,
) -> Response:
    common = {"ETag": etag, "Cache-Control": cache_control}
    return Response(body, media_type=media_type, headers={**common, **(headers or {})})


def json_with_etag(request: Request, content: Any) -> Response:
    """Serialise a schema (or a list of them) as JSON and answer it conditionally.

    A single schema is serialised by pydantic directly: the generic encoder walked a large
    index (40 agencies, a tree each) for about 80 ms; this takes a few."""
    if isinstance(content, BaseModel):
        return conditional(request, content.model_dump_json(by_alias=True).encode(), JSON)
    body = json.dumps(jsonable_encoder(content), ensure_ascii=False, separators=(",", ":")).encode()
    return conditional(request, body, JSON)
