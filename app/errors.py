"""The one error envelope: RFC 9457 problem details, rendered for every error path."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from types import MappingProxyType
from typing import Any, cast

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException

# The language machinery and the Vietnamese catalogue live in app.messages_vi; re-exported here.
from app.messages_vi import (
    DEFAULT_LANGUAGE,
    DETAILS_VI,
    FIELD_DETAILS_VI,
    FIELD_PATTERNS_VI,
    MESSAGES_VI,
    NOUNS_VI,
    OAUTH_CODES,
    PATTERNS_VI,
    TITLES_VI,
    VALIDATION_VI,
    Language,
    detail_vi,
    field_detail_vi,
    negotiate_language,
    title_for,
    translated,
)

__all__ = [
    "CONSTRAINT_MEANINGS",
    "DEFAULT_LANGUAGE",
    "DETAILS_VI",
    "FIELD_DETAILS_VI",
    "FIELD_PATTERNS_VI",
    "MESSAGES_VI",
    "NOUNS_VI",
    "OAUTH_CODES",
    "PATTERNS_VI",
    "PROBLEM_JSON",
    "TITLES_VI",
    "VALIDATION_VI",
    "AppError",
    "Conflict",
    "ConflictError",
    "FieldError",
    "Invalid",
    "InvalidError",
    "Language",
    "NotFound",
    "NotFoundError",
    "PermissionDenied",
    "PermissionDeniedError",
    "Unauthorized",
    "UnauthorizedError",
    "detail_vi",
    "field_detail_vi",
    "field_errors",
    "install_error_handlers",
    "negotiate_language",
    "pointer_from_loc",
    "problem_body",
    "problem_response",
    "title_for",
    "translated",
]

logger = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"


@dataclass(frozen=True, slots=True)
class FieldError:
    """One offending field or item, located by a JSON pointer into the request."""

    pointer: str
    detail: str
    code: str = "invalid"
    # A pydantic error's context (limits, expected values), for the translated message.
    params: Mapping[str, Any] | None = field(default=None, compare=False)

    def as_dict(self, language: Language | None = None) -> dict[str, str]:
        detail = self.detail if language != "vi" else field_detail_vi(self)
        return {"pointer": self.pointer, "code": self.code, "detail": detail}


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


# The usual failures as classes of their own, so that a caller can catch one by its type. Each
# renders exactly as an AppError with the same code, detail and status would.


class NotFoundError(AppError):
    """404 `not_found`: the thing named does not exist, or the caller may not know it does."""

    def __init__(self, what: str = "resource") -> None:
        super().__init__("not_found", f"The {what} was not found.", 404)


class ConflictError(AppError):
    """409: the change conflicts with the state of what is stored; `code` says which rule."""

    def __init__(
        self,
        code: str,
        detail: str,
        *,
        errors: Sequence[FieldError] = (),
        headers: Mapping[str, str] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(code, detail, 409, errors, dict(headers or {}), dict(extra or {}))


class PermissionDeniedError(AppError):
    """403 `forbidden`: the caller is known but may not do this."""

    def __init__(self, detail: str = "You do not have the right to do this.") -> None:
        super().__init__("forbidden", detail, 403)


class UnauthorizedError(AppError):
    """401 `unauthorized`: no valid bearer token; answers with the Bearer challenge."""

    def __init__(self, detail: str = "A valid bearer token is required.") -> None:
        super().__init__(
            "unauthorized", detail, 401, headers={"WWW-Authenticate": 'Bearer realm="sipas"'}
        )


class InvalidError(AppError):
    """422: the request is well-formed but its content breaks a rule; `errors` point at it."""

    def __init__(
        self, detail: str, errors: Sequence[FieldError] = (), code: str = "invalid"
    ) -> None:
        super().__init__(code, detail, 422, errors=errors)


# The names services have used since the start; the same classes.
NotFound = NotFoundError
Conflict = ConflictError
PermissionDenied = PermissionDeniedError
Unauthorized = UnauthorizedError
Invalid = InvalidError


def problem_body(
    status: int,
    code: str,
    detail: str,
    *,
    request_id: str | None,
    instance: str | None = None,
    errors: Sequence[FieldError] = (),
    extra: Mapping[str, Any] | None = None,
    language: Language | None = None,
) -> dict[str, Any]:
    """The problem document; with a `language`, its title, detail and field messages are in
    it (the code, type and pointers never change)."""
    title, detail = translated(status, code, detail, language)
    field_language = None if code in OAUTH_CODES else language
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
        body["errors"] = [e.as_dict(field_language) for e in errors]
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
    """A problem+json response in the caller's language (`Accept-Language`, Vietnamese by
    default), saying which in `Content-Language`."""
    request_id = getattr(request.state, "request_id", None)
    language = negotiate_language(request.headers.get("accept-language"))
    body = problem_body(
        status,
        code,
        detail,
        request_id=request_id,
        instance=request.url.path,
        errors=errors,
        extra=extra,
        language=language,
    )
    answer_headers = {
        **dict(headers or {}),
        "Content-Language": "en" if code in OAUTH_CODES else language,
    }
    vary = answer_headers.get("Vary")
    answer_headers["Vary"] = f"{vary}, Accept-Language" if vary else "Accept-Language"
    return JSONResponse(body, status_code=status, headers=answer_headers, media_type=PROBLEM_JSON)


def pointer_from_loc(loc: Sequence[int | str]) -> str:
    """Turn a pydantic error location such as ("body", "items", 3, "value") into a JSON pointer.

    The first element says where the value came from (body, query, path, header); the pointer
    keeps it so the client knows which part of the request to look at.
    """
    parts = [str(p).replace("~", "~0").replace("/", "~1") for p in loc]
    return "/" + "/".join(parts)


def field_errors(
    details: Sequence[Mapping[str, Any]], prefix: Sequence[int | str] = ()
) -> list[FieldError]:
    """pydantic's errors as FieldErrors (pointer, message, type and context for the
    translation), their locations under `prefix`."""
    return [
        FieldError(
            pointer_from_loc((*prefix, *err.get("loc", ()))),
            str(err.get("msg", "invalid")),
            str(err.get("type", "invalid")),
            {k: _plain(v) for k, v in (err.get("ctx") or {}).items()},
        )
        for err in details
    ]


def _plain(value: Any) -> Any:
    return value if isinstance(value, str | int | float) else str(value)


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
    errors = field_errors(exc.errors())
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
# Declared here, the one place, by the constraint names the migrations give; a constraint not
# named here answers the generic sentence.
CONSTRAINT_MEANINGS: Mapping[str, str] = MappingProxyType(
    {
        "agencies_no_cycle": "An agency cannot be placed under itself or one of its descendants.",
        "uq_agencies_code": "Another agency already has this code.",
        "uq_sectors_code": "Another sector already has this code.",
        "uq_procedures_code": "Another procedure already has this code.",
        "uq_campaigns_code": "Another campaign already has this code.",
        "questionnaires_frozen": "The questionnaire version is frozen: a campaign opened on it.",
    }
)


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


# SQLSTATEs that say "try again": a serialization failure (also what a hot standby raises when
# it cancels a read that conflicts with replay) and a deadlock victim.
_RETRY_STATES = {"40001", "40P01"}


def _is_transient(exc: DBAPIError) -> bool:
    if exc.connection_invalidated:
        return True
    seen: BaseException | None = exc.orig
    while seen is not None:
        if type(seen).__name__ in _TRANSIENT or isinstance(seen, ConnectionError | OSError):
            return True
        if str(getattr(seen, "sqlstate", "") or "") in _RETRY_STATES:
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
