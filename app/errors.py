"""The one error envelope: RFC 9457 problem details, rendered for every error path."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, cast

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException

logger = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"


@dataclass(frozen=True, slots=True)
class FieldError:
    """One offending field or item, located by a JSON pointer into the request."""

    pointer: str
    detail: str
    code: str = "invalid"

    def as_dict(self) -> dict[str, str]:
        return {"pointer": self.pointer, "code": self.code, "detail": self.detail}


@dataclass(slots=True)
class AppError(Exception):
    """An expected failure. Services raise these; the handler renders problem+json."""

    code: str
    detail: str
    status: int = 400
    errors: Sequence[FieldError] = ()
    headers: Mapping[str, str] = field(default_factory=dict)
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.code}: {self.detail}"


def NotFound(what: str = "resource") -> AppError:
    return AppError("not_found", f"The {what} was not found.", 404)


def Conflict(code: str, detail: str) -> AppError:
    return AppError(code, detail, 409)


def PermissionDenied(detail: str = "You do not have the right to do this.") -> AppError:
    return AppError("forbidden", detail, 403)


def Unauthorized(detail: str = "A valid bearer token is required.") -> AppError:
    return AppError(
        "unauthorized", detail, 401, headers={"WWW-Authenticate": 'Bearer realm="sipas"'}
    )


def Invalid(detail: str, errors: Sequence[FieldError] = (), code: str = "invalid") -> AppError:
    return AppError(code, detail, 422, errors=errors)


def problem_body(
    status: int,
    code: str,
    detail: str,
    *,
    request_id: str | None,
    instance: str | None = None,
    errors: Sequence[FieldError] = (),
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    try:
        title = HTTPStatus(status).phrase
    except ValueError:
        title = "Error"
    body: dict[str, Any] = {
        "type": f"urn:sipas:problem:{code}",
        "title": title,
        "status": status,
        "code": code,
        "detail": detail,
    }
    if instance:
        body["instance"] = instance
    if request_id:
        body["request_id"] = request_id
    if errors:
        body["errors"] = [e.as_dict() for e in errors]
    if extra:
        body.update(extra)
    return body


def problem_response(
    request: Request,
    status: int,
    code: str,
    detail: str,
    *,
    errors: Sequence[FieldError] = (),
    headers: Mapping[str, str] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> JSONResponse:
    request_id = getattr(request.state, "request_id", None)
    body = problem_body(
        status,
        code,
        detail,
        request_id=request_id,
        instance=request.url.path,
        errors=errors,
        extra=extra,
    )
    return JSONResponse(
        body, status_code=status, headers=dict(headers or {}), media_type=PROBLEM_JSON
    )


def pointer_from_loc(loc: Sequence[int | str]) -> str:
    """Turn a pydantic error location such as ("body", "items", 3, "value") into a JSON pointer.

    The first element says where the value came from (body, query, path, header); the pointer
    keeps it so the client knows which part of the request to look at.
    """
    parts = [str(p).replace("~", "~0").replace("/", "~1") for p in loc]
    return "/" + "/".join(parts)


_STATUS_CODES = {
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "payload_too_large",
    415: "unsupported_media_type",
}


async def _app_error(request: Request, exc: Exception) -> JSONResponse:
    exc = cast(AppError, exc)
    return problem_response(
        request,
        exc.status,
        exc.code,
        exc.detail,
        errors=exc.errors,
        headers=exc.headers,
        extra=exc.extra,
    )


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    exc = cast(RequestValidationError, exc)
    errors = [
        FieldError(
            pointer_from_loc(err.get("loc", ())), str(err.get("msg", "invalid")), err["type"]
        )
        for err in exc.errors()
    ]
    return problem_response(
        request, 422, "validation_failed", "The request is not valid; see errors.", errors=errors
    )


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    exc = cast(StarletteHTTPException, exc)
    code = _STATUS_CODES.get(exc.status_code, f"http_{exc.status_code}")
    detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
    if exc.status_code == 404 and detail == "Not Found":
        detail = "No resource lives at this address."
    return problem_response(request, exc.status_code, code, detail, headers=exc.headers)


# What a named database constraint means to a client, when the services did not check first.
CONSTRAINT_MEANINGS: dict[str, str] = {}


def _constraint_name(exc: IntegrityError) -> str | None:
    orig = exc.orig
    name = getattr(orig, "constraint_name", None)
    cause = getattr(orig, "__cause__", None)
    if name is None and cause is not None:
        name = getattr(cause, "constraint_name", None)
    return name if isinstance(name, str) else None


async def _integrity_error(request: Request, exc: Exception) -> JSONResponse:
    exc = cast(IntegrityError, exc)
    name = _constraint_name(exc)
    logger.warning("integrity error", extra={"constraint": name})
    detail = CONSTRAINT_MEANINGS.get(name or "", "The change conflicts with data already stored.")
    extra = {"constraint": name} if name else None
    return problem_response(request, 409, "conflict", detail, extra=extra)


async def _database_unavailable(request: Request, exc: Exception) -> JSONResponse:
    logger.error("database unavailable", exc_info=exc)
    return problem_response(
        request,
        503,
        "database_unavailable",
        "The database is busy or unreachable; retry shortly.",
        headers={"Retry-After": "2"},
    )


async def _data_error(request: Request, exc: Exception) -> JSONResponse:
    """A value the database cannot take (a number out of its range, a NUL character in text):
    the request's fault, so 422, never a 500."""
    logger.info("data error", extra={"error": type(getattr(exc, "orig", exc)).__name__})
    return problem_response(
        request,
        422,
        "invalid_value",
        "A value is out of range or holds a character that cannot be stored (such as NUL).",
    )


# asyncpg errors that mean the connection or the server went away, not that the request is wrong.
_TRANSIENT = {
    "ConnectionDoesNotExistError",
    "CannotConnectNowError",
    "ConnectionFailureError",
    "AdminShutdownError",
    "CrashShutdownError",
    "TooManyConnectionsError",
    "InterfaceError",
    "InternalClientError",
}


def _is_transient(exc: DBAPIError) -> bool:
    if exc.connection_invalidated:
        return True
    seen: BaseException | None = exc.orig
    while seen is not None:
        if type(seen).__name__ in _TRANSIENT or isinstance(seen, ConnectionError | OSError):
            return True
        seen = seen.__cause__
    return False


def _is_bad_value(exc: DBAPIError) -> bool:
    """SQLSTATE class 22 (data exception: out of range, bad encoding, NUL in text) or a value the
    driver could not encode: the request's fault."""
    seen: BaseException | None = exc.orig
    while seen is not None:
        if str(getattr(seen, "sqlstate", "") or "").startswith("22") or isinstance(
            seen, ValueError
        ):
            return True
        seen = seen.__cause__
    return False


async def _dbapi_error(request: Request, exc: Exception) -> JSONResponse:
    exc = cast(DBAPIError, exc)
    if _is_transient(exc):
        return await _database_unavailable(request, exc)
    if _is_bad_value(exc):
        return await _data_error(request, exc)
    raise exc  # an unexpected database error: the middleware answers 500 and logs it


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(AppError, _app_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(IntegrityError, _integrity_error)
    app.add_exception_handler(DataError, _data_error)
    app.add_exception_handler(DBAPIError, _dbapi_error)
    for exc_type in (PoolTimeoutError, OperationalError, InterfaceError, ConnectionError):
        app.add_exception_handler(exc_type, _database_unavailable)
