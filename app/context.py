"""Per-request context that the services may read without importing the web framework."""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RequestContext:
    request_id: str
    client_ip: str | None = None
    reason: str | None = None


_current: ContextVar[RequestContext | None] = ContextVar("sipas_request", default=None)


def set_request_context(ctx: RequestContext) -> None:
    _current.set(ctx)


def current_request() -> RequestContext | None:
    return _current.get()


def current_request_id() -> str | None:
    ctx = _current.get()
    return ctx.request_id if ctx else None
