"""Signing in: the OAuth2 token endpoint (RFC 6749), token revocation (RFC 7009) and logout.

`/auth/token` and `/auth/revoke` answer errors as RFC 6749 section 5.2 says, the shape OAuth
client libraries read (`{"error": ..., "error_description": ...}` as `application/json`), not
problem+json: their routes use `OAuthRoute`, which turns the framework's own refusals (a missing
or unknown `grant_type`, an over-long field) into that shape too. Every other route, `/auth/logout`
included, keeps problem+json.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Coroutine
from typing import Annotated, Any, Literal
from urllib.parse import unquote_plus

from fastapi import APIRouter, Depends, Form, Request, Response, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials
from fastapi.security.http import HTTPBase
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.api.problems import UNAUTHORIZED, Problem
from app.context import current_request
from app.deps import CurrentPrincipal, SessionDep, SettingsDep
from app.errors import AppError
from app.services import auth
from app.services.login_throttle import Budget

REALM = 'Basic realm="sipas"'
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


class TokenResponse(BaseModel):
    access_token: str = Field(examples=["eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9..."])
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 - the OAuth2 token type, not a secret
    expires_in: int = Field(description="Seconds until the token expires.", examples=[900])
    scope: str = Field(examples=["agencies:read reports:read"])
    refresh_token: str | None = Field(
        default=None,
        description="Staff only (password and refresh_token grants): single use; spend it with "
        "`grant_type=refresh_token` for a new pair. Machine clients get none.",
        examples=["rt_Q2hhbmdlIG1lIGZvciBhIHJlYWwgdG9rZW4"],
    )


class OAuthTokenError(BaseModel):
    """An error of the token or revocation endpoint, as RFC 6749 section 5.2 shapes it."""

    error: str = Field(
        description="invalid_request, invalid_client, invalid_grant, unsupported_grant_type, "
        "invalid_scope, or too_many_failed_logins (429).",
        examples=["invalid_grant"],
    )
    error_description: str = Field(examples=["The username or password is wrong."])


_HEADER = {"schema": {"type": "string"}}
_RATE_DOC: dict[str, Any] = {
    "RateLimit-Limit": {"description": "The failure budget nearest its end.", **_HEADER},
    "RateLimit-Remaining": {"description": "Failed sign-ins this address has left.", **_HEADER},
    "RateLimit-Reset": {"description": "Seconds until the budget's window ends.", **_HEADER},
    "RateLimit-Policy": {
        "description": "Both budgets: per account and address, per address.",
        **_HEADER,
    },
}


def _oauth(description: str, **headers: str) -> dict[str, Any]:
    documented = {name: {"description": text, **_HEADER} for name, text in headers.items()}
    return {
        "model": OAuthTokenError,
        "description": description,
        "headers": {**_RATE_DOC, **documented},
    }


TOKEN_ERRORS: dict[int | str, dict[str, Any]] = {
    400: _oauth(
        "invalid_request (a field is missing, repeated or malformed), invalid_grant (wrong "
        "username or password, a used, expired or revoked refresh token), "
        "unsupported_grant_type or invalid_scope."
    ),
    401: _oauth(
        "invalid_client: the client id or secret is wrong, or the client did not authenticate.",
        **{"WWW-Authenticate": 'Basic realm="sipas"'},
    ),
    429: _oauth(
        "too_many_failed_logins: this address failed too often, on this account or on all.",
        **{"Retry-After": "Seconds until this address may try again."},
    ),
    # Declared so that the framework does not document a 422 these routes never send.
    "default": {
        "model": Problem,
        "description": "Errors outside OAuth (a body over the size limit, a server fault), "
        "as problem+json.",
        "content": {"application/problem+json": {}},
    },
}
TOKEN_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "The token (never cached).", "headers": _RATE_DOC},
    **TOKEN_ERRORS,
}


def oauth_error(
    status_code: int,
    error: str,
    description: str,
    *,
    budget: Budget | None = None,
    retry_after: int | None = None,
) -> JSONResponse:
    headers = dict(_NO_STORE)
    if budget is not None:
        headers.update(budget.headers())
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    if status_code == 401:
        headers["WWW-Authenticate"] = REALM
    return JSONResponse(
        {"error": error, "error_description": description},
        status_code=status_code,
        headers=headers,
    )


def _validation_answer(exc: RequestValidationError) -> JSONResponse:
    for err in exc.errors():
        loc = tuple(err.get("loc", ()))
        if loc[-1:] == ("grant_type",) and err.get("type") != "missing":
            return oauth_error(
                400,
                "unsupported_grant_type",
                "grant_type must be password, client_credentials or refresh_token.",
            )
    fields = ", ".join(
        sorted({str(e.get("loc", ("", "?"))[-1]) + ": " + str(e.get("msg")) for e in exc.errors()})
    )
    return oauth_error(400, "invalid_request", f"The request is malformed ({fields}).")


class OAuthRoute(APIRoute):
    """A route whose refusals before the handler runs take the RFC 6749 error shape."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def oauth_handler(request: Request) -> Response:
            try:
                return await handler(request)
            except RequestValidationError as exc:
                return _validation_answer(exc)
            except AppError as exc:
                if exc.status >= 500:
                    raise
                return oauth_error(400, "invalid_request", exc.detail)
            except StarletteHTTPException as exc:
                if exc.status_code >= 500 or exc.status_code == 413:
                    raise
                return oauth_error(400, "invalid_request", str(exc.detail))

        return oauth_handler


router = APIRouter(prefix="/auth", tags=["auth"])
oauth_router = APIRouter(route_class=OAuthRoute)

client_basic = HTTPBase(
    scheme="basic",
    scheme_name="clientBasic",
    description="Machine clients may authenticate at the token endpoint with HTTP Basic "
    "(RFC 6749 2.3.1): the form-urlencoded client_id and client_secret, joined by a colon.",
    auto_error=False,
)
BasicDep = Annotated[HTTPAuthorizationCredentials | None, Depends(client_basic)]


def _basic_client(credentials: HTTPAuthorizationCredentials | None) -> tuple[str, str] | None:
    """(client_id, secret) from `Authorization: Basic`; ValueError when it cannot be read."""
    if credentials is None or credentials.scheme.lower() != "basic":
        return None
    try:
        raw = base64.b64decode(credentials.credentials, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise ValueError("not base64 of UTF-8") from exc
    name, colon, secret = raw.partition(":")
    if not colon or not name:
        raise ValueError("no client_id:secret pair")
    return unquote_plus(name), unquote_plus(secret)


def _source() -> str | None:
    ctx = current_request()
    return ctx.client_ip if ctx else None


def _missing(*pairs: tuple[str, str | None]) -> JSONResponse:
    absent = [name for name, value in pairs if not value]
    return oauth_error(
        400, "invalid_request", "Missing for this grant_type: " + ", ".join(absent) + "."
    )


async def _client_grant(
    session: SessionDep,
    settings: SettingsDep,
    basic: HTTPAuthorizationCredentials | None,
    client_id: str | None,
    client_secret: str | None,
    scope: str | None,
) -> auth.TokenGrant | auth.GrantRefused | JSONResponse:
    try:
        from_header = _basic_client(basic)
    except ValueError:
        return oauth_error(401, "invalid_client", "The Basic credentials cannot be read.")
    if from_header is not None:
        if client_secret is not None or (client_id and client_id != from_header[0]):
            return oauth_error(
                400,
                "invalid_request",
                "Authenticate the client one way: HTTP Basic or the form, not both.",
            )
        client_id, client_secret = from_header
    if not client_id or client_secret is None:
        return oauth_error(
            401,
            "invalid_client",
            "Client authentication is required: HTTP Basic, or client_id and client_secret.",
        )
    return await auth.client_credentials_grant(
        session, settings, client_id, client_secret, scope, _source()
    )


@oauth_router.post(
    "/token",
    summary="Get an access token (OAuth2, form-encoded)",
    operation_id="auth_token",
    response_model=TokenResponse,
    responses=TOKEN_RESPONSES,
    openapi_extra={"security": [{}]},
)
async def token(
    session: SessionDep,
    settings: SettingsDep,
    basic: BasicDep,
    grant_type: Annotated[Literal["password", "client_credentials", "refresh_token"], Form()],
    username: Annotated[str | None, Form(max_length=64)] = None,
    password: Annotated[str | None, Form(max_length=256)] = None,
    client_id: Annotated[str | None, Form(max_length=64)] = None,
    client_secret: Annotated[str | None, Form(max_length=256)] = None,
    refresh_token: Annotated[str | None, Form(max_length=256)] = None,
    scope: Annotated[str | None, Form(max_length=1000)] = None,
) -> Any:
    """Staff send `grant_type=password` with `username` and `password`, and get a refresh token
    beside the access token; `grant_type=refresh_token` with it returns a new pair (each refresh
    token works once; presenting a used one ends the whole session). Machine clients send
    `grant_type=client_credentials`, authenticated with HTTP Basic (`client_id:client_secret`,
    each form-urlencoded) or with `client_id` and `client_secret` in the form.

    Errors follow RFC 6749 section 5.2 (`{"error", "error_description"}`), not problem+json.
    Failed sign-ins are counted per address and account, and per address across accounts; an
    address over either budget gets 429 with `Retry-After`, while the right secret from any
    other address still works. `RateLimit-*` headers tell what is left."""
    result: auth.TokenGrant | auth.GrantRefused | JSONResponse
    if grant_type == "password":
        if not username or not password:
            return _missing(("username", username), ("password", password))
        result = await auth.password_grant(session, settings, username, password, scope, _source())
    elif grant_type == "refresh_token":
        if not refresh_token:
            return _missing(("refresh_token", refresh_token))
        result = await auth.refresh_grant(session, settings, refresh_token, scope)
    else:
        result = await _client_grant(session, settings, basic, client_id, client_secret, scope)
    if isinstance(result, JSONResponse):
        return result
    if isinstance(result, auth.GrantRefused):
        # Returned, not raised: the failure counter and the audit row must commit.
        return oauth_error(
            result.status,
            result.code,
            result.detail,
            budget=result.budget,
            retry_after=result.retry_after,
        )
    body = TokenResponse(
        access_token=result.access_token,
        expires_in=result.expires_in,
        scope=result.scope,
        refresh_token=result.refresh_token,
    )
    headers = dict(_NO_STORE)
    if result.budget is not None:
        headers.update(result.budget.headers())
    return JSONResponse(body.model_dump(exclude_none=True), headers=headers)


@oauth_router.post(
    "/revoke",
    summary="Revoke a refresh token or a staff access token (RFC 7009)",
    operation_id="auth_revoke",
    status_code=status.HTTP_200_OK,
    response_class=Response,
    responses={
        200: {"description": "Revoked, or not a live token of this service."},
        400: TOKEN_ERRORS[400],
        "default": TOKEN_ERRORS["default"],
    },
)
async def revoke(
    session: SessionDep,
    settings: SettingsDep,
    token: Annotated[str, Form(max_length=4096)],
    token_type_hint: Annotated[
        str | None, Form(max_length=64, description="refresh_token or access_token; optional")
    ] = None,
) -> Response:
    """Ends the sign-in session the token belongs to: its refresh tokens stop working and so do
    the access tokens issued in it. As RFC 7009 asks, an unknown or already revoked token gets
    200 too. Possession of the token is the credential; no other authentication is needed."""
    await auth.revoke_token(session, settings, token)
    return Response(status_code=200, headers=_NO_STORE)


@router.post(
    "/logout",
    summary="Log out: end this token's sign-in session",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=UNAUTHORIZED,
)
async def logout(principal: CurrentPrincipal, session: SessionDep) -> Response:
    """Ends the session the bearer token was issued in (password or refresh grant): its refresh
    tokens and its access tokens, this one included, are refused from now on. Other sessions of
    the same user are untouched; changing the password ends them all."""
    await auth.end_session(session, principal, principal.session_id, "auth.logout")
    return Response(status_code=204)


router.include_router(oauth_router)
