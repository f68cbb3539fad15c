"""POST /auth/token: OAuth2 password and client-credentials grants."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Form, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from app.api.problems import INVALID, TOO_MANY, UNAUTHORIZED
from app.deps import SessionDep, SettingsDep
from app.errors import AppError, FieldError, Invalid, problem_response
from app.services import auth

router = APIRouter(prefix="/auth", tags=["auth"])


class TokenResponse(BaseModel):
    access_token: str = Field(examples=["eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9..."])
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 - the OAuth2 token type, not a secret
    expires_in: int = Field(description="Seconds until the token expires.", examples=[900])
    scope: str = Field(examples=["agencies:read reports:read"])


def _missing(*names: str) -> AppError:
    return Invalid(
        "The grant is missing fields.",
        [FieldError(f"/body/{n}", "required for this grant_type", "missing") for n in names],
    )


@router.post(
    "/token",
    summary="Get an access token (OAuth2, form-encoded)",
    response_model=TokenResponse,
    responses={**UNAUTHORIZED, **INVALID, **TOO_MANY},
)
async def token(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    grant_type: Annotated[Literal["password", "client_credentials"], Form()],
    username: Annotated[str | None, Form(max_length=64)] = None,
    password: Annotated[str | None, Form(max_length=256)] = None,
    client_id: Annotated[str | None, Form(max_length=64)] = None,
    client_secret: Annotated[str | None, Form(max_length=256)] = None,
    scope: Annotated[str | None, Form(max_length=1000)] = None,
) -> Any:
    """Staff send `grant_type=password` with `username` and `password`; machine clients send
    `grant_type=client_credentials` with `client_id` and `client_secret`. Repeated failures for
    one account answer 429 with `Retry-After`, whether or not the account exists."""
    if grant_type == "password":
        if not username or password is None:
            raise _missing(
                *(n for n, v in (("username", username), ("password", password)) if not v)
            )
        result = await auth.password_grant(session, settings, username, password, scope)
    else:
        if not client_id or client_secret is None:
            raise _missing(
                *(
                    n
                    for n, v in (("client_id", client_id), ("client_secret", client_secret))
                    if not v
                )
            )
        result = await auth.client_credentials_grant(
            session, settings, client_id, client_secret, scope
        )
    headers = {"Cache-Control": "no-store", "Pragma": "no-cache"}
    if isinstance(result, auth.GrantRefused):
        # Returned, not raised: the failure counter and the audit row must commit.
        if result.retry_after is not None:
            headers["Retry-After"] = str(result.retry_after)
        if result.status == 401:
            headers["WWW-Authenticate"] = 'Bearer realm="sipas"'
        return problem_response(
            request,
            result.status,
            result.code,
            result.detail,
            headers=headers,
            extra={"error": result.code},
        )
    body = TokenResponse(
        access_token=result.access_token, expires_in=result.expires_in, scope=result.scope
    )
    return JSONResponse(body.model_dump(), headers=headers)
